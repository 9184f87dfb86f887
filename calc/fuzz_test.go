package calc

import (
	"bytes"
	"reflect"
	"testing"

	"ocelot/datastore/resource"
)

// A fuzz input is a sequence of records separated by 0x1e: a kind byte, a
// key byte (picking from a small pool, so that keys collide and
// resources replace each other), a flush byte, then the stored JSON (empty:
// a delete).
var fuzzKinds = []resource.Kind{resource.KindWorkloadEndpoint, resource.KindNetworkPolicy, resource.KindGlobalNetworkPolicy,
	resource.KindProfile, resource.KindTier, resource.KindNetworkSet, resource.KindGlobalNetworkSet, resource.KindHostEndpoint,
	resource.KindLiveMigration}

var fuzzKeys = []struct{ ns, name string }{
	{nsOne, "r1--compute1-openstack-vm0-p0"}, {nsOne, "r1--compute1-openstack-vm1-p1"}, {nsTwo, "r1--compute1-openstack-vm2-p2"},
	{nsOne, "r2-openstack-vm3-p3"}, {nsTwo, "r3-openstack-vm4-p4"}, {nsOne, "web"}, {nsOne, "default.web"},
	{nsOne, "ossg.default.a7734e61"}, {nsOne, "default"}, {nsOne, "a b"}, {nsOne, "deny%2dbad"},
}

func fuzzRecord(kind, key byte, flush bool, data string) []byte {
	return append([]byte{kind, key, map[bool]byte{false: 0, true: 1}[flush]}, append([]byte(data), 0x1e)...)
}

