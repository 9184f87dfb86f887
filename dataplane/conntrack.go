package dataplane

import (
	"context"
	"log/slog"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"ocelot/contract"
)

// Conntrack cleanup. The endpoint chains accept established flows before
// any policy, so when something that allowed a flow goes away, its
// conntrack entry must go too, or the flow outlives the rule. Ocelot
// forgets the entries a change can affect; a flow that is still allowed is
// simply picked up again as new (nf_conntrack_tcp_loose, the default) and
// passes the policy afresh.

// conntrackManager owns conntrack cleanup: the addresses of each local
// endpoint, the flows to forget at the next apply, and the worker that
// deletes them off the apply path once the rules that made them stale are
// in place. The other managers say what to forget; only this one knows
// addresses and talks to conntrack.
type conntrackManager struct {
	kernel  conntrackDeleter
	log     *slog.Logger
	metrics *metrics

	armed      bool // set after the first apply: nothing before it relied on a flow
	addrs      map[contract.EndpointID][]netip.Addr
	flushIPs   map[netip.Addr]struct{}    // forget every flow of these addresses
	flushPairs map[[2]netip.Addr]struct{} // forget flows between these two
	jobs       chan<- conntrackJob        // the worker's queue while Run runs; nil: delete inline
}

type conntrackJob map[netlink.InetFamily][]netlink.CustomConntrackFilter

func newConntrackManager(k conntrackDeleter, log *slog.Logger, m *metrics) *conntrackManager {
	return &conntrackManager{kernel: k, log: log, metrics: m, addrs: map[contract.EndpointID][]netip.Addr{},
		flushIPs: map[netip.Addr]struct{}{}, flushPairs: map[[2]netip.Addr]struct{}{}}
}

// SetEndpoint records the addresses of a local endpoint.
func (c *conntrackManager) SetEndpoint(id contract.EndpointID, ep *contract.EndpointUpdate) {
	var out []netip.Addr
	for _, n := range ep.IPv4Nets {
		out = append(out, n.Addr())
	}
	for _, n := range ep.IPv6Nets {
		out = append(out, n.Addr())
	}
	c.addrs[id] = out
}

// RemoveEndpoint forgets an endpoint's addresses.
func (c *conntrackManager) RemoveEndpoint(id contract.EndpointID) { delete(c.addrs, id) }

// ForgetEndpoints forgets every flow to or from the endpoints' addresses
// (their policies changed, or they went).
func (c *conntrackManager) ForgetEndpoints(ids ...contract.EndpointID) {
	if !c.armed {
		return // the first apply changes nothing a flow was relying on
	}
	for _, id := range ids {
		for _, a := range c.addrs[id] {
			c.flushIPs[a] = struct{}{}
		}
	}
}

// ForgetPairs forgets flows between the endpoints and addresses that left
// a set their policies use.
func (c *conntrackManager) ForgetPairs(ids []contract.EndpointID, removed []contract.Member) {
	if !c.armed || len(removed) == 0 {
		return
	}
	for _, id := range ids {
		for _, local := range c.addrs[id] {
			for _, m := range removed {
				if m.Net.IsSingleIP() && m.Net.Addr().Is4() == local.Is4() {
					c.flushPairs[[2]netip.Addr{local, m.Net.Addr()}] = struct{}{}
				}
			}
		}
	}
}

// Pending reports whether Flush has work.
func (c *conntrackManager) Pending() bool { return len(c.flushIPs)+len(c.flushPairs) > 0 }

// Flush deletes the entries collected since the last apply, one netlink
// dump per family, on the worker if it runs.
func (c *conntrackManager) Flush() {
	if !c.Pending() {
		return
	}
	job := conntrackJob{}
	fam := func(a netip.Addr) netlink.InetFamily {
		if a.Is4() {
			return unix.AF_INET
		}
		return unix.AF_INET6
	}
	for a := range c.flushIPs {
		for _, t := range []netlink.ConntrackFilterType{netlink.ConntrackOrigSrcIP, netlink.ConntrackOrigDstIP} {
			f := &netlink.ConntrackFilter{}
			_ = f.AddIP(t, net.IP(a.AsSlice()))
			job[fam(a)] = append(job[fam(a)], f)
		}
	}
	for p := range c.flushPairs {
		for _, dir := range [][2]netip.Addr{{p[0], p[1]}, {p[1], p[0]}} {
			f := &netlink.ConntrackFilter{}
			_ = f.AddIP(netlink.ConntrackOrigSrcIP, net.IP(dir[0].AsSlice()))
			_ = f.AddIP(netlink.ConntrackOrigDstIP, net.IP(dir[1].AsSlice()))
			job[fam(p[0])] = append(job[fam(p[0])], f)
		}
	}
	clear(c.flushIPs)
	clear(c.flushPairs)
	if c.jobs == nil { // no worker (tests and benchmarks driving apply directly)
		c.delete(job)
		return
	}
	c.jobs <- job
}

// Start moves deletion onto a worker until ctx ends: a dump of the
// conntrack table takes milliseconds, and the next change should not
// wait for it.
func (c *conntrackManager) Start(ctx context.Context) {
	jobs := make(chan conntrackJob, 16)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case job := <-jobs:
				c.delete(job)
			}
		}
	}()
	c.jobs = jobs
}

func (c *conntrackManager) delete(job conntrackJob) {
	for family, filters := range job {
		n, err := c.kernel.ConntrackDeleteFilters(netlink.ConntrackTable, family, filters...)
		if err != nil {
			c.log.Warn("forgetting conntrack entries failed", "err", err)
			continue
		}
		if n > 0 {
			c.log.Debug("forgot conntrack entries of flows whose policy changed", "entries", n)
			c.metrics.conntrackGone.Add(float64(n))
		}
	}
}
