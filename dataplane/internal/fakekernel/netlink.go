package fakekernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"ocelot/dataplane/hostaddrs"
)

// RouteListFiltered lists routes, filtered by interface and table as the
// mask says.
func (k *Kernel) RouteListFiltered(family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []netlink.Route
	for _, r := range k.routes {
		if family != netlink.FAMILY_ALL && routeFamily(r) != family {
			continue
		}
		if mask&netlink.RT_FILTER_OIF != 0 && r.LinkIndex != filter.LinkIndex {
			continue
		}
		if mask&netlink.RT_FILTER_TABLE != 0 && r.Table != filter.Table {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// routeFamily is a route's family, from its destination, or for a default
// route (no destination) its gateway.
func routeFamily(r netlink.Route) int {
	ip := r.Gw
	if r.Dst != nil {
		ip = r.Dst.IP
	}
	if ip.To4() != nil {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func sameDst(a, b *net.IPNet) bool { return a.String() == b.String() }

// RouteReplace adds a route or replaces the one with its destination,
// table and metric.
func (k *Kernel) RouteReplace(r *netlink.Route) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.linkExists(r.LinkIndex) {
		return unix.ENODEV
	}
	k.routes = slices.DeleteFunc(k.routes, func(o netlink.Route) bool {
		return sameDst(o.Dst, r.Dst) && o.Table == r.Table && o.Priority == r.Priority
	})
	k.routes = append(k.routes, *r)
	k.record("netlink: route replace %s dev %d proto %d metric %d", r.Dst, r.LinkIndex, r.Protocol, r.Priority)
	return nil
}

// RouteDel deletes the route with the given destination, interface,
// table and (when not 0) metric.
func (k *Kernel) RouteDel(r *netlink.Route) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := len(k.routes)
	k.routes = slices.DeleteFunc(k.routes, func(o netlink.Route) bool {
		return sameDst(o.Dst, r.Dst) && o.LinkIndex == r.LinkIndex && o.Table == r.Table && (r.Priority == 0 || o.Priority == r.Priority)
	})
	if len(k.routes) == n {
		return unix.ESRCH
	}
	k.record("netlink: route del %s dev %d metric %d", r.Dst, r.LinkIndex, r.Priority)
	return nil
}

// AddRoute adds a route as another tool would (tests).
func (k *Kernel) AddRoute(r netlink.Route) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.routes = append(k.routes, r)
}

// Routes returns the destinations routed via an interface, with their
// protocol, as "198.18.1.1/32 proto 3".
func (k *Kernel) Routes(iface string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.links[iface]
	if l == nil {
		return nil
	}
	var out []string
	for _, r := range k.routes {
		if r.LinkIndex == l.index {
			dst := "default"
			if r.Dst != nil {
				dst = r.Dst.String()
			}
			if r.Gw != nil {
				dst += " via " + r.Gw.String()
			}
			out = append(out, dst+" proto "+r.Protocol.String())
		}
	}
	slices.Sort(out)
	return out
}

// RouteMetrics returns the destinations routed via an interface with
// their metrics, as "198.18.1.1/32 metric 1024".
func (k *Kernel) RouteMetrics(iface string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.links[iface]
	if l == nil {
		return nil
	}
	var out []string
	for _, r := range k.routes {
		if r.LinkIndex == l.index {
			out = append(out, fmt.Sprintf("%s metric %d", r.Dst, r.Priority))
		}
	}
	slices.Sort(out)
	return out
}

// NeighSet adds or replaces a neighbour entry.
func (k *Kernel) NeighSet(n *netlink.Neigh) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.linkExists(n.LinkIndex) {
		return unix.ENODEV
	}
	k.neighs = slices.DeleteFunc(k.neighs, func(o netlink.Neigh) bool { return o.LinkIndex == n.LinkIndex && o.IP.Equal(n.IP) })
	k.neighs = append(k.neighs, *n)
	k.record("netlink: neigh set %s lladdr %s dev %d", n.IP, n.HardwareAddr, n.LinkIndex)
	return nil
}

// NeighList lists an interface's neighbours of a family.
func (k *Kernel) NeighList(idx, family int) ([]netlink.Neigh, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []netlink.Neigh
	for _, n := range k.neighs {
		if n.LinkIndex == idx && (family == netlink.FAMILY_ALL || (n.IP.To4() != nil) == (family == netlink.FAMILY_V4)) {
			out = append(out, n)
		}
	}
	return out, nil
}

// NeighDel deletes a neighbour entry.
func (k *Kernel) NeighDel(n *netlink.Neigh) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	before := len(k.neighs)
	k.neighs = slices.DeleteFunc(k.neighs, func(o netlink.Neigh) bool { return o.LinkIndex == n.LinkIndex && o.IP.Equal(n.IP) })
	if len(k.neighs) == before {
		return unix.ENOENT
	}
	k.record("netlink: neigh del %s dev %d", n.IP, n.LinkIndex)
	return nil
}

