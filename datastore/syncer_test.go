package datastore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"ocelot/datastore/resource"
	"ocelot/internal/embedetcd"
)

const (
	nsOne   = "openstack-region-RegionOne"
	nsTwo   = "openstack-region-RegionTwo"
	nsThree = "openstack-region-RegionThree"
)

func TestListThenWatch(t *testing.T) {
	srv := startEtcd(t, embedetcd.Options{})
	cli := connect(t, srv.ClientURL)
	put(t, cli, clusterInfoKey(), readyJSON)
	put(t, cli, resource.Key{Kind: resource.KindTier, Name: "default"}.Path(), `{"kind":"Tier","spec":{"order":1000000,"defaultAction":"Deny"}}`)
	local := wepKey(nsOne, "r1-compute1", "vm-a", "port-a")
	remote := wepKey(nsTwo, "r2-compute1", "vm-b", "port-b")
	put(t, cli, local, wepJSON(nsOne, "r1-compute1", "vm-a", "port-a", "198.18.1.10", "web"))
	put(t, cli, remote, wepJSON(nsTwo, "r2-compute1", "vm-b", "port-b", "198.18.2.10", "clients"))
	// Three pages of policies to exercise paging at one revision.
	for i := 0; i < 5; i++ {
		put(t, cli, policyKey(nsOne, fmt.Sprint("p", i)), sgPolicyJSON(nsOne, fmt.Sprint("sg", i)))
	}
	c := runSyncer(t, cli, SyncerConfig{Hostname: "r1-compute1", Namespace: nsOne, PageSize: 2})
	c.waitInSync(t)
	st := c.state()
	if _, ok := st[local].(*resource.Endpoint); !ok {
		t.Errorf("local endpoint: %T", st[local])
	}
	if r, ok := st[remote].(*resource.RemoteEndpoint); !ok || r.Nets[0].String() != "198.18.2.10/32" {
		t.Errorf("remote endpoint: %#v", st[remote])
	}
	if len(st) != 9 {
		t.Errorf("snapshot has %d keys, want 9: %v", len(st), st)
	}
	ups, inSync := c.snapshot()
	if inSync != 1 {
		t.Errorf("InSync sent %d times", inSync)
	}
	if ups[0].Key.Kind != resource.KindClusterInformation {
		t.Errorf("cluster-scoped kinds come first; got %v", ups[0].Key)
	}

	// Watch: an update, a delete, a new key — in write order.
	before := len(ups)
	r1 := put(t, cli, remote, wepJSON(nsTwo, "r2-compute1", "vm-b", "port-b", "198.18.2.11", "clients"))
	del(t, cli, policyKey(nsOne, "p0"))
	r3 := put(t, cli, policyKey(nsOne, "p9"), sgPolicyJSON(nsOne, "sg9"))
	poll(t, "three watch updates", 10*time.Second, func() bool { u, _ := c.snapshot(); return len(u) >= before+3 })
	ups, _ = c.snapshot()
	got := ups[before:]
	if len(got) != 3 || got[0].Key.Path() != remote || got[0].Revision != r1 ||
		got[1].Key.Path() != policyKey(nsOne, "p0") || got[1].Value != nil ||
		got[2].Key.Path() != policyKey(nsOne, "p9") || got[2].Revision != r3 {
		t.Fatalf("watch updates out of order or wrong: %+v", got)
	}
	if n := got[0].Value.(*resource.RemoteEndpoint).Nets[0].String(); n != "198.18.2.11/32" {
		t.Errorf("updated remote address %s", n)
	}
	// Deleting a key that was never emitted, and rewriting a value identically, emit nothing spurious.
	del(t, cli, policyKey(nsOne, "never-existed"))
	time.Sleep(200 * time.Millisecond)
	if u, _ := c.snapshot(); len(u) != before+3 {
		t.Errorf("spurious updates: %+v", u[before+3:])
	}
}

