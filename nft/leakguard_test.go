package nft

import (
	"reflect"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The leak guard drops exactly what carries crosswire's bits (under its
// mask, whatever else is set) and neither enters nor leaves by the tunnel.
func TestLeakGuardRule(t *testing.T) {
	cfg := validConfig() // mark 0x1000 under mask 0x3000
	rs, err := Render(cfg, testState())
	if err != nil {
		t.Fatal(err)
	}
	c := rs.Chain(ChainLeakGuard)
	if c == nil {
		t.Fatal("leak guard chain missing")
	}
	if c.Type != nftables.ChainTypeFilter || c.Hook != *nftables.ChainHookForward || c.Policy != nftables.ChainPolicyAccept {
		t.Fatalf("chain = %+v, want filter hook forward policy accept", c)
	}
	name := func(s string) []byte {
		b := make([]byte, unix.IFNAMSIZ)
		copy(b, s)
		return b
	}
	want := []RuleSpec{{
		Comment: CommentLeakGuard,
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(0x3000), Xor: binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0x1000)},
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: name("crosswire0")},
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: name("crosswire0")},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		},
	}}
	if !reflect.DeepEqual(c.Rules, want) {
		t.Fatalf("leak guard rules:\n got %#v\nwant %#v", c.Rules, want)
	}
	// Strict mode or not, the guard is the same.
	cfg.Strict = true
	strict, err := Render(cfg, testState())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(strict.Chain(ChainLeakGuard), c) {
		t.Error("strict mode changed the leak guard")
	}
}
