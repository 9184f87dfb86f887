package resource

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

const (
	sgWeb     = "a7734e61-b545-452d-a3cd-0189cbd9747a"
	sgClients = "85cc3048-abc3-43cc-89b3-377341426ac5"
)

// Written the way the Neutron driver writes (Python separators ", " and ": ").
const neutronWEP = `{"kind": "WorkloadEndpoint", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "r1--compute1-openstack-0b6a7c1e--3f2d--4e5a--9b8c--7d6e5f4a3b21-5c9d0e1f--2a3b--4c4d--8e5f--6a7b8c9d0e1f", "namespace": "openstack-region-RegionOne", "creationTimestamp": "2026-08-22T10:00:00Z", "uid": "7a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d", "annotations": {"openstack.projectcalico.org/network-id": "8f2e4d6c-1a3b-4c5d-9e7f-0a1b2c3d4e5f"}, "labels": {"sg.projectcalico.org/openstack-a7734e61-b545-452d-a3cd-0189cbd9747a": "web", "sg-name.projectcalico.org/openstack-web": "a7734e61-b545-452d-a3cd-0189cbd9747a", "projectcalico.org/namespace": "openstack-region-RegionOne", "projectcalico.org/orchestrator": "openstack", "projectcalico.org/openstack-project-id": "2f8b6e0c4d9a4b1e8c3f5a7d9e1b3c5d", "pcns.sneaky": "x"}}, "spec": {"orchestrator": "openstack", "workload": "0b6a7c1e-3f2d-4e5a-9b8c-7d6e5f4a3b21", "node": "r1-compute1", "endpoint": "5c9d0e1f-2a3b-4c4d-8e5f-6a7b8c9d0e1f", "interfaceName": "tap5c9d0e1f-2a", "mac": "fa:16:3e:4a:5b:6c", "ipv4Gateway": "10.65.0.1", "ipNetworks": ["10.65.0.12/32", "2001:db8::12/128"], "ipNATs": [{"internalIP": "10.65.0.12", "externalIP": "198.18.9.9"}], "allowedIps": [], "someFutureField": {"x": 1}}}`

const wepName = "r1--compute1-openstack-0b6a7c1e--3f2d--4e5a--9b8c--7d6e5f4a3b21-5c9d0e1f--2a3b--4c4d--8e5f--6a7b8c9d0e1f"

func TestDecodeEndpoint(t *testing.T) {
	v, err := Decode(KindWorkloadEndpoint, "openstack-region-RegionOne", wepName, []byte(neutronWEP), Options{Hostname: "r1-compute1"})
	if err != nil {
		t.Fatal(err)
	}
	e := v.(*Endpoint)
	if e.Host != "r1-compute1" || e.Orchestrator != "openstack" || e.Workload != "0b6a7c1e-3f2d-4e5a-9b8c-7d6e5f4a3b21" ||
		e.EndpointID != "5c9d0e1f-2a3b-4c4d-8e5f-6a7b8c9d0e1f" {
		t.Errorf("identity %q %q %q %q", e.Host, e.Orchestrator, e.Workload, e.EndpointID)
	}
	if e.WorkloadID() != "openstack-region-RegionOne/0b6a7c1e-3f2d-4e5a-9b8c-7d6e5f4a3b21" {
		t.Errorf("WorkloadID %q", e.WorkloadID())
	}
	if e.InterfaceName != "tap5c9d0e1f-2a" || e.MAC != "fa:16:3e:4a:5b:6c" || e.IPv4Gateway.String() != "10.65.0.1" {
		t.Errorf("spec %q %q %v", e.InterfaceName, e.MAC, e.IPv4Gateway)
	}
	if !reflect.DeepEqual(e.IPv4Nets, []netip.Prefix{netip.MustParsePrefix("10.65.0.12/32")}) ||
		!reflect.DeepEqual(e.IPv6Nets, []netip.Prefix{netip.MustParsePrefix("2001:db8::12/128")}) {
		t.Errorf("nets %v %v", e.IPv4Nets, e.IPv6Nets)
	}
	if len(e.IPv4NAT) != 1 || e.IPv4NAT[0].External.String() != "198.18.9.9" {
		t.Errorf("NAT %v", e.IPv4NAT)
	}
	if _, ok := e.Labels["pcns.sneaky"]; ok {
		t.Error("reserved pcns. label kept")
	}
	if e.Labels["sg.projectcalico.org/openstack-"+sgWeb] != "web" {
		t.Errorf("labels %v", e.Labels)
	}

	v, err = Decode(KindWorkloadEndpoint, "openstack-region-RegionOne", wepName, []byte(neutronWEP), Options{Hostname: "r2-compute1"})
	if err != nil {
		t.Fatal(err)
	}
	r := v.(*RemoteEndpoint)
	if r.Namespace != "openstack-region-RegionOne" || len(r.Nets) != 2 || r.Labels["projectcalico.org/namespace"] != "openstack-region-RegionOne" {
		t.Errorf("remote %+v", r)
	}
}

