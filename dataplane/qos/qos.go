package qos

import (
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"ocelot/contract"
	"ocelot/dataplane/internal/nlsock"
)

// Netlink is the seam between the decisions and the kernel. Kernel is
// the real one.
type Netlink interface {
	LinkByName(name string) (netlink.Link, error) // a netlink.LinkNotFoundError when absent
	LinkList() ([]netlink.Link, error)
	LinkAdd(link netlink.Link) error
	LinkSetUp(link netlink.Link) error
	LinkDel(link netlink.Link) error
	QdiscList(link netlink.Link) ([]netlink.Qdisc, error)
	QdiscReplace(q netlink.Qdisc) error
	QdiscDel(q netlink.Qdisc) error
	FilterList(link netlink.Link, parent uint32) ([]netlink.Filter, error)
	FilterAdd(f netlink.Filter) error
	FilterDel(f netlink.Filter) error
}

// Kernel is netlink in the namespace it was made in, with a deadline on
// every request, exposing only the calls this package makes.
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

func (k *Kernel) LinkByName(name string) (netlink.Link, error) { return k.h.LinkByName(name) }
func (k *Kernel) LinkList() ([]netlink.Link, error)            { return k.h.LinkList() }
func (k *Kernel) LinkAdd(l netlink.Link) error                 { return k.h.LinkAdd(l) }
func (k *Kernel) LinkSetUp(l netlink.Link) error               { return k.h.LinkSetUp(l) }
func (k *Kernel) LinkDel(l netlink.Link) error                 { return k.h.LinkDel(l) }
func (k *Kernel) QdiscList(l netlink.Link) ([]netlink.Qdisc, error) {
	return k.h.QdiscList(l)
}
func (k *Kernel) QdiscReplace(q netlink.Qdisc) error { return k.h.QdiscReplace(q) }
func (k *Kernel) QdiscDel(q netlink.Qdisc) error     { return k.h.QdiscDel(q) }
func (k *Kernel) FilterList(l netlink.Link, parent uint32) ([]netlink.Filter, error) {
	return k.h.FilterList(l, parent)
}
func (k *Kernel) FilterAdd(f netlink.Filter) error { return k.h.FilterAdd(f) }
func (k *Kernel) FilterDel(f netlink.Filter) error { return k.h.FilterDel(f) }

// IFBPrefix starts the name of every IFB device this package makes
// (Felix's).
const IFBPrefix = "bwcali"

// IFBName is the IFB device of a tap: the prefix and the start of the
// SHA-512 of the tap's name, 15 characters in all (Felix's name).
func IFBName(iface string) string {
	h := sha512.Sum512([]byte(iface))
	return (IFBPrefix + hex.EncodeToString(h[:]))[:15]
}

// Bucket is a token bucket's parameters as the kernel takes them.
type Bucket struct {
	Rate     uint64 // bytes per second
	Buffer   uint32 // the burst, as time at Rate, in scheduler ticks
	Limit    uint32 // queue, bytes
	Peakrate uint64 // bytes per second; 0: none
	Minburst uint32 // bytes
}

// latency is how long a packet may wait in the bucket's queue (Felix's).
const latencyUsec = 25_000

// NewBucket computes a bucket from one direction's limits (bits per
// second, bits, bits per second, bytes) and the interface's MTU; nil when
// the direction has no bandwidth limit. tick is the kernel's scheduler
// ticks per microsecond.
func NewBucket(l contract.QoSLimits, mtu int, tick float64) *Bucket {
	if l.Bandwidth == 0 {
		return nil
	}
	capU32 := func(v float64) uint32 { return uint32(min(v, math.MaxUint32)) }
	rate := l.Bandwidth / 8
	burstUsec := capU32(float64(l.Burst/8) * 1e6 / float64(rate))
	b := &Bucket{Rate: rate, Buffer: capU32(float64(burstUsec) * tick)}
	b.Limit = capU32(float64(rate)*latencyUsec/1e6 + float64(b.Buffer))
	if l.Peakrate != 0 {
		b.Peakrate = l.Peakrate / 8
		b.Minburst = max(l.Minburst, uint32(mtu)+14) // at least a full frame
		minburstUsec := capU32(float64(b.Minburst) * 1e6 / float64(b.Peakrate))
		peakLimit := capU32(float64(b.Peakrate)*latencyUsec/1e6 + float64(capU32(float64(minburstUsec)*tick)))
		b.Limit = min(b.Limit, peakLimit)
	}
	return b
}

