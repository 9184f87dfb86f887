package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	"ocelot/contract"
	"ocelot/dataplane/ipsets"
	ipt "ocelot/dataplane/iptables"
	nft "ocelot/dataplane/nftables"
	"ocelot/dataplane/rules"
	"ocelot/dataplane/ruleset"
)

// Backends: what programs the rules and sets.
const (
	BackendIptables = "iptables" // iptables-restore and ipset (legacy or nft iptables)
	BackendNftables = "nftables" // native nftables over netlink
)

// chainTable is one table of a family (an iptables table, or a layer of
// the nftables table): what the managers put chains into.
type chainTable interface {
	UpdateChain(c *ruleset.Chain)
	RemoveChain(name string)
	SetInserts(kernelChain string, rules []ruleset.Rule)
	SetAppends(kernelChain string, rules []ruleset.Rule)
	Hashes(chain string) []string // the rules' hashes as rendered (the counter collector matches them)
}

// setDriver is a family's IP sets, whichever the backend.
type setDriver interface {
	Name(id string) string
	Replace(id, typ string, members []contract.Member)
	AddMembers(id string, members []contract.Member)
	RemoveMembers(id string, members []contract.Member)
	Remove(id string)
	Has(id string) bool
	Members(id string) []contract.Member
	Size(id string) (int, bool)
	Contains(id string, addr netip.Addr, proto uint8, port uint16) bool
	Resync()
	Dirty() bool
}

// tables are a family's four tables; Dirty, Invalidate and the
// quarantine reach the backend's driver.
type tables struct {
	Raw, Mangle, NAT, Filter chainTable
	dirty                    func() bool
	invalidate               func()
	refused                  func() []ipt.Refusal // nil: the backend quarantines nothing
	retryQuarantined         func()
}

func (t tables) Dirty() bool { return t.dirty() }
func (t tables) Invalidate() { t.invalidate() }

// Refused lists what the kernel refused and is held back (iptables: a
// chain or hook quarantined while the rest is applied; nftables keeps
// none: a refused transaction is retried, then the table rebuilt whole).
func (t tables) Refused() []ipt.Refusal {
	if t.refused == nil {
		return nil
	}
	return t.refused()
}

// RetryQuarantined lets what was refused be tried again.
func (t tables) RetryQuarantined() {
	if t.retryQuarantined != nil {
		t.retryQuarantined()
	}
}

func (t tables) Table(name string) chainTable {
	switch name {
	case "raw":
		return t.Raw
	case "mangle":
		return t.Mangle
	case "nat":
		return t.NAT
	}
	return t.Filter
}

// family is one IP family's renderer and drivers: rules renders chains
// for it, tables and sets hold its desired kernel state and write it. The
// managers put their chains and sets in; the Dataplane applies it. The
// static chains and hooks are installed here, once. Exactly one backend's
// drivers are set: ipt and ipset (iptables), or nft.
type family struct {
	v      int
	rules  *rules.Config
	tables tables
	sets   setDriver

	ipt    *ipt.Tables
	ipset  *ipsets.IPSets
	nft    *nft.Table
	runner ipt.Runner // iptables mode: the tables' save and restore; the counter collector reads through it too
}

