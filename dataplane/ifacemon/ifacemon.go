package ifacemon

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"ocelot/dataplane/internal/nlsock"
)

// State of one interface. Running is the kernel's operational state
// (IFF_RUNNING), which is what "up" means for an endpoint.
type State struct {
	Name    string
	Index   int
	Up      bool // administratively
	Running bool
	Gone    bool
}

// Event is a batch of interface states; Synced marks a complete listing.
type Event struct {
	States []State
	Synced bool
}

// Monitor watches the interfaces Wanted accepts. Wanted is called on the
// monitor's goroutine only.
type Monitor struct {
	Wanted  func(name string) bool
	Resync  time.Duration // full re-list period (InterfaceRefreshInterval); 0: only at start
	Timeout time.Duration // deadline on each listing's netlink requests (0: netlink's default)
	Log     *slog.Logger
}

func stateOf(l netlink.Link) State {
	a := l.Attrs()
	return State{Name: a.Name, Index: a.Index, Up: a.Flags&1 != 0, Running: a.RawFlags&unix.IFF_RUNNING != 0}
}

// Run sends events until ctx ends: a complete listing (Synced) first, then
// changes as they happen, and a complete listing again every Resync.
func (m *Monitor) Run(ctx context.Context, out chan<- Event) {
	log := m.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	known := map[string]State{}
	var tick <-chan time.Time
	if m.Resync > 0 {
		t := time.NewTicker(m.Resync)
		defer t.Stop()
		tick = t.C
	}
	for ctx.Err() == nil {
		updates := make(chan netlink.LinkUpdate, 256)
		done := make(chan struct{})
		failed := make(chan error, 1)
		err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
			ErrorCallback: func(err error) {
				select {
				case failed <- err:
				default:
				}
			},
		})
		if err != nil {
			log.Warn("subscribing to interface events failed; retrying", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		m.list(ctx, log, out, known)
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case err := <-failed:
				log.Warn("interface event subscription failed; re-listing", "err", err)
				break loop
			case <-tick:
				m.list(ctx, log, out, known)
			case u, ok := <-updates:
				if !ok {
					break loop
				}
				s := stateOf(u.Link)
				if !m.Wanted(s.Name) {
					continue
				}
				if u.Header.Type == unix.RTM_DELLINK {
					if k, ok := known[s.Name]; !ok || k.Index != s.Index {
						continue // a stale delete of a name that has been reused
					}
					s.Gone = true
					delete(known, s.Name)
				} else {
					if known[s.Name] == s {
						continue
					}
					known[s.Name] = s
				}
				send(ctx, out, Event{States: []State{s}})
			}
		}
		close(done)
	}
}

// list sends the full state, with Gone for interfaces that vanished.
func (m *Monitor) list(ctx context.Context, log *slog.Logger, out chan<- Event, known map[string]State) {
	// The dataplane waits for a complete listing before its first apply, so
	// a failed one is retried, not skipped. An interrupted dump (links
	// changed meanwhile) is routine while VMs start; retry it at once.
	var links []netlink.Link
	for attempt, delay := 1, 10*time.Millisecond; ctx.Err() == nil; attempt++ {
		var err error
		if links, err = m.linkList(); err == nil {
			break
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) || attempt%10 == 0 {
			log.Warn("listing interfaces failed; retrying", "err", err, "attempt", attempt)
			sleep(ctx, delay)
			delay = min(2*delay, time.Second)
		}
	}
	if ctx.Err() != nil {
		return
	}
	seen := map[string]bool{}
	var ev Event
	for _, l := range links {
		s := stateOf(l)
		if !m.Wanted(s.Name) {
			continue
		}
		seen[s.Name] = true
		known[s.Name] = s
		ev.States = append(ev.States, s)
	}
	for name, s := range known {
		if !seen[name] {
			s.Gone = true
			ev.States = append(ev.States, s)
			delete(known, name)
		}
	}
	ev.Synced = true
	send(ctx, out, ev)
}

func send[E any](ctx context.Context, out chan<- E, ev E) {
	select {
	case out <- ev:
	case <-ctx.Done():
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// linkList lists the links on a socket of its own, with the deadline.
func (m *Monitor) linkList() ([]netlink.Link, error) {
	h, err := nlsock.Open(unix.NETLINK_ROUTE, m.Timeout)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return h.LinkList()
}
