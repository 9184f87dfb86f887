package ifacemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// HostIface is a host interface (one that is not a workload's): its
// operational state and its addresses, for host endpoints to be resolved
// against.
type HostIface struct {
	Name    string
	Index   int
	Running bool // operationally up
	Addrs   []netip.Addr
	Gone    bool
}

// HostEvent is a batch of host interfaces; Synced marks a complete listing.
type HostEvent struct {
	Ifaces []HostIface
	Synced bool
}

// HostMonitor watches the host's interfaces and their addresses: every
// interface but the workloads' (a name with one of WorkloadPrefixes), the
// excluded ones (InterfaceExclude) and those whose name could not be
// written into a rule as it is. It reports state; it changes nothing.
type HostMonitor struct {
	WorkloadPrefixes []string
	Exclude          func(name string) bool // nil: none
	Resync           time.Duration          // full re-list period; 0: only at start
	Timeout          time.Duration          // deadline on each listing's netlink requests (0: netlink's default)
	Log              *slog.Logger
}

// safeName is what a host interface's name may hold to be matched by
// name in a rule: no wildcard ('+'), quote or other character a rule
// renderer would have to escape. Kernel names may hold more.
var safeName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,15}$`)

func (m *HostMonitor) wanted(name string) bool {
	if !safeName.MatchString(name) || (m.Exclude != nil && m.Exclude(name)) {
		return false
	}
	for _, p := range m.WorkloadPrefixes {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	return true
}

// Run sends events until ctx ends: a complete listing (Synced) first, then
// changes of state and addresses as they happen, and a complete listing
// again every Resync.
func (m *HostMonitor) Run(ctx context.Context, out chan<- HostEvent) {
	log := m.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var tick <-chan time.Time
	if m.Resync > 0 {
		t := time.NewTicker(m.Resync)
		defer t.Stop()
		tick = t.C
	}
	skipped := map[string]bool{} // names reported as unusable, to log once
	for ctx.Err() == nil {
		links := make(chan netlink.LinkUpdate, 256)
		addrs := make(chan netlink.AddrUpdate, 256)
		done := make(chan struct{})
		failed := make(chan error, 1)
		onErr := func(err error) {
			select {
			case failed <- err:
			default:
			}
		}
		err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{ErrorCallback: onErr})
		if err == nil {
			err = netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr})
		}
		if err != nil {
			close(done)
			log.Warn("subscribing to host interface events failed; retrying", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		known := m.list(ctx, log, skipped)
		send(ctx, out, HostEvent{Ifaces: sortedIfaces(known), Synced: true})
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case err := <-failed:
				log.Warn("host interface event subscription failed; re-listing", "err", err)
				break loop
			case <-tick:
				next := m.list(ctx, log, skipped)
				var ev HostEvent
				for name, old := range known {
					if _, ok := next[name]; !ok {
						old.Gone = true
						ev.Ifaces = append(ev.Ifaces, old)
					}
				}
				ev.Ifaces, ev.Synced, known = append(ev.Ifaces, sortedIfaces(next)...), true, next
				send(ctx, out, ev)
			case u, ok := <-links:
				if !ok {
					break loop
				}
				a := u.Link.Attrs()
				if !m.wanted(a.Name) {
					m.skip(log, skipped, a.Name)
					continue
				}
				old, had := known[a.Name]
				if u.Header.Type == unix.RTM_DELLINK {
					if !had || old.Index != a.Index {
						continue // a stale delete of a reused name
					}
					delete(known, a.Name)
					old.Gone = true
					send(ctx, out, HostEvent{Ifaces: []HostIface{old}})
					continue
				}
				s := HostIface{Name: a.Name, Index: a.Index, Running: a.RawFlags&unix.IFF_RUNNING != 0}
				if had && old.Index == a.Index {
					s.Addrs = old.Addrs
				} else {
					s.Addrs = m.addrsOf(a.Index, log)
				}
				if had && old.Index == s.Index && old.Running == s.Running && slices.Equal(old.Addrs, s.Addrs) {
					continue
				}
				known[a.Name] = s
				send(ctx, out, HostEvent{Ifaces: []HostIface{s}})
			case u, ok := <-addrs:
				if !ok {
					break loop
				}
				name := ""
				for n, s := range known {
					if s.Index == u.LinkIndex {
						name = n
					}
				}
				if name == "" {
					continue // not a host interface we report (or not listed yet: its link event lists it)
				}
				s := known[name]
				a, ok := netip.AddrFromSlice(u.LinkAddress.IP)
				if !ok {
					continue
				}
				a = a.Unmap()
				i := slices.Index(s.Addrs, a)
				switch {
				case u.NewAddr && i < 0:
					s.Addrs = append(slices.Clone(s.Addrs), a)
					slices.SortFunc(s.Addrs, netip.Addr.Compare)
				case !u.NewAddr && i >= 0:
					s.Addrs = slices.Delete(slices.Clone(s.Addrs), i, i+1)
				default:
					continue
				}
				known[name] = s
				send(ctx, out, HostEvent{Ifaces: []HostIface{s}})
			}
		}
		close(done)
	}
}

// skip logs, once per name, an interface that could have been a host
// endpoint's but whose name no rule can match as it is.
func (m *HostMonitor) skip(log *slog.Logger, skipped map[string]bool, name string) {
	if safeName.MatchString(name) || skipped[name] {
		return
	}
	skipped[name] = true
	log.Warn("host interface has a name rules cannot match by name; only an all-interfaces host endpoint governs it", "iface", name)
}

// list reads every wanted interface with its addresses, retrying until it
// succeeds (the first apply waits for a complete listing).
func (m *HostMonitor) list(ctx context.Context, log *slog.Logger, skipped map[string]bool) map[string]HostIface {
	for attempt, delay := 1, 10*time.Millisecond; ctx.Err() == nil; attempt++ {
		var links []netlink.Link
		var addrs []netlink.Addr
		h, err := handle(m.Timeout)
		if err == nil {
			links, err = h.LinkList()
			if err == nil {
				addrs, err = h.AddrList(nil, netlink.FAMILY_ALL)
			}
			h.Close()
		}
		if err == nil {
			out := map[string]HostIface{}
			byIndex := map[int]string{}
			for _, l := range links {
				a := l.Attrs()
				if !m.wanted(a.Name) {
					m.skip(log, skipped, a.Name)
					continue
				}
				out[a.Name] = HostIface{Name: a.Name, Index: a.Index, Running: a.RawFlags&unix.IFF_RUNNING != 0}
				byIndex[a.Index] = a.Name
			}
			for _, ad := range addrs {
				name, ok := byIndex[ad.LinkIndex]
				if !ok {
					continue
				}
				if ip, ok := netip.AddrFromSlice(ad.IP); ok {
					s := out[name]
					s.Addrs = append(s.Addrs, ip.Unmap())
					out[name] = s
				}
			}
			for name, s := range out {
				slices.SortFunc(s.Addrs, netip.Addr.Compare)
				s.Addrs = slices.Compact(s.Addrs)
				out[name] = s
			}
			return out
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) || attempt%10 == 0 {
			log.Warn("listing host interfaces failed; retrying", "err", err, "attempt", attempt)
			sleep(ctx, delay)
			delay = min(2*delay, time.Second)
		}
	}
	return nil
}

// addrsOf reads one interface's addresses (a link that appeared after the
// listing).
func (m *HostMonitor) addrsOf(index int, log *slog.Logger) []netip.Addr {
	h, err := handle(m.Timeout)
	if err != nil {
		log.Warn("listing a host interface's addresses failed; the next listing repairs it", "err", err)
		return nil
	}
	defer h.Close()
	link, err := h.LinkByIndex(index)
	if err != nil {
		return nil // gone again; its delete follows
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		log.Warn("listing a host interface's addresses failed; the next listing repairs it", "iface", link.Attrs().Name, "err", err)
		return nil
	}
	var out []netip.Addr
	for _, ad := range addrs {
		if ip, ok := netip.AddrFromSlice(ad.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func sortedIfaces(m map[string]HostIface) []HostIface {
	out := make([]HostIface, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b HostIface) int { return strings.Compare(a.Name, b.Name) })
	return out
}
