package nftables

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"ocelot/dataplane/ruleset"
	"ocelot/internal/backoff"
)

// TableName is the table Ocelot programs in each family, Felix's: "ip
// calico" and "ip6 calico". Everything in it is Ocelot's.
const TableName = "calico"

// Layers are the iptables tables the rule model is written for; each is a
// layer of the one nftables table, its chains named "<layer>-<chain>".
var Layers = [...]string{"raw", "mangle", "nat", "filter"}

// baseChains are the kernel's chains of each layer as base chains of the
// table: their hooks and priorities are iptables' (raw -300, mangle -150,
// DNAT -100, filter 0, SNAT 100; POSTROUTING's +10 is Felix's).
var baseChains = map[string]BaseChain{
	"raw-PREROUTING":     {nftables.ChainTypeFilter, *nftables.ChainHookPrerouting, *nftables.ChainPriorityRaw},
	"raw-OUTPUT":         {nftables.ChainTypeFilter, *nftables.ChainHookOutput, *nftables.ChainPriorityRaw},
	"mangle-PREROUTING":  {nftables.ChainTypeFilter, *nftables.ChainHookPrerouting, *nftables.ChainPriorityMangle},
	"mangle-INPUT":       {nftables.ChainTypeFilter, *nftables.ChainHookInput, *nftables.ChainPriorityMangle},
	"mangle-FORWARD":     {nftables.ChainTypeFilter, *nftables.ChainHookForward, *nftables.ChainPriorityMangle},
	"mangle-OUTPUT":      {nftables.ChainTypeRoute, *nftables.ChainHookOutput, *nftables.ChainPriorityMangle},
	"mangle-POSTROUTING": {nftables.ChainTypeFilter, *nftables.ChainHookPostrouting, *nftables.ChainPriorityMangle},
	"nat-PREROUTING":     {nftables.ChainTypeNAT, *nftables.ChainHookPrerouting, *nftables.ChainPriorityNATDest},
	"nat-INPUT":          {nftables.ChainTypeNAT, *nftables.ChainHookInput, *nftables.ChainPriorityNATSource},
	"nat-OUTPUT":         {nftables.ChainTypeNAT, *nftables.ChainHookOutput, *nftables.ChainPriorityNATDest},
	"nat-POSTROUTING":    {nftables.ChainTypeNAT, *nftables.ChainHookPostrouting, *nftables.ChainPriorityNATSource + 10},
	"filter-INPUT":       {nftables.ChainTypeFilter, *nftables.ChainHookInput, *nftables.ChainPriorityFilter},
	"filter-FORWARD":     {nftables.ChainTypeFilter, *nftables.ChainHookForward, *nftables.ChainPriorityFilter},
	"filter-OUTPUT":      {nftables.ChainTypeFilter, *nftables.ChainHookOutput, *nftables.ChainPriorityFilter},
}

// maxElemsPerBatch bounds the set elements of one transaction when a large
// fill is split: new sets are filled in batches of their own before the
// transaction that makes rules use them.
const maxElemsPerBatch = 20000

// Options configure a family's table.
type Options struct {
	// DispatchChains names the filter chains whose leading exact-interface
	// rules are a verdict map of the same name: true for the input
	// interface, false for the output one.
	DispatchChains map[string]bool
	Log            *slog.Logger
	Metrics        *Metrics // nil counts into instruments nobody registered
}

// dchain is a desired chain, rendered.
type dchain struct {
	base   *BaseChain
	rules  []Rule
	hashes []string
}

// dmap is a desired verdict map: interface name -> verdict.
type dmap struct {
	spec  SetSpec
	elems map[string]*expr.Verdict
}

// kset is a set or map as the kernel has it. elems (sets) is known right
// after a read; nil means it holds what was last written.
type kset struct {
	spec     SetSpec
	elems    map[member]struct{}
	unparsed bool
	mapElems map[string]string // maps: key -> verdict, as read or written
}

// view is the driver's picture of the kernel's table.
type view struct {
	chains map[string]*ChainState
	sets   map[string]*kset
}

