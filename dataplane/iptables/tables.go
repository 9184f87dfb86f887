package iptables

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"ocelot/internal/backoff"
)

// TableNames are the tables Tables holds, in the order they are written.
var tableNames = [...]string{"raw", "mangle", "nat", "filter"}

// Options configure a family's tables.
type Options struct {
	// InsertMode places hooks at the top of kernel chains
	// (ChainInsertMode=insert) rather than after foreign rules.
	InsertMode bool
	// SetName gives the kernel name of an IP set of this family.
	SetName func(id string) string
	Log     *slog.Logger
	// Metrics receives the driver's counters; nil counts into instruments
	// nobody registered.
	Metrics *Metrics
	// FailClosed says whether a chain the kernel refuses may be replaced
	// by a drop (a chain only workload traffic reaches); other refused
	// chains keep the kernel's version. nil: none may.
	FailClosed func(chain string) bool
	// Describe names what a chain belongs to (a policy, an endpoint), for
	// the log of a refusal. nil: nothing.
	Describe func(chain string) string
}

// Tables are the four tables (raw, mangle, nat, filter) of one IP family,
// applied together: one iptables-save for all whose cached view is stale
// and one iptables-restore for all that need writing. At start-up that is
// two processes per family instead of eight. They are not safe for
// concurrent use.
type Tables struct {
	Family                   int
	Raw, Mangle, NAT, Filter *Table

	all     []*Table
	runner  Runner
	metrics *Metrics
	log     *slog.Logger
}

// NewTables returns the tables of one family, written through runner.
// Nothing touches the kernel until Read or Apply.
func NewTables(family int, runner Runner, opts Options) *Tables {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	ts := &Tables{Family: family, runner: runner, metrics: opts.Metrics, log: opts.Log}
	for _, name := range tableNames {
		t := newTable(name, family, opts.InsertMode, Renderer{SetName: opts.SetName}, opts.Log)
		t.failClosed, t.describe = opts.FailClosed, opts.Describe
		ts.all = append(ts.all, t)
		switch name {
		case "raw":
			ts.Raw = t
		case "mangle":
			ts.Mangle = t
		case "nat":
			ts.NAT = t
		case "filter":
			ts.Filter = t
		}
	}
	return ts
}

