package calc

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"ocelot/contract"
	"ocelot/datastore/resource"
	"ocelot/selector"
)

// model recomputes the whole desired state from the datastore contents,
// the simplest way possible, to check the incremental graph against.
type model struct {
	store map[string]resource.Update // by path: the latest value of each key
}

type modelState struct {
	sets      map[string][]string                   // set ID -> sorted members
	policies  map[contract.PolicyID][]contract.Rule // inbound then outbound, flattened for comparison
	endpoints map[contract.EndpointID][]contract.TierPolicies
	profiles  map[string]bool // active profile IDs
}

func (m *model) labelsOf(own map[string]string, profiles []string) map[string]string {
	out := map[string]string{}
	for i := len(profiles) - 1; i >= 0; i-- {
		for _, u := range m.store {
			if p, ok := u.Value.(*resource.Profile); ok && u.Key.Kind == resource.KindProfile && u.Key.Name == profiles[i] {
				maps.Copy(out, p.LabelsToApply)
			}
		}
	}
	maps.Copy(out, own)
	return out
}

func (m *model) compute() modelState {
	st := modelState{sets: map[string][]string{}, policies: map[contract.PolicyID][]contract.Rule{}, endpoints: map[contract.EndpointID][]contract.TierPolicies{}, profiles: map[string]bool{}}
	type pol struct {
		id  contract.PolicyID
		p   *resource.Policy
		sel *selector.Selector
		bad bool
	}
	var pols []pol
	tiers := map[string]*resource.Tier{}
	for _, u := range m.store {
		switch v := u.Value.(type) {
		case *resource.Policy:
			s := selector.PolicySelector(v.Selector, v.NamespaceSelector, v.Namespace)
			pols = append(pols, pol{contract.PolicyID{Kind: string(u.Key.Kind), Namespace: u.Key.Namespace, Name: v.Name}, v, s, false})
		case *resource.Invalid:
			if v.Policy != nil {
				s := selector.PolicySelector(v.Policy.Selector, v.Policy.NamespaceSelector, v.Policy.Namespace)
				pols = append(pols, pol{contract.PolicyID{Kind: string(u.Key.Kind), Namespace: u.Key.Namespace, Name: v.Policy.Name}, v.Policy, s, true})
			}
		case *resource.Tier:
			tiers[u.Key.Name] = v
		}
	}
	var specs []setSpec
	active := map[contract.PolicyID]bool{}
	for _, u := range m.store {
		ep, ok := u.Value.(*resource.Endpoint)
		if !ok || ep.Namespace != nsOne {
			continue
		}
		l := m.labelsOf(ep.Labels, ep.Profiles)
		byTier := map[string][]pol{}
		for _, p := range pols {
			if p.sel.Evaluate(l) {
				byTier[p.p.Tier] = append(byTier[p.p.Tier], p)
				active[p.id] = true
			}
		}
		names := slices.Collect(maps.Keys(byTier))
		slices.SortFunc(names, func(a, b string) int {
			ta, tb := tiers[a], tiers[b]
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
		})
		var tps []contract.TierPolicies
		for _, n := range names {
			ps := byTier[n]
			slices.SortFunc(ps, func(a, b pol) int {
				if c := compareOrder(a.p.Order, b.p.Order); c != 0 {
					return c
				}
				return cmp.Compare(a.id.Name+"/"+a.id.Namespace+"/"+a.id.Kind, b.id.Name+"/"+b.id.Namespace+"/"+b.id.Kind)
			})
			tp := contract.TierPolicies{Name: n, DefaultAction: "Deny"}
			if t := tiers[n]; t != nil && t.DefaultAction == resource.Pass {
				tp.DefaultAction = "Pass"
			}
			for _, p := range ps {
				if p.p.Applies(resource.Ingress) {
					tp.Ingress = append(tp.Ingress, p.id)
				}
				if p.p.Applies(resource.Egress) {
					tp.Egress = append(tp.Egress, p.id)
				}
			}
			tps = append(tps, tp)
		}
		st.endpoints[contract.EndpointID{Orchestrator: ep.Orchestrator, WorkloadID: ep.WorkloadID(), EndpointID: ep.EndpointID}] = tps
		for _, pr := range ep.Profiles {
			st.profiles[pr] = true
		}
	}
	for _, p := range pols {
		if !active[p.id] {
			continue
		}
		if p.bad {
			st.policies[p.id] = []contract.Rule{contract.DenyAll, contract.DenyAll}
			continue
		}
		res, _ := resolveRules(p.p.Ingress, p.p.Egress, p.p.Namespace)
		st.policies[p.id] = append(slices.Clone(res.inbound), res.outbound...)
		specs = append(specs, res.sets...)
	}
	for pr := range st.profiles {
		for _, u := range m.store {
			if p, ok := u.Value.(*resource.Profile); ok && u.Key.Name == pr {
				res, _ := resolveRules(p.Ingress, p.Egress, "")
				specs = append(specs, res.sets...)
			}
		}
	}
	for _, sp := range specs {
		s := &ipSet{spec: sp, members: map[contract.Member]int{}}
		for _, u := range m.store {
			var it memberItem
			var l map[string]string
			switch v := u.Value.(type) {
			case *resource.Endpoint:
				it, l = memberItem{nets: v.Nets(), ports: v.Ports}, m.labelsOf(v.Labels, v.Profiles)
			case *resource.RemoteEndpoint:
				it, l = memberItem{nets: v.Nets, ports: v.Ports}, m.labelsOf(v.Labels, v.Profiles)
			case *resource.NetworkSet:
				it, l = memberItem{nets: splitZero(v.Nets)}, v.Labels
			default:
				continue
			}
			if sp.sel.Evaluate(l) {
				for _, mem := range s.contributions(&it) {
					s.members[mem]++
				}
			}
		}
		var mem []string
		for k := range s.members {
			mem = append(mem, k.String())
		}
		slices.Sort(mem)
		st.sets[sp.id] = mem
	}
	return st
}

