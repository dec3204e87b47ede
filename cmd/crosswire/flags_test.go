package main

import (
	"strings"
	"testing"
	"time"
)

// Bad flag values are refused with the flag's name before anything is
// touched; the defaults pass.
func TestValidateFlags(t *testing.T) {
	def := defaultOptions()
	if err := def.validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, tc := range map[string]struct {
		mutate func(*options)
		want   string
	}{
		"mtu":          {func(o *options) { o.mtu = 500 }, "--mtu 500"},
		"keepalive":    {func(o *options) { o.keepalive = -1 }, "--keepalive -1"},
		"wg fwmark":    {func(o *options) { o.wgFwmark = 0x1000 }, "--wg-fwmark 0x1000"},
		"idle timeout": {func(o *options) { o.peerIdle = 5 * time.Second }, "--peer-idle-timeout 5s"},
	} {
		o := defaultOptions()
		tc.mutate(&o)
		if err := o.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: validate() = %v, want an error naming %q", name, err, tc.want)
		}
	}
}
