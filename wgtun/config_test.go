package wgtun

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	key, _ := GeneratePrivateKey()
	good := Config{Name: "crosswire0", MTU: 1420, PrivateKey: key, SocketDir: "/var/run/wireguard"}
	if err := good.withDefaults().validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	noMTU := good
	noMTU.MTU = 0
	if c := noMTU.withDefaults(); c.MTU != 1420 || c.validate() != nil {
		t.Fatalf("MTU 0 should default to 1420, got %d", c.MTU)
	}
	onDemand := good
	onDemand.OnDemand = true
	if c := onDemand.withDefaults(); c.IdleTimeout != 5*time.Minute || c.validate() != nil {
		t.Fatalf("on-demand idle timeout 0 should default to 5m, got %v", c.IdleTimeout)
	}
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Name = "" }, "1..15"},
		{func(c *Config) { c.Name = "crosswire-012345" }, "1..15"},
		{func(c *Config) { c.Name = "cw/0" }, "white space"},
		{func(c *Config) { c.Name = "cw 0" }, "white space"},
		{func(c *Config) { c.Name = ".." }, "reserved"},
		{func(c *Config) { c.MTU = 100 }, "MTU"},
		{func(c *Config) { c.PrivateKey = Key{} }, "private key"},
		{func(c *Config) { c.SocketDir = "" }, "socket directory"},
		{func(c *Config) { c.Keepalive = -1 }, "keepalive"},
		{func(c *Config) { c.OnDemand, c.IdleTimeout = true, -time.Second }, "idle timeout"},
		{func(c *Config) { c.IdleTimeout = -time.Second }, "idle timeout"},
	} {
		c := good
		tc.mut(&c)
		err := c.withDefaults().validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %+v: error %v, want one containing %q", c, err, tc.want)
		}
	}
}