func newFamily(v int, cfg Config, k kernel, log *slog.Logger, m *driverMetrics, describe func(chain string) string) (*family, error) {
	rc := cfg.Rules
	rc.Family = v
	f := &family{v: v, rules: &rc}
	if cfg.nftables {
		rc.FlatDispatch = true
		f.nft = nft.New(v, k.nft, nft.Options{Log: log, Metrics: m.nft,
			DispatchChains: map[string]bool{rules.ChainFromWorkloadDispatch: true, rules.ChainToWorkloadDispatch: false}})
		f.sets = f.nft
		f.tables = tables{Raw: f.nft.Layer("raw"), Mangle: f.nft.Layer("mangle"), NAT: f.nft.Layer("nat"), Filter: f.nft.Layer("filter"),
			dirty: f.nft.Dirty, invalidate: f.nft.Invalidate}
	} else {
		runner, err := k.iptables(v)
		if err != nil {
			return nil, fmt.Errorf("IPv%d: %w", v, err)
		}
		f.ipset = ipsets.New(v, ipsets.Options{MaxSize: cfg.MaxIpsetSize, Runner: k.ipsets, Netlink: k.ipsetsNL, Log: log, Metrics: m.ipsets})
		f.runner = runner
		f.ipt = ipt.NewTables(v, runner, ipt.Options{InsertMode: cfg.InsertMode, SetName: f.ipset.Name, Log: log, Metrics: m.ipt,
			FailClosed: rules.WorkloadOnly, Describe: describe})
		f.sets = f.ipset
		f.tables = tables{Raw: f.ipt.Raw, Mangle: f.ipt.Mangle, NAT: f.ipt.NAT, Filter: f.ipt.Filter,
			dirty: f.ipt.Dirty, invalidate: f.ipt.Invalidate, refused: f.ipt.Refused, retryQuarantined: f.ipt.RetryQuarantined}
	}
	static, hooks := rc.Static()
	for _, name := range nft.Layers {
		t := f.tables.Table(name)
		for _, ch := range static[name] {
			t.UpdateChain(ch)
		}
		for kc, rs := range hooks[name].Inserts {
			t.SetInserts(kc, rs)
		}
		for kc, rs := range hooks[name].Appends {
			t.SetAppends(kc, rs)
		}
	}
	return f, nil
}

// dirty reports whether the family has sets or tables to write, or stale
// sets to destroy.
func (f *family) dirty() bool {
	return f.sets.Dirty() || f.tables.Dirty() || (f.ipset != nil && f.ipset.DeletionsPending())
}

// apply brings the family's kernel state in line. iptables: sets created
// and filled; then every table in one restore (not after a set failure:
// rules may refer to sets that failed to appear); then the sets no rule
// refers to any more destroyed. nftables: one transaction does all three.
func (f *family) apply(ctx context.Context, log *slog.Logger) (wrote bool, err error) {
	if f.nft != nil {
		return f.nft.Apply(ctx)
	}
	if err := f.ipset.ApplyUpdates(ctx); err != nil {
		return false, err
	}
	wrote, err = f.ipt.Apply(ctx)
	if err != nil {
		return wrote, err
	}
	if err := f.ipset.ApplyDeletions(ctx); err != nil {
		log.Debug("IP set deletion deferred", "ip_version", f.v, "err", err)
	}
	return wrote, nil
}

// readAhead reads the family's sets and tables before the first apply.
// Failures are left for the apply to meet again.
func (f *family) readAhead(ctx context.Context, log *slog.Logger) {
	if f.nft != nil {
		if err := f.nft.Read(ctx); err != nil {
			log.Debug("reading the nftables table ahead failed", "ip_version", f.v, "err", err)
		}
		return
	}
	if err := f.ipset.Read(ctx); err != nil {
		log.Debug("reading IP sets ahead failed", "ip_version", f.v, "err", err)
	}
	if err := f.ipt.Read(ctx); err != nil {
		log.Debug("reading iptables ahead failed", "ip_version", f.v, "err", err)
	}
}

// readCounters reads the filter table's rule counters, by chain, in rule
// order, whichever the backend.
func (f *family) readCounters(ctx context.Context) (map[string][]ipt.RuleCounter, error) {
	if f.nft == nil {
		return ipt.ReadCounters(ctx, f.runner, "filter")
	}
	all, err := f.nft.Layer("filter").Counters()
	if err != nil {
		return nil, err
	}
	out := make(map[string][]ipt.RuleCounter, len(all))
	for name, cs := range all {
		rcs := make([]ipt.RuleCounter, len(cs))
		for i, c := range cs {
			rcs[i] = ipt.RuleCounter{Hash: c.Hash, Packets: c.Packets, Bytes: c.Bytes}
		}
		out[name] = rcs
	}
	return out, nil
}

// driverMetrics are the drivers' instruments, one set per backend, all
// registered (a dashboard sees zeros for the backend not in use).
type driverMetrics struct {
	ipt    *ipt.Metrics
	ipsets *ipsets.Metrics
	nft    *nft.Metrics
}