// Table returns the table of that name, or nil.
func (ts *Tables) Table(name string) *Table {
	for _, t := range ts.all {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// All returns the tables in the order they are written.
func (ts *Tables) All() []*Table { return ts.all }

// Dirty reports whether Apply has work to do.
func (ts *Tables) Dirty() bool {
	for _, t := range ts.all {
		if t.dirty {
			return true
		}
	}
	return false
}

// Invalidate makes the next Apply read the kernel and repair any drift.
func (ts *Tables) Invalidate() {
	for _, t := range ts.all {
		t.kernel = nil
		t.dirty = true
	}
}

// Written sums the restore lines and bytes written so far (benchmarks).
func (ts *Tables) Written() (lines, bytes int) {
	for _, t := range ts.all {
		lines += t.LinesWritten
		bytes += t.BytesWritten
	}
	return lines, bytes
}

// Apply brings the kernel in line: read what is stale, compute the minimal
// restore script of every dirty table, write it in one restore. On a write
// failure every table written is re-read and the write retried once with
// back-off; when it fails again, the tables are written one at a time and
// what the kernel refuses is isolated and held back (isolate.go), so that
// everything else is applied. It reports whether anything was written;
// an error means something could not be written at all (Refused lists
// what is held back without one).
func (ts *Tables) Apply(ctx context.Context) (wrote bool, err error) {
	defer ts.publish()
	var lastErr error
	refused := false
	retry := backoff.Backoff{Min: 10 * time.Millisecond, Max: time.Second, Factor: 3}
	for attempt := 0; attempt < 3; attempt++ {
		dirty := ts.dirty()
		if len(dirty) == 0 {
			return wrote, nil
		}
		if refused {
			w, err := ts.isolate(ctx)
			return wrote || w, err
		}
		if attempt > 0 {
			if err := retry.Wait(ctx); err != nil {
				return wrote, err
			}
		}
		if err := ts.read(ctx, dirty); err != nil {
			lastErr = err
			continue
		}
		var written []*Table
		plans := map[*Table]plan{}
		states := map[*Table]*kernelState{}
		for _, t := range dirty {
			p := t.plan(t.kernel)
			if p.script == "" {
				t.dirty = false
				continue
			}
			written = append(written, t)
			plans[t], states[t] = p, t.kernel
			t.kernel = nil // until the write is known to have worked
		}
		if len(written) == 0 {
			return wrote, nil
		}
		wrote = true
		if err := ts.restore(ctx, written, plans); err != nil {
			lastErr = err
			refused = attempt > 0 // twice, against a fresh read: find what
			ts.log.Warn("iptables-restore failed; re-reading and retrying", "attempt", attempt+1, "err", err)
			continue
		}
		for _, t := range written {
			t.wrote(plans[t], states[t])
		}
		return wrote, nil
	}
	if refused {
		w, err := ts.isolate(ctx)
		return wrote || w, err
	}
	names := make([]string, len(ts.all))
	for i, t := range ts.all {
		names[i] = t.Name
	}
	return wrote, fmt.Errorf("%s (IPv%d): %w", strings.Join(names, ", "), ts.Family, lastErr)
}

// publish sets the chain and rule gauges from the desired state, and the
// count of what the kernel refused.
func (ts *Tables) publish() {
	v := strconv.Itoa(ts.Family)
	refused := 0
	for _, t := range ts.all {
		ts.metrics.chains.WithLabelValues(v, t.Name).Set(float64(t.NumChains()))
		ts.metrics.rules.WithLabelValues(v, t.Name).Set(float64(t.NumRules()))
		refused += len(t.quarantined) + len(t.invalid)
	}
	ts.metrics.refused.WithLabelValues(v).Set(float64(refused))
}

func (ts *Tables) dirty() []*Table {
	var out []*Table
	for _, t := range ts.all {
		if t.dirty {
			out = append(out, t)
		}
	}
	return out
}

// Read reads the tables whose cached view is stale, so that the next Apply
// need not (the dataplane reads ahead while it waits for the datastore).
func (ts *Tables) Read(ctx context.Context) error { return ts.read(ctx, ts.all) }

// read reads the given tables whose cached view is stale: one with -t,
// several with one iptables-save of every table (a table the kernel has
// not instantiated yet is absent there and read on its own).
func (ts *Tables) read(ctx context.Context, tables []*Table) error {
	var stale []*Table
	for _, t := range tables {
		if t.kernel == nil {
			stale = append(stale, t)
		}
	}
	if len(stale) > 1 {
		all, err := ts.save(ctx, "")
		if err != nil {
			return err
		}
		for _, t := range stale {
			t.kernel = all[t.Name]
		}
	}
	for _, t := range stale {
		if t.kernel != nil {
			continue
		}
		all, err := ts.save(ctx, t.Name)
		if err != nil {
			return err
		}
		if t.kernel = all[t.Name]; t.kernel == nil {
			t.kernel = &kernelState{chains: map[string][]savedRule{}}
		}
	}
	return nil
}

// save runs iptables-save and parses each table it prints.
func (ts *Tables) save(ctx context.Context, table string) (map[string]*kernelState, error) {
	ts.metrics.saveCalls.Inc()
	out, err := ts.runner.Save(ctx, table)
	if err != nil {
		ts.metrics.saveErrors.Inc()
		return nil, err
	}
	all, err := parseSaveAll(out)
	if err != nil {
		ts.metrics.saveErrors.Inc()
	}
	return all, err
}

// restore writes the plans of the given tables in one restore. A script
// with a control character is refused before it runs.
func (ts *Tables) restore(ctx context.Context, tables []*Table, plans map[*Table]plan) error {
	var all []string
	v := strconv.Itoa(ts.Family)
	for _, t := range tables {
		lines, _ := t.lines(plans[t].items)
		all = append(all, lines...)
		n := 0
		for _, l := range lines {
			n += len(l) + 1
		}
		t.LinesWritten += len(lines)
		t.BytesWritten += n
		ts.metrics.linesExecuted.WithLabelValues(v, t.Name).Add(float64(len(lines)))
	}
	if err := checkLines(all); err != nil {
		return err
	}
	ts.metrics.restoreCalls.Inc()
	if err := ts.runner.Restore(ctx, strings.Join(all, "\n")+"\n"); err != nil {
		ts.metrics.restoreErrors.Inc()
		return err
	}
	return nil
}
