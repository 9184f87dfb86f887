package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ocelot/contract"
	"ocelot/dataplane/conntrack"
	"ocelot/dataplane/droplog"
	"ocelot/dataplane/hostaddrs"
	"ocelot/dataplane/ifacemon"
	"ocelot/dataplane/ipsets"
	ipt "ocelot/dataplane/iptables"
	"ocelot/dataplane/livemigration"
	nft "ocelot/dataplane/nftables"
	"ocelot/dataplane/qos"
	"ocelot/dataplane/routing"
	"ocelot/internal/backoff"
)

// Dataplane applies calc messages to the kernel. It owns the managers,
// each the only owner of its state, and the one goroutine (Run) that
// drives them: messages go to the managers, which change desired state in
// the drivers cheaply; applies bring the kernel in line in the safe order.
type Dataplane struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	// msgCounters holds felix_int_dataplane_messages by message type.
	msgCounters map[reflect.Type]prometheus.Counter
	kernel      kernel
	families    []*family
	msgs        chan []contract.Message

	explainReqs chan explainRequest
	counters    *counterCollector
	dropLog     *droplog.Reader // nil unless DropActionOverride logs

	endpoints *endpointManager
	hostEPs   *hostEndpointManager
	policies  *policyManager
	ipsets    *ipsetManager
	routes    *routeManager
	conntrack *conntrackManager
	workloads workloadIfaces // which interfaces are ours to touch
	obs       *observer      // what the drop log and the counters read, from other goroutines

	migrations *livemigration.Monitor // live migrations' states; they set the routes' modes
	bandwidth  *qos.Table             // endpoints' bandwidth limits (traffic control)

	calcInSync    bool // calc sent InSync: the state is complete
	appliedOnce   bool
	retryApply    bool // the last apply failed somewhere
	refused       bool // the kernel refused changes that are held back
	retirePending bool // the other backend's state is still to be removed

	mu     sync.Mutex // guards health
	health HealthState
}

// HealthState is the dataplane's health for the agent's reporters.
type HealthState struct {
	InSync    bool      // the first complete apply is done
	Healthy   bool      // the last apply succeeded
	LastApply time.Time // when an apply last succeeded
	LoopAlive time.Time // when the main loop last ran
	Err       error     // the last apply's error
	// Degraded names what the kernel refused and what is in force
	// instead, when everything else is applied ("" when nothing is held
	// back). It does not make the dataplane unhealthy: the rest converges.
	Degraded string
}

// New prepares the dataplane on this host's kernel: it chooses the
// iptables backend, builds the managers and drivers, and registers its
// metrics on reg (nil: not registered). It touches nothing until Run's
// first apply.
func New(cfg Config, reg prometheus.Registerer) (*Dataplane, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Rules.OpenStack && cfg.Rules.MetadataAddr != "" {
		if _, err := netip.ParseAddr(cfg.Rules.MetadataAddr); err != nil {
			cfg.Log.Warn("MetadataAddr is not an IP address; like Felix, Ocelot programs metadata rules only for an IP address",
				"MetadataAddr", cfg.Rules.MetadataAddr)
		}
	}
	k, iptBackend, err := realKernel(cfg, cfg.Log)
	if err != nil {
		return nil, err
	}
	d, err := newDataplane(cfg, reg, k)
	if err != nil {
		return nil, err
	}
	if d.cfg.nftables {
		d.log.Info("dataplane ready", "backend", BackendNftables, "NFTablesMode", cfg.NFTablesMode, "ipv6", cfg.IPv6)
	} else {
		d.log.Info("dataplane ready", "backend", BackendIptables, "iptables_backend", iptBackend(), "NFTablesMode", cfg.NFTablesMode, "ipv6", cfg.IPv6)
	}
	return d, nil
}

// Backend reports the backend in use: BackendIptables or BackendNftables.
func (d *Dataplane) Backend() string {
	if d.cfg.nftables {
		return BackendNftables
	}
	return BackendIptables
}

