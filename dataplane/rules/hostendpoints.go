package rules

import (
	"net/netip"

	"ocelot/contract"
	rs "ocelot/dataplane/ruleset"
)

// Host-endpoint chain names (Felix's).
const (
	ChainFromHostEndpoint = "cali-from-host-endpoint"
	ChainToHostEndpoint   = "cali-to-host-endpoint"
	ChainFromHEPForward   = "cali-from-hep-forward"
	ChainToHEPForward     = "cali-to-hep-forward"
	ChainFailsafeIn       = "cali-failsafe-in"
	ChainFailsafeOut      = "cali-failsafe-out"
)

// ToHostChainName and FromHostChainName name a host interface's chains
// for traffic leaving the host through it (cali-th-) and arriving
// through it (cali-fh-); the forward ones (cali-thfw-, cali-fhfw-) are
// for traffic the host forwards. The all-interfaces endpoint's are
// cali-th-* and so on, as Felix names them.
func ToHostChainName(iface string) string          { return LimitedName("cali-th-", iface) }
func FromHostChainName(iface string) string        { return LimitedName("cali-fh-", iface) }
func ToHostForwardChainName(iface string) string   { return LimitedName("cali-thfw-", iface) }
func FromHostForwardChainName(iface string) string { return LimitedName("cali-fhfw-", iface) }

// Failsafe is one failsafe port: traffic to Port over Protocol (tcp or
// udp), from (inbound) or to (outbound) Net when Net is valid, that no
// host-endpoint policy can block.
type Failsafe struct {
	Protocol contract.Protocol
	Net      netip.Prefix
	Port     uint16
}

// ForTable returns the configuration for rendering into a table: raw and
// mangle have no REJECT target, so their deny is DROP.
func (c *Config) ForTable(table string) *Config {
	if table == "filter" || c.Deny == rs.Action(rs.Drop{}) {
		return c
	}
	cc := *c
	cc.Deny = rs.Drop{}
	return &cc
}

// HostFilterChains renders a host interface's chains in the filter table:
// to and from the host (normal policy and profiles, after the failsafes)
// and forwarded through it (applyOnForward policy; without any, allowed).
func (c *Config) HostFilterChains(iface string, ep *contract.HostEndpointUpdate) []*rs.Chain {
	return []*rs.Chain{
		c.endpointChain(endpointChain{name: ToHostChainName(iface), tiers: ep.Tiers, profiles: ep.ProfileIDs,
			failsafe: ChainFailsafeOut, allow: c.FilterAllow, deny: c.Deny, failClosed: ep.FailClosed}),
		c.endpointChain(endpointChain{name: FromHostChainName(iface), tiers: ep.Tiers, profiles: ep.ProfileIDs, inbound: true,
			failsafe: ChainFailsafeIn, allow: c.FilterAllow, deny: c.Deny, failClosed: ep.FailClosed}),
		c.endpointChain(endpointChain{name: ToHostForwardChainName(iface), tiers: ep.ForwardTiers, kind: kindForward,
			allow: c.FilterAllow, deny: c.Deny, failClosed: ep.FailClosed}),
		c.endpointChain(endpointChain{name: FromHostForwardChainName(iface), tiers: ep.ForwardTiers, inbound: true, kind: kindForward,
			allow: c.FilterAllow, deny: c.Deny, failClosed: ep.FailClosed}),
	}
}

// HostMangleEgressChain renders a host interface's chain in the mangle
// table for traffic leaving through it after DNAT (normal egress policy
// and profiles). It returns rather than accepts, as Felix's does: the
// mangle table may still have work to do on allowed traffic.
func (c *Config) HostMangleEgressChain(iface string, ep *contract.HostEndpointUpdate) *rs.Chain {
	cm := c.ForTable("mangle")
	return cm.endpointChain(endpointChain{name: ToHostChainName(iface), tiers: ep.Tiers, profiles: ep.ProfileIDs,
		failsafe: ChainFailsafeOut, allow: rs.Return{}, deny: cm.Deny, failClosed: ep.FailClosed})
}

// HostMangleIngressChain renders a host interface's pre-DNAT chain in the
// mangle table: preDNAT policy on traffic arriving through it, before any
// DNAT rewrites its destination. Pre-DNAT policy never governs outgoing
// traffic.
func (c *Config) HostMangleIngressChain(iface string, ep *contract.HostEndpointUpdate) *rs.Chain {
	cm := c.ForTable("mangle")
	return cm.endpointChain(endpointChain{name: FromHostChainName(iface), tiers: ep.PreDNATTiers, inbound: true, kind: kindPreDNAT,
		failsafe: ChainFailsafeIn, allow: c.MangleAllow, deny: cm.Deny})
}

// HostRawChains render a host interface's untracked chains in the raw
// table, to and from it: doNotTrack policy, whose accepts also exempt the
// flow from conntrack.
func (c *Config) HostRawChains(iface string, ep *contract.HostEndpointUpdate) []*rs.Chain {
	cr := c.ForTable("raw")
	return []*rs.Chain{
		cr.endpointChain(endpointChain{name: ToHostChainName(iface), tiers: ep.UntrackedTiers, kind: kindUntracked,
			failsafe: ChainFailsafeOut, allow: rs.Accept{}, deny: cr.Deny}),
		cr.endpointChain(endpointChain{name: FromHostChainName(iface), tiers: ep.UntrackedTiers, inbound: true, kind: kindUntracked,
			failsafe: ChainFailsafeIn, allow: rs.Accept{}, deny: cr.Deny}),
	}
}

