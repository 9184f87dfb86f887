package dataplane

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	"ocelot/contract"
	ipt "ocelot/dataplane/iptables"
	"ocelot/dataplane/rules"
)

// chainSource says what a referenced policy or profile chain renders from.
type chainSource struct {
	policy  *contract.PolicyID
	profile string
	inbound bool
}

// state is the managers' view: what calc asked for, and what the next
// apply must redo.
type state struct {
	calcInSync, ifacesSynced, appliedOnce bool
	needsApply                            bool // a previous apply failed somewhere

	endpoints  map[contract.EndpointID]*contract.EndpointUpdate
	ifaceOwner map[string]contract.EndpointID // interface -> the endpoint that owns it
	policies   map[contract.PolicyID]*contract.PolicyUpdate
	profiles   map[string]*contract.ProfileUpdate

	chainRefs   map[string]int // policy/profile chain -> endpoints referring to it
	chainSource map[string]chainSource

	// For conntrack cleanup: who uses what.
	setPolicies map[string]map[string]struct{}              // set ID -> policy/profile chains using it
	chainEPs    map[string]map[contract.EndpointID]struct{} // policy/profile chain -> endpoints
	flushIPs    map[netip.Addr]struct{}                     // forget every flow of these addresses
	flushPairs  map[[2]netip.Addr]struct{}                  // forget flows between these two

	dispatchDirty, fipDirty, rpfDirty bool

	ifaces        map[string]ifaceInfo
	sysctlPending map[string]struct{}
	sysctlFailed  map[string]bool
	statusDirty   bool
	reported      map[contract.EndpointID]string
}

type ifaceInfo struct {
	index   int
	up      bool
	running bool
}

func (s *state) init() {
	s.endpoints = map[contract.EndpointID]*contract.EndpointUpdate{}
	s.ifaceOwner = map[string]contract.EndpointID{}
	s.policies = map[contract.PolicyID]*contract.PolicyUpdate{}
	s.profiles = map[string]*contract.ProfileUpdate{}
	s.chainRefs = map[string]int{}
	s.chainSource = map[string]chainSource{}
	s.setPolicies = map[string]map[string]struct{}{}
	s.chainEPs = map[string]map[contract.EndpointID]struct{}{}
	s.flushIPs = map[netip.Addr]struct{}{}
	s.flushPairs = map[[2]netip.Addr]struct{}{}
	s.ifaces = map[string]ifaceInfo{}
	s.sysctlPending = map[string]struct{}{}
	s.sysctlFailed = map[string]bool{}
	s.reported = map[contract.EndpointID]string{}
}

// onMessages applies calc messages to the desired state. Cheap: no kernel
// I/O; the drivers do the work at the next apply.
func (d *Dataplane) onMessages(msgs []contract.Message) {
	batchSize.Observe(float64(len(msgs)))
	for _, m := range msgs {
		switch x := m.(type) {
		case contract.IPSetUpdate:
			messages.WithLabelValues("IPSetUpdate").Inc()
			for _, f := range d.families {
				f.sets.Replace(x.ID, string(x.Type), membersOf(x.Members, f.v))
			}
		case contract.IPSetDelta:
			messages.WithLabelValues("IPSetDelta").Inc()
			for _, f := range d.families {
				f.sets.AddMembers(x.ID, membersOf(x.Added, f.v))
				f.sets.RemoveMembers(x.ID, membersOf(x.Removed, f.v))
			}
			d.forgetFlowsOfRemovedMembers(x)
		case contract.IPSetRemove:
			messages.WithLabelValues("IPSetRemove").Inc()
			for _, f := range d.families {
				f.sets.Remove(x.ID)
			}
		case contract.PolicyUpdate:
			messages.WithLabelValues("PolicyUpdate").Inc()
			d.onPolicy(&x)
		case contract.PolicyRemove:
			messages.WithLabelValues("PolicyRemove").Inc()
			d.dropChainSources(rules.PolicyChain(x.ID, true), rules.PolicyChain(x.ID, false))
			delete(d.st.policies, x.ID)
		case contract.ProfileUpdate:
			messages.WithLabelValues("ProfileUpdate").Inc()
			d.onProfile(&x)
		case contract.ProfileRemove:
			messages.WithLabelValues("ProfileRemove").Inc()
			d.dropChainSources(rules.ProfileChain(x.ID, true), rules.ProfileChain(x.ID, false))
			delete(d.st.profiles, x.ID)
		case contract.EndpointUpdate:
			messages.WithLabelValues("EndpointUpdate").Inc()
			d.onEndpoint(&x)
		case contract.EndpointRemove:
			messages.WithLabelValues("EndpointRemove").Inc()
			d.removeEndpoint(x.ID)
		case contract.InSync:
			messages.WithLabelValues("InSync").Inc()
			d.st.calcInSync = true
		default:
			// The contract's set of types is closed; reaching here is a bug
			// in this switch, and dropping the message silently could leave
			// a rule in force that calc removed.
			panic(fmt.Sprintf("dataplane: unhandled contract message %T", m))
		}
	}
}