// useNftables resolves NFTablesMode. Auto follows what the host has: a
// calico nftables table (Felix's nftables mode, or Ocelot's) means
// nftables, so that a restart or a takeover keeps the backend in force;
// anything else, iptables.
func useNftables(mode string, k kernel, ipv6 bool, log *slog.Logger) bool {
	switch mode {
	case "Enabled":
		return true
	case "Disabled":
		return false
	}
	if k.nft == nil {
		return false
	}
	for _, v := range []int{4, 6} {
		if v == 6 && !ipv6 {
			continue
		}
		ok, err := k.nft.Exists(v, nft.TableName)
		if err != nil {
			log.Info("NFTablesMode=Auto: cannot look for an nftables table; using iptables", "err", err)
			return false
		}
		if ok {
			log.Info("NFTablesMode=Auto: the host has a calico nftables table; using nftables", "ip_version", v)
			return true
		}
	}
	return false
}

// newDataplane builds the dataplane on any kernel (unit tests give a fake).
func newDataplane(cfg Config, reg prometheus.Registerer, k kernel) (*Dataplane, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxIpsetSize == 0 {
		cfg.MaxIpsetSize = 1048576
	}
	cfg.nftables = useNftables(cfg.NFTablesMode, k, cfg.IPv6, cfg.Log)
	if cfg.nftables {
		cfg.Rules = cfg.NFTRules
	}
	if err := cfg.Rules.Validate(); err != nil {
		return nil, fmt.Errorf("rule configuration: %w", err)
	}
	d := &Dataplane{cfg: cfg, log: cfg.Log, metrics: newMetrics(reg), msgCounters: map[reflect.Type]prometheus.Counter{}, kernel: k, msgs: make(chan []contract.Message, 256),
		explainReqs: make(chan explainRequest), retirePending: true}
	drivers := &driverMetrics{ipt: ipt.NewMetrics(reg), ipsets: ipsets.NewMetrics(reg), nft: nft.NewMetrics(reg)}
	for _, v := range []int{4, 6} {
		if v == 6 && !cfg.IPv6 {
			continue
		}
		f, err := newFamily(v, cfg, k, d.log, drivers, d.describeChain)
		if err != nil {
			return nil, err
		}
		d.families = append(d.families, f)
	}
	d.conntrack = newConntrackManager(k.conntrack, k.peers, cfg.ConntrackWindow, d.log, conntrack.NewMetrics(reg))
	d.workloads = workloadIfaces{prefixes: cfg.Rules.Prefixes, exclude: cfg.InterfaceExclude}
	d.routes = newRouteManager(k, cfg, d.workloads, d.metrics, d.log)
	d.obs = newObserver()
	d.policies = newPolicyManager(d.families, d.conntrack, d.obs)
	d.ipsets = newIPSetManager(d.families, d.policies, d.conntrack, d.log)
	d.endpoints = newEndpointManager(d.families, d.policies, d.routes, d.conntrack, d.obs, cfg, d.workloads, d.metrics, d.log)
	d.bandwidth = qos.New(k.tc, k.tick, d.log)
	d.endpoints.bandwidth = d.bandwidth
	d.routes.SetPriorities(cfg.RoutePriorities)
	d.migrations = livemigration.New(livemigration.Options{Convergence: cfg.LiveMigrationConvergence,
		Listen: k.listenPacket, Clock: k.clock, Log: d.log, OnState: d.onMigrationState})
	d.counters = newCounterCollector(d.obs, d.families, d.log)
	dm := droplog.NewMetrics(reg)
	if reg != nil {
		reg.MustRegister(d.counters)
	}
	if dl := cfg.DropLog; dl.Enabled && k.nflog != nil {
		size := uint32(dropLogSize)
		if cfg.Rules.DropLog != nil {
			size = cfg.Rules.DropLog.Size
		}
		d.dropLog = &droplog.Reader{Open: func() (droplog.Source, error) { return k.nflog(dl.Group, size) }, Resolve: d.obs, IfName: k.ifName,
			Rate: dl.Rate, Burst: dl.Burst, Accept: cfg.Rules.DropAccept, Log: d.log.With("component", "drop-log"), Metrics: dm}
	}
	d.hostEPs = newHostEndpointManager(d.families, d.policies, d.obs, cfg, d.log)
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
	return d.health
}