func (v *view) set(name string) *kset {
	if v == nil {
		return nil
	}
	return v.sets[name]
}

// Table is the nftables table of one family: every layer's chains, calc's
// sets and the dispatch maps, brought in line with the kernel by
// transactions that carry only what changed. It is not safe for
// concurrent use.
type Table struct {
	Family int

	runner   Runner
	log      *slog.Logger
	metrics  *Metrics
	dispatch map[string]bool

	layers map[string]*Layer
	chains map[string]*dchain // by full name
	maps   map[string]*dmap
	sets   sets

	view        *view               // nil: read before the next write
	exists      bool                // the kernel has the table
	dirtyChains map[string]struct{} // full names changed since the last write
	dirtyMaps   map[string]struct{}
	dirty       bool
	numRules    int // in the desired chains (a gauge read at every apply)

	// Written counts transactions and ops written (tests, benchmarks).
	Transactions, OpsWritten int
}

// New returns the table of one family, written through runner. Nothing
// touches the kernel until Read or Apply.
func New(family int, runner Runner, opts Options) *Table {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	t := &Table{Family: family, runner: runner, log: opts.Log.With("ip_version", family), metrics: opts.Metrics,
		dispatch: opts.DispatchChains, layers: map[string]*Layer{}, chains: map[string]*dchain{}, maps: map[string]*dmap{},
		sets:        sets{family: family, want: map[string]*dset{}, dirty: map[string]struct{}{}},
		dirtyChains: map[string]struct{}{}, dirtyMaps: map[string]struct{}{}, dirty: true}
	for _, l := range Layers {
		t.layers[l] = &Layer{t: t, render: Renderer{Family: family, Layer: l, SetName: t.Name}}
	}
	return t
}

// Layer returns the layer of that name (raw, mangle, nat, filter).
func (t *Table) Layer(name string) *Layer { return t.layers[name] }

// Layer is one iptables table's worth of chains in the nftables table. It
// has the table driver's chain methods.
type Layer struct {
	t       *Table
	render  Renderer
	inserts map[string][]ruleset.Rule
	appends map[string][]ruleset.Rule
}

// UpdateChain sets a chain's desired rules.
func (l *Layer) UpdateChain(c *ruleset.Chain) {
	name := l.render.ChainName(c.Name)
	var rules []Rule
	if in, isMap := l.t.dispatch[c.Name]; isMap && l.render.Layer == "filter" {
		run, rest := DispatchRun(c.Rules, in)
		l.t.setMap(name, in, run, l.render)
		rules = append([]Rule{vmapRule(name, in)}, l.renderRules(rest)...)
	} else {
		rules = l.renderRules(c.Rules)
	}
	l.t.setChain(name, nil, rules)
}

func (l *Layer) renderRules(rs []ruleset.Rule) []Rule {
	out := make([]Rule, len(rs))
	for i, x := range rs {
		out[i] = l.render.Rule(x)
	}
	return out
}

// Hashes returns a chain's rule hashes as rendered (nil: no such chain).
func (l *Layer) Hashes(name string) []string {
	if c := l.t.chains[l.render.ChainName(name)]; c != nil {
		return slices.Clone(c.hashes)
	}
	return nil
}

// Counters reads the kernel's rule counters of the layer's chains, by
// chain (without the layer's prefix), in rule order. Reading changes
// nothing.
func (l *Layer) Counters() (map[string][]RuleCounter, error) {
	prefix := l.render.Layer + "-"
	all, err := l.t.runner.Counters(l.t.Family, TableName, prefix)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]RuleCounter, len(all))
	for name, cs := range all {
		out[name[len(prefix):]] = cs
	}
	return out, nil
}

// RemoveChain forgets a chain; the next apply deletes it.
func (l *Layer) RemoveChain(name string) {
	full := l.render.ChainName(name)
	if c, ok := l.t.chains[full]; ok {
		l.t.numRules -= len(c.rules)
		delete(l.t.chains, full)
		l.t.dirtyChains[full] = struct{}{}
		l.t.dirty = true
	}
	if _, ok := l.t.maps[full]; ok {
		delete(l.t.maps, full)
		l.t.dirtyMaps[full] = struct{}{}
	}
}

