package conntrack

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"ocelot/internal/netlab"
)

// fakePeers is a record kept in memory.
type fakePeers struct {
	mu       sync.Mutex
	addrs    map[netip.Addr]bool
	overflow bool  // Complete says false
	err      error // Seen and Complete fail
	resets   int
}

func (p *fakePeers) Reset(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.addrs, p.overflow = map[netip.Addr]bool{}, false
	p.resets++
	return nil
}

func (p *fakePeers) Add(_ context.Context, as []netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range as {
		p.addrs[a] = true
	}
	return nil
}

func (p *fakePeers) Seen(_ context.Context, as []netip.Addr) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range as {
		if p.addrs[a] {
			return true, p.err
		}
	}
	return false, p.err
}

func (p *fakePeers) Complete(context.Context) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.overflow, p.err
}

func pair(local, far netip.Addr) *Batch {
	b := NewBatch()
	b.ForgetBetween(local, netip.PrefixFrom(far, far.BitLen()))
	return b
}

// A pass is skipped only when every selection is a pair whose far end the
// record has never seen, and the record is complete and readable; the
// record starts with every address of the flows already tracked.
func TestForgetterSkipsWhatNoFlowCanHave(t *testing.T) {
	ctx := context.Background()
	tracked := tuple(vm, remote)
	table := &fakeTable{flows: []Tuple{tracked}}
	peers := &fakePeers{}
	m := NewMetrics(prometheus.NewRegistry())
	f := NewForgetter(table, time.Millisecond, nil, m)
	f.UsePeers(peers)
	f.rebuild(ctx) // as Run does first
	if !peers.addrs[vm] || !peers.addrs[remote] || testutil.ToFloat64(m.recorded) != 1 {
		t.Fatalf("the rebuilt record %v lacks the tracked flow's ends (usable %v)", peers.addrs, testutil.ToFloat64(m.recorded))
	}
	pass := func(b *Batch) (made bool) {
		t.Helper()
		before, _ := table.state()
		f.Add(b)
		if err := f.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		after, _ := table.state()
		return after > before
	}
	// Skipped: the far end never had a flow.
	if pass(pair(vm, other)) {
		t.Error("a pass was made for an address the record never saw")
	}
	if testutil.ToFloat64(m.skipped) != 1 {
		t.Errorf("skipped passes %v, want 1", testutil.ToFloat64(m.skipped))
	}
	// Made: the far end had a flow, and it is deleted.
	if !pass(pair(vm, remote)) {
		t.Error("no pass for an address with a tracked flow")
	}
	if _, n := table.state(); n != 0 {
		t.Errorf("the tracked flow was not forgotten (%d left)", n)
	}
	// Made: selections the record cannot answer.
	all := NewBatch()
	all.ForgetAll(other)
	through := NewBatch()
	through.ForgetThrough(fip)
	network := NewBatch()
	network.ForgetBetween(vm, netset)
	for name, b := range map[string]*Batch{"every flow of an address": all, "a floating IP": through, "a network": network} {
		if !pass(b) {
			t.Errorf("%s: the pass was skipped", name)
		}
	}
	// Made: an overflowed record, and one that cannot be read; each stops
	// being used until it is rebuilt.
	peers.overflow = true
	if !pass(pair(vm, other)) {
		t.Error("a pass was skipped on an overflowed record")
	}
	if f.recorded || testutil.ToFloat64(m.recorded) != 0 {
		t.Error("an overflowed record is still in use")
	}
	f.rebuild(ctx)
	if pass(pair(vm, other)) {
		t.Error("the rebuilt record was not used")
	}
	peers.err = errors.New("netlink: no such table")
	if !pass(pair(vm, other)) {
		t.Error("a pass was skipped on a record that cannot be read")
	}
	if f.recorded {
		t.Error("a record that cannot be read is still in use")
	}
}

// Without a record, or before it is rebuilt, every pass is made.
func TestForgetterWithoutRecordPasses(t *testing.T) {
	table := &fakeTable{}
	f := NewForgetter(table, time.Millisecond, nil, nil)
	f.UsePeers(&fakePeers{}) // not rebuilt: Run has not started
	f.Add(pair(vm, other))
	if err := f.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if passes, _ := table.state(); passes != 1 {
		t.Errorf("%d passes before the record was rebuilt, want 1", passes)
	}
}