// Run applies messages until ctx ends. It leaves the kernel as it is when
// it returns.
func (d *Dataplane) Run(ctx context.Context) error {
	d.routes.ConfigureHost(d.cfg.IPForwarding)
	d.conntrack.Start(ctx)
	if d.dropLog != nil {
		go d.dropLog.Run(ctx)
	}
	d.readAhead(ctx)
	ifaceEvents := make(chan ifacemon.Event, 64)
	go d.kernel.watchIfaces(ctx, ifaceEvents)
	defer d.migrations.Close()
	hostIfaceEvents := make(chan ifacemon.Event, 64)
	go d.kernel.watchHostIfaces(ctx, hostIfaceEvents)
	hostEvents := make(chan hostaddrs.Snapshot, 4)
	go d.kernel.watchHost(ctx, hostEvents)
	etcdAddrs := make(chan []netip.Addr, 1)
	go func() { etcdAddrs <- resolveEtcd(ctx, d.cfg.EtcdEndpoints, d.log) }()

	timers := newTimers(d.cfg)
	if d.cfg.nftables {
		// One re-read of the table covers sets too; no re-reads after
		// writes: a transaction rewrites nothing of anyone else's, so no
		// other tool's read-modify-write can undo it as with
		// iptables-restore.
		timers.iptables.Reset(orNever(d.cfg.NftablesRefresh))
		timers.ipsets.Reset(never)
		timers.postWriteBase = 0
	}
	defer timers.stop()
	retry := backoff.Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second}
	// What the kernel refused is tried again on its own back-off: a
	// refusal costs a few restores each time, and may be lasting.
	retryRefused := backoff.Backoff{Min: 2 * time.Second, Max: time.Minute, Jitter: 0.2}
	refusedTimer := time.NewTimer(never)
	defer refusedTimer.Stop()
	refusedArmed := false
	var retryAt, lastApply time.Time
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	alive := time.NewTicker(2 * time.Second)
	defer alive.Stop()
	for {
		d.mu.Lock()
		d.health.LoopAlive = time.Now()
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-alive.C:
		case r := <-d.explainReqs:
			d.serveExplain(r)
		case batch := <-d.msgs:
			d.onMessages(batch)
			d.drain(ifaceEvents, hostIfaceEvents)
		case ev := <-ifaceEvents:
			d.onIfaces(ev)
			d.drain(ifaceEvents, hostIfaceEvents)
		case ev := <-d.migrations.Events():
			d.migrations.Handle(ev)
		case ev := <-hostIfaceEvents:
			d.hostEPs.OnIfaces(ev)
			d.drain(ifaceEvents, hostIfaceEvents)
		case s := <-hostEvents:
			d.onHost(s)
		case addrs := <-etcdAddrs:
			if d.routes.OnEtcd(addrs) {
				d.endpoints.natDirty = true
			}
		case <-timers.iptables.C:
			d.invalidateTables()
			timers.iptables.Reset(orNever(d.refreshInterval()))
		case <-timers.postWrite.C:
			d.invalidateTables()
			timers.nextPostWrite()
		case <-timers.ipsets.C:
			for _, f := range d.families {
				f.sets.Resync()
			}
			timers.ipsets.Reset(orNever(d.cfg.IpsetsRefresh))
		case <-timers.routes.C:
			d.routes.Resync()
			d.bandwidth.Resync()
			timers.routes.Reset(d.cfg.RouteRefresh)
		case <-refusedTimer.C:
			refusedArmed = false
			for _, f := range d.families {
				f.tables.RetryQuarantined()
			}
		case <-wake.C:
		}
		if !d.calcInSync || !d.routes.Synced() || !d.hostEPs.synced || !d.dirty() {
			continue
		}
		if wait := time.Until(lastApply.Add(d.cfg.MinApplyInterval)); wait > 0 {
			wake.Reset(wait) // coalesce: apply once the interval has passed
			continue
		}
		if wait := time.Until(retryAt); wait > 0 {
			wake.Reset(wait)
			continue
		}
		wrote, err := d.apply(ctx)
		lastApply = time.Now()
		if wrote {
			timers.wrote()
		}
		if err != nil {
			d.metrics.applyFailures.Inc()
			delay := retry.Next()
			retryAt = time.Now().Add(delay)
			d.log.Warn("dataplane apply failed; will retry", "err", err, "retry_in", delay)
			wake.Reset(delay)
		} else {
			retry.Reset()
			retryAt = time.Time{}
		}
		switch {
		case d.refused && !refusedArmed:
			refusedTimer.Reset(retryRefused.Next())
			refusedArmed = true
		case !d.refused:
			retryRefused.Reset()
		}
	}
}

