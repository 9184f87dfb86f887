package calc

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"ocelot/contract"
	"ocelot/datastore/resource"
	"ocelot/selector"
)

// model recomputes the whole desired state from the datastore contents,
// the simplest way possible, to check the incremental graph against. It is
// written from docs/calico.md, not from calc's code: it keeps resources by
// etcd path, derives each policy's identity from the path with its own
// parser, orders tiers and policies with its own sort keys, and computes IP
// set members itself. Only rule resolution (which sets a rule needs) is
// shared with production; TestRuleResolution covers that on its own.
type model struct {
	store map[string]resource.Update // by path: the latest value of each key
}

// modelTier is one tier of an endpoint: its name, default action and the
// policies of each direction, as "np/<ns>/<name>" or "gnp/<name>".
type modelTier struct {
	Name, DefaultAction string
	Ingress, Egress     []string
}

type modelEndpoint struct {
	Iface   string
	Tiers   []modelTier
	Spoofed []netip.Prefix
}

// modelHostEndpoint is a local host endpoint: its interface and its
// policies by kind (normal, untracked, pre-DNAT, forward).
type modelHostEndpoint struct {
	Iface                           string
	Normal, Untracked, PreDNAT, Fwd []modelTier
	Profiles                        []string
	FailClosed                      bool
}

type modelState struct {
	sets      map[string][]string                   // set ID -> sorted members
	policies  map[string][]contract.Rule            // policy ID -> inbound then outbound rules
	endpoints map[contract.EndpointID]modelEndpoint // local, programmed endpoints
	hostEPs   map[string]modelHostEndpoint          // local host endpoints by name
	profiles  map[string]bool                       // profiles sent
}

// failClosedHEP stands in the model's store for a local host endpoint whose
// stored value became invalid: the last valid one.
type failClosedHEP struct{ last *resource.HostEndpoint }

// isLocalHEP: a host endpoint of this host not on a workload interface.
func isLocalHEP(h *resource.HostEndpoint) bool {
	return h.Node == host && !strings.HasPrefix(h.InterfaceName, "tap")
}

// modelPolicyID reads a policy's ID off its etcd path: the plural says
// the kind, the segments are the namespace and the name.
func modelPolicyID(path string) string {
	segs := strings.Split(strings.TrimPrefix(path, "/calico/resources/v3/projectcalico.org/"), "/")
	switch segs[0] {
	case "networkpolicies":
		return "np/" + segs[1] + "/" + segs[2]
	case "globalnetworkpolicies":
		return "gnp/" + segs[1]
	}
	panic("not a policy path: " + path)
}

func (m *model) profile(name string) *resource.Profile {
	for _, u := range m.store {
		if p, ok := u.Value.(*resource.Profile); ok && u.Key.Kind == resource.KindProfile && u.Key.Name == name {
			return p
		}
	}
	return nil
}

// labelsOf: own labels over the profiles' labelsToApply, the first
// profile winning over later ones.
func (m *model) labelsOf(own map[string]string, profiles []string) map[string]string {
	out := map[string]string{}
	for i := len(profiles) - 1; i >= 0; i-- {
		if p := m.profile(profiles[i]); p != nil {
			maps.Copy(out, p.LabelsToApply)
		}
	}
	maps.Copy(out, own)
	return out
}

// isLocal: an endpoint of this host, in this region's namespace, on an
// interface with the configured prefix ("tap" in the tests).
func isLocal(ep *resource.Endpoint) bool {
	return ep.Namespace == nsOne && strings.HasPrefix(ep.InterfaceName, "tap")
}

type modelPolicy struct {
	path, id string
	p        *resource.Policy
	sel      *selector.Selector
	invalid  bool
}

// Sort keys from docs/calico.md, "Policy evaluation": tiers with a Tier
// object first, by order (none = +Inf), then name; tiers named only by
// policies after them, by name. Policies by order (none = +Inf), then
// "<name>/<namespace>/<kind>" with the key's name and the full kind.
type tierKey struct {
	missing bool
	order   float64
	name    string
}

func orderOf(o *float64) float64 {
	if o == nil {
		return math.Inf(1)
	}
	return *o
}

