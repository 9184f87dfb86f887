package resource

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode"
)

func TestCheckName(t *testing.T) {
	long := strings.Repeat("a", 63)
	cases := []struct {
		kind Kind
		name string
		ok   bool
	}{
		{KindGlobalNetworkPolicy, "deny-bad", true},
		{KindGlobalNetworkPolicy, "default.web", true},
		{KindGlobalNetworkPolicy, "web", true},
		{KindGlobalNetworkPolicy, "a.b.c", false},
		{KindGlobalNetworkPolicy, "deny%2dbad", false},
		{KindGlobalNetworkPolicy, "a b", false},
		{KindGlobalNetworkPolicy, `a"b`, false},
		{KindGlobalNetworkPolicy, "a\nb", false},
		{KindGlobalNetworkPolicy, "Web", false},
		{KindGlobalNetworkPolicy, "wéb", false},
		{KindGlobalNetworkPolicy, "-web", false},
		{KindGlobalNetworkPolicy, long, true},
		{KindGlobalNetworkPolicy, long + "a", false},
		{KindNetworkPolicy, "ossg.default.85cc3048-abc3-43cc-89b3-377341426ac5", true},
		{KindNetworkPolicy, "knp.default.a.b.c", true},
		{KindNetworkPolicy, "allow-tcp-80", true},
		{KindNetworkPolicy, "tier1.allow", true},
		{KindNetworkPolicy, "ossg.default.", false},
		{KindNetworkPolicy, "x.default.a.b", false},
		{KindNetworkPolicy, "ossg.default." + strings.Repeat("a.", 120) + "a", false}, // 254 characters
		{KindProfile, "kns.default", true},
		{KindProfile, "projectcalico-default-allow", true},
		{KindProfile, "a b", false},
		{KindProfile, "a..b", false},
		{KindTier, "kube-admin", true},
		{KindTier, "a.b", false},
		{KindNetworkSet, "partners", true},
		{KindNetworkSet, "Partners", false},
		{KindGlobalNetworkSet, "world.v4", true},
		{KindHostEndpoint, "h1.eth0", true},
		{KindWorkloadEndpoint, "Compute1-openstack-vm-port", true},
		{KindWorkloadEndpoint, "c_1-openstack-vm-port", true},
		{KindWorkloadEndpoint, "c 1-openstack-vm-port", false},
		{KindWorkloadEndpoint, "c1-openstack-vm-port\n", false},
		{KindWorkloadEndpoint, strings.Repeat("a", 254), false},
		{KindFelixConfiguration, "node.Compute1", true},
	}
	for _, c := range cases {
		err := CheckName(c.kind, c.name)
		if (err == nil) != c.ok {
			t.Errorf("CheckName(%s, %q) = %v, want ok %v", c.kind, c.name, err, c.ok)
		}
	}
}

func wep(spec string) string {
	return `{"metadata":{"labels":{"projectcalico.org/namespace":"ns"}},"spec":` + spec + `}`
}

func manyLabels(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `,"l%d":"v"`, i)
	}
	return `{"metadata":{"labels":{"a":"b"` + b.String() + `}},"spec":{"ipNetworks":["198.18.0.1"],"interfaceName":"tap1"}}`
}

func list(n int, item string) string {
	return "[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]"
}

