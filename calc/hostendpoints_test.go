package calc

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"ocelot/contract"
	"ocelot/datastore/resource"
)

func hepKey(name string) resource.Key {
	return resource.Key{Kind: resource.KindHostEndpoint, Name: name}
}

func hostEP(name, node, iface string, l map[string]string, ips ...string) resource.Update {
	he := &resource.HostEndpoint{Name: name, Node: node, InterfaceName: iface, Labels: l}
	for _, ip := range ips {
		he.ExpectedIPs = append(he.ExpectedIPs, netip.MustParseAddr(ip))
	}
	return resource.Update{Key: hepKey(name), Value: he}
}

// flagged is a global policy selecting all() with the given flags.
func flagged(name string, doNotTrack, preDNAT, applyOnForward bool, order float64) resource.Update {
	u := policy(gnpKey(name), "all()", nil, f(order), []resource.Rule{{Action: resource.Allow}}, []resource.Rule{{Action: resource.Allow}})
	p := u.Value.(*resource.Policy)
	p.DoNotTrack, p.PreDNAT, p.ApplyOnForward = doNotTrack, preDNAT, applyOnForward
	if preDNAT {
		p.Egress = nil
	}
	return u
}

func gnp(name string) contract.PolicyID {
	return contract.PolicyID{Kind: "GlobalNetworkPolicy", Name: name}
}

// doNotTrack and preDNAT policies govern host endpoints only, in their own
// tiers ending in Pass; applyOnForward policies govern forwarded traffic
// too; workloads get only the normal policies.
func TestHostEndpointPolicySplit(t *testing.T) {
	wep := localEP(nsOne, "vm", "p", "198.18.1.1", labels(nsOne))
	hep := hostEP("eth0-hep", host, "eth0", map[string]string{"role": "host"}, "198.18.0.11")
	_, d, problems := run(t, wep, hep,
		flagged("untracked", true, false, true, 1), flagged("prednat", false, true, true, 2),
		flagged("forward", false, false, true, 3), flagged("normal", false, false, false, 4))
	if len(problems) != 0 {
		t.Errorf("problems: %v", problems)
	}
	e := d.endpoints[contract.EndpointID{Orchestrator: "openstack", WorkloadID: nsOne + "/vm", EndpointID: "p"}]
	wantWEP := []contract.TierPolicies{{Name: "default", DefaultAction: "Deny",
		Ingress: []contract.PolicyID{gnp("forward"), gnp("normal")}, Egress: []contract.PolicyID{gnp("forward"), gnp("normal")}}}
	if !reflect.DeepEqual(e.Tiers, wantWEP) {
		t.Errorf("workload tiers:\n got %+v\nwant %+v", e.Tiers, wantWEP)
	}
	h, ok := d.hostEPs["eth0-hep"]
	if !ok {
		t.Fatalf("host endpoint not sent: %+v", d.hostEPs)
	}
	want := contract.HostEndpointUpdate{ID: "eth0-hep", InterfaceName: "eth0", ExpectedIPv4: []netip.Addr{netip.MustParseAddr("198.18.0.11")},
		Tiers: []contract.TierPolicies{{Name: "default", DefaultAction: "Deny",
			Ingress: []contract.PolicyID{gnp("forward"), gnp("normal")}, Egress: []contract.PolicyID{gnp("forward"), gnp("normal")}}},
		UntrackedTiers: []contract.TierPolicies{{Name: "default", DefaultAction: "Pass",
			Ingress: []contract.PolicyID{gnp("untracked")}, Egress: []contract.PolicyID{gnp("untracked")}}},
		PreDNATTiers: []contract.TierPolicies{{Name: "default", DefaultAction: "Pass", Ingress: []contract.PolicyID{gnp("prednat")}}},
		ForwardTiers: []contract.TierPolicies{{Name: "default", DefaultAction: "Deny",
			Ingress: []contract.PolicyID{gnp("forward")}, Egress: []contract.PolicyID{gnp("forward")}}},
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("host endpoint:\n got %+v\nwant %+v", h, want)
	}
}

// A doNotTrack or preDNAT policy that selects only workloads is not
// active: nothing of it reaches the dataplane, nor its sets.
func TestHostOnlyPolicyInactiveOnWorkloads(t *testing.T) {
	wep := localEP(nsOne, "vm", "p", "198.18.1.1", labels(nsOne, sgWeb))
	pol := flagged("untracked", true, false, true, 1)
	pol.Value.(*resource.Policy).Ingress = []resource.Rule{{Action: resource.Allow, Source: resource.EntityRule{Selector: S(has(sgCli))}}}
	g, d, _ := run(t, wep, pol)
	if len(d.policies) != 0 || len(d.sets) != 0 {
		t.Errorf("a doNotTrack policy selecting only a workload was sent: %v %v", d.policies, d.sets)
	}
	// A host endpoint appears that it selects: now it is active.
	g.OnUpdates([]resource.Update{hostEP("h", host, "eth0", nil)})
	d.apply(g.Flush())
	if _, ok := d.policies[gnp("untracked")]; !ok || len(d.sets) != 1 {
		t.Errorf("the policy did not activate for a host endpoint: %v %v", d.policies, d.sets)
	}
	// The policy becomes a normal one, with the same selector: the
	// workload gets it.
	g.OnUpdates([]resource.Update{flagged("untracked", false, false, false, 1)})
	d.apply(g.Flush())
	e := d.endpoints[contract.EndpointID{Orchestrator: "openstack", WorkloadID: nsOne + "/vm", EndpointID: "p"}]
	if len(e.Tiers) != 1 || len(d.hostEPs["h"].UntrackedTiers) != 0 || len(d.hostEPs["h"].Tiers) != 1 {
		t.Errorf("flag change not followed: workload %+v host %+v", e.Tiers, d.hostEPs["h"])
	}
}