// SetInserts sets the rules at the top of a kernel chain (a base chain of
// the table: the order among hooks of other tables is the kernel's).
func (l *Layer) SetInserts(kernelChain string, rules []ruleset.Rule) {
	if l.inserts == nil {
		l.inserts = map[string][]ruleset.Rule{}
	}
	l.inserts[kernelChain] = rules
	l.setBase(kernelChain)
}

// SetAppends sets the rules at the bottom of a kernel chain.
func (l *Layer) SetAppends(kernelChain string, rules []ruleset.Rule) {
	if l.appends == nil {
		l.appends = map[string][]ruleset.Rule{}
	}
	l.appends[kernelChain] = rules
	l.setBase(kernelChain)
}

func (l *Layer) setBase(kernelChain string) {
	name := l.render.ChainName(kernelChain)
	b, ok := baseChains[name]
	if !ok {
		l.t.log.Warn("no such kernel chain in nftables; hooks ignored", "chain", name)
		return
	}
	rules := append(slices.Clone(l.inserts[kernelChain]), l.appends[kernelChain]...)
	l.t.setChain(name, &b, l.renderRules(rules))
}

func (t *Table) setChain(name string, base *BaseChain, rules []Rule) {
	hashAndCompile(name, t.Family, rules, true)
	c := &dchain{base: base, rules: rules, hashes: make([]string, len(rules))}
	for i := range rules {
		c.hashes[i] = rules[i].Hash
	}
	if old, ok := t.chains[name]; ok && slices.Equal(old.hashes, c.hashes) && sameBase(old.base, base) {
		return
	}
	if old, ok := t.chains[name]; ok {
		t.numRules -= len(old.rules)
	}
	t.numRules += len(c.rules)
	t.chains[name] = c
	t.dirtyChains[name] = struct{}{}
	t.dirty = true
}

func sameBase(a, b *BaseChain) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func (t *Table) setMap(name string, in bool, run map[string]ruleset.Action, r Renderer) {
	m := &dmap{spec: SetSpec{Name: name, KeyType: nftables.TypeIFName, Map: true}, elems: map[string]*expr.Verdict{}}
	for iface, a := range run {
		m.elems[string(IfName(iface))] = r.verdictOf(a)
	}
	if old, ok := t.maps[name]; ok && maps.EqualFunc(old.elems, m.elems, func(a, b *expr.Verdict) bool { return verdictText(a) == verdictText(b) }) {
		return
	}
	t.maps[name] = m
	t.dirtyMaps[name] = struct{}{}
	t.dirty = true
}

// vmapRule looks the packet's interface up in the chain's map.
func vmapRule(name string, in bool) Rule {
	key := expr.MetaKeyOIFNAME
	if in {
		key = expr.MetaKeyIIFNAME
	}
	return Rule{Exprs: []expr.Any{&expr.Meta{Key: key, Register: reg1},
		&expr.Lookup{SourceRegister: reg1, SetName: name, DestRegister: 0, IsDestRegSet: true}}}
}

func verdictText(v *expr.Verdict) string {
	if v == nil {
		return ""
	}
	return strconv.Itoa(int(v.Kind)) + " " + v.Chain
}

// NumChains and NumRules describe the desired state (metrics).
func (t *Table) NumChains() int { return len(t.chains) }

func (t *Table) NumRules() int { return t.numRules }

// Dirty reports whether Apply has work to do.
func (t *Table) Dirty() bool { return t.dirty || t.view == nil }

// Invalidate makes the next Apply read the kernel and repair any drift.
func (t *Table) Invalidate() { t.invalidate() }

func (t *Table) invalidate() {
	t.view = nil
	t.dirty = true
}

