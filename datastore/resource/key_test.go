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
		{ResourcePrefix + "networkpolicies/ns/a%2fb", Key{KindNetworkPolicy, "ns", "a/b"}, true},
		{ResourcePrefix + "networkpolicies/only-name", Key{}, false},
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