func membersOf(ms []contract.Member, family int) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		if m.Is6() == (family == 6) {
			out = append(out, m.String())
		}
	}
	return out
}

// usedSets lists the IP sets a rule list refers to.
func usedSets(rs []contract.Rule) []string {
	var out []string
	for _, r := range rs {
		for _, l := range [][]string{r.SrcIPSetIDs, r.NotSrcIPSetIDs, r.DstIPSetIDs, r.NotDstIPSetIDs,
			r.SrcNamedPortIPSetIDs, r.NotSrcNamedPortIPSetIDs, r.DstNamedPortIPSetIDs, r.NotDstNamedPortIPSetIDs} {
			out = append(out, l...)
		}
	}
	return out
}

// indexSets records which sets a chain's rules use, for conntrack cleanup.
func (d *Dataplane) indexSets(chain string, old, new []contract.Rule) {
	for _, id := range usedSets(old) {
		if m := d.st.setPolicies[id]; m != nil {
			delete(m, chain)
			if len(m) == 0 {
				delete(d.st.setPolicies, id)
			}
		}
	}
	for _, id := range usedSets(new) {
		if d.st.setPolicies[id] == nil {
			d.st.setPolicies[id] = map[string]struct{}{}
		}
		d.st.setPolicies[id][chain] = struct{}{}
	}
}

func (d *Dataplane) onPolicy(u *contract.PolicyUpdate) {
	old := d.st.policies[u.ID]
	d.st.policies[u.ID] = u
	id := u.ID
	for _, inbound := range []bool{true, false} {
		var oldRules []contract.Rule
		if old != nil {
			oldRules = direction(inbound, old.Inbound, old.Outbound)
		}
		d.updateRuleChain(rules.PolicyChain(id, inbound), chainSource{policy: &id, inbound: inbound},
			old != nil, oldRules, direction(inbound, u.Inbound, u.Outbound))
	}
}

func (d *Dataplane) onProfile(u *contract.ProfileUpdate) {
	old := d.st.profiles[u.ID]
	d.st.profiles[u.ID] = u
	for _, inbound := range []bool{true, false} {
		var oldRules []contract.Rule
		if old != nil {
			oldRules = direction(inbound, old.Inbound, old.Outbound)
		}
		d.updateRuleChain(rules.ProfileChain(u.ID, inbound), chainSource{profile: u.ID, inbound: inbound},
			old != nil, oldRules, direction(inbound, u.Inbound, u.Outbound))
	}
}

// updateRuleChain records a policy or profile chain's rules, keeps the
// set index in step and, when endpoints use the chain, reprograms it and
// forgets the flows its old rules may have allowed.
func (d *Dataplane) updateRuleChain(name string, src chainSource, existed bool, oldRules, newRules []contract.Rule) {
	d.st.chainSource[name] = src
	d.indexSets(name, oldRules, newRules)
	if d.st.chainRefs[name] > 0 {
		d.installChain(name)
		if existed && !reflect.DeepEqual(oldRules, newRules) {
			d.forgetFlowsOfChain(name)
		}
	}
}

func direction(inbound bool, in, out []contract.Rule) []contract.Rule {
	if inbound {
		return in
	}
	return out
}

func (d *Dataplane) dropChainSources(names ...string) {
	for _, name := range names {
		d.indexSets(name, d.rulesOf(d.st.chainSource[name]), nil)
		delete(d.st.chainSource, name)
		if d.st.chainRefs[name] == 0 {
			for _, f := range d.families {
				f.filter.RemoveChain(name)
			}
		}
	}
}