// Read reads the kernel's table if it is not known, so that the next Apply
// need not (the dataplane reads ahead while it waits for the datastore).
func (t *Table) Read(ctx context.Context) error {
	if t.view != nil {
		return nil
	}
	t.metrics.listCalls.Inc()
	st, err := t.runner.Read(t.Family, TableName)
	if err != nil {
		t.metrics.listErrors.Inc()
		return err
	}
	v := &view{chains: map[string]*ChainState{}, sets: map[string]*kset{}}
	if st != nil {
		v.chains = st.Chains
		for name, s := range st.Sets {
			k := &kset{spec: s.Spec}
			if s.Spec.Map {
				k.mapElems = map[string]string{}
				for _, e := range s.Elems {
					k.mapElems[string(e.Key)] = verdictText(e.Verdict)
				}
			} else {
				ipPort := len(nftables.ConcatSetTypeElements(s.Spec.KeyType)) > 1
				var ok bool
				k.elems, ok = parseElems(s.Elems, ipPort, t.Family)
				k.unparsed = !ok
			}
			v.sets[name] = k
		}
	}
	t.view = v
	t.exists = st != nil
	// Everything is compared after a read.
	for name := range t.chains {
		t.dirtyChains[name] = struct{}{}
	}
	for name := range v.chains {
		t.dirtyChains[name] = struct{}{}
	}
	for name := range t.maps {
		t.dirtyMaps[name] = struct{}{}
	}
	for name, s := range v.sets {
		if s.spec.Map {
			t.dirtyMaps[name] = struct{}{}
		} else {
			t.sets.dirty[name] = struct{}{}
		}
	}
	for name, d := range t.sets.want {
		d.full = true
		t.sets.dirty[name] = struct{}{}
	}
	t.dirty = true
	return nil
}

// Apply brings the kernel in line: read if the view is stale, plan the
// ops that turn the kernel's table into the desired one, write them as
// one transaction (a large fill of new sets goes first, in batches of its
// own). A failed write is retried after a fresh read; when retries fail,
// the table is rebuilt whole in one transaction. It reports whether
// anything was written.
func (t *Table) Apply(ctx context.Context) (wrote bool, err error) {
	defer t.publish()
	retry := backoff.Backoff{Min: 10 * time.Millisecond, Max: time.Second, Factor: 3}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if !t.Dirty() {
			return wrote, nil
		}
		if attempt > 0 {
			if err := retry.Wait(ctx); err != nil {
				return wrote, err
			}
		}
		if err := t.Read(ctx); err != nil {
			lastErr = err
			continue
		}
		p := t.plan()
		if len(p.ops) == 0 && len(p.early) == 0 {
			t.committed(p)
			return wrote, nil
		}
		wrote = true
		if err := t.write(p); err != nil {
			lastErr = err
			t.log.Warn("nftables transaction failed; re-reading and retrying", "attempt", attempt+1, "err", err)
			t.invalidate()
			continue
		}
		t.committed(p)
		return wrote, nil
	}
	// The incremental plan keeps failing: rebuild the table whole, in one
	// transaction, so that no packet sees it half-built.
	p := t.rebuild()
	t.log.Warn("rebuilding the nftables table", "err", lastErr)
	if err := t.write(p); err != nil {
		t.invalidate()
		return true, fmt.Errorf("nftables table %s (IPv%d): %w (before: %v)", TableName, t.Family, err, lastErr)
	}
	t.committed(p)
	return true, nil
}

func (t *Table) write(p *plan) error {
	for _, ops := range append(p.early, p.ops) {
		if len(ops) == 0 {
			continue
		}
		t.metrics.calls.Inc()
		if p.setOps > 0 {
			t.metrics.setCalls.Inc()
		}
		t.Transactions++
		t.OpsWritten += len(ops)
		if err := t.runner.Run(t.Family, TableName, ops); err != nil {
			t.metrics.errors.Inc()
			if p.setOps > 0 {
				t.metrics.setErrors.Inc()
			}
			return err
		}
	}
	return nil
}

func (t *Table) publish() {
	v := strconv.Itoa(t.Family)
	t.metrics.chains.WithLabelValues(v).Set(float64(len(t.chains)))
	t.metrics.rules.WithLabelValues(v).Set(float64(t.NumRules()))
	t.metrics.sets.WithLabelValues(v).Set(float64(len(t.sets.want)))
}