// TestHostileValues: each value is refused with its field, whatever it
// holds, and the message stays short and printable.
func TestHostileValues(t *testing.T) {
	rule := func(r string) string { return `{"spec":{"selector":"all()","ingress":[` + r + `]}}` }
	const ep = "host-openstack-vm-port"
	cases := []struct {
		kind        Kind
		ns, name    string
		json, field string
	}{
		// Names and namespaces from the key.
		{KindGlobalNetworkPolicy, "", "a b", `{"spec":{}}`, "metadata.name"},
		{KindGlobalNetworkPolicy, "", "a\n-I FORWARD 1 -j ACCEPT", `{"spec":{}}`, "metadata.name"},
		{KindGlobalNetworkPolicy, "", "deny%2dbad", `{"spec":{}}`, "metadata.name"},
		{KindGlobalNetworkPolicy, "", strings.Repeat("a", 250), `{"spec":{}}`, "metadata.name"},
		{KindNetworkPolicy, "n s", "p", `{"spec":{}}`, "metadata.namespace"},
		{KindProfile, "", "pro\"file", `{"spec":{}}`, "metadata.name"},
		{KindTier, "", "t\x00", `{"spec":{}}`, "metadata.name"},
		{KindNetworkSet, "ns", "set\u200b", `{"spec":{}}`, "metadata.name"},
		{KindWorkloadEndpoint, "ns", "host-openstack-vm-port\r", wep(`{}`), "metadata.name"},
		{KindWorkloadEndpoint, "ns\t", ep, wep(`{}`), "metadata.namespace"},
		// Endpoint fields.
		{KindWorkloadEndpoint, "ns", ep, wep(`{"ipNetworks":["198.18.0.1"],"interfaceName":"tap\n1"}`), "spec.interfaceName"},
		{KindWorkloadEndpoint, "ns", ep, wep(`{"ipNetworks":["198.18.0.1"],"interfaceName":"täp1"}`), "spec.interfaceName"},
		{KindWorkloadEndpoint, "ns", ep, wep(`{"ipNetworks":["198.18.0.1"],"interfaceName":"tap1","node":"other"}`), "spec.node"},
		{KindWorkloadEndpoint, "ns", ep, wep(`{"ipNetworks":["198.18.0.1"],"interfaceName":"tap1","mac":"02:00:00:00:00:00:00:01"}`), "spec.mac"},
		{KindWorkloadEndpoint, "ns", ep, wep(`{"ipNetworks":["2001:db8::1%eth0 x"],"interfaceName":"tap1"}`), "spec.ipNetworks[0]"},
		{KindWorkloadEndpoint, "ns", ep, wep(`{"ipNetworks":["::ffff:198.18.0.1"],"interfaceName":"tap1"}`), "spec.ipNetworks[0]"},
		{KindWorkloadEndpoint, "ns", ep, wep(`{"ipNetworks":["2001:db8::1"],"interfaceName":"tap1","ipNATs":[{"internalIP":"2001:db8::1","externalIP":"2001:db8::9%x\n-j ACCEPT"}]}`), "spec.ipNATs[0]"},
		{KindWorkloadEndpoint, "ns", ep, wep(`{"ipNetworks":["198.18.0.1"],"interfaceName":"tap1","ipv6Gateway":"fe80::1%eth0"}`), "spec.ipv6Gateway"},
		{KindWorkloadEndpoint, "ns", ep, wep(`{"ipNetworks":["198.18.0.1"],"interfaceName":"tap1","ipv4Gateway":"2001:db8::1"}`), "spec.ipv4Gateway"},
		{KindWorkloadEndpoint, "ns", ep, wep(`{"ipNetworks":["198.18.0.1"],"interfaceName":"tap1","profiles":["a b"]}`), "spec.profiles[0]"},
		{KindWorkloadEndpoint, "ns", ep, wep(`{"ipNetworks":["198.18.0.1"],"interfaceName":"tap1","serviceAccountName":"s\na"}`), "spec.serviceAccountName"},
		{KindWorkloadEndpoint, "ns", ep, `{"metadata":{"labels":{"a b":"x"}},"spec":{"ipNetworks":["198.18.0.1"],"interfaceName":"tap1"}}`, "metadata.labels"},
		{KindWorkloadEndpoint, "ns", ep, `{"metadata":{"labels":{"a":"x\ny"}},"spec":{"ipNetworks":["198.18.0.1"],"interfaceName":"tap1"}}`, `metadata.labels["a"]`},
		{KindWorkloadEndpoint, "ns", ep, `{"metadata":{"labels":{"a":"é"}},"spec":{"ipNetworks":["198.18.0.1"],"interfaceName":"tap1"}}`, `metadata.labels["a"]`},
		{KindWorkloadEndpoint, "ns", ep, `{"metadata":{"labels":{"a":"` + strings.Repeat("v", 64) + `"}},"spec":{"ipNetworks":["198.18.0.1"],"interfaceName":"tap1"}}`, `metadata.labels["a"]`},
		{KindWorkloadEndpoint, "ns", ep, `{"metadata":{"labels":{"Example.com/a":"x"}},"spec":{"ipNetworks":["198.18.0.1"],"interfaceName":"tap1"}}`, "metadata.labels"},
		// The remote (fast) decoder validates the same way.
		{KindWorkloadEndpoint, "ns", "other-openstack-vm-port", `{"metadata":{"labels":{"a":"x y"}},"spec":{"ipNetworks":["198.18.0.1"]}}`, `metadata.labels["a"]`},
		{KindWorkloadEndpoint, "ns", "other-openstack-vm-port", `{"metadata":{"labels":{"a":"b"}},"spec":{"ipNetworks":["198.18.0.1"],"profiles":["x\ny"]}}`, "spec.profiles[0]"},
		// Limits.
		{KindWorkloadEndpoint, "ns", ep, manyLabels(maxLabelsPerObj), "metadata.labels"},
		{KindWorkloadEndpoint, "ns", ep, wep(`{"ipNetworks":` + list(maxAddresses+1, `"198.18.0.1"`) + `,"interfaceName":"tap1"}`), "spec.ipNetworks"},
		{KindWorkloadEndpoint, "ns", ep, wep(`{"ipNetworks":["198.18.0.1"],"interfaceName":"tap1","profiles":` + list(maxProfiles+1, `"p"`) + `}`), "spec.profiles"},
		{KindWorkloadEndpoint, "ns", ep, wep(`{"ipNetworks":["198.18.0.1"],"interfaceName":"tap1","ports":` + list(maxNamedPorts+1, `{"name":"p","protocol":"TCP","port":1}`) + `}`), "spec.ports"},
		{KindWorkloadEndpoint, "ns", ep, wep(`{"ipNetworks":["198.18.0.1"],"interfaceName":"tap1","allowSpoofedSourcePrefixes":` + list(maxAddresses+1, `"198.18.0.0/24"`) + `}`), "spec.allowSpoofedSourcePrefixes"},
		{KindGlobalNetworkPolicy, "", "p", `{"spec":{"ingress":` + list(maxRules+1, `{"action":"Allow"}`) + `}}`, "spec.ingress"},
		{KindGlobalNetworkPolicy, "", "p", rule(`{"action":"Allow","source":{"nets":` + list(maxNets+1, `"198.18.0.0/24"`) + `}}`), "spec.ingress[0].source.nets"},
		{KindGlobalNetworkPolicy, "", "p", rule(`{"action":"Allow","protocol":"TCP","destination":{"notPorts":` + list(maxPorts+1, `80`) + `}}`), "spec.ingress[0].destination.notPorts"},
		{KindGlobalNetworkPolicy, "", "p", `{"spec":{"selector":"` + strings.Repeat("(", 700_000) + "all()" + strings.Repeat(")", 700_000) + `"}}`, "spec.selector"},
		{KindGlobalNetworkPolicy, "", "p", `{"spec":{"selector":"all()","types":["Ingress","Ingress"]}}`, "spec.types[1]"},
		{KindGlobalNetworkSet, "", "s", `{"spec":{"nets":` + list(maxSetNets+1, `"198.18.0.1"`) + `}}`, "spec.nets"},
		{KindProfile, "", "p", `{"spec":{"labelsToApply":{"k":"v\u0000"}}}`, `spec.labelsToApply["k"]`},
		// Rule annotations become iptables comments.
		{KindGlobalNetworkPolicy, "", "p", rule(`{"action":"Allow","metadata":{"annotations":{"note":"a\"\n-A FORWARD -j ACCEPT"}}}`), `spec.ingress[0].metadata.annotations["note"]`},
		{KindGlobalNetworkPolicy, "", "p", rule(`{"action":"Allow","metadata":{"annotations":{"note":"café"}}}`), `spec.ingress[0].metadata.annotations["note"]`},
		{KindGlobalNetworkPolicy, "", "p", rule(`{"action":"Allow","metadata":{"annotations":{"a b":"x"}}}`), "spec.ingress[0].metadata.annotations"},
		// Other shapes.
		{KindHostEndpoint, "", "h", `{"spec":{"node":"n1","interfaceName":"eth0\n","expectedIPs":["198.18.0.1"]}}`, "spec.interfaceName"},
		{KindHostEndpoint, "", "h", `{"spec":{"node":"n 1","expectedIPs":["198.18.0.1"]}}`, "spec.node"},
		{KindHostEndpoint, "", "h", `{"spec":{"node":"n1","expectedIPs":["fe80::1%lo"]}}`, "spec.expectedIPs[0]"},
		{KindNetworkSet, "ns", "s", `{"spec":{"nets":["198.18.0.0/24%x"]}}`, "spec.nets[0]"},
		{KindTier, "", "t", `{"spec":{"defaultAction":"` + strings.Repeat("x", 100_000) + `"}}`, "spec.defaultAction"},
	}
	for _, c := range cases {
		v, err := Decode(c.kind, c.ns, c.name, []byte(c.json), Options{Hostname: "host"})
		var e *Error
		if err == nil {
			t.Errorf("%s %.60q: accepted as %+v", c.kind, c.json, v)
			continue
		}
		if !asError(err, &e) || e.Field != c.field {
			t.Errorf("%s %.80q: error %v, want field %s", c.kind, c.json, err, c.field)
		}
		msg := err.Error()
		if len(msg) > 400 || strings.IndexFunc(msg, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
			t.Errorf("%s: error message is not short printable ASCII: %.200q", c.kind, msg)
		}
		if c.kind == KindGlobalNetworkPolicy || c.kind == KindNetworkPolicy {
			if _, ok := v.(*Invalid); !ok {
				t.Errorf("%s %.60q: an invalid policy must come back as *Invalid, got %T", c.kind, c.json, v)
			}
		}
	}
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	*target = e
	return ok
}

