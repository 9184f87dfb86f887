package calc

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"ocelot/contract"
	"ocelot/datastore/resource"
	"ocelot/selector"
)

// The guide's scenario (docs/calico.md): VM A in RegionOne on this
// host in SG web; VMs B1, B2 in RegionTwo in SG clients; the allow-tcp-80
// policy in RegionOne's namespace with namespaceSelector: all().
func seed(nsSel string) []resource.Update {
	allow := resource.Rule{Action: resource.Allow, Protocol: tcp(),
		Source:      resource.EntityRule{Selector: S(has(sgCli)), NamespaceSelector: S(nsSel)},
		Destination: resource.EntityRule{Ports: []resource.Port{{First: 80, Last: 80}}}}
	egressAll := []resource.Rule{{Action: resource.Allow, IPVersion: 4}, {Action: resource.Allow, IPVersion: 6}}
	return []resource.Update{
		{Key: resource.Key{Kind: resource.KindTier, Name: "default"}, Value: &resource.Tier{Name: "default", Order: f(1e6), DefaultAction: resource.Deny}},
		localEP(nsOne, "vm-a", "port-a", "198.18.1.12", labels(nsOne, sgWeb)),
		remoteEP(nsTwo, "r2-compute1", "vm-b1", "port-b1", "198.18.2.21", labels(nsTwo, sgCli)),
		remoteEP(nsTwo, "r2-compute2", "vm-b2", "port-b2", "198.18.2.22", labels(nsTwo, sgCli)),
		remoteEP(nsTwo, "r2-compute2", "vm-other", "port-o", "198.18.2.99", labels(nsTwo)),
		policy(npKey(nsOne, "allow-tcp-80"), has(sgWeb), []resource.PolicyType{resource.Ingress}, nil, []resource.Rule{allow}, nil),
		policy(npKey(nsOne, "ossg.default.a7734e61"), has(sgWeb), nil, nil, nil, egressAll),
		policy(npKey(nsTwo, "ossg.default.85cc3048"), has(sgCli), nil, nil, nil, egressAll), // another region's: never selects a local VM
	}
}

func TestSeedScenario(t *testing.T) {
	g, d, problems := run(t, seed("all()")...)
	if len(problems) != 0 {
		t.Errorf("problems: %v", problems)
	}
	cross, _ := selector.EntityRuleSelectors(S(has(sgCli)), S("all()"), nil, nsOne)
	setID := cross.UniqueID()
	if got := d.members(setID); !reflect.DeepEqual(got, []string{"198.18.2.21", "198.18.2.22"}) {
		t.Errorf("cross-region set members %v, want exactly the RegionTwo SG members", got)
	}
	if len(d.sets) != 1 {
		t.Errorf("%d sets, want 1", len(d.sets))
	}
	allowID := contract.PolicyID{Kind: "NetworkPolicy", Namespace: nsOne, Name: "allow-tcp-80"}
	sgID := contract.PolicyID{Kind: "NetworkPolicy", Namespace: nsOne, Name: "ossg.default.a7734e61"}
	p := d.policies[allowID]
	wantRule := contract.Rule{Action: contract.ActionAllow, Protocol: &contract.Protocol{Name: "tcp", Num: 6}, DstPorts: []contract.PortRange{{First: 80, Last: 80}}, SrcIPSetIDs: []string{setID}}
	if len(p.Inbound) != 1 || !reflect.DeepEqual(p.Inbound[0], wantRule) || len(p.Outbound) != 0 {
		t.Errorf("allow-tcp-80 rules:\n got %v / %v\nwant %v", p.Inbound, p.Outbound, wantRule)
	}
	if allowID.String() != "np/openstack-region-RegionOne/allow-tcp-80" {
		t.Errorf("policy ID string %q", allowID.String())
	}
	if len(d.policies) != 2 {
		t.Errorf("active policies %v, want the two selecting VM A", d.policies)
	}
	ep := d.endpoints[contract.EndpointID{Orchestrator: "openstack", WorkloadID: nsOne + "/vm-a", EndpointID: "port-a"}]
	want := []contract.TierPolicies{{Name: "default", DefaultAction: "Deny", Ingress: []contract.PolicyID{allowID, sgID}, Egress: []contract.PolicyID{sgID}}}
	if !reflect.DeepEqual(ep.Tiers, want) {
		t.Errorf("VM A tiers\n got %+v\nwant %+v", ep.Tiers, want)
	}
	if ep.Name != "tapport-a" || ep.IPv4Nets[0].String() != "198.18.1.12/32" {
		t.Errorf("endpoint %+v", ep)
	}
	st := g.Stats()
	if st.LocalEndpoints != 1 || st.ActivePolicies != 2 || st.ActiveSelectors != 1 || st.Hosts != 3 || st.WorkloadEndpoints != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestSeedScenarioWithoutNamespaceSelector(t *testing.T) {
	ups := append(seed(""), remoteEP(nsOne, "r1-compute2", "vm-c", "port-c", "198.18.1.30", labels(nsOne, sgCli)))
	_, d, _ := run(t, ups...)
	scoped, _ := selector.EntityRuleSelectors(S(has(sgCli)), nil, nil, nsOne)
	if got := d.members(scoped.UniqueID()); !reflect.DeepEqual(got, []string{"198.18.1.30"}) {
		t.Errorf("same-region set members %v, want only the RegionOne SG member", got)
	}
	_, d, _ = run(t, append(seed("all()"), remoteEP(nsOne, "r1-compute2", "vm-c", "port-c", "198.18.1.30", labels(nsOne, sgCli)))...)
	cross, _ := selector.EntityRuleSelectors(S(has(sgCli)), S("all()"), nil, nsOne)
	if got := d.members(cross.UniqueID()); !reflect.DeepEqual(got, []string{"198.18.1.30", "198.18.2.21", "198.18.2.22"}) {
		t.Errorf("cross-region set members %v", got)
	}
}

func TestNothingBeforeInSyncAndOrder(t *testing.T) {
	g := New(testConfig, nil)
	g.OnUpdates(seed("all()"))
	if msgs := g.Flush(); msgs != nil {
		t.Fatalf("flush before contract.InSync returned %d messages", len(msgs))
	}
	g.OnInSync()
	msgs := g.Flush()
	kinds := []string{}
	for _, m := range msgs {
		k := strings.TrimPrefix(reflect.TypeOf(m).String(), "contract.")
		if len(kinds) == 0 || kinds[len(kinds)-1] != k {
			kinds = append(kinds, k)
		}
	}
	if want := []string{"IPSetUpdate", "PolicyUpdate", "EndpointUpdate", "InSync"}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("message order %v, want %v", kinds, want)
	}
	if again := g.Flush(); len(again) != 0 {
		t.Errorf("second flush without changes returned %v", again)
	}
	// Deterministic: the same input gives the same output.
	g2 := New(testConfig, nil)
	g2.OnUpdates(seed("all()"))
	g2.OnInSync()
	if !reflect.DeepEqual(g2.Flush(), msgs) {
		t.Error("same input, different output")
	}
}

