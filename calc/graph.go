package calc

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"

	"ocelot/contract"
	"ocelot/datastore/resource"
	"ocelot/selector"
	"ocelot/selector/labelindex"
)

// Config is what the graph needs to know about this host.
type Config struct {
	Hostname  string // FelixHostname
	Namespace string // the local region's namespace
	// InterfacePrefixes is InterfacePrefix: a local endpoint whose
	// interface name starts with none of them is not this agent's to
	// program (with none, no endpoint is).
	InterfacePrefixes []string
	// WorkloadSourceSpoofingAny is WorkloadSourceSpoofing = Any: only then
	// are endpoints' allowSpoofedSourcePrefixes honoured (Felix's default,
	// Disabled, ignores them).
	WorkloadSourceSpoofingAny bool
}

// Problem is something the graph wants an operator to know: a resource it
// enforces fail-closed, or one it will not program. Key is the datastore
// path of the resource concerned.
type Problem struct {
	Key    string
	Reason string
}

// DefaultAllowProfile is the profile the etcd backend adds to every
// listing without storing it: allow everything both ways.
const DefaultAllowProfile = "projectcalico-default-allow"

// Graph is the calculation graph. It is not safe for concurrent use.
type Graph struct {
	cfg    Config
	report func(Problem)

	// Local endpoints (workload and host) and the policies that apply to
	// them.
	locals   map[resource.Key]*localEndpoint
	hostEPs  map[resource.Key]*localHostEndpoint
	polIndex *labelindex.Index[resource.Key, resource.Key] // policy -> local endpoint of either kind
	policies map[resource.Key]*policyState                 // active or not
	tiers    map[string]*resource.Tier
	profiles map[string]*profileState // by name

	// IP sets and their members.
	setIndex *labelindex.Index[string, resource.Key] // set ID -> member item
	items    map[resource.Key]*memberItem            // every endpoint, network set, host endpoint
	sets     map[string]*ipSet                       // referenced (or pending removal) sets

	migrations *migrations // LiveMigrations of the local region

	// Work for the next flush.
	dirtyEndpoints     map[resource.Key]struct{}
	dirtyHostEndpoints map[resource.Key]struct{}
	dirtyPolicies      map[resource.Key]struct{}
	dirtyProfiles      map[string]struct{}
	dirtySets          map[string]struct{}       // sets whose references or members changed
	recheck            map[resource.Key]struct{} // policies whose activation may have changed
	sentEndpoints      map[resource.Key]*contract.EndpointUpdate
	sentHostEndpoints  map[resource.Key]*contract.HostEndpointUpdate
	sentPolicies       map[resource.Key]*contract.PolicyUpdate
	sentProfiles       map[string]*contract.ProfileUpdate // by name
	inSync             bool
	inSyncSent         bool

	hosts         map[string]int // host -> endpoints on it (cluster statistics)
	numWEPs       int
	numHEPs       int // valid host endpoints of every host
	numActivePols int
	numActiveSets int
	epProblems    map[resource.Key]string // the problem last reported for an endpoint, to report it once
}

type localEndpoint struct {
	ep       *resource.Endpoint
	policies map[resource.Key]struct{} // matching policies
}

type policyState struct {
	key        resource.Key
	id         contract.PolicyID
	pol        *resource.Policy
	sel        *selector.Selector
	failClosed bool
	reason     string
	matches    map[resource.Key]struct{} // local endpoints of either kind
	hostMatch  int                       // how many of them are host endpoints
	res        *resolved                 // when active
}

// active reports whether the policy applies to a local endpoint: a host
// endpoint it selects, or a workload endpoint unless it is a host-only
// (doNotTrack or preDNAT) policy.
func (p *policyState) active() bool {
	return p.hostMatch > 0 || (len(p.matches) > p.hostMatch && !hostOnly(p.pol))
}

type profileState struct {
	name   string
	prof   *resource.Profile // nil: referenced but absent
	inv    bool              // stored value invalid
	refs   int               // local endpoints listing it
	res    *resolved
	labels map[string]string
}