// drain takes whatever else is queued, so that a burst becomes one apply.
func (d *Dataplane) drain(ifaceEvents, hostIfaceEvents chan ifacemon.Event) {
	for {
		select {
		case batch := <-d.msgs:
			d.onMessages(batch)
		case ev := <-ifaceEvents:
			d.onIfaces(ev)
		case ev := <-hostIfaceEvents:
			d.hostEPs.OnIfaces(ev)
		default:
			return
		}
	}
}

// onMessages hands calc messages to their managers. Cheap: no kernel I/O;
// the drivers do the work at the next apply.
func (d *Dataplane) onMessages(msgs []contract.Message) {
	d.metrics.batchSize.Observe(float64(len(msgs)))
	for _, m := range msgs {
		d.count(m)
		switch x := m.(type) {
		case contract.IPSetUpdate:
			d.ipsets.OnUpdate(&x)
		case contract.IPSetDelta:
			d.ipsets.OnDelta(&x)
		case contract.IPSetRemove:
			d.ipsets.OnRemove(&x)
		case contract.PolicyUpdate:
			d.policies.OnPolicyUpdate(&x)
		case contract.PolicyRemove:
			d.policies.OnPolicyRemove(x.ID)
		case contract.ProfileUpdate:
			d.policies.OnProfileUpdate(&x)
		case contract.ProfileRemove:
			d.policies.OnProfileRemove(x.ID)
		case contract.EndpointUpdate:
			d.endpoints.OnUpdate(&x)
			if d.workloads.Ours(x.Name) {
				d.migrations.OnEndpoint(&x)
			} else {
				d.migrations.OnRemove(x.ID) // never listened on: not a workload interface
			}
		case contract.EndpointRemove:
			d.endpoints.OnRemove(x.ID)
			d.migrations.OnRemove(x.ID)
		case contract.HostEndpointUpdate:
			d.hostEPs.OnUpdate(&x)
		case contract.HostEndpointRemove:
			d.hostEPs.OnRemove(x.ID)
		case contract.InSync:
			d.calcInSync = true
		default:
			// The contract's set of types is closed; reaching here is a bug
			// in this switch, and dropping the message silently could leave
			// a rule in force that calc removed.
			panic(fmt.Sprintf("dataplane: unhandled contract message %T", m))
		}
	}
}

// count counts a message under its type's name, as Felix labels them. The
// counter of each type is looked up once: this runs for every message.
func (d *Dataplane) count(m contract.Message) {
	t := reflect.TypeOf(m)
	c, ok := d.msgCounters[t]
	if !ok {
		c = d.metrics.messages.WithLabelValues(t.Name())
		d.msgCounters[t] = c
	}
	c.Inc()
}

// onIfaces hands interface states to the route manager; endpoint
// statuses follow them.
func (d *Dataplane) onIfaces(ev ifacemon.Event) {
	d.metrics.ifaceBatchSize.Observe(float64(len(ev.States)))
	for _, s := range ev.States {
		if !d.workloads.Ours(s.Name) {
			continue // never listened on, never given qdiscs
		}
		if old, ok := d.routes.states[s.Name]; !s.Gone && (!ok || old.index != s.Index) {
			// A new interface: a migration target waiting for its VM
			// listens on it (a capture is bound to the interface, and
			// outlives a loss of carrier but not the interface), and it
			// has no qdiscs yet.
			d.migrations.OnInterface(s.Name)
			d.bandwidth.Touch(s.Name)
		}
	}
	d.routes.OnIfaces(ev)
	if len(ev.States) > 0 {
		d.endpoints.statusDirty = true
	}
}

