package livemigration

import (
	"errors"
	"sync"
	"testing"
	"time"

	"ocelot/contract"
)

// fakeCapture is a capture fed by the test.
type fakeCapture struct {
	frames chan []byte
	closed chan struct{}
	once   sync.Once
}

func (c *fakeCapture) Next(buf []byte) (int, bool, error) {
	select {
	case f := <-c.frames:
		return copy(buf, f), true, nil
	case <-c.closed:
		return 0, false, errors.New("closed")
	}
}

func (c *fakeCapture) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

// fakeClock runs timers when the test says.
type fakeClock struct {
	mu     sync.Mutex
	timers []*fakeTimer
}

type fakeTimer struct {
	d       time.Duration
	f       func()
	stopped bool
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{d: d, f: f}
	c.timers = append(c.timers, t)
	return func() bool { c.mu.Lock(); defer c.mu.Unlock(); was := !t.stopped; t.stopped = true; return was }
}

// fire runs every timer, stopped or not (a stopped timer's pop may be in
// flight when it is stopped), and returns how many were live.
func (c *fakeClock) fire() int {
	c.mu.Lock()
	ts := c.timers
	c.timers = nil
	c.mu.Unlock()
	live := 0
	for _, t := range ts {
		if !t.stopped {
			live++
		}
		go t.f()
	}
	return live
}

type rig struct {
	t        *testing.T
	m        *Monitor
	clock    *fakeClock
	mu       sync.Mutex
	captures map[string][]*fakeCapture
	failOpen map[string]bool
	states   []string // "iface:State", in order
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, clock: &fakeClock{}, captures: map[string][]*fakeCapture{}, failOpen: map[string]bool{}}
	r.m = New(Options{Convergence: 30 * time.Second, Clock: r.clock,
		Listen: func(iface string) (Capture, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.failOpen[iface] {
				return nil, errors.New("no such interface")
			}
			c := &fakeCapture{frames: make(chan []byte, 4), closed: make(chan struct{})}
			r.captures[iface] = append(r.captures[iface], c)
			return c, nil
		},
		OnState: func(iface string, s State) { r.states = append(r.states, iface+":"+s.String()) }})
	return r
}

// send delivers a frame to the newest capture on iface.
func (r *rig) send(iface string, frame []byte) {
	r.mu.Lock()
	cs := r.captures[iface]
	r.mu.Unlock()
	if len(cs) == 0 {
		r.t.Fatalf("no capture on %s", iface)
	}
	cs[len(cs)-1].frames <- frame
}

// event waits for the monitor's next event and handles it.
func (r *rig) event() {
	r.t.Helper()
	select {
	case ev := <-r.m.Events():
		r.m.Handle(ev)
	case <-time.After(5 * time.Second):
		r.t.Fatal("no event")
	}
}

// noEvent checks that no event is pending (after giving goroutines a
// moment: the check is for something that must not happen).
func (r *rig) noEvent() {
	r.t.Helper()
	select {
	case ev := <-r.m.Events():
		r.t.Fatalf("unexpected event %+v", ev)
	case <-time.After(50 * time.Millisecond):
	}
}

var id = contract.EndpointID{Orchestrator: "openstack", WorkloadID: "ns/vm", EndpointID: "port"}

func update(role contract.LiveMigrationRole) *contract.EndpointUpdate {
	return &contract.EndpointUpdate{ID: id, Name: "tap1", LiveMigration: role, MigrationUID: "uid-1"}
}

// A GARP (sender IP = target IP) and a RARP as a guest and QEMU send
// them, an ordinary ARP request, and an IPv4 frame.
var (
	garp = append(append(ether(0x0806), 0, 1, 8, 0, 6, 4, 0, 1), append(mac(), 198, 18, 1, 5, 0, 0, 0, 0, 0, 0, 198, 18, 1, 5)...)
	rarp = append(append(ether(0x8035), 0, 1, 8, 0, 6, 4, 0, 3), append(mac(), 0, 0, 0, 0, 0xfa, 0x16, 0x3e, 0, 0, 1, 0, 0, 0, 0)...)
	arp  = append(append(ether(0x0806), 0, 1, 8, 0, 6, 4, 0, 1), append(mac(), 198, 18, 1, 5, 0, 0, 0, 0, 0, 0, 198, 18, 1, 1)...)
	ipv4 = append(ether(0x0800), make([]byte, 28)...)
)