func TestMembershipChanges(t *testing.T) {
	g, d, _ := run(t, seed("all()")...)
	cross, _ := selector.EntityRuleSelectors(S(has(sgCli)), S("all()"), nil, nsOne)
	id := cross.UniqueID()
	step := func(ups ...resource.Update) []contract.Message {
		g.OnUpdates(ups)
		msgs := g.Flush()
		d.apply(msgs)
		return msgs
	}
	// A remote VM joins the SG: one delta, nothing else.
	msgs := step(remoteEP(nsTwo, "r2-compute2", "vm-other", "port-o", "198.18.2.99", labels(nsTwo, sgCli)))
	if len(msgs) != 1 || !reflect.DeepEqual(msgs[0], contract.IPSetDelta{ID: id, Added: []contract.Member{{Net: netip.MustParsePrefix("198.18.2.99/32")}}}) {
		t.Errorf("join: %v", msgs)
	}
	// A second endpoint with the same address (a brief overlap during a move): no change.
	if msgs = step(remoteEP(nsTwo, "r2-compute3", "vm-dup", "port-dup", "198.18.2.99", labels(nsTwo, sgCli))); len(msgs) != 0 {
		t.Errorf("duplicate address: %v", msgs)
	}
	if msgs = step(deleted(epKey(nsTwo, "r2-compute2", "vm-other", "port-o"))); len(msgs) != 0 {
		t.Errorf("address still contributed by the other endpoint: %v", msgs)
	}
	msgs = step(deleted(epKey(nsTwo, "r2-compute3", "vm-dup", "port-dup")))
	if len(msgs) != 1 || !reflect.DeepEqual(msgs[0], contract.IPSetDelta{ID: id, Removed: []contract.Member{{Net: netip.MustParsePrefix("198.18.2.99/32")}}}) {
		t.Errorf("last contributor gone: %v", msgs)
	}
	// A member changes address: one delta with both.
	msgs = step(remoteEP(nsTwo, "r2-compute1", "vm-b1", "port-b1", "198.18.2.31", labels(nsTwo, sgCli)))
	if len(msgs) != 1 || len(msgs[0].(contract.IPSetDelta).Added) != 1 || len(msgs[0].(contract.IPSetDelta).Removed) != 1 {
		t.Errorf("address change: %v", msgs)
	}
	// Coalescing: join and leave between flushes cancel out.
	g.OnUpdates([]resource.Update{remoteEP(nsTwo, "h9", "vm9", "p9", "198.18.2.9", labels(nsTwo, sgCli))})
	g.OnUpdates([]resource.Update{deleted(epKey(nsTwo, "h9", "vm9", "p9"))})
	if msgs = g.Flush(); len(msgs) != 0 {
		t.Errorf("join+leave before a flush produced %v", msgs)
	}
	if got := d.members(id); !reflect.DeepEqual(got, []string{"198.18.2.22", "198.18.2.31"}) {
		t.Errorf("members %v", got)
	}
}

func TestPolicyRemovalOrder(t *testing.T) {
	g, d, _ := run(t, seed("all()")...)
	g.OnUpdates([]resource.Update{deleted(npKey(nsOne, "allow-tcp-80"))})
	msgs := g.Flush()
	d.apply(msgs) // the fake dataplane fails on a removal before the endpoint moved off it
	var kinds []string
	for _, m := range msgs {
		kinds = append(kinds, strings.TrimPrefix(reflect.TypeOf(m).String(), "contract."))
	}
	if want := []string{"EndpointUpdate", "PolicyRemove", "IPSetRemove"}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("order %v, want %v", kinds, want)
	}
	// Recreated: set, policy, endpoint again.
	g.OnUpdates(seed("all()")[5:6])
	msgs = g.Flush()
	d.apply(msgs)
	if len(msgs) != 3 {
		t.Errorf("recreate: %v", msgs)
	}
}

