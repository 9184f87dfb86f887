package fvtests

import (
	"encoding/json"
	"fmt"
	"strings"

	"ocelot/fv-tests/lab"
	"ocelot/internal/netlab"
)

// The hostile cases. Each names what it writes; the suite (hostile_test.go)
// checks the rest. Most cases aim at the victim VM: a policy that must
// fail closed on it (then its port 80 is denied), or an endpoint value
// that must not open, spoof or reroute anything.

const sgOpen = "0a0b0c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d" // a group whose policy (openGNP) allows everything in

func globalPolicyKey(name string) string { return resRoot + "globalnetworkpolicies/" + name }

func policyKey(ns, name string) string { return resRoot + "networkpolicies/" + ns + "/" + name }

// Rules and specs.

func allowTCP(ports ...any) map[string]any {
	return map[string]any{"action": "Allow", "protocol": "TCP", "destination": map[string]any{"ports": ports},
		"source": map[string]any{"selector": sgSel(sgClients), "namespaceSelector": "all()"}}
}

func denyTCP(ports ...any) map[string]any {
	r := allowTCP(ports...)
	r["action"] = "Deny"
	return r
}

// onVictim is a policy spec selecting the victim VM with these ingress
// rules, ordered before the security groups' policies.
func onVictim(rules ...map[string]any) map[string]any {
	return map[string]any{"selector": sgSel(sgVictim), "types": []string{"Ingress"}, "order": 1, "ingress": rules}
}

// allow81 is the policy most cases dress up: if the agent took it as
// valid, the victim's port 81 would open; if it failed open, nothing would
// change; failing closed denies the victim's port 80 too.
func allow81() map[string]any { return onVictim(allowTCP(81)) }

// openGNP lets everything into VMs of the sgOpen group: an endpoint that
// takes over a tap with that label would open it.
var openGNP = [2]string{globalPolicyKey("hostile-open"), globalPolicy("hostile-open", map[string]any{
	"selector": sgSel(sgOpen), "types": []string{"Ingress"}, "ingress": []any{map[string]any{"action": "Allow"}}})}

// with returns a copy of a spec with a field changed.
func with(spec map[string]any, field string, v any) map[string]any {
	out := map[string]any{}
	for k, x := range spec {
		out[k] = x
	}
	out[field] = v
	return out
}

// withRule returns allow81 with its rule changed by f.
func withRule(f func(r map[string]any)) map[string]any {
	r := allowTCP(81)
	f(r)
	return onVictim(r)
}

func nested(depth int, inner string) string {
	return strings.Repeat("(", depth) + inner + strings.Repeat(")", depth)
}

// Endpoints.

// endpoint returns a VM's endpoint value after changing its decoded form.
func endpoint(vm *lab.VM, change func(m, spec map[string]any)) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(vm.EndpointJSON()), &m); err != nil {
		panic(err)
	}
	change(m, m["spec"].(map[string]any))
	return mustJSON(m)
}

func labelsOf(m map[string]any) map[string]any {
	return m["metadata"].(map[string]any)["labels"].(map[string]any)
}

// fakeVM is a port without a VM behind it (its endpoint is all there is):
// on host h (which may be a name only), in region, on interface iface.
func fakeVM(h *lab.Host, region string, n int, ip, iface string, sgs map[string]string) *lab.VM {
	return &lab.VM{VM: &netlab.VM{IP: ip, MAC: fmt.Sprintf("fa:16:3e:77:00:%02x", n), HostSide: iface}, Host: h, Name: "fake",
		UUID: fmt.Sprintf("%08x-7777-4777-8777-%012x", n, n), Port: fmt.Sprintf("%08x-7777-4777-9777-%012x", n, n),
		Region: region, SGs: sgs}
}

// fake is a fake port's key and value.
func fake(h *lab.Host, region string, n int, ip, iface string, sgs map[string]string) [2]string {
	vm := fakeVM(h, region, n, ip, iface, sgs)
	return [2]string{vm.EndpointKey(), vm.EndpointJSON()}
}

