package dataplane

import (
	"context"
	"net"
	"net/netip"
	"ocelot/contract"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Conntrack cleanup. The endpoint chains accept established flows before
// any policy, so when something that allowed a flow goes away, its
// conntrack entry must go too, or the flow outlives the rule. Ocelot
// forgets the entries a change can affect; a flow that is still allowed is
// simply picked up again as new (nf_conntrack_tcp_loose, the default) and
// passes the policy afresh.

func (d *Dataplane) addresses(ep *contract.EndpointUpdate) []netip.Addr {
	var out []netip.Addr
	for _, n := range append(append([]netip.Prefix(nil), ep.IPv4Nets...), ep.IPv6Nets...) {
		out = append(out, n.Addr())
	}
	return out
}

// forgetFlowsOf forgets every flow to or from an endpoint.
func (d *Dataplane) forgetFlowsOf(ep *contract.EndpointUpdate) {
	if !d.st.appliedOnce {
		return // the first apply changes nothing a flow was relying on
	}
	for _, a := range d.addresses(ep) {
		d.st.flushIPs[a] = struct{}{}
	}
}

// forgetFlowsOfChain forgets the flows of every endpoint using a policy
// or profile chain whose rules changed.
func (d *Dataplane) forgetFlowsOfChain(chain string) {
	for id := range d.st.chainEPs[chain] {
		if ep := d.st.endpoints[id]; ep != nil {
			d.forgetFlowsOf(ep)
		}
	}
}

// forgetFlowsOfRemovedMembers forgets flows between addresses that left a
// set and the endpoints whose policies use the set.
func (d *Dataplane) forgetFlowsOfRemovedMembers(x contract.IPSetDelta) {
	if len(x.Removed) == 0 || !d.st.appliedOnce {
		return
	}
	for chain := range d.st.setPolicies[x.ID] {
		for id := range d.st.chainEPs[chain] {
			ep := d.st.endpoints[id]
			if ep == nil {
				continue
			}
			for _, local := range d.addresses(ep) {
				for _, m := range x.Removed {
					if m.Net.IsSingleIP() && m.Net.Addr().Is4() == local.Is4() {
						d.st.flushPairs[[2]netip.Addr{local, m.Net.Addr()}] = struct{}{}
					}
				}
			}
		}
	}
}

// flushConntrack deletes the entries collected since the last apply, one
// netlink dump per family.
func (d *Dataplane) flushConntrack() {
	if len(d.st.flushIPs)+len(d.st.flushPairs) == 0 {
		return
	}
	byFamily := map[netlink.InetFamily][]netlink.CustomConntrackFilter{}
	fam := func(a netip.Addr) netlink.InetFamily {
		if a.Is4() {
			return unix.AF_INET
		}
		return unix.AF_INET6
	}
	for a := range d.st.flushIPs {
		for _, t := range []netlink.ConntrackFilterType{netlink.ConntrackOrigSrcIP, netlink.ConntrackOrigDstIP} {
			f := &netlink.ConntrackFilter{}
			f.AddIP(t, net.IP(a.AsSlice()))
			byFamily[fam(a)] = append(byFamily[fam(a)], f)
		}
	}
	for p := range d.st.flushPairs {
		for _, dir := range [][2]netip.Addr{{p[0], p[1]}, {p[1], p[0]}} {
			f := &netlink.ConntrackFilter{}
			f.AddIP(netlink.ConntrackOrigSrcIP, net.IP(dir[0].AsSlice()))
			f.AddIP(netlink.ConntrackOrigDstIP, net.IP(dir[1].AsSlice()))
			byFamily[fam(p[0])] = append(byFamily[fam(p[0])], f)
		}
	}
	clear(d.st.flushIPs)
	clear(d.st.flushPairs)
	if d.conntrackJobs == nil { // no Run loop (tests driving apply directly)
		d.deleteConntrack(byFamily)
		return
	}
	d.conntrackJobs <- byFamily
}

// startConntrackWorker moves conntrack deletion off the apply path until
// ctx ends.
func (d *Dataplane) startConntrackWorker(ctx context.Context) {
	jobs := make(chan map[netlink.InetFamily][]netlink.CustomConntrackFilter, 16)
	go d.conntrackWorker(ctx, jobs)
	d.conntrackJobs = jobs
}

// conntrackWorker deletes entries off the apply path: a dump of the
// conntrack table takes milliseconds, and the next change should not wait
// for it. The rules that made the flows stale are already in place.
func (d *Dataplane) conntrackWorker(ctx context.Context, jobs <-chan map[netlink.InetFamily][]netlink.CustomConntrackFilter) {
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-jobs:
			d.deleteConntrack(job)
		}
	}
}

func (d *Dataplane) deleteConntrack(byFamily map[netlink.InetFamily][]netlink.CustomConntrackFilter) {
	for family, filters := range byFamily {
		n, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, family, filters...)
		if err != nil {
			d.log.Warn("forgetting conntrack entries failed", "err", err)
			continue
		}
		if n > 0 {
			d.log.Debug("forgot conntrack entries of flows whose policy changed", "entries", n)
			conntrackFlushed.Add(float64(n))
		}
	}
}
