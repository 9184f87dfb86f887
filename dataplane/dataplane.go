// Package dataplane owns the kernel. It receives the calc messages and
// makes this host enforce them: IP sets, iptables chains in four tables
// for IPv4 and IPv6, per-endpoint routes and neighbour entries, per-tap
// sysctls, and conntrack cleanup when something that allowed a flow goes.
//
// Managers (state.go, iface.go) turn messages into desired kernel state
// cheaply; drivers (iptables, ipsets, routing) bring the kernel in line.
// One goroutine (Run) owns that state: it collects messages and applies in
// the safe order — per family (IPv4 and IPv6 concurrently) sets first,
// then every table in one restore, set deletions last; then routes and
// sysctls. Whatever arrives during an apply goes into the next one. It
// re-reads the kernel periodically to repair drift and writes nothing
// before calc has sent InSync (reading ahead meanwhile). A worker deletes
// stale conntrack entries once the rules that made them stale are in.
//
// Never flush on start or exit: the first apply takes over what it
// recognises (Felix's chains and sets included) and sweeps only that.
package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"ocelot/contract"
	"ocelot/dataplane/ifacemon"
	"ocelot/dataplane/ipsets"
	ipt "ocelot/dataplane/iptables"
	"ocelot/dataplane/routing"
	"ocelot/dataplane/rules"
)

// Config configures the dataplane.
type Config struct {
	Rules        rules.Config // rendering; Family and SetName are filled in per family
	IPv6         bool
	Backend      string // auto, legacy or nft
	InsertMode   bool   // ChainInsertMode=insert
	LockProbe    time.Duration
	MaxIpsetSize int

	IptablesRefresh  time.Duration // full re-read of iptables (0: never)
	PostWriteCheck   time.Duration // first re-read after a write
	IpsetsRefresh    time.Duration
	RouteRefresh     time.Duration
	InterfaceRefresh time.Duration

	RouteProtocol        int
	RemoveExternalRoutes bool
	IPForwarding         bool
	FloatingIPs          bool // FloatingIPs=Enabled; OpenStack endpoints always get theirs

	// MinApplyInterval spaces applies under sustained change; a burst that
	// arrives within it costs one apply. Zero applies at once: changes
	// that arrive while an apply runs are still batched into the next.
	MinApplyInterval time.Duration

	Log *slog.Logger
	// OnStatus receives endpoint status changes: "up", "down", or "" when
	// the endpoint is gone. Called from the dataplane goroutine.
	OnStatus func(id contract.EndpointID, status string)
	// OnInSync is called once, after the first complete apply.
	OnInSync func()
}

// family is the kernel state of one IP family.
type family struct {
	v      int
	rules  *rules.Config
	tables []*ipt.Table // raw, mangle, nat, filter
	filter *ipt.Table
	nat    *ipt.Table
	raw    *ipt.Table
	sets   *ipsets.IPSets
}

// Dataplane applies calc messages to the kernel.
type Dataplane struct {
	cfg      Config
	log      *slog.Logger
	families []*family
	routes   *routing.Table
	msgs     chan []contract.Message
	// conntrackJobs feeds the conntrack worker while Run runs.
	conntrackJobs chan<- map[netlink.InetFamily][]netlink.CustomConntrackFilter

	st state

	mu        sync.Mutex // guards the fields below
	healthy   bool
	lastErr   error
	applied   time.Time
	loopAlive time.Time
	inSync    bool
}

// HealthState is the dataplane's health for the agent's reporters.
type HealthState struct {
	InSync    bool      // the first complete apply is done
	Healthy   bool      // the last apply succeeded
	LastApply time.Time // when an apply last succeeded
	LoopAlive time.Time // when the main loop last ran
	Err       error     // the last apply's error
}