// FailsafeChains render the failsafe chains of a table: traffic to the
// inbound failsafe ports (from their nets) and to the outbound ones (to
// their nets) is accepted. In raw, where nothing is tracked yet, each
// chain also accepts the replies of the other direction's failsafe
// connections, by source port. Entries of the other family are left out.
func (c *Config) FailsafeChains(table string) []*rs.Chain {
	in := &rs.Chain{Name: ChainFailsafeIn}
	out := &rs.Chain{Name: ChainFailsafeOut}
	add := func(ch *rs.Chain, f Failsafe, portDir, netDir rs.Dir) {
		m := rs.Match{}.Protocol(f.Protocol).With(rs.Ports{Dir: portDir, Ports: []contract.PortRange{port(f.Port)}})
		if f.Net.IsValid() {
			if f.Net.Addr().Is4() != (c.Family == 4) {
				return
			}
			m = m.With(rs.Net{Dir: netDir, Net: f.Net})
		}
		ch.Rules = append(ch.Rules, rs.Rule{Match: m, Action: rs.Accept{}})
	}
	for _, f := range c.FailsafeIn {
		add(in, f, rs.Dst, rs.Src)
	}
	if table == "raw" {
		for _, f := range c.FailsafeOut {
			add(in, f, rs.Src, rs.Src)
		}
	}
	for _, f := range c.FailsafeOut {
		add(out, f, rs.Dst, rs.Dst)
	}
	if table == "raw" {
		for _, f := range c.FailsafeIn {
			add(out, f, rs.Src, rs.Dst)
		}
	}
	return []*rs.Chain{in, out}
}

// HostDispatch is which host interfaces a table's dispatch chains send
// to their chains: each named interface to its own, and, with All, every
// other one to the all-interfaces endpoint's (cali-fh-* and so on).
type HostDispatch struct {
	Ifaces []string
	All    bool
}

// HostDispatchChains render a table's host-endpoint dispatch chains:
//
//   - filter: from and to the host (cali-from-host-endpoint,
//     cali-to-host-endpoint) and forwarded (cali-from-hep-forward,
//     cali-to-hep-forward), over every resolved interface;
//   - mangle: from (pre-DNAT: pre over the interfaces with pre-DNAT
//     policy) and to (normal: normal over every resolved interface);
//   - raw: from and to (untracked: pre over the interfaces with untracked
//     policy; the all-interfaces endpoint has none, as in Felix);
//   - nat: none.
//
// An interface no endpoint governs falls through: host traffic is not
// policed there. Before sending everything else to the all-interfaces
// endpoint, a chain returns traffic of workload interfaces: a workload
// interface is never a host endpoint (Felix sends forwarded and pre-DNAT
// workload traffic to it).
func (c *Config) HostDispatchChains(table string, pre, normal HostDispatch) []*rs.Chain {
	tree := func(root string, in bool, target func(string) string, all bool) dispatch {
		d := dispatch{root: root, in: in, target: target}
		if all {
			for _, p := range c.Prefixes {
				d.end = append(d.end, rs.Rule{Comment: []string{"Skip host endpoint policy for traffic of workloads"},
					Match: d.match(p + "+"), Action: rs.Return{}})
			}
			d.end = append(d.end, rs.Rule{Action: rs.Goto{Chain: target(contract.AllInterfaces)}})
		}
		return d
	}
	switch table {
	case "filter":
		return append(
			dispatchChains(normal.Ifaces,
				tree(ChainFromHostEndpoint, true, FromHostChainName, normal.All),
				tree(ChainToHostEndpoint, false, ToHostChainName, normal.All)),
			dispatchChains(normal.Ifaces,
				tree(ChainFromHEPForward, true, FromHostForwardChainName, normal.All),
				tree(ChainToHEPForward, false, ToHostForwardChainName, normal.All))...)
	case "mangle":
		return append(
			dispatchChains(pre.Ifaces, tree(ChainFromHostEndpoint, true, FromHostChainName, pre.All)),
			dispatchChains(normal.Ifaces, tree(ChainToHostEndpoint, false, ToHostChainName, normal.All))...)
	case "raw":
		return dispatchChains(pre.Ifaces,
			tree(ChainFromHostEndpoint, true, FromHostChainName, false),
			tree(ChainToHostEndpoint, false, ToHostChainName, false))
	}
	return nil // nat has none
}

// HostEndpointDropRefs lists the default denials a host interface's
// normal and forward chains can log: the end of each tier that drops, and
// the end of the profiles.
func HostEndpointDropRefs(ep *contract.HostEndpointUpdate) []DropRef {
	if ep.FailClosed {
		return nil
	}
	var out []DropRef
	for _, in := range []bool{true, false} {
		for _, ts := range [][]contract.TierPolicies{ep.Tiers, ep.ForwardTiers} {
			out = append(out, EndpointDropRefs(&contract.EndpointUpdate{Tiers: ts}, in)...)
		}
	}
	return out
}
