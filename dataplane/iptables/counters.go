package iptables

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// RuleCounter is a rule's packet and byte counters as the kernel keeps
// them, with the rule's hash ("" for a rule that is not ours).
type RuleCounter struct {
	Hash           string
	Packets, Bytes uint64
}

// CounterReader is a Runner that can read a table's rule counters
// without resetting them (iptables-save -c).
type CounterReader interface {
	SaveCounters(ctx context.Context, table string) ([]byte, error)
}

// ReadCounters reads a table's rule counters, by chain, in rule order.
// Reading does not change them (no -Z) and takes no lock a restore waits
// for longer than one iptables-save does.
func ReadCounters(ctx context.Context, r Runner, table string) (map[string][]RuleCounter, error) {
	cr, ok := r.(CounterReader)
	if !ok {
		return nil, fmt.Errorf("the %T backend cannot read counters", r)
	}
	out, err := cr.SaveCounters(ctx, table)
	if err != nil {
		return nil, err
	}
	return parseCounters(out)
}

// parseCounters reads "[packets:bytes] -A chain rule" lines.
func parseCounters(out []byte) (map[string][]RuleCounter, error) {
	chains := map[string][]RuleCounter{}
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\r\n")
		if !strings.HasPrefix(line, "[") {
			continue
		}
		counts, rest, ok := strings.Cut(line[1:], "] -A ")
		if !ok {
			continue
		}
		p, b, ok := strings.Cut(counts, ":")
		packets, err1 := strconv.ParseUint(p, 10, 64)
		bytes, err2 := strconv.ParseUint(b, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("iptables-save -c: bad counters in %q", line)
		}
		chain, rule, _ := strings.Cut(rest, " ")
		c := RuleCounter{Packets: packets, Bytes: bytes, Hash: ruleHash(rule)}
		chains[chain] = append(chains[chain], c)
	}
	return chains, nil
}

// ruleHash finds a rule's hash comment as hashRE does, without a regular
// expression: a scrape reads every rule of the filter table.
func ruleHash(rule string) string {
	for rest := rule; ; {
		i := strings.Index(rest, "--comment ")
		if i < 0 {
			return ""
		}
		rest = strings.TrimPrefix(rest[i+len("--comment "):], `"`)
		if h, ok := strings.CutPrefix(rest, HashPrefix); ok {
			n := strings.IndexFunc(h, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
			})
			if n < 0 {
				n = len(h)
			}
			if n > 0 {
				return h[:n]
			}
		}
	}
}

// SaveCounters runs iptables-save -c for one table.
func (r execRunner) SaveCounters(ctx context.Context, table string) ([]byte, error) {
	return r.save(ctx, "-c", "-t", table)
}
