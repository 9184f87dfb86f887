package calc

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"ocelot/contract"
	"ocelot/datastore/resource"
)

// localHostEndpoint is a HostEndpoint of this host and the policies whose
// selectors match it.
type localHostEndpoint struct {
	hep      *resource.HostEndpoint // the last valid value
	policies map[resource.Key]struct{}
	// failClosed: the stored value became invalid; hep is the last valid
	// one, whose interface is enforced as deny-all.
	failClosed bool
	reason     string
}

// hostOnly reports a policy that applies to host endpoints only:
// doNotTrack (raw table) and preDNAT (mangle table) policies never govern
// a workload endpoint, whatever their selector matches.
func hostOnly(p *resource.Policy) bool { return p.DoNotTrack || p.PreDNAT }

// onHostEndpoint handles a HostEndpoint of any host. Every valid one
// contributes its expected IPs to sets; one whose node is this host is
// also programmed, unless it names a workload interface. An invalid one
// that was programmed stays, fail-closed: deny-all (the failsafe ports
// still open) on what it last governed, so a bad write cannot open a
// protected interface.
func (g *Graph) onHostEndpoint(key resource.Key, v any) {
	_, counted := g.items[key]
	_, valid := v.(*resource.HostEndpoint)
	switch {
	case valid && !counted:
		g.numHEPs++
	case !valid && counted:
		g.numHEPs--
	}
	switch he := v.(type) {
	case *resource.HostEndpoint:
		switch problem := g.refuseLocalHost(he); {
		case he.Node != g.cfg.Hostname:
			g.reportEndpoint(key, "")
			g.deleteLocalHost(key)
		case problem != "":
			g.reportEndpoint(key, problem)
			g.deleteLocalHost(key)
		default:
			g.reportEndpoint(key, "")
			g.updateLocalHost(key, he)
		}
		nets := make([]netip.Prefix, 0, len(he.ExpectedIPs))
		for _, a := range he.ExpectedIPs {
			nets = append(nets, netip.PrefixFrom(a, a.BitLen()))
		}
		g.updateItem(key, he.Labels, he.Profiles, nets, he.Ports)
	case *resource.Invalid:
		if lh := g.hostEPs[key]; lh != nil {
			g.reportEndpoint(key, "invalid host endpoint: its interface is enforced as deny-all (failsafe ports stay open) until it is fixed or deleted: "+he.Reason.Error())
			g.failCloseLocalHost(key, lh, he.Reason.Error())
		} else {
			g.reportEndpoint(key, "")
		}
		g.deleteItem(key)
	default:
		g.reportEndpoint(key, "")
		g.deleteLocalHost(key)
		g.deleteItem(key)
	}
}

// refuseLocalHost says why a host endpoint of this host must not be
// programmed, or returns "": a workload interface is never a host
// endpoint.
func (g *Graph) refuseLocalHost(he *resource.HostEndpoint) string {
	if he.InterfaceName == "" || he.InterfaceName == contract.AllInterfaces {
		return ""
	}
	for _, p := range g.cfg.InterfacePrefixes {
		if p != "" && strings.HasPrefix(he.InterfaceName, p) {
			return fmt.Sprintf("host endpoint names interface %s, which starts with the workload InterfacePrefix %s: a workload interface is never a host endpoint; not programmed", he.InterfaceName, p)
		}
	}
	return ""
}

func (g *Graph) updateLocalHost(key resource.Key, he *resource.HostEndpoint) {
	lh := g.hostEPs[key]
	switch {
	case lh == nil:
		lh = &localHostEndpoint{policies: map[resource.Key]struct{}{}}
		g.hostEPs[key] = lh
	case !lh.failClosed:
		g.releaseProfiles(lh.hep.Profiles)
	}
	lh.hep, lh.failClosed, lh.reason = he, false, ""
	g.acquireProfiles(he.Profiles)
	g.polIndex.UpdateItem(key, he.Labels, he.Profiles)
	g.dirtyHostEndpoints[key] = struct{}{}
}

// failCloseLocalHost keeps a host endpoint's last valid interface and
// addresses and drops its policies and profiles: deny-all.
func (g *Graph) failCloseLocalHost(key resource.Key, lh *localHostEndpoint, reason string) {
	if !lh.failClosed {
		g.polIndex.DeleteItem(key)
		g.releaseProfiles(lh.hep.Profiles)
	}
	lh.failClosed, lh.reason = true, reason
	g.dirtyHostEndpoints[key] = struct{}{}
}