func TestRegionFiltering(t *testing.T) {
	srv := startEtcd(t, embedetcd.Options{})
	cli := connect(t, srv.ClientURL)
	put(t, cli, clusterInfoKey(), readyJSON)
	for i, ns := range []string{nsOne, nsTwo, nsThree} {
		put(t, cli, policyKey(ns, "ossg.default.sg"), sgPolicyJSON(ns, "sg"))
		put(t, cli, wepKey(ns, fmt.Sprint("h", i), "vm", "port"), wepJSON(ns, fmt.Sprint("h", i), "vm", "port", fmt.Sprintf("198.18.%d.1", i), "sg"))
		put(t, cli, resource.Key{Kind: resource.KindNetworkSet, Namespace: ns, Name: "set"}.Path(), `{"spec":{"nets":["198.19.0.0/24"]}}`)
	}
	put(t, cli, resource.Key{Kind: resource.KindGlobalNetworkPolicy, Name: "global"}.Path(), `{"spec":{"selector":"all()"}}`)
	put(t, cli, resource.Key{Kind: resource.KindFelixConfiguration, Name: "default"}.Path(), `{"spec":{"interfacePrefix":"tap"}}`)
	put(t, cli, resource.Key{Kind: resource.KindFelixConfiguration, Name: "node.h0"}.Path(), `{"spec":{}}`)
	put(t, cli, resource.Key{Kind: resource.KindFelixConfiguration, Name: "node.other"}.Path(), `{"spec":{}}`)
	put(t, cli, resource.ResourcePrefix+"ippools/pool", `{"spec":{}}`)

	c := runSyncer(t, cli, SyncerConfig{Hostname: "h0", Namespace: nsOne})
	c.waitInSync(t)
	st := c.state()
	for _, ns := range []string{nsOne, nsTwo, nsThree} {
		_, hasPolicy := st[policyKey(ns, "ossg.default.sg")]
		if hasPolicy != (ns == nsOne) {
			t.Errorf("policy of %s emitted: %v", ns, hasPolicy)
		}
		if _, ok := st[resource.Key{Kind: resource.KindNetworkSet, Namespace: ns, Name: "set"}.Path()]; !ok {
			t.Errorf("network set of %s missing", ns)
		}
	}
	if _, ok := st[wepKey(nsOne, "h0", "vm", "port")].(*resource.Endpoint); !ok {
		t.Error("local endpoint missing")
	}
	for i, ns := range []string{nsTwo, nsThree} {
		if _, ok := st[wepKey(ns, fmt.Sprint("h", i+1), "vm", "port")].(*resource.RemoteEndpoint); !ok {
			t.Errorf("remote endpoint of %s missing", ns)
		}
	}
	if _, ok := st[resource.Key{Kind: resource.KindFelixConfiguration, Name: "node.other"}.Path()]; ok {
		t.Error("another host's FelixConfiguration emitted")
	}
	// cluster information, 1 local policy, 3 endpoints, 3 network sets, 1 global policy, 2 FelixConfigurations
	if len(st) != 11 {
		t.Errorf("%d keys emitted, want 11", len(st))
	}
	// A policy written later in another region is not emitted either.
	put(t, cli, policyKey(nsTwo, "late"), sgPolicyJSON(nsTwo, "x"))
	put(t, cli, policyKey(nsOne, "late"), sgPolicyJSON(nsOne, "x"))
	poll(t, "local late policy", 10*time.Second, func() bool { return c.countFor(policyKey(nsOne, "late")) == 1 })
	if c.countFor(policyKey(nsTwo, "late")) != 0 {
		t.Error("remote region's policy emitted")
	}
}

func TestMalformedValueThenFix(t *testing.T) {
	srv := startEtcd(t, embedetcd.Options{})
	cli := connect(t, srv.ClientURL)
	put(t, cli, clusterInfoKey(), readyJSON)
	m := NewMetrics(nil)
	c := runSyncer(t, cli, SyncerConfig{Hostname: "h", Namespace: nsOne, Metrics: m})
	c.waitInSync(t)
	before := testutil.ToFloat64(m.invalidResources.WithLabelValues("NetworkPolicy"))
	key := policyKey(nsOne, "broken")
	put(t, cli, key, `{"kind": "NetworkPolicy", "spec": {"selector": "has(sg.projectcalico.org/openstack-x)", "ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": ["http-alt:80"]}}]}}`)
	poll(t, "invalid update", 10*time.Second, func() bool { return c.countFor(key) == 1 })
	inv, ok := c.state()[key].(*resource.Invalid)
	if !ok || inv.Reason == nil || inv.Policy == nil || inv.Policy.Selector.String() != "has(sg.projectcalico.org/openstack-x)" {
		t.Fatalf("want *resource.Invalid with the recoverable selector, got %#v", c.state()[key])
	}
	if got := testutil.ToFloat64(m.invalidResources.WithLabelValues("NetworkPolicy")) - before; got != 1 {
		t.Errorf("invalid counter rose by %v, want 1", got)
	}
	put(t, cli, key, `not json at all`)
	poll(t, "second invalid update", 10*time.Second, func() bool { return c.countFor(key) == 2 })
	put(t, cli, key, sgPolicyJSON(nsOne, "x"))
	poll(t, "recovery", 10*time.Second, func() bool { return c.countFor(key) == 3 })
	if _, ok := c.state()[key].(*resource.Policy); !ok {
		t.Fatalf("valid rewrite did not recover: %#v", c.state()[key])
	}
}

