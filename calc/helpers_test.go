package calc

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"testing"

	"ocelot/contract"
	"ocelot/datastore/resource"
	"ocelot/selector"
)

const (
	host    = "r1-compute1"
	nsOne   = "openstack-region-RegionOne"
	nsTwo   = "openstack-region-RegionTwo"
	sgWeb   = "sg.projectcalico.org/openstack-a7734e61-b545-452d-a3cd-0189cbd9747a"
	sgCli   = "sg.projectcalico.org/openstack-85cc3048-abc3-43cc-89b3-377341426ac5"
	nsLabel = "projectcalico.org/namespace"
)

// fakeDataplane applies messages as the dataplane would and fails the test
// when one arrives in an unsafe order.
type fakeDataplane struct {
	t         testing.TB
	sets      map[string]map[contract.Member]bool
	setTypes  map[string]contract.IPSetType
	policies  map[contract.PolicyID]contract.PolicyUpdate
	profiles  map[string]contract.ProfileUpdate
	endpoints map[contract.EndpointID]contract.EndpointUpdate
	hostEPs   map[string]contract.HostEndpointUpdate
	inSync    bool
}

func newFakeDataplane(t testing.TB) *fakeDataplane {
	return &fakeDataplane{t: t, sets: map[string]map[contract.Member]bool{}, setTypes: map[string]contract.IPSetType{},
		policies: map[contract.PolicyID]contract.PolicyUpdate{}, profiles: map[string]contract.ProfileUpdate{}, endpoints: map[contract.EndpointID]contract.EndpointUpdate{},
		hostEPs: map[string]contract.HostEndpointUpdate{}}
}

// hostTiers lists every tier of a host endpoint, of every kind.
func hostTiers(h contract.HostEndpointUpdate) []contract.TierPolicies {
	return slices.Concat(h.Tiers, h.UntrackedTiers, h.PreDNATTiers, h.ForwardTiers)
}

func usesPolicy(tiers []contract.TierPolicies, id contract.PolicyID) bool {
	for _, tier := range tiers {
		if slices.Contains(tier.Ingress, id) || slices.Contains(tier.Egress, id) {
			return true
		}
	}
	return false
}

func ruleSets(rules []contract.Rule) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.IPSetIDs()...)
	}
	return out
}

func (d *fakeDataplane) apply(msgs []contract.Message) {
	d.t.Helper()
	for i, m := range msgs {
		if d.inSync && i == len(msgs)-1 {
			if _, ok := m.(contract.InSync); ok {
				d.t.Fatalf("InSync sent twice")
			}
		}
		switch x := m.(type) {
		case contract.IPSetUpdate:
			s := map[contract.Member]bool{}
			for _, mem := range x.Members {
				s[mem] = true
			}
			d.sets[x.ID], d.setTypes[x.ID] = s, x.Type
		case contract.IPSetDelta:
			s, ok := d.sets[x.ID]
			if !ok {
				d.t.Fatalf("delta for unknown set %s", x.ID)
			}
			for _, mem := range x.Removed {
				if !s[mem] {
					d.t.Fatalf("set %s: removing absent member %v", x.ID, mem)
				}
				delete(s, mem)
			}
			for _, mem := range x.Added {
				if s[mem] {
					d.t.Fatalf("set %s: adding present member %v", x.ID, mem)
				}
				s[mem] = true
			}
		case contract.IPSetRemove:
			for id, p := range d.policies {
				if slices.Contains(ruleSets(append(p.Inbound, p.Outbound...)), x.ID) {
					d.t.Fatalf("set %s removed while policy %v uses it", x.ID, id)
				}
			}
			delete(d.sets, x.ID)
		case contract.PolicyUpdate:
			for _, id := range ruleSets(append(x.Inbound, x.Outbound...)) {
				if _, ok := d.sets[id]; !ok {
					d.t.Fatalf("policy %v refers to set %s before it exists", x.ID, id)
				}
			}
			d.policies[x.ID] = x
		case contract.PolicyRemove:
			for _, ep := range d.endpoints {
				if usesPolicy(ep.Tiers, x.ID) {
					d.t.Fatalf("policy %v removed while endpoint %v uses it", x.ID, ep.ID)
				}
			}
			for _, h := range d.hostEPs {
				if usesPolicy(hostTiers(h), x.ID) {
					d.t.Fatalf("policy %v removed while host endpoint %s uses it", x.ID, h.ID)
				}
			}
			delete(d.policies, x.ID)
		case contract.ProfileUpdate:
			for _, id := range ruleSets(append(x.Inbound, x.Outbound...)) {
				if _, ok := d.sets[id]; !ok {
					d.t.Fatalf("profile %v refers to set %s before it exists", x.ID, id)
				}
			}
			d.profiles[x.ID] = x
		case contract.ProfileRemove:
			for _, ep := range d.endpoints {
				if slices.Contains(ep.ProfileIDs, x.ID) {
					d.t.Fatalf("profile %s removed while endpoint %v uses it", x.ID, ep.ID)
				}
			}
			for _, h := range d.hostEPs {
				if slices.Contains(h.ProfileIDs, x.ID) {
					d.t.Fatalf("profile %s removed while host endpoint %s uses it", x.ID, h.ID)
				}
			}
			delete(d.profiles, x.ID)
		case contract.EndpointUpdate:
			for _, tier := range x.Tiers {
				for _, id := range append(slices.Clone(tier.Ingress), tier.Egress...) {
					if _, ok := d.policies[id]; !ok {
						d.t.Fatalf("endpoint %v refers to policy %v before it exists", x.ID, id)
					}
				}
			}
			for _, p := range x.ProfileIDs {
				if _, ok := d.profiles[p]; !ok {
					d.t.Fatalf("endpoint %v refers to profile %s before it exists", x.ID, p)
				}
			}
			d.endpoints[x.ID] = x
		case contract.EndpointRemove:
			delete(d.endpoints, x.ID)
		case contract.HostEndpointUpdate:
			for _, tier := range hostTiers(x) {
				for _, id := range append(slices.Clone(tier.Ingress), tier.Egress...) {
					if _, ok := d.policies[id]; !ok {
						d.t.Fatalf("host endpoint %s refers to policy %v before it exists", x.ID, id)
					}
				}
			}
			for _, p := range x.ProfileIDs {
				if _, ok := d.profiles[p]; !ok {
					d.t.Fatalf("host endpoint %s refers to profile %s before it exists", x.ID, p)
				}
			}
			d.hostEPs[x.ID] = x
		case contract.HostEndpointRemove:
			if _, ok := d.hostEPs[x.ID]; !ok {
				d.t.Fatalf("removal of unknown host endpoint %s", x.ID)
			}
			delete(d.hostEPs, x.ID)
		case contract.InSync:
			if i != len(msgs)-1 {
				d.t.Fatalf("InSync is not last")
			}
			d.inSync = true
		default:
			d.t.Fatalf("unknown message %T", m)
		}
	}
}

