package routing

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"ocelot/dataplane/internal/nlsock"
)

// Priorities are the metrics of endpoint routes (Felix's route
// priorities; lower is preferred): Normal, and Elevated while a migrated
// VM's route must win over its old host's.
type Priorities struct{ Normal, Elevated int }

// DefaultPriorities are Felix's defaults, for both families.
var DefaultPriorities = Priorities{Normal: 1024, Elevated: 512}

// Mode is how an interface's routes are programmed while its VM migrates.
type Mode uint8

const (
	Normal     Mode = iota // at the normal priority
	Elevated               // at the elevated priority
	Suppressed             // not at all (nor its permanent neighbours)
)

func (m Mode) String() string {
	switch m {
	case Elevated:
		return "elevated"
	case Suppressed:
		return "suppressed"
	}
	return "normal"
}

// gracePeriod is how long foreign routes on a newly seen interface are left
// alone (they may be a VM's routes being moved in by another agent).
const gracePeriod = 10 * time.Second

type ifaceRoutes struct {
	nets []netip.Prefix
	mac  net.HardwareAddr
	up   bool
	mode Mode
}

// Netlink is the seam between the route logic and the kernel. Kernel is
// the real one; unit tests give a fake.
type Netlink interface {
	// LinkIndex returns an interface's index; found is false when there
	// is no such interface.
	LinkIndex(name string) (index int, found bool, err error)
	RouteListFiltered(family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error)
	RouteReplace(route *netlink.Route) error
	RouteDel(route *netlink.Route) error
	NeighSet(neigh *netlink.Neigh) error
	NeighList(linkIndex, family int) ([]netlink.Neigh, error)
	NeighDel(neigh *netlink.Neigh) error
}

// Kernel is netlink in the network namespace it was made in, with a
// deadline on every request. It exposes only the calls the table makes
// (a *netlink.Handle in an interface would link all of netlink's API into
// the binary).
type Kernel struct{ h *netlink.Handle }

// NewKernel opens a route netlink socket in the calling thread's
// namespace; timeout (NetlinkTimeoutSecs) bounds each send and receive
// (0: netlink's default).
func NewKernel(timeout time.Duration) (*Kernel, error) {
	h, err := nlsock.Open(unix.NETLINK_ROUTE, timeout)
	if err != nil {
		return nil, err
	}
	return &Kernel{h: h}, nil
}

// LinkIndex implements Netlink.
func (k *Kernel) LinkIndex(name string) (int, bool, error) {
	link, err := k.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("looking up %s: %w", name, err)
	}
	return link.Attrs().Index, true, nil
}

func (k *Kernel) RouteListFiltered(family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	return k.h.RouteListFiltered(family, filter, mask)
}
func (k *Kernel) RouteReplace(r *netlink.Route) error { return k.h.RouteReplace(r) }
func (k *Kernel) RouteDel(r *netlink.Route) error     { return k.h.RouteDel(r) }
func (k *Kernel) NeighSet(n *netlink.Neigh) error     { return k.h.NeighSet(n) }
func (k *Kernel) NeighList(idx, family int) ([]netlink.Neigh, error) {
	return k.h.NeighList(idx, family)
}
func (k *Kernel) NeighDel(n *netlink.Neigh) error { return k.h.NeighDel(n) }

// Table is the desired routes per workload interface.
type Table struct {
	Protocol       int
	RemoveExternal bool
	V4, V6         Priorities // DefaultPriorities unless set before the first Apply
	// Owns says which interfaces are workload interfaces. The table
	// ignores every other name: it never reads or writes their routes and
	// neighbours. nil owns none.
	Owns func(iface string) bool
	nl   Netlink
	log  *slog.Logger

	desired    map[string]*ifaceRoutes
	dirty      map[string]struct{}
	firstSeen  map[string]time.Time
	programmed map[string][]netip.Prefix // what the last apply left on each interface
}

// New returns an empty table that programs the kernel through nl.
func New(nl Netlink, protocol int, removeExternal bool, log *slog.Logger) *Table {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Table{Protocol: protocol, RemoveExternal: removeExternal, V4: DefaultPriorities, V6: DefaultPriorities, nl: nl, log: log,
		desired: map[string]*ifaceRoutes{}, dirty: map[string]struct{}{}, firstSeen: map[string]time.Time{},
		programmed: map[string][]netip.Prefix{}}
}

func (t *Table) owns(iface string) bool { return t.Owns != nil && t.Owns(iface) }

// Set declares the routes and MAC of an interface's endpoint. A name the
// table does not own is ignored.
func (t *Table) Set(iface string, nets []netip.Prefix, mac string) {
	if !t.owns(iface) {
		return
	}
	r := t.desired[iface]
	if r == nil {
		r = &ifaceRoutes{}
		t.desired[iface] = r
	}
	r.nets = nets
	r.mac, _ = net.ParseMAC(mac)
	t.dirty[iface] = struct{}{}
}

// SetMode sets how the routes of an interface declared with Set are
// programmed (a migrating VM's are held back, then elevated). Set keeps
// the mode; Remove forgets it.
func (t *Table) SetMode(iface string, mode Mode) {
	if r := t.desired[iface]; r != nil && r.mode != mode {
		r.mode = mode
		t.dirty[iface] = struct{}{}
	}
}

// Remove forgets an interface's endpoint; its routes go at the next apply.
func (t *Table) Remove(iface string) {
	if !t.owns(iface) {
		return
	}
	delete(t.desired, iface)
	t.dirty[iface] = struct{}{}
}