// Table is the desired bandwidth limits per workload interface.
type Table struct {
	nl   Netlink
	log  *slog.Logger
	tick float64 // scheduler ticks per microsecond

	desired map[string]*contract.QoSControls // interface -> limits (nil: none)
	dirty   map[string]struct{}
	swept   bool            // stale IFB devices removed since the last Resync
	limited map[string]bool // interfaces with a bandwidth limit in place
}

// New returns an empty table. tick is netlink.TickInUsec() on a host.
func New(nl Netlink, tick float64, log *slog.Logger) *Table {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Table{nl: nl, log: log, tick: tick, desired: map[string]*contract.QoSControls{}, dirty: map[string]struct{}{},
		limited: map[string]bool{}}
}

// Set declares an endpoint's interface and its limits (nil: none, and
// any left from before are removed).
func (t *Table) Set(iface string, q *contract.QoSControls) {
	old, had := t.desired[iface]
	if had && equalControls(old, q) {
		return
	}
	t.desired[iface] = q
	t.dirty[iface] = struct{}{}
}

func equalControls(a, b *contract.QoSControls) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// Remove forgets an interface: no endpoint owns it now. What was
// programmed on it goes at the next apply.
func (t *Table) Remove(iface string) {
	if _, ok := t.desired[iface]; ok {
		delete(t.desired, iface)
		t.dirty[iface] = struct{}{}
	}
}

// Touch re-checks an interface at the next apply (it was recreated).
func (t *Table) Touch(iface string) {
	if _, ok := t.desired[iface]; ok {
		t.dirty[iface] = struct{}{}
	}
}

// Resync re-checks every interface, and sweeps stale IFB devices, at the
// next apply.
func (t *Table) Resync() {
	for iface := range t.desired {
		t.dirty[iface] = struct{}{}
	}
	t.swept = false
}

// Dirty reports whether Apply has work.
func (t *Table) Dirty() bool { return len(t.dirty) > 0 || !t.swept }

// Limited counts the interfaces with a bandwidth limit in place.
func (t *Table) Limited() int { return len(t.limited) }

// Apply programs the dirty interfaces and, once after a Resync, removes
// IFB devices no interface needs. It returns the interfaces that failed;
// they stay dirty.
func (t *Table) Apply() map[string]error {
	failed := map[string]error{}
	for iface := range t.dirty {
		if err := t.applyIface(iface); err != nil {
			failed[iface] = err
			continue
		}
		delete(t.dirty, iface)
	}
	if !t.swept {
		if err := t.sweep(); err != nil {
			failed["IFB devices"] = err
		} else {
			t.swept = true
		}
	}
	return failed
}

func notFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

func (t *Table) applyIface(iface string) error {
	q := t.desired[iface]
	var in, out contract.QoSLimits // to the VM, from the VM
	if q != nil {
		in, out = q.Ingress, q.Egress
	}
	link, err := t.nl.LinkByName(iface)
	if notFound(err) {
		// No tap, no qdiscs: the kernel took them with it. Its IFB may
		// be left.
		delete(t.limited, iface)
		return t.deleteIFB(iface)
	}
	if err != nil {
		return fmt.Errorf("looking up %s: %w", iface, err)
	}
	mtu := link.Attrs().MTU
	if err := t.reconcileRoot(link, NewBucket(in, mtu, t.tick)); err != nil {
		return fmt.Errorf("bandwidth to the VM on %s: %w", iface, err)
	}
	if err := t.reconcileRedirect(link, NewBucket(out, mtu, t.tick)); err != nil {
		return fmt.Errorf("bandwidth from the VM on %s: %w", iface, err)
	}
	if in.Bandwidth != 0 || out.Bandwidth != 0 {
		t.limited[iface] = true
	} else {
		delete(t.limited, iface)
	}
	return nil
}

// rootHandle is the handle of the token bucket this package puts at an
// interface's root.
var rootHandle = netlink.MakeHandle(1, 0)

