package explain

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"ocelot/contract"
	"ocelot/dataplane/rules"
	rs "ocelot/dataplane/ruleset"
)

// The explanation and the render are written independently; here they
// must agree. Random policies, tiers and profiles are rendered by
// dataplane/rules into the neutral model, and a small interpreter of that
// model (marks, jumps, returns, sets) runs each random packet through the
// endpoint's chain; Explain, reading the same messages, must reach the
// same verdict. The functional tests do the same against the kernel.
func TestExplainAgreesWithTheRender(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	for seed := range seeds {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		f, cfg := randomState(r)
		chains := map[int]map[string]*rs.Chain{}
		for _, fam := range []int{4, 6} {
			c := *cfg
			c.Family = fam
			chains[fam] = map[string]*rs.Chain{}
			add := func(cs ...*rs.Chain) {
				for _, ch := range cs {
					chains[fam][ch.Name] = ch
				}
			}
			for _, ep := range f.eps {
				add(c.EndpointChains(ep)...)
			}
			for _, p := range f.policies {
				add(c.PolicyChains(p)...)
			}
			for _, p := range f.profiles {
				add(c.ProfileChains(p)...)
			}
		}
		f.settings.DropOverride = "Drop"
		if cfg.DropAccept {
			f.settings.DropOverride = "LogAndAccept"
		}
		for i := 0; i < 40; i++ {
			ep := f.eps[r.IntN(len(f.eps))]
			ingress := r.IntN(2) == 0
			p := randomPacket(r, ep, ingress)
			q := Flow{Src: p.src.String(), Dst: p.dst.String(), Protocol: fmt.Sprint(p.proto), SrcPort: p.sport, DstPort: p.dport}
			if p.icmpType >= 0 {
				q.ICMPType, q.ICMPCode = &p.icmpType, &p.icmpCode
			}
			a := Explain(f, Query{Flow: &q})
			if a.Error != "" {
				t.Fatalf("seed %d: %s", seed, a.Error)
			}
			var hop *Hop
			for i := range a.Flow.Hops {
				if a.Flow.Hops[i].Interface == ep.Name && (a.Flow.Hops[i].Direction == "ingress") == ingress {
					hop = &a.Flow.Hops[i]
				}
			}
			if hop == nil {
				t.Fatalf("seed %d: no hop through %s:\n%s", seed, ep.Name, text(a.Flow))
			}
			chain := rules.FromWorkloadChainName(ep.Name)
			if ingress {
				chain = rules.ToWorkloadChainName(ep.Name)
			}
			in := interp{chains: chains[p.family()], st: f, p: p, marks: cfg.Marks}
			got := in.endpoint(chain)
			if want := hop.Verdict == "allowed"; got != want {
				t.Fatalf("seed %d, packet %+v through %s: the rendered chains say allowed=%v, Explain says %s\n%s\nrendered trace:\n%s",
					seed, p, chain, got, hop.Verdict, text(a.Flow), in.trace)
			}
		}
	}
}

// interp runs a packet through chains of the neutral model.
type interp struct {
	chains map[string]*rs.Chain
	st     State
	p      packet
	marks  rules.Marks
	mark   uint32
	depth  int
	trace  string
}

// endpoint runs an endpoint chain as the dispatch chain's goto does and
// says whether the packet goes on (accepted, or returned with the accept
// mark, which the FORWARD chain's tail accepts).
func (in *interp) endpoint(chain string) bool {
	v := in.run(chain)
	return v == "ACCEPT" || (v == "RETURN" && in.mark&in.marks.Accept != 0)
}