// onMigrationState programs an interface's routes as its migration state
// wants: none while the VM is still arriving, at the elevated priority
// from its announcement until the convergence time after the migration.
func (d *Dataplane) onMigrationState(iface string, s livemigration.State) {
	mode := routing.Normal
	switch s {
	case livemigration.Target:
		mode = routing.Suppressed
	case livemigration.Live, livemigration.TimeWait:
		mode = routing.Elevated
	}
	d.routes.SetMode(iface, mode)
}

// onHost hands the host's addresses to the route manager and the host
// endpoint manager; when the addresses endpoints may not have change, the
// floating-IP chains are rendered again.
func (d *Dataplane) onHost(s hostaddrs.Snapshot) {
	if d.routes.OnHost(s) {
		d.endpoints.natDirty = true
	}
	d.hostEPs.OnHostAddrs(s)
}

func (d *Dataplane) invalidateTables() {
	for _, f := range d.families {
		f.tables.Invalidate()
	}
}

func (d *Dataplane) dirty() bool {
	if d.retryApply || d.routes.Dirty() || d.endpoints.Dirty() || d.hostEPs.Dirty() || d.conntrack.Pending() || d.bandwidth.Dirty() {
		return true
	}
	for _, f := range d.families {
		if f.sets.Dirty() || f.tables.Dirty() {
			return true // stale sets alone wait for the next apply
		}
	}
	return false
}

// apply brings the kernel in line, in the safe order: the managers'
// deferred work; per family (IPv4 and IPv6 concurrently) sets created and
// filled, tables written, stale sets destroyed; then sysctls and routes;
// then conntrack cleanup (once the rules that made flows stale are in)
// and statuses.
func (d *Dataplane) apply(ctx context.Context) (wrote bool, err error) {
	start := time.Now()
	first := !d.appliedOnce
	d.ipsets.CompleteDeferredWork()
	d.endpoints.CompleteDeferredWork()
	d.hostEPs.CompleteDeferredWork()
	// Families are independent (v4 rules use v4 sets only): a family with
	// nothing to write is left alone, and two that have apply concurrently,
	// the first on this goroutine (a goroutine started, and woken at its
	// end, costs more than a small apply).
	famErrs := make([]error, len(d.families)) // sets and tables of each family
	famWrote := make([]bool, len(d.families))
	var busy []int
	for i, f := range d.families {
		if f.dirty() {
			busy = append(busy, i)
		}
	}
	var wg sync.WaitGroup
	for n, i := range busy {
		if n > 0 {
			wg.Go(func() { famWrote[i], famErrs[i] = d.families[i].apply(ctx, d.log) })
		}
	}
	if len(busy) > 0 {
		i := busy[0]
		famWrote[i], famErrs[i] = d.families[i].apply(ctx, d.log)
	}
	wg.Wait()
	var errs []error
	for i := range d.families {
		if famErrs[i] != nil {
			errs = append(errs, famErrs[i])
		}
		wrote = wrote || famWrote[i]
	}
	if d.routes.Dirty() {
		d.endpoints.statusDirty = true // sysctls and routes decide readiness
	}
	rulesIn := len(errs) == 0
	errs = append(errs, d.routes.Apply()...)
	for iface, err := range d.bandwidth.Apply() {
		errs = append(errs, fmt.Errorf("bandwidth limits of %s: %w", iface, err))
	}
	d.metrics.routes.Set(float64(d.routes.NumRoutes()))
	if rulesIn {
		// The rules that made the collected flows stale are in place (a
		// route that failed somewhere does not change that).
		d.conntrack.Flush()
	}
	d.endpoints.ReportStatuses()
	d.hostEPs.ReportStatuses()
	if err := d.endpoints.files.Apply(); err != nil {
		errs = append(errs, err)
	}
	d.retryApply = len(errs) > 0
	degraded := d.refusals()

	elapsed := time.Since(start)
	d.mu.Lock()
	d.health.Degraded = degraded
	d.health.Healthy = len(errs) == 0
	if len(errs) > 0 {
		d.health.Err = fmt.Errorf("%d errors, first: %w", len(errs), errs[0])
	} else {
		d.health.Err = nil
		d.health.LastApply = time.Now()
	}
	err = d.health.Err
	d.mu.Unlock()
	if err != nil {
		d.metrics.inSync.Set(0)
		return wrote, err
	}
	d.metrics.inSync.Set(1)
	if first {
		d.appliedOnce = true
		d.conntrack.armed = true
		d.mu.Lock()
		d.health.InSync = true
		d.mu.Unlock()
		d.metrics.initialResync.Set(elapsed.Seconds())
		d.log.Info("dataplane in sync", "took", elapsed)
		if d.cfg.OnInSync != nil {
			d.cfg.OnInSync()
		}
	} else {
		d.metrics.applyTime.Observe(elapsed.Seconds())
	}
	if d.retirePending {
		// Only now is this backend's state complete in the kernel: what
		// the other one left goes, with no gap in enforcement. After
		// readiness: the host enforces already, and reading the other
		// backend (a few processes for iptables) should not delay it.
		if err := d.retireOther(ctx); err != nil {
			d.log.Warn("removing the other backend's rules failed; the next apply (at the latest, the periodic re-read's) retries", "err", err)
		} else {
			d.retirePending = false
		}
	}
	return wrote, nil
}