func felixConfig(name string, extra map[string]any) string {
	spec := map[string]any{"endpointReportingEnabled": true, "interfacePrefix": "tap"}
	for k, v := range extra {
		spec[k] = v
	}
	return mustJSON(map[string]any{"kind": "FelixConfiguration", "apiVersion": "projectcalico.org/v3",
		"metadata": map[string]any{"name": name}, "spec": spec})
}

func hostileCases(s *hostileSuite) []hostileCase {
	victimKey := s.victim.EndpointKey()
	victimEP := func(change func(m, spec map[string]any)) [2]string {
		return [2]string{victimKey, endpoint(s.victim, change)}
	}
	badName := func(name string) hostileCase {
		return hostileCase{puts: [][2]string{{globalPolicyKey(name), globalPolicy(name, allow81())}}, closed: true, reported: true}
	}
	named := func(name string, c hostileCase) hostileCase { c.name = name; return c }
	invalidRule := func(name string, f func(r map[string]any)) hostileCase {
		return hostileCase{name: name, puts: [][2]string{{globalPolicyKey("hostile-rule"), globalPolicy("hostile-rule", withRule(f))}}, closed: true, reported: true}
	}
	invalidSpec := func(name string, spec map[string]any) hostileCase {
		return hostileCase{name: name, puts: [][2]string{{globalPolicyKey("hostile-spec"), globalPolicy("hostile-spec", spec)}}, closed: true, reported: true}
	}
	r1 := s.r1
	other := &lab.Host{Name: "r9-compute9"}

	return []hostileCase{
		// Names and keys. An invalid name makes the policy invalid; its
		// selector still reaches the victim, which is denied.
		named("gnp-name-space", badName("allow victim")),
		named("gnp-name-quote", badName(`allow"victim`)),
		named("gnp-name-newline-injection", badName("v\n-I FORWARD 1 -j ACCEPT\n#")),
		named("gnp-name-control-chars", badName("v\x1b[31m\x07\t\x00x")),
		named("gnp-name-homoglyph", badName("аllow-victim")), // Cyrillic а
		named("gnp-name-rtl-override", badName("allow-\u202evictim")),
		named("gnp-name-invalid-utf8", badName("v\xff\xfe")),
		named("gnp-name-250-chars", badName(strings.Repeat("a", 250))),
		named("gnp-name-dotdot", badName("..")),
		named("gnp-name-percent-escape", badName("allow%20victim")),
		{name: "gnp-name-63-chars-valid", opens81: true,
			puts:  [][2]string{{globalPolicyKey(strings.Repeat("b", 63)), globalPolicy(strings.Repeat("b", 63), allow81())}},
			check: func(c *caseRun) { c.flows(flow{from: s.client, to: s.victim, port: 81, open: true}) }},
		{name: "np-name-newline", closed: true, reported: true,
			puts: [][2]string{{policyKey("openstack-region-RegionOne", "ossg.default.x\ny"), namespacedPolicy("openstack-region-RegionOne", "ossg.default.x\ny", allow81())}}},
		{name: "np-other-region-selects-victim", puts: [][2]string{{policyKey("openstack-region-RegionTwo", "hostile-deny"),
			namespacedPolicy("openstack-region-RegionTwo", "hostile-deny", onVictim(denyTCP(80)))}}},
		{name: "key-shapes-ignored", puts: [][2]string{
			{globalPolicyKey("a/b"), globalPolicy("a", allow81())},
			{globalPolicyKey(""), globalPolicy("b", allow81())},
			{policyKey("openstack-region-RegionOne", ""), namespacedPolicy("openstack-region-RegionOne", "c", allow81())},
			{policyKey("openstack-region-RegionOne", "d/e"), namespacedPolicy("openstack-region-RegionOne", "d", allow81())},
			{policyKey("openstack-region-RegionOne%2fx", "f"), namespacedPolicy("openstack-region-RegionOne", "f", allow81())},
			{resRoot + "bogus/x", globalPolicy("x", allow81())},
			{resRoot + "globalnetworkpolicies", globalPolicy("y", allow81())},
			{"/calico/resources/v3/projectcalico.org", globalPolicy("z", allow81())},
		}},
		{name: "gnp-percent-alias", closed: true, reported: true, run: func(c *caseRun) {
			c.put(globalPolicyKey("deny-bad"), globalPolicy("deny-bad", onVictim(denyTCP(80))))
			c.sync()
			c.flows(flow{from: s.client, to: s.victim, port: 80})
			// An alias of deny-bad's name, allowing everything where its
			// selector reaches (nothing), written and deleted.
			c.put(globalPolicyKey("deny%2dbad"), globalPolicy("deny-bad", map[string]any{"selector": "has(hostile-nothing)", "ingress": []any{map[string]any{"action": "Allow"}}}))
			c.sync()
			c.flows(flow{from: s.client, to: s.victim, port: 80})
			c.del(globalPolicyKey("deny%2dbad"))
		}},
		{name: "gnp-tier-prefix-collision", run: func(c *caseRun) {
			c.put(globalPolicyKey("default.hostile-dup"), globalPolicy("default.hostile-dup", allow81()))
			c.put(globalPolicyKey("hostile-dup"), globalPolicy("hostile-dup", onVictim(denyTCP(80))))
			c.sync()
			c.flows(flow{from: s.client, to: s.victim, port: 81, open: true}, flow{from: s.client, to: s.victim, port: 80})
			c.del(globalPolicyKey("hostile-dup"))
			c.sync()
			c.flows(flow{from: s.client, to: s.victim, port: 81, open: true}, flow{from: s.client, to: s.victim, port: 80, open: true})
			c.del(globalPolicyKey("default.hostile-dup"))
		}},
		{name: "profile-bad-name-on-victim", closed: true, reported: true, puts: [][2]string{
			{resRoot + "profiles/bad name\"x", mustJSON(map[string]any{"kind": "Profile", "apiVersion": "projectcalico.org/v3",
				"metadata": map[string]any{"name": "bad name\"x"}, "spec": map[string]any{"ingress": []any{map[string]any{"action": "Allow"}},
					"egress": []any{map[string]any{"action": "Allow"}}}})},
			victimEP(func(m, spec map[string]any) { spec["profiles"] = []string{"bad name\"x"} }),
		}},
		{name: "tier-bad-name", closed: true, reported: true, puts: [][2]string{
			{resRoot + "tiers/bad tier", `{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"bad tier"},"spec":{"order":1,"defaultAction":"Pass"}}`},
			{globalPolicyKey("hostile-in-bad-tier"), globalPolicy("hostile-in-bad-tier", with(allow81(), "tier", "bad tier"))},
		}},
		{name: "tier-default-invalid-json", reported: true, puts: [][2]string{{resRoot + "tiers/default", `{"kind":"Tier","spec":{"order":`}}},
		{name: "tier-default-pass", puts: [][2]string{{resRoot + "tiers/default",
			`{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"order":1000000,"defaultAction":"Pass"}}`}}},

		// Values that do not decode.
		{name: "gnp-invalid-json", reported: true, puts: [][2]string{{globalPolicyKey("hostile-garbage"), `{"kind": "GlobalNetworkPolicy", "spec": {"selector": "`}}},
		{name: "deny-turned-invalid-json", closed: true, reported: true, run: func(c *caseRun) {
			c.put(globalPolicyKey("hostile-deny"), globalPolicy("hostile-deny", onVictim(denyTCP(80))))
			c.sync()
			c.flows(flow{from: s.client, to: s.victim, port: 80})
			c.put(globalPolicyKey("hostile-deny"), `{"kind":"GlobalNetworkPolicy","spec":{"selector":`)
		}},
		// Each value is invalid; where it is an object it keeps the victim's
		// selector (a policy without one selects everything, and would
		// rightly fail closed everywhere).
		{name: "odd-values", closed: true, reported: true, run: func(c *caseRun) {
			key, valid := globalPolicyKey("hostile-odd"), globalPolicy("hostile-odd", allow81())
			sel := `"selector":"` + sgSel(sgVictim) + `"`
			c.put(key, valid)
			for _, v := range []string{"", "[]", `"text"`, "12", "true",
				`{"kind":"GlobalNetworkPolicy","spec":[]}`, `{"kind":"GlobalNetworkPolicy","spec":"x"}`,
				`{"kind":"GlobalNetworkPolicy","spec":{"selector":1}}`, `{"kind":"GlobalNetworkPolicy","spec":{` + sel + `,"ingress":{"action":"Allow"}}}`,
				`{"kind":"GlobalNetworkPolicy","spec":{` + sel + `,"ingress":[{"action":"Allow","protocol":"TCP","destination":{"ports":[81]}}],"ingress":7}}`,
				"\xef\xbb\xbf" + valid, "\xff\xfe" + valid, strings.Replace(valid, "Allow", "Al\x00low", 1),
				valid + "xyz"} {
				c.put(key, v)
			}
		}},
		// null is no more a policy than 12 is: were it taken as an empty
		// policy (selector all()), the garbage after it would fail closed
		// on every VM of the cloud.
		{name: "null-then-garbage", closed: true, reported: true, run: func(c *caseRun) {
			c.put(globalPolicyKey("hostile-null"), globalPolicy("hostile-null", allow81()))
			c.put(globalPolicyKey("hostile-null"), "null")
			c.put(globalPolicyKey("hostile-null"), "{")
		}},
		{name: "gnp-key-holds-a-networkpolicy", closed: true, reported: true,
			puts: [][2]string{{globalPolicyKey("hostile-kind"), namespacedPolicy("openstack-region-RegionOne", "hostile-kind", allow81())}}},
		{name: "endpoint-key-holds-a-policy", closed: true, reported: true, puts: [][2]string{{victimKey, globalPolicy("victim", allow81())}}},
		// A Deny whose order does not decode: dropping it would open what it
		// denies.
		invalidSpec("deny-with-order-as-string", with(onVictim(denyTCP(80)), "order", "1")),
		{name: "deny-with-order-1e309", closed: true, reported: true, puts: [][2]string{{globalPolicyKey("hostile-spec"),
			strings.Replace(globalPolicy("hostile-spec", onVictim(denyTCP(80))), `"order":1`, `"order":1e309`, 1)}}},
		invalidRule("ports-reversed-range", func(r map[string]any) { r["destination"] = map[string]any{"ports": []any{"90:81"}} }),
		invalidRule("ports-out-of-range", func(r map[string]any) { r["destination"] = map[string]any{"ports": []any{70000}} }),
		invalidRule("ports-injection", func(r map[string]any) { r["destination"] = map[string]any{"ports": []any{"81 -j ACCEPT"}} }),
		invalidRule("protocol-unknown", func(r map[string]any) { r["protocol"] = "TCPX" }),
		invalidRule("action-unknown", func(r map[string]any) { r["action"] = "Accept" }),
		invalidRule("nets-invalid", func(r map[string]any) { r["source"] = map[string]any{"nets": []string{"300.1.1.1/8"}} }),
		invalidRule("nets-newline", func(r map[string]any) { r["source"] = map[string]any{"nets": []string{"10.0.0.0/8\n-j ACCEPT"}} }),
		invalidRule("icmp-type-out-of-range", func(r map[string]any) {
			r["protocol"], r["icmp"] = "ICMP", map[string]any{"type": 300}
			delete(r, "destination")
		}),

		// Selectors.
		invalidRule("deny-rule-selector-unparsable", func(r map[string]any) {
			r["action"], r["source"] = "Deny", map[string]any{"selector": "has(("}
		}),
		invalidRule("deny-rule-notselector-unparsable", func(r map[string]any) {
			r["action"], r["source"] = "Deny", map[string]any{"notSelector": "a =="}
		}),
		invalidRule("deny-rule-namespaceselector-unparsable", func(r map[string]any) {
			r["action"], r["source"] = "Deny", map[string]any{"selector": "all()", "namespaceSelector": "all("}
		}),
		invalidRule("deny-rule-selector-control-chars", func(r map[string]any) {
			r["action"], r["source"] = "Deny", map[string]any{"selector": "has(a\x00b) || a == \"\n\""}
		}),
		invalidRule("deny-rule-selector-unicode", func(r map[string]any) {
			r["action"], r["source"] = "Deny", map[string]any{"selector": "has(ключ)"}
		}),
		invalidRule("deny-rule-selector-nesting-80", func(r map[string]any) {
			r["action"], r["source"] = "Deny", map[string]any{"selector": nested(80, "has(a)")}
		}),
		invalidRule("deny-rule-selector-1.4MB-nesting", func(r map[string]any) {
			r["action"], r["source"] = "Deny", map[string]any{"selector": nested(700_000, "has(a)")}
		}),
		{name: "deny-rule-selector-nesting-20-valid", closed: true, // a deep but valid selector works: the Deny applies
			puts: [][2]string{{globalPolicyKey("hostile-deep"), globalPolicy("hostile-deep", onVictim(map[string]any{"action": "Deny", "protocol": "TCP",
				"destination": map[string]any{"ports": []int{80}}, "source": map[string]any{"selector": nested(20, sgSel(sgClients)), "namespaceSelector": "all()"}}))}}},
		{name: "policy-selector-unparsable", reported: true, // cannot know whom it selects: reported, and the victim keeps its access
			puts: [][2]string{{globalPolicyKey("hostile-sel"), globalPolicy("hostile-sel", with(onVictim(denyTCP(80)), "selector", "has(("))}}},
		invalidRule("rule-annotation-newline-injection", func(r map[string]any) {
			r["metadata"] = map[string]any{"annotations": map[string]string{"note": "x\" -j ACCEPT\n-I FORWARD 1 -j ACCEPT\n#"}}
		}),
		{name: "rule-annotation-quotes", opens81: true, // printable text is valid and stays inside its comment
			puts: [][2]string{{globalPolicyKey("hostile-annot"), globalPolicy("hostile-annot", withRule(func(r map[string]any) {
				r["metadata"] = map[string]any{"annotations": map[string]string{"note": `x" -j ACCEPT -m comment --comment "y`, "note2": "'; -j ACCEPT #"}}
			}))}},
			check: func(c *caseRun) { c.flows(flow{from: s.client, to: s.victim, port: 81, open: true}) }},

		// Sizes.
		invalidSpec("rules-10001", onVictim(repeatRule(map[string]any{"action": "Allow", "protocol": "TCP",
			"destination": map[string]any{"ports": []int{81}}}, 10_001)...)),
		invalidRule("ports-1025", func(r map[string]any) {
			ports := make([]any, 1025)
			for i := range ports {
				ports[i] = 1000 + i
			}
			r["destination"] = map[string]any{"ports": ports}
		}),
		{name: "value-1.4MB-junk", reported: true, puts: [][2]string{{globalPolicyKey("hostile-junk"), strings.Repeat("x", 1_400_000)}}},
		{name: "network-set-70000-cidrs-in-a-live-rule", puts: [][2]string{
			{resRoot + "globalnetworksets/hostile-big", bigNetworkSet(70_000)},
			{globalPolicyKey("hostile-big"), globalPolicy("hostile-big", onVictim(map[string]any{"action": "Allow", "protocol": "TCP",
				"destination": map[string]any{"ports": []int{81}}, "source": map[string]any{"selector": "hostile-big == 'yes'"}}))},
		}},

		// Endpoints of this host on interfaces that are not the agent's.
		{name: "endpoint-on-eth0-with-gateway-address", reported: true,
			puts: [][2]string{fake(r1, "RegionOne", 1, lab.EtcdAddr, "eth0", map[string]string{sgClients: "clients"})}},
		{name: "endpoint-on-lo", reported: true,
			puts: [][2]string{fake(r1, "RegionOne", 2, "198.18.11.77", "lo", map[string]string{sgClients: "clients"})}},
		{name: "endpoint-on-wildcard-tap-plus", reported: true,
			puts: [][2]string{openGNP, fake(r1, "RegionOne", 3, "198.18.11.78", "tap+", map[string]string{sgOpen: "open"})}},
		{name: "endpoint-on-wildcard-tap-star", reported: true,
			puts: [][2]string{openGNP, fake(r1, "RegionOne", 4, "198.18.11.79", "tap*", map[string]string{sgOpen: "open"})}},
		{name: "endpoint-on-tap-with-newline", reported: true,
			puts: [][2]string{openGNP, fake(r1, "RegionOne", 5, "198.18.11.80", "tap x\n-j ACCEPT", map[string]string{sgOpen: "open"})}},
		{name: "endpoint-on-empty-interface", reported: true,
			puts: [][2]string{openGNP, fake(r1, "RegionOne", 6, "198.18.11.81", "", map[string]string{sgOpen: "open"})}},
		{name: "endpoint-on-too-long-interface", reported: true,
			puts: [][2]string{openGNP, fake(r1, "RegionOne", 7, "198.18.11.82", "tap0123456789abcdef", map[string]string{sgOpen: "open"})}},

		// Endpoints that claim the victim's tap.
		// Two endpoints of this host on one tap: as in Felix, the one with
		// the lowest ID has it (make-before-break in a migration), so an
		// endpoint that sorts after the victim's changes nothing.
		{name: "same-host-endpoint-claims-victim-tap", puts: [][2]string{openGNP, func() [2]string {
			vm := fakeVM(r1, "RegionOne", 8, "198.18.11.83", s.victim.HostSide, map[string]string{sgOpen: "open"})
			vm.UUID = "ffffffff-7777-4777-8777-000000000008"
			return [2]string{vm.EndpointKey(), vm.EndpointJSON()}
		}()}},
		{name: "other-region-endpoint-claims-victim-tap", reported: true,
			puts: [][2]string{openGNP, fake(r1, "RegionTwo", 9, "198.18.11.84", s.victim.HostSide, map[string]string{sgOpen: "open"})}},
		{name: "other-host-endpoint-claims-victim-tap",
			puts: [][2]string{openGNP, fake(other, "RegionOne", 10, "198.18.11.85", s.victim.HostSide, map[string]string{sgOpen: "open"})}},
		{name: "endpoint-node-contradicts-name", closed: true, reported: true,
			puts: [][2]string{victimEP(func(m, spec map[string]any) { spec["node"] = "r2-compute1" })}},

		// The victim's own endpoint, with values that must not spoof,
		// reroute or break out.
		{name: "spoof-prefixes-without-any", reported: true,
			puts: [][2]string{victimEP(func(m, spec map[string]any) { spec["allowSpoofedSourcePrefixes"] = []string{"0.0.0.0/0", "::/0"} })},
			check: func(c *caseRun) {
				c.flows(flow{from: s.victim, src: spoofAddr, to: s.control, port: 80}, flow{from: s.victim, to: s.control, port: 80, open: true})
			}},
		{name: "ipnetworks-gateway-and-etcd", victimAny: true,
			puts: [][2]string{victimEP(func(m, spec map[string]any) { spec["ipNetworks"] = []string{s.victim.IP + "/32", lab.EtcdAddr + "/32"} })}},
		{name: "ipnetworks-host-address", victimAny: true,
			puts: [][2]string{victimEP(func(m, spec map[string]any) { spec["ipNetworks"] = []string{s.victim.IP + "/32", r1.Addr + "/32"} })}},
		{name: "ipnetworks-prefix-holding-the-host", victimAny: true,
			puts: [][2]string{victimEP(func(m, spec map[string]any) { spec["ipNetworks"] = []string{s.victim.IP + "/32", "198.18.0.0/24"} })}},
		{name: "ipnetworks-default-routes", victimAny: true,
			puts: [][2]string{victimEP(func(m, spec map[string]any) { spec["ipNetworks"] = []string{s.victim.IP + "/32", "0.0.0.0/0", "::/0"} })}},
		{name: "ipnats-floating-ip-of-etcd", victimAny: true,
			puts: [][2]string{victimEP(func(m, spec map[string]any) {
				spec["ipNATs"] = []any{map[string]any{"internalIP": s.victim.IP, "externalIP": lab.EtcdAddr}}
			})}},
		{name: "ipnats-floating-ip-of-the-host", victimAny: true,
			puts: [][2]string{victimEP(func(m, spec map[string]any) {
				spec["ipNATs"] = []any{map[string]any{"internalIP": s.victim.IP, "externalIP": r1.Addr}}
			})}},
		{name: "mac-broadcast", victimAny: true, puts: [][2]string{victimEP(func(m, spec map[string]any) { spec["mac"] = "ff:ff:ff:ff:ff:ff" })}},
		{name: "mac-newline", closed: true, reported: true,
			puts: [][2]string{victimEP(func(m, spec map[string]any) { spec["mac"] = s.victim.MAC + "\nlladdr 00:00:00:00:00:00" })}},
		{name: "endpoint-label-newline", closed: true, reported: true,
			puts: [][2]string{victimEP(func(m, spec map[string]any) { labelsOf(m)["note"] = "a\nb" })}},
		{name: "endpoint-600-labels", closed: true, reported: true, puts: [][2]string{victimEP(func(m, spec map[string]any) {
			for i := 0; i < 600; i++ {
				labelsOf(m)[fmt.Sprintf("l%d", i)] = "v"
			}
		})}},
		{name: "endpoint-label-value-1MB", closed: true, reported: true,
			puts: [][2]string{victimEP(func(m, spec map[string]any) { labelsOf(m)["big"] = strings.Repeat("v", 1<<20) })}},
		{name: "endpoint-257-addresses", closed: true, reported: true, puts: [][2]string{victimEP(func(m, spec map[string]any) {
			nets := []string{s.victim.IP + "/32"}
			for i := 0; i < 256; i++ {
				nets = append(nets, fmt.Sprintf("100.64.1.%d/32", i))
			}
			spec["ipNetworks"] = nets
		})}},
		{name: "endpoint-workload-with-slashes", victimAny: true, puts: [][2]string{victimEP(func(m, spec map[string]any) {
			spec["workload"], spec["endpoint"] = "../../../../x/y%2f", "e/../../z"
		})}},
		// A host endpoint on the host's uplink with no policy: the host is
		// closed but for the failsafe ports, which keep etcd and the
		// health port (and VMs' traffic, which it does not govern, flows).
		{name: "host-endpoint-on-eth0", puts: [][2]string{{resRoot + "hostendpoints/r1-eth0", mustJSON(map[string]any{
			"kind": "HostEndpoint", "apiVersion": "projectcalico.org/v3",
			"metadata": map[string]any{"name": "r1-eth0", "labels": map[string]string{"sg.projectcalico.org/openstack-" + sgClients: "clients"}},
			"spec":     map[string]any{"node": "r1-compute1", "interfaceName": "eth0", "expectedIPs": []string{lab.EtcdAddr, r1.Addr}}})}}},
		{name: "qos-controls-at-their-limits", victimAny: true, puts: [][2]string{victimEP(func(m, spec map[string]any) {
			spec["qosControls"] = map[string]any{"ingressBandwidth": 1_000_000_000_000_000, "ingressBurst": 34_359_738_360,
				"ingressPeakrate": 1_010_000_000_000_000, "ingressMinburst": 100_000_000, "egressBandwidth": 1000,
				"ingressPacketRate": 10_000, "egressPacketRate": 1, "ingressMaxConnections": 4_294_967_295, "egressMaxConnections": 1}
		})}},
		{name: "qos-controls-out-of-range", closed: true, reported: true, puts: [][2]string{victimEP(func(m, spec map[string]any) {
			spec["qosControls"] = map[string]any{"ingressBandwidth": -1, "egressBandwidth": 1e19, "egressMaxConnections": 1 << 40}
		})}},
		{name: "remote-endpoint-escaped-and-duplicate-keys", run: func(c *caseRun) { remoteDecoding(c, s) }},
		{name: "burst-500-invalid-policies", closed: true, reported: true, run: func(c *caseRun) {
			for i := 0; i < 500; i++ {
				name := fmt.Sprintf("bad name %d", i)
				c.put(globalPolicyKey(name), globalPolicy(name, allow81()))
			}
		}},

		// Configuration in the datastore.
		{name: "felixconfig-logprefix-injection", puts: [][2]string{
			{globalPolicyKey("hostile-log"), globalPolicy("hostile-log", onVictim(map[string]any{"action": "Log", "protocol": "TCP", "destination": map[string]any{"ports": []int{81}}}))},
			{resRoot + "felixconfigurations/default", felixConfig("default", map[string]any{"logPrefix": "x\" \n-I FORWARD 1 -j ACCEPT\n#"})},
		}},
		{name: "felixconfig-metadataaddr-injection", puts: [][2]string{
			{resRoot + "felixconfigurations/default", felixConfig("default", map[string]any{"metadataAddr": "127.0.0.1\n-I FORWARD 1 -j ACCEPT\n#"})},
		}},
		{name: "felixconfig-invalid-json", puts: [][2]string{{resRoot + "felixconfigurations/default", `{"kind":"FelixConfiguration","spec":{`}}},
		{name: "felixconfig-fatal-markmask", puts: [][2]string{
			{resRoot + "felixconfigurations/default", felixConfig("default", map[string]any{"iptablesMarkMask": "0x1"})}}},
		{name: "felixconfig-node-interfaceprefix-eth", puts: [][2]string{
			{resRoot + "felixconfigurations/node.r1-compute1", felixConfig("node.r1-compute1", map[string]any{"interfacePrefix": "eth,tap"})}}},
		{name: "clusterinformation-not-ready", puts: [][2]string{{resRoot + "clusterinformations/default",
			`{"kind":"ClusterInformation","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"clusterType":"openstack","datastoreReady":false}}`}}},
	}
}