// run evaluates a chain: "ACCEPT", "DROP", "REJECT", or "RETURN" (fell
// off or returned).
func (in *interp) run(name string) string {
	ch := in.chains[name]
	if ch == nil {
		panic("jump to missing chain " + name)
	}
	in.depth++
	defer func() { in.depth-- }()
	if in.depth > 10 {
		panic("loop")
	}
	for i, r := range ch.Rules {
		if r.Action == nil || !in.matches(r.Match) {
			continue
		}
		in.trace += fmt.Sprintf("  %s[%d] %T %+v\n", name, i, r.Action, r.Action)
		switch a := r.Action.(type) {
		case rs.Accept:
			return "ACCEPT"
		case rs.Drop:
			return "DROP"
		case rs.Reject:
			return "REJECT"
		case rs.Return:
			return "RETURN"
		case rs.SetMark:
			in.mark = in.mark&^a.Mask | a.Value
		case rs.Jump:
			if v := in.run(a.Chain); v != "RETURN" {
				return v
			}
		case rs.Goto:
			return in.run(a.Chain)
		case rs.Log, rs.NFLOG:
		default:
			panic(fmt.Sprintf("interp: action %T", a))
		}
	}
	return "RETURN"
}

func (in *interp) matches(m rs.Match) bool {
	for _, c := range m {
		if !in.criterion(c) {
			return false
		}
	}
	return true
}

func (in *interp) criterion(c rs.Criterion) bool {
	p := in.p
	side := func(d rs.Dir) (netip.Addr, uint16) {
		if d == rs.Src {
			return p.src, p.sport
		}
		return p.dst, p.dport
	}
	switch x := c.(type) {
	case rs.Mark:
		return (in.mark&x.Mask == x.Value) != x.Negate
	case rs.ConntrackState:
		return x.Negate // a new connection is in none of the states the rules name
	case rs.Protocol:
		return (x.Proto.Num == p.proto) != x.Negate
	case rs.Net:
		a, _ := side(x.Dir)
		return x.Net.Contains(a) != x.Negate
	case rs.Addr:
		a, _ := side(x.Dir)
		return (x.Addr == a) != x.Negate
	case rs.IPSet:
		a, _ := side(x.Dir)
		return in.st.InSet(x.ID, a, 0, 0) != x.Negate
	case rs.IPPortSet:
		a, port := side(x.Dir)
		return in.st.InSet(x.ID, a, p.proto, port) != x.Negate
	case rs.Ports:
		_, port := side(x.Dir)
		return portIn(port, x.Ports) != x.Negate
	case rs.ICMP:
		ok := p.icmpType == x.Type.Type && (x.Type.Code == nil || *x.Type.Code == p.icmpCode)
		return ok != x.Negate
	case rs.Limit, rs.PacketRate:
		return true // within every rate limit
	case rs.ConnLimit:
		return false // below every connection limit
	case rs.TCPFlags:
		// A new connection's first packet: SYN alone among the flags.
		return p.proto == 6 && rs.TCPSyn&x.Mask == x.Set
	}
	panic(fmt.Sprintf("interp: criterion %T", c))
}