func (m *model) compute() modelState {
	st := modelState{sets: map[string][]string{}, policies: map[string][]contract.Rule{}, endpoints: map[contract.EndpointID]modelEndpoint{},
		hostEPs: map[string]modelHostEndpoint{}, profiles: map[string]bool{}}
	var pols []modelPolicy
	tiers := map[string]*resource.Tier{}
	for path, u := range m.store {
		switch v := u.Value.(type) {
		case *resource.Policy:
			pols = append(pols, modelPolicy{path, modelPolicyID(path), v, selector.PolicySelector(v.Selector, v.NamespaceSelector, v.Namespace), false})
		case *resource.Invalid:
			if v.Policy != nil {
				pols = append(pols, modelPolicy{path, modelPolicyID(path), v.Policy, selector.PolicySelector(v.Policy.Selector, v.Policy.NamespaceSelector, v.Policy.Namespace), true})
			}
		case *resource.Tier:
			tiers[u.Key.Name] = v
		}
	}
	tierSortKey := func(name string) tierKey {
		if t := tiers[name]; t != nil {
			return tierKey{false, orderOf(t.Order), name}
		}
		return tierKey{true, 0, name}
	}
	active := map[string]modelPolicy{}
	// tiersOf lists, per kind of tier, the tiers of the policies that
	// select labels l, each tier's policies in order; route says which
	// kinds of tier a policy goes to (none: it does not apply).
	tiersOf := func(l map[string]string, route func(p modelPolicy) []string, defaultAction func(kind, tier string) string) map[string][]modelTier {
		byTier := map[string][]modelPolicy{}
		for _, p := range pols {
			if p.sel.Evaluate(l) && len(route(p)) > 0 {
				byTier[p.p.Tier] = append(byTier[p.p.Tier], p)
				active[p.id] = p
			}
		}
		names := slices.Collect(maps.Keys(byTier))
		sort.Slice(names, func(i, j int) bool {
			a, b := tierSortKey(names[i]), tierSortKey(names[j])
			if a.missing != b.missing {
				return !a.missing
			}
			if a.order != b.order {
				return a.order < b.order
			}
			return a.name < b.name
		})
		out := map[string][]modelTier{}
		for _, n := range names {
			ps := byTier[n]
			tie := func(p modelPolicy) string {
				return p.p.Name + "/" + p.p.Namespace + "/" + string(p.p.Kind)
			}
			sort.Slice(ps, func(i, j int) bool {
				if oi, oj := orderOf(ps[i].p.Order), orderOf(ps[j].p.Order); oi != oj {
					return oi < oj
				}
				return tie(ps[i]) < tie(ps[j])
			})
			byKind := map[string]*modelTier{}
			var kinds []string
			for _, p := range ps {
				for _, kind := range route(p) {
					mt := byKind[kind]
					if mt == nil {
						mt = &modelTier{Name: n, DefaultAction: defaultAction(kind, n)}
						byKind[kind] = mt
						kinds = append(kinds, kind)
					}
					if slices.Contains(p.p.Types, resource.Ingress) {
						mt.Ingress = append(mt.Ingress, p.id)
					}
					if slices.Contains(p.p.Types, resource.Egress) && kind != "preDNAT" {
						mt.Egress = append(mt.Egress, p.id)
					}
				}
			}
			for _, kind := range kinds {
				if mt := byKind[kind]; len(mt.Ingress)+len(mt.Egress) > 0 {
					out[kind] = append(out[kind], *mt)
				}
			}
		}
		return out
	}
	tierAction := func(kind, n string) string {
		if kind == "untracked" || kind == "preDNAT" {
			return "Pass"
		}
		if t := tiers[n]; t != nil && t.DefaultAction == resource.Pass {
			return "Pass"
		}
		return "Deny"
	}
	for _, u := range m.store {
		switch v := u.Value.(type) {
		case *resource.Endpoint:
			if !isLocal(v) {
				continue
			}
			// Workloads: every policy but doNotTrack and preDNAT ones.
			tiersOut := tiersOf(m.labelsOf(v.Labels, v.Profiles), func(p modelPolicy) []string {
				if p.p.DoNotTrack || p.p.PreDNAT {
					return nil
				}
				return []string{"normal"}
			}, tierAction)["normal"]
			st.endpoints[contract.EndpointID{Orchestrator: v.Orchestrator, WorkloadID: v.Namespace + "/" + v.Workload, EndpointID: v.EndpointID}] =
				modelEndpoint{Iface: v.InterfaceName, Tiers: tiersOut} // spoofing is off in these tests: no prefixes sent
			for _, pr := range v.Profiles {
				st.profiles[pr] = true
			}
		case *resource.HostEndpoint:
			if !isLocalHEP(v) {
				continue
			}
			// Host endpoints: doNotTrack policies untracked, preDNAT ones
			// pre-DNAT (ingress), the others normal, and forward too with
			// applyOnForward.
			ts := tiersOf(m.labelsOf(v.Labels, v.Profiles), func(p modelPolicy) []string {
				switch {
				case p.p.DoNotTrack:
					return []string{"untracked"}
				case p.p.PreDNAT:
					return []string{"preDNAT"}
				case p.p.ApplyOnForward:
					return []string{"normal", "forward"}
				}
				return []string{"normal"}
			}, tierAction)
			st.hostEPs[u.Key.Name] = modelHostEndpoint{Iface: v.InterfaceName, Normal: ts["normal"], Untracked: ts["untracked"],
				PreDNAT: ts["preDNAT"], Fwd: ts["forward"], Profiles: v.Profiles}
			for _, pr := range v.Profiles {
				st.profiles[pr] = true
			}
		case failClosedHEP:
			st.hostEPs[u.Key.Name] = modelHostEndpoint{Iface: v.last.InterfaceName, FailClosed: true}
		}
	}
	var specs []setSpec
	for id, p := range active {
		if p.invalid {
			st.policies[id] = []contract.Rule{contract.DenyAll, contract.DenyAll}
			continue
		}
		res, _ := resolveRules(p.p.Ingress, p.p.Egress, p.p.Namespace)
		st.policies[id] = append(slices.Clone(res.inbound), res.outbound...)
		specs = append(specs, res.sets...)
	}
	for pr := range st.profiles {
		if p := m.profile(pr); p != nil {
			res, _ := resolveRules(p.Ingress, p.Egress, "")
			specs = append(specs, res.sets...)
		}
	}
	for _, sp := range specs {
		st.sets[sp.id] = m.members(sp)
	}
	return st
}

