package dataplane

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"ocelot/contract"
	"ocelot/dataplane/conntrack"
)

// Conntrack cleanup. The endpoint chains accept established flows before
// any policy, so when something that allowed a flow goes away, its
// conntrack entry must go too, or the flow outlives the rule. Ocelot
// forgets the entries a change can affect; a flow that is still allowed is
// simply picked up again as new (nf_conntrack_tcp_loose, the default) and
// passes the policy afresh.

// conntrackManager owns conntrack cleanup: the addresses of each local
// endpoint, and the flows to forget once the next apply has put the rules
// that made them stale in place. The other managers say what to forget;
// only this one knows addresses. It hands each apply's batch to a
// conntrack.Forgetter, which merges batches over a short window and
// deletes them in one pass over the kernel's table, off the apply path.
type conntrackManager struct {
	forgetter *conntrack.Forgetter
	log       *slog.Logger

	armed   bool // set after the first apply: nothing before it relied on a flow
	running bool // the forgetter runs on its own goroutine (Start); else Flush passes at once
	addrs   map[contract.EndpointID][]netip.Addr
	batch   *conntrack.Batch // what the next apply makes stale
}

func newConntrackManager(table conntrack.Table, peers conntrack.Peers, window time.Duration, log *slog.Logger, m *conntrack.Metrics) *conntrackManager {
	f := conntrack.NewForgetter(table, window, log, m)
	if peers != nil {
		f.UsePeers(peers)
	}
	return &conntrackManager{forgetter: f, log: log, addrs: map[contract.EndpointID][]netip.Addr{}, batch: conntrack.NewBatch()}
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

// ForgetEndpoints forgets every flow of the endpoints' addresses — those
// they opened, and those they answer, through a floating IP too (their
// policies changed, their floating IPs changed, or they went).
func (c *conntrackManager) ForgetEndpoints(ids ...contract.EndpointID) {
	if !c.armed {
		return // the first apply changes nothing a flow was relying on
	}
	for _, id := range ids {
		for _, a := range c.addrs[id] {
			c.batch.ForgetAll(a)
		}
	}
}

// ForgetNATs forgets the flows through floating IPs an endpoint no longer
// has (its other flows are still allowed).
func (c *conntrackManager) ForgetNATs(old, cur []contract.NAT) {
	if !c.armed {
		return
	}
	for _, n := range old {
		if !slices.Contains(cur, n) {
			c.batch.ForgetThrough(n.External)
		}
	}
}

// ForgetPairs forgets flows between the endpoints and the members that
// left a set their policies use: an address, or a network (a NetworkSet's
// CIDR).
func (c *conntrackManager) ForgetPairs(ids []contract.EndpointID, removed []contract.Member) {
	if !c.armed || len(removed) == 0 {
		return
	}
	for _, id := range ids {
		for _, local := range c.addrs[id] {
			for _, m := range removed {
				n := m.Net
				if m.Proto != 0 { // a named-port member: its address
					n = netip.PrefixFrom(n.Addr(), n.Addr().BitLen())
				}
				c.batch.ForgetBetween(local, n)
			}
		}
	}
}

// Pending reports whether Flush has work.
func (c *conntrackManager) Pending() bool { return c.batch.Size() > 0 }

// Flush hands what the last apply made stale to the forgetter: at once,
// without waiting for the kernel; the forgetter deletes it within its
// window. Without a running forgetter (tests and benchmarks that drive
// apply themselves) it deletes at once.
func (c *conntrackManager) Flush() {
	if !c.Pending() {
		return
	}
	b := c.batch
	c.batch = conntrack.NewBatch()
	c.forgetter.Add(b)
	if !c.running {
		_ = c.forgetter.Pass(context.Background()) // a failure is logged and kept for the next pass
	}
}

// Start runs the forgetter until ctx ends.
func (c *conntrackManager) Start(ctx context.Context) {
	c.running = true
	go c.forgetter.Run(ctx)
}
