package iptables

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Isolation: one bad object must not stop the rest. When a restore fails
// twice against a fresh read of the kernel, Tables.isolate writes the
// dirty tables one at a time; for a table that the kernel refuses, it
// finds the first change the kernel refuses by bisection — writing the
// changes in dependency order (a chain before the chains that jump to
// it), so every prefix it commits is a state the kernel accepts and that
// holds no jump to an empty chain — and quarantines that change:
//
//   - a chain that only workload traffic reaches (the rule builders say
//     which: policy, profile, endpoint and dispatch chains) is written as
//     one rule that drops everything: the endpoints it touches fail
//     closed;
//   - any other chain keeps what the kernel has (a drop there would cut
//     the host off);
//   - hooks in a kernel chain are left as they are;
//   - a stale chain that cannot be deleted (another tool's rule jumps to
//     it) is flushed, and left if even that fails.
//
// Then it writes the rest and goes on until the table is written. A
// quarantine ends when the chain changes, or when the dataplane asks for
// a retry (RetryQuarantined, on its back-off). A restore that fails even
// with nothing in it is a failure of iptables itself, not of an object:
// nothing is quarantined then.

// maxIsolationRestores bounds the restores one isolation may run.
const maxIsolationRestores = 64

// qkey names what a quarantine holds back.
type qkey struct {
	kind  itemKind // rewrite, hooks or deletion
	chain string
}

// quarantine is how far a refused change is held back (level 1: a drop
// body, or for a stale chain a flush only; level 2: nothing is written)
// and why.
type quarantine struct {
	level int
	err   error
}

// Refusal is a chain the kernel refused, as Tables.Refused reports it.
type Refusal struct {
	Table, Chain string
	// Action is what is in force instead: "drop" (the chain drops every
	// packet that reaches it), "kept" (the kernel keeps its previous
	// version), "hooks kept" (our rules in a kernel chain are left as they
	// are), "flushed" or "left" (a stale chain that could not be
	// deleted), or "not programmed" (a name iptables does not take).
	Action string
	Err    error
}

// Refused lists what the kernel refused and what is in force instead,
// sorted by table and chain.
func (ts *Tables) Refused() []Refusal {
	var out []Refusal
	for _, t := range ts.all {
		for k, q := range t.quarantined {
			out = append(out, Refusal{Table: t.Name, Chain: k.chain, Action: q.action(k.kind), Err: q.err})
		}
		for name := range t.invalid {
			out = append(out, Refusal{Table: t.Name, Chain: fmt.Sprintf("%q", name), Action: "not programmed",
				Err: errors.New("not a valid iptables chain name")})
		}
	}
	slices.SortFunc(out, func(a, b Refusal) int {
		return strings.Compare(a.Table+" "+a.Chain, b.Table+" "+b.Chain)
	})
	return out
}

func (q *quarantine) action(kind itemKind) string {
	switch {
	case kind == hooks:
		return "hooks kept"
	case kind == deletion && q.level == 1:
		return "flushed"
	case kind == deletion:
		return "left"
	case q.level == 1:
		return "drop"
	}
	return "kept"
}

// RetryQuarantined lifts every quarantine: the next Apply tries the
// refused changes again (and quarantines what the kernel still refuses).
func (ts *Tables) RetryQuarantined() {
	for _, t := range ts.all {
		if len(t.quarantined) > 0 {
			clear(t.quarantined)
			t.dirty = true
		}
	}
}

// isolate writes the dirty tables one at a time, quarantining what the
// kernel refuses.
func (ts *Tables) isolate(ctx context.Context) (wrote bool, err error) {
	ts.metrics.isolations.WithLabelValues(strconv.Itoa(ts.Family)).Inc()
	if err := ts.runner.Restore(ctx, "*filter\nCOMMIT\n"); err != nil {
		return false, fmt.Errorf("iptables-restore fails with nothing to write, so no one change is to blame: %w", err)
	}
	budget := maxIsolationRestores
	var errs []error
	for _, t := range ts.dirty() {
		w, err := ts.isolateTable(ctx, t, &budget)
		wrote = wrote || w
		if err != nil {
			errs = append(errs, err)
		}
	}
	return wrote, errors.Join(errs...)
}