// The random world: addresses, sets and ports from small pools so that
// rules and packets meet often.
var (
	pool4 = []string{"198.18.1.1", "198.18.1.2", "198.18.2.1", "198.18.2.200", "198.19.0.1"}
	pool6 = []string{"2001:db8::1", "2001:db8::2", "2001:db8:1::1"}
	nets4 = []string{"198.18.1.0/24", "198.18.0.0/16", "198.18.2.128/25", "198.19.0.1/32", "0.0.0.0/0"}
	nets6 = []string{"2001:db8::/64", "2001:db8::/32", "::/0"}
	pool  = []uint16{22, 53, 80, 443, 8080, 4789, 1000, 1500}
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func randomState(r *rand.Rand) (*fakeState, *rules.Config) {
	f := newFake()
	f.settings.HostAddrs = nil
	marks, _ := rules.MarksFromMask(0xffff0000)
	cfg := &rules.Config{Prefixes: []string{"tap"}, Marks: marks, FilterAllow: rs.Accept{}, MangleAllow: rs.Accept{}, Deny: rs.Drop{},
		EndpointToHost: rs.Drop{}, VXLANPort: 4789, LogPrefix: "calico-packet", AllowIPIP: r.IntN(2) == 0}
	f.settings.DropIPIP = !cfg.AllowIPIP
	if r.IntN(3) == 0 {
		cfg.DropLog = &rules.DropLog{Group: 20, Limit: rs.Limit{Count: 10, Per: rs.PerSecond, Burst: 20}, Size: 128}
	}
	cfg.DropAccept = r.IntN(4) == 0
	if r.IntN(3) == 0 {
		cfg.FilterAllow = rs.Return{}
	}
	// Sets: selector sets over addresses and named-port sets.
	for i := range 4 {
		id := fmt.Sprintf("s:%d", i)
		for _, a := range append(append([]string{}, pool4...), pool6...) {
			if r.IntN(2) == 0 {
				f.sets[id] = append(f.sets[id], contract.Member{Net: netip.PrefixFrom(netip.MustParseAddr(a), netip.MustParseAddr(a).BitLen())})
			}
		}
		nid := fmt.Sprintf("n:%d", i)
		for _, a := range pool4 {
			if r.IntN(2) == 0 {
				f.sets[nid] = append(f.sets[nid], contract.Member{Net: netip.PrefixFrom(netip.MustParseAddr(a), 32), Proto: pick(r, []uint8{6, 17}), Port: pick(r, pool)})
			}
		}
	}
	var ids []contract.PolicyID
	for i := range 5 {
		id := contract.PolicyID{Kind: "GlobalNetworkPolicy", Name: fmt.Sprintf("p%d", i)}
		ids = append(ids, id)
		f.policies[id] = &contract.PolicyUpdate{ID: id, Inbound: randomRules(r), Outbound: randomRules(r)}
	}
	for i := range 2 {
		id := fmt.Sprintf("prof%d", i)
		f.profiles[id] = &contract.ProfileUpdate{ID: id, Inbound: randomRules(r), Outbound: randomRules(r)}
	}
	for i := range 2 {
		ep := &contract.EndpointUpdate{ID: contract.EndpointID{Orchestrator: "openstack", WorkloadID: "ns/vm" + fmt.Sprint(i), EndpointID: fmt.Sprint("port", i)},
			Name: fmt.Sprint("tap", i), IPv4Nets: []netip.Prefix{netip.MustParsePrefix(pool4[i] + "/32")}, IPv6Nets: []netip.Prefix{netip.MustParsePrefix(pool6[i] + "/128")}}
		for t := range r.IntN(4) {
			tp := contract.TierPolicies{Name: fmt.Sprint("tier", t), DefaultAction: pick(r, []string{"Deny", "Pass"})}
			for _, id := range ids {
				switch r.IntN(4) {
				case 0:
					tp.Ingress = append(tp.Ingress, id)
				case 1:
					tp.Egress = append(tp.Egress, id)
				case 2:
					tp.Ingress, tp.Egress = append(tp.Ingress, id), append(tp.Egress, id)
				}
			}
			ep.Tiers = append(ep.Tiers, tp)
		}
		for p := range 2 {
			if r.IntN(2) == 0 {
				ep.ProfileIDs = append(ep.ProfileIDs, fmt.Sprint("prof", p))
			}
		}
		if r.IntN(3) == 0 {
			ep.QoS = &contract.QoSControls{Ingress: contract.QoSLimits{PacketRate: 100, PacketBurst: 5, MaxConnections: 10},
				Egress: contract.QoSLimits{MaxConnections: 3}}
		}
		f.eps = append(f.eps, ep)
	}
	return f, cfg
}

func randomRules(r *rand.Rand) []contract.Rule {
	var out []contract.Rule
	for range r.IntN(5) {
		out = append(out, randomRule(r))
	}
	return out
}

func randomRule(r *rand.Rand) contract.Rule {
	x := contract.Rule{Action: pick(r, []contract.Action{contract.ActionAllow, contract.ActionAllow, contract.ActionDeny, contract.ActionPass, contract.ActionLog})}
	if r.IntN(5) == 0 {
		x.IPVersion = pick(r, []int{4, 6})
	}
	protos := []*contract.Protocol{nil, tcp, udp, {Name: "icmp", Num: 1}, {Name: "icmpv6", Num: 58}}
	x.Protocol = pick(r, protos)
	if x.Protocol == nil && r.IntN(4) == 0 {
		x.NotProtocol = pick(r, protos[1:])
	}
	nets := func() []netip.Prefix {
		var out []netip.Prefix
		for range r.IntN(3) {
			if r.IntN(3) == 0 {
				out = append(out, netip.MustParsePrefix(pick(r, nets6)))
			} else {
				out = append(out, netip.MustParsePrefix(pick(r, nets4)))
			}
		}
		return out
	}
	if r.IntN(3) == 0 {
		x.SrcNets = nets()
	}
	if r.IntN(4) == 0 {
		x.NotSrcNets = nets()
	}
	if r.IntN(3) == 0 {
		x.DstNets = nets()
	}
	if r.IntN(4) == 0 {
		x.NotDstNets = nets()
	}
	sets := func() []string {
		var out []string
		for range 1 + r.IntN(2) {
			out = append(out, fmt.Sprintf("s:%d", r.IntN(4)))
		}
		return out
	}
	if r.IntN(3) == 0 {
		x.SrcIPSetIDs = sets()
	}
	if r.IntN(5) == 0 {
		x.NotSrcIPSetIDs = sets()
	}
	if r.IntN(4) == 0 {
		x.DstIPSetIDs = sets()
	}
	if r.IntN(5) == 0 {
		x.NotDstIPSetIDs = sets()
	}
	ports := func() []contract.PortRange {
		var out []contract.PortRange
		n := 1 + r.IntN(3)
		if r.IntN(6) == 0 {
			n = 12 // more than 15 slots with ranges: split into blocks
		}
		for range n {
			a := pick(r, pool)
			if r.IntN(3) == 0 {
				out = append(out, contract.PortRange{First: a, Last: a + uint16(r.IntN(600))})
			} else {
				out = append(out, contract.PortRange{First: a, Last: a})
			}
		}
		return out
	}
	if x.Protocol == tcp || x.Protocol == udp {
		if r.IntN(3) == 0 {
			x.DstPorts = ports()
		}
		if r.IntN(4) == 0 {
			x.SrcPorts = ports()
		}
		if r.IntN(5) == 0 {
			x.NotDstPorts = ports()
		}
		if r.IntN(6) == 0 {
			x.NotSrcPorts = ports()
		}
		if r.IntN(4) == 0 {
			x.DstNamedPortIPSetIDs = []string{fmt.Sprintf("n:%d", r.IntN(4))}
		}
		if r.IntN(6) == 0 {
			x.NotDstNamedPortIPSetIDs = []string{fmt.Sprintf("n:%d", r.IntN(4))}
		}
		if r.IntN(6) == 0 {
			x.SrcNamedPortIPSetIDs = []string{fmt.Sprintf("n:%d", r.IntN(4))}
		}
	}
	if x.Protocol != nil && (x.Protocol.Num == 1 || x.Protocol.Num == 58) {
		code := r.IntN(2)
		m := &contract.ICMPMatch{Type: pick(r, []int{0, 8, 128})}
		if r.IntN(2) == 0 {
			m.Code = &code
		}
		if r.IntN(2) == 0 {
			x.ICMP = m
		} else {
			x.NotICMP = m
		}
	}
	return x
}

// randomPacket is a packet to (ingress) or from ep, of either family.
func randomPacket(r *rand.Rand, ep *contract.EndpointUpdate, ingress bool) packet {
	p := packet{icmpType: -1, icmpCode: -1}
	var local netip.Addr
	var other string
	// The other end is never a local endpoint (pools' first two).
	if r.IntN(3) == 0 {
		local, other = ep.IPv6Nets[0].Addr(), pick(r, pool6[2:])
	} else {
		local, other = ep.IPv4Nets[0].Addr(), pick(r, pool4[2:])
	}
	if ingress {
		p.src, p.dst = netip.MustParseAddr(other), local
	} else {
		p.src, p.dst = local, netip.MustParseAddr(other)
	}
	p.proto = pick(r, []uint8{6, 6, 17, 1, 58, 4})
	if p.src.Is6() && p.proto == 1 {
		p.proto = 58
	}
	if p.src.Is4() && p.proto == 58 {
		p.proto = 1
	}
	switch p.proto {
	case 6, 17:
		p.sport, p.dport = pick(r, pool), pick(r, pool)
	case 1, 58:
		p.icmpType, p.icmpCode = pick(r, []int{0, 8, 128}), r.IntN(2)
	}
	return p
}