// Run rebuilds the record before its first pass.
func TestForgetterRunRebuildsFirst(t *testing.T) {
	peers := &fakePeers{}
	table := &fakeTable{flows: []Tuple{tuple(vm, remote)}}
	f := NewForgetter(table, time.Millisecond, nil, nil)
	f.UsePeers(peers)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.Run(ctx)
	netlab.Eventually(t, "the record rebuilt", 5*time.Second, func() bool {
		peers.mu.Lock()
		defer peers.mu.Unlock()
		return peers.resets == 1 && peers.addrs[remote]
	})
}

// The kernel's record: forwarded flows between two workload interfaces
// record both far ends (and nothing else); an overflow shows in
// Complete; addresses added by hand are seen; a removed record cannot
// be read (so it is never trusted).
func TestNftPeersKernel(t *testing.T) {
	netlab.Require(t)
	ctx := context.Background()
	a := netlab.AddVM(t, nil, "pra", "tapk0000pra", "fa:16:3e:00:70:01", "198.18.70.1", "2001:db8:70::1")
	b := netlab.AddVM(t, nil, "prb", "tapk0000prb", "fa:16:3e:00:70:02", "198.18.70.2", "2001:db8:70::2")
	netlab.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	netlab.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	netlab.AddUplink(t, nil, "pru") // proxy ARP answers for the gateway only when it is routed elsewhere
	for _, vm := range []*netlab.VM{a, b} {
		vm.PlugIn(t)
		netlab.Run(t, "sysctl", "-qw", "net.ipv4.conf."+vm.HostSide+".proxy_arp=1")
		netlab.Run(t, "ip", "route", "add", vm.IP+"/32", "dev", vm.HostSide)
		netlab.Run(t, "ip", "-6", "route", "add", vm.IP6+"/128", "dev", vm.HostSide)
	}
	ipA, ipB, elsewhere := netip.MustParseAddr(a.IP), netip.MustParseAddr(b.IP), netip.MustParseAddr("198.18.70.9")
	seen := func(p *NftPeers, addr netip.Addr) bool {
		t.Helper()
		ok, err := p.Seen(ctx, []netip.Addr{addr})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	p := &NftPeers{Prefixes: []string{"tapk"}, IPv6: true}
	t.Cleanup(func() { _ = p.Remove() })
	if err := p.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if seen(p, ipA) || seen(p, ipB) {
		t.Fatal("a new record already holds the workloads")
	}
	if !netlab.Pings(a.NS, b.IP, 5*time.Second) {
		t.Fatal("a cannot ping b")
	}
	if !seen(p, ipA) || !seen(p, ipB) {
		t.Errorf("after a forwarded flow: a seen %v, b seen %v; want both", seen(p, ipA), seen(p, ipB))
	}
	if seen(p, elsewhere) {
		t.Error("an address without a flow is seen")
	}
	ip6A, ip6B := netip.MustParseAddr(a.IP6), netip.MustParseAddr(b.IP6)
	if seen(p, ip6A) || seen(p, ip6B) {
		t.Error("IPv6 addresses seen before any IPv6 flow")
	}
	if !netlab.Pings(a.NS, b.IP6, 5*time.Second) {
		t.Fatal("a cannot ping b over IPv6")
	}
	if !seen(p, ip6A) || !seen(p, ip6B) {
		t.Errorf("after a forwarded IPv6 flow: a seen %v, b seen %v; want both", seen(p, ip6A), seen(p, ip6B))
	}
	if ok, err := p.Complete(ctx); err != nil || !ok {
		t.Errorf("Complete = %v, %v; want true", ok, err)
	}
	if err := p.Add(ctx, []netip.Addr{elsewhere}); err != nil {
		t.Fatal(err)
	}
	if !seen(p, elsewhere) {
		t.Error("an address added by hand is not seen")
	}

	// A record of one: the flow's second far end does not fit.
	small := &NftPeers{Prefixes: []string{"tapk"}, Size: 1}
	if err := small.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := small.Complete(ctx); err != nil || !ok {
		t.Fatalf("an empty record: Complete = %v, %v", ok, err)
	}
	netlab.Run(t, "conntrack", "-F") // the ping's flow is new again
	if !netlab.Pings(a.NS, b.IP, 5*time.Second) {
		t.Fatal("a cannot ping b")
	}
	if ok, err := small.Complete(ctx); err != nil || ok {
		t.Errorf("an overflowed record: Complete = %v, %v; want false", ok, err)
	}

	if err := p.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Complete(ctx); err == nil {
		t.Error("a removed record reads as complete")
	}
}
