package dataplane

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"time"

	"ocelot/dataplane/hostaddrs"
)

// hostGuard knows the addresses the host itself uses, so that no endpoint
// can take them: the addresses on its non-workload interfaces, the
// gateways its routes leave through (on those interfaces), and the etcd
// endpoints' addresses from the configuration. A /32 route for any of
// them to a tap would send the host's own traffic — to its gateway, to
// etcd, to itself — into a VM. Addresses that are never a VM's
// (unspecified, loopback, multicast, link-local, broadcast) are refused
// too.
type hostGuard struct {
	ifaces    workloadIfaces
	etcd      []netip.Addr
	host      hostaddrs.Snapshot
	protected map[netip.Addr]struct{}
}

func newHostGuard(ifaces workloadIfaces) *hostGuard {
	return &hostGuard{ifaces: ifaces, protected: map[netip.Addr]struct{}{}}
}

// SetHost records a snapshot of the host's addresses; SetEtcd the etcd
// endpoints' addresses. Each reports whether the protected set changed.
func (g *hostGuard) SetHost(s hostaddrs.Snapshot) bool {
	g.host = s
	return g.recompute()
}

func (g *hostGuard) SetEtcd(addrs []netip.Addr) bool {
	g.etcd = addrs
	return g.recompute()
}

func (g *hostGuard) recompute() bool {
	next := map[netip.Addr]struct{}{}
	for _, a := range g.etcd {
		next[a.Unmap()] = struct{}{}
	}
	for _, l := range [][]hostaddrs.Addr{g.host.Addrs, g.host.Gateways} {
		for _, a := range l {
			if !g.ifaces.Ours(a.Iface) {
				next[a.IP.Unmap()] = struct{}{}
			}
		}
	}
	if len(next) == len(g.protected) {
		same := true
		for a := range next {
			if _, ok := g.protected[a]; !ok {
				same = false
				break
			}
		}
		if same {
			return false
		}
	}
	g.protected = next
	return true
}

// Taken returns the address of the host that a network holds, if any: a
// network an endpoint must not be given.
func (g *hostGuard) Taken(p netip.Prefix) (netip.Addr, bool) {
	a := p.Addr().Unmap()
	if !a.IsGlobalUnicast() || a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return a, true
	}
	if p.IsSingleIP() {
		_, taken := g.protected[a]
		return a, taken
	}
	for h := range g.protected {
		if p.Contains(h) {
			return h, true
		}
	}
	return netip.Addr{}, false
}

// Filter splits an endpoint's networks into those it may have and those
// the host uses.
func (g *hostGuard) Filter(nets []netip.Prefix) (allowed, refused []netip.Prefix) {
	for _, n := range nets {
		if _, taken := g.Taken(n); taken {
			refused = append(refused, n)
		} else {
			allowed = append(allowed, n)
		}
	}
	if len(refused) == 0 {
		return nets, nil
	}
	return allowed, refused
}

// Protected lists the protected addresses, sorted (for logs and tests).
func (g *hostGuard) Protected() []netip.Addr {
	out := make([]netip.Addr, 0, len(g.protected))
	for a := range g.protected {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// resolveEtcd returns the addresses of the etcd endpoints (URLs, as
// EtcdEndpoints or EtcdAddr give them): IP literals as they are, host
// names resolved once, each within a few seconds. A name that does not
// resolve is logged and left out.
func resolveEtcd(ctx context.Context, endpoints []string, log *slog.Logger) []netip.Addr {
	var out []netip.Addr
	for _, e := range endpoints {
		host := e
		if u, err := url.Parse(e); err == nil && u.Host != "" {
			host = u.Hostname()
		} else if h, _, err := net.SplitHostPort(e); err == nil {
			host = h
		}
		if a, err := netip.ParseAddr(host); err == nil {
			out = append(out, a.Unmap())
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
		cancel()
		if err != nil {
			log.Warn("cannot resolve an etcd endpoint's host name; its addresses are not protected from endpoints that claim them",
				"endpoint", e, "err", err)
			continue
		}
		for _, a := range addrs {
			out = append(out, a.Unmap())
		}
	}
	return out
}
