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
	return []*rs.Chain{
		{Name: ToWorkloadChainName(ep.Name), Rules: c.endpointRules(ep, true)},
		{Name: FromWorkloadChainName(ep.Name), Rules: c.endpointRules(ep, false)},
	}
}

func (c *Config) endpointRules(ep *contract.EndpointUpdate, ingress bool) []rs.Rule {
	m := c.Marks
	var limits contract.QoSLimits
	if ep.QoS != nil {
		limits = ep.QoS.Egress
		if ingress {
			limits = ep.QoS.Ingress
		}
	}
	var r []rs.Rule
	r = c.packetRateRules(r, limits, ingress)
	established := rs.Match{}.ConntrackState(rs.CtRelated, rs.CtEstablished)
	if c.FilterAllow == rs.Action(rs.Return{}) {
		r = append(r, rs.Rule{Match: established, Action: rs.SetMark{Value: m.Accept, Mask: m.Accept}})
	}
	r = append(r, rs.Rule{Match: established, Action: c.FilterAllow})
	if !c.NoInvalidCheck {
		r = append(r, rs.Rule{Match: rs.Match{}.ConntrackState(rs.CtInvalid), Action: c.Deny})
	}
	if limits.MaxConnections > 0 {
		// A connection's first packet beyond the limit is refused; the
		// connections it counts are this interface's, in this direction.
		r = append(r, rs.Rule{Comment: []string{"Reject connections over " + direction(ingress) + " connection limit"},
			Match: rs.Match{}.Protocol(tcp).TCPSyn().ConnLimitAbove(limits.MaxConnections), Action: rs.Reject{With: rs.RejectTCPReset}})
	}
	r = append(r, rs.Rule{Action: rs.SetMark{Mask: m.Accept | m.Pass}})
	if !ingress {
		if !c.AllowVXLAN {
			r = append(r, rs.Rule{Comment: []string{"Drop VXLAN encapped packets originating in workloads"},
				Match: rs.Match{}.Protocol(protoNum(17)).DestPorts(port(uint16(c.VXLANPort))), Action: c.Deny})
		}
		if !c.AllowIPIP {
			r = append(r, rs.Rule{Comment: []string{"Drop IPinIP encapped packets originating in workloads"},
				Match: rs.Match{}.Protocol(protoNum(4)), Action: c.Deny})
		}
	}
	for _, tier := range ep.Tiers {
		pols := tier.Egress
		if ingress {
			pols = tier.Ingress
		}
		if len(pols) == 0 {
			continue
		}
		r = append(r, rs.Rule{Comment: []string{"Start of tier " + tier.Name}, Action: rs.SetMark{Mask: m.Pass}})
		for _, id := range pols {
			r = append(r,
				rs.Rule{Match: rs.Match{}.MarkClear(m.Pass), Action: rs.Jump{Chain: PolicyChainName(id, ingress)}},
				rs.Rule{Comment: []string{"Return if policy accepted"}, Match: rs.Match{}.MarkSet(m.Accept), Action: rs.Return{}})
		}
		if tier.DefaultAction != "Pass" {
			r = append(r, c.dropLogRule(rs.Match{}.MarkClear(m.Pass), DropRef{Tier: tier.Name, Inbound: ingress, Rule: -1})...)
			r = append(r, rs.Rule{Comment: []string{"End of tier " + tier.Name + ". " + c.denyVerb() + " if no policies passed packet"},
				Match: rs.Match{}.MarkClear(m.Pass), Action: c.policyDeny()})
		}
	}
	for _, p := range ep.ProfileIDs {
		r = append(r,
			rs.Rule{Action: rs.Jump{Chain: ProfileChainName(p, ingress)}},
			rs.Rule{Comment: []string{"Return if profile accepted"}, Match: rs.Match{}.MarkSet(m.Accept), Action: rs.Return{}})
	}
	r = append(r, c.dropLogRule(nil, DropRef{Inbound: ingress, Rule: -1})...)
	r = append(r, rs.Rule{Comment: []string{c.denyVerb() + " if no profiles matched"}, Action: c.policyDeny()})
	return r
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
// fails closed.
func (c *Config) DispatchChains(ifaces []string) []*rs.Chain {
	names := append([]string(nil), ifaces...)
	sort.Strings(names)
	names = dedupe(names)
	prefix := commonPrefix(names)
	from := &rs.Chain{Name: ChainFromWorkloadDispatch}
	to := &rs.Chain{Name: ChainToWorkloadDispatch}
	chains := []*rs.Chain{from, to}
	unknown := rs.Rule{Comment: []string{"Unknown interface"}, Action: c.Deny}
	for i := 0; i < len(names); {
		key := bucketKey(names[i], prefix)
		j := i
		for j < len(names) && bucketKey(names[j], prefix) == key {
			j++
		}
		bucket := names[i:j]
		if len(bucket) == 1 {
			n := bucket[0]
			from.Rules = append(from.Rules, rs.Rule{Match: rs.Match{}.InInterface(n), Action: rs.Goto{Chain: FromWorkloadChainName(n)}})
			to.Rules = append(to.Rules, rs.Rule{Match: rs.Match{}.OutInterface(n), Action: rs.Goto{Chain: ToWorkloadChainName(n)}})
		} else {
			childFrom := &rs.Chain{Name: ChainFromWorkloadDispatch + "-" + key}
			childTo := &rs.Chain{Name: ChainToWorkloadDispatch + "-" + key}
			for _, n := range bucket {
				childFrom.Rules = append(childFrom.Rules, rs.Rule{Match: rs.Match{}.InInterface(n), Action: rs.Goto{Chain: FromWorkloadChainName(n)}})
				childTo.Rules = append(childTo.Rules, rs.Rule{Match: rs.Match{}.OutInterface(n), Action: rs.Goto{Chain: ToWorkloadChainName(n)}})
			}
			childFrom.Rules = append(childFrom.Rules, unknown)
			childTo.Rules = append(childTo.Rules, unknown)
			from.Rules = append(from.Rules, rs.Rule{Match: rs.Match{}.InInterface(prefix + key + "+"), Action: rs.Goto{Chain: childFrom.Name}})
			to.Rules = append(to.Rules, rs.Rule{Match: rs.Match{}.OutInterface(prefix + key + "+"), Action: rs.Goto{Chain: childTo.Name}})
			chains = append(chains, childFrom, childTo)
		}
		i = j
	}
	from.Rules = append(from.Rules, unknown)
	to.Rules = append(to.Rules, unknown)
	return chains
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
