package nft

import (
	"strings"
	"testing"
)

func validConfig() Config {
	return Config{Table: "crosswire", Mark: 0x1000, Mask: 0x3000, TunnelIface: "crosswire0"}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string // substring; "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"empty table defaults", func(c *Config) { c.Table = "" }, ""},
		{"mark equals mask", func(c *Config) { c.Mark, c.Mask = 0x10, 0x10 }, ""},
		{"zero mark", func(c *Config) { c.Mark = 0 }, "mark must be non-zero"},
		{"mark outside mask", func(c *Config) { c.Mark, c.Mask = 0x1000, 0x2000 }, "not within mask"},
		{"mark partly outside mask", func(c *Config) { c.Mark, c.Mask = 0x3000, 0x1000 }, "extra bits 0x2000"},
		{"zero mask", func(c *Config) { c.Mask = 0 }, "not within mask"},
		{"empty tunnel", func(c *Config) { c.TunnelIface = "" }, "tunnel interface name must not be empty"},
		{"long tunnel", func(c *Config) { c.TunnelIface = "0123456789abcdef" }, "longer than 15"},
		{"long table", func(c *Config) { c.Table = strings.Repeat("t", 256) }, "longer than 249"},
		{"table and guard at the limit", func(c *Config) { c.Table = strings.Repeat("t", 249) }, ""},
		{"guard over the limit", func(c *Config) { c.Table = strings.Repeat("t", 250) }, "its guard table adds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mod(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate() = nil, want error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	c := validConfig()
	c.Mark = 0
	if _, err := New(c); err == nil {
		t.Fatal("New accepted Mark=0")
	}
	if _, err := Render(c, State{}); err == nil {
		t.Fatal("Render accepted Mark=0")
	}
}
