package iptables

import (
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"

	"ocelot/dataplane/ruleset"
)

// KernelChains returns the built-in chains of a table, in the order
// iptables lists them.
func KernelChains(table string) []string {
	switch table {
	case "filter":
		return []string{"INPUT", "FORWARD", "OUTPUT"}
	case "nat":
		return []string{"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}
	case "mangle":
		return []string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}
	case "raw":
		return []string{"PREROUTING", "OUTPUT"}
	}
	return nil
}

// ownedChainPrefixes are the chain-name prefixes this driver owns
// (Felix's, including historic ones), so a takeover from any Felix sweeps
// its chains.
const ownedChainPrefixes = "cali- califw- calitw- califh- calith- calipi- calipo-"

func owned(chain string) bool {
	for _, p := range strings.Fields(ownedChainPrefixes) {
		if strings.HasPrefix(chain, p) {
			return true
		}
	}
	return false
}

var (
	hashRE = regexp.MustCompile(`--comment "?` + HashPrefix + `([a-zA-Z0-9_-]+)"?`)
	// A rule in a kernel chain that jumps to an owned chain without a hash
	// comment is a leftover of an old agent: ours to remove.
	oldRuleRE = regexp.MustCompile(`(?:-j|--jump|-g|--goto) (?:` + strings.Join(strings.Fields(ownedChainPrefixes), "|") + `)`)
)

// savedRule is one rule as iptables-save printed it.
type savedRule struct {
	text string // after "-A <chain> "
	hash string // our hash, "" for a foreign rule, "OLD" for an old agent's rule
}

// kernelState is one table as iptables-save printed it.
type kernelState struct {
	chains map[string][]savedRule
}

// parseSaveAll splits iptables-save output at its "*table" lines and
// parses each table. Text before the first table (comments, warnings) is
// checked too: iptables-nft-save reports incompatible tables there.
func parseSaveAll(out []byte) (map[string]*kernelState, error) {
	all := map[string]*kernelState{}
	// One copy of the output; every rule kept is a slice of it.
	sections := strings.Split("\n"+string(out), "\n*")
	if _, err := parseSaveText(sections[0]); err != nil {
		return nil, err
	}
	for _, sec := range sections[1:] {
		name, _, _ := strings.Cut(sec, "\n")
		st, err := parseSaveText(sec)
		if err != nil {
			return nil, err
		}
		all[strings.TrimSpace(name)] = st
	}
	return all, nil
}

// parseSave reads one table of iptables-save output.
func parseSave(out []byte) (*kernelState, error) { return parseSaveText(string(out)) }

// parseSaveText reads one table of iptables-save output without copying
// its lines: a re-read of a large table would otherwise allocate several
// times its size.
func parseSaveText(text string) (*kernelState, error) {
	st := &kernelState{chains: map[string][]savedRule{}}
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "# Table") && strings.Contains(line, "incompatible"):
			return nil, fmt.Errorf("iptables-save: %s", line)
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			if _, ok := st.chains[name]; !ok {
				st.chains[name] = nil
			}
		case strings.HasPrefix(line, "-A "):
			chain, rest, _ := strings.Cut(line[3:], " ")
			r := savedRule{text: rest, hash: ruleHash(rest)}
			if r.hash == "" && oldRuleRE.MatchString(rest) {
				r.hash = "OLD"
			}
			st.chains[chain] = append(st.chains[chain], r)
		}
	}
	return st, nil
}

// Table holds the desired state of one table of one family, rendered:
// each chain's rules as restore text and their hashes, computed once per
// change. It is not safe for concurrent use; Tables applies it.
type Table struct {
	Name   string // filter, nat, mangle, raw
	Family int    // 4 or 6

	insertMode bool
	render     Renderer
	log        *slog.Logger
	failClosed func(chain string) bool   // a refused chain may be replaced by a drop
	describe   func(chain string) string // what a chain belongs to, for logs

	chains  map[string]*rendered
	inserts map[string]*rendered // kernel chain -> rules at the top (or before appends)
	appends map[string]*rendered // kernel chain -> rules always at the bottom

	quarantined map[qkey]*quarantine // what the kernel refused, and how it is held back
	invalid     map[string]struct{}  // chain names that are not iptables chain names
	numRules    int                  // rules of the desired chains (kept as they change)

	kernel *kernelState // cached read; nil means read before the next write
	dirty  bool

	// LinesWritten counts restore lines written (for tests and benchmarks).
	LinesWritten int
	// BytesWritten counts restore bytes written.
	BytesWritten int
}