// New prepares the dataplane: it chooses the iptables backend and builds
// the drivers. It touches nothing until Run's first apply.
func New(cfg Config) (*Dataplane, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxIpsetSize == 0 {
		cfg.MaxIpsetSize = 1048576
	}
	backend := ipt.DetectBackend(cfg.Backend, cfg.Log)
	d := &Dataplane{cfg: cfg, log: cfg.Log, msgs: make(chan []contract.Message, 256),
		routes: routing.New(cfg.RouteProtocol, cfg.RemoveExternalRoutes, cfg.Log)}
	d.st.init()
	fams := []int{4}
	if cfg.IPv6 {
		fams = append(fams, 6)
	}
	for _, v := range fams {
		cmds, err := ipt.CommandsFor(backend, v, cfg.LockProbe)
		if err != nil {
			return nil, fmt.Errorf("IPv%d: %w", v, err)
		}
		sets := ipsets.New(v, cfg.MaxIpsetSize, cfg.Log)
		rc := cfg.Rules
		rc.Family = v
		rc.SetName = sets.Name
		f := &family{v: v, rules: &rc, sets: sets}
		for _, name := range []string{"raw", "mangle", "nat", "filter"} {
			t := ipt.NewTable(name, v, cmds, cfg.InsertMode, cfg.Log)
			f.tables = append(f.tables, t)
			switch name {
			case "filter":
				f.filter = t
			case "nat":
				f.nat = t
			case "raw":
				f.raw = t
			}
		}
		static, hooks := rc.Static()
		for _, t := range f.tables {
			for _, ch := range static[t.Name] {
				t.UpdateChain(ch)
			}
			for kc, rs := range hooks[t.Name].Inserts {
				t.SetInserts(kc, rs)
			}
			for kc, rs := range hooks[t.Name].Appends {
				t.SetAppends(kc, rs)
			}
		}
		for _, ch := range rc.DispatchChains(nil) {
			f.filter.UpdateChain(ch)
		}
		for _, ch := range rc.FloatingIPChains(nil) {
			f.nat.UpdateChain(ch)
		}
		f.raw.UpdateChain(rc.RPFSkipChain(nil))
		d.families = append(d.families, f)
	}
	d.log.Info("dataplane ready", "iptables_backend", backend, "ipv6", cfg.IPv6)
	return d, nil
}

// Send queues messages from calc. It blocks when the dataplane is far
// behind, which pushes back on calc.
func (d *Dataplane) Send(msgs []contract.Message) {
	if len(msgs) > 0 {
		d.msgs <- msgs
	}
}

// Health reports the dataplane's state.
func (d *Dataplane) Health() HealthState {
	d.mu.Lock()
	defer d.mu.Unlock()
	return HealthState{InSync: d.inSync, Healthy: d.healthy, LastApply: d.applied, LoopAlive: d.loopAlive, Err: d.lastErr}
}

// Run applies messages until ctx ends. It leaves the kernel as it is when
// it returns.
func (d *Dataplane) Run(ctx context.Context) error {
	d.configureKernel()
	d.startConntrackWorker(ctx)
	d.readAhead(ctx)
	ifaceEvents := make(chan ifacemon.Event, 64)
	mon := &ifacemon.Monitor{Prefixes: d.cfg.Rules.Prefixes, Resync: d.cfg.InterfaceRefresh, Log: d.log}
	go mon.Run(ctx, ifaceEvents)

	timers := newTimers(d.cfg)
	defer timers.stop()
	var retry backoff
	lastApply := time.Time{}
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	alive := time.NewTicker(2 * time.Second)
	defer alive.Stop()
	for {
		d.mu.Lock()
		d.loopAlive = time.Now()
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-alive.C:
		case batch := <-d.msgs:
			d.onMessages(batch)
			d.drain(ifaceEvents)
		case ev := <-ifaceEvents:
			d.onIfaces(ev)
			d.drain(ifaceEvents)
		case <-timers.iptables.C:
			d.invalidateTables()
			timers.iptables.Reset(d.cfg.IptablesRefresh)
		case <-timers.postWrite.C:
			d.invalidateTables()
			timers.nextPostWrite()
		case <-timers.ipsets.C:
			for _, f := range d.families {
				f.sets.Resync()
			}
			timers.ipsets.Reset(d.cfg.IpsetsRefresh)
		case <-timers.routes.C:
			d.routes.Resync()
			timers.routes.Reset(d.cfg.RouteRefresh)
		case <-wake.C:
		}
		if !d.st.calcInSync || !d.st.ifacesSynced || !d.dirty() {
			continue
		}
		if wait := time.Until(lastApply.Add(d.cfg.MinApplyInterval)); wait > 0 {
			wake.Reset(wait) // coalesce: apply once the interval has passed
			continue
		}
		if wait := retry.until(); wait > 0 {
			wake.Reset(wait)
			continue
		}
		wrote, err := d.apply(ctx)
		lastApply = time.Now()
		if wrote {
			timers.wrote()
		}
		if err != nil {
			applyFailures.Inc()
			d.log.Warn("dataplane apply failed; will retry", "err", err, "retry_in", retry.next())
			wake.Reset(retry.until())
		} else {
			retry.reset()
		}
	}
}

