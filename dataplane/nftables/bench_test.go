package nftables

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"ocelot/contract"
	rs "ocelot/dataplane/ruleset"
	"ocelot/internal/netlab"
)

var benchTCP = contract.Protocol{Name: "tcp", Num: 6}

// benchTable programs endpoints endpoint chains each jumping to jumps of
// policies policy chains, with a set of 50 members per policy: the shape
// of the dataplane's filter table.
func benchTable(b *testing.B, endpoints, policies, jumps int) (*Table, *NetlinkRunner) {
	netlab.Require(b)
	r := &NetlinkRunner{}
	b.Cleanup(r.Close)
	Remove(r, 4)
	tb := New(4, r, Options{DispatchChains: map[string]bool{"cali-to-wl-dispatch": false}})
	f := tb.Layer("filter")
	for p := 0; p < policies; p++ {
		var members []contract.Member
		for m := 0; m < 50; m++ {
			members = append(members, contract.Member{Net: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64 + byte(p>>8)&63, byte(p), byte(m)}), 32)})
		}
		tb.Replace(fmt.Sprintf("s:p%d", p), TypeNet, members)
		f.UpdateChain(benchPolicyChain(p, 80))
	}
	benchEndpoints(f, endpoints, policies, jumps)
	if _, err := tb.Apply(context.Background()); err != nil {
		b.Fatal(err)
	}
	return tb, r
}

// benchEndpoints adds the endpoints' chains, each jumping to jumps of the
// policies, and the dispatch chain that reaches them.
func benchEndpoints(f *Layer, endpoints, policies, jumps int) {
	disp := &rs.Chain{Name: "cali-to-wl-dispatch"}
	for e := 0; e < endpoints; e++ {
		var rules []rs.Rule
		for j := 0; j < jumps; j++ {
			rules = append(rules, rs.Rule{Match: rs.Match{}.MarkClear(0x20000), Action: rs.Jump{Chain: fmt.Sprintf("cali-pi-%d", (e*jumps+j)%policies)}},
				rs.Rule{Match: rs.Match{}.MarkSet(0x10000), Action: rs.Return{}})
		}
		f.UpdateChain(&rs.Chain{Name: fmt.Sprintf("cali-tw-tap%d", e), Rules: rules})
		disp.Rules = append(disp.Rules, rs.Rule{Match: rs.Match{}.OutInterface(fmt.Sprintf("tap%d", e)), Action: rs.Goto{Chain: fmt.Sprintf("cali-tw-tap%d", e)}})
	}
	f.UpdateChain(disp)
	f.SetInserts("FORWARD", []rs.Rule{{Action: rs.Jump{Chain: "cali-to-wl-dispatch"}}})
}

func benchPolicyChain(p int, port uint16) *rs.Chain {
	return &rs.Chain{Name: fmt.Sprintf("cali-pi-%d", p), Rules: []rs.Rule{
		{Match: rs.Match{}.Protocol(benchTCP).SourceIPSet(fmt.Sprintf("s:p%d", p)).DestPorts(rs.Port(port)), Action: rs.SetMark{Value: 0x10000, Mask: 0x10000}},
		{Match: rs.Match{}.MarkSet(0x10000), Action: rs.Return{}},
	}}
}

// BenchmarkKernelPolicyChange is one policy change as the driver writes
// it (flush and refill one chain, one transaction), on tables of growing
// size: the kernel validates the chains reachable from the hooks at each
// commit, so the cost follows the table, not the change.
func BenchmarkKernelPolicyChange(b *testing.B) {
	for _, sc := range []struct{ endpoints, policies, jumps int }{{0, 100, 0}, {50, 1000, 20}, {200, 1000, 20}, {200, 4000, 20}} {
		b.Run(fmt.Sprintf("endpoints=%d/policies=%d", sc.endpoints, sc.policies), func(b *testing.B) {
			tb, _ := benchTable(b, sc.endpoints, sc.policies, sc.jumps)
			i := 0
			for b.Loop() {
				tb.Layer("filter").UpdateChain(benchPolicyChain(3, uint16(81+i%2)))
				if _, err := tb.Apply(context.Background()); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkKernelMemberChange is one member joining or leaving a set.
func BenchmarkKernelMemberChange(b *testing.B) {
	tb, _ := benchTable(b, 200, 1000, 20)
	m := []contract.Member{{Net: netip.MustParsePrefix("100.99.0.1/32")}}
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			tb.AddMembers("s:p7", m)
		} else {
			tb.RemoveMembers("s:p7", m)
		}
		if _, err := tb.Apply(context.Background()); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkKernelColdStart is the first apply of a host's table into an
// empty kernel, at the shape of the 100k cloud of the end-to-end
// benchmark: 200 endpoints jumping to 1,200 policy chains (SSH from one
// set, a port from another), 800 sets of 20 addresses (the shape of one
// family; the agent writes two). Each iteration builds the driver anew
// and writes everything. (A rule with a port list costs the kernel an
// anonymous set: with a second port in each policy, the 1,200 of them
// cost the kernel more than the rest of the table, 0.5 s against 0.2.)
func BenchmarkKernelColdStart(b *testing.B) {
	netlab.Require(b)
	r := &NetlinkRunner{}
	b.Cleanup(r.Close)
	const endpoints, policies, sets, jumps = 200, 1200, 800, 6
	for b.Loop() {
		b.StopTimer()
		if _, err := Remove(r, 4); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		tb := New(4, r, Options{DispatchChains: map[string]bool{"cali-to-wl-dispatch": false}})
		f := tb.Layer("filter")
		for s := 0; s < sets; s++ {
			members := make([]contract.Member, 20)
			for m := range members {
				members[m] = contract.Member{Net: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64 + byte(s>>8)&63, byte(s), byte(m)}), 32)}
			}
			tb.Replace(fmt.Sprintf("s:p%d", s), TypeNet, members)
		}
		for p := 0; p < policies; p++ {
			f.UpdateChain(&rs.Chain{Name: fmt.Sprintf("cali-pi-%d", p), Rules: []rs.Rule{
				{Match: rs.Match{}.Protocol(benchTCP).SourceIPSet(fmt.Sprintf("s:p%d", p%sets)).DestPorts(rs.Port(22)), Action: rs.SetMark{Value: 0x10000, Mask: 0x10000}},
				{Match: rs.Match{}.Protocol(benchTCP).SourceIPSet(fmt.Sprintf("s:p%d", (p+1)%sets)).DestPorts(rs.Port(80)), Action: rs.SetMark{Value: 0x10000, Mask: 0x10000}},
				{Match: rs.Match{}.MarkSet(0x10000), Action: rs.Return{}},
			}})
		}
		benchEndpoints(f, endpoints, policies, jumps)
		if _, err := tb.Apply(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
