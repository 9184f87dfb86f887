package calc

import (
	"cmp"
	"maps"
	"reflect"
	"slices"

	"ocelot/contract"
	"ocelot/datastore/resource"
)

// Flush returns the messages that bring the dataplane from what it was
// last sent to the current state, in an order that is safe to apply:
//
//  1. new IP sets with their members, then member changes of existing sets;
//  2. policies, then profiles;
//  3. workload endpoints, then host endpoints;
//  4. endpoint removals (both kinds), then profile and policy removals;
//  5. IP-set removals;
//  6. InSync, once, after the first complete state.
//
// Before the datastore is in sync Flush returns nothing: a restarting
// agent must not program half a datastore. Many updates between flushes
// produce only the final state. Output order is deterministic.
func (g *Graph) Flush() []contract.Message {
	if !g.inSync {
		return nil
	}
	var out []contract.Message
	var endpointRemoves, profileRemoves, policyRemoves, setRemoves []contract.Message

	// 1. Sets.
	for _, id := range sortedKeys(g.dirtySets) {
		s := g.sets[id]
		if s == nil {
			continue
		}
		if s.refs <= 0 {
			if s.sent {
				setRemoves = append(setRemoves, contract.IPSetRemove{ID: id})
			}
			delete(g.sets, id)
			continue
		}
		if !s.sent {
			members := slices.SortedFunc(maps.Keys(s.members), compareMembers)
			out = append(out, contract.IPSetUpdate{ID: id, Type: s.spec.typ, Members: members, Selector: s.spec.text()})
			s.sent = true
		} else if len(s.added)+len(s.removed) > 0 {
			out = append(out, contract.IPSetDelta{ID: id,
				Added:   slices.SortedFunc(maps.Keys(s.added), compareMembers),
				Removed: slices.SortedFunc(maps.Keys(s.removed), compareMembers)})
		}
		clear(s.added)
		clear(s.removed)
	}
	clear(g.dirtySets)

	// 2. Policies and profiles.
	for _, key := range sortedDKeys(g.dirtyPolicies) {
		ps, sent := g.policies[key], g.sentPolicies[key]
		var want *contract.PolicyUpdate
		if ps != nil && ps.res != nil {
			want = &contract.PolicyUpdate{ID: ps.id, Inbound: ps.res.inbound, Outbound: ps.res.outbound, FailClosed: ps.failClosed, Reason: ps.reason}
		}
		if sent != nil && (want == nil || want.ID != sent.ID) {
			policyRemoves = append(policyRemoves, contract.PolicyRemove{ID: sent.ID})
			delete(g.sentPolicies, key)
			sent = nil
		}
		if want != nil && (sent == nil || !reflect.DeepEqual(want, sent)) {
			out = append(out, *want)
			g.sentPolicies[key] = want
		}
	}
	clear(g.dirtyPolicies)
	for _, name := range sortedKeys(g.dirtyProfiles) {
		ps, sent := g.profiles[name], g.sentProfiles[name]
		var want *contract.ProfileUpdate
		if ps != nil && ps.res != nil {
			want = &contract.ProfileUpdate{ID: name, Inbound: ps.res.inbound, Outbound: ps.res.outbound, FailClosed: ps.prof == nil && name != DefaultAllowProfile}
			if want.FailClosed {
				want.Reason = "profile absent or invalid"
			}
		}
		switch {
		case want == nil && sent != nil:
			profileRemoves = append(profileRemoves, contract.ProfileRemove{ID: name})
			delete(g.sentProfiles, name)
		case want != nil && (sent == nil || !reflect.DeepEqual(want, sent)):
			out = append(out, *want)
			g.sentProfiles[name] = want
		}
		if ps != nil && ps.refs <= 0 && ps.prof == nil && !ps.inv && name != DefaultAllowProfile {
			delete(g.profiles, name)
		}
	}
	clear(g.dirtyProfiles)

	// 3. Endpoints.
	for _, key := range sortedDKeys(g.dirtyEndpoints) {
		le, sent := g.locals[key], g.sentEndpoints[key]
		if le == nil {
			if sent != nil {
				endpointRemoves = append(endpointRemoves, contract.EndpointRemove{ID: sent.ID})
				delete(g.sentEndpoints, key)
			}
			continue
		}
		want := g.endpointUpdate(le)
		if sent != nil && sent.ID != want.ID {
			endpointRemoves = append(endpointRemoves, contract.EndpointRemove{ID: sent.ID})
			sent = nil
		}
		if sent == nil || !reflect.DeepEqual(want, sent) {
			out = append(out, *want)
			g.sentEndpoints[key] = want
		}
	}
	clear(g.dirtyEndpoints)
	for _, key := range sortedDKeys(g.dirtyHostEndpoints) {
		lh, sent := g.hostEPs[key], g.sentHostEndpoints[key]
		if lh == nil {
			if sent != nil {
				endpointRemoves = append(endpointRemoves, contract.HostEndpointRemove{ID: sent.ID})
				delete(g.sentHostEndpoints, key)
			}
			continue
		}
		want := g.hostEndpointUpdate(key, lh)
		if sent == nil || !reflect.DeepEqual(want, sent) {
			out = append(out, *want)
			g.sentHostEndpoints[key] = want
		}
	}
	clear(g.dirtyHostEndpoints)

	out = append(out, endpointRemoves...)
	out = append(out, profileRemoves...)
	out = append(out, policyRemoves...)
	out = append(out, setRemoves...)
	if !g.inSyncSent {
		out = append(out, contract.InSync{})
		g.inSyncSent = true
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func sortedDKeys[V any](m map[resource.Key]V) []resource.Key {
	return slices.SortedFunc(maps.Keys(m), func(a, b resource.Key) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
}

func compareMembers(a, b contract.Member) int {
	if c := a.Net.Addr().Compare(b.Net.Addr()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Net.Bits(), b.Net.Bits()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Proto, b.Proto); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

// endpointUpdate computes what the dataplane needs for a local endpoint:
// the policies that select it, grouped by tier in tier order, each tier's
// in policy order, split by direction; then its profiles. Host-only
// (doNotTrack, preDNAT) policies are left out: they never govern a
// workload, and a tier left without policies is not listed.
func (g *Graph) endpointUpdate(le *localEndpoint) *contract.EndpointUpdate {
	ep := le.ep
	u := &contract.EndpointUpdate{
		ID:       contract.EndpointID{Orchestrator: ep.Orchestrator, WorkloadID: ep.WorkloadID(), EndpointID: ep.EndpointID},
		Name:     ep.InterfaceName,
		MAC:      ep.MAC,
		IPv4Nets: ep.IPv4Nets, IPv6Nets: ep.IPv6Nets,
		ProfileIDs: ep.Profiles,
		Labels:     ep.Labels,
	}
	if g.cfg.WorkloadSourceSpoofingAny {
		u.AllowSpoofedSourcePrefixes = ep.AllowSpoofedSourcePrefixes
	}
	u.QoS = qosControls(ep.QoS)
	u.LiveMigration, u.MigrationUID = g.migrationRole(ep)
	for _, n := range ep.IPv4NAT {
		u.IPv4NAT = append(u.IPv4NAT, contract.NAT{Internal: n.Internal, External: n.External})
	}
	for _, n := range ep.IPv6NAT {
		u.IPv6NAT = append(u.IPv6NAT, contract.NAT{Internal: n.Internal, External: n.External})
	}

	g.forTiers(le.policies, func(name, defaultAction string, pols []*policyState) {
		tp := contract.TierPolicies{Name: name, DefaultAction: defaultAction}
		for _, ps := range pols {
			if !hostOnly(ps.pol) {
				addToTier(&tp, ps, true)
			}
		}
		u.Tiers = appendTier(u.Tiers, tp)
	})
	return u
}

// compareTiers orders tiers: those with a Tier object first, by order
// (none is +Inf), then name; tiers named by policies but absent last, by name.
func (g *Graph) compareTiers(a, b string) int {
	ta, tb := g.tiers[a], g.tiers[b]
	if (ta == nil) != (tb == nil) {
		if ta == nil {
			return 1
		}
		return -1
	}
	if ta != nil {
		if c := compareOrder(ta.Order, tb.Order); c != 0 {
			return c
		}
	}
	return cmp.Compare(a, b)
}

// comparePolicies orders policies within a tier: by order (none is +Inf),
// then by "<name>/<namespace>/<kind>".
func comparePolicies(a, b *policyState) int {
	if c := compareOrder(a.pol.Order, b.pol.Order); c != 0 {
		return c
	}
	return cmp.Compare(a.id.Name+"/"+a.id.Namespace+"/"+a.id.Kind, b.id.Name+"/"+b.id.Namespace+"/"+b.id.Kind)
}

func compareOrder(a, b *float64) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return cmp.Compare(*a, *b)
}

// Stats are counts for the agent's metrics.
type Stats struct {
	LocalEndpoints    int // felix_active_local_endpoints
	ActivePolicies    int // felix_active_local_policies
	ActiveSelectors   int // felix_active_local_selectors
	Hosts             int // felix_cluster_num_hosts
	WorkloadEndpoints int // felix_cluster_num_workload_endpoints
	HostEndpoints     int // felix_cluster_num_host_endpoints
	Policies          int // felix_cluster_num_policies
	Profiles          int // felix_cluster_num_profiles
	Tiers             int // felix_cluster_num_tiers
}

// Stats returns the current counts. It costs O(1).
func (g *Graph) Stats() Stats {
	return Stats{
		LocalEndpoints: len(g.locals) + len(g.hostEPs), ActivePolicies: g.numActivePols, ActiveSelectors: g.numActiveSets,
		Hosts: len(g.hosts), WorkloadEndpoints: g.numWEPs, HostEndpoints: g.numHEPs, Policies: len(g.policies),
		Profiles: len(g.profiles), Tiers: len(g.tiers),
	}
}

// qosControls converts validated controls: every value is in the range
// Calico's API allows, so the conversions are exact.
func qosControls(q *resource.QoSControls) *contract.QoSControls {
	if q == nil || (q.Ingress == resource.QoSDirection{} && q.Egress == resource.QoSDirection{}) {
		return nil
	}
	conv := func(d resource.QoSDirection) contract.QoSLimits {
		return contract.QoSLimits{Bandwidth: uint64(d.Bandwidth), Burst: uint64(d.Burst), Peakrate: uint64(d.Peakrate),
			Minburst: uint32(d.Minburst), PacketRate: uint32(d.PacketRate), PacketBurst: uint32(d.PacketBurst),
			MaxConnections: uint32(d.MaxConnections)}
	}
	return &contract.QoSControls{Ingress: conv(q.Ingress), Egress: conv(q.Egress)}
}