// rendered is a list of rules as restore text and their hashes, and the
// chains they jump or go to.
type rendered struct {
	bodies, hashes []string
	targets        []string
}

func (t *Table) renderRules(hashedAs string, rules []ruleset.Rule) *rendered {
	r := &rendered{bodies: make([]string, len(rules))}
	for i, x := range rules {
		r.bodies[i] = t.render.Rule(x)
		switch a := x.Action.(type) {
		case ruleset.Jump:
			r.targets = append(r.targets, a.Chain)
		case ruleset.Goto:
			r.targets = append(r.targets, a.Chain)
		}
	}
	r.hashes = hashes(hashedAs, r.bodies)
	return r
}

func newTable(name string, family int, insertMode bool, render Renderer, log *slog.Logger) *Table {
	return &Table{Name: name, Family: family, insertMode: insertMode, render: render,
		log:    log.With("table", name, "ip_version", family),
		chains: map[string]*rendered{}, inserts: map[string]*rendered{}, appends: map[string]*rendered{},
		quarantined: map[qkey]*quarantine{}, invalid: map[string]struct{}{}, dirty: true}
}

// UpdateChain sets a chain's desired rules. A name that iptables would
// not take as one chain name is refused (logged; reported by Refused):
// nothing is written for it, so a rule that jumps to it fails, and that
// chain is held back in its turn.
func (t *Table) UpdateChain(c *ruleset.Chain) {
	if !ValidChainName(c.Name) {
		if _, known := t.invalid[c.Name]; !known {
			t.log.Error("not a valid iptables chain name; the chain is not programmed", "chain", fmt.Sprintf("%q", c.Name))
			t.invalid[c.Name] = struct{}{}
		}
		return
	}
	r := t.renderRules(c.Name, c.Rules)
	old, had := t.chains[c.Name]
	if had && slices.Equal(old.hashes, r.hashes) {
		return
	}
	if had {
		t.numRules -= len(old.bodies)
	}
	t.numRules += len(r.bodies)
	t.chains[c.Name] = r
	delete(t.quarantined, qkey{rewrite, c.Name}) // new content: try it
	t.dirty = true
}

// Hashes returns the hashes of a chain's desired rules (nil when the
// chain is not desired): with them a rule read back from the kernel is
// known to be the one rendered.
func (t *Table) Hashes(chain string) []string {
	if c := t.chains[chain]; c != nil {
		return slices.Clone(c.hashes)
	}
	return nil
}

// RemoveChain forgets a chain; the next Apply deletes it from the kernel.
func (t *Table) RemoveChain(name string) {
	delete(t.invalid, name)
	delete(t.quarantined, qkey{rewrite, name})
	if old, ok := t.chains[name]; ok {
		t.numRules -= len(old.bodies)
		delete(t.chains, name)
		t.dirty = true
	}
}

// SetInserts sets the rules kept at the top of a kernel chain.
func (t *Table) SetInserts(kernelChain string, rules []ruleset.Rule) {
	t.inserts[kernelChain] = t.renderRules(kernelChain, rules)
	delete(t.quarantined, qkey{hooks, kernelChain})
	t.dirty = true
}

// SetAppends sets the rules kept at the bottom of a kernel chain. They
// are hashed as "<chain>*appends*", as Felix hashes them.
func (t *Table) SetAppends(kernelChain string, rules []ruleset.Rule) {
	t.appends[kernelChain] = t.renderRules(kernelChain+"*appends*", rules)
	delete(t.quarantined, qkey{hooks, kernelChain})
	t.dirty = true
}

