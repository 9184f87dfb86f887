package conntrack

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ocelot/internal/backoff"
)

// Tuple is a tracked flow's addresses.
type Tuple struct {
	OrigSrc, OrigDst   netip.Addr // as the flow was opened
	ReplySrc, ReplyDst netip.Addr // as the answer comes back (after NAT)
}

// Table is the seam to the kernel's connection tracking: one pass over
// every entry of every family, deleting those match selects.
type Table interface {
	Forget(ctx context.Context, match func(Tuple) bool) (deleted int, err error)
}

// Batch is a set of flows to forget.
type Batch struct {
	All     map[netip.Addr]struct{}       // every flow of these addresses
	Pairs   map[netip.Addr][]netip.Prefix // flows between an address and these networks
	Through map[netip.Addr]struct{}       // flows translated at these addresses (floating IPs)
}

// NewBatch returns an empty batch.
func NewBatch() *Batch {
	return &Batch{All: map[netip.Addr]struct{}{}, Pairs: map[netip.Addr][]netip.Prefix{}, Through: map[netip.Addr]struct{}{}}
}

// ForgetThrough selects the flows addressed to a NAT address (a floating
// IP: the original destination) or translated to it (a VM reaching its
// own floating IP: the reply destination).
func (b *Batch) ForgetThrough(a netip.Addr) { b.Through[a.Unmap()] = struct{}{} }

// ForgetAll selects every flow of an address.
func (b *Batch) ForgetAll(a netip.Addr) {
	a = a.Unmap()
	b.All[a] = struct{}{}
	delete(b.Pairs, a)
}

// ForgetBetween selects the flows between an address and a network of
// the same family.
func (b *Batch) ForgetBetween(a netip.Addr, n netip.Prefix) {
	a, n = a.Unmap(), n.Masked()
	if _, all := b.All[a]; all || a.Is4() != n.Addr().Is4() {
		return
	}
	for _, have := range b.Pairs[a] {
		if have == n {
			return
		}
	}
	b.Pairs[a] = append(b.Pairs[a], n)
}

// Size counts the addresses and pairs selected.
func (b *Batch) Size() int {
	n := len(b.All) + len(b.Through)
	for _, ps := range b.Pairs {
		n += len(ps)
	}
	return n
}

// merge adds o's selections to b.
func (b *Batch) merge(o *Batch) {
	for a := range o.All {
		b.ForgetAll(a)
	}
	for a, ps := range o.Pairs {
		for _, p := range ps {
			b.ForgetBetween(a, p)
		}
	}
	for a := range o.Through {
		b.ForgetThrough(a)
	}
}

// coarsen bounds a batch's size: past limit, the pairs of an address
// become every flow of it. That forgets more than needed, never less: a
// flow still allowed is picked up again as new.
func (b *Batch) coarsen(limit int) {
	if b.Size() <= limit {
		return
	}
	for a := range b.Pairs {
		b.ForgetAll(a)
	}
}

// Match reports whether a flow is selected.
func (b *Batch) Match(t Tuple) bool {
	if _, ok := b.All[t.OrigSrc]; ok {
		return true
	}
	if _, ok := b.All[t.ReplySrc]; ok {
		return true
	}
	if len(b.Through) > 0 {
		if _, ok := b.Through[t.OrigDst]; ok && t.OrigDst != t.ReplySrc {
			return true
		}
		if _, ok := b.Through[t.ReplyDst]; ok && t.ReplyDst != t.OrigSrc {
			return true
		}
	}
	return between(b.Pairs[t.OrigSrc], t.ReplySrc) || between(b.Pairs[t.ReplySrc], t.OrigSrc)
}