// A policy whose name is refused still has its selector recovered, so
// that calc can enforce it as deny-all where it reaches.
func TestInvalidPolicyNameKeepsSelector(t *testing.T) {
	v, err := Decode(KindGlobalNetworkPolicy, "", "a b", []byte(`{"spec":{"selector":"has(x)","ingress":[{"action":"Allow"}]}}`), Options{})
	inv, ok := v.(*Invalid)
	if err == nil || !ok || inv.Policy == nil || inv.Policy.Selector.String() != "has(x)" {
		t.Fatalf("got %+v, %v", v, err)
	}
}

// Values at the limits are accepted: the limits bound work, they do not
// trim real clouds.
func TestAtTheLimits(t *testing.T) {
	v, err := Decode(KindWorkloadEndpoint, "ns", "host-openstack-vm-port", []byte(manyLabels(maxLabelsPerObj-1)), Options{Hostname: "host"})
	if err != nil || len(v.(*Endpoint).Labels) != maxLabelsPerObj {
		t.Errorf("%d labels: %v", maxLabelsPerObj, err)
	}
	rules := list(maxRules, `{"action":"Allow","protocol":"TCP","source":{"nets":`+list(4, `"198.18.0.0/24"`)+`},"destination":{"ports":`+list(3, `80`)+`}}`)
	if _, err := Decode(KindGlobalNetworkPolicy, "", "p", []byte(`{"spec":{"ingress":`+rules+`}}`), Options{}); err != nil {
		t.Errorf("%d rules: %v", maxRules, err)
	}
	if _, err := Decode(KindGlobalNetworkSet, "", "s", []byte(`{"spec":{"nets":`+list(maxSetNets, `"198.18.0.1"`)+`}}`), Options{}); err != nil {
		t.Errorf("%d nets: %v", maxSetNets, err)
	}
	big := `{"spec":{"nets":["` + strings.Repeat(" ", MaxValueBytes) + `"]}}`
	if _, err := Decode(KindGlobalNetworkSet, "", "s", []byte(big), Options{}); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("a value over MaxValueBytes: %v", err)
	}
}