// NumChains and NumRules describe the desired state (for metrics).
func (t *Table) NumChains() int { return len(t.chains) }

func (t *Table) NumRules() int { return t.numRules }

// ValidChainName reports whether iptables takes a name as one chain
// name: 1 to 28 characters from [A-Za-z0-9_.:/+@%=*-], not starting with
// "-" or "!". Every name the rule builders make is one.
func ValidChainName(name string) bool {
	if name == "" || len(name) > maxChainName || name[0] == '-' || name[0] == '!' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_.:/+@%=*-", c) >= 0) {
			return false
		}
	}
	return true
}

// maxChainName is iptables' limit on a chain name.
const maxChainName = 28

// itemKind says what one item of a plan does.
type itemKind uint8

const (
	rewrite  itemKind = iota // declare (create or flush) a chain and write its rules
	hooks                    // fix our rules in a kernel chain
	deletion                 // flush and delete a stale chain of ours
	flush                    // flush a stale chain that could not be deleted
)

// item is one change of a plan: the lines it writes, and what the kernel
// holds once they are in.
type item struct {
	kind    itemKind
	chain   string   // the chain rewritten, deleted or flushed; the kernel chain of hooks
	lines   []string // after the declaration (for rewrite, deletion and flush)
	hashes  []string // rewrite: the chain's hashes once written
	targets []string // rewrite: the chains its rules jump or go to
}

func (it item) declares() bool { return it.kind != hooks }

// plan is the restore input that turns a kernel state into the desired
// one: its items, in script order, and their text.
type plan struct {
	items  []item
	script string // "" when nothing needs writing
}

// plan computes the iptables-restore input that turns st into the desired
// state. Order: declare (create or flush) every chain to rewrite or
// delete; write the rewritten chains; fix the hooks in kernel chains;
// delete stale chains. Quarantined items are left out or replaced (see
// quarantine).
func (t *Table) plan(st *kernelState) plan {
	items := t.items(st)
	return plan{items: items, script: t.script(items)}
}

// items lists the changes that turn st into the desired state: rewrites
// by chain name, then hooks, then stale chains by name.
func (t *Table) items(st *kernelState) []item {
	var out []item
	for _, name := range slices.Sorted(maps.Keys(t.chains)) {
		c := t.chains[name]
		if q := t.quarantined[qkey{rewrite, name}]; q != nil {
			if q.level >= 2 {
				continue // the kernel keeps what it has
			}
			c = t.failClosedBody(name)
		}
		if have, exists := st.chains[name]; exists && sameHashes(have, c.hashes) {
			continue
		}
		it := item{kind: rewrite, chain: name, hashes: c.hashes, targets: c.targets, lines: make([]string, len(c.bodies))}
		for i, body := range c.bodies {
			it.lines[i] = line("-A", name, c.hashes[i], body)
		}
		out = append(out, it)
	}
	for _, kc := range KernelChains(t.Name) {
		if t.quarantined[qkey{hooks, kc}] != nil {
			continue
		}
		if lines := t.planHooks(kc, st.chains[kc]); len(lines) > 0 {
			out = append(out, item{kind: hooks, chain: kc, lines: lines})
		}
	}
	var stale []string
	for name := range st.chains {
		if _, want := t.chains[name]; !want && owned(name) {
			stale = append(stale, name)
		}
	}
	slices.Sort(stale)
	for _, name := range stale {
		switch q := t.quarantined[qkey{deletion, name}]; {
		case q == nil:
			out = append(out, item{kind: deletion, chain: name, lines: []string{"-X " + name}})
		case q.level == 1 && len(st.chains[name]) > 0:
			out = append(out, item{kind: flush, chain: name})
		}
	}
	return out
}

