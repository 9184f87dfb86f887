package iptables

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
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
	sections := bytes.Split(append([]byte("\n"), out...), []byte("\n*"))
	if _, err := parseSave(sections[0]); err != nil {
		return nil, err
	}
	for _, sec := range sections[1:] {
		name, _, _ := bytes.Cut(sec, []byte("\n"))
		st, err := parseSave(sec)
		if err != nil {
			return nil, err
		}
		all[string(bytes.TrimSpace(name))] = st
	}
	return all, nil
}

// parseSave reads one table of iptables-save output.
func parseSave(out []byte) (*kernelState, error) {
	st := &kernelState{chains: map[string][]savedRule{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		line := sc.Text()
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
			r := savedRule{text: rest}
			if m := hashRE.FindStringSubmatch(rest); m != nil {
				r.hash = m[1]
			} else if oldRuleRE.MatchString(rest) {
				r.hash = "OLD"
			}
			st.chains[chain] = append(st.chains[chain], r)
		}
	}
	return st, sc.Err()
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

	chains  map[string]*rendered
	inserts map[string]*rendered // kernel chain -> rules at the top (or before appends)
	appends map[string]*rendered // kernel chain -> rules always at the bottom

	kernel *kernelState // cached read; nil means read before the next write
	dirty  bool

	// LinesWritten counts restore lines written (for tests and benchmarks).
	LinesWritten int
	// BytesWritten counts restore bytes written.
	BytesWritten int
}

// rendered is a list of rules as restore text and their hashes.
type rendered struct {
	bodies, hashes []string
}

func (t *Table) renderRules(hashedAs string, rules []ruleset.Rule) *rendered {
	r := &rendered{bodies: make([]string, len(rules))}
	for i, x := range rules {
		r.bodies[i] = t.render.Rule(x)
	}
	r.hashes = hashes(hashedAs, r.bodies)
	return r
}

func newTable(name string, family int, insertMode bool, render Renderer, log *slog.Logger) *Table {
	return &Table{Name: name, Family: family, insertMode: insertMode, render: render,
		log:    log.With("table", name, "ip_version", family),
		chains: map[string]*rendered{}, inserts: map[string]*rendered{}, appends: map[string]*rendered{}, dirty: true}
}

// UpdateChain sets a chain's desired rules.
func (t *Table) UpdateChain(c *ruleset.Chain) {
	r := t.renderRules(c.Name, c.Rules)
	if old, ok := t.chains[c.Name]; ok && slices.Equal(old.hashes, r.hashes) {
		return
	}
	t.chains[c.Name] = r
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
	if _, ok := t.chains[name]; ok {
		delete(t.chains, name)
		t.dirty = true
	}
}

// SetInserts sets the rules kept at the top of a kernel chain.
func (t *Table) SetInserts(kernelChain string, rules []ruleset.Rule) {
	t.inserts[kernelChain] = t.renderRules(kernelChain, rules)
	t.dirty = true
}

// SetAppends sets the rules kept at the bottom of a kernel chain. They
// are hashed as "<chain>*appends*", as Felix hashes them.
func (t *Table) SetAppends(kernelChain string, rules []ruleset.Rule) {
	t.appends[kernelChain] = t.renderRules(kernelChain+"*appends*", rules)
	t.dirty = true
}

// NumChains and NumRules describe the desired state (for metrics).
func (t *Table) NumChains() int { return len(t.chains) }

func (t *Table) NumRules() int {
	n := 0
	for _, c := range t.chains {
		n += len(c.bodies)
	}
	return n
}

// wrote records a successful write. The kernel now holds what we wrote,
// so the next apply need not read it back (the cost of a change stays the
// size of the change). Drift by others is caught by the post-write and
// periodic re-reads. Hooks in kernel chains are deleted by their saved
// text, so after touching them the table is re-read.
func (t *Table) wrote(p plan, st *kernelState) {
	t.dirty = false
	if p.hooks {
		return
	}
	for name, hashes := range p.rewritten {
		rs := make([]savedRule, len(hashes))
		for i, h := range hashes {
			rs[i] = savedRule{hash: h}
		}
		st.chains[name] = rs
	}
	for _, name := range p.deleted {
		delete(st.chains, name)
	}
	t.kernel = st
}

// plan is the restore input that turns a kernel state into the desired
// one, and what it changes.
type plan struct {
	script    string              // "" when nothing needs writing
	rewritten map[string][]string // chain -> its new hashes
	deleted   []string
	hooks     bool // rules in kernel chains change
}

// plan computes the iptables-restore input that turns st into the desired
// state. Order: declare (create or flush) every chain to rewrite or
// delete; write the rewritten chains; fix the hooks in kernel chains;
// delete stale chains.
func (t *Table) plan(st *kernelState) plan {
	p := plan{rewritten: map[string][]string{}}
	var decl, rules, hooks, dels strings.Builder
	names := make([]string, 0, len(t.chains))
	for n := range t.chains {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		c := t.chains[name]
		have, exists := st.chains[name]
		if exists && sameHashes(have, c.hashes) {
			continue
		}
		fmt.Fprintf(&decl, ":%s - [0:0]\n", name)
		for i, body := range c.bodies {
			rules.WriteString(line("-A", name, c.hashes[i], body))
			rules.WriteByte('\n')
		}
		p.rewritten[name] = c.hashes
	}
	var stale []string
	for name := range st.chains {
		if _, want := t.chains[name]; !want && owned(name) {
			stale = append(stale, name)
		}
	}
	slices.Sort(stale)
	for _, name := range stale {
		fmt.Fprintf(&decl, ":%s - [0:0]\n", name)
		fmt.Fprintf(&dels, "-X %s\n", name)
	}
	p.deleted = stale
	for _, kc := range KernelChains(t.Name) {
		t.planHooks(&hooks, kc, st.chains[kc])
	}
	p.hooks = hooks.Len() > 0
	if decl.Len()+rules.Len()+hooks.Len()+dels.Len() == 0 {
		return p
	}
	p.script = "*" + t.Name + "\n" + decl.String() + rules.String() + hooks.String() + dels.String() + "COMMIT\n"
	return p
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
func (t *Table) planHooks(b *strings.Builder, kc string, have []savedRule) {
	ins, app := t.inserts[kc], t.appends[kc]
	if ins == nil {
		ins = &rendered{}
	}
	if app == nil {
		app = &rendered{}
	}
	if t.hooksInPlace(have, ins.hashes, app.hashes) {
		return
	}
	for _, r := range have {
		if r.hash != "" {
			fmt.Fprintf(b, "-D %s %s\n", kc, r.text)
		}
	}
	if t.insertMode {
		for i := len(ins.bodies) - 1; i >= 0; i-- {
			b.WriteString(line("-I", kc+" 1", ins.hashes[i], ins.bodies[i]) + "\n")
		}
	} else {
		for i, body := range ins.bodies {
			b.WriteString(line("-A", kc, ins.hashes[i], body) + "\n")
		}
	}
	for i, body := range app.bodies {
		// Appended rules render under the kernel chain, hashed as "<chain>*appends*".
		b.WriteString(line("-A", kc, app.hashes[i], body) + "\n")
	}
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
