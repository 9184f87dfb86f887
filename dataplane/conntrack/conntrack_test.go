package conntrack

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"ocelot/internal/netlab"
)

func TestMain(m *testing.M) { netlab.Main(m) }

var (
	vm      = netip.MustParseAddr("198.18.1.1")
	fip     = netip.MustParseAddr("198.18.9.9")
	client  = netip.MustParseAddr("198.18.3.3")
	remote  = netip.MustParseAddr("198.18.2.2")
	netset  = netip.MustParsePrefix("198.18.40.0/24")
	inSet   = netip.MustParseAddr("198.18.40.7")
	other   = netip.MustParseAddr("198.18.5.5")
	vm6     = netip.MustParseAddr("2001:db8::1")
	remote6 = netip.MustParseAddr("2001:db8::2")
)

func tuple(src, dst netip.Addr) Tuple {
	return Tuple{OrigSrc: src, OrigDst: dst, ReplySrc: dst, ReplyDst: src}
}

// A flow is the VM's when it opened it or answers it, through a floating
// IP too; a pair selects flows between an address and a network, either
// way; nothing else is selected.
func TestBatchMatch(t *testing.T) {
	b := NewBatch()
	b.ForgetAll(vm)
	b.ForgetBetween(vm6, netip.PrefixFrom(remote6, 128))
	b.ForgetBetween(other, netset)
	b.ForgetBetween(other, netip.MustParsePrefix("2001:db8::/32")) // another family: ignored
	dnat := Tuple{OrigSrc: client, OrigDst: fip, ReplySrc: vm, ReplyDst: client}
	for _, c := range []struct {
		t    Tuple
		want bool
	}{
		{tuple(vm, remote), true}, {tuple(remote, vm), true}, {dnat, true},
		{tuple(vm6, remote6), true}, {tuple(remote6, vm6), true},
		{tuple(other, inSet), true}, {tuple(inSet, other), true},
		{tuple(other, remote), false}, {tuple(client, remote), false}, {tuple(vm6, netip.MustParseAddr("2001:db8::3")), false},
		{Tuple{OrigSrc: client, OrigDst: fip, ReplySrc: other, ReplyDst: client}, false},
	} {
		if got := b.Match(c.t); got != c.want {
			t.Errorf("Match(%+v) = %v, want %v", c.t, got, c.want)
		}
	}
	if b.Size() != 3 {
		t.Errorf("size %d, want 3", b.Size())
	}
	// Through a floating IP: flows to it (DNAT) and a VM's flow to its own
	// floating IP (SNAT), not a flow that merely has the address untranslated.
	nat := NewBatch()
	nat.ForgetThrough(fip)
	hairpin := Tuple{OrigSrc: vm, OrigDst: fip, ReplySrc: vm, ReplyDst: fip}
	for _, c := range []struct {
		t    Tuple
		want bool
	}{
		{dnat, true}, {hairpin, true}, {tuple(client, fip), false}, {tuple(vm, remote), false},
	} {
		if got := nat.Match(c.t); got != c.want {
			t.Errorf("through %s: Match(%+v) = %v, want %v", fip, c.t, got, c.want)
		}
	}
	// Past the bound, pairs become every flow of their address.
	b.coarsen(2)
	if !b.Match(tuple(other, remote)) || b.Size() != 3 {
		t.Errorf("coarsened batch: size %d", b.Size())
	}
}

// fakeTable counts passes and records what each selected.
type fakeTable struct {
	mu     sync.Mutex
	flows  []Tuple
	passes int
}

func (f *fakeTable) Forget(_ context.Context, match func(Tuple) bool) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.passes++
	n := 0
	kept := f.flows[:0]
	for _, t := range f.flows {
		if match(t) {
			n++
		} else {
			kept = append(kept, t)
		}
	}
	f.flows = kept
	return n, nil
}

func (f *fakeTable) state() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.passes, len(f.flows)
}

// Requests within a window cost one pass; Add never waits for it.
func TestForgetterCoalesces(t *testing.T) {
	table := &fakeTable{flows: []Tuple{tuple(vm, remote), tuple(remote6, vm6), tuple(other, remote)}}
	f := NewForgetter(table, 200*time.Millisecond, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.Run(ctx)
	for range 100 {
		b := NewBatch()
		b.ForgetAll(vm)
		f.Add(b)
	}
	b := NewBatch()
	b.ForgetBetween(vm6, netip.PrefixFrom(remote6, 128))
	f.Add(b)
	netlab.Eventually(t, "the flows forgotten", 5*time.Second, func() bool { _, n := table.state(); return n == 1 })
	time.Sleep(300 * time.Millisecond)
	if passes, _ := table.state(); passes != 1 {
		t.Errorf("%d passes for 101 requests within one window, want 1", passes)
	}
}

// The real table: a plain flow and one through a floating IP of the VM
// are deleted, in one pass over both families; an unrelated flow stays.
func TestNetlink(t *testing.T) {
	netlab.Require(t)
	add := func(args ...string) {
		t.Helper()
		netlab.Run(t, "conntrack", append([]string{"-I", "-p", "tcp", "--state", "ESTABLISHED", "-t", "100"}, args...)...)
	}
	add("-s", vm.String(), "-d", remote.String(), "--sport", "1000", "--dport", "80")
	add("-s", client.String(), "-d", fip.String(), "-r", vm.String(), "-q", client.String(), "--sport", "1001", "--dport", "80", "--reply-port-src", "80", "--reply-port-dst", "1001")
	add("-s", other.String(), "-d", remote.String(), "--sport", "1002", "--dport", "80")
	add("-s", vm6.String(), "-d", remote6.String(), "--sport", "1003", "--dport", "80")
	add("-s", inSet.String(), "-d", other.String(), "--sport", "1004", "--dport", "80")
	b := NewBatch()
	b.ForgetAll(vm)
	b.ForgetBetween(vm6, netip.PrefixFrom(remote6, 128))
	b.ForgetBetween(other, netset)
	n, err := (Netlink{Timeout: 5 * time.Second}).Forget(context.Background(), b.Match)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("deleted %d entries, want 4", n)
	}
	left := netlab.Run(t, "conntrack", "-L")
	if strings.Contains(left, vm.String()) || strings.Contains(left, vm6.String()) || strings.Contains(left, inSet.String()) {
		t.Errorf("selected flows remain:\n%s", left)
	}
	if !strings.Contains(left, "src="+other.String()+" dst="+remote.String()) {
		t.Errorf("the unrelated flow went:\n%s", left)
	}
	netlab.Run(t, "conntrack", "-F")
}