func (d *fakeDataplane) state() modelState {
	st := modelState{sets: map[string][]string{}, policies: map[contract.PolicyID][]contract.Rule{}, endpoints: map[contract.EndpointID][]contract.TierPolicies{}, profiles: map[string]bool{}}
	for id := range d.sets {
		st.sets[id] = d.members(id)
		if st.sets[id] == nil {
			st.sets[id] = nil
		}
	}
	for id, p := range d.policies {
		st.policies[id] = append(slices.Clone(p.Inbound), p.Outbound...)
	}
	for id, e := range d.endpoints {
		st.endpoints[id] = e.Tiers
	}
	for id := range d.profiles {
		st.profiles[id] = true
	}
	return st
}

// TestRandomAgainstModel feeds random endpoints, labels, policies, profiles,
// tiers and network sets in random orders, flushing at random points, and
// after every flush compares what the dataplane was told with the model.
func TestRandomAgainstModel(t *testing.T) {
	sels := []string{"all()", "has(sgA)", "has(sgB)", "has(sgA) && role == 'x'", "role == 'y'", "!has(sgC)", "tier == 'gold'", "has(sgB) || has(sgC)"}
	ips := []string{"198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5", "198.18.0.6"}
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
			switch rng.IntN(10) {
			case 0, 1, 2: // endpoint
				vm := fmt.Sprint("vm", rng.IntN(10))
				ns, h := pick([]string{nsOne, nsOne, nsTwo}), pick([]string{host, "h2", "h3"})
				// Keep one identity per vm so that a key's host never changes.
				h = []string{host, "h2", "h3"}[len(vm)%3+int(vm[2]-'0')%3]
				if h == host {
					u = localEP(ns, vm, "p"+vm, pick(ips), randLabels(ns))
					if rng.IntN(3) == 0 {
						u.Value.(*resource.Endpoint).Profiles = []string{pick([]string{"p1", "p2", "nope"})}
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
				name := fmt.Sprint("pol", rng.IntN(6))
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
				u.Value.(*resource.Policy).Tier = pick([]string{"default", "default", "t1", "ghost"})
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
			if u.Value == nil {
				delete(m.store, u.Key.Path())
			} else if inv, ok := u.Value.(*resource.Invalid); ok && u.Key.Kind == resource.KindWorkloadEndpoint {
				_ = inv
				delete(m.store, u.Key.Path())
			} else if inv, ok := u.Value.(*resource.Invalid); ok && inv.Policy == nil {
				delete(m.store, u.Key.Path())
			} else {
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
	if !reflect.DeepEqual(got.profiles, want.profiles) {
		t.Errorf("profiles got %v want %v", got.profiles, want.profiles)
	}
	t.Fatalf("seed %d step %d: dataplane differs from the model", seed, step)
}