func (d *Dataplane) rulesOf(src chainSource) []contract.Rule {
	switch {
	case src.policy != nil:
		if p := d.st.policies[*src.policy]; p != nil {
			if src.inbound {
				return p.Inbound
			}
			return p.Outbound
		}
	case src.profile != "":
		if p := d.st.profiles[src.profile]; p != nil {
			if src.inbound {
				return p.Inbound
			}
			return p.Outbound
		}
	}
	return nil
}

// installChain renders a referenced policy or profile chain into the
// filter tables (only referenced chains are programmed, as Felix).
func (d *Dataplane) installChain(name string) {
	src, ok := d.st.chainSource[name]
	if !ok {
		return // referenced before calc sent it: calc's ordering makes this transient
	}
	for _, f := range d.families {
		var chains []*ipt.Chain
		switch {
		case src.policy != nil:
			if p := d.st.policies[*src.policy]; p != nil {
				chains = f.rules.PolicyChains(p)
			}
		default:
			if p := d.st.profiles[src.profile]; p != nil {
				chains = f.rules.ProfileChains(p)
			}
		}
		for _, ch := range chains {
			if ch.Name == name {
				f.filter.UpdateChain(ch)
			}
		}
	}
}

// chainsOf lists the policy and profile chains an endpoint refers to.
func chainsOf(ep *contract.EndpointUpdate) []string {
	if ep == nil {
		return nil
	}
	var out []string
	for _, t := range ep.Tiers {
		for _, id := range t.Ingress {
			out = append(out, rules.PolicyChain(id, true))
		}
		for _, id := range t.Egress {
			out = append(out, rules.PolicyChain(id, false))
		}
	}
	for _, p := range ep.ProfileIDs {
		out = append(out, rules.ProfileChain(p, true), rules.ProfileChain(p, false))
	}
	return out
}

func (d *Dataplane) ref(name string, id contract.EndpointID) {
	d.st.chainRefs[name]++
	if d.st.chainEPs[name] == nil {
		d.st.chainEPs[name] = map[contract.EndpointID]struct{}{}
	}
	d.st.chainEPs[name][id] = struct{}{}
	if d.st.chainRefs[name] == 1 {
		d.installChain(name)
	}
}

func (d *Dataplane) unref(name string, id contract.EndpointID) {
	d.st.chainRefs[name]--
	delete(d.st.chainEPs[name], id)
	if d.st.chainRefs[name] <= 0 {
		delete(d.st.chainRefs, name)
		delete(d.st.chainEPs, name)
		for _, f := range d.families {
			f.filter.RemoveChain(name)
		}
	}
}

func (d *Dataplane) onEndpoint(u *contract.EndpointUpdate) {
	old := d.st.endpoints[u.ID]
	for _, name := range chainsOf(u) {
		d.ref(name, u.ID)
	}
	for _, name := range chainsOf(old) {
		d.unref(name, u.ID)
	}
	d.st.endpoints[u.ID] = u
	if old != nil && old.Name != u.Name {
		d.releaseInterface(old)
	}
	if owner, taken := d.st.ifaceOwner[u.Name]; !taken || endpointLess(u.ID, owner) || owner == u.ID {
		d.st.ifaceOwner[u.Name] = u.ID
	} else {
		d.log.Warn("two endpoints claim one interface; the first by ID owns it", "iface", u.Name, "owner", owner.String(), "shadowed", u.ID.String())
	}
	if d.st.ifaceOwner[u.Name] == u.ID {
		for _, f := range d.families {
			for _, ch := range f.rules.EndpointChains(u) {
				f.filter.UpdateChain(ch)
			}
		}
		d.routes.Set(u.Name, d.routedNets(u), u.MAC)
		d.routes.SetUp(u.Name, d.st.ifaces[u.Name].running)
	}
	if old == nil || old.Name != u.Name {
		d.st.dispatchDirty = true
	}
	if old == nil || !slices.Equal(old.IPv4NAT, u.IPv4NAT) || !slices.Equal(old.IPv6NAT, u.IPv6NAT) {
		d.st.fipDirty = true
	}
	if old == nil || !slices.Equal(old.AllowSpoofedSourcePrefixes, u.AllowSpoofedSourcePrefixes) {
		d.st.rpfDirty = true
	}
	if old != nil && (!reflect.DeepEqual(old.Tiers, u.Tiers) || !slices.Equal(old.ProfileIDs, u.ProfileIDs)) {
		d.forgetFlowsOf(old) // its policies changed: re-check its flows against the new ones
	}
	d.st.statusDirty = true
}