func TestEndpointWithoutAddressesIsAbsent(t *testing.T) {
	js := strings.Replace(neutronWEP, `"ipNetworks": ["10.65.0.12/32", "2001:db8::12/128"], "ipNATs": [{"internalIP": "10.65.0.12", "externalIP": "198.18.9.9"}]`, `"ipNetworks": []`, 1)
	v, err := Decode(KindWorkloadEndpoint, "openstack-region-RegionOne", wepName, []byte(js), Options{Hostname: "r1-compute1"})
	if v != nil || err != nil {
		t.Fatalf("got %v, %v; want nil, nil", v, err)
	}
}

func TestParseEndpointName(t *testing.T) {
	cases := map[string][]string{
		"r1--compute1-openstack-vm--1-port--1": {"r1-compute1", "openstack", "vm-1", "port-1"},
		"host-k8s-pod-eth0":                    {"host", "k8s", "pod", "eth0"},
		"a-b-c":                                nil,
		"a-b-c-d-e":                            nil,
		"a--b-c-d":                             nil,
		"a-b-c-":                               nil,
	}
	for in, want := range cases {
		got, ok := ParseEndpointName(in)
		if !reflect.DeepEqual(got, want) || ok != (want != nil) {
			t.Errorf("ParseEndpointName(%q) = %v %v, want %v", in, got, ok, want)
		}
	}
	if EscapeEndpointNamePart("r1-compute1") != "r1--compute1" {
		t.Error("escape")
	}
}

// The SG policy the Neutron driver writes for a group with a few typical rules.
const neutronPolicy = `{"kind": "NetworkPolicy", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "ossg.default.85cc3048-abc3-43cc-89b3-377341426ac5", "namespace": "openstack-region-RegionTwo", "creationTimestamp": "2026-08-22T10:04:00Z", "uid": "ad4e5f6a"}, "spec": {"ingress": [{"action": "Allow", "ipVersion": 4, "protocol": 6, "destination": {"ports": [22]}, "source": {"nets": ["0.0.0.0/0"]}}, {"action": "Allow", "ipVersion": 4, "protocol": 17, "destination": {"ports": ["8000:8080"]}, "source": {"selector": "has(sg.projectcalico.org/openstack-a7734e61-b545-452d-a3cd-0189cbd9747a)"}}, {"action": "Allow", "ipVersion": 4, "protocol": "ICMP", "icmp": {"type": 8, "code": 0}}, {"action": "Allow", "ipVersion": 6, "protocol": "ICMPv6"}, {"action": "Allow", "ipVersion": 4, "protocol": "GRE"}], "egress": [{"action": "Allow", "ipVersion": 4}, {"action": "Allow", "ipVersion": 6}], "selector": "has(sg.projectcalico.org/openstack-85cc3048-abc3-43cc-89b3-377341426ac5)"}}`