// New returns an empty graph. report, if not nil, receives problems.
func New(cfg Config, report func(Problem)) *Graph {
	if report == nil {
		report = func(Problem) {}
	}
	g := &Graph{
		cfg: cfg, report: report,
		locals: map[resource.Key]*localEndpoint{}, hostEPs: map[resource.Key]*localHostEndpoint{}, policies: map[resource.Key]*policyState{},
		tiers: map[string]*resource.Tier{}, profiles: map[string]*profileState{},
		items: map[resource.Key]*memberItem{}, sets: map[string]*ipSet{}, migrations: newMigrations(),
		dirtyEndpoints: map[resource.Key]struct{}{}, dirtyHostEndpoints: map[resource.Key]struct{}{}, dirtyPolicies: map[resource.Key]struct{}{},
		dirtyProfiles: map[string]struct{}{}, dirtySets: map[string]struct{}{}, recheck: map[resource.Key]struct{}{},
		sentEndpoints: map[resource.Key]*contract.EndpointUpdate{}, sentHostEndpoints: map[resource.Key]*contract.HostEndpointUpdate{},
		sentPolicies: map[resource.Key]*contract.PolicyUpdate{},
		sentProfiles: map[string]*contract.ProfileUpdate{}, hosts: map[string]int{}, epProblems: map[resource.Key]string{},
	}
	g.polIndex = labelindex.New(g.onPolicyMatch, g.onPolicyMatchStopped)
	g.setIndex = labelindex.New(g.onSetMatch, g.onSetMatchStopped)
	g.profiles[DefaultAllowProfile] = &profileState{name: DefaultAllowProfile, prof: &resource.Profile{
		Name: DefaultAllowProfile, Ingress: []resource.Rule{{Action: resource.Allow}}, Egress: []resource.Rule{{Action: resource.Allow}},
	}}
	return g
}

// OnUpdates applies datastore updates in order.
func (g *Graph) OnUpdates(ups []resource.Update) {
	for _, u := range ups {
		g.onUpdate(u)
	}
	g.settle()
}

// OnInSync records that the datastore snapshot is complete; the next
// Flush emits the whole state followed by InSync.
func (g *Graph) OnInSync() { g.inSync = true }

func (g *Graph) onUpdate(u resource.Update) {
	key := u.Key
	switch key.Kind {
	case resource.KindWorkloadEndpoint:
		_, existed := g.items[key]
		g.onEndpoint(key, u.Value)
		if _, exists := g.items[key]; exists != existed {
			g.onEndpointPresence(key)
		}
	case resource.KindLiveMigration:
		g.onLiveMigration(key, u.Value)
	case resource.KindNetworkPolicy, resource.KindGlobalNetworkPolicy:
		g.onPolicy(key, u.Value)
	case resource.KindProfile:
		g.onProfile(key, u.Value)
	case resource.KindTier:
		t, _ := u.Value.(*resource.Tier)
		if inv, ok := u.Value.(*resource.Invalid); ok {
			g.report(Problem{key.Path(), "invalid tier treated as absent: its policies sort last and end in Deny: " + inv.Reason.Error()})
		}
		if t == nil {
			delete(g.tiers, u.Key.Name)
		} else {
			g.tiers[u.Key.Name] = t
		}
		for k := range g.locals { // tier order affects every endpoint with a policy in it
			g.dirtyEndpoints[k] = struct{}{}
		}
		for k := range g.hostEPs {
			g.dirtyHostEndpoints[k] = struct{}{}
		}
	case resource.KindNetworkSet, resource.KindGlobalNetworkSet:
		if ns, ok := u.Value.(*resource.NetworkSet); ok {
			g.updateItem(key, ns.Labels, nil, splitZero(ns.Nets), nil)
		} else {
			g.deleteItem(key)
		}
	case resource.KindHostEndpoint:
		g.onHostEndpoint(key, u.Value)
	}
}

// splitZero replaces a /0, which a kernel set cannot hold, by two /1s.
func splitZero(nets []netip.Prefix) []netip.Prefix {
	out := nets
	for i, n := range nets {
		if n.Bits() == 0 {
			if &out[0] == &nets[0] {
				out = append([]netip.Prefix(nil), nets[:i]...)
			}
			if n.Addr().Is4() {
				out = append(out, netip.MustParsePrefix("0.0.0.0/1"), netip.MustParsePrefix("128.0.0.0/1"))
			} else {
				out = append(out, netip.MustParsePrefix("::/1"), netip.MustParsePrefix("8000::/1"))
			}
		} else if &out[0] != &nets[0] {
			out = append(out, n)
		}
	}
	return out
}

