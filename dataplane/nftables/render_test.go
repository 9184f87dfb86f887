package nftables

import (
	"net/netip"
	"testing"

	rs "ocelot/dataplane/ruleset"
)

// Every kind of the model renders (a kind the renderer does not know
// panics), each to its own expressions, in both families. (The examples'
// addresses are IPv4: in IPv6 several of them cannot match, and render
// alike.)
func TestRendersEveryKind(t *testing.T) {
	crit, acts := rs.Examples()
	for _, fam := range []int{4, 6} {
		r := Renderer{Family: fam, Layer: "filter", SetName: func(id string) string { return "cali40" + id }}
		seen := map[string]bool{}
		key := func(x Rule) string { return string(ruleBytes(fam, &x)) }
		for _, c := range crit {
			x := r.Rule(rs.Rule{Match: rs.Match{c}})
			if k := key(x); fam == 4 && (len(x.Exprs) < 1 || seen[k]) {
				t.Errorf("IPv%d: %T renders as %d expressions (seen: %v)", fam, c, len(x.Exprs), seen[k])
			} else {
				seen[k] = true
			}
		}
		for _, a := range acts {
			x := r.Rule(rs.Rule{Action: a})
			if k := key(x); fam == 4 && seen[k] {
				t.Errorf("IPv%d: %T renders like another", fam, a)
			} else {
				seen[k] = true
			}
		}
	}
}

// A comment cannot reach beyond its own text, and stays within nft's
// limit with the hash.
func TestCommentsAreBounded(t *testing.T) {
	r := Renderer{Family: 4, Layer: "filter"}
	long := make([]byte, 500)
	for i := range long {
		long[i] = '"'
	}
	x := r.Rule(rs.Rule{Comment: []string{string(long), "x\n; drop"}})
	x.Hash = "0123456789abcdef"
	c := joinComment(HashPrefix+x.Hash+";", x.Comment)
	if len(c) > maxComment {
		t.Errorf("comment of %d bytes", len(c))
	}
	for _, ch := range c {
		if ch == '"' || ch == '\n' || ch == ';' && c[len(HashPrefix)+16] != ';' {
			t.Fatalf("unsafe comment %q", c)
		}
	}
	if HashOf(x.UserData()) != x.Hash {
		t.Errorf("hash read back as %q", HashOf(x.UserData()))
	}
}

// A network's end, as an interval set holds it: the address after its
// last, none at the end of the address space.
func TestAfterLast(t *testing.T) {
	for p, want := range map[string]string{"10.0.0.0/8": "11.0.0.0", "198.18.1.1/32": "198.18.1.2", "198.18.1.255/32": "198.18.2.0",
		"255.255.255.255/32": "", "0.0.0.0/0": "", "128.0.0.0/1": "", "2001:db8::/32": "2001:db9::", "2001:db8::ffff/128": "2001:db8::1:0",
		"::/0": "", "ffff::/16": ""} {
		got, ok := afterLast(netip.MustParsePrefix(p))
		if (want == "") == ok || (ok && got != netip.MustParseAddr(want)) {
			t.Errorf("after %s: %v %v, want %q", p, got, ok, want)
		}
	}
}