// drain takes whatever else is queued, so that a burst becomes one apply.
func (d *Dataplane) drain(ifaceEvents chan ifacemon.Event) {
	for {
		select {
		case batch := <-d.msgs:
			d.onMessages(batch)
		case ev := <-ifaceEvents:
			d.onIfaces(ev)
		default:
			return
		}
	}
}

func (d *Dataplane) invalidateTables() {
	for _, f := range d.families {
		for _, t := range f.tables {
			t.Invalidate()
		}
	}
}

func (d *Dataplane) dirty() bool {
	if d.st.needsApply || d.routes.Dirty() || d.st.statusDirty || len(d.st.flushIPs) > 0 || len(d.st.sysctlPending) > 0 {
		return true
	}
	for _, f := range d.families {
		if f.sets.Dirty() {
			return true
		}
		for _, t := range f.tables {
			if t.Dirty() {
				return true
			}
		}
	}
	return false
}

// apply brings the kernel in line, in the safe order: IP sets created and
// filled; tables written; stale sets destroyed; routes, sysctls and
// conntrack cleanup; then statuses.
func (d *Dataplane) apply(ctx context.Context) (wrote bool, err error) {
	start := time.Now()
	first := !d.st.appliedOnce
	d.st.render(d)
	// Families are independent (v4 rules use v4 sets only), so they apply
	// concurrently; each runs its own set, table and deletion steps.
	famErrs := make([][]error, len(d.families))
	famWrote := make([]bool, len(d.families))
	var wg sync.WaitGroup
	for i, f := range d.families {
		wg.Add(1)
		go func() {
			defer wg.Done()
			famWrote[i], famErrs[i] = d.applyFamily(ctx, f)
		}()
	}
	wg.Wait()
	var errs []error
	for i := range d.families {
		errs = append(errs, famErrs[i]...)
		wrote = wrote || famWrote[i]
	}
	d.configureInterfaces()
	for iface, err := range d.routes.Apply() {
		errs = append(errs, fmt.Errorf("routes of %s: %w", iface, err))
	}
	routesGauge.Set(float64(d.routes.NumRoutes()))
	if len(errs) == 0 {
		d.flushConntrack()
	}
	d.st.needsApply = len(errs) > 0
	d.reportStatuses()

	elapsed := time.Since(start)
	d.mu.Lock()
	d.healthy = len(errs) == 0
	if len(errs) > 0 {
		d.lastErr = fmt.Errorf("%d errors, first: %w", len(errs), errs[0])
	} else {
		d.lastErr = nil
		d.applied = time.Now()
	}
	d.mu.Unlock()
	if len(errs) > 0 {
		return wrote, d.lastErr
	}
	if first {
		d.st.appliedOnce = true
		d.mu.Lock()
		d.inSync = true
		d.mu.Unlock()
		initialResync.Set(elapsed.Seconds())
		d.log.Info("dataplane in sync", "took", elapsed)
		if d.cfg.OnInSync != nil {
			d.cfg.OnInSync()
		}
	} else {
		applyTime.Observe(elapsed.Seconds())
	}
	return wrote, nil
}

