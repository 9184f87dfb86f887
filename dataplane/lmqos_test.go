package dataplane

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ocelot/contract"
	"ocelot/dataplane/qos"
	"ocelot/dataplane/rules"
)

// fakeClock runs the migrations' timers when the test says.
type fakeClock struct {
	mu sync.Mutex
	ts []*fakeTimer
}

type fakeTimer struct {
	f       func()
	stopped bool
}

func (c *fakeClock) AfterFunc(_ time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{f: f}
	c.ts = append(c.ts, t)
	return func() bool { c.mu.Lock(); defer c.mu.Unlock(); was := !t.stopped; t.stopped = true; return was }
}

// fire runs the timers not stopped.
func (c *fakeClock) fire() {
	c.mu.Lock()
	ts := c.ts
	c.ts = nil
	c.mu.Unlock()
	for _, t := range ts {
		if !t.stopped {
			t.f()
		}
	}
}

// migrationEvent hands the dataplane its next migration event.
func (h *harness) migrationEvent() {
	h.t.Helper()
	select {
	case ev := <-h.d.migrations.Events():
		h.d.migrations.Handle(ev)
	case <-time.After(5 * time.Second):
		h.t.Fatal("no migration event")
	}
}

// A gratuitous ARP for 198.18.0.1, as a resumed guest sends it.
var garpFrame = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfa, 0x16, 0x3e, 0, 0, 1, 0x08, 0x06,
	0, 1, 8, 0, 6, 4, 0, 1, 0xfa, 0x16, 0x3e, 0, 0, 1, 198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 198, 18, 0, 1}

// The target of a live migration: no route until its VM announces itself
// (but reported up: Nova waits for that before it moves the VM), then
// the elevated priority until the convergence time after the migration,
// then normal. The source's routes stay normal throughout. A priority
// change adds the new route before it deletes the old one.
func TestLiveMigrationRoutes(t *testing.T) {
	h := newHarness(t)
	tgt, src := epID("target"), epID("source")
	h.plug("tap1")
	h.plug("tap2")
	target := endpoint(tgt, "tap1", "198.18.0.1", "p")
	target.IPv6Nets = append(target.IPv6Nets, netip.MustParsePrefix("2001:db8::1/128"))
	target.LiveMigration, target.MigrationUID = contract.MigrationTarget, "uid-1"
	source := endpoint(src, "tap2", "198.18.0.2", "p")
	source.LiveMigration = contract.MigrationSource
	h.send(policy("p"), target, source, contract.InSync{})
	h.apply()
	if r := h.k.RouteMetrics("tap1"); len(r) != 0 || len(h.k.Neighs("tap1")) != 0 {
		t.Errorf("target's routes before the GARP: %v, neighbours %v", r, h.k.Neighs("tap1"))
	}
	if h.status(tgt) != "up" {
		t.Errorf("target's status %q; want up, routes held back or not", h.status(tgt))
	}
	normalSource := []string{"198.18.0.2/32 metric 1024"}
	if r := h.k.RouteMetrics("tap2"); !slices.Equal(r, normalSource) {
		t.Errorf("source's routes %v", r)
	}
	if h.k.Captures("tap1") != 1 || h.k.Captures("tap2") != 0 {
		t.Fatalf("captures: target %d, source %d", h.k.Captures("tap1"), h.k.Captures("tap2"))
	}

	h.k.SendFrame("tap1", garpFrame)
	h.migrationEvent()
	h.apply()
	elevated := []string{"198.18.0.1/32 metric 512", "2001:db8::1/128 metric 512"}
	if r := h.k.RouteMetrics("tap1"); !slices.Equal(r, elevated) || len(h.k.Neighs("tap1")) != 1 {
		t.Errorf("after the GARP: routes %v, neighbours %v; want %v", r, h.k.Neighs("tap1"), elevated)
	}
	if h.k.Captures("tap1") != 0 {
		t.Error("capture left open after the GARP")
	}

	// The migration ends: still elevated until the timer.
	target.LiveMigration = contract.NoMigration
	source.LiveMigration = contract.NoMigration
	h.send(target, source)
	h.apply()
	if r := h.k.RouteMetrics("tap1"); !slices.Equal(r, elevated) {
		t.Errorf("in TimeWait: %v", r)
	}
	h.clock.fire()
	h.migrationEvent()
	before := len(h.k.Journal())
	h.apply()
	if r := h.k.RouteMetrics("tap1"); !slices.Equal(r, []string{"198.18.0.1/32 metric 1024", "2001:db8::1/128 metric 1024"}) {
		t.Errorf("after the convergence time: %v", r)
	}
	journal := h.k.Journal()[before:]
	add := slices.IndexFunc(journal, func(l string) bool { return l == "netlink: route replace 198.18.0.1/32 dev 11 proto 3 metric 1024" })
	del := slices.IndexFunc(journal, func(l string) bool { return l == "netlink: route del 198.18.0.1/32 dev 11 metric 512" })
	if add < 0 || del < 0 || add > del {
		t.Errorf("the normal route must be added before the elevated one goes: %q", journal)
	}
	if r := h.k.RouteMetrics("tap2"); !slices.Equal(r, normalSource) {
		t.Errorf("source's routes %v", r)
	}
}

