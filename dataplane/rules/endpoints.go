package rules

import (
	"sort"
	"strconv"
	"strings"

	"ocelot/contract"
	ipt "ocelot/dataplane/iptables"
)

// EndpointChains renders a workload's to (ingress) and from (egress)
// chains: conntrack, mark reset, encapsulation drops (egress), each tier's
// policies with Pass and the tier's end-of-tier drop, the profiles, and a
// final drop.
func (c *Config) EndpointChains(ep *contract.EndpointUpdate) []*ipt.Chain {
	return []*ipt.Chain{
		{Name: ToWorkloadChainName(ep.Name), Rules: c.endpointRules(ep, true)},
		{Name: FromWorkloadChainName(ep.Name), Rules: c.endpointRules(ep, false)},
	}
}

func (c *Config) endpointRules(ep *contract.EndpointUpdate, ingress bool) []ipt.Rule {
	m := c.Marks
	var r []ipt.Rule
	if c.FilterAllow == "RETURN" {
		r = append(r, ipt.Rule{Match: ipt.Match{}.ConntrackState("RELATED,ESTABLISHED"), Action: ipt.SetMark(m.Accept)})
	}
	r = append(r, ipt.Rule{Match: ipt.Match{}.ConntrackState("RELATED,ESTABLISHED"), Action: c.allow()})
	if !c.NoInvalidCheck {
		r = append(r, ipt.Rule{Match: ipt.Match{}.ConntrackState("INVALID"), Action: c.deny()})
	}
	r = append(r, ipt.Rule{Action: ipt.ClearMark(m.Accept | m.Pass)})
	if !ingress {
		if !c.AllowVXLAN {
			r = append(r, ipt.Rule{Comment: []string{"Drop VXLAN encapped packets originating in workloads"},
				Match: ipt.Match{}.Protocol("17").DestPorts(strconv.Itoa(c.VXLANPort)), Action: c.deny()})
		}
		if !c.AllowIPIP {
			r = append(r, ipt.Rule{Comment: []string{"Drop IPinIP encapped packets originating in workloads"},
				Match: ipt.Match{}.Protocol("4"), Action: c.deny()})
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
		r = append(r, ipt.Rule{Comment: []string{"Start of tier " + tier.Name}, Action: ipt.ClearMark(m.Pass)})
		for _, id := range pols {
			r = append(r,
				ipt.Rule{Match: ipt.Match{}.MarkClear(m.Pass), Action: ipt.Jump(PolicyChainName(id, ingress))},
				ipt.Rule{Comment: []string{"Return if policy accepted"}, Match: ipt.Match{}.MarkSet(m.Accept), Action: ipt.Return})
		}
		if tier.DefaultAction != "Pass" {
			r = append(r, ipt.Rule{Comment: []string{"End of tier " + tier.Name + ". " + c.denyVerb() + " if no policies passed packet"},
				Match: ipt.Match{}.MarkClear(m.Pass), Action: c.deny()})
		}
	}
	for _, p := range ep.ProfileIDs {
		r = append(r,
			ipt.Rule{Action: ipt.Jump(ProfileChainName(p, ingress))},
			ipt.Rule{Comment: []string{"Return if profile accepted"}, Match: ipt.Match{}.MarkSet(m.Accept), Action: ipt.Return})
	}
	r = append(r, ipt.Rule{Comment: []string{c.denyVerb() + " if no profiles matched"}, Action: c.deny()})
	return r
}

// DispatchChains send each workload interface to its own chains. Names are
// bucketed by the character after their common prefix; a bucket of one
// gets a direct goto, a larger bucket a child chain. Every dispatch chain
// ends by dropping: an interface with a workload prefix that no endpoint
// claims (a VM plugged before the agent knows it, or while it is down)
// fails closed.
func (c *Config) DispatchChains(ifaces []string) []*ipt.Chain {
	names := append([]string(nil), ifaces...)
	sort.Strings(names)
	names = dedupe(names)
	prefix := commonPrefix(names)
	from := &ipt.Chain{Name: ChainFromWorkloadDispatch}
	to := &ipt.Chain{Name: ChainToWorkloadDispatch}
	chains := []*ipt.Chain{from, to}
	unknown := ipt.Rule{Comment: []string{"Unknown interface"}, Action: c.deny()}
	for i := 0; i < len(names); {
		key := bucketKey(names[i], prefix)
		j := i
		for j < len(names) && bucketKey(names[j], prefix) == key {
			j++
		}
		bucket := names[i:j]
		if len(bucket) == 1 {
			n := bucket[0]
			from.Rules = append(from.Rules, ipt.Rule{Match: ipt.Match{}.InInterface(n), Action: ipt.Goto(FromWorkloadChainName(n))})
			to.Rules = append(to.Rules, ipt.Rule{Match: ipt.Match{}.OutInterface(n), Action: ipt.Goto(ToWorkloadChainName(n))})
		} else {
			childFrom := &ipt.Chain{Name: ChainFromWorkloadDispatch + "-" + key}
			childTo := &ipt.Chain{Name: ChainToWorkloadDispatch + "-" + key}
			for _, n := range bucket {
				childFrom.Rules = append(childFrom.Rules, ipt.Rule{Match: ipt.Match{}.InInterface(n), Action: ipt.Goto(FromWorkloadChainName(n))})
				childTo.Rules = append(childTo.Rules, ipt.Rule{Match: ipt.Match{}.OutInterface(n), Action: ipt.Goto(ToWorkloadChainName(n))})
			}
			childFrom.Rules = append(childFrom.Rules, unknown)
			childTo.Rules = append(childTo.Rules, unknown)
			from.Rules = append(from.Rules, ipt.Rule{Match: ipt.Match{}.InInterface(prefix + key + "+"), Action: ipt.Goto(childFrom.Name)})
			to.Rules = append(to.Rules, ipt.Rule{Match: ipt.Match{}.OutInterface(prefix + key + "+"), Action: ipt.Goto(childTo.Name)})
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
func (c *Config) FloatingIPChains(eps []*contract.EndpointUpdate) []*ipt.Chain {
	type nat struct{ in, ext string }
	var nats []nat
	for _, ep := range eps {
		list := ep.IPv4NAT
		if c.Family == 6 {
			list = ep.IPv6NAT
		}
		for _, n := range list {
			nats = append(nats, nat{n.Internal.String(), n.External.String()})
		}
	}
	sort.Slice(nats, func(i, j int) bool {
		if nats[i].ext != nats[j].ext {
			return nats[i].ext < nats[j].ext
		}
		return nats[i].in < nats[j].in
	})
	dnat := &ipt.Chain{Name: ChainFIPDNAT}
	snat := &ipt.Chain{Name: ChainFIPSNAT}
	for _, n := range nats {
		dnat.Rules = append(dnat.Rules, ipt.Rule{Match: ipt.Match{}.DestNet(n.ext), Action: ipt.DNAT(n.in, 0)})
		snat.Rules = append(snat.Rules, ipt.Rule{Match: ipt.Match{}.DestNet(n.in).SourceNet(n.in), Action: ipt.SNAT(n.ext)})
	}
	return []*ipt.Chain{dnat, snat}
}

// RPFSkipChain exempts each endpoint's AllowSpoofedSourcePrefixes from the
// reverse-path check.
func (c *Config) RPFSkipChain(eps []*contract.EndpointUpdate) *ipt.Chain {
	ch := &ipt.Chain{Name: ChainRPFSkip}
	sorted := append([]*contract.EndpointUpdate(nil), eps...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, ep := range sorted {
		for _, p := range ep.AllowSpoofedSourcePrefixes {
			if p.Addr().Is4() == (c.Family == 4) {
				ch.Rules = append(ch.Rules, ipt.Rule{Match: ipt.Match{}.InInterface(ep.Name).SourceNet(p.String()), Action: ipt.Accept})
			}
		}
	}
	return ch
}