func TestInvalidPolicyFailsClosed(t *testing.T) {
	g, d, _ := run(t, seed("all()")...)
	var problems []Problem
	g.report = func(p Problem) { problems = append(problems, p) }
	k := npKey(nsOne, "allow-tcp-80")
	// The stored value no longer validates, but its selector is known.
	rec := &resource.Policy{Kind: resource.KindNetworkPolicy, Namespace: nsOne, Name: "allow-tcp-80", Tier: "default",
		Selector: S(has(sgWeb)), Types: []resource.PolicyType{resource.Ingress}}
	g.OnUpdates([]resource.Update{{Key: k, Value: &resource.Invalid{Kind: k.Kind, Reason: errors.New("spec.ingress[0].protocol: bad"), Policy: rec}}})
	d.apply(g.Flush())
	p := d.policies[contract.PolicyID{Kind: "NetworkPolicy", Namespace: nsOne, Name: "allow-tcp-80"}]
	if !p.FailClosed || !reflect.DeepEqual(p.Inbound, []contract.Rule{contract.DenyAll}) {
		t.Errorf("invalid policy: %+v", p)
	}
	if len(problems) != 1 || !strings.Contains(problems[0].Reason, "deny-all") {
		t.Errorf("problems %v", problems)
	}
	// Garbage with no selector at all: the last known selector is kept, still deny-all.
	g.OnUpdates([]resource.Update{{Key: k, Value: &resource.Invalid{Kind: k.Kind, Reason: errors.New("not valid JSON")}}})
	d.apply(g.Flush())
	if p := d.policies[contract.PolicyID{Kind: "NetworkPolicy", Namespace: nsOne, Name: "allow-tcp-80"}]; !p.FailClosed {
		t.Errorf("garbage after a valid version: %+v", p)
	}
	ep := d.endpoints[contract.EndpointID{Orchestrator: "openstack", WorkloadID: nsOne + "/vm-a", EndpointID: "port-a"}]
	if len(ep.Tiers) != 1 || len(ep.Tiers[0].Ingress) != 2 {
		t.Errorf("endpoint still governed by the deny-all policy: %+v", ep.Tiers)
	}
	// A valid rewrite recovers.
	g.OnUpdates(seed("all()")[5:6])
	d.apply(g.Flush())
	if p := d.policies[contract.PolicyID{Kind: "NetworkPolicy", Namespace: nsOne, Name: "allow-tcp-80"}]; p.FailClosed || p.Inbound[0].Action != contract.ActionAllow {
		t.Errorf("recovery: %+v", p)
	}
}

func TestInvalidAndMisplacedEndpoints(t *testing.T) {
	g, d, _ := run(t, seed("all()")...)
	var problems []Problem
	g.report = func(p Problem) { problems = append(problems, p) }
	a := epKey(nsOne, host, "vm-a", "port-a")
	g.OnUpdates([]resource.Update{{Key: a, Value: &resource.Invalid{Kind: resource.KindWorkloadEndpoint, Reason: errors.New("bad mac")}}})
	d.apply(g.Flush())
	if len(d.endpoints) != 0 {
		t.Errorf("invalid local endpoint still programmed")
	}
	if len(d.policies) != 0 || len(d.sets) != 0 {
		t.Errorf("policies/sets of no endpoint remain: %v %v", d.policies, d.sets)
	}
	// A VM of this host in RegionTwo's namespace: reported, not programmed,
	// but its address is still a member where RegionTwo's SG is selected.
	g.OnUpdates(seed("all()")[1:2])
	mis := localEP(nsTwo, "vm-m", "port-m", "198.18.2.50", labels(nsTwo, sgCli))
	g.OnUpdates([]resource.Update{mis})
	d.apply(g.Flush())
	if len(d.endpoints) != 1 {
		t.Errorf("endpoints %v", d.endpoints)
	}
	cross, _ := selector.EntityRuleSelectors(S(has(sgCli)), S("all()"), nil, nsOne)
	if !slices.Contains(d.members(cross.UniqueID()), "198.18.2.50") {
		t.Errorf("misplaced endpoint's address missing from the set: %v", d.members(cross.UniqueID()))
	}
	if len(problems) != 1 || !strings.Contains(problems[0].Reason, "not this region's") {
		t.Errorf("problems %v", problems)
	}
}

func TestTiersAndOrder(t *testing.T) {
	rule := []resource.Rule{{Action: resource.Allow}}
	pass := &resource.Tier{Name: "admin", Order: f(100), DefaultAction: resource.Pass}
	ups := []resource.Update{
		localEP(nsOne, "vm", "p", "198.18.1.1", labels(nsOne, sgWeb)),
		{Key: resource.Key{Kind: resource.KindTier, Name: "admin"}, Value: pass},
		{Key: resource.Key{Kind: resource.KindTier, Name: "default"}, Value: &resource.Tier{Name: "default", Order: f(1e6), DefaultAction: resource.Deny}},
		policy(npKey(nsOne, "b-no-order"), has(sgWeb), nil, nil, rule, rule),
		policy(npKey(nsOne, "a-no-order"), has(sgWeb), nil, nil, rule, rule),
		policy(npKey(nsOne, "z-order-5"), has(sgWeb), []resource.PolicyType{resource.Egress}, f(5), nil, rule),
		policy(gnpKey("global-deny"), has(sgWeb), []resource.PolicyType{resource.Ingress}, f(10), rule, nil),
	}
	adminPol := policy(gnpKey("admin-pass"), "all()", nil, f(1), rule, rule)
	adminPol.Value.(*resource.Policy).Tier = "admin"
	ghost := policy(gnpKey("in-ghost-tier"), "all()", nil, nil, rule, rule)
	ghost.Value.(*resource.Policy).Tier = "zz-missing"
	ghost2 := policy(gnpKey("in-ghost-tier-2"), "all()", nil, nil, rule, rule)
	ghost2.Value.(*resource.Policy).Tier = "aa-missing"
	_, d, _ := run(t, append(ups, adminPol, ghost, ghost2)...)
	ep := d.endpoints[contract.EndpointID{Orchestrator: "openstack", WorkloadID: nsOne + "/vm", EndpointID: "p"}]
	id := func(kind, name, _ string) contract.PolicyID {
		ns := nsOne
		if kind == "GlobalNetworkPolicy" {
			ns = ""
		}
		return contract.PolicyID{Kind: kind, Namespace: ns, Name: name}
	}
	want := []contract.TierPolicies{
		{Name: "admin", DefaultAction: "Pass", Ingress: []contract.PolicyID{id("GlobalNetworkPolicy", "admin-pass", "admin")}, Egress: []contract.PolicyID{id("GlobalNetworkPolicy", "admin-pass", "admin")}},
		{Name: "default", DefaultAction: "Deny",
			Ingress: []contract.PolicyID{id("GlobalNetworkPolicy", "global-deny", "default"), id("NetworkPolicy", "a-no-order", "default"), id("NetworkPolicy", "b-no-order", "default")},
			Egress:  []contract.PolicyID{id("NetworkPolicy", "z-order-5", "default"), id("NetworkPolicy", "a-no-order", "default"), id("NetworkPolicy", "b-no-order", "default")}},
		{Name: "aa-missing", DefaultAction: "Deny", Ingress: []contract.PolicyID{id("GlobalNetworkPolicy", "in-ghost-tier-2", "aa-missing")}, Egress: []contract.PolicyID{id("GlobalNetworkPolicy", "in-ghost-tier-2", "aa-missing")}},
		{Name: "zz-missing", DefaultAction: "Deny", Ingress: []contract.PolicyID{id("GlobalNetworkPolicy", "in-ghost-tier", "zz-missing")}, Egress: []contract.PolicyID{id("GlobalNetworkPolicy", "in-ghost-tier", "zz-missing")}},
	}
	if !reflect.DeepEqual(ep.Tiers, want) {
		t.Errorf("tiers\n got %+v\nwant %+v", ep.Tiers, want)
	}
}

