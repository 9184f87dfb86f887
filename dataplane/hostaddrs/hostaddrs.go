package hostaddrs

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"ocelot/dataplane/internal/nlsock"
)

// Addr is an address and the interface it is on (for a gateway: the
// interface its route leaves through).
type Addr struct {
	IP    netip.Addr
	Iface string
}

// Snapshot is what the host uses, complete as of one listing.
type Snapshot struct {
	Addrs    []Addr // addresses on the host's interfaces
	Gateways []Addr // next hops of its routes, in every table
}

// Equal reports whether two snapshots hold the same addresses.
func (s Snapshot) Equal(o Snapshot) bool {
	return slices.Equal(s.Addrs, o.Addrs) && slices.Equal(s.Gateways, o.Gateways)
}

// debounce is how long the watcher waits after a change before listing,
// so that a burst of changes (a VM's routes, an interface coming up with
// its addresses) costs one listing.
const debounce = 100 * time.Millisecond

// Watcher reports the host's addresses.
type Watcher struct {
	Resync  time.Duration // periodic re-list (0: only on changes)
	Timeout time.Duration // deadline on each netlink request (0: netlink's default)
	Log     *slog.Logger
}

// Run sends a snapshot at start and whenever it changes, until ctx ends.
// A listing that fails is retried; nothing is sent until one succeeds.
func (w *Watcher) Run(ctx context.Context, out chan<- Snapshot) {
	log := w.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var last Snapshot
	sent := false
	report := func() {
		for attempt, delay := 1, 10*time.Millisecond; ctx.Err() == nil; attempt++ {
			s, err := w.List()
			if err == nil {
				if !sent || !s.Equal(last) {
					select {
					case out <- s:
						last, sent = s, true
					case <-ctx.Done():
					}
				}
				return
			}
			if !errors.Is(err, netlink.ErrDumpInterrupted) || attempt%10 == 0 {
				log.Warn("listing the host's addresses and routes failed; retrying", "err", err, "attempt", attempt)
			}
			sleep(ctx, delay)
			delay = min(2*delay, 5*time.Second)
		}
	}
	var tick <-chan time.Time
	if w.Resync > 0 {
		t := time.NewTicker(w.Resync)
		defer t.Stop()
		tick = t.C
	}
	for ctx.Err() == nil {
		changed := make(chan struct{}, 1)
		done := make(chan struct{})
		failed := make(chan error, 1)
		if err := subscribe(changed, done, failed); err != nil {
			close(done)
			log.Warn("subscribing to address and route changes failed; retrying", "err", err)
			report() // still keep the snapshot current
			sleep(ctx, time.Second)
			continue
		}
		report()
		var settle <-chan time.Time
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case err := <-failed:
				log.Warn("address and route subscription failed; re-listing", "err", err)
				report()
				break loop
			case <-changed:
				if settle == nil {
					settle = time.After(debounce)
				}
			case <-settle:
				settle = nil
				report()
			case <-tick:
				report()
			}
		}
		close(done)
	}
}

// subscribe forwards every address and route event to changed, without
// blocking (one pending signal is enough: the listing reads everything).
func subscribe(changed chan<- struct{}, done <-chan struct{}, failed chan<- error) error {
	onErr := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	signal := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	addrs := make(chan netlink.AddrUpdate, 64)
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return err
	}
	routes := make(chan netlink.RouteUpdate, 64)
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return err
	}
	go func() {
		for addrs != nil || routes != nil {
			select {
			case _, ok := <-addrs:
				if !ok {
					addrs = nil
					continue
				}
				signal()
			case _, ok := <-routes:
				if !ok {
					routes = nil
					continue
				}
				signal()
			}
		}
	}()
	return nil
}

// List reads the host's addresses and gateways once.
func (w *Watcher) List() (Snapshot, error) {
	h, err := nlsock.Open(unix.NETLINK_ROUTE, w.Timeout)
	if err != nil {
		return Snapshot{}, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return Snapshot{}, err
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return Snapshot{}, err
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return Snapshot{}, err
	}
	var s Snapshot
	for _, a := range addrs {
		if ip, ok := toAddr(a.IP); ok {
			s.Addrs = append(s.Addrs, Addr{IP: ip, Iface: names[a.LinkIndex]})
		}
	}
	for _, r := range routes {
		if ip, ok := toAddr(r.Gw); ok {
			s.Gateways = append(s.Gateways, Addr{IP: ip, Iface: names[r.LinkIndex]})
		}
		for _, nh := range r.MultiPath {
			if ip, ok := toAddr(nh.Gw); ok {
				s.Gateways = append(s.Gateways, Addr{IP: ip, Iface: names[nh.LinkIndex]})
			}
		}
	}
	Normalize(&s)
	return s, nil
}

// Normalize sorts a snapshot and drops duplicates, so that equal contents
// compare equal.
func Normalize(s *Snapshot) {
	for _, l := range []*[]Addr{&s.Addrs, &s.Gateways} {
		slices.SortFunc(*l, func(a, b Addr) int {
			if c := a.IP.Compare(b.IP); c != 0 {
				return c
			}
			switch {
			case a.Iface < b.Iface:
				return -1
			case a.Iface > b.Iface:
				return 1
			}
			return 0
		})
		*l = slices.Compact(*l)
	}
}

func toAddr(ip net.IP) (netip.Addr, bool) {
	if ip == nil {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok && a.IsValid()
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}