// readAhead reads the kernel's IP sets and tables of every family while
// the datastore is still being listed, so that the first apply only
// writes. Failures are left for the apply to meet again.
func (d *Dataplane) readAhead(ctx context.Context) {
	var wg sync.WaitGroup
	for _, f := range d.families {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.sets.Read(ctx); err != nil {
				d.log.Debug("reading IP sets ahead failed", "ip_version", f.v, "err", err)
			}
			if err := ipt.ReadTables(ctx, f.tables...); err != nil {
				d.log.Debug("reading iptables ahead failed", "ip_version", f.v, "err", err)
			}
		}()
	}
	wg.Wait()
}

// applyFamily brings one family's IP sets and tables in line: sets created
// and filled; then all tables in one restore (rules may refer to sets that
// failed to appear, so not after a set failure); then stale sets destroyed.
func (d *Dataplane) applyFamily(ctx context.Context, f *family) (wrote bool, errs []error) {
	if err := f.sets.ApplyUpdates(ctx); err != nil {
		return false, []error{err}
	}
	before := 0
	for _, t := range f.tables {
		before += t.LinesWritten
	}
	err := ipt.ApplyTables(ctx, f.tables...)
	for _, t := range f.tables {
		before -= t.LinesWritten
		ipt.Chains.WithLabelValues(fmt.Sprint(f.v), t.Name).Set(float64(t.NumChains()))
		ipt.Rules.WithLabelValues(fmt.Sprint(f.v), t.Name).Set(float64(t.NumRules()))
	}
	if err != nil {
		return before != 0, []error{err}
	}
	if err := f.sets.ApplyDeletions(ctx); err != nil {
		d.log.Debug("IP set deletion deferred", "err", err)
	}
	ipsets.Calico.WithLabelValues(map[int]string{4: "inet", 6: "inet6"}[f.v]).Set(float64(f.sets.NumSets()))
	return before != 0, nil
}

// timers drive the periodic re-reads.
type timers struct {
	iptables, postWrite, ipsets, routes *time.Timer
	postWriteBase, postWriteNext, max   time.Duration
}

func newTimers(cfg Config) *timers {
	mk := func(d time.Duration) *time.Timer {
		if d <= 0 {
			d = 1000 * time.Hour
		}
		return time.NewTimer(d)
	}
	t := &timers{iptables: mk(cfg.IptablesRefresh), postWrite: mk(0), ipsets: mk(cfg.IpsetsRefresh), routes: mk(cfg.RouteRefresh),
		postWriteBase: max(cfg.PostWriteCheck, 50*time.Millisecond), max: max(cfg.IptablesRefresh, time.Hour)}
	return t
}

// wrote schedules re-reads after a write: at PostWriteCheck, then at
// doubling intervals, to catch another tool's read-modify-write.
func (t *timers) wrote() {
	t.postWriteNext = t.postWriteBase
	t.postWrite.Reset(t.postWriteNext)
}

func (t *timers) nextPostWrite() {
	t.postWriteNext *= 2
	if t.postWriteNext <= t.max {
		t.postWrite.Reset(t.postWriteNext)
	}
}

func (t *timers) stop() {
	for _, x := range []*time.Timer{t.iptables, t.postWrite, t.ipsets, t.routes} {
		x.Stop()
	}
}

// backoff spaces retries after failed applies: 100ms doubling to 10s.
type backoff struct {
	n    int
	when time.Time
}

func (b *backoff) next() time.Duration {
	d := 100 * time.Millisecond << min(b.n, 7)
	b.n++
	d = min(d, 10*time.Second)
	b.when = time.Now().Add(d)
	return d
}

func (b *backoff) until() time.Duration { return time.Until(b.when) }

func (b *backoff) reset() { b.n, b.when = 0, time.Time{} }