func ether(t uint16) []byte {
	return append(append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, mac()...), byte(t>>8), byte(t))
}

func mac() []byte { return []byte{0xfa, 0x16, 0x3e, 0, 0, 1} }

func TestIsAnnouncement(t *testing.T) {
	for name, c := range map[string]struct {
		frame []byte
		want  bool
	}{"GARP": {garp, true}, "RARP": {rarp, true}, "ARP request": {arp, false}, "IPv4": {ipv4, false},
		"short": {garp[:20], false}, "truncated ARP": {garp[:40], false}, "empty": {nil, false}} {
		if got := IsAnnouncement(c.frame); got != c.want {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
}

// The mainline: target (routes held back), the VM's GARP (elevated), the
// migration ends (elevated for the convergence time), then normal.
func TestMainline(t *testing.T) {
	r := newRig(t)
	r.m.OnEndpoint(update(contract.MigrationTarget))
	if r.m.State(id) != Target {
		t.Fatalf("state %v", r.m.State(id))
	}
	r.send("tap1", arp) // not an announcement: still waiting
	r.send("tap1", ipv4)
	r.noEvent()
	r.send("tap1", garp)
	r.event()
	if r.m.State(id) != Live {
		t.Fatalf("after the GARP: %v", r.m.State(id))
	}
	r.m.OnEndpoint(update(contract.NoMigration))
	if r.m.State(id) != TimeWait {
		t.Fatalf("after the migration: %v", r.m.State(id))
	}
	if r.clock.timers[0].d != 30*time.Second {
		t.Errorf("timer %v, want the convergence time", r.clock.timers[0].d)
	}
	if r.clock.fire() != 1 {
		t.Fatal("no live timer")
	}
	r.event()
	want := []string{"tap1:Target", "tap1:Live", "tap1:TimeWait", "tap1:Base"}
	if r.m.State(id) != Base || !equal(r.states, want) {
		t.Errorf("states %v, want %v", r.states, want)
	}
	if len(r.m.fsms) != 0 {
		t.Errorf("state machines left: %v", r.m.fsms)
	}
}

// A missed GARP: the migration ends while the target waits; its routes
// go straight to elevated, then normal. A RARP works as a GARP does.
func TestMissedGARPAndRARP(t *testing.T) {
	r := newRig(t)
	r.m.OnEndpoint(update(contract.MigrationTarget))
	r.m.OnEndpoint(update(contract.NoMigration))
	if r.m.State(id) != TimeWait {
		t.Fatalf("state %v", r.m.State(id))
	}
	r.clock.fire()
	r.event()
	if r.m.State(id) != Base {
		t.Fatalf("state %v", r.m.State(id))
	}
	r.m.OnEndpoint(update(contract.MigrationTarget))
	r.send("tap1", rarp)
	r.event()
	if r.m.State(id) != Live {
		t.Errorf("after a RARP: %v", r.m.State(id))
	}
}

// Stale events are ignored: a GARP reported after the target stopped
// waiting, a timer that popped after a re-migration started.
func TestStaleEvents(t *testing.T) {
	r := newRig(t)
	r.m.OnEndpoint(update(contract.MigrationTarget))
	r.send("tap1", garp)
	// The GARP's event is queued; before it is handled the endpoint
	// becomes a source (the migration was aborted and reversed).
	for deadline := time.Now().Add(5 * time.Second); len(r.m.events) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the GARP was not reported")
		}
	}
	r.m.OnEndpoint(update(contract.MigrationSource))
	r.event() // handled, ignored
	if r.m.State(id) != Base {
		t.Fatalf("stale GARP moved the state to %v", r.m.State(id))
	}
	// A pop from a TimeWait that ended (its timer was stopped as it
	// fired) must not end a later TimeWait early.
	r.m.OnEndpoint(update(contract.MigrationTarget))
	r.m.OnEndpoint(update(contract.NoMigration)) // TimeWait, timer 1
	stale := Event{id: id, gen: r.m.fsms[id].gen, timer: true}
	r.m.OnEndpoint(update(contract.MigrationSource))
	r.m.OnEndpoint(update(contract.MigrationTarget))
	r.m.OnEndpoint(update(contract.NoMigration)) // TimeWait, timer 2
	r.m.Handle(stale)
	if r.m.State(id) != TimeWait {
		t.Fatalf("a stale timer pop moved the state to %v", r.m.State(id))
	}
	if r.clock.fire() != 1 { // timer 1 stopped, timer 2 live
		t.Error("want exactly one live timer")
	}
	for r.m.State(id) == TimeWait { // timer 1's pop may come too, and is ignored
		r.event()
	}
	if r.m.State(id) != Base {
		t.Errorf("state %v, want Base", r.m.State(id))
	}
	r.m.OnEndpoint(update(contract.MigrationTarget))
	// The captures of the earlier Target states are closed.
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, c := range r.captures["tap1"] {
		select {
		case <-c.closed:
			if i == len(r.captures["tap1"])-1 {
				t.Error("the current capture is closed")
			}
		default:
			if i != len(r.captures["tap1"])-1 {
				t.Errorf("capture %d left open", i)
			}
		}
	}
}