// onEndpoint handles a WorkloadEndpoint of any host. Only an endpoint of
// this host, in this region's namespace, on an interface this agent owns
// is programmed; the others still contribute their addresses to sets. So
// no endpoint of another host or region can take over a local interface.
func (g *Graph) onEndpoint(key resource.Key, v any) {
	g.countHost(key, v != nil && !isInvalid(v))
	switch ep := v.(type) {
	case *resource.Endpoint:
		if problem := g.refuseLocal(ep); problem != "" {
			g.reportEndpoint(key, problem)
			g.deleteLocal(key)
		} else {
			var notes []string
			if len(ep.AllowSpoofedSourcePrefixes) > 0 && !g.cfg.WorkloadSourceSpoofingAny {
				notes = append(notes, "endpoint lists allowSpoofedSourcePrefixes, which only WorkloadSourceSpoofing = Any honours: programmed without them")
			}
			if ep.QoS != nil && ep.QoS.DSCP {
				notes = append(notes, "endpoint asks for DSCP marking (qosControls.dscp), which Ocelot does not do: its other QoS controls are enforced")
			}
			g.reportEndpoint(key, strings.Join(notes, "; "))
			g.updateLocal(key, ep)
		}
		g.updateItem(key, ep.Labels, ep.Profiles, ep.Nets(), ep.Ports)
	case *resource.RemoteEndpoint:
		g.reportEndpoint(key, "")
		g.deleteLocal(key)
		g.updateItem(key, ep.Labels, ep.Profiles, ep.Nets, ep.Ports)
	default: // deleted or invalid: not programmed, not a member of any set
		g.reportEndpoint(key, "")
		g.deleteLocal(key)
		g.deleteItem(key)
	}
}

// refuseLocal says why an endpoint of this host must not be programmed, or
// returns "".
func (g *Graph) refuseLocal(ep *resource.Endpoint) string {
	if ep.Namespace != g.cfg.Namespace {
		return fmt.Sprintf("endpoint claims this host but is in namespace %s, not this region's %s: not programmed (its interface stays fail-closed)", ep.Namespace, g.cfg.Namespace)
	}
	for _, p := range g.cfg.InterfacePrefixes {
		if p != "" && strings.HasPrefix(ep.InterfaceName, p) {
			return ""
		}
	}
	return fmt.Sprintf("endpoint's interface %s does not start with an InterfacePrefix (%s): not this agent's to program; not programmed", ep.InterfaceName, strings.Join(g.cfg.InterfacePrefixes, ","))
}

// reportEndpoint reports an endpoint's problem once: again only when it
// changes. An empty problem clears it.
func (g *Graph) reportEndpoint(key resource.Key, problem string) {
	if problem == "" {
		delete(g.epProblems, key)
		return
	}
	if g.epProblems[key] != problem {
		g.epProblems[key] = problem
		g.report(Problem{key.Path(), problem})
	}
}

func isInvalid(v any) bool { _, ok := v.(*resource.Invalid); return ok }

// hostSegment is the (still escaped) host part of an endpoint name: enough
// to tell hosts apart without allocating.
func hostSegment(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] == '-' {
			if i+1 < len(name) && name[i+1] == '-' {
				i++
				continue
			}
			return name[:i]
		}
	}
	return name
}

// countHost keeps the per-host endpoint counts behind the cluster metrics.
func (g *Graph) countHost(key resource.Key, present bool) {
	h := hostSegment(key.Name)
	_, existed := g.items[key]
	switch {
	case present && !existed:
		g.hosts[h]++
		g.numWEPs++
	case !present && existed:
		if g.hosts[h]--; g.hosts[h] <= 0 {
			delete(g.hosts, h)
		}
		g.numWEPs--
	}
}

func (g *Graph) updateLocal(key resource.Key, ep *resource.Endpoint) {
	le := g.locals[key]
	if le == nil {
		le = &localEndpoint{policies: map[resource.Key]struct{}{}}
		g.locals[key] = le
	} else {
		g.releaseProfiles(le.ep.Profiles)
	}
	le.ep = ep
	g.acquireProfiles(ep.Profiles)
	g.polIndex.UpdateItem(key, ep.Labels, ep.Profiles)
	g.dirtyEndpoints[key] = struct{}{}
}

func (g *Graph) deleteLocal(key resource.Key) {
	le := g.locals[key]
	if le == nil {
		return
	}
	g.polIndex.DeleteItem(key)
	g.releaseProfiles(le.ep.Profiles)
	delete(g.locals, key)
	g.dirtyEndpoints[key] = struct{}{}
}

// onPolicyMatch and onPolicyMatchStopped record which policies select
// which local endpoints; activation is settled after each batch.
// The index holds local endpoints of both kinds; keys tell them apart.
func (g *Graph) onPolicyMatch(polKey, epKey resource.Key) {
	ps := g.policies[polKey]
	ps.matches[epKey] = struct{}{}
	if epKey.Kind == resource.KindHostEndpoint {
		ps.hostMatch++
		g.hostEPs[epKey].policies[polKey] = struct{}{}
	} else {
		g.locals[epKey].policies[polKey] = struct{}{}
	}
	g.markEndpointDirty(epKey)
	g.recheck[polKey] = struct{}{}
}

