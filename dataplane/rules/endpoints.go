package rules

import (
	"sort"
	"strings"

	"ocelot/contract"
	rs "ocelot/dataplane/ruleset"
)

// EndpointChains renders a workload's to (ingress) and from (egress)
// chains: the packet-rate limit (QoS), conntrack, the connection limit
// (QoS), mark reset, encapsulation drops (egress), each tier's policies
// with Pass and the tier's end-of-tier drop, the profiles, and a final
// drop.
func (c *Config) EndpointChains(ep *contract.EndpointUpdate) []*rs.Chain {
	var in, out contract.QoSLimits
	if ep.QoS != nil {
		in, out = ep.QoS.Ingress, ep.QoS.Egress
	}
	return []*rs.Chain{
		c.endpointChain(endpointChain{name: ToWorkloadChainName(ep.Name), tiers: ep.Tiers, profiles: ep.ProfileIDs,
			inbound: true, allow: c.FilterAllow, deny: c.Deny, qos: in}),
		c.endpointChain(endpointChain{name: FromWorkloadChainName(ep.Name), tiers: ep.Tiers, profiles: ep.ProfileIDs,
			allow: c.FilterAllow, deny: c.Deny, encapDrops: true, qos: out}),
	}
}

// chainKind is what an endpoint chain enforces, as Felix distinguishes
// them: normal policy (tiers, then profiles, then a drop); untracked
// policy (raw: an accept also exempts the flow from conntrack, nothing is
// dropped at the end); pre-DNAT policy (mangle, nothing dropped at the
// end); forward policy (applyOnForward: tiers only, and with none the
// traffic is allowed).
type chainKind int

const (
	kindNormal chainKind = iota
	kindUntracked
	kindPreDNAT
	kindForward
)

// endpointChain describes one endpoint chain.
type endpointChain struct {
	name       string
	tiers      []contract.TierPolicies
	profiles   []string
	inbound    bool // the tiers' ingress policies and the inbound chains; else egress and outbound
	kind       chainKind
	failsafe   string    // chain to jump to before any policy ("": none)
	allow      rs.Action // verdict for established flows
	deny       rs.Action
	encapDrops bool               // drop VXLAN and IPIP unless allowed (traffic from workloads)
	qos        contract.QoSLimits // a workload's packet-rate and connection limits in this direction
	failClosed bool               // deny everything after the failsafes (an invalid host endpoint)
}