func TestDecodeNeutronPolicy(t *testing.T) {
	v, err := Decode(KindNetworkPolicy, "openstack-region-RegionTwo", "ossg.default."+sgClients, []byte(neutronPolicy), Options{})
	if err == nil {
		t.Fatalf("GRE by name is not a protocol Calico knows; got %+v", v)
	}
	if err.Error() != `spec.ingress[4].protocol: protocol "GRE" must be TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number from 1 to 255` {
		t.Errorf("error %q", err)
	}
	inv, ok := v.(*Invalid)
	if !ok || inv.Policy == nil || inv.Policy.Selector.String() != "has(sg.projectcalico.org/openstack-"+sgClients+")" {
		t.Fatalf("invalid policy should keep its selector for fail-closed enforcement: %#v", v)
	}

	fixed := strings.Replace(neutronPolicy, `"protocol": "GRE"`, `"protocol": 47`, 1)
	v, err = Decode(KindNetworkPolicy, "openstack-region-RegionTwo", "ossg.default."+sgClients, []byte(fixed), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := v.(*Policy)
	if p.Tier != "default" || p.Order != nil || p.Name != "ossg.default."+sgClients || !reflect.DeepEqual(p.Types, []PolicyType{Ingress, Egress}) {
		t.Errorf("policy %q %q %v %v", p.Name, p.Tier, p.Order, p.Types)
	}
	in := p.Ingress
	if len(in) != 5 || len(p.Egress) != 2 {
		t.Fatalf("rules %d/%d", len(in), len(p.Egress))
	}
	if in[0].Protocol.String() != "tcp" || in[0].Destination.Ports[0] != (Port{First: 22, Last: 22}) ||
		in[0].Source.Nets[0].String() != "0.0.0.0/0" || in[0].IPVersion != 4 || in[0].Action != Allow {
		t.Errorf("rule 0 %+v", in[0])
	}
	if in[1].Destination.Ports[0] != (Port{First: 8000, Last: 8080}) || in[1].Protocol.String() != "udp" {
		t.Errorf("rule 1 %+v", in[1])
	}
	if in[2].ICMP == nil || in[2].ICMP.Type != 8 || *in[2].ICMP.Code != 0 || in[2].Protocol.String() != "icmp" {
		t.Errorf("rule 2 %+v", in[2])
	}
	if in[3].Protocol.String() != "icmpv6" || in[4].Protocol.String() != "47" {
		t.Errorf("rules 3-4 %v %v", in[3].Protocol, in[4].Protocol)
	}
}

// As calicoctl stores the guide's policy (the JSON calicoctl wrote for the guide on a real host).
const calicoctlPolicy = `{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"allow-tcp-80","namespace":"openstack-region-RegionOne","uid":"e5e80160-7510-4aee-89c5-d213735d3603","creationTimestamp":"2026-11-25T22:59:50Z","labels":{"projectcalico.org/tier":"default"},"annotations":{"projectcalico.org/metadata":"{\"name\":\"allow-tcp-80\"}"}},"spec":{"tier":"default","ingress":[{"action":"Allow","protocol":"TCP","source":{"selector":"has(sg.projectcalico.org/openstack-85cc3048-abc3-43cc-89b3-377341426ac5)","namespaceSelector":"all()"},"destination":{"ports":[80]}}],"selector":"has(sg.projectcalico.org/openstack-a7734e61-b545-452d-a3cd-0189cbd9747a)","types":["Ingress"]}}`

func TestDecodeCalicoctlPolicy(t *testing.T) {
	v, err := Decode(KindNetworkPolicy, "openstack-region-RegionOne", "allow-tcp-80", []byte(calicoctlPolicy), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := v.(*Policy)
	if !reflect.DeepEqual(p.Types, []PolicyType{Ingress}) || !p.Applies(Ingress) || p.Applies(Egress) {
		t.Errorf("types %v", p.Types)
	}
	r := p.Ingress[0]
	if r.Source.NamespaceSelector.String() != "all()" || r.Protocol.Num != 6 || r.Destination.Ports[0].First != 80 {
		t.Errorf("rule %+v", r)
	}
}

func TestDecodeOtherKinds(t *testing.T) {
	v, err := Decode(KindTier, "", "kube-admin", []byte(`{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"kube-admin"},"spec":{"order":1000,"defaultAction":"Pass"},"status":{}}`), Options{})
	if err != nil || *v.(*Tier).Order != 1000 || v.(*Tier).DefaultAction != Pass {
		t.Errorf("tier %+v %v", v, err)
	}
	v, err = Decode(KindClusterInformation, "", "default", []byte(`{"kind": "ClusterInformation", "spec": {"clusterGUID": "5e0b", "clusterType": "openstack", "datastoreReady": true}}`), Options{})
	if ci := v.(*ClusterInformation); err != nil || ci.ClusterType != "openstack" || ci.DatastoreReady == nil || !*ci.DatastoreReady {
		t.Errorf("cluster information %+v %v", v, err)
	}
	v, err = Decode(KindFelixConfiguration, "", "default", []byte(`{"kind": "FelixConfiguration", "metadata": {"name": "default", "annotations": {"config.projectcalico.org/LogPrefix": "x"}}, "spec": {"endpointReportingEnabled": true, "interfacePrefix": "tap"}}`), Options{})
	if fc := v.(*FelixConfiguration); err != nil || fc.Spec["interfacePrefix"] != "tap" || fc.Annotations["config.projectcalico.org/LogPrefix"] != "x" {
		t.Errorf("felix configuration %+v %v", v, err)
	}
	v, err = Decode(KindNetworkSet, "openstack-region-RegionOne", "partners", []byte(`{"metadata":{"labels":{"role":"partner"}},"spec":{"nets":["198.18.5.0/24","198.18.6.7"]}}`), Options{})
	if ns := v.(*NetworkSet); err != nil || len(ns.Nets) != 2 || ns.Nets[1].String() != "198.18.6.7/32" || ns.Labels["projectcalico.org/namespace"] != "openstack-region-RegionOne" {
		t.Errorf("network set %+v %v", v, err)
	}
	v, err = Decode(KindGlobalNetworkSet, "", "world", []byte(`{"metadata":{"labels":{"role":"world"}},"spec":{"nets":["0.0.0.0/0"]}}`), Options{})
	if ns := v.(*NetworkSet); err != nil || ns.Labels["projectcalico.org/namespace"] != "" || ns.Namespace != "" {
		t.Errorf("global network set %+v %v", v, err)
	}
	v, err = Decode(KindProfile, "", "p", []byte(`{"spec":{"labelsToApply":{"tier":"gold"},"ingress":[{"action":"Allow"}]}}`), Options{})
	if pr := v.(*Profile); err != nil || pr.LabelsToApply["tier"] != "gold" || len(pr.Ingress) != 1 {
		t.Errorf("profile %+v %v", v, err)
	}
	v, err = Decode(KindHostEndpoint, "", "h", []byte(`{"spec":{"node":"n1","interfaceName":"eth0","expectedIPs":["198.18.0.1"]}}`), Options{})
	if he := v.(*HostEndpoint); err != nil || he.ExpectedIPs[0].String() != "198.18.0.1" {
		t.Errorf("host endpoint %+v %v", v, err)
	}
	v, err = Decode(KindGlobalNetworkPolicy, "", "default.deny-bad", []byte(`{"spec":{"order":10,"selector":"all()","ingress":[{"action":"Deny","source":{"nets":["198.51.100.0/24"]}}]}}`), Options{})
	// The key's name is the policy's name, as in Felix: "default." stays.
	if p := v.(*Policy); err != nil || p.Name != "default.deny-bad" || *p.Order != 10 || p.Namespace != "" {
		t.Errorf("global policy %+v %v", v, err)
	}
}

func TestValidationErrors(t *testing.T) {
	rule := func(r string) string { return `{"spec":{"selector":"all()","ingress":[` + r + `]}}` }
	cases := []struct {
		kind Kind
		ns   string
		json string
		want string
	}{
		{KindNetworkPolicy, "ns", `{"spec": [`, `not valid JSON: unexpected end of JSON input`},
		{KindNetworkPolicy, "ns", `{"spec":{"order":"first"}}`, `spec.order: must be a JSON number, not string`},
		{KindNetworkPolicy, "ns", `{"spec":{"selector":"has(a"}}`, `spec.selector: invalid selector "has(a" at position 5: expected ')' to close has(...)`},
		{KindNetworkPolicy, "ns", `{"spec":{"types":["Inbound"]}}`, `spec.types[0]: "Inbound" must be Ingress or Egress`},
		{KindNetworkPolicy, "ns", `{"kind":"Profile","spec":{}}`, `kind: is "Profile" but the key holds NetworkPolicy resources`},
		{KindNetworkPolicy, "ns", rule(`{}`), `spec.ingress[0].action: is required (Allow, Deny, Log or Pass)`},
		{KindNetworkPolicy, "ns", rule(`{"action":"Accept"}`), `spec.ingress[0].action: "Accept" must be Allow, Deny, Log or Pass`},
		{KindNetworkPolicy, "ns", rule(`{"action":"Allow","ipVersion":5}`), `spec.ingress[0].ipVersion: must be 4 or 6, not 5`},
		{KindNetworkPolicy, "ns", rule(`{"action":"Allow","protocol":256}`), `spec.ingress[0].protocol: protocol "256" must be TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number from 1 to 255`},
		{KindNetworkPolicy, "ns", rule(`{"action":"Allow","destination":{"ports":[80]}}`), `spec.ingress[0].destination.ports[0]: numeric ports need protocol TCP, UDP or SCTP`},
		{KindNetworkPolicy, "ns", rule(`{"action":"Allow","protocol":"TCP","destination":{"ports":["90:80"]}}`), `spec.ingress[0].destination.ports[0]: port range "90:80" has its minimum above its maximum`},
		{KindNetworkPolicy, "ns", rule(`{"action":"Allow","protocol":"TCP","destination":{"ports":[70000]}}`), `spec.ingress[0].destination.ports[0]: port "70000" must be from 0 to 65535`},
		{KindNetworkPolicy, "ns", rule(`{"action":"Allow","protocol":"ICMP","ipVersion":6,"icmp":{"type":8}}`), `spec.ingress[0].icmp: ICMP (protocol 1) needs ipVersion 4`},
		{KindNetworkPolicy, "ns", rule(`{"action":"Allow","protocol":"TCP","icmp":{"type":8}}`), `spec.ingress[0].icmp: needs protocol ICMP or ICMPv6`},
		{KindNetworkPolicy, "ns", rule(`{"action":"Allow","protocol":"ICMP","icmp":{"code":0}}`), `spec.ingress[0].icmp.code: needs a type`},
		{KindNetworkPolicy, "ns", rule(`{"action":"Allow","source":{"nets":["10.0.0.0/33"]}}`), `spec.ingress[0].source.nets[0]: "10.0.0.0/33" is not a CIDR`},
		{KindNetworkPolicy, "ns", rule(`{"action":"Allow","source":{"nets":["10.0.0.0/8","2001:db8::/32"]}}`), `spec.ingress[0].source.nets[1]: 2001:db8::/32 mixes address families in one rule`},
		{KindNetworkPolicy, "ns", rule(`{"action":"Allow","ipVersion":6,"source":{"nets":["10.0.0.0/8"]}}`), `spec.ingress[0].source.nets[0]: 10.0.0.0/8 is not an IPv6 CIDR as ipVersion says`},
		{KindNetworkPolicy, "ns", rule(`{"action":"Deny","source":{"notNets":["0.0.0.0/0"]}}`), `spec.ingress[0].source.notNets[0]: a catch-all prefix (0.0.0.0/0) may not be negated`},
		{KindNetworkPolicy, "ns", rule(`{"action":"Allow","source":{"selector":"global()"}}`), `spec.ingress[0].source.selector: global() is only allowed as the whole of a rule's namespaceSelector`},
		{KindNetworkPolicy, "ns", rule(`{"action":"Deny","http":{"methods":["GET"]}}`), `spec.ingress[0].http: is only allowed in Allow rules`},
		{KindNetworkPolicy, "", `{"spec":{}}`, `metadata.namespace: a NetworkPolicy must be in a namespace`},
		{KindGlobalNetworkPolicy, "", `{"spec":{"preDNAT":true}}`, `spec.applyOnForward: must be true with doNotTrack or preDNAT`},
		{KindTier, "", `{"spec":{"defaultAction":"Allow"}}`, `spec.defaultAction: "Allow" must be Deny or Pass`},
		{KindWorkloadEndpoint, "ns", `{"spec":{"ipNetworks":["10.0.0.0/24"],"interfaceName":"tap1"}}`, `spec.ipNetworks[0]: "10.0.0.0/24" must be a /32 or /128: only host routes are supported`},
		{KindWorkloadEndpoint, "ns", `{"spec":{"ipNetworks":["10.0.0.1"],"interfaceName":"tap-name-too-long"}}`, `spec.interfaceName: "tap-name-too-long" must be 1-15 characters from [a-zA-Z0-9_.-]`},
		{KindWorkloadEndpoint, "ns", `{"spec":{"ipNetworks":["10.0.0.1"],"interfaceName":"tap1","mac":"zz"}}`, `spec.mac: "zz" is not an Ethernet MAC address`},
		{KindWorkloadEndpoint, "ns", `{"spec":{"ipNetworks":["10.0.0.1"],"interfaceName":"tap1","ipNATs":[{"internalIP":"10.0.0.2","externalIP":"198.18.0.1"}]}}`, `spec.ipNATs[0].internalIP: 10.0.0.2 is not one of the endpoint's ipNetworks`},
		{KindNetworkSet, "ns", `{"spec":{"nets":["nope"]}}`, `spec.nets[0]: "nope" is not a CIDR`},
	}
	for _, c := range cases {
		name := "host-openstack-vm-port"
		if c.kind != KindWorkloadEndpoint {
			name = "x"
		}
		_, err := Decode(c.kind, c.ns, name, []byte(c.json), Options{Hostname: "host"})
		if err == nil || err.Error() != c.want {
			t.Errorf("%s %s:\n got %v\nwant %s", c.kind, c.json, err, c.want)
		}
	}
	if _, err := Decode(KindWorkloadEndpoint, "ns", "bad-name", []byte(`{"spec":{"ipNetworks":["10.0.0.1"]}}`), Options{}); err == nil ||
		!strings.HasPrefix(err.Error(), `metadata.name: "bad-name" must be <node>-<orchestrator>-<workload>-<endpoint>`) {
		t.Errorf("bad endpoint name: %v", err)
	}
}

func TestUnenforceableRules(t *testing.T) {
	v, err := Decode(KindGlobalNetworkPolicy, "", "x", []byte(`{"spec":{"ingress":[{"action":"Allow","protocol":"TCP","http":{"methods":["GET"]}},{"action":"Allow","source":{"serviceAccounts":{"names":["a"]}}},{"action":"Allow","http":null}]}}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := v.(*Policy).Ingress
	if in[0].Unenforceable != "http" || in[1].Unenforceable != "serviceAccounts" || in[2].Unenforceable != "" {
		t.Errorf("unenforceable: %q %q %q", in[0].Unenforceable, in[1].Unenforceable, in[2].Unenforceable)
	}
}

func TestLabelsAreInterned(t *testing.T) {
	a, _ := Decode(KindWorkloadEndpoint, "openstack-region-RegionOne", wepName, []byte(neutronWEP), Options{})
	b, _ := Decode(KindWorkloadEndpoint, "openstack-region-RegionOne", wepName, []byte(neutronWEP), Options{})
	ka := a.(*RemoteEndpoint).Labels["projectcalico.org/orchestrator"]
	kb := b.(*RemoteEndpoint).Labels["projectcalico.org/orchestrator"]
	if ka != "openstack" || kb != "openstack" || stringData(ka) != stringData(kb) {
		t.Error("equal label values from two decodes do not share storage")
	}
}

func BenchmarkDecodeRemoteEndpoint(b *testing.B) {
	data := []byte(neutronWEP)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(KindWorkloadEndpoint, "openstack-region-RegionOne", wepName, data, Options{Hostname: "r2-compute1"}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeLocalEndpoint(b *testing.B) {
	data := []byte(neutronWEP)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(KindWorkloadEndpoint, "openstack-region-RegionOne", wepName, data, Options{Hostname: "r1-compute1"}); err != nil {
			b.Fatal(err)
		}
	}
}

// global() is judged on the parsed selector: allowed only as a whole rule
// namespaceSelector, refused anywhere else, and a label value that reads
// "global()" is just a value.
func TestGlobalOnTheSyntaxTree(t *testing.T) {
	cases := []struct {
		spec string
		ok   bool
	}{
		{`{"ingress":[{"action":"Allow","source":{"namespaceSelector":"global()"}}]}`, true},
		{`{"ingress":[{"action":"Allow","source":{"namespaceSelector":" global( ) "}}]}`, true},
		{`{"ingress":[{"action":"Allow","source":{"selector":"note == 'global()'"}}]}`, true},
		{`{"selector":"note == 'global()'"}`, true},
		{`{"ingress":[{"action":"Allow","source":{"namespaceSelector":"global() || has(a)"}}]}`, false},
		{`{"ingress":[{"action":"Allow","source":{"selector":"global()"}}]}`, false},
		{`{"selector":"has(a) && global()"}`, false},
	}
	for _, c := range cases {
		_, err := Decode(KindGlobalNetworkPolicy, "", "g", []byte(`{"spec":`+c.spec+`}`), Options{})
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok %v", c.spec, err, c.ok)
		}
	}
}

// A policy whose order, tier or types do not decode still yields its
// selector, so that it can deny where it reaches; a stored null is no
// resource at all (encoding/json would read it as an empty policy, which
// selects everything).
func TestInvalidPolicyKeepsItsSelector(t *testing.T) {
	for _, spec := range []string{
		`{"order":"10","selector":"role == 'db'","ingress":[{"action":"Deny"}]}`,
		`{"order":1e309,"selector":"role == 'db'","ingress":[{"action":"Deny"}]}`,
		`{"tier":7,"types":"Ingress","selector":"role == 'db'","ingress":[{"action":"Deny"}]}`,
	} {
		v, err := Decode(KindGlobalNetworkPolicy, "", "deny-db", []byte(`{"spec":`+spec+`}`), Options{})
		inv, ok := v.(*Invalid)
		if err == nil || !ok || inv.Policy == nil {
			t.Fatalf("%s: got %#v, %v; want an *Invalid with the policy recovered", spec, v, err)
		}
		if got := inv.Policy.Selector.String(); got != `role == "db"` {
			t.Errorf("%s: recovered selector %q", spec, got)
		}
	}
	for _, data := range []string{`null`, ` null `, `[]`, `"x"`, `7`, ``} {
		for _, kind := range []Kind{KindGlobalNetworkPolicy, KindProfile, KindWorkloadEndpoint, KindNetworkSet} {
			name := "x"
			if kind == KindWorkloadEndpoint {
				name = wepName
			}
			v, err := Decode(kind, "openstack-region-RegionOne", name, []byte(data), Options{Hostname: "r1-compute1"})
			if err == nil {
				t.Errorf("%s %q: accepted as %#v", kind, data, v)
			}
			if inv, ok := v.(*Invalid); ok && inv.Policy != nil {
				t.Errorf("%s %q: recovered a policy from a value that holds none", kind, data)
			}
		}
	}
}