// script writes items as one table's section of a restore script:
// declarations first, then every item's lines, in order.
func (t *Table) script(items []item) string {
	lines, _ := t.lines(items)
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// lines are the lines of script, and for each line the index of the item
// it belongs to, or -1.
func (t *Table) lines(items []item) (lines []string, owner []int) {
	if len(items) == 0 {
		return nil, nil
	}
	lines, owner = append(lines, "*"+t.Name), append(owner, -1)
	for i, it := range items {
		if it.declares() {
			lines, owner = append(lines, ":"+it.chain+" - [0:0]"), append(owner, i)
		}
	}
	for i, it := range items {
		for _, l := range it.lines {
			lines, owner = append(lines, l), append(owner, i)
		}
	}
	return append(lines, "COMMIT"), append(owner, -1)
}

// failClosedBody is what a chain the kernel refused holds instead of its
// rules: one rule that drops every packet that reaches it.
func (t *Table) failClosedBody(name string) *rendered {
	return t.renderRules(name, []ruleset.Rule{{Comment: []string{"Refused by the kernel: fail closed"}, Action: ruleset.Drop{}}})
}

// commit records items the kernel took in st, the cached view of the
// table. It reports whether hooks changed: those are deleted by their
// saved text, so the table must be read again.
func commit(items []item, st *kernelState) (hooksChanged bool) {
	for _, it := range items {
		switch it.kind {
		case rewrite:
			rs := make([]savedRule, len(it.hashes))
			for i, h := range it.hashes {
				rs[i] = savedRule{hash: h}
			}
			st.chains[it.chain] = rs
		case deletion:
			delete(st.chains, it.chain)
		case flush:
			st.chains[it.chain] = nil
		case hooks:
			hooksChanged = true
		}
	}
	return hooksChanged
}

// wrote records a successful write of a whole plan. The kernel now holds
// what we wrote, so the next apply need not read it back (the cost of a
// change stays the size of the change). Drift by others is caught by the
// post-write and periodic re-reads. Hooks in kernel chains are deleted by
// their saved text, so after touching them the table is re-read.
func (t *Table) wrote(p plan, st *kernelState) {
	t.dirty = false
	if commit(p.items, st) {
		t.kernel = nil
		return
	}
	t.kernel = st
}

func sameHashes(have []savedRule, want []string) bool {
	if len(have) != len(want) {
		return false
	}
	for i := range have {
		if have[i].hash != want[i] {
			return false
		}
	}
	return true
}

// planHooks makes our rules in a kernel chain sit where they belong:
// inserts at the top (insert mode) or just before the appends (append
// mode), appends at the bottom, nothing of ours anywhere else. When the
// layout is wrong, all our rules are deleted by value and written again.
func (t *Table) planHooks(kc string, have []savedRule) []string {
	ins, app := t.inserts[kc], t.appends[kc]
	if ins == nil {
		ins = &rendered{}
	}
	if app == nil {
		app = &rendered{}
	}
	if t.hooksInPlace(have, ins.hashes, app.hashes) {
		return nil
	}
	var out []string
	for _, r := range have {
		if r.hash != "" {
			out = append(out, fmt.Sprintf("-D %s %s", kc, r.text))
		}
	}
	if t.insertMode {
		for i := len(ins.bodies) - 1; i >= 0; i-- {
			out = append(out, line("-I", kc+" 1", ins.hashes[i], ins.bodies[i]))
		}
	} else {
		for i, body := range ins.bodies {
			out = append(out, line("-A", kc, ins.hashes[i], body))
		}
	}
	for i, body := range app.bodies {
		// Appended rules render under the kernel chain, hashed as "<chain>*appends*".
		out = append(out, line("-A", kc, app.hashes[i], body))
	}
	return out
}
func (t *Table) hooksInPlace(have []savedRule, insH, appH []string) bool {
	var ours []int
	for i, r := range have {
		if r.hash != "" {
			ours = append(ours, i)
		}
	}
	if len(ours) != len(insH)+len(appH) {
		return false
	}
	n := len(have)
	for i, h := range appH { // appends last
		if have[n-len(appH)+i].hash != h {
			return false
		}
	}
	for i, h := range insH {
		pos := i // insert mode: at the top
		if !t.insertMode {
			pos = n - len(appH) - len(insH) + i // append mode: just before the appends
		}
		if have[pos].hash != h {
			return false
		}
	}
	return true
}