// isolateTable writes one table, quarantining one refused change at a
// time until the rest is in.
func (ts *Tables) isolateTable(ctx context.Context, t *Table, budget *int) (wrote bool, err error) {
	for *budget > 0 {
		if t.kernel == nil {
			if err := ts.read(ctx, []*Table{t}); err != nil {
				return wrote, err
			}
		}
		st := t.kernel
		items := dependencyOrder(t.items(st))
		if len(items) == 0 {
			t.dirty = false
			return wrote, nil
		}
		*budget--
		firstErr := ts.restoreItems(ctx, t, items)
		if firstErr == nil {
			t.dirty = false
			if commit(items, st) {
				t.kernel = nil
			}
			return true, nil
		}
		// Find the first item the kernel refuses: items[:lo] are in, and
		// items[:hi] fail. The line the tool names is tried first.
		lo, hi, failErr := 0, len(items), firstErr
		guess := attribute(firstErr, t, items)
		hooksIn := false
		for hi-lo > 1 && *budget > 0 {
			mid := (lo + hi) / 2
			switch {
			case guess > lo && guess < hi:
				mid = guess
			case guess == lo && guess+1 < hi:
				mid = guess + 1
			}
			*budget--
			if err := ts.restoreItems(ctx, t, items[lo:mid]); err != nil {
				hi, failErr = mid, err
				continue
			}
			wrote = true
			hooksIn = commit(items[lo:mid], st) || hooksIn
			lo = mid
		}
		if hooksIn {
			t.kernel = nil
		}
		if hi-lo > 1 {
			break // out of budget
		}
		t.hold(items[lo], failErr)
	}
	return wrote, fmt.Errorf("isolating what the kernel refuses in %s (IPv%d): gave up after %d restores", t.Name, t.Family, maxIsolationRestores)
}

// hold quarantines a refused change, one level further than before.
func (t *Table) hold(it item, err error) {
	kind := it.kind
	if kind == flush {
		kind = deletion
	}
	k := qkey{kind, it.chain}
	level := 1
	if q := t.quarantined[k]; q != nil {
		level = q.level + 1
	}
	if kind == hooks || kind == rewrite && (t.failClosed == nil || !t.failClosed(it.chain)) {
		level = 2
	}
	q := &quarantine{level: level, err: err}
	t.quarantined[k] = q
	t.dirty = true
	key := ""
	if t.describe != nil {
		key = t.describe(it.chain)
	}
	t.log.Warn("the kernel refused a change; everything else is applied, this is held back until it changes or the retry",
		"chain", it.chain, "key", key, "instead", q.action(kind), "err", err)
}

// dependencyOrder puts rewrites of chains before the rewrites that jump
// to them (depth first from each chain by name), then hooks, then stale
// chains: any prefix of the result is a state in which every jump leads
// to a chain that is written or already in the kernel.
func dependencyOrder(items []item) []item {
	byName := map[string]int{}
	for i, it := range items {
		if it.kind == rewrite {
			byName[it.chain] = i
		}
	}
	out := make([]item, 0, len(items))
	done := make([]bool, len(items))
	var visit func(i int)
	visit = func(i int) {
		done[i] = true
		for _, tgt := range items[i].targets {
			if j, ok := byName[tgt]; ok && !done[j] {
				visit(j)
			}
		}
		out = append(out, items[i])
	}
	for i, it := range items {
		if it.kind == rewrite && !done[i] {
			visit(i)
		}
	}
	for i, it := range items {
		if it.kind != rewrite {
			out = append(out, items[i])
		}
	}
	return out
}

var lineRE = regexp.MustCompile(`line:? (\d+)`)

// attribute returns the index of the item on the line a restore error
// names, or -1. iptables-restore names the line of the command it could
// not take (legacy), or sometimes the COMMIT (nft), which names no item.
func attribute(err error, t *Table, items []item) int {
	m := lineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	_, owner := t.lines(items)
	if n < 1 || n > len(owner) {
		return -1
	}
	return owner[n-1]
}

// restoreItems writes items of one table in one restore.
func (ts *Tables) restoreItems(ctx context.Context, t *Table, items []item) error {
	return ts.restore(ctx, []*Table{t}, map[*Table]plan{t: {items: items}})
}

// checkLines refuses a script with a control character on any of its
// lines — a line break inside one rule's text would add a line of its
// own: no name or parameter may reach the kernel that way, whatever
// rendered it. The renderers escape or hash everything they take from
// outside; this is the last line of defence.
func checkLines(lines []string) error {
	for n, l := range lines {
		for i := 0; i < len(l); i++ {
			if c := l[i]; c < ' ' || c == 0x7f {
				return fmt.Errorf("restore script refused before it ran: line %d holds the control character %#02x: %.120q", n+1, c, l)
			}
		}
	}
	return nil
}