func TestDatastoreReadyGatesInSync(t *testing.T) {
	srv := startEtcd(t, embedetcd.Options{})
	cli := connect(t, srv.ClientURL)
	put(t, cli, clusterInfoKey(), `{"kind":"ClusterInformation","spec":{"datastoreReady":false}}`)
	put(t, cli, policyKey(nsOne, "p"), sgPolicyJSON(nsOne, "sg"))
	c := runSyncer(t, cli, SyncerConfig{Hostname: "h", Namespace: nsOne})
	poll(t, "snapshot", 10*time.Second, func() bool { return c.countFor(policyKey(nsOne, "p")) == 1 })
	time.Sleep(300 * time.Millisecond)
	if _, n := c.snapshot(); n != 0 {
		t.Fatal("InSync sent while datastoreReady is false")
	}
	put(t, cli, clusterInfoKey(), readyJSON)
	c.waitInSync(t)
}

// TestCompactionDuringBurst cuts the agent off, writes a burst (creates,
// changes, deletes), compacts past it and reconnects: the syncer must
// re-list and emit exactly the difference.
func TestCompactionDuringBurst(t *testing.T) {
	srv := startEtcd(t, embedetcd.Options{})
	direct := connect(t, srv.ClientURL)
	p := newProxy(t, srv.ClientURL[len("http://"):])
	viaProxy := connect(t, p.URL())
	put(t, direct, clusterInfoKey(), readyJSON)
	for i := 0; i < 20; i++ {
		put(t, direct, policyKey(nsOne, fmt.Sprint("p", i)), sgPolicyJSON(nsOne, fmt.Sprint("sg", i)))
	}
	c := runSyncer(t, viaProxy, SyncerConfig{Hostname: "h", Namespace: nsOne})
	c.waitInSync(t)
	before, _ := c.snapshot()

	p.Pause()
	var last int64
	for i := 0; i < 20; i++ {
		switch {
		case i < 5: // changed
			put(t, direct, policyKey(nsOne, fmt.Sprint("p", i)), sgPolicyJSON(nsOne, fmt.Sprint("changed", i)))
		case i < 10: // deleted
			del(t, direct, policyKey(nsOne, fmt.Sprint("p", i)))
		}
	}
	for i := 0; i < 50; i++ { // churn that nets out to nothing
		put(t, direct, policyKey(nsOne, "churn"), sgPolicyJSON(nsOne, fmt.Sprint("c", i)))
		del(t, direct, policyKey(nsOne, "churn"))
	}
	last = put(t, direct, policyKey(nsOne, "new"), sgPolicyJSON(nsOne, "new"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := direct.Compact(ctx, last); err != nil {
		t.Fatal(err)
	}
	p.Resume()

	poll(t, "re-list after compaction", 30*time.Second, func() bool { u, _ := c.snapshot(); return len(u) >= len(before)+11 })
	time.Sleep(300 * time.Millisecond) // let any duplicate show itself
	after, _ := c.snapshot()
	got := map[string]int{}
	for _, u := range after[len(before):] {
		got[u.Key.Path()]++
		if u.Key.Path() == policyKey(nsOne, "churn") {
			t.Errorf("churned key emitted: %+v", u)
		}
	}
	if len(after)-len(before) != 11 {
		t.Errorf("emitted %d updates after reconnect, want 11 (5 changed, 5 deleted, 1 new): %v", len(after)-len(before), got)
	}
	st := c.state()
	for i := 0; i < 20; i++ {
		_, present := st[policyKey(nsOne, fmt.Sprint("p", i))]
		if present == (i >= 5 && i < 10) {
			t.Errorf("p%d present=%v", i, present)
		}
	}
	if _, ok := st[policyKey(nsOne, "new")]; !ok {
		t.Error("new key missing")
	}
}

func TestEtcdRestart(t *testing.T) {
	srv := startEtcd(t, embedetcd.Options{})
	cli := connect(t, srv.ClientURL)
	put(t, cli, clusterInfoKey(), readyJSON)
	put(t, cli, policyKey(nsOne, "a"), sgPolicyJSON(nsOne, "a"))
	c := runSyncer(t, cli, SyncerConfig{Hostname: "h", Namespace: nsOne})
	c.waitInSync(t)
	n, _ := c.snapshot()

	srv.Stop()
	time.Sleep(500 * time.Millisecond)
	if u, _ := c.snapshot(); len(u) != len(n) {
		t.Fatalf("emitted %d updates while etcd was down", len(u)-len(n))
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	put(t, cli, policyKey(nsOne, "b"), sgPolicyJSON(nsOne, "b"))
	poll(t, "update after restart", 30*time.Second, func() bool { return c.countFor(policyKey(nsOne, "b")) == 1 })
	time.Sleep(300 * time.Millisecond)
	if c.countFor(policyKey(nsOne, "a")) != 1 || c.countFor(clusterInfoKey()) != 1 {
		t.Errorf("duplicates after restart: a=%d clusterinfo=%d", c.countFor(policyKey(nsOne, "a")), c.countFor(clusterInfoKey()))
	}
}

func TestReadStartupState(t *testing.T) {
	srv := startEtcd(t, embedetcd.Options{})
	cli := connect(t, srv.ClientURL)
	ctx := context.Background()
	st, err := ReadStartupState(ctx, cli, "h1", nil, nil)
	if err != nil || st.Ready() || st.Global != nil {
		t.Fatalf("empty datastore: %+v %v", st, err)
	}
	put(t, cli, clusterInfoKey(), readyJSON)
	put(t, cli, resource.Key{Kind: resource.KindFelixConfiguration, Name: "default"}.Path(), `{"spec": {"interfacePrefix": "tap", "endpointReportingEnabled": true}}`)
	put(t, cli, resource.Key{Kind: resource.KindFelixConfiguration, Name: "node.h1"}.Path(), `{"spec": {"logSeverityScreen": "Debug"}}`)
	st, err = ReadStartupState(ctx, cli, "h1", nil, nil)
	if err != nil || !st.Ready() || st.Global.Spec["interfacePrefix"] != "tap" || st.Host.Spec["logSeverityScreen"] != "Debug" ||
		st.ClusterInfo.ClusterType != "openstack" {
		t.Fatalf("%+v %v", st, err)
	}
}

// TestFreshness walks the watch freshness check through its verdicts.
func TestFreshness(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	const staleAfter = 5 * time.Second
	f := freshness{confirmed: 10}
	steps := []struct {
		progress   int64 // reported by the watch before the check (0: none)
		clusterRev int64
		at         int
		want       verdict
	}{
		{0, 10, 0, fresh},   // level with the cluster
		{0, 12, 1, behind},  // the cluster moved on: behind from t=1
		{0, 13, 5, behind},  // 4 s without progress
		{11, 14, 7, behind}, // progress, though still behind: the clock restarts at t=7
		{0, 14, 11, behind}, // 4 s since that progress
		{0, 14, 12, stale},  // 5 s without progress while behind
		{14, 14, 13, fresh}, // caught up
		{0, 15, 20, behind}, // behind again: a new clock, not the old one
	}
	for i, s := range steps {
		if s.progress != 0 {
			f.progress(s.progress)
		}
		if got := f.check(s.clusterRev, at(s.at), staleAfter); got != s.want {
			t.Fatalf("step %d (t=%ds, watch at %d, cluster at %d): verdict %d, want %d", i, s.at, f.confirmed, s.clusterRev, got, s.want)
		}
	}
}

// TestStatusFollowsEtcd: the connection state goes down with etcd, with a
// reason, and comes back with it; the watch resumes without a re-list.
func TestStatusFollowsEtcd(t *testing.T) {
	srv := startEtcd(t, embedetcd.Options{})
	cli := connect(t, srv.ClientURL)
	put(t, cli, clusterInfoKey(), readyJSON)
	put(t, cli, policyKey(nsOne, "a"), sgPolicyJSON(nsOne, "a"))
	s := NewSyncer(cli, SyncerConfig{Hostname: "h", Namespace: nsOne, Log: testLog(t)})
	s.checkEvery, s.staleAfter = 300*time.Millisecond, time.Second
	if s.Status().Connected {
		t.Fatal("connected before running")
	}
	c := runThis(t, s)
	c.waitInSync(t)
	poll(t, "connected", 5*time.Second, func() bool { return s.Status().Connected })
	resyncs := testutil.ToFloat64(s.cfg.Metrics.resyncsStarted)

	srv.Stop()
	poll(t, "disconnected", 10*time.Second, func() bool { return !s.Status().Connected })
	if st := s.Status(); st.Err == nil || st.Since.IsZero() {
		t.Errorf("disconnected without a reason or time: %+v", st)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	put(t, cli, policyKey(nsOne, "b"), sgPolicyJSON(nsOne, "b"))
	poll(t, "update after restart", 30*time.Second, func() bool { return c.countFor(policyKey(nsOne, "b")) == 1 })
	poll(t, "connected again", 10*time.Second, func() bool { return s.Status().Connected })
	if n := testutil.ToFloat64(s.cfg.Metrics.resyncsStarted) - resyncs; n != 0 {
		t.Errorf("%v re-lists after etcd came back; the watch should have resumed", n)
	}
}

// watchedProxy finds which of two proxies carries the syncer's watch: the
// one that forwards a large value written under the watched prefix.
func watchedProxy(t *testing.T, direct *clientv3.Client, pa, pb *proxy) *proxy {
	t.Helper()
	big := strings.Repeat("x", 256<<10)
	a0, b0 := pa.down.Load(), pb.down.Load()
	put(t, direct, resource.ResourcePrefix+"ippools/big", big)
	var watched *proxy
	poll(t, "the large value passes one proxy", 10*time.Second, func() bool {
		switch {
		case pa.down.Load()-a0 >= int64(len(big)):
			watched = pa
		case pb.down.Load()-b0 >= int64(len(big)):
			watched = pb
		}
		return watched != nil
	})
	return watched
}

// TestWatchLeavesDeadMember: the connection to the member carrying the
// watch breaks (the member died). The watch must move to the other member
// at once, without waiting for the freshness check.
func TestWatchLeavesDeadMember(t *testing.T) {
	srv := startEtcd(t, embedetcd.Options{})
	direct := connect(t, srv.ClientURL)
	pa, pb := newProxy(t, srv.ClientURL[len("http://"):]), newProxy(t, srv.ClientURL[len("http://"):])
	cc := ClientConfig{Endpoints: []string{pa.URL(), pb.URL()}}
	cli := connect(t, cc.Endpoints...)
	put(t, direct, clusterInfoKey(), readyJSON)
	s := NewSyncer(cli, SyncerConfig{Hostname: "h", Namespace: nsOne, Log: testLog(t), Client: cc})
	s.checkEvery, s.staleAfter = 20*time.Second, time.Minute // out of the way
	c := runThis(t, s)
	c.waitInSync(t)
	watched := watchedProxy(t, direct, pa, pb)
	watched.Pause()
	died := time.Now()
	put(t, direct, policyKey(nsOne, "after"), sgPolicyJSON(nsOne, "after"))
	poll(t, "the change through the other member", 5*time.Second, func() bool { return c.countFor(policyKey(nsOne, "after")) == 1 })
	t.Logf("change arrived %v after the watched member died", time.Since(died).Round(time.Millisecond))
}

// TestWatchLeavesSilentMember: the member carrying the watch stops
// answering without closing anything (paused, or a network that drops).
// The watch must move to the other member well before keepalive would
// notice, and a change made meanwhile arrive.
func TestWatchLeavesSilentMember(t *testing.T) {
	srv := startEtcd(t, embedetcd.Options{})
	direct := connect(t, srv.ClientURL)
	pa, pb := newProxy(t, srv.ClientURL[len("http://"):]), newProxy(t, srv.ClientURL[len("http://"):])
	cc := ClientConfig{Endpoints: []string{pa.URL(), pb.URL()}}
	cli := connect(t, cc.Endpoints...)
	put(t, direct, clusterInfoKey(), readyJSON)
	s := NewSyncer(cli, SyncerConfig{Hostname: "h", Namespace: nsOne, Log: testLog(t), Client: cc})
	s.checkEvery, s.staleAfter = 300*time.Millisecond, time.Second
	c := runThis(t, s)
	c.waitInSync(t)

	watched := watchedProxy(t, direct, pa, pb)
	watched.Freeze()
	frozen := time.Now()
	put(t, direct, policyKey(nsOne, "after"), sgPolicyJSON(nsOne, "after"))
	poll(t, "the change through the other member", keepAliveTime, func() bool { return c.countFor(policyKey(nsOne, "after")) == 1 })
	t.Logf("change arrived %v after the watched member went silent", time.Since(frozen).Round(time.Millisecond))
}