// Neighs returns an interface's neighbours as "198.18.1.1 fa:16:3e:00:00:01".
func (k *Kernel) Neighs(iface string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.links[iface]
	if l == nil {
		return nil
	}
	var out []string
	for _, n := range k.neighs {
		if n.LinkIndex == l.index {
			out = append(out, n.IP.String()+" "+n.HardwareAddr.String())
		}
	}
	slices.Sort(out)
	return out
}

func (k *Kernel) linkExists(idx int) bool {
	for _, l := range k.links {
		if l.index == idx {
			return true
		}
	}
	return false
}

// ReadSysctl reads a sysctl by its path under /proc/sys.
func (k *Kernel) ReadSysctl(path string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.sysctls[path]
	if !ok {
		return "", os.ErrNotExist
	}
	return v, nil
}

// WriteSysctl writes a sysctl by its path under /proc/sys. A
// per-interface sysctl of an absent interface does not exist.
func (k *Kernel) WriteSysctl(path, value string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.failing[path]; err != nil {
		return err
	}
	if _, ok := k.sysctls[path]; !ok {
		for _, dir := range []string{"net/ipv4/conf/", "net/ipv6/conf/", "net/ipv4/neigh/"} {
			if strings.HasPrefix(path, dir) {
				return os.ErrNotExist
			}
		}
	}
	k.sysctls[path] = value
	k.record("sysctl: %s = %s", path, value)
	return nil
}

var errNoLink = errors.New("no such link")

// SetLink changes an interface's state (tests).
func (k *Kernel) SetLink(name string, up, running bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.links[name]
	if l == nil {
		return errNoLink
	}
	l.up, l.running = up, running
	return nil
}

// LinkState is an interface as a monitor would report it.
type LinkState struct {
	Name        string
	Index       int
	Up, Running bool
}

// Links lists every interface, by name.
func (k *Kernel) Links() []LinkState {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []LinkState
	for name, l := range k.links {
		out = append(out, LinkState{Name: name, Index: l.index, Up: l.up, Running: l.running})
	}
	slices.SortFunc(out, func(a, b LinkState) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Capture is a packet capture on a fake interface (see ListenPacket).
type Capture struct {
	k      *Kernel
	iface  string
	frames chan []byte
	closed chan struct{}
	once   sync.Once
}

// ListenPacket opens a capture on an interface; it fails when the
// interface does not exist, as binding a packet socket does.
func (k *Kernel) ListenPacket(iface string) (*Capture, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.links[iface] == nil {
		return nil, errNoLink
	}
	c := &Capture{k: k, iface: iface, frames: make(chan []byte, 16), closed: make(chan struct{})}
	k.captures = append(k.captures, c)
	k.record("packet: listen %s", iface)
	return c, nil
}

// Next returns the next frame the VM sent (every frame is incoming).
func (c *Capture) Next(buf []byte) (int, bool, error) {
	select {
	case f := <-c.frames:
		return copy(buf, f), true, nil
	case <-c.closed:
		return 0, false, errors.New("capture closed")
	}
}

// Close ends the capture.
func (c *Capture) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.k.mu.Lock()
		defer c.k.mu.Unlock()
		c.k.captures = slices.DeleteFunc(c.k.captures, func(o *Capture) bool { return o == c })
	})
	return nil
}

// SendFrame delivers a frame from the VM behind an interface to every
// capture open on it, and reports how many there were.
func (k *Kernel) SendFrame(iface string, frame []byte) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, c := range k.captures {
		if c.iface == iface {
			select {
			case c.frames <- frame:
				n++
			default:
			}
		}
	}
	return n
}

// Captures counts the captures open on an interface.
func (k *Kernel) Captures(iface string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, c := range k.captures {
		if c.iface == iface {
			n++
		}
	}
	return n
}

// AddAddr gives an interface an address (tests).
func (k *Kernel) AddAddr(iface string, a netip.Addr) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.links[iface]
	if l == nil {
		return errNoLink
	}
	l.addrs = append(l.addrs, a)
	return nil
}

// HostAddrs lists the addresses on every interface and the gateways of
// every route, as the dataplane's host watcher does.
func (k *Kernel) HostAddrs() hostaddrs.Snapshot {
	k.mu.Lock()
	defer k.mu.Unlock()
	var s hostaddrs.Snapshot
	byIndex := map[int]string{}
	for name, l := range k.links {
		byIndex[l.index] = name
		for _, a := range l.addrs {
			s.Addrs = append(s.Addrs, hostaddrs.Addr{IP: a, Iface: name})
		}
	}
	for _, r := range k.routes {
		if a, ok := netip.AddrFromSlice(r.Gw); ok && r.Gw != nil {
			s.Gateways = append(s.Gateways, hostaddrs.Addr{IP: a.Unmap(), Iface: byIndex[r.LinkIndex]})
		}
	}
	hostaddrs.Normalize(&s)
	return s
}