// refusals describes what the kernel refused in every family and is held
// back ("" when nothing is), and notes whether anything is.
func (d *Dataplane) refusals() string {
	var parts []string
	n := 0
	for _, f := range d.families {
		for _, r := range f.tables.Refused() {
			n++
			if len(parts) < 5 {
				what := r.Chain
				if owner := d.describeChain(r.Chain); owner != "" {
					what += " (" + owner + ")"
				}
				parts = append(parts, fmt.Sprintf("IPv%d %s %s: %s", f.v, r.Table, what, r.Action))
			}
		}
	}
	d.refused = n > 0
	if n == 0 {
		return ""
	}
	if n > len(parts) {
		parts = append(parts, fmt.Sprintf("and %d more", n-len(parts)))
	}
	return fmt.Sprintf("degraded: the kernel refused %d change(s), held back while the rest is applied: %s", n, strings.Join(parts, "; "))
}

// describeChain names what a chain belongs to, for reports: a policy or
// profile, or the endpoint whose interface it serves. Called while the
// families apply (they only read the managers' maps meanwhile).
func (d *Dataplane) describeChain(chain string) string {
	if s := d.policies.describe(chain); s != "" {
		return s
	}
	return d.endpoints.describe(chain)
}

// readAhead reads the kernel's sets and tables of every family while the
// datastore is still being listed, so that the first apply only writes.
func (d *Dataplane) readAhead(ctx context.Context) {
	var wg sync.WaitGroup
	for _, f := range d.families {
		wg.Go(func() { f.readAhead(ctx, d.log) })
	}
	wg.Wait()
}

// timers drive the periodic re-reads.
type timers struct {
	iptables, postWrite, ipsets, routes *time.Timer
	postWriteBase, postWriteNext, max   time.Duration
}

func newTimers(cfg Config) *timers {
	mk := func(d time.Duration) *time.Timer {
		if d <= 0 {
			d = never
		}
		return time.NewTimer(d)
	}
	return &timers{iptables: mk(cfg.IptablesRefresh), postWrite: mk(0), ipsets: mk(cfg.IpsetsRefresh), routes: mk(cfg.RouteRefresh),
		postWriteBase: max(cfg.PostWriteCheck, 50*time.Millisecond), max: max(cfg.IptablesRefresh, time.Hour)}
}

func orNever(d time.Duration) time.Duration {
	if d <= 0 {
		return never
	}
	return d
}

// refreshInterval is the period of the full re-read of the rules.
func (d *Dataplane) refreshInterval() time.Duration {
	if d.cfg.nftables {
		return d.cfg.NftablesRefresh
	}
	return d.cfg.IptablesRefresh
}

// wrote schedules re-reads after a write: at PostWriteCheck, then at
// doubling intervals, to catch another tool's read-modify-write.
func (t *timers) wrote() {
	if t.postWriteBase == 0 {
		return
	}
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