func TestProfiles(t *testing.T) {
	ep := localEP(nsOne, "vm", "p", "198.18.1.1", labels(nsOne))
	ep.Value.(*resource.Endpoint).Profiles = []string{"gold", "missing", DefaultAllowProfile}
	gold := resource.Update{Key: resource.Key{Kind: resource.KindProfile, Name: "gold"}, Value: &resource.Profile{
		Name: "gold", LabelsToApply: map[string]string{"tier": "gold"}, Ingress: []resource.Rule{{Action: resource.Deny}}}}
	pol := policy(gnpKey("gold-only"), "tier == 'gold'", nil, nil, []resource.Rule{{Action: resource.Allow}}, nil)
	g, d, problems := run(t, ep, gold, pol)
	e := d.endpoints[contract.EndpointID{Orchestrator: "openstack", WorkloadID: nsOne + "/vm", EndpointID: "p"}]
	if len(e.Tiers) != 1 {
		t.Errorf("policy selecting an inherited label did not apply: %+v", e.Tiers)
	}
	if !reflect.DeepEqual(e.ProfileIDs, []string{"gold", "missing", DefaultAllowProfile}) {
		t.Errorf("profiles %v", e.ProfileIDs)
	}
	if m := d.profiles["missing"]; !m.FailClosed || !reflect.DeepEqual(m.Inbound, []contract.Rule{contract.DenyAll}) {
		t.Errorf("missing profile %+v", m)
	}
	if a := d.profiles[DefaultAllowProfile]; a.FailClosed || a.Inbound[0].Action != contract.ActionAllow || a.Outbound[0].Action != contract.ActionAllow {
		t.Errorf("default-allow profile %+v", a)
	}
	if len(problems) != 1 || !strings.Contains(problems[0].Reason, "does not exist") {
		t.Errorf("problems %v", problems)
	}
	// The profile's labels change: the policy stops applying.
	g.OnUpdates([]resource.Update{{Key: gold.Key, Value: &resource.Profile{Name: "gold", LabelsToApply: map[string]string{"tier": "silver"}}}})
	d.apply(g.Flush())
	if e := d.endpoints[contract.EndpointID{Orchestrator: "openstack", WorkloadID: nsOne + "/vm", EndpointID: "p"}]; len(e.Tiers) != 0 {
		t.Errorf("policy still applies after the profile's labels changed: %+v", e.Tiers)
	}
	// The endpoint goes: its profiles go too.
	g.OnUpdates([]resource.Update{deleted(ep.Key)})
	d.apply(g.Flush())
	if len(d.profiles) != 0 || len(d.endpoints) != 0 {
		t.Errorf("left behind: %v %v", d.profiles, d.endpoints)
	}
}