// members lists what a set holds: for a selector set, every address of
// every endpoint (of any host or region) and network set the selector
// matches, a /0 written as two /1s; for a named-port set, each address
// with each matching named port.
func (m *model) members(sp setSpec) []string {
	seen := map[string]bool{}
	for _, u := range m.store {
		var nets []netip.Prefix
		var ports []resource.NamedPort
		var l map[string]string
		switch v := u.Value.(type) {
		case *resource.Endpoint:
			nets, ports, l = v.Nets(), v.Ports, m.labelsOf(v.Labels, v.Profiles)
		case *resource.RemoteEndpoint:
			nets, ports, l = v.Nets, v.Ports, m.labelsOf(v.Labels, v.Profiles)
		case *resource.NetworkSet:
			nets, l = v.Nets, v.Labels
		case *resource.HostEndpoint:
			for _, a := range v.ExpectedIPs {
				nets = append(nets, netip.PrefixFrom(a, a.BitLen()))
			}
			ports, l = v.Ports, m.labelsOf(v.Labels, v.Profiles)
		default:
			continue
		}
		if !sp.sel.Evaluate(l) {
			continue
		}
		for _, n := range nets {
			switch {
			case sp.typ == contract.IPSetIPAndPort:
				for _, p := range ports {
					if p.Name == sp.portName && (sp.proto == 0 || sp.proto == p.Protocol.Num) {
						seen[fmt.Sprintf("%s,%s:%d", n.Addr(), contract.ProtoName(p.Protocol.Num), p.Port)] = true
					}
				}
			case n.Bits() == 0 && n.Addr().Is4():
				seen["0.0.0.0/1"], seen["128.0.0.0/1"] = true, true
			case n.Bits() == 0:
				seen["::/1"], seen["8000::/1"] = true, true
			case n.IsSingleIP():
				seen[n.Addr().String()] = true
			default:
				seen[n.String()] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

func (d *fakeDataplane) state() modelState {
	st := modelState{sets: map[string][]string{}, policies: map[string][]contract.Rule{}, endpoints: map[contract.EndpointID]modelEndpoint{},
		hostEPs: map[string]modelHostEndpoint{}, profiles: map[string]bool{}}
	for id := range d.sets {
		st.sets[id] = d.members(id)
	}
	for id, p := range d.policies {
		st.policies[id.String()] = append(slices.Clone(p.Inbound), p.Outbound...)
	}
	ids := func(l []contract.PolicyID) []string {
		var out []string
		for _, id := range l {
			out = append(out, id.String())
		}
		return out
	}
	tiersOf := func(ts []contract.TierPolicies) []modelTier {
		var tiers []modelTier
		for _, t := range ts {
			tiers = append(tiers, modelTier{t.Name, t.DefaultAction, ids(t.Ingress), ids(t.Egress)})
		}
		return tiers
	}
	for id, e := range d.endpoints {
		st.endpoints[id] = modelEndpoint{Iface: e.Name, Tiers: tiersOf(e.Tiers), Spoofed: e.AllowSpoofedSourcePrefixes}
	}
	for id, h := range d.hostEPs {
		st.hostEPs[id] = modelHostEndpoint{Iface: h.InterfaceName, Normal: tiersOf(h.Tiers), Untracked: tiersOf(h.UntrackedTiers),
			PreDNAT: tiersOf(h.PreDNATTiers), Fwd: tiersOf(h.ForwardTiers), Profiles: h.ProfileIDs, FailClosed: h.FailClosed}
	}
	for id := range d.profiles {
		st.profiles[id] = true
	}
	return st
}

// TestRandomAgainstModel feeds random endpoints, labels, policies, profiles,
// tiers and network sets in random orders, flushing at random points, and
// after every flush compares what the dataplane was told with the model.
// Policy names collide on purpose: one name as NetworkPolicy and
// GlobalNetworkPolicy, "x" and "default.x", and keys that move between
// tiers.
func TestRandomAgainstModel(t *testing.T) {
	sels := []string{"all()", "has(sgA)", "has(sgB)", "has(sgA) && role == 'x'", "role == 'y'", "!has(sgC)", "tier == 'gold'", "has(sgB) || has(sgC)"}
	ips := []string{"198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5", "198.18.0.6"}
	polNames := []string{"pol0", "pol1", "pol2", "default.pol0", "default.pol1", "t1.pol2"}
	for seed := uint64(1); seed <= 60; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
		randLabels := func(ns string) map[string]string {
			l := map[string]string{}
			if rng.IntN(5) > 0 {
				l[nsLabel] = ns
			}
			for _, k := range []string{"sgA", "sgB", "sgC"} {
				if rng.IntN(2) == 0 {
					l[k] = ""
				}
			}
			if rng.IntN(2) == 0 {
				l["role"] = pick([]string{"x", "y"})
			}
			return l
		}
		randRules := func() []resource.Rule {
			var rs []resource.Rule
			for i := 0; i < rng.IntN(3); i++ {
				r := resource.Rule{Action: []resource.Action{resource.Allow, resource.Deny, resource.Pass, resource.Log}[rng.IntN(4)]}
				if rng.IntN(2) == 0 {
					r.Source.Selector = S(pick(sels))
				}
				if rng.IntN(3) == 0 {
					r.Source.NamespaceSelector = S(pick([]string{"all()", "global()"}))
				}
				if rng.IntN(4) == 0 {
					r.Destination.NotSelector = S(pick(sels))
				}
				if rng.IntN(4) == 0 {
					r.Protocol = tcp()
					r.Destination.Ports = []resource.Port{{First: 80, Last: 80}}
				}
				rs = append(rs, r)
			}
			return rs
		}
		m := &model{store: map[string]resource.Update{}}
		g := New(testConfig, nil)
		d := newFakeDataplane(t)
		synced := false
		for step := 0; step < 300; step++ {
			var u resource.Update
			switch rng.IntN(11) {
			case 0, 1, 2: // endpoint
				vm := fmt.Sprint("vm", rng.IntN(10))
				ns := pick([]string{nsOne, nsOne, nsTwo})
				// Keep one identity per vm so that a key's host never changes.
				h := []string{host, "h2", "h3"}[len(vm)%3+int(vm[2]-'0')%3]
				if h == host {
					u = localEP(ns, vm, "p"+vm, pick(ips), randLabels(ns))
					ep := u.Value.(*resource.Endpoint)
					if rng.IntN(3) == 0 {
						ep.Profiles = []string{pick([]string{"p1", "p2", "nope"})}
					}
					if rng.IntN(6) == 0 {
						ep.InterfaceName = "eth" + vm[2:] // not this agent's interface
					}
					if rng.IntN(6) == 0 {
						ep.AllowSpoofedSourcePrefixes = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
					}
				} else {
					u = remoteEP(ns, h, vm, "p"+vm, pick(ips), randLabels(ns))
				}
			case 3: // delete or invalidate an endpoint
				for _, k := range slices.Sorted(maps.Keys(m.store)) {
					if m.store[k].Key.Kind == resource.KindWorkloadEndpoint && rng.IntN(3) == 0 {
						u = deleted(m.store[k].Key)
						if rng.IntN(3) == 0 {
							u.Value = &resource.Invalid{Kind: resource.KindWorkloadEndpoint, Reason: errors.New("x")}
						}
						break
					}
				}
			case 4, 5: // policy
				name := pick(polNames)
				k := npKey(nsOne, name)
				if rng.IntN(3) == 0 {
					k = gnpKey(name)
				}
				var types []resource.PolicyType
				switch rng.IntN(3) {
				case 1:
					types = []resource.PolicyType{resource.Ingress}
				case 2:
					types = []resource.PolicyType{resource.Egress}
				}
				var order *float64
				if rng.IntN(2) == 0 {
					order = f(float64(rng.IntN(3)))
				}
				u = policy(k, pick(sels), types, order, randRules(), randRules())
				pol := u.Value.(*resource.Policy)
				pol.Tier = pick([]string{"default", "default", "t1", "ghost"})
				switch rng.IntN(6) {
				case 0:
					pol.DoNotTrack, pol.ApplyOnForward = true, true
				case 1:
					pol.PreDNAT, pol.ApplyOnForward, pol.Egress = true, true, nil
				case 2:
					pol.ApplyOnForward = true
				}
				if rng.IntN(8) == 0 {
					u.Value = &resource.Invalid{Kind: k.Kind, Reason: errors.New("bad"), Policy: u.Value.(*resource.Policy)}
				} else if rng.IntN(8) == 0 {
					u.Value = nil
				}
			case 6: // profile
				name := pick([]string{"p1", "p2"})
				u = resource.Update{Key: resource.Key{Kind: resource.KindProfile, Name: name}}
				if rng.IntN(4) > 0 {
					u.Value = &resource.Profile{Name: name, LabelsToApply: map[string]string{"tier": pick([]string{"gold", "silver"})}, Ingress: randRules()}
				}
			case 7: // tier
				name := pick([]string{"default", "t1"})
				u = resource.Update{Key: resource.Key{Kind: resource.KindTier, Name: name}}
				if rng.IntN(4) > 0 {
					u.Value = &resource.Tier{Name: name, Order: f(float64(rng.IntN(3))), DefaultAction: []resource.Action{resource.Deny, resource.Pass}[rng.IntN(2)]}
				}
			case 8: // network set
				name := pick([]string{"ns1", "ns2"})
				u = resource.Update{Key: resource.Key{Kind: resource.KindNetworkSet, Namespace: pick([]string{nsOne, nsTwo}), Name: name}}
				if rng.IntN(4) > 0 {
					u.Value = &resource.NetworkSet{Namespace: u.Key.Namespace, Name: name, Labels: randLabels(u.Key.Namespace),
						Nets: []netip.Prefix{netip.MustParsePrefix(pick([]string{"198.51.100.0/24", "0.0.0.0/0", "198.18.0.1/32"}))}}
				}
			case 10: // host endpoint
				name := pick([]string{"hep0", "hep1", "hep2"})
				u = resource.Update{Key: resource.Key{Kind: resource.KindHostEndpoint, Name: name}}
				if rng.IntN(6) > 0 {
					he := &resource.HostEndpoint{Name: name, Node: pick([]string{host, host, "h2"}), Labels: randLabels(""),
						InterfaceName: pick([]string{"eth0", "eth1", "*", "", "tapx"})}
					if he.InterfaceName == "" || rng.IntN(2) == 0 {
						he.ExpectedIPs = []netip.Addr{netip.MustParseAddr(pick(ips))}
					}
					if rng.IntN(3) == 0 {
						he.Profiles = []string{pick([]string{"p1", "p2", "nope"})}
					}
					u.Value = he
					if rng.IntN(5) == 0 {
						u.Value = &resource.Invalid{Kind: resource.KindHostEndpoint, Reason: errors.New("bad")}
					}
				}
			case 9:
				if !synced && rng.IntN(3) == 0 {
					g.OnInSync()
					synced = true
				}
				msgs := g.Flush()
				if !synced && msgs != nil {
					t.Fatalf("seed %d: output before InSync", seed)
				}
				d.apply(msgs)
				if synced {
					want, got := m.compute(), d.state()
					if !reflect.DeepEqual(got, want) {
						diff(t, seed, step, got, want)
					}
				}
				continue
			}
			if u.Key.Name == "" {
				continue
			}
			// The model's store: what etcd holds that calc can use. An
			// invalid endpoint, or an invalid policy with nothing
			// recovered, counts as absent.
			inv, invalid := u.Value.(*resource.Invalid)
			switch {
			case invalid && u.Key.Kind == resource.KindHostEndpoint:
				// A local host endpoint that goes invalid stays, fail-closed,
				// on its last valid interface.
				switch prev := m.store[u.Key.Path()].Value.(type) {
				case *resource.HostEndpoint:
					if isLocalHEP(prev) {
						m.store[u.Key.Path()] = resource.Update{Key: u.Key, Value: failClosedHEP{prev}}
					} else {
						delete(m.store, u.Key.Path())
					}
				case failClosedHEP:
				default:
					delete(m.store, u.Key.Path())
				}
			case u.Value == nil || invalid && (u.Key.Kind == resource.KindWorkloadEndpoint || inv.Policy == nil):
				delete(m.store, u.Key.Path())
			default:
				m.store[u.Key.Path()] = u
			}
			g.OnUpdates([]resource.Update{u})
		}
	}
}

func diff(t *testing.T, seed uint64, step int, got, want modelState) {
	t.Helper()
	for id, w := range want.sets {
		if !reflect.DeepEqual(got.sets[id], w) {
			t.Errorf("set %s: got %v want %v", id, got.sets[id], w)
		}
	}
	for id := range got.sets {
		if _, ok := want.sets[id]; !ok {
			t.Errorf("unexpected set %s", id)
		}
	}
	for id, w := range want.policies {
		if !reflect.DeepEqual(got.policies[id], w) {
			t.Errorf("policy %v:\n got %v\nwant %v", id, got.policies[id], w)
		}
	}
	for id := range got.policies {
		if _, ok := want.policies[id]; !ok {
			t.Errorf("unexpected policy %v", id)
		}
	}
	for id, w := range want.endpoints {
		if !reflect.DeepEqual(got.endpoints[id], w) {
			t.Errorf("endpoint %v:\n got %+v\nwant %+v", id, got.endpoints[id], w)
		}
	}
	if len(got.endpoints) != len(want.endpoints) {
		t.Errorf("endpoints: got %d want %d", len(got.endpoints), len(want.endpoints))
	}
	if !reflect.DeepEqual(got.hostEPs, want.hostEPs) {
		t.Errorf("host endpoints:\n got %+v\nwant %+v", got.hostEPs, want.hostEPs)
	}
	if !reflect.DeepEqual(got.profiles, want.profiles) {
		t.Errorf("profiles got %v want %v", got.profiles, want.profiles)
	}
	t.Fatalf("seed %d step %d: dataplane differs from the model", seed, step)
}
