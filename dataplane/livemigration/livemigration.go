package livemigration

import (
	"log/slog"
	"time"

	"ocelot/contract"
)

// State is where an endpoint is in a migration.
type State uint8

const (
	Base State = iota
	Target
	Live
	TimeWait
)

func (s State) String() string {
	switch s {
	case Target:
		return "Target"
	case Live:
		return "Live"
	case TimeWait:
		return "TimeWait"
	}
	return "Base"
}

type input uint8

const (
	inNoRole input = iota
	inSource
	inTarget
	inGARP
	inTimer
	inDeleted
)

func (i input) String() string {
	return [...]string{"no role", "source", "target", "GARP", "timer", "deleted"}[i]
}

// next is the transition table.
func next(s State, in input) State {
	switch {
	case s == Base && in == inTarget:
		return Target
	case s == Target && in == inGARP:
		return Live
	case (s == Target || s == Live) && in == inNoRole:
		return TimeWait
	case s == TimeWait && in == inTimer:
		return Base
	case s != Base && (in == inSource || in == inDeleted):
		return Base
	}
	return s
}

// Capture is an open packet capture on one interface.
type Capture interface {
	// Next blocks until a frame arrives; incoming is false for a frame
	// the host sent. It fails once the capture is closed.
	Next(buf []byte) (n int, incoming bool, err error)
	Close() error
}