func (g *Graph) onPolicyMatchStopped(polKey, epKey resource.Key) {
	ps := g.policies[polKey]
	delete(ps.matches, epKey)
	if epKey.Kind == resource.KindHostEndpoint {
		ps.hostMatch--
		if lh := g.hostEPs[epKey]; lh != nil {
			delete(lh.policies, polKey)
		}
	} else if le := g.locals[epKey]; le != nil {
		delete(le.policies, polKey)
	}
	g.markEndpointDirty(epKey)
	g.recheck[polKey] = struct{}{}
}

// onPolicy handles a NetworkPolicy or GlobalNetworkPolicy. An invalid
// policy is enforced as deny-all where its selector reaches: the selector
// recovered from the stored value, or else the last valid one.
func (g *Graph) onPolicy(key resource.Key, v any) {
	path := key.Path()
	ps := g.policies[key]
	var pol *resource.Policy
	failClosed, reason := false, ""
	switch x := v.(type) {
	case *resource.Policy:
		pol = x
	case *resource.Invalid:
		failClosed, reason = true, x.Reason.Error()
		switch {
		case x.Policy != nil:
			pol = x.Policy
		case ps != nil:
			pol = ps.pol
		default:
			g.report(Problem{path, "invalid policy with no usable selector cannot be enforced at all: " + reason})
		}
		if pol != nil {
			g.report(Problem{path, "invalid policy enforced as deny-all on the endpoints it selects: " + reason})
		}
	}
	if pol == nil {
		if ps != nil {
			g.polIndex.DeleteSelector(key)
			g.release(ps)
			delete(g.policies, key)
			g.dirtyPolicies[key] = struct{}{}
		}
		return
	}
	sel := selector.PolicySelector(pol.Selector, pol.NamespaceSelector, pol.Namespace)
	if ps == nil {
		ps = &policyState{key: key, matches: map[resource.Key]struct{}{}}
		g.policies[key] = ps
	} else {
		g.release(ps)
		if orderChanged(ps.pol, pol) {
			for ep := range ps.matches {
				g.markEndpointDirty(ep)
			}
		}
	}
	ps.pol, ps.sel, ps.failClosed, ps.reason = pol, sel, failClosed, reason
	ps.id = policyID(key)
	g.polIndex.UpdateSelector(key, sel)
	g.recheck[key] = struct{}{}
	g.dirtyPolicies[key] = struct{}{}
}

// policyID is a policy's identity: its key, as Felix keys policies (kind,
// namespace, the key's name), so two resources never share an ID or a
// chain. A key that fails validation cannot name a chain: its name becomes
// "_" and a hash of the key, which no valid name can equal (valid names
// have no '_'), so the policy can still be enforced as deny-all.
func policyID(key resource.Key) contract.PolicyID {
	id := contract.PolicyID{Kind: string(key.Kind), Namespace: key.Namespace, Name: key.Name}
	if resource.CheckKey(key) != nil {
		h := sha256.Sum224([]byte(key.Path()))
		id.Namespace, id.Name = "", "_"+hex.EncodeToString(h[:12])
	}
	return id
}

// orderChanged reports a change that moves the policy among an endpoint's
// policies, or between the kinds of endpoint and the tables it applies
// to.
func orderChanged(a, b *resource.Policy) bool {
	if a.Tier != b.Tier || a.Name != b.Name || len(a.Types) != len(b.Types) {
		return true
	}
	if a.DoNotTrack != b.DoNotTrack || a.PreDNAT != b.PreDNAT || a.ApplyOnForward != b.ApplyOnForward {
		return true
	}
	for i := range a.Types {
		if a.Types[i] != b.Types[i] {
			return true
		}
	}
	if (a.Order == nil) != (b.Order == nil) {
		return true
	}
	return a.Order != nil && *a.Order != *b.Order
}

// activate resolves an active policy's rules and takes its set references.
func (g *Graph) activate(ps *policyState) {
	g.numActivePols++
	if ps.failClosed {
		ps.res = &resolved{inbound: []contract.Rule{contract.DenyAll}, outbound: []contract.Rule{contract.DenyAll}}
		return
	}
	res, err := resolveRules(ps.pol.Ingress, ps.pol.Egress, ps.pol.Namespace)
	if err != nil {
		ps.failClosed, ps.reason = true, err.Error()
		g.report(Problem{ps.key.Path(), "policy rules could not be resolved; enforced as deny-all: " + err.Error()})
		ps.res = &resolved{inbound: []contract.Rule{contract.DenyAll}, outbound: []contract.Rule{contract.DenyAll}}
		return
	}
	for _, p := range res.problems {
		g.report(Problem{ps.key.Path(), p})
	}
	ps.res = &res
	g.acquireSets(res.sets)
}