// FuzzGraph feeds decoded resources of every kind, valid or not, to the
// graph: it must never panic, every flush must keep the ordering
// invariants (the fake dataplane checks them), and the state reached
// incrementally must equal the state of a fresh graph fed only the final
// contents (unless a policy's last value is garbage: then the incremental
// graph rightly remembers its last valid selector).
func FuzzGraph(f *testing.F) {
	wep := `{"metadata":{"labels":{"projectcalico.org/namespace":"openstack-region-RegionOne","sg.projectcalico.org/openstack-web":"","role":"x"}},"spec":{"interfaceName":"tap0","ipNetworks":["198.18.0.1/32"],"profiles":["p1"],"ports":[{"name":"http","protocol":"TCP","port":80}]}}`
	wep2 := `{"metadata":{"labels":{"projectcalico.org/namespace":"openstack-region-RegionTwo","sg.projectcalico.org/openstack-cli":""}},"spec":{"interfaceName":"eth0","ipNetworks":["198.18.0.2/32","2001:db8::2"],"allowSpoofedSourcePrefixes":["0.0.0.0/0"]}}`
	np := `{"spec":{"selector":"has(sg.projectcalico.org/openstack-web)","order":10,"ingress":[{"action":"Allow","protocol":"TCP","source":{"selector":"has(sg.projectcalico.org/openstack-cli)","namespaceSelector":"all()"},"destination":{"ports":[80,"http"]}}],"egress":[{"action":"Deny","destination":{"notSelector":"role == 'x'","nets":["198.51.100.0/24"]}}]}}`
	gnp := `{"spec":{"tier":"t1","selector":"all()","types":["Ingress"],"ingress":[{"action":"Pass","source":{"selector":"global()","namespaceSelector":"global()"}},{"action":"Deny","http":{"methods":["GET"]}}]}}`
	prof := `{"spec":{"labelsToApply":{"role":"y"},"ingress":[{"action":"Allow","source":{"selector":"has(role)"}}]}}`
	tier := `{"spec":{"order":5,"defaultAction":"Pass"}}`
	set := `{"metadata":{"labels":{"role":"x"}},"spec":{"nets":["0.0.0.0/0","198.18.9.0/24"]}}`
	hep := `{"metadata":{"labels":{"role":"x"}},"spec":{"node":"r1-compute1","interfaceName":"eth1","expectedIPs":["198.18.7.7"]}}`
	// vm0's port migrating here from r2 (where vm3's port is the source).
	lm := `{"metadata":{"uid":"u1"},"spec":{"source":{"workloadEndpoint":{"hostname":"r2","orchestratorID":"openstack","workloadID":"openstack-region-RegionOne/vm3","endpointID":"p3"}},` +
		`"target":{"workloadEndpoint":{"hostname":"r1-compute1","orchestratorID":"openstack","workloadID":"openstack-region-RegionOne/vm0","endpointID":"p0"}}}}`
	untracked := `{"spec":{"selector":"role == 'x'","doNotTrack":true,"applyOnForward":true,"ingress":[{"action":"Allow","source":{"selector":"has(sg.projectcalico.org/openstack-web)"}}]}}`
	var all []byte
	for _, r := range [][]byte{
		fuzzRecord(0, 0, false, wep), fuzzRecord(0, 2, false, wep2), fuzzRecord(0, 3, false, wep), fuzzRecord(1, 7, false, np),
		fuzzRecord(2, 5, false, gnp), fuzzRecord(2, 6, true, np), fuzzRecord(3, 5, false, prof), fuzzRecord(4, 8, false, tier),
		fuzzRecord(4, 5, false, tier), fuzzRecord(5, 5, true, set), fuzzRecord(6, 5, false, set), fuzzRecord(7, 5, false, hep),
		fuzzRecord(2, 9, true, gnp), fuzzRecord(2, 10, false, np), fuzzRecord(1, 7, true, ""), fuzzRecord(0, 0, true, `{"spec":`),
		fuzzRecord(8, 0, true, lm), fuzzRecord(0, 0, false, wep), fuzzRecord(0, 3, true, ""), fuzzRecord(8, 1, true, lm),
		fuzzRecord(2, 11, true, untracked), fuzzRecord(7, 5, true, `{"spec":{}}`),
	} {
		f.Add(r)
		all = append(all, r...)
	}
	f.Add(all)
	f.Fuzz(func(t *testing.T, in []byte) {
		store := map[string]resource.Update{}
		var order []string
		g := New(testConfig, nil)
		d := newFakeDataplane(t)
		for _, rec := range bytes.Split(in, []byte{0x1e}) {
			if len(rec) < 3 {
				continue
			}
			kind := fuzzKinds[int(rec[0])%len(fuzzKinds)]
			k := fuzzKeys[int(rec[1])%len(fuzzKeys)]
			key := resource.Key{Kind: kind, Name: k.name}
			if kind.Namespaced() {
				key.Namespace = k.ns
			}
			u := decodeForTest(key, rec[3:])
			if _, ok := store[key.Path()]; !ok {
				order = append(order, key.Path())
			}
			store[key.Path()] = u
			g.OnUpdates([]resource.Update{u})
			if rec[2]&1 == 1 {
				g.OnInSync()
				d.apply(g.Flush())
			}
		}
		g.OnInSync()
		d.apply(g.Flush())

		// A policy whose latest value is garbage keeps its last valid
		// selector, a host endpoint its last valid interface (fail
		// closed); a fresh graph cannot know them.
		for _, u := range store {
			inv, ok := u.Value.(*resource.Invalid)
			if ok && (inv.Policy == nil && (u.Key.Kind == resource.KindNetworkPolicy || u.Key.Kind == resource.KindGlobalNetworkPolicy) ||
				u.Key.Kind == resource.KindHostEndpoint) {
				return
			}
		}
		fresh := New(testConfig, nil)
		for _, p := range order {
			if u := store[p]; u.Value != nil {
				fresh.OnUpdates([]resource.Update{u})
			}
		}
		fresh.OnInSync()
		d2 := newFakeDataplane(t)
		d2.apply(fresh.Flush())
		if got, want := d.state(), d2.state(); !reflect.DeepEqual(got, want) {
			t.Fatalf("incremental state differs from a fresh graph's:\n got %+v\nwant %+v", got, want)
		}
	})
}

// decodeForTest turns stored bytes into the update the datastore would
// emit (an empty value is a delete).
func decodeForTest(key resource.Key, data []byte) resource.Update {
	u := resource.Update{Key: key}
	if len(data) == 0 {
		return u
	}
	v, err := resource.Decode(key.Kind, key.Namespace, key.Name, data, resource.Options{Hostname: host})
	if err != nil {
		inv, _ := v.(*resource.Invalid)
		if inv == nil {
			inv = &resource.Invalid{Kind: key.Kind}
		}
		inv.Reason = err
		v = inv
	}
	u.Value = v
	return u
}
