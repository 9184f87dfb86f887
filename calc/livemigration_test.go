package calc

import (
	"strings"
	"testing"

	"ocelot/contract"
	"ocelot/datastore/resource"
)

// A port migrating from r1-compute2 to this host (the target), as the
// Neutron driver writes it: the LiveMigration, named after the
// destination endpoint, then the destination endpoint; the source
// endpoint exists on the other host.
func lmKey(name string) resource.Key {
	return resource.Key{Kind: resource.KindLiveMigration, Namespace: nsOne, Name: name}
}

func ident(h, vm, port string) resource.EndpointIdentity {
	return resource.EndpointIdentity{Hostname: h, Orchestrator: "openstack", WorkloadID: nsOne + "/" + vm, EndpointID: port}
}

func liveMigration(uid string, src, tgt resource.EndpointIdentity) resource.Update {
	name := epName(tgt.Hostname, tgt.Workload(), tgt.EndpointID)
	return resource.Update{Key: lmKey(name), Value: &resource.LiveMigration{Namespace: nsOne, Name: name, UID: uid, Source: src, Target: tgt}}
}

var vmID = contract.EndpointID{Orchestrator: "openstack", WorkloadID: nsOne + "/vm", EndpointID: "p"}

func role(d *fakeDataplane) (contract.LiveMigrationRole, string) {
	ep := d.endpoints[vmID]
	return ep.LiveMigration, ep.MigrationUID
}

func TestLiveMigrationTarget(t *testing.T) {
	lm := liveMigration("uid-1", ident("r1-compute2", "vm", "p"), ident(host, "vm", "p"))
	source := remoteEP(nsOne, "r1-compute2", "vm", "p", "198.18.1.5", labels(nsOne))
	target := localEP(nsOne, "vm", "p", "198.18.1.5", labels(nsOne))
	g, d, problems := run(t, source, lm, target)
	if r, uid := role(d); r != contract.MigrationTarget || uid != "uid-1" || len(problems) != 0 {
		t.Fatalf("role %v %q, problems %v; want target uid-1", r, uid, problems)
	}
	step := func(what string, want contract.LiveMigrationRole, ups ...resource.Update) {
		t.Helper()
		g.OnUpdates(ups)
		d.apply(g.Flush())
		if r, _ := role(d); r != want {
			t.Errorf("%s: role %v, want %v", what, r, want)
		}
	}
	// The source endpoint goes (the migration succeeded): the VM is here
	// now, whether or not the LiveMigration is gone yet.
	step("source endpoint deleted", contract.NoMigration, deleted(source.Key))
	step("source endpoint back", contract.MigrationTarget, source)
	step("LiveMigration deleted", contract.NoMigration, deleted(lm.Key))
	step("LiveMigration again", contract.MigrationTarget, lm)
	// An invalid LiveMigration counts as none: routes as usual.
	var reported []Problem
	g.report = func(p Problem) { reported = append(reported, p) }
	step("LiveMigration invalid", contract.NoMigration, resource.Update{Key: lm.Key, Value: &resource.Invalid{Kind: resource.KindLiveMigration, Reason: &resource.Error{Rule: "bad"}}})
	if len(reported) != 1 || !strings.Contains(reported[0].Reason, "invalid LiveMigration") {
		t.Errorf("problems %v", reported)
	}
}

func TestLiveMigrationSourceAndOrder(t *testing.T) {
	// This host is the source: the LiveMigration's target is elsewhere.
	lm := liveMigration("uid-2", ident(host, "vm", "p"), ident("r1-compute2", "vm", "p"))
	local := localEP(nsOne, "vm", "p", "198.18.1.5", labels(nsOne))
	for _, order := range [][]resource.Update{{lm, local}, {local, lm}} {
		_, d, _ := run(t, order...)
		if r, uid := role(d); r != contract.MigrationSource || uid != "uid-2" {
			t.Errorf("role %v %q, want source uid-2", r, uid)
		}
	}
	// A workload-level source names every endpoint of the VM.
	wl := liveMigration("uid-3", resource.EndpointIdentity{Hostname: host, Orchestrator: "openstack", WorkloadID: nsOne + "/vm"}, ident("r1-compute2", "vm", "p"))
	g, d, _ := run(t, local, wl)
	if r, _ := role(d); r != contract.MigrationSource {
		t.Errorf("workload-level source: role %v", r)
	}
	g.OnUpdates([]resource.Update{deleted(wl.Key)})
	d.apply(g.Flush())
	if r, _ := role(d); r != contract.NoMigration {
		t.Errorf("workload-level source gone: role %v", r)
	}
}

// Two LiveMigrations name one target (a transient overlap): the greatest
// UID wins, whatever the order; target beats source.
func TestLiveMigrationOverlap(t *testing.T) {
	source := remoteEP(nsOne, "r1-compute2", "vm", "p", "198.18.1.5", labels(nsOne))
	a := liveMigration("uid-a", ident("r1-compute2", "vm", "p"), ident(host, "vm", "p"))
	b := liveMigration("uid-b", ident("r1-compute2", "vm", "p"), ident(host, "vm", "p"))
	b.Key.Name += "-2"
	back := liveMigration("uid-c", ident(host, "vm", "p"), ident("r1-compute3", "vm", "p"))
	local := localEP(nsOne, "vm", "p", "198.18.1.5", labels(nsOne))
	for _, ups := range [][]resource.Update{{source, a, b, back, local}, {local, back, b, a, source}} {
		_, d, _ := run(t, ups...)
		if r, uid := role(d); r != contract.MigrationTarget || uid != "uid-b" {
			t.Errorf("role %v %q, want target uid-b", r, uid)
		}
	}
}

func TestQoSControlsReachTheDataplane(t *testing.T) {
	ep := localEP(nsOne, "vm", "p", "198.18.1.1", labels(nsOne))
	ep.Value.(*resource.Endpoint).QoS = &resource.QoSControls{
		Ingress: resource.QoSDirection{Bandwidth: 10_000_000, Burst: 80_000, PacketRate: 100, PacketBurst: 5},
		Egress:  resource.QoSDirection{MaxConnections: 10}, DSCP: true}
	g, d, problems := run(t, ep)
	want := contract.QoSControls{Ingress: contract.QoSLimits{Bandwidth: 10_000_000, Burst: 80_000, PacketRate: 100, PacketBurst: 5},
		Egress: contract.QoSLimits{MaxConnections: 10}}
	if got := d.endpoints[vmID].QoS; got == nil || *got != want {
		t.Errorf("QoS %+v, want %+v", got, want)
	}
	if len(problems) != 1 || !strings.Contains(problems[0].Reason, "DSCP") {
		t.Errorf("problems %v", problems)
	}
	// The controls go: the endpoint is sent again, without them.
	g.OnUpdates([]resource.Update{localEP(nsOne, "vm", "p", "198.18.1.1", labels(nsOne))})
	d.apply(g.Flush())
	if got := d.endpoints[vmID].QoS; got != nil {
		t.Errorf("QoS after removal %+v", got)
	}
}