// FuzzDecode: no input of any kind makes Decode panic, and whatever it
// accepts is printable where it can reach the kernel or a log line.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{neutronWEP, neutronPolicy, calicoctlPolicy,
		`{"spec":{"nets":["198.18.0.0/24"]},"metadata":{"labels":{"a":"b"}}}`,
		`{"spec":{"labelsToApply":{"a":"b"},"ingress":[{"action":"Allow","metadata":{"annotations":{"k":"v"}}}]}}`,
		`{"spec":{"order":1,"defaultAction":"Pass"}}`,
		`{"spec":{"node":"h","expectedIPs":["198.18.0.1"],"interfaceName":"*"}}`,
		`{"spec":{"selector":"((((has(a))))) && !b in {'x'}"}}`, `null`, `[]`, `{"spec":null}`} {
		for k := range pluralOf {
			f.Add(string(k), "openstack-region-RegionOne", wepName, s)
		}
	}
	f.Fuzz(func(t *testing.T, kind, ns, name, data string) {
		v, err := Decode(Kind(kind), ns, name, []byte(data), Options{Hostname: "r1-compute1"})
		if err != nil {
			if strings.IndexFunc(err.Error(), func(r rune) bool { return r < 0x20 }) >= 0 {
				t.Fatalf("error with a control character: %q", err)
			}
			return
		}
		var texts []string
		switch x := v.(type) {
		case *Endpoint:
			texts = append(texts, x.Name, x.Namespace, x.InterfaceName, x.MAC)
			texts = append(texts, x.Profiles...)
			for k, v := range x.Labels {
				texts = append(texts, k, v)
			}
		case *Policy:
			texts = append(texts, x.Name, x.Namespace, x.Tier)
			for _, r := range append(x.Ingress, x.Egress...) {
				for k, v := range r.Annotations {
					texts = append(texts, k, v)
				}
			}
		case *Profile:
			texts = append(texts, x.Name)
		}
		for _, s := range texts {
			if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r > 0x7e || unicode.IsSpace(r) && r != ' ' }) >= 0 {
				t.Fatalf("accepted text %q in %s", s, data)
			}
		}
		if _, err := json.Marshal(v); err != nil && v != nil {
			_ = err // values hold selectors; marshalling is only a smoke check
		}
	})
}