func TestRuleResolution(t *testing.T) {
	icmpCode := 0
	udp, _ := resource.ParseProtocol("UDP")
	icmp, _ := resource.ParseProtocol("ICMP")
	rules := []resource.Rule{
		{Action: resource.Allow, Source: resource.EntityRule{Selector: S("role == 'db'"), NotSelector: S("quarantine == 'yes'")}},
		{Action: resource.Deny, Source: resource.EntityRule{NotSelector: S("trusted == 'yes'")}},
		{Action: resource.Allow, Protocol: tcp(), Destination: resource.EntityRule{Ports: []resource.Port{{Name: "http"}}}, Source: resource.EntityRule{Selector: S("role == 'web'")}},
		{Action: resource.Allow, Protocol: tcp(), Destination: resource.EntityRule{Selector: S("role == 'web'"), Ports: []resource.Port{{First: 80, Last: 80}, {Name: "http"}}}},
		{Action: resource.Allow, Protocol: &udp, Source: resource.EntityRule{Nets: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, NotPorts: []resource.Port{{First: 1, Last: 1023}}}},
		{Action: resource.Allow, Protocol: &icmp, IPVersion: 4, ICMP: &resource.ICMP{Type: 8, Code: &icmpCode}},
		{Action: resource.Allow, Protocol: tcp(), Unenforceable: "http"},
		{Action: resource.Deny, Protocol: tcp(), Unenforceable: "serviceAccounts"},
		{Action: resource.Log},
		{Action: resource.Pass, NotProtocol: tcp()},
	}
	res, err := resolveRules(rules, nil, nsOne)
	if err != nil {
		t.Fatal(err)
	}
	scope := func(sel, notSel string) string {
		p, n := selector.EntityRuleSelectors(S(sel), nil, S(notSel), nsOne)
		if p != nil && n != nil {
			return selector.And(p, selector.Not(n)).UniqueID()
		}
		if p != nil {
			return p.UniqueID()
		}
		return n.UniqueID()
	}
	web, _ := selector.EntityRuleSelectors(S("role == 'web'"), nil, nil, nsOne)
	named := selector.MakeUniqueID("n", web.UniqueID()+",tcp,http")
	in := res.inbound
	if len(in) != 9 {
		t.Fatalf("%d rules, want 9 (the unenforceable Allow is dropped): %v", len(in), in)
	}
	checks := []struct {
		got, want any
	}{
		{in[0].SrcIPSetIDs, []string{scope("role == 'db'", "quarantine == 'yes'")}}, // notSelector folded
		{in[0].NotSrcIPSetIDs, []string(nil)},
		{in[1].SrcIPSetIDs, []string{scope("", "trusted == 'yes'")}}, // namespace scope with the notSelector folded in
		{in[1].NotSrcIPSetIDs, []string(nil)},
		{in[2].DstNamedPortIPSetIDs, []string{selector.MakeUniqueID("n", selector.All.UniqueID()+",tcp,http")}},
		{in[2].DstIPSetIDs, []string(nil)},
		{in[3].DstIPSetIDs, []string{web.UniqueID()}}, // numeric and named ports: plain set too
		{in[3].DstNamedPortIPSetIDs, []string{named}},
		{in[3].DstPorts, []contract.PortRange{{First: 80, Last: 80}}},
		{in[4].SrcNets, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}},
		{in[4].NotSrcPorts, []contract.PortRange{{First: 1, Last: 1023}}},
		{in[5].ICMP.String(), "8/0"},
		{in[6].Action, contract.ActionDeny}, // unenforceable Deny denies more
		{in[6].Protocol.Name, "tcp"},
		{in[7].Action, contract.ActionLog},
		{in[8].Action, contract.ActionPass},
		{in[8].NotProtocol.Num, uint8(6)},
		{len(res.problems), 2},
	}
	for i, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("check %d: got %v, want %v", i, c.got, c.want)
		}
	}
	// In a global policy a lone notSelector has nothing to fold into: it
	// gets its own set in a negated match.
	res, _ = resolveRules(rules[1:2], nil, "")
	if want := []string{selector.MustParse("trusted == 'yes'").UniqueID()}; !reflect.DeepEqual(res.inbound[0].NotSrcIPSetIDs, want) || res.inbound[0].SrcIPSetIDs != nil {
		t.Errorf("global notSelector: %v", res.inbound[0])
	}
}

func TestNamedPortAndNetworkSetMembers(t *testing.T) {
	web := localEP(nsOne, "vm", "p", "198.18.1.1", map[string]string{nsLabel: nsOne, "role": "web"})
	web.Value.(*resource.Endpoint).Ports = []resource.NamedPort{{Name: "http", Protocol: *tcp(), Port: 8080}}
	world := resource.Update{Key: resource.Key{Kind: resource.KindGlobalNetworkSet, Name: "world"},
		Value: &resource.NetworkSet{Name: "world", Labels: map[string]string{"role": "world"}, Nets: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}}
	partners := resource.Update{Key: resource.Key{Kind: resource.KindNetworkSet, Namespace: nsOne, Name: "partners"},
		Value: &resource.NetworkSet{Namespace: nsOne, Name: "partners", Labels: map[string]string{nsLabel: nsOne, "role": "world"}, Nets: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}}
	pol := policy(npKey(nsOne, "p"), "role == 'web'", nil, nil, []resource.Rule{
		{Action: resource.Allow, Protocol: tcp(), Destination: resource.EntityRule{Selector: S("role == 'web'"), Ports: []resource.Port{{Name: "http"}}}},
		{Action: resource.Allow, Source: resource.EntityRule{Selector: S("role == 'world'")}},
		{Action: resource.Allow, Source: resource.EntityRule{Selector: S("role == 'world'"), NamespaceSelector: S("global()")}},
	}, nil)
	_, d, _ := run(t, web, world, partners, pol)
	p := d.policies[contract.PolicyID{Kind: "NetworkPolicy", Namespace: nsOne, Name: "p"}]
	named := p.Inbound[0].DstNamedPortIPSetIDs[0]
	if got := d.members(named); !reflect.DeepEqual(got, []string{"198.18.1.1,tcp:8080"}) || d.setTypes[named] != contract.IPSetIPAndPort {
		t.Errorf("named port set %v %v", got, d.setTypes[named])
	}
	if got := d.members(p.Inbound[1].SrcIPSetIDs[0]); !reflect.DeepEqual(got, []string{"198.51.100.0/24"}) {
		t.Errorf("namespaced rule reaches the namespaced network set only: %v", got)
	}
	if got := d.members(p.Inbound[2].SrcIPSetIDs[0]); !reflect.DeepEqual(got, []string{"0.0.0.0/1", "128.0.0.0/1"}) {
		t.Errorf("global() reaches the global network set, /0 split: %v", got)
	}
}