// release drops an active policy's resolved rules and set references.
func (g *Graph) release(ps *policyState) {
	if ps.res != nil {
		g.numActivePols--
		g.releaseSets(ps.res.sets)
		ps.res = nil
	}
}

// settle brings activation in line with matches: policies that gained
// their first local endpoint are resolved, those that lost their last are
// released; then sets whose references changed are (un)indexed.
func (g *Graph) settle() {
	for key := range g.recheck {
		delete(g.recheck, key)
		ps := g.policies[key]
		if ps == nil {
			continue
		}
		switch {
		case ps.active() && ps.res == nil:
			g.activate(ps)
			g.dirtyPolicies[key] = struct{}{}
		case !ps.active() && ps.res != nil:
			g.release(ps)
			g.dirtyPolicies[key] = struct{}{}
		}
	}
	for name := range g.dirtyProfiles {
		g.settleProfile(g.profiles[name])
	}
	g.settleSets()
}

// onProfile handles a Profile. Its labelsToApply are inherited by the
// endpoints that list it; its rules apply after the tiers. Endpoints name
// only valid profiles, so one stored under an invalid name is never sent.
func (g *Graph) onProfile(key resource.Key, v any) {
	name := key.Name
	ps := g.profiles[name]
	if name == DefaultAllowProfile {
		return // built in; never stored
	}
	if ps == nil {
		ps = &profileState{name: name}
		g.profiles[name] = ps
	}
	switch x := v.(type) {
	case *resource.Profile:
		ps.prof, ps.inv, ps.labels = x, false, x.LabelsToApply
	case *resource.Invalid:
		ps.prof, ps.inv, ps.labels = nil, true, nil
		g.report(Problem{key.Path(), "invalid profile enforced as deny-all where it is used: " + x.Reason.Error()})
	default:
		ps.prof, ps.inv, ps.labels = nil, false, nil
	}
	if ps.labels == nil {
		g.polIndex.DeleteParent(name)
		g.setIndex.DeleteParent(name)
	} else {
		g.polIndex.UpdateParent(name, ps.labels)
		g.setIndex.UpdateParent(name, ps.labels)
	}
	if ps.res != nil {
		g.releaseSets(ps.res.sets)
		ps.res = nil
	}
	g.dirtyProfiles[name] = struct{}{}
	if ps.refs == 0 && ps.prof == nil && !ps.inv {
		delete(g.profiles, name)
	}
}

func profileKey(name string) resource.Key {
	return resource.Key{Kind: resource.KindProfile, Name: name}
}

func (g *Graph) acquireProfiles(names []string) {
	for _, n := range names {
		ps := g.profiles[n]
		if ps == nil {
			ps = &profileState{name: n}
			g.profiles[n] = ps
		}
		ps.refs++
		g.dirtyProfiles[n] = struct{}{}
	}
}

func (g *Graph) releaseProfiles(names []string) {
	for _, n := range names {
		if ps := g.profiles[n]; ps != nil {
			ps.refs--
			g.dirtyProfiles[n] = struct{}{}
		}
	}
}

// settleProfile resolves a referenced profile (deny-all when absent or
// invalid, as Felix does) or releases an unreferenced one.
func (g *Graph) settleProfile(ps *profileState) {
	if ps == nil {
		return
	}
	switch {
	case ps.refs > 0 && ps.res == nil:
		switch {
		case ps.prof == nil:
			if !ps.inv {
				g.report(Problem{profileKey(ps.name).Path(), "profile referenced by a local endpoint does not exist; enforced as deny-all"})
			}
			ps.res = &resolved{inbound: []contract.Rule{contract.DenyAll}, outbound: []contract.Rule{contract.DenyAll}}
		default:
			res, err := resolveRules(ps.prof.Ingress, ps.prof.Egress, "")
			if err != nil {
				g.report(Problem{profileKey(ps.name).Path(), "profile rules could not be resolved; enforced as deny-all: " + err.Error()})
				res = resolved{inbound: []contract.Rule{contract.DenyAll}, outbound: []contract.Rule{contract.DenyAll}}
			}
			for _, p := range res.problems {
				g.report(Problem{profileKey(ps.name).Path(), p})
			}
			ps.res = &res
			g.acquireSets(res.sets)
		}
	case ps.refs <= 0 && ps.res != nil:
		g.releaseSets(ps.res.sets)
		ps.res = nil
	}
}
