package dataplane

import (
	"context"
	"fmt"
	"log/slog"

	"ocelot/dataplane/ipsets"
	ipt "ocelot/dataplane/iptables"
	"ocelot/dataplane/rules"
)

// family is one IP family's renderer and drivers: rules renders chains
// for it, tables and sets hold its desired kernel state and write it. The
// managers put their chains and sets in; the Dataplane applies it. The
// static chains and hooks are installed here, once.
type family struct {
	v      int
	rules  *rules.Config
	tables *ipt.Tables
	sets   *ipsets.IPSets
	runner ipt.Runner // the tables' save and restore; the counter collector reads through it too
}

func newFamily(v int, cfg Config, k kernel, log *slog.Logger, tm *ipt.Metrics, sm *ipsets.Metrics, describe func(chain string) string) (*family, error) {
	runner, err := k.iptables(v)
	if err != nil {
		return nil, fmt.Errorf("IPv%d: %w", v, err)
	}
	sets := ipsets.New(v, ipsets.Options{MaxSize: cfg.MaxIpsetSize, Runner: k.ipsets, Netlink: k.ipsetsNL, Log: log, Metrics: sm})
	rc := cfg.Rules
	rc.Family = v
	f := &family{v: v, rules: &rc, sets: sets, runner: runner,
		tables: ipt.NewTables(v, runner, ipt.Options{InsertMode: cfg.InsertMode, SetName: sets.Name, Log: log, Metrics: tm,
			FailClosed: rules.WorkloadOnly, Describe: describe})}
	static, hooks := rc.Static()
	for _, t := range f.tables.All() {
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
	return f, nil
}

// apply brings the family's kernel state in line, in the safe order: sets
// created and filled; then every table in one restore (not after a set
// failure: rules may refer to sets that failed to appear); then the sets
// no rule refers to any more destroyed.
func (f *family) apply(ctx context.Context, log *slog.Logger) (wrote bool, err error) {
	if err := f.sets.ApplyUpdates(ctx); err != nil {
		return false, err
	}
	wrote, err = f.tables.Apply(ctx)
	if err != nil {
		return wrote, err
	}
	if err := f.sets.ApplyDeletions(ctx); err != nil {
		log.Debug("IP set deletion deferred", "ip_version", f.v, "err", err)
	}
	return wrote, nil
}

// readAhead reads the family's sets and tables before the first apply.
// Failures are left for the apply to meet again.
func (f *family) readAhead(ctx context.Context, log *slog.Logger) {
	if err := f.sets.Read(ctx); err != nil {
		log.Debug("reading IP sets ahead failed", "ip_version", f.v, "err", err)
	}
	if err := f.tables.Read(ctx); err != nil {
		log.Debug("reading iptables ahead failed", "ip_version", f.v, "err", err)
	}
}
