package iptables

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"
)

// KernelChains are the built-in chains of each table.
var KernelChains = map[string][]string{
	"filter": {"INPUT", "FORWARD", "OUTPUT"},
	"nat":    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":    {"PREROUTING", "OUTPUT"},
}

// OwnedChainPrefixes are the chain-name prefixes this driver owns (Felix's,
// including historic ones), so a takeover from any Felix sweeps its chains.
var OwnedChainPrefixes = []string{"cali-", "califw-", "calitw-", "califh-", "calith-", "calipi-", "calipo-"}

func owned(chain string) bool {
	for _, p := range OwnedChainPrefixes {
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
	oldRuleRE = regexp.MustCompile(`(?:-j|--jump|-g|--goto) (?:` + strings.Join(OwnedChainPrefixes, "|") + `)`)
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

// parseSave reads the output of iptables-save -t <table>.
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

// Commands are the binaries of one backend and family.
type Commands struct {
	Save, Restore string
	// LockProbe is the --wait-interval for iptables-restore.
	LockProbe time.Duration
}

// Table holds the desired state of one table of one family and applies it.
// It is not safe for concurrent use.
type Table struct {
	Name   string // filter, nat, mangle, raw
	Family int    // 4 or 6

	cmds       Commands
	insertMode bool
	log        *slog.Logger

	chains  map[string]*Chain
	hashes  map[string][]string
	inserts map[string][]Rule // kernel chain -> rules at the top (or before appends)
	appends map[string][]Rule // kernel chain -> rules always at the bottom

	kernel *kernelState // cached read; nil means read before the next write
	dirty  bool

	// LinesWritten counts restore lines written (for tests and benchmarks).
	LinesWritten int
	// BytesWritten counts restore bytes written.
	BytesWritten int
}

// NewTable returns a table driver. insertMode places hooks at the top of
// kernel chains (ChainInsertMode=insert) rather than after foreign rules.
func NewTable(name string, family int, cmds Commands, insertMode bool, log *slog.Logger) *Table {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Table{Name: name, Family: family, cmds: cmds, insertMode: insertMode,
		log:    log.With("table", name, "ip_version", family),
		chains: map[string]*Chain{}, hashes: map[string][]string{},
		inserts: map[string][]Rule{}, appends: map[string][]Rule{}, dirty: true}
}

// UpdateChain sets a chain's desired rules.
func (t *Table) UpdateChain(c *Chain) {
	h := Hashes(c.Name, c.Rules)
	if old, ok := t.hashes[c.Name]; ok && slices.Equal(old, h) {
		return
	}
	t.chains[c.Name], t.hashes[c.Name] = c, h
	t.dirty = true
}

// RemoveChain forgets a chain; the next Apply deletes it from the kernel.
func (t *Table) RemoveChain(name string) {
	if _, ok := t.chains[name]; ok {
		delete(t.chains, name)
		delete(t.hashes, name)
		t.dirty = true
	}
}

// Chain returns a desired chain, or nil.
func (t *Table) Chain(name string) *Chain { return t.chains[name] }

// SetInserts sets the rules kept at the top of a kernel chain.
func (t *Table) SetInserts(kernelChain string, rules []Rule) {
	t.inserts[kernelChain] = rules
	t.dirty = true
}

// SetAppends sets the rules kept at the bottom of a kernel chain.
func (t *Table) SetAppends(kernelChain string, rules []Rule) {
	t.appends[kernelChain] = rules
	t.dirty = true
}

// Invalidate forces the next Apply to read the kernel and repair any drift.
func (t *Table) Invalidate() {
	t.kernel = nil
	t.dirty = true
}

// Dirty reports whether Apply has work to do.
func (t *Table) Dirty() bool { return t.dirty }

// NumChains and NumRules describe the desired state (for metrics).
func (t *Table) NumChains() int { return len(t.chains) }

func (t *Table) NumRules() int {
	n := 0
	for _, c := range t.chains {
		n += len(c.Rules)
	}
	return n
}

// Apply brings the kernel in line: read (if the cached view is stale),
// compute the minimal restore script, write it. On a write failure the
// state is re-read and the write retried a few times with back-off.
func (t *Table) Apply(ctx context.Context) error {
	if !t.dirty {
		return nil
	}
	var lastErr error
	delay := 10 * time.Millisecond
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(delay):
			}
			delay *= 3
		}
		if t.kernel == nil {
			st, err := t.read(ctx)
			if err != nil {
				lastErr = err
				continue
			}
			t.kernel = st
		}
		p := t.plan(t.kernel)
		if p.script == "" {
			t.dirty = false
			return nil
		}
		st := t.kernel
		t.kernel = nil // until the write is known to have worked
		if err := t.restore(ctx, p.script); err != nil {
			lastErr = err
			t.log.Warn("iptables-restore failed; re-reading and retrying", "attempt", attempt+1, "err", err)
			continue
		}
		// Our own write succeeded: the kernel now holds what we wrote, so
		// the next apply need not read it back (the cost of a change stays
		// the size of the change). Drift by others is caught by the
		// post-write and periodic re-reads. Hooks in kernel chains are
		// deleted by their saved text, so after touching them, re-read.
		if !p.hooks {
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
		t.dirty = false
		return nil
	}
	return fmt.Errorf("%s table (IPv%d): %w", t.Name, t.Family, lastErr)
}

