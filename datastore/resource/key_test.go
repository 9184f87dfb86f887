package resource

import "testing"

func TestKeys(t *testing.T) {
	cases := []struct {
		path string
		key  Key
		ok   bool
	}{
		{ResourcePrefix + "workloadendpoints/" + "openstack-region-RegionOne" + "/h-openstack-vm-port", Key{Kind: KindWorkloadEndpoint, Namespace: "openstack-region-RegionOne", Name: "h-openstack-vm-port"}, true},
		{ResourcePrefix + "globalnetworkpolicies/deny", Key{Kind: KindGlobalNetworkPolicy, Namespace: "", Name: "deny"}, true},
		// Segments are literal: an escape is part of the name (which
		// Decode then refuses), never another spelling of a name.
		{ResourcePrefix + "globalnetworkpolicies/deny%2dbad", Key{Kind: KindGlobalNetworkPolicy, Name: "deny%2dbad"}, true},
		{ResourcePrefix + "networkpolicies/ns/a%2fb", Key{KindNetworkPolicy, "ns", "a%2fb"}, true},
		{ResourcePrefix + "networkpolicies/only-name", Key{}, false},
		{ResourcePrefix + "networkpolicies//name", Key{}, false},
		{ResourcePrefix + "globalnetworkpolicies/", Key{}, false},
		{ResourcePrefix + "tiers/a/b", Key{}, false},
		{ResourcePrefix + "ippools/p", Key{}, false},
		{"/calico/felix/v2/region-RegionOne/host/h/status", Key{}, false},
	}
	for _, c := range cases {
		k, ok := ParseKey(c.path)
		if ok != c.ok || k != c.key {
			t.Errorf("ParseKey(%q) = %+v %v, want %+v %v", c.path, k, ok, c.key, c.ok)
		}
		if ok && k.Path() != c.path {
			t.Errorf("Path() = %q, want %q", k.Path(), c.path)
		}
	}
}

// Two different paths are two different keys: no alias can replace or
// delete another resource.
func FuzzParseKeyOneToOne(f *testing.F) {
	f.Add("globalnetworkpolicies/deny-bad", "globalnetworkpolicies/deny%2dbad")
	f.Add("networkpolicies/ns/a%2fb", "networkpolicies/ns/a/b")
	f.Add("profiles/%41", "profiles/A")
	f.Fuzz(func(t *testing.T, a, b string) {
		ka, oka := ParseKey(ResourcePrefix + a)
		kb, okb := ParseKey(ResourcePrefix + b)
		if oka && okb && a != b && ka == kb {
			t.Fatalf("%q and %q parse to one key %+v", a, b, ka)
		}
		if oka && ka.Path() != ResourcePrefix+a {
			t.Fatalf("ParseKey(%q).Path() = %q", a, ka.Path())
		}
	})
}