func between(nets []netip.Prefix, a netip.Addr) bool {
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// Window is how long a Forgetter collects requests before a pass: a
// connection outlives the rule that allowed it by at most this, plus the
// pass.
const Window = 500 * time.Millisecond

// maxPending bounds the pairs a batch holds (coarsen).
const maxPending = 100_000

// Forgetter deletes batches of flows off the caller's path: Add merges a
// batch into the pending one and returns; a goroutine (Run) makes one
// pass per window.
type Forgetter struct {
	table   Table
	window  time.Duration
	log     *slog.Logger
	metrics *Metrics

	mu      sync.Mutex
	pending *Batch
	wake    chan struct{}

	// The record of workloads' peers (nil: none), used on Run's goroutine
	// only: recorded once it was rebuilt and found complete.
	peers    Peers
	recorded bool
	rebuilt  time.Time
	warned   bool // that the record cannot be used, since it last could
}

// UsePeers makes the forgetter skip the passes the kernel's record of
// workloads' peers shows are not needed. Call it before Run, which
// rebuilds the record first and then every RebuildEvery.
func (f *Forgetter) UsePeers(p Peers) { f.peers = p }

// NewForgetter returns a forgetter that deletes from table, one pass per
// window (0: Window). metrics may be nil (not registered).
func NewForgetter(table Table, window time.Duration, log *slog.Logger, metrics *Metrics) *Forgetter {
	if window <= 0 {
		window = Window
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return &Forgetter{table: table, window: window, log: log, metrics: metrics, wake: make(chan struct{}, 1)}
}

// Add queues a batch for the next pass. It never waits for the kernel.
func (f *Forgetter) Add(b *Batch) {
	if b.Size() == 0 {
		return
	}
	f.mu.Lock()
	if f.pending == nil {
		f.pending = NewBatch()
	}
	f.pending.merge(b)
	f.pending.coarsen(maxPending)
	f.metrics.pending.Set(float64(f.pending.Size()))
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run makes a pass one window after the first request of each batch,
// until ctx ends. A pass that fails keeps its batch for the next one,
// which waits longer each time (up to a minute).
func (f *Forgetter) Run(ctx context.Context) {
	retry := backoff.Backoff{Min: f.window, Max: time.Minute}
	delay := f.window
	var rebuild <-chan time.Time
	if f.peers != nil {
		f.rebuild(ctx)
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		rebuild = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-rebuild:
			// Every RebuildEvery, or every minute while it cannot be used.
			if !f.recorded || time.Since(f.rebuilt) >= RebuildEvery {
				f.rebuild(ctx)
			}
			continue
		case <-f.wake:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		if f.Pass(ctx) != nil {
			delay = retry.Next()
			select {
			case f.wake <- struct{}{}:
			default:
			}
		} else {
			retry.Reset()
			delay = f.window
		}
	}
}

// Pass deletes what is pending now, in one pass over the table. When it
// fails, the batch is kept for the next pass.
func (f *Forgetter) Pass(ctx context.Context) error {
	f.mu.Lock()
	b := f.pending
	f.pending = nil
	f.metrics.pending.Set(0)
	f.mu.Unlock()
	if b == nil || b.Size() == 0 {
		return nil
	}
	if f.unneeded(ctx, b) {
		f.metrics.skipped.Inc()
		return nil
	}
	start := time.Now()
	n, err := f.table.Forget(ctx, b.Match)
	f.metrics.passes.Inc()
	f.metrics.passTime.Observe(time.Since(start).Seconds())
	f.metrics.deleted.Add(float64(n))
	if err != nil {
		f.log.Warn("forgetting conntrack entries failed; keeping them for the next pass", "err", err, "deleted", n)
		f.Add(b)
		return err
	}
	if n > 0 {
		f.log.Debug("forgot conntrack entries of flows no rule allows any more", "entries", n, "took", time.Since(start))
	}
	return nil
}

// Metrics are the forgetter's instruments.
type Metrics struct {
	pending  prometheus.Gauge
	deleted  prometheus.Counter
	passes   prometheus.Counter
	skipped  prometheus.Counter
	recorded prometheus.Gauge
	passTime prometheus.Summary
}

// NewMetrics creates the instruments and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ocelot_conntrack_pending_deletions",
			Help: "Addresses and address pairs whose conntrack entries wait for the next pass."}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocelot_conntrack_entries_forgotten_total",
			Help: "Conntrack entries deleted because a rule that allowed their flow changed or went away."}),
		passes: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocelot_conntrack_passes_total",
			Help: "Passes over the conntrack table, each deleting the entries of a batch of changes."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocelot_conntrack_passes_skipped_total",
			Help: "Passes not made: the kernel's record of workloads' peers showed no selected flow could exist."}),
		recorded: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ocelot_conntrack_peer_record_usable",
			Help: "1 while the kernel's record of workloads' peers is complete and used to skip passes."}),
		passTime: prometheus.NewSummary(prometheus.SummaryOpts{Name: "ocelot_conntrack_pass_seconds",
			Help: "Time of one pass over the conntrack table.", Objectives: map[float64]float64{0.5: 0.05, 0.99: 0.001}}),
	}
	if reg != nil {
		reg.MustRegister(m.pending, m.deleted, m.passes, m.skipped, m.recorded, m.passTime)
	}
	return m
}