// endpointChain renders an endpoint chain as Felix does: the packet-rate
// limit, conntrack (tracked kinds), the connection limit, failsafes, mark
// reset, encapsulation drops, each tier's policies with Pass and the
// tier's end-of-tier drop (normal and forward), then profiles and a final
// drop (normal), or an allow for forwarded traffic no forward policy
// governs.
func (c *Config) endpointChain(e endpointChain) *rs.Chain {
	m := c.Marks
	var r []rs.Rule
	r = c.packetRateRules(r, e.qos, e.inbound)
	if e.kind != kindUntracked {
		established := rs.Match{}.ConntrackState(rs.CtRelated, rs.CtEstablished)
		if e.allow != rs.Action(rs.Accept{}) {
			r = append(r, rs.Rule{Match: established, Action: rs.SetMark{Value: m.Accept, Mask: m.Accept}})
		}
		r = append(r, rs.Rule{Match: established, Action: e.allow})
		if !c.NoInvalidCheck {
			r = append(r, rs.Rule{Match: rs.Match{}.ConntrackState(rs.CtInvalid), Action: e.deny})
		}
	}
	if e.qos.MaxConnections > 0 {
		// A connection's first packet beyond the limit is refused; the
		// connections it counts are this interface's, in this direction.
		r = append(r, rs.Rule{Comment: []string{"Reject connections over " + direction(e.inbound) + " connection limit"},
			Match: rs.Match{}.Protocol(tcp).TCPSyn().ConnLimitAbove(e.qos.MaxConnections), Action: rs.Reject{With: rs.RejectTCPReset}})
	}
	if e.failsafe != "" {
		r = append(r, rs.Rule{Action: rs.Jump{Chain: e.failsafe}})
	}
	if e.failClosed {
		return &rs.Chain{Name: e.name, Rules: append(r, rs.Rule{Comment: []string{verb(e.deny) + ": host endpoint invalid (fail closed)"}, Action: e.deny})}
	}
	r = append(r, rs.Rule{Action: rs.SetMark{Mask: m.Accept | m.Pass}})
	if e.encapDrops {
		if !c.AllowVXLAN {
			r = append(r, rs.Rule{Comment: []string{"Drop VXLAN encapped packets originating in workloads"},
				Match: rs.Match{}.Protocol(protoNum(17)).DestPorts(port(uint16(c.VXLANPort))), Action: e.deny})
		}
		if !c.AllowIPIP {
			r = append(r, rs.Rule{Comment: []string{"Drop IPinIP encapped packets originating in workloads"},
				Match: rs.Match{}.Protocol(protoNum(4)), Action: e.deny})
		}
	}
	for _, tier := range e.tiers {
		pols := tier.Egress
		if e.inbound {
			pols = tier.Ingress
		}
		if len(pols) == 0 {
			continue
		}
		r = append(r, rs.Rule{Comment: []string{"Start of tier " + tier.Name}, Action: rs.SetMark{Mask: m.Pass}})
		for _, id := range pols {
			r = append(r, rs.Rule{Match: rs.Match{}.MarkClear(m.Pass), Action: rs.Jump{Chain: PolicyChainName(id, e.inbound)}})
			if e.kind == kindUntracked {
				r = append(r, rs.Rule{Match: rs.Match{}.MarkSet(m.Accept), Action: rs.NoTrack{}})
			}
			r = append(r, rs.Rule{Comment: []string{"Return if policy accepted"}, Match: rs.Match{}.MarkSet(m.Accept), Action: rs.Return{}})
		}
		if (e.kind == kindNormal || e.kind == kindForward) && tier.DefaultAction != "Pass" {
			r = append(r, c.dropLogRule(rs.Match{}.MarkClear(m.Pass), DropRef{Tier: tier.Name, Inbound: e.inbound, Rule: -1})...)
			r = append(r, rs.Rule{Comment: []string{"End of tier " + tier.Name + ". " + verb(e.deny) + " if no policies passed packet"},
				Match: rs.Match{}.MarkClear(m.Pass), Action: c.policyVerdict(e.deny)})
		}
	}
	if len(e.tiers) == 0 && e.kind == kindForward {
		r = append(r,
			rs.Rule{Comment: []string{"Allow forwarded traffic by default"}, Action: rs.SetMark{Value: m.Accept, Mask: m.Accept}},
			rs.Rule{Comment: []string{"Return for accepted forward traffic"}, Action: rs.Return{}})
	}
	if e.kind == kindNormal {
		for _, p := range e.profiles {
			r = append(r,
				rs.Rule{Action: rs.Jump{Chain: ProfileChainName(p, e.inbound)}},
				rs.Rule{Comment: []string{"Return if profile accepted"}, Match: rs.Match{}.MarkSet(m.Accept), Action: rs.Return{}})
		}
		r = append(r, c.dropLogRule(nil, DropRef{Inbound: e.inbound, Rule: -1})...)
		r = append(r, rs.Rule{Comment: []string{verb(e.deny) + " if no profiles matched"}, Action: c.policyVerdict(e.deny)})
	}
	return &rs.Chain{Name: e.name, Rules: r}
}

// packetRateRules limit the packets of one direction, established or not,
// as Felix does: a packet within the rate sets the scratch mark; one
// without it is dropped. The mark is cleared before and after, so nothing
// downstream sees it.
func (c *Config) packetRateRules(r []rs.Rule, limits contract.QoSLimits, ingress bool) []rs.Rule {
	if limits.PacketRate == 0 {
		return r
	}
	dir, s0 := direction(ingress), c.Marks.Scratch0
	clear := rs.Rule{Comment: []string{"Clear " + dir + " packet rate limit mark"}, Action: rs.SetMark{Mask: s0}}
	return append(r, clear,
		rs.Rule{Comment: []string{"Mark packets within " + dir + " packet rate limit"},
			Match: rs.Match{}.WithinPacketRate(limits.PacketRate, limits.PacketBurst), Action: rs.SetMark{Value: s0, Mask: s0}},
		rs.Rule{Comment: []string{"Drop packets over " + dir + " packet rate limit"},
			Match: rs.Match{}.With(rs.Mark{Value: s0, Mask: s0, Negate: true}), Action: rs.Drop{}},
		clear)
}

// direction names the endpoint's direction: ingress is to the VM.
func direction(ingress bool) string {
	if ingress {
		return "ingress"
	}
	return "egress"
}

// DispatchChains send each workload interface to its own chains. Names are
// bucketed by the character after their common prefix; a bucket of one
// gets a direct goto, a larger bucket a child chain. Every dispatch chain
// ends by dropping: an interface with a workload prefix that no endpoint
// claims (a VM plugged before the agent knows it, or while it is down)
// fails closed. With FlatDispatch there are no buckets: one rule per
// interface, in name order.
func (c *Config) DispatchChains(ifaces []string) []*rs.Chain {
	unknown := []rs.Rule{{Comment: []string{"Unknown interface"}, Action: c.Deny}}
	return dispatchChains(ifaces,
		dispatch{root: ChainFromWorkloadDispatch, in: true, target: FromWorkloadChainName, end: unknown, flat: c.FlatDispatch},
		dispatch{root: ChainToWorkloadDispatch, target: ToWorkloadChainName, end: unknown, flat: c.FlatDispatch})
}