func endpointLess(a, b contract.EndpointID) bool {
	if a.Orchestrator != b.Orchestrator {
		return a.Orchestrator < b.Orchestrator
	}
	if a.WorkloadID != b.WorkloadID {
		return a.WorkloadID < b.WorkloadID
	}
	return a.EndpointID < b.EndpointID
}

// routedNets are an endpoint's addresses plus, for OpenStack endpoints (or
// with FloatingIPs enabled), its floating IPs.
func (d *Dataplane) routedNets(u *contract.EndpointUpdate) []netip.Prefix {
	nets := append([]netip.Prefix(nil), u.IPv4Nets...)
	if d.cfg.IPv6 {
		nets = append(nets, u.IPv6Nets...)
	}
	if u.ID.Orchestrator == "openstack" || d.cfg.FloatingIPs {
		for _, n := range u.IPv4NAT {
			nets = append(nets, netip.PrefixFrom(n.External, 32))
		}
		if d.cfg.IPv6 {
			for _, n := range u.IPv6NAT {
				nets = append(nets, netip.PrefixFrom(n.External, 128))
			}
		}
	}
	return nets
}

// releaseInterface drops what an endpoint had on its interface and hands
// the interface to a shadowed endpoint, if any.
func (d *Dataplane) releaseInterface(ep *contract.EndpointUpdate) {
	if d.st.ifaceOwner[ep.Name] != ep.ID {
		return
	}
	delete(d.st.ifaceOwner, ep.Name)
	for _, f := range d.families {
		f.filter.RemoveChain(rules.ToWorkloadChain(ep.Name))
		f.filter.RemoveChain(rules.FromWorkloadChain(ep.Name))
	}
	d.routes.Remove(ep.Name)
	d.st.dispatchDirty = true
	var next *contract.EndpointUpdate
	for _, other := range d.st.endpoints {
		if other.Name == ep.Name && other.ID != ep.ID && (next == nil || endpointLess(other.ID, next.ID)) {
			next = other
		}
	}
	if next != nil {
		d.onEndpoint(next)
	}
}

func (d *Dataplane) removeEndpoint(id contract.EndpointID) {
	ep := d.st.endpoints[id]
	if ep == nil {
		return
	}
	for _, name := range chainsOf(ep) {
		d.unref(name, id)
	}
	delete(d.st.endpoints, id)
	d.releaseInterface(ep)
	d.forgetFlowsOf(ep)
	d.st.fipDirty, d.st.rpfDirty, d.st.statusDirty = true, true, true
}

// render recomputes the chains that depend on every endpoint (dispatch,
// floating IPs, spoofing exemptions), when an endpoint change touched them.
func (s *state) render(d *Dataplane) {
	if !s.dispatchDirty && !s.fipDirty && !s.rpfDirty {
		return
	}
	var eps []*contract.EndpointUpdate
	var names []string
	for name, id := range s.ifaceOwner {
		names = append(names, name)
		eps = append(eps, s.endpoints[id])
	}
	for _, f := range d.families {
		if s.dispatchDirty {
			for _, ch := range f.rules.DispatchChains(names) {
				f.filter.UpdateChain(ch)
			}
			d.pruneDispatchChildren(f, names)
		}
		if s.fipDirty {
			for _, ch := range f.rules.FloatingIPChains(eps) {
				f.nat.UpdateChain(ch)
			}
		}
		if s.rpfDirty {
			f.raw.UpdateChain(f.rules.RPFSkipChain(eps))
		}
	}
	s.dispatchDirty, s.fipDirty, s.rpfDirty = false, false, false
}

// pruneDispatchChildren removes dispatch child chains the current
// interface names no longer need.
func (d *Dataplane) pruneDispatchChildren(f *family, names []string) {
	want := map[string]bool{}
	for _, ch := range f.rules.DispatchChains(names) {
		want[ch.Name] = true
	}
	for _, c := range "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-" {
		for _, root := range []string{rules.ChainFromWorkloadDispatch, rules.ChainToWorkloadDispatch} {
			name := root + "-" + string(c)
			if !want[name] && f.filter.Chain(name) != nil {
				f.filter.RemoveChain(name)
			}
		}
	}
}
