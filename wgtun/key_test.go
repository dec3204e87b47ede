package wgtun

import (
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"

	"github.com/crosswire/crosswire/internal/testenv"
)

func TestKeyRoundTripMatchesWgPubkey(t *testing.T) {
	testenv.RequireTools(t, "wg")
	wg, err := exec.LookPath("wg")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		priv, err := GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		s := priv.String()
		if len(s) != 44 {
			t.Fatalf("String() = %q, want 44 characters", s)
		}
		back, err := ParseKey(s)
		if err != nil || back != priv {
			t.Fatalf("ParseKey(%q) = %v, %v; want %v", s, back, err, priv)
		}

		cmd := exec.Command(wg, "pubkey")
		cmd.Stdin = strings.NewReader(s + "\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("wg pubkey: %v", err)
		}
		if got, want := priv.PublicKey().String(), strings.TrimSpace(string(out)); got != want {
			t.Fatalf("PublicKey() = %s, wg pubkey says %s", got, want)
		}
	}
}

func TestPublicKeyRFC7748Vector(t *testing.T) {
	// RFC 7748 section 6.1, Alice.
	var priv Key
	hex.Decode(priv[:], []byte("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
	want := "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
	if got := priv.PublicKey().hex(); got != want {
		t.Fatalf("public key %s, want %s", got, want)
	}
}

func TestGeneratePrivateKeyIsClamped(t *testing.T) {
	k, err := GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	if k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
		t.Fatalf("key not clamped: first byte %08b, last byte %08b", k[0], k[31])
	}
	if k.IsZero() {
		t.Fatal("generated zero key")
	}
}

func TestParseKeyErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "want 44 base64 characters, got 0"},
		{"AAAA", "got 4"},
		{strings.Repeat("A", 43) + "=" + "A", "got 45"},
		{strings.Repeat("!", 43) + "=", "invalid base64"},
		{strings.Repeat("A", 44), "decodes to 33 bytes"},
	} {
		_, err := ParseKey(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseKey(%q) error = %v, want one containing %q", tc.in, err, tc.want)
		}
	}
	k, err := ParseKey(strings.Repeat("A", 43) + "=")
	if err != nil || !k.IsZero() {
		t.Errorf("ParseKey(zero) = %v, %v", k, err)
	}
}

func TestHexKeyRoundTrip(t *testing.T) {
	k, _ := GeneratePrivateKey()
	back, err := parseHexKey(k.hex())
	if err != nil || back != k {
		t.Fatalf("parseHexKey(hex()) = %v, %v", back, err)
	}
	if _, err := parseHexKey("abc"); err == nil {
		t.Fatal("short hex key accepted")
	}
	if _, err := parseHexKey(strings.Repeat("zz", 32)); err == nil {
		t.Fatal("non-hex key accepted")
	}
}