// One resource, one ID: GlobalNetworkPolicies "default.web" and "web", and
// a NetworkPolicy "web", are three policies with three IDs (Felix's, from
// the key), each enforced on its own endpoints; deleting one leaves the
// others and their endpoints' references intact.
func TestPolicyIdentityFromKey(t *testing.T) {
	allow := []resource.Rule{{Action: resource.Allow}}
	deny := []resource.Rule{{Action: resource.Deny}}
	ups := []resource.Update{
		localEP(nsOne, "vm-a", "port-a", "198.18.1.1", labels(nsOne, sgWeb)),
		localEP(nsOne, "vm-b", "port-b", "198.18.1.2", labels(nsOne, sgCli)),
		policy(gnpKey("default.web"), has(sgWeb), nil, nil, allow, allow),
		policy(gnpKey("web"), has(sgCli), nil, nil, deny, deny),
		policy(npKey(nsOne, "web"), has(sgCli), nil, f(1), allow, nil),
	}
	g, d, _ := run(t, ups...)
	gDefaultWeb := contract.PolicyID{Kind: "GlobalNetworkPolicy", Name: "default.web"}
	gWeb := contract.PolicyID{Kind: "GlobalNetworkPolicy", Name: "web"}
	nWeb := contract.PolicyID{Kind: "NetworkPolicy", Namespace: nsOne, Name: "web"}
	if gDefaultWeb.String() != "gnp/default.web" || gWeb.String() != "gnp/web" || nWeb.String() != "np/"+nsOne+"/web" {
		t.Fatalf("ID strings %s %s %s", gDefaultWeb, gWeb, nWeb)
	}
	if len(d.policies) != 3 || d.policies[gDefaultWeb].Inbound[0].Action != contract.ActionAllow || d.policies[gWeb].Inbound[0].Action != contract.ActionDeny {
		t.Fatalf("policies %+v", d.policies)
	}
	a := contract.EndpointID{Orchestrator: "openstack", WorkloadID: nsOne + "/vm-a", EndpointID: "port-a"}
	b := contract.EndpointID{Orchestrator: "openstack", WorkloadID: nsOne + "/vm-b", EndpointID: "port-b"}
	if got := d.endpoints[a].Tiers[0].Ingress; !reflect.DeepEqual(got, []contract.PolicyID{gDefaultWeb}) {
		t.Errorf("VM A ingress %v", got)
	}
	if got := d.endpoints[b].Tiers[0].Ingress; !reflect.DeepEqual(got, []contract.PolicyID{nWeb, gWeb}) {
		t.Errorf("VM B ingress %v", got)
	}
	// Deleting "web" touches neither "default.web" nor VM A.
	g.OnUpdates([]resource.Update{deleted(gnpKey("web"))})
	msgs := g.Flush()
	d.apply(msgs)
	for _, m := range msgs {
		if u, ok := m.(contract.EndpointUpdate); ok && u.ID == a {
			t.Errorf("VM A reprogrammed by another policy's deletion: %+v", u)
		}
	}
	if _, ok := d.policies[gDefaultWeb]; !ok || len(d.policies) != 2 {
		t.Errorf("after deleting web: %+v", d.policies)
	}
}

// A policy that moves to another tier keeps its ID (and so its chains):
// the dataplane gets an update, never a removal of the chain it still uses.
func TestTierChangeKeepsPolicyID(t *testing.T) {
	rule := []resource.Rule{{Action: resource.Allow}}
	p := policy(gnpKey("mover"), has(sgWeb), nil, nil, rule, rule)
	g, d, _ := run(t, localEP(nsOne, "vm", "p", "198.18.1.1", labels(nsOne, sgWeb)), p)
	moved := policy(gnpKey("mover"), has(sgWeb), nil, nil, rule, rule)
	moved.Value.(*resource.Policy).Tier = "t1"
	g.OnUpdates([]resource.Update{moved})
	msgs := g.Flush()
	d.apply(msgs)
	for _, m := range msgs {
		if _, ok := m.(contract.PolicyRemove); ok {
			t.Errorf("tier change removed the policy: %v", msgs)
		}
	}
	ep := d.endpoints[contract.EndpointID{Orchestrator: "openstack", WorkloadID: nsOne + "/vm", EndpointID: "p"}]
	if len(ep.Tiers) != 1 || ep.Tiers[0].Name != "t1" {
		t.Errorf("tiers %+v", ep.Tiers)
	}
}

// A policy stored under a name that cannot name a chain is still enforced
// as deny-all where its selector reaches, under an ID no valid name can
// take; the ID holds only chain-safe characters.
func TestInvalidPolicyNameGetsSafeID(t *testing.T) {
	bad := []string{"a b", "deny%2dbad", "x\n-A FORWARD -j ACCEPT", "_" + strings.Repeat("0", 24)}
	for _, name := range bad {
		k := gnpKey(name)
		rec := &resource.Policy{Kind: k.Kind, Name: name, Tier: "default", Selector: S(has(sgWeb)), Types: []resource.PolicyType{resource.Ingress}}
		_, d, problems := run(t, localEP(nsOne, "vm", "p", "198.18.1.1", labels(nsOne, sgWeb)),
			resource.Update{Key: k, Value: &resource.Invalid{Kind: k.Kind, Reason: errors.New("metadata.name: bad"), Policy: rec}},
			policy(gnpKey("web"), has(sgWeb), nil, nil, []resource.Rule{{Action: resource.Allow}}, nil))
		if len(d.policies) != 2 || len(problems) == 0 {
			t.Fatalf("%q: policies %v problems %v", name, d.policies, problems)
		}
		for id, p := range d.policies {
			if id.Name == "web" {
				continue
			}
			if !p.FailClosed || id.Name == name || strings.IndexFunc(id.String(), func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("_/-.", r))
			}) >= 0 || resource.CheckName(resource.KindGlobalNetworkPolicy, id.Name) == nil {
				t.Errorf("%q: ID %q, fail closed %v", name, id, p.FailClosed)
			}
		}
	}
}

