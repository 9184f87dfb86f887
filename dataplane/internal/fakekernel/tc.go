package fakekernel

import (
	"fmt"
	"net"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Traffic control and link management as the bandwidth limits use them:
// links as netlink.Link values (veth-like devices, IFB devices), qdiscs
// and filters per link. It refuses what the kernel refuses: a qdisc or
// filter on a missing link, a filter on an ingress qdisc that is not
// there, a second link of one name.

func (k *Kernel) linkValue(name string, l *link) netlink.Link {
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.Index, attrs.MTU = name, l.index, 1500
	if l.up {
		attrs.Flags |= net.FlagUp
	}
	if l.ifb {
		return &netlink.Ifb{LinkAttrs: attrs}
	}
	return &netlink.Device{LinkAttrs: attrs}
}

// LinkByName returns an interface, or a netlink.LinkNotFoundError.
func (k *Kernel) LinkByName(name string) (netlink.Link, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.links[name]
	if l == nil {
		return nil, netlink.LinkNotFoundError{}
	}
	return k.linkValue(name, l), nil
}

// LinkList lists every interface.
func (k *Kernel) LinkList() ([]netlink.Link, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []netlink.Link
	for name, l := range k.links {
		out = append(out, k.linkValue(name, l))
	}
	return out, nil
}

// LinkAdd creates an IFB device (the only kind the dataplane adds).
func (k *Kernel) LinkAdd(nl netlink.Link) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	name := nl.Attrs().Name
	if k.links[name] != nil {
		return unix.EEXIST
	}
	if _, ok := nl.(*netlink.Ifb); !ok {
		return fmt.Errorf("fakekernel: adding a %s link is not modelled", nl.Type())
	}
	k.nextIdx++
	k.links[name] = &link{index: k.nextIdx, ifb: true}
	k.record("netlink: link add %s type ifb", name)
	return nil
}

// LinkSetUp sets an interface administratively up.
func (k *Kernel) LinkSetUp(nl netlink.Link) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.links[nl.Attrs().Name]
	if l == nil {
		return unix.ENODEV
	}
	l.up, l.running = true, true
	return nil
}

// LinkDel deletes an interface with its qdiscs and filters.
func (k *Kernel) LinkDel(nl netlink.Link) error {
	name := nl.Attrs().Name
	k.mu.Lock()
	if k.links[name] == nil {
		k.mu.Unlock()
		return netlink.LinkNotFoundError{}
	}
	k.record("netlink: link del %s", name)
	k.mu.Unlock()
	k.DelLink(name)
	return nil
}

func (k *Kernel) linkByIndex(idx int) *link {
	for _, l := range k.links {
		if l.index == idx {
			return l
		}
	}
	return nil
}

// QdiscList lists an interface's qdiscs.
func (k *Kernel) QdiscList(nl netlink.Link) ([]netlink.Qdisc, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.linkByIndex(nl.Attrs().Index)
	if l == nil {
		return nil, unix.ENODEV
	}
	return slices.Clone(l.qdiscs), nil
}

// QdiscReplace adds a qdisc or replaces the one at its parent.
func (k *Kernel) QdiscReplace(q netlink.Qdisc) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.linkByIndex(q.Attrs().LinkIndex)
	if l == nil {
		return unix.ENODEV
	}
	l.qdiscs = slices.DeleteFunc(l.qdiscs, func(o netlink.Qdisc) bool { return o.Attrs().Parent == q.Attrs().Parent })
	l.qdiscs = append(l.qdiscs, q)
	k.record("tc: qdisc replace %s dev %d parent %x", q.Type(), q.Attrs().LinkIndex, q.Attrs().Parent)
	return nil
}

// QdiscDel deletes a qdisc (an ingress qdisc takes its filters with it).
func (k *Kernel) QdiscDel(q netlink.Qdisc) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.linkByIndex(q.Attrs().LinkIndex)
	if l == nil {
		return unix.ENODEV
	}
	n := len(l.qdiscs)
	l.qdiscs = slices.DeleteFunc(l.qdiscs, func(o netlink.Qdisc) bool { return o.Attrs().Parent == q.Attrs().Parent })
	if len(l.qdiscs) == n {
		return unix.ENOENT
	}
	if q.Attrs().Parent == netlink.HANDLE_INGRESS {
		l.filters = nil
	}
	k.record("tc: qdisc del %s dev %d", q.Type(), q.Attrs().LinkIndex)
	return nil
}

func hasIngress(l *link) bool {
	return slices.ContainsFunc(l.qdiscs, func(q netlink.Qdisc) bool { return q.Attrs().Parent == netlink.HANDLE_INGRESS })
}

// FilterList lists the filters on an interface's ingress qdisc.
func (k *Kernel) FilterList(nl netlink.Link, parent uint32) ([]netlink.Filter, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.linkByIndex(nl.Attrs().Index)
	if l == nil {
		return nil, unix.ENODEV
	}
	if parent != netlink.HANDLE_INGRESS {
		return nil, nil
	}
	return slices.Clone(l.filters), nil
}

// FilterAdd adds a filter to an interface's ingress qdisc.
func (k *Kernel) FilterAdd(f netlink.Filter) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.linkByIndex(f.Attrs().LinkIndex)
	if l == nil {
		return unix.ENODEV
	}
	if !hasIngress(l) {
		return unix.EINVAL
	}
	l.filters = append(l.filters, f)
	k.record("tc: filter add %s dev %d", f.Type(), f.Attrs().LinkIndex)
	return nil
}

// FilterDel deletes a filter.
func (k *Kernel) FilterDel(f netlink.Filter) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.linkByIndex(f.Attrs().LinkIndex)
	if l == nil {
		return unix.ENODEV
	}
	n := len(l.filters)
	l.filters = slices.DeleteFunc(l.filters, func(o netlink.Filter) bool { return o == f })
	if len(l.filters) == n {
		return unix.ENOENT
	}
	k.record("tc: filter del %s dev %d", f.Type(), f.Attrs().LinkIndex)
	return nil
}

// TC describes an interface's traffic control for tests: its root token
// bucket's rate in bytes per second (0: none), whether it has an ingress
// qdisc, and the interface its filters redirect to ("" when none).
func (k *Kernel) TC(iface string) (rate uint64, ingress bool, redirect string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.links[iface]
	if l == nil {
		return 0, false, ""
	}
	for _, q := range l.qdiscs {
		if tbf, ok := q.(*netlink.Tbf); ok && tbf.Parent == netlink.HANDLE_ROOT {
			rate = tbf.Rate
		}
	}
	for _, f := range l.filters {
		if u, ok := f.(*netlink.U32); ok {
			for _, a := range u.Actions {
				if m, ok := a.(*netlink.MirredAction); ok {
					for name, o := range k.links {
						if o.index == m.Ifindex {
							redirect = name
						}
					}
				}
			}
		}
	}
	return rate, hasIngress(l), redirect
}