// An endpoint's QoS controls: the bandwidth limits become token buckets
// (to the VM on its tap, from the VM on its IFB device, behind a redirect),
// the packet-rate and connection limits rules in its chains; when the
// controls go, all of it goes; when the endpoint goes, its IFB device too.
func TestQoSControls(t *testing.T) {
	h := newHarness(t)
	a := epID("a")
	h.plug("tap1")
	ep := endpoint(a, "tap1", "198.18.0.1", "p")
	ep.QoS = &contract.QoSControls{
		Ingress: contract.QoSLimits{Bandwidth: 10_000_000, Burst: 100_000, PacketRate: 100, PacketBurst: 5},
		Egress:  contract.QoSLimits{Bandwidth: 20_000_000, Burst: 100_000, MaxConnections: 10}}
	h.send(policy("p"), ep, contract.InSync{})
	h.apply()
	ifb := qos.IFBName("tap1")
	if rate, ingress, redirect := h.k.TC("tap1"); rate != 1_250_000 || !ingress || redirect != ifb {
		t.Errorf("tap1: bucket %d B/s, ingress qdisc %v, redirect to %q", rate, ingress, redirect)
	}
	if rate, _, _ := h.k.TC(ifb); rate != 2_500_000 {
		t.Errorf("%s: bucket %d B/s", ifb, rate)
	}
	to, from := strings.Join(h.chain(rules.ToWorkloadChainName("tap1")), "\n"), strings.Join(h.chain(rules.FromWorkloadChainName("tap1")), "\n")
	if !strings.Contains(to, "-m limit --limit 100/sec --limit-burst 5") || strings.Contains(from, "-m limit") ||
		!strings.Contains(from, "--connlimit-above 10") || strings.Contains(to, "connlimit") {
		t.Errorf("chains:\nto:\n%s\nfrom:\n%s", to, from)
	}
	if h.status(a) != "up" {
		t.Errorf("status %q", h.status(a))
	}

	ep.QoS = nil
	h.send(ep)
	h.apply()
	if rate, ingress, redirect := h.k.TC("tap1"); rate != 0 || ingress || redirect != "" {
		t.Errorf("controls gone, tap1: bucket %d, ingress %v, redirect %q", rate, ingress, redirect)
	}
	if _, found, _ := h.k.LinkIndex(ifb); found {
		t.Errorf("%s left after the controls went", ifb)
	}
	if to := strings.Join(h.chain(rules.ToWorkloadChainName("tap1")), "\n"); strings.Contains(to, "limit") {
		t.Errorf("rate limit left:\n%s", to)
	}

	ep.QoS = &contract.QoSControls{Egress: contract.QoSLimits{Bandwidth: 20_000_000, Burst: 100_000}}
	h.send(ep)
	h.apply()
	if _, found, _ := h.k.LinkIndex(ifb); !found {
		t.Fatalf("%s not made", ifb)
	}
	h.send(contract.EndpointRemove{ID: a})
	h.apply()
	if _, found, _ := h.k.LinkIndex(ifb); found {
		t.Errorf("%s left after the endpoint went", ifb)
	}
	if _, ingress, _ := h.k.TC("tap1"); ingress {
		t.Error("the redirect's ingress qdisc left on the tap")
	}
}