// Only this agent's interfaces are programmed: a local endpoint on an
// interface without an InterfacePrefix is reported once and not
// programmed, and no endpoint of another host or region can take over a
// local endpoint's interface.
func TestInterfaceOwnership(t *testing.T) {
	var problems []Problem
	g := New(testConfig, func(p Problem) { problems = append(problems, p) })
	own := localEP(nsOne, "vm-a", "port-a", "198.18.1.1", labels(nsOne, sgWeb))
	eth0 := localEP(nsOne, "vm-x", "port-x", "198.18.1.9", labels(nsOne, sgWeb))
	eth0.Value.(*resource.Endpoint).InterfaceName = "eth0"
	g.OnUpdates([]resource.Update{own, eth0, eth0, policy(gnpKey("web"), has(sgWeb), nil, nil, []resource.Rule{{Action: resource.Allow}}, nil)})
	g.OnInSync()
	d := newFakeDataplane(t)
	d.apply(g.Flush())
	if len(d.endpoints) != 1 || d.endpoints[contract.EndpointID{Orchestrator: "openstack", WorkloadID: nsOne + "/vm-a", EndpointID: "port-a"}].Name != "tapport-a" {
		t.Errorf("endpoints %+v", d.endpoints)
	}
	if len(problems) != 1 || !strings.Contains(problems[0].Reason, "InterfacePrefix") || problems[0].Key != eth0.Key.Path() {
		t.Errorf("problems %v", problems)
	}
	// Another region's endpoint claiming this host, and another host's
	// endpoint, both on VM A's tap: nothing changes for the tap.
	thief := localEP(nsTwo, "vm-t", "port-t", "198.18.2.9", labels(nsTwo))
	thief.Value.(*resource.Endpoint).InterfaceName = "tapport-a"
	other := remoteEP(nsOne, "r1-compute2", "vm-o", "port-o", "198.18.1.77", labels(nsOne))
	g.OnUpdates([]resource.Update{thief, other})
	for _, m := range g.Flush() {
		if u, ok := m.(contract.EndpointUpdate); ok {
			t.Errorf("an endpoint update after foreign claims: %+v", u)
		}
	}
	// With no prefix configured nothing is this agent's.
	_, d2, _ := runWith(t, Config{Hostname: host, Namespace: nsOne}, own)
	if len(d2.endpoints) != 0 {
		t.Errorf("programmed without an InterfacePrefix: %+v", d2.endpoints)
	}
}

// allowSpoofedSourcePrefixes is honoured only with WorkloadSourceSpoofing
// = Any; otherwise ["0.0.0.0/0"] must not switch anti-spoofing off, and the
// endpoint is reported once.
func TestSpoofingGate(t *testing.T) {
	ep := localEP(nsOne, "vm", "p", "198.18.1.1", labels(nsOne))
	ep.Value.(*resource.Endpoint).AllowSpoofedSourcePrefixes = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	id := contract.EndpointID{Orchestrator: "openstack", WorkloadID: nsOne + "/vm", EndpointID: "p"}

	g, d, problems := run(t, ep)
	if got := d.endpoints[id].AllowSpoofedSourcePrefixes; len(got) != 0 {
		t.Errorf("spoofing Disabled, prefixes sent: %v", got)
	}
	if len(problems) != 1 || !strings.Contains(problems[0].Reason, "WorkloadSourceSpoofing") {
		t.Errorf("problems %v", problems)
	}
	g.report = func(p Problem) { t.Errorf("reported again: %v", p) }
	g.OnUpdates([]resource.Update{ep}) // the same again: no second report
	d.apply(g.Flush())
	cfg := testConfig
	cfg.WorkloadSourceSpoofingAny = true
	_, d, problems = runWith(t, cfg, ep)
	if got := d.endpoints[id].AllowSpoofedSourcePrefixes; len(got) != 1 || len(problems) != 0 {
		t.Errorf("spoofing Any: prefixes %v, problems %v", got, problems)
	}
}

