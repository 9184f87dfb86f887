package iptables

import (
	"strings"
	"testing"

	rs "ocelot/dataplane/ruleset"
)

// Every kind of the model renders (a kind the renderer does not know
// panics), each to its own text, negated where it can be.
func TestRendersEveryKind(t *testing.T) {
	r := Renderer{SetName: func(id string) string { return "cali40" + id }}
	crit, acts := rs.Examples()
	seen := map[string]bool{}
	for _, c := range crit {
		text := r.Match(rs.Match{c})
		if text == "" || seen[text] {
			t.Errorf("%T renders as %q", c, text)
		}
		seen[text] = true
	}
	for _, a := range acts {
		if text := Action(a); text == "" || seen[text] {
			t.Errorf("%T renders as %q", a, text)
		} else {
			seen[text] = true
		}
	}
	for _, c := range []struct {
		in   rs.Criterion
		want string
	}{
		{rs.Mark{Mask: 0x30000, Negate: true}, "-m mark ! --mark 0/0x30000"},
		{rs.IPSet{Dir: rs.Dst, ID: "s:x", Negate: true}, "-m set ! --match-set cali40s:x dst"},
		{rs.IPPortSet{Dir: rs.Src, ID: "n:x"}, "-m set --match-set cali40n:x src,src"},
		{rs.ConntrackState{States: []rs.CtState{rs.CtDNAT}, Negate: true}, "-m conntrack ! --ctstate DNAT"},
		{rs.ICMP{V6: true, Negate: true}, "-m icmp6 ! --icmpv6-type 0"},
		// Felix's text for QoS rules, byte for byte (its hashes).
		{rs.TCPFlags{Mask: rs.TCPFin | rs.TCPSyn | rs.TCPRst | rs.TCPAck, Set: rs.TCPSyn}, "-m tcp --tcp-flags FIN,SYN,RST,ACK SYN"},
		{rs.PacketRate{Rate: 100, Burst: 5}, "-m limit --limit 100/sec --limit-burst 5"},
		{rs.ConnLimit{Above: 4294967295}, "-m connlimit --connlimit-above 4294967295 --connlimit-mask 0"},
	} {
		if got := r.Match(rs.Match{c.in}); got != c.want {
			t.Errorf("%#v renders as %q, want %q", c.in, got, c.want)
		}
	}
}

func TestNFLOGPrefixCannotBreakTheLine(t *testing.T) {
	got := Action(rs.NFLOG{Group: 1, Prefix: "x\" --jump ACCEPT\n-A INPUT" + strings.Repeat("y", 80), Size: 80})
	prefix := strings.TrimSuffix(strings.TrimPrefix(got, `--jump NFLOG --nflog-group 1 --nflog-prefix "`), `" --nflog-size 80`)
	if strings.ContainsAny(prefix, "\"\n") || len(prefix) > rs.MaxNFLOGPrefix {
		t.Errorf("prefix escaped its quotes or its length: %q", got)
	}
}

func TestCommentsCannotBreakTheLine(t *testing.T) {
	got := Renderer{}.Rule(rs.Rule{Comment: []string{"x\" --jump ACCEPT\n-A INPUT"}})
	if strings.ContainsAny(strings.TrimSuffix(strings.TrimPrefix(got, `-m comment --comment "`), `"`), "\"\n") {
		t.Errorf("comment escaped its quotes: %q", got)
	}
}

// Names and log prefixes stay one word, or inside their quotes, whatever
// they hold: no input adds a word, a quote or a line to a restore line.
// (The managers and configuration refuse such input first; this is the
// renderer's own line of defence.)
func TestNamesCannotBreakTheLine(t *testing.T) {
	r := Renderer{SetName: func(id string) string { return "cali40" + id }}
	for _, c := range []struct {
		rule rs.Rule
		want string
	}{
		{rs.Rule{Action: rs.Log{Prefix: "x\" -j ACCEPT\n-I FORWARD 1 -j ACCEPT"}}, `--jump LOG --log-prefix "x_ -j ACCEPT_-I FORWARD 1 -: " --log-level 5`},
		{rs.Rule{Match: rs.Match{}.InInterface("tap x"), Action: rs.Goto{Chain: "cali-fw-a\"b"}}, `--in-interface tap_x --goto cali-fw-a_b`},
		{rs.Rule{Match: rs.Match{}.OutInterface("tap\n1"), Action: rs.Jump{Chain: "cali-x\\y"}}, `--out-interface tap_1 --jump cali-x_y`},
		{rs.Rule{Match: rs.Match{}.SourceIPSet("s:a 'b")}, `-m set --match-set cali40s:a__b src`},
	} {
		if got := r.Rule(c.rule); got != c.want {
			t.Errorf("%+v renders as\n%q, want\n%q", c.rule, got, c.want)
		}
	}
	if got := logPrefix("calico-packet"); got != "calico-packet" {
		t.Errorf("a valid prefix changed: %q", got)
	}
	if got := logPrefix(strings.Repeat("a", 40)); len(got) != maxLogPrefixLength {
		t.Errorf("a long prefix kept %d characters", len(got))
	}
}
