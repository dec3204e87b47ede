package netcluster

import (
	"strings"
	"testing"
)

// A capture that lost packets, or cannot say, is inconclusive: the lost
// packet may have been the plaintext one.
func TestCaptureDrops(t *testing.T) {
	const listening = "tcpdump: listening on br0, link-type EN10MB (Ethernet), snapshot length 256 bytes\n"
	for _, c := range []struct {
		log  string
		want string // substring of the error; "" for none
	}{
		{listening + "120 packets captured\n120 packets received by filter\n0 packets dropped by kernel\n", ""},
		{listening + "1 packet captured\n1 packet received by filter\n0 packets dropped by kernel\n", ""},
		{listening + "118 packets captured\n120 packets received by filter\n2 packets dropped by kernel\n", "2 packets dropped by kernel"},
		{listening + "120 packets captured\n120 packets received by filter\n0 packets dropped by kernel\n3 packets dropped by interface\n", "3 packets dropped by interface"},
		{listening, "no drop statistics"},
	} {
		err := captureDrops(c.log)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v, want clean", c.log, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: %v, want an error with %q", c.log, err, c.want)
		}
	}
}