func (g *Graph) deleteLocalHost(key resource.Key) {
	lh := g.hostEPs[key]
	if lh == nil {
		return
	}
	if !lh.failClosed {
		g.polIndex.DeleteItem(key)
		g.releaseProfiles(lh.hep.Profiles)
	}
	delete(g.hostEPs, key)
	g.dirtyHostEndpoints[key] = struct{}{}
}

// hostEndpointUpdate computes what the dataplane needs for a local host
// endpoint: its interface or addresses, its profiles, and the policies
// that select it split as Felix splits them (untracked, pre-DNAT, normal,
// and the normal ones that apply to forwarded traffic).
func (g *Graph) hostEndpointUpdate(key resource.Key, lh *localHostEndpoint) *contract.HostEndpointUpdate {
	he := lh.hep
	u := &contract.HostEndpointUpdate{ID: key.Name, InterfaceName: he.InterfaceName}
	for _, a := range he.ExpectedIPs {
		if a.Is4() {
			u.ExpectedIPv4 = append(u.ExpectedIPv4, a)
		} else {
			u.ExpectedIPv6 = append(u.ExpectedIPv6, a)
		}
	}
	if lh.failClosed {
		u.FailClosed, u.Reason = true, lh.reason
		return u
	}
	u.ProfileIDs = he.Profiles
	g.forTiers(lh.policies, func(name, defaultAction string, pols []*policyState) {
		normal := contract.TierPolicies{Name: name, DefaultAction: defaultAction}
		forward := contract.TierPolicies{Name: name, DefaultAction: defaultAction}
		untracked := contract.TierPolicies{Name: name, DefaultAction: "Pass"}
		preDNAT := contract.TierPolicies{Name: name, DefaultAction: "Pass"}
		for _, ps := range pols {
			switch {
			case ps.pol.DoNotTrack:
				addToTier(&untracked, ps, true)
			case ps.pol.PreDNAT:
				addToTier(&preDNAT, ps, false)
			default:
				addToTier(&normal, ps, true)
				if ps.pol.ApplyOnForward {
					addToTier(&forward, ps, true)
				}
			}
		}
		u.Tiers = appendTier(u.Tiers, normal)
		u.UntrackedTiers = appendTier(u.UntrackedTiers, untracked)
		u.PreDNATTiers = appendTier(u.PreDNATTiers, preDNAT)
		u.ForwardTiers = appendTier(u.ForwardTiers, forward)
	})
	return u
}

// addToTier lists a policy in the directions it governs (ingress only,
// when egress is not allowed: pre-DNAT policy sees only incoming traffic).
func addToTier(t *contract.TierPolicies, ps *policyState, egress bool) {
	if ps.pol.Applies(resource.Ingress) {
		t.Ingress = append(t.Ingress, ps.id)
	}
	if egress && ps.pol.Applies(resource.Egress) {
		t.Egress = append(t.Egress, ps.id)
	}
}

// appendTier keeps a tier that has at least one policy.
func appendTier(tiers []contract.TierPolicies, t contract.TierPolicies) []contract.TierPolicies {
	if len(t.Ingress)+len(t.Egress) == 0 {
		return tiers
	}
	return append(tiers, t)
}

// forTiers calls f for each tier of the given policies, in tier order,
// with its default action and its policies in policy order.
func (g *Graph) forTiers(policies map[resource.Key]struct{}, f func(name, defaultAction string, pols []*policyState)) {
	byTier := map[string][]*policyState{}
	for key := range policies {
		ps := g.policies[key]
		byTier[ps.pol.Tier] = append(byTier[ps.pol.Tier], ps)
	}
	for _, name := range slices.SortedFunc(maps.Keys(byTier), g.compareTiers) {
		pols := byTier[name]
		slices.SortFunc(pols, comparePolicies)
		action := "Deny"
		if t := g.tiers[name]; t != nil && t.DefaultAction == resource.Pass {
			action = "Pass"
		}
		f(name, action, pols)
	}
}

// markEndpointDirty marks a local endpoint of either kind for the next
// flush.
func (g *Graph) markEndpointDirty(key resource.Key) {
	if key.Kind == resource.KindHostEndpoint {
		g.dirtyHostEndpoints[key] = struct{}{}
	} else {
		g.dirtyEndpoints[key] = struct{}{}
	}
}