// Clock runs f after d; the returned function stops it.
type Clock interface {
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// RealClock is the time package's.
type RealClock struct{}

func (RealClock) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// Event is a GARP seen or a timer fired, for Handle.
type Event struct {
	id    contract.EndpointID
	gen   uint64
	timer bool // false: a GARP or RARP
}

// Options configure a Monitor.
type Options struct {
	Convergence time.Duration                       // TimeWait's length
	Listen      func(iface string) (Capture, error) // nil: ListenPacket
	Clock       Clock                               // nil: RealClock
	Log         *slog.Logger                        // nil: discarded
	OnState     func(iface string, s State)         // each change of an endpoint's state
}

// Monitor holds one state machine per endpoint that is migrating.
type Monitor struct {
	opts   Options
	events chan Event
	fsms   map[contract.EndpointID]*fsm
	roles  map[contract.EndpointID]contract.LiveMigrationRole
	gen    uint64 // the last generation handed out, unique for the monitor's life
}

type fsm struct {
	id      contract.EndpointID
	iface   string
	uid     string
	state   State
	gen     uint64 // bumped whenever a capture or timer is stopped
	capture Capture
	done    chan struct{} // closed to release the capture's goroutine
	stop    func() bool   // the TimeWait timer
}

// New returns a monitor with no endpoints.
func New(opts Options) *Monitor {
	if opts.Listen == nil {
		opts.Listen = ListenPacket
	}
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.OnState == nil {
		opts.OnState = func(string, State) {}
	}
	return &Monitor{opts: opts, events: make(chan Event, 64), fsms: map[contract.EndpointID]*fsm{},
		roles: map[contract.EndpointID]contract.LiveMigrationRole{}}
}

// Events delivers GARPs and timer pops; hand each to Handle.
func (m *Monitor) Events() <-chan Event { return m.events }

// OnEndpoint takes an endpoint's role (and interface) from an update.
func (m *Monitor) OnEndpoint(u *contract.EndpointUpdate) {
	if f := m.fsms[u.ID]; f != nil {
		f.iface = u.Name
		if u.MigrationUID != "" {
			f.uid = u.MigrationUID // kept when the role ends: the last transitions still belong to it
		}
	}
	old := m.roles[u.ID]
	if u.LiveMigration == contract.NoMigration {
		delete(m.roles, u.ID)
	} else {
		m.roles[u.ID] = u.LiveMigration
	}
	if old == u.LiveMigration {
		return
	}
	in := map[contract.LiveMigrationRole]input{contract.NoMigration: inNoRole, contract.MigrationSource: inSource, contract.MigrationTarget: inTarget}[u.LiveMigration]
	m.step(u.ID, u.Name, u.MigrationUID, in)
}

// OnRemove ends an endpoint's migration: it is gone.
func (m *Monitor) OnRemove(id contract.EndpointID) {
	delete(m.roles, id)
	if f := m.fsms[id]; f != nil {
		m.step(id, f.iface, f.uid, inDeleted)
	}
}

// OnInterface tells the monitor an interface appeared (or was recreated,
// with a new index): a target waiting on it listens afresh, since a
// capture is bound to the interface that existed when it was opened.
func (m *Monitor) OnInterface(iface string) {
	for _, f := range m.fsms {
		if f.state == Target && f.iface == iface {
			m.stopCapture(f)
			m.listen(f)
		}
	}
}

// Handle applies an event from Events. One from a capture or timer that
// has been stopped since is ignored.
func (m *Monitor) Handle(ev Event) {
	f := m.fsms[ev.id]
	if f == nil || f.gen == 0 || f.gen != ev.gen {
		return
	}
	in := inGARP
	if ev.timer {
		in = inTimer
	}
	m.step(ev.id, f.iface, f.uid, in)
}

// State returns an endpoint's state (Base when it is not migrating).
func (m *Monitor) State(id contract.EndpointID) State {
	if f := m.fsms[id]; f != nil {
		return f.state
	}
	return Base
}

// Close stops every capture and timer (the agent is stopping).
func (m *Monitor) Close() {
	for _, f := range m.fsms {
		m.stopCapture(f)
		m.stopTimer(f)
	}
}

func (m *Monitor) step(id contract.EndpointID, iface, uid string, in input) {
	f := m.fsms[id]
	if f == nil {
		f = &fsm{id: id, iface: iface, uid: uid}
	}
	to := next(f.state, in)
	if to == f.state {
		return
	}
	m.opts.Log.Info("live migration state transition", "endpoint", id.String(), "iface", f.iface, "migration_uid", f.uid,
		"input", in.String(), "from", f.state.String(), "to", to.String())
	switch f.state { // leaving
	case Target:
		m.stopCapture(f)
	case TimeWait:
		m.stopTimer(f)
	}
	f.state = to
	switch to { // entering
	case Target:
		m.listen(f)
	case TimeWait:
		m.startTimer(f)
	}
	if to == Base {
		delete(m.fsms, id)
	} else {
		m.fsms[id] = f
	}
	m.opts.OnState(f.iface, to)
}

// listen opens a capture on the target's interface and watches it for
// the VM's announcement. If the interface is not there yet, the routes
// stay held back and OnInterface tries again when it appears.
func (m *Monitor) listen(f *fsm) {
	c, err := m.opts.Listen(f.iface)
	if err != nil {
		m.opts.Log.Warn("cannot watch a migration target's interface for the VM's GARP yet; its routes wait for the interface or the end of the migration",
			"endpoint", f.id.String(), "iface", f.iface, "err", err)
		return
	}
	m.gen++
	f.capture, f.done, f.gen = c, make(chan struct{}), m.gen
	ev := Event{id: f.id, gen: f.gen}
	go watch(c, f.done, m.events, ev)
}

// watch reads frames until it sees a GARP or RARP the VM sent, then
// reports it once; it ends when the capture is closed.
func watch(c Capture, done <-chan struct{}, out chan<- Event, ev Event) {
	buf := make([]byte, 128) // an ARP or RARP frame is 42 bytes; the rest is cut
	for {
		n, incoming, err := c.Next(buf)
		if err != nil {
			return
		}
		if incoming && IsAnnouncement(buf[:n]) {
			select {
			case out <- ev:
			case <-done:
			}
			return
		}
	}
}

func (m *Monitor) stopCapture(f *fsm) {
	if f.capture == nil {
		return
	}
	_ = f.capture.Close() // stale events of this capture are ignored by generation
	close(f.done)
	f.capture, f.done, f.gen = nil, nil, 0
}

func (m *Monitor) startTimer(f *fsm) {
	m.gen++
	f.gen = m.gen
	ev := Event{id: f.id, gen: f.gen, timer: true}
	done := make(chan struct{})
	stop := m.opts.Clock.AfterFunc(m.opts.Convergence, func() {
		select {
		case m.events <- ev:
		case <-done:
		}
	})
	f.stop = func() bool { close(done); return stop() }
}

func (m *Monitor) stopTimer(f *fsm) {
	if f.stop == nil {
		return
	}
	f.stop()
	f.stop, f.gen = nil, 0
}

// EtherType values of the frames a migrated VM announces itself with.
const (
	etherARP  = 0x0806
	etherRARP = 0x8035
)

// IsAnnouncement reports whether an Ethernet frame is a RARP (QEMU's
// announcement after a migration) or a gratuitous ARP (sender and target
// protocol addresses equal: a guest announcing its own address).
func IsAnnouncement(frame []byte) bool {
	if len(frame) < 14 {
		return false
	}
	switch uint16(frame[12])<<8 | uint16(frame[13]) {
	case etherRARP:
		return true
	case etherARP:
		arp := frame[14:]
		if len(arp) < 8 {
			return false
		}
		hlen, plen := int(arp[4]), int(arp[5])
		if plen == 0 || len(arp) < 8+2*hlen+2*plen {
			return false
		}
		spa := arp[8+hlen : 8+hlen+plen]
		tpa := arp[8+2*hlen+plen : 8+2*hlen+2*plen]
		return string(spa) == string(tpa)
	}
	return false
}