func repeatRule(r map[string]any, n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = r
	}
	return out
}

// bigNetworkSet is a GlobalNetworkSet of n /32s in 100.64.0.0/10.
func bigNetworkSet(n int) string {
	nets := make([]string, n)
	for i := range nets {
		nets[i] = fmt.Sprintf("100.%d.%d.%d/32", 64+i>>16, i>>8&255, i&255)
	}
	return mustJSON(map[string]any{"kind": "GlobalNetworkSet", "apiVersion": "projectcalico.org/v3",
		"metadata": map[string]any{"name": "hostile-big", "labels": map[string]string{"hostile-big": "yes"}}, "spec": map[string]any{"nets": nets}})
}

// remoteDecoding writes the remote client's endpoint (which r1 decodes
// with its fast decoder and r2 with encoding/json) with JSON that means
// the same to encoding/json in unusual spellings, and checks that r1 sees
// what encoding/json sees: the extra label sgEsc opens web:8082 to it.
func remoteDecoding(c *caseRun, s *hostileSuite) {
	key := s.rclient.EndpointKey()
	plain := s.rclient.EndpointJSON() // Python separators: `"key": value, `
	label := `"sg.projectcalico.org/openstack-` + sgEsc + `": "esc", `
	withLabel := func(doc, label string) string { return strings.Replace(doc, `"labels": {`, `"labels": {`+label, 1) }
	escapedLabel := `"sg.projectcalico.org\u002fopenstack-` + strings.Replace(sgEsc, "-", `\u002d`, 1) + `": "\u0065sc", `
	ipNets := `"ipNetworks": ["` + s.rclient.IP + `/32"]`
	for _, v := range []struct {
		what  string
		value string
		open  bool
	}{
		{"the label, plainly", withLabel(plain, label), true},
		{"every key escaped", strings.NewReplacer(`"spec": `, `"sp\u0065c": `, `"metadata": `, `"m\u0065tadata": `,
			`"labels": `, `"l\u0061bels": `, `"ipNetworks": `, `"ipN\u0065tworks": `).Replace(withLabel(plain, escapedLabel)), true},
		{"an escaped key naming another label", withLabel(plain, `"sg.projectcalico.org/openstack-`+sgEsc+`\u0030": "esc", `), false},
		{"keys in other case", strings.NewReplacer(`"spec": `, `"Spec": `, `"metadata": `, `"METADATA": `, `"labels": `, `"Labels": `).
			Replace(withLabel(plain, label)), true},
		{"a duplicate ipNetworks, the last one real", strings.Replace(withLabel(plain, label), ipNets,
			`"ipNetworks": ["198.18.12.250/32"], `+ipNets, 1), true},
		// (The other order cannot be told apart here: r2 would program
		// the decoy too, and the client could not send at all.)
	} {
		if !json.Valid([]byte(v.value)) {
			c.t.Fatalf("%s: the test's JSON is invalid: %s", v.what, v.value)
		}
		c.put(key, v.value)
		c.sync()
		f := flow{from: s.rclient, to: s.web, port: 8082, open: v.open}
		c.t.Logf("remote endpoint with %s: %v must %s", v.what, f, map[bool]string{true: "connect", false: "be blocked"}[v.open])
		c.flows(f)
	}
}