// SetUp records whether the interface is operationally up.
func (t *Table) SetUp(iface string, up bool) {
	if !t.owns(iface) {
		return
	}
	if r := t.desired[iface]; r != nil && r.up != up {
		r.up = up
		t.dirty[iface] = struct{}{}
	}
	if _, ok := t.firstSeen[iface]; !ok && up {
		t.firstSeen[iface] = time.Now()
	}
}

// Resync re-checks every interface at the next apply.
func (t *Table) Resync() {
	for iface := range t.desired {
		t.dirty[iface] = struct{}{}
	}
	for iface := range t.programmed {
		t.dirty[iface] = struct{}{}
	}
}

// Dirty reports whether Apply has work.
func (t *Table) Dirty() bool { return len(t.dirty) > 0 }

// NumRoutes counts the routes the last applies left in place.
func (t *Table) NumRoutes() int {
	n := 0
	for _, p := range t.programmed {
		n += len(p)
	}
	return n
}

// Apply programs the dirty interfaces. It returns the interfaces that
// failed, with why; they stay dirty.
func (t *Table) Apply() map[string]error {
	failed := map[string]error{}
	for iface := range t.dirty {
		if err := t.applyIface(iface); err != nil {
			failed[iface] = err
			continue
		}
		delete(t.dirty, iface)
	}
	return failed
}

// OK reports whether an interface's routes are in place.
func (t *Table) OK(iface string) bool {
	_, pending := t.dirty[iface]
	return !pending
}

func (t *Table) applyIface(iface string) error {
	if !t.owns(iface) {
		delete(t.programmed, iface)
		return nil // never ours to touch
	}
	idx, found, err := t.nl.LinkIndex(iface)
	if err != nil {
		return err
	}
	if !found {
		delete(t.programmed, iface)
		delete(t.firstSeen, iface)
		return nil // no interface, no routes
	}
	want := map[netip.Prefix]bool{}
	r := t.desired[iface]
	if r != nil && r.up && r.mode != Suppressed {
		for _, n := range r.nets {
			want[n] = true
		}
	}
	have, err := t.listRoutes(idx)
	if err != nil {
		return err
	}
	graceOver := time.Since(t.firstSeen[iface]) > gracePeriod
	present := map[netip.Prefix]bool{}
	var stale []netlink.Route
	for _, rt := range have {
		dst := toPrefix(rt.Dst)
		if !dst.IsValid() {
			continue
		}
		ours := rt.Protocol == netlink.RouteProtocol(t.Protocol)
		if want[dst] && ours && rt.Priority == t.metric(dst, r) {
			present[dst] = true
			continue
		}
		foreign := !ours && rt.Protocol != unix.RTPROT_KERNEL && !dst.Addr().IsLinkLocalUnicast()
		if ours || (foreign && t.RemoveExternal && graceOver) {
			stale = append(stale, rt)
		}
	}
	var programmed []netip.Prefix
	for dst := range want {
		if !present[dst] {
			rt := &netlink.Route{LinkIndex: idx, Dst: toIPNet(dst), Scope: netlink.SCOPE_LINK,
				Protocol: netlink.RouteProtocol(t.Protocol), Priority: t.metric(dst, r), Table: unix.RT_TABLE_MAIN}
			if err := t.nl.RouteReplace(rt); err != nil {
				return fmt.Errorf("adding route %s on %s: %w", dst, iface, err)
			}
		}
		programmed = append(programmed, dst)
		if dst.Addr().Is4() && r.mac != nil {
			n := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
				IP: dst.Addr().AsSlice(), HardwareAddr: r.mac}
			if err := t.nl.NeighSet(n); err != nil {
				return fmt.Errorf("setting neighbour %s on %s: %w", dst.Addr(), iface, err)
			}
		}
	}
	// Stale routes go after the new ones are in: a route changing its
	// priority is never missing in between.
	for _, rt := range stale {
		if err := t.nl.RouteDel(&rt); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("deleting route %s on %s: %w", toPrefix(rt.Dst), iface, err)
		}
	}
	// Permanent neighbours of addresses no longer routed here.
	if neighs, err := t.nl.NeighList(idx, unix.AF_INET); err == nil {
		for _, n := range neighs {
			a, ok := netip.AddrFromSlice(n.IP)
			if ok && n.State&netlink.NUD_PERMANENT != 0 && !want[netip.PrefixFrom(a.Unmap(), 32)] {
				if err := t.nl.NeighDel(&n); err != nil {
					t.log.Debug("deleting a stale neighbour entry failed; the next refresh retries", "iface", iface, "addr", a, "err", err)
				}
			}
		}
	}
	t.programmed[iface] = programmed
	return nil
}

// metric is the priority of a route to dst on an interface in mode r.mode.
func (t *Table) metric(dst netip.Prefix, r *ifaceRoutes) int {
	p := t.V4
	if dst.Addr().Is6() {
		p = t.V6
	}
	if r != nil && r.mode == Elevated {
		return p.Elevated
	}
	return p.Normal
}

// listRoutes lists the main-table routes via an interface, retrying a dump
// the kernel interrupted.
func (t *Table) listRoutes(idx int) ([]netlink.Route, error) {
	filter := &netlink.Route{LinkIndex: idx, Table: unix.RT_TABLE_MAIN}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var rs []netlink.Route
		rs, err = t.nl.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
		if err == nil {
			return rs, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("listing routes of interface %d: %w", idx, err)
}

func toPrefix(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

func toIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