// dispatch is one dispatch tree: its root chain, whether it matches the
// input interface (else the output one), the chain each interface goes
// to, and the rules that end the root and each child chain.
type dispatch struct {
	root   string
	in     bool
	target func(iface string) string
	end    []rs.Rule
	flat   bool // no buckets: one rule per interface, in name order (FlatDispatch)
}

func (d dispatch) match(iface string) rs.Match {
	if d.in {
		return rs.Match{}.InInterface(iface)
	}
	return rs.Match{}.OutInterface(iface)
}

// dispatchChains renders dispatch trees over the same interfaces: the
// roots, then each bucket's children in the trees' order.
func dispatchChains(ifaces []string, trees ...dispatch) []*rs.Chain {
	names := append([]string(nil), ifaces...)
	sort.Strings(names)
	names = dedupe(names)
	prefix := commonPrefix(names)
	roots := make([]*rs.Chain, len(trees))
	var children []*rs.Chain
	for i, d := range trees {
		roots[i] = &rs.Chain{Name: d.root}
	}
	for i := 0; i < len(names); {
		key := bucketKey(names[i], prefix)
		j := i
		for j < len(names) && bucketKey(names[j], prefix) == key {
			j++
		}
		bucket := names[i:j]
		if trees[0].flat {
			bucket, j = names[i:i+1], i+1
		}
		for t, d := range trees {
			if len(bucket) == 1 {
				roots[t].Rules = append(roots[t].Rules, rs.Rule{Match: d.match(bucket[0]), Action: rs.Goto{Chain: d.target(bucket[0])}})
				continue
			}
			child := &rs.Chain{Name: d.root + "-" + key}
			for _, n := range bucket {
				child.Rules = append(child.Rules, rs.Rule{Match: d.match(n), Action: rs.Goto{Chain: d.target(n)}})
			}
			child.Rules = append(child.Rules, d.end...)
			roots[t].Rules = append(roots[t].Rules, rs.Rule{Match: d.match(prefix + key + "+"), Action: rs.Goto{Chain: child.Name}})
			children = append(children, child)
		}
		i = j
	}
	for t, d := range trees {
		roots[t].Rules = append(roots[t].Rules, d.end...)
	}
	return append(roots, children...)
}

// bucketKey is the character after the common prefix ("" for a name equal
// to the prefix, which forms its own bucket).
func bucketKey(name, prefix string) string {
	if len(name) == len(prefix) {
		return ""
	}
	return name[len(prefix) : len(prefix)+1]
}

func commonPrefix(names []string) string {
	if len(names) == 0 {
		return ""
	}
	p := names[0]
	for _, n := range names[1:] {
		for !strings.HasPrefix(n, p) {
			p = p[:len(p)-1]
		}
	}
	return p
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// FloatingIPChains render the 1:1 NATs of local endpoints (OpenStack
// floating IPs): DNAT from the external address, and SNAT for a VM that
// talks to its own floating IP.
func (c *Config) FloatingIPChains(eps []*contract.EndpointUpdate) []*rs.Chain {
	var nats []contract.NAT
	for _, ep := range eps {
		if c.Family == 6 {
			nats = append(nats, ep.IPv6NAT...)
		} else {
			nats = append(nats, ep.IPv4NAT...)
		}
	}
	// Sorted by the addresses' text, as they have always been ordered.
	sort.Slice(nats, func(i, j int) bool {
		if a, b := nats[i].External.String(), nats[j].External.String(); a != b {
			return a < b
		}
		return nats[i].Internal.String() < nats[j].Internal.String()
	})
	dnat := &rs.Chain{Name: ChainFIPDNAT}
	snat := &rs.Chain{Name: ChainFIPSNAT}
	for _, n := range nats {
		dnat.Rules = append(dnat.Rules, rs.Rule{Match: rs.Match{}.DestAddr(n.External), Action: rs.DNAT{Addr: n.Internal}})
		snat.Rules = append(snat.Rules, rs.Rule{Match: rs.Match{}.DestAddr(n.Internal).SourceAddr(n.Internal), Action: rs.SNAT{Addr: n.External}})
	}
	return []*rs.Chain{dnat, snat}
}

// RPFSkipChain exempts each endpoint's AllowSpoofedSourcePrefixes from the
// reverse-path check.
func (c *Config) RPFSkipChain(eps []*contract.EndpointUpdate) *rs.Chain {
	ch := &rs.Chain{Name: ChainRPFSkip}
	sorted := append([]*contract.EndpointUpdate(nil), eps...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, ep := range sorted {
		for _, p := range ep.AllowSpoofedSourcePrefixes {
			if p.Addr().Is4() == (c.Family == 4) {
				ch.Rules = append(ch.Rules, rs.Rule{Match: rs.Match{}.InInterface(ep.Name).SourceNet(p), Action: rs.Accept{}})
			}
		}
	}
	return ch
}