func (t *Table) read(ctx context.Context) (*kernelState, error) {
	saveCalls.Inc()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, t.cmds.Save, "-t", t.Name)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		saveErrors.Inc()
		return nil, fmt.Errorf("%s -t %s: %w: %s", t.cmds.Save, t.Name, err, strings.TrimSpace(stderr.String()))
	}
	st, err := parseSave(out)
	if err != nil {
		saveErrors.Inc()
	}
	return st, err
}

func (t *Table) restore(ctx context.Context, script string) error {
	restoreCalls.Inc()
	args := []string{"--noflush", "--wait", "10"}
	if t.cmds.LockProbe > 0 {
		args = append(args, "--wait-interval", fmt.Sprint(t.cmds.LockProbe.Microseconds()))
	}
	cmd := exec.CommandContext(ctx, t.cmds.Restore, args...)
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	lines := strings.Count(script, "\n")
	t.LinesWritten += lines
	t.BytesWritten += len(script)
	linesExecuted.WithLabelValues(fmt.Sprint(t.Family), t.Name).Add(float64(lines))
	if err := cmd.Run(); err != nil {
		restoreErrors.Inc()
		return fmt.Errorf("%s: %w: %s", t.cmds.Restore, err, strings.TrimSpace(out.String()))
	}
	return nil
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
		want := t.hashes[name]
		have, exists := st.chains[name]
		if exists && sameHashes(have, want) {
			continue
		}
		fmt.Fprintf(&decl, ":%s - [0:0]\n", name)
		for i, r := range t.chains[name].Rules {
			rules.WriteString(r.render("-A", name, want[i]))
			rules.WriteByte('\n')
		}
		p.rewritten[name] = want
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
	for _, kc := range KernelChains[t.Name] {
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
	insName, appName := kc, kc+"*appends*"
	insH, appH := Hashes(insName, ins), Hashes(appName, app)
	if t.hooksInPlace(have, insH, appH) {
		return
	}
	for _, r := range have {
		if r.hash != "" {
			fmt.Fprintf(b, "-D %s %s\n", kc, r.text)
		}
	}
	if t.insertMode {
		for i := len(ins) - 1; i >= 0; i-- {
			b.WriteString(ins[i].render("-I", kc+" 1", insH[i]) + "\n")
		}
	} else {
		for i, r := range ins {
			b.WriteString(r.render("-A", kc, insH[i]) + "\n")
		}
	}
	for i, r := range app {
		// Appended rules render under the kernel chain, hashed as "<chain>*appends*".
		b.WriteString(r.render("-A", kc, appH[i]) + "\n")
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

// ErrNoBinary means neither backend's binaries were found.
var ErrNoBinary = errors.New("no iptables binaries found")