// ourBucket finds the root token bucket this package would have made.
func (t *Table) ourBucket(link netlink.Link) (*netlink.Tbf, error) {
	qs, err := t.nl.QdiscList(link)
	if err != nil {
		return nil, fmt.Errorf("listing qdiscs: %w", err)
	}
	for _, q := range qs {
		if tbf, ok := q.(*netlink.Tbf); ok && tbf.Parent == netlink.HANDLE_ROOT && tbf.Handle == rootHandle {
			return tbf, nil
		}
	}
	return nil, nil
}

// reconcileRoot puts b (nil: nothing) as the root token bucket of link.
func (t *Table) reconcileRoot(link netlink.Link, b *Bucket) error {
	cur, err := t.ourBucket(link)
	if err != nil {
		return err
	}
	switch {
	case b == nil && cur != nil:
		if err := t.nl.QdiscDel(cur); err != nil && !notFound(err) {
			return fmt.Errorf("deleting the token bucket: %w", err)
		}
	case b != nil && (cur == nil || !sameBucket(cur, b)):
		tbf := &netlink.Tbf{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: rootHandle, Parent: netlink.HANDLE_ROOT},
			Rate: b.Rate, Buffer: b.Buffer, Limit: b.Limit, Peakrate: b.Peakrate, Minburst: b.Minburst}
		if err := t.nl.QdiscReplace(tbf); err != nil {
			return fmt.Errorf("setting the token bucket %+v: %w", *b, err)
		}
	}
	return nil
}

func sameBucket(cur *netlink.Tbf, b *Bucket) bool {
	return cur.Rate == b.Rate && cur.Buffer == b.Buffer && cur.Limit == b.Limit && cur.Peakrate == b.Peakrate &&
		(b.Peakrate == 0 || cur.Minburst == b.Minburst)
}

var ingressHandle = netlink.MakeHandle(0xffff, 0)

// reconcileRedirect makes the traffic from the VM go through an IFB
// device with b as its root bucket, or (b nil) undoes it.
func (t *Table) reconcileRedirect(tap netlink.Link, b *Bucket) error {
	name := IFBName(tap.Attrs().Name)
	var ifb netlink.Link
	if b != nil {
		var err error
		if ifb, err = t.ensureIFB(name, tap.Attrs().MTU); err != nil {
			return err
		}
		if err := t.reconcileRoot(ifb, b); err != nil {
			return fmt.Errorf("on %s: %w", name, err)
		}
	}
	if err := t.reconcileFilters(tap, ifb); err != nil {
		return err
	}
	if b == nil {
		return t.deleteIFB(tap.Attrs().Name)
	}
	return nil
}

// ensureIFB returns the IFB device, made (up, with the tap's MTU) if
// missing.
func (t *Table) ensureIFB(name string, mtu int) (netlink.Link, error) {
	l, err := t.nl.LinkByName(name)
	if err == nil {
		if _, ok := l.(*netlink.Ifb); !ok {
			return nil, fmt.Errorf("%s exists and is not an IFB device; not touching it", name)
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			if err := t.nl.LinkSetUp(l); err != nil {
				return nil, fmt.Errorf("setting %s up: %w", name, err)
			}
		}
		return l, nil
	}
	if !notFound(err) {
		return nil, fmt.Errorf("looking up %s: %w", name, err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = name, mtu
	if err := t.nl.LinkAdd(&netlink.Ifb{LinkAttrs: attrs}); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("adding %s: %w", name, err)
	}
	if l, err = t.nl.LinkByName(name); err != nil {
		return nil, fmt.Errorf("looking up %s: %w", name, err)
	}
	if err := t.nl.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("setting %s up: %w", name, err)
	}
	return l, nil
}