// Only this host's host endpoints are programmed; every one's expected
// IPs are set members; a namespaced policy never selects one.
func TestHostEndpointLocalityAndMembers(t *testing.T) {
	mine := hostEP("mine", host, "", map[string]string{"role": "db"}, "198.18.0.11", "2001:db8::11")
	other := hostEP("other", "r1-compute2", "eth0", map[string]string{"role": "db"}, "198.18.0.12")
	np := policy(npKey(nsOne, "ns-pol"), "all()", nil, nil, nil, nil)
	src := policy(gnpKey("from-db"), "all()", nil, nil, []resource.Rule{{Action: resource.Allow, Source: resource.EntityRule{Selector: S("role == 'db'")}}}, nil)
	g, d, _ := run(t, mine, other, np, src)
	if len(d.hostEPs) != 1 {
		t.Fatalf("host endpoints %+v", d.hostEPs)
	}
	if st := g.Stats(); st.HostEndpoints != 2 || st.LocalEndpoints != 1 {
		t.Errorf("stats %+v", st)
	}
	g.OnUpdates([]resource.Update{deleted(hepKey("other")), {Key: hepKey("mine"), Value: &resource.Invalid{Kind: resource.KindHostEndpoint, Reason: errors.New("x")}}})
	if st := g.Stats(); st.HostEndpoints != 0 || st.LocalEndpoints != 1 {
		t.Errorf("stats after a delete and an invalid value %+v", st)
	}
	h := d.hostEPs["mine"]
	if h.InterfaceName != "" || len(h.ExpectedIPv4) != 1 || len(h.ExpectedIPv6) != 1 {
		t.Errorf("addresses %+v", h)
	}
	if len(h.Tiers) != 1 || len(h.Tiers[0].Ingress) != 1 || h.Tiers[0].Ingress[0] != gnp("from-db") {
		t.Errorf("a namespaced policy selected a host endpoint, or the global one did not: %+v", h.Tiers)
	}
	id := d.policies[gnp("from-db")].Inbound[0].SrcIPSetIDs[0]
	if got := d.members(id); !reflect.DeepEqual(got, []string{"198.18.0.11", "198.18.0.12", "2001:db8::11"}) {
		t.Errorf("members %v", got)
	}
}

// A host endpoint naming a workload interface is refused; an invalid one
// that was programmed stays, deny-all, on its last interface; a deleted
// one goes.
func TestHostEndpointRefusedAndFailClosed(t *testing.T) {
	tap := hostEP("tap-hep", host, "tap1234", nil)
	hep := hostEP("h", host, "eth0", nil, "198.18.0.11")
	hep.Value.(*resource.HostEndpoint).Profiles = []string{DefaultAllowProfile}
	g, d, problems := run(t, tap, hep, flagged("normal", false, false, false, 1))
	if _, ok := d.hostEPs["tap-hep"]; ok {
		t.Error("a host endpoint on a workload interface was programmed")
	}
	if len(problems) != 1 || !strings.Contains(problems[0].Reason, "workload interface") {
		t.Errorf("problems %v", problems)
	}
	g.OnUpdates([]resource.Update{{Key: hepKey("h"), Value: &resource.Invalid{Kind: resource.KindHostEndpoint, Reason: errors.New("spec.node: bad")}}})
	d.apply(g.Flush())
	h := d.hostEPs["h"]
	if !h.FailClosed || h.InterfaceName != "eth0" || len(h.Tiers)+len(h.ProfileIDs) != 0 {
		t.Errorf("invalid host endpoint not fail-closed on its last interface: %+v", h)
	}
	if len(d.policies) != 0 || len(d.profiles) != 0 {
		t.Errorf("a fail-closed host endpoint kept its policies or profiles: %v %v", d.policies, d.profiles)
	}
	// Valid again: back to normal; then deleted.
	g.OnUpdates([]resource.Update{hep})
	d.apply(g.Flush())
	if h := d.hostEPs["h"]; h.FailClosed || len(h.Tiers) != 1 || len(h.ProfileIDs) != 1 {
		t.Errorf("fixed host endpoint %+v", h)
	}
	g.OnUpdates([]resource.Update{deleted(hepKey("h"))})
	d.apply(g.Flush())
	if len(d.hostEPs) != 0 || len(d.policies) != 0 || len(d.profiles) != 0 {
		t.Errorf("left behind: %v %v %v", d.hostEPs, d.policies, d.profiles)
	}
}