func (d *fakeDataplane) members(id string) []string {
	var out []string
	for m := range d.sets[id] {
		out = append(out, m.String())
	}
	sort.Strings(out)
	return out
}

// Builders for datastore updates.

func epName(h, vm, port string) string {
	return resource.EscapeEndpointNamePart(h) + "-openstack-" + resource.EscapeEndpointNamePart(vm) + "-" + resource.EscapeEndpointNamePart(port)
}

func epKey(ns, h, vm, port string) resource.Key {
	return resource.Key{Kind: resource.KindWorkloadEndpoint, Namespace: ns, Name: epName(h, vm, port)}
}

func labels(ns string, sgs ...string) map[string]string {
	m := map[string]string{nsLabel: ns, "projectcalico.org/orchestrator": "openstack"}
	for _, sg := range sgs {
		m[sg] = ""
	}
	return m
}

func localEP(ns, vm, port, ip string, l map[string]string) resource.Update {
	return resource.Update{Key: epKey(ns, host, vm, port), Value: &resource.Endpoint{
		Namespace: ns, Name: epName(host, vm, port), Host: host, Orchestrator: "openstack", Workload: vm, EndpointID: port,
		Node: host, Labels: l, InterfaceName: "tap" + port, MAC: "fa:16:3e:00:00:01",
		IPv4Nets: []netip.Prefix{netip.MustParsePrefix(ip + "/32")},
	}}
}

func remoteEP(ns, h, vm, port, ip string, l map[string]string) resource.Update {
	return resource.Update{Key: epKey(ns, h, vm, port), Value: &resource.RemoteEndpoint{
		Namespace: ns, Labels: l, Nets: []netip.Prefix{netip.MustParsePrefix(ip + "/32")},
	}}
}

func deleted(k resource.Key) resource.Update { return resource.Update{Key: k} }

func npKey(ns, name string) resource.Key {
	return resource.Key{Kind: resource.KindNetworkPolicy, Namespace: ns, Name: name}
}

func gnpKey(name string) resource.Key {
	return resource.Key{Kind: resource.KindGlobalNetworkPolicy, Name: name}
}

func policy(k resource.Key, sel string, types []resource.PolicyType, order *float64, in, out []resource.Rule) resource.Update {
	if len(types) == 0 {
		types = []resource.PolicyType{resource.Ingress, resource.Egress}
	}
	return resource.Update{Key: k, Value: &resource.Policy{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name,
		Tier: "default", Order: order, Selector: S(sel), Types: types, Ingress: in, Egress: out}}
}

func tcp() *resource.Protocol { p, _ := resource.ParseProtocol("TCP"); return &p }

func f(v float64) *float64 { return &v }

func has(label string) string { return fmt.Sprintf("has(%s)", label) }

// run builds a graph, feeds it the updates, marks it in sync and returns the
// first flush applied to a fake dataplane.
func run(t testing.TB, ups ...resource.Update) (*Graph, *fakeDataplane, []Problem) {
	t.Helper()
	return runWith(t, testConfig, ups...)
}

// runWith is run with a configuration of the test's choosing.
func runWith(t testing.TB, cfg Config, ups ...resource.Update) (*Graph, *fakeDataplane, []Problem) {
	t.Helper()
	var problems []Problem
	g := New(cfg, func(p Problem) { problems = append(problems, p) })
	g.OnUpdates(ups)
	g.OnInSync()
	d := newFakeDataplane(t)
	d.apply(g.Flush())
	return g, d, problems
}

// S parses a selector for a resource literal; "" is an absent selector.
func S(s string) *selector.Selector {
	if s == "" {
		return nil
	}
	return selector.MustParse(s)
}

// testConfig is this host's configuration in the tests: Neutron's taps.
var testConfig = Config{Hostname: host, Namespace: nsOne, InterfacePrefixes: []string{"tap"}}
