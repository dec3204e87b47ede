package wgtun

import (
	"fmt"
	"strings"
	"testing"
)

func TestPSKAmend(t *testing.T) {
	var a, b, c, d Key
	a[0], b[0], c[0], d[0] = 1, 2, 3, 4
	psk := Key{9, 9, 9}
	body := fmt.Sprintf("listen_port=51820\n"+
		"public_key=%s\nremove=true\n"+ // removed: untouched
		"public_key=%s\nendpoint=192.168.1.2:51820\nallowed_ip=10.0.0.0/24\n"+ // created, recorded
		"public_key=%s\nupdate_only=true\nallowed_ip=10.0.1.0/24\n"+ // updated: untouched
		"public_key=%s\nallowed_ip=10.0.2.0/24\n", // created, not recorded
		a.hex(), b.hex(), c.hex(), d.hex())

	var s pskStore
	if got := s.amend(body); got != body {
		t.Fatalf("classical store changed the body:\n%s", got)
	}
	s.set(b, psk)
	s.set(a, psk)
	s.set(c, psk)
	got := s.amend(body)
	want := strings.Replace(body, "public_key="+b.hex()+"\n", "public_key="+b.hex()+"\npreshared_key="+psk.hex()+"\n", 1)
	if got != want {
		t.Fatalf("amend with a record:\n%s\nwant:\n%s", got, want)
	}

	// Required: the unrecorded created peer gets a random key, different
	// every time, never zero.
	s.require = true
	got = s.amend(body)
	line := "public_key=" + d.hex() + "\npreshared_key="
	i := strings.Index(got, line)
	if i < 0 {
		t.Fatalf("no preshared key for an unrecorded peer:\n%s", got)
	}
	k1 := got[i+len(line) : i+len(line)+64]
	got2 := s.amend(body)
	j := strings.Index(got2, line)
	if k1 == strings.Repeat("0", 64) || k1 == got2[j+len(line):j+len(line)+64] {
		t.Fatalf("random preshared key %s is zero or repeated", k1)
	}
	// An explicit zero (classical peer in mode on) is written as such.
	s.set(d, Key{})
	if got := s.amend(body); !strings.Contains(got, line+strings.Repeat("0", 64)+"\n") {
		t.Fatalf("explicit zero key not written:\n%s", got)
	}
	// A block that sets its own key keeps it.
	own := fmt.Sprintf("public_key=%s\npreshared_key=%s\n", b.hex(), Key{7}.hex())
	if got := s.amend(own); got != own {
		t.Fatalf("a block's own key was overridden:\n%s", got)
	}
}