// A target whose interface is not there yet waits for it; when it comes,
// the monitor listens there. The endpoint's removal ends everything.
func TestInterfaceLaterAndRemoval(t *testing.T) {
	r := newRig(t)
	r.failOpen["tap1"] = true
	r.m.OnEndpoint(update(contract.MigrationTarget))
	if r.m.State(id) != Target || len(r.captures["tap1"]) != 0 {
		t.Fatalf("state %v, captures %d", r.m.State(id), len(r.captures["tap1"]))
	}
	r.failOpen["tap1"] = false
	r.m.OnInterface("tap2") // another interface: nothing
	if len(r.captures["tap1"]) != 0 {
		t.Fatal("listened on the wrong interface's event")
	}
	r.m.OnInterface("tap1")
	r.send("tap1", garp)
	r.event()
	if r.m.State(id) != Live {
		t.Fatalf("state %v", r.m.State(id))
	}
	r.m.OnRemove(id)
	if r.m.State(id) != Base || len(r.m.fsms) != 0 || r.states[len(r.states)-1] != "tap1:Base" {
		t.Errorf("after removal: %v %v", r.m.State(id), r.states)
	}
	// An update with the same role is no input.
	r.m.OnEndpoint(update(contract.MigrationSource))
	r.m.OnEndpoint(update(contract.MigrationSource))
	if r.m.State(id) != Base || len(r.m.fsms) != 0 {
		t.Errorf("a source has no state machine: %v", r.m.fsms)
	}
}

func TestTransitionTable(t *testing.T) {
	// Felix's table, cell by cell (empty cells: no change).
	want := map[State]map[input]State{
		Base:     {inTarget: Target},
		Target:   {inGARP: Live, inNoRole: TimeWait, inSource: Base, inDeleted: Base},
		Live:     {inNoRole: TimeWait, inSource: Base, inDeleted: Base},
		TimeWait: {inTimer: Base, inSource: Base, inDeleted: Base},
	}
	for s, row := range want {
		for in := inNoRole; in <= inDeleted; in++ {
			exp, ok := row[in]
			if !ok {
				exp = s
			}
			if got := next(s, in); got != exp {
				t.Errorf("%v + %v = %v, want %v", s, in, got, exp)
			}
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
