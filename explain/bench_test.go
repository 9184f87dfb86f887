package explain

import (
	"fmt"
	"net/netip"
	"testing"

	"ocelot/contract"
)

// A host at the design targets' scale: 50 local endpoints, each in 20
// security groups' policies of 10 rules with set sources. One flow walks
// every rule of an endpoint's 20 policies before the default drop.
func BenchmarkExplainFlow(b *testing.B) {
	f := newFake()
	for s := range 200 {
		id := fmt.Sprintf("s:%d", s)
		for m := range 50 {
			f.sets[id] = append(f.sets[id], contract.Member{Net: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(s), byte(m)}), 32)})
		}
	}
	var pols []contract.PolicyID
	for p := range 20 {
		id := pid(fmt.Sprintf("sg%d", p))
		pols = append(pols, id)
		var rules []contract.Rule
		for r := range 10 {
			rules = append(rules, contract.Rule{Action: contract.ActionAllow, Protocol: tcp, DstPorts: ports(uint16(1000 + r)),
				SrcIPSetIDs: []string{fmt.Sprintf("s:%d", p*10+r)}})
		}
		f.policies[id] = &contract.PolicyUpdate{ID: id, Inbound: rules}
	}
	for e := range 50 {
		f.eps = append(f.eps, &contract.EndpointUpdate{ID: contract.EndpointID{Orchestrator: "openstack", WorkloadID: fmt.Sprint("ns/vm", e), EndpointID: fmt.Sprint("p", e)},
			Name: fmt.Sprint("tap", e), IPv4Nets: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, 0, byte(e)}), 32)},
			Tiers: []contract.TierPolicies{{Name: "default", DefaultAction: "Deny", Ingress: pols}}})
	}
	q := Query{Flow: &Flow{Src: "198.18.250.1", Dst: "tap49", DstPort: 80}}
	b.ReportAllocs()
	for b.Loop() {
		if a := Explain(f, q); a.Flow.Verdict != "denied" || len(a.Flow.Hops[0].Steps) < 200 {
			b.Fatalf("%+v", a)
		}
	}
}
