package nftables

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"ocelot/contract"
	rs "ocelot/dataplane/ruleset"
	"ocelot/internal/netlab"
)

func TestMain(m *testing.M) { netlab.Main(m) }

func nftList(t *testing.T, family int) string {
	t.Helper()
	fam := "ip"
	if family == 6 {
		fam = "ip6"
	}
	out, err := exec.Command("nft", "list", "table", fam, TableName).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	return string(out)
}

func mem(s string) contract.Member {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a := netip.MustParseAddr(s)
		p = netip.PrefixFrom(a, a.BitLen())
	}
	return contract.Member{Net: p}
}

// TestKernelAcceptsEveryKind writes a chain holding every criterion and
// action of the model, in both families, to the kernel.
func TestKernelAcceptsEveryKind(t *testing.T) {
	netlab.Require(t)
	if _, err := exec.LookPath("nft"); err != nil {
		netlab.Unavailable(t, "nft: %v", err)
	}
	for _, fam := range []int{4, 6} {
		r := &NetlinkRunner{}
		defer r.Close()
		tb := New(fam, r, Options{DispatchChains: map[string]bool{"cali-to-wl-dispatch": false}})
		tb.Replace("s:example", TypeNet, []contract.Member{mem("198.18.0.0/16"), mem("198.18.1.1"), mem("2001:db8::/64")})
		tb.Replace("n:example", TypeIPAndPort, []contract.Member{{Net: netip.MustParsePrefix("198.18.0.1/32"), Proto: 6, Port: 80},
			{Net: netip.MustParsePrefix("2001:db8::1/128"), Proto: 17, Port: 53}})
		rules := everyRule(func(a rs.Action) bool { // no NAT in a filter chain
			_, dnat := a.(rs.DNAT)
			_, snat := a.(rs.SNAT)
			return !dnat && !snat
		})
		f := tb.Layer("filter")
		f.UpdateChain(&rs.Chain{Name: "cali-x"})
		f.UpdateChain(&rs.Chain{Name: "cali-y"})
		f.UpdateChain(&rs.Chain{Name: "cali-all", Rules: rules})
		f.UpdateChain(&rs.Chain{Name: "cali-to-wl-dispatch", Rules: []rs.Rule{
			{Match: rs.Match{}.OutInterface("tap1"), Action: rs.Goto{Chain: "cali-x"}},
			{Match: rs.Match{}.OutInterface("tap2"), Action: rs.Goto{Chain: "cali-y"}},
			{Comment: []string{"Unknown interface"}, Action: rs.Drop{}}}})
		n := tb.Layer("nat")
		n.UpdateChain(&rs.Chain{Name: "cali-nat", Rules: []rs.Rule{
			{Match: rs.Match{}.Protocol(contract.Protocol{Name: "tcp", Num: 6}), Action: rs.DNAT{Addr: netip.MustParseAddr(pick(fam, "198.18.0.1", "2001:db8::1")), Port: 80}},
		}})
		n.UpdateChain(&rs.Chain{Name: "cali-snat", Rules: []rs.Rule{{Action: rs.SNAT{Addr: netip.MustParseAddr(pick(fam, "198.18.0.2", "2001:db8::2"))}}}})
		n.SetInserts("PREROUTING", []rs.Rule{{Action: rs.Jump{Chain: "cali-nat"}}})
		n.SetAppends("POSTROUTING", []rs.Rule{{Action: rs.Jump{Chain: "cali-snat"}}})
		f.SetInserts("FORWARD", []rs.Rule{{Action: rs.Jump{Chain: "cali-all"}}})
		if _, err := tb.Apply(context.Background()); err != nil {
			t.Fatalf("IPv%d: %v", fam, err)
		}
		out := nftList(t, fam)
		for _, want := range []string{"chain filter-cali-all", "chain filter-FORWARD", "oifname vmap @filter-cali-to-wl-dispatch", "hook forward priority filter", "cali:", "dport { 80, 8000-8080 }"} {
			if !strings.Contains(out, want) {
				t.Errorf("IPv%d: nft lacks %q:\n%s", fam, want, out)
			}
		}
		// A second apply after a fresh read writes nothing.
		tb.Invalidate()
		before := tb.Transactions
		if _, err := tb.Apply(context.Background()); err != nil || tb.Transactions != before {
			t.Errorf("IPv%d: re-apply wrote %d transactions (err %v)\n%s", fam, tb.Transactions-before, err, out)
		}
	}
}

func pick(fam int, v4, v6 string) string {
	if fam == 6 {
		return v6
	}
	return v4
}