// One bad object costs only what it touches: an invalid policy, profile,
// endpoint or network set fails closed where it reaches, and every other
// endpoint, policy and set is exactly as it would be without it.
func TestIsolation(t *testing.T) {
	base := append(seed("all()"),
		localEP(nsOne, "vm-c", "port-c", "198.18.1.13", labels(nsOne, sgCli)),
		resource.Update{Key: resource.Key{Kind: resource.KindNetworkSet, Namespace: nsTwo, Name: "partners"},
			Value: &resource.NetworkSet{Namespace: nsTwo, Name: "partners", Labels: labels(nsTwo, sgCli), Nets: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}},
	)
	_, want, _ := run(t, base...)
	vmA := contract.EndpointID{Orchestrator: "openstack", WorkloadID: nsOne + "/vm-a", EndpointID: "port-a"}
	vmC := contract.EndpointID{Orchestrator: "openstack", WorkloadID: nsOne + "/vm-c", EndpointID: "port-c"}
	inv := func(k resource.Key, p *resource.Policy) resource.Update {
		return resource.Update{Key: k, Value: &resource.Invalid{Kind: k.Kind, Reason: errors.New("bad"), Policy: p}}
	}
	cases := []struct {
		name    string
		bad     []resource.Update
		touched func(d *fakeDataplane) bool // the bad object's own effect, which is all that may differ
		own     string                      // the bad object's own address, which may leave sets
		report  bool                        // calc reports it (the datastore reports every invalid value)
	}{
		{"invalid policy selecting VM C", []resource.Update{inv(gnpKey("bad"), &resource.Policy{Kind: resource.KindGlobalNetworkPolicy, Name: "bad", Tier: "default",
			Selector: S(has(sgCli)), Types: []resource.PolicyType{resource.Ingress, resource.Egress}})},
			func(d *fakeDataplane) bool {
				p := d.policies[contract.PolicyID{Kind: "GlobalNetworkPolicy", Name: "bad"}]
				return p.FailClosed && len(d.endpoints[vmC].Tiers) == 1 && slices.Contains(d.endpoints[vmC].Tiers[0].Ingress, p.ID)
			}, "", true},
		{"invalid profile on VM C", []resource.Update{
			{Key: resource.Key{Kind: resource.KindProfile, Name: "bad-profile"}, Value: &resource.Invalid{Kind: resource.KindProfile, Reason: errors.New("bad")}},
			func() resource.Update {
				u := localEP(nsOne, "vm-c", "port-c", "198.18.1.13", labels(nsOne, sgCli))
				u.Value.(*resource.Endpoint).Profiles = []string{"bad-profile"}
				return u
			}()},
			func(d *fakeDataplane) bool {
				return d.profiles["bad-profile"].FailClosed && slices.Equal(d.endpoints[vmC].ProfileIDs, []string{"bad-profile"})
			}, "", true},
		{"invalid local endpoint VM C", []resource.Update{{Key: epKey(nsOne, host, "vm-c", "port-c"), Value: &resource.Invalid{Kind: resource.KindWorkloadEndpoint, Reason: errors.New("bad")}}},
			func(d *fakeDataplane) bool { _, ok := d.endpoints[vmC]; return !ok }, "198.18.1.13", false},
		{"invalid remote endpoint", []resource.Update{{Key: epKey(nsTwo, "r2-compute9", "vm-z", "port-z"), Value: &resource.Invalid{Kind: resource.KindWorkloadEndpoint, Reason: errors.New("bad")}}},
			func(d *fakeDataplane) bool { return true }, "", false},
		{"invalid network set", []resource.Update{{Key: resource.Key{Kind: resource.KindNetworkSet, Namespace: nsTwo, Name: "partners"}, Value: &resource.Invalid{Kind: resource.KindNetworkSet, Reason: errors.New("bad")}}},
			func(d *fakeDataplane) bool {
				cross, _ := selector.EntityRuleSelectors(S(has(sgCli)), S("all()"), nil, nsOne)
				return !slices.Contains(d.members(cross.UniqueID()), "198.51.100.0/24")
			}, "198.51.100.0/24", false},
	}
	for _, c := range cases {
		_, d, problems := run(t, append(slices.Clone(base), c.bad...)...)
		if !c.touched(d) {
			t.Errorf("%s: the bad object's own effect is missing", c.name)
		}
		if c.report && len(problems) == 0 {
			t.Errorf("%s: not reported", c.name)
		}
		// Everything the bad object does not touch is unchanged: VM A, the
		// guide's policies, and the sets' other members.
		if !reflect.DeepEqual(d.endpoints[vmA], want.endpoints[vmA]) {
			t.Errorf("%s: VM A changed:\n got %+v\nwant %+v", c.name, d.endpoints[vmA], want.endpoints[vmA])
		}
		for id, p := range want.policies {
			if !reflect.DeepEqual(d.policies[id], p) {
				t.Errorf("%s: policy %s changed", c.name, id)
			}
		}
		for id := range want.sets {
			got, w := d.members(id), want.members(id)
			w = slices.DeleteFunc(w, func(m string) bool { return m == c.own })
			if !reflect.DeepEqual(got, w) {
				t.Errorf("%s: set %s %v, want %v", c.name, id, got, w)
			}
		}
	}
}

// Two paths never alias one resource: putting and deleting
// globalnetworkpolicies/deny%2dbad while deny-bad exists leaves deny-bad
// and the endpoints it governs untouched (the alias is a resource of its
// own, with an invalid name, enforced as deny-all where it reaches).
func TestEscapedKeyIsNotAnAlias(t *testing.T) {
	const spec = `{"spec":{"selector":"has(` + sgCli + `)","ingress":[{"action":"Deny","source":{"nets":["198.51.100.0/24"]}}]}}`
	keyOf := func(path string) resource.Key {
		k, ok := resource.ParseKey(resource.ResourcePrefix + path)
		if !ok {
			t.Fatalf("ParseKey(%s)", path)
		}
		return k
	}
	real, alias := keyOf("globalnetworkpolicies/deny-bad"), keyOf("globalnetworkpolicies/deny%2dbad")
	if real == alias {
		t.Fatal("one key for two paths")
	}
	vmC := localEP(nsOne, "vm-c", "port-c", "198.18.1.13", labels(nsOne, sgCli))
	g, d, _ := run(t, vmC, decodeForTest(real, []byte(spec)))
	realID := contract.PolicyID{Kind: "GlobalNetworkPolicy", Name: "deny-bad"}
	before := d.policies[realID]
	if before.FailClosed || len(before.Inbound) != 1 {
		t.Fatalf("deny-bad: %+v", before)
	}
	g.OnUpdates([]resource.Update{decodeForTest(alias, []byte(spec))})
	d.apply(g.Flush())
	g.OnUpdates([]resource.Update{decodeForTest(alias, nil)})
	d.apply(g.Flush())
	if got := d.policies[realID]; !reflect.DeepEqual(got, before) || len(d.policies) != 1 {
		t.Errorf("after the alias came and went: %+v", d.policies)
	}
	ep := d.endpoints[contract.EndpointID{Orchestrator: "openstack", WorkloadID: nsOne + "/vm-c", EndpointID: "port-c"}]
	if len(ep.Tiers) != 1 || !reflect.DeepEqual(ep.Tiers[0].Ingress, []contract.PolicyID{realID}) {
		t.Errorf("VM C tiers %+v", ep.Tiers)
	}
}