// reconcileFilters leaves, on the tap's ingress qdisc, exactly one of our
// redirects, to ifb (nil: none), and the qdisc only while a filter is on
// it. Filters that do not redirect to a bwcali device are not ours and
// stay.
func (t *Table) reconcileFilters(tap, ifb netlink.Link) error {
	qs, err := t.nl.QdiscList(tap)
	if err != nil {
		return fmt.Errorf("listing qdiscs: %w", err)
	}
	var ingress *netlink.Ingress
	for _, q := range qs {
		if in, ok := q.(*netlink.Ingress); ok {
			ingress = in
		}
	}
	if ingress == nil && ifb == nil {
		return nil
	}
	if ingress == nil {
		ingress = &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: tap.Attrs().Index, Handle: ingressHandle, Parent: netlink.HANDLE_INGRESS}}
		if err := t.nl.QdiscReplace(ingress); err != nil {
			return fmt.Errorf("adding the ingress qdisc: %w", err)
		}
	}
	filters, err := t.nl.FilterList(tap, netlink.HANDLE_INGRESS)
	if err != nil {
		return fmt.Errorf("listing ingress filters: %w", err)
	}
	have, others := false, 0
	for _, f := range filters {
		target, ours := t.redirectTarget(f)
		switch {
		case !ours:
			others++
		case ifb != nil && target == ifb.Attrs().Index && !have:
			have = true
		default:
			if err := t.nl.FilterDel(f); err != nil && !notFound(err) && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("deleting a stale redirect: %w", err)
			}
		}
	}
	if ifb != nil && !have {
		f := &netlink.U32{
			FilterAttrs: netlink.FilterAttrs{LinkIndex: tap.Attrs().Index, Parent: ingressHandle, Priority: 1, Protocol: unix.ETH_P_ALL},
			ClassId:     netlink.MakeHandle(1, 1),
			Actions:     []netlink.Action{netlink.NewMirredAction(ifb.Attrs().Index)},
		}
		if err := t.nl.FilterAdd(f); err != nil {
			return fmt.Errorf("adding the redirect to %s: %w", ifb.Attrs().Name, err)
		}
		return nil
	}
	if ifb == nil && others == 0 {
		if err := t.nl.QdiscDel(ingress); err != nil && !notFound(err) && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("deleting the ingress qdisc: %w", err)
		}
	}
	return nil
}

// redirectTarget reports whether a filter is one of ours (a u32 whose
// actions redirect to a bwcali device, or to a device that no longer
// exists: a stale one of ours) and the ifindex it redirects to.
func (t *Table) redirectTarget(f netlink.Filter) (int, bool) {
	u, ok := f.(*netlink.U32)
	if !ok {
		return 0, false
	}
	for _, a := range u.Actions {
		m, ok := a.(*netlink.MirredAction)
		if !ok {
			continue
		}
		name, err := t.linkName(m.Ifindex)
		if err != nil {
			return m.Ifindex, errors.Is(err, errGone)
		}
		return m.Ifindex, strings.HasPrefix(name, IFBPrefix)
	}
	return 0, false
}

var errGone = errors.New("no such interface")

func (t *Table) linkName(idx int) (string, error) {
	links, err := t.nl.LinkList()
	if err != nil {
		return "", err
	}
	for _, l := range links {
		if l.Attrs().Index == idx {
			return l.Attrs().Name, nil
		}
	}
	return "", errGone
}

// deleteIFB deletes a tap's IFB device if it exists.
func (t *Table) deleteIFB(iface string) error {
	name := IFBName(iface)
	l, err := t.nl.LinkByName(name)
	if notFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up %s: %w", name, err)
	}
	if _, ok := l.(*netlink.Ifb); !ok {
		return nil // not ours
	}
	if err := t.nl.LinkDel(l); err != nil && !notFound(err) {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

// sweep deletes the IFB devices with our prefix that no desired
// interface needs (left by an endpoint that went while the agent was
// down, or by Felix).
func (t *Table) sweep() error {
	links, err := t.nl.LinkList()
	if err != nil {
		return fmt.Errorf("listing links: %w", err)
	}
	need := map[string]bool{}
	for iface, q := range t.desired {
		if q != nil && q.Egress.Bandwidth != 0 {
			need[IFBName(iface)] = true
		}
	}
	var errs []error
	for _, l := range links {
		name := l.Attrs().Name
		if _, ifb := l.(*netlink.Ifb); !ifb || !strings.HasPrefix(name, IFBPrefix) || need[name] {
			continue
		}
		t.log.Info("deleting a stale bandwidth device", "iface", name)
		if err := t.nl.LinkDel(l); err != nil && !notFound(err) {
			errs = append(errs, fmt.Errorf("deleting %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
