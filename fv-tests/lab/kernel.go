package lab

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"ocelot/internal/netlab"
)

// The iptables command families a host's rules may be in.
var saveCommands = []string{"iptables-legacy-save", "iptables-nft-save", "ip6tables-legacy-save", "ip6tables-nft-save"}

// KernelState describes what the agent programs in a host's namespace, in
// a form that two agents' work can be compared in: every iptables table
// of both backends and families (chains sorted by name, each chain's rules
// in order, counters dropped, empty tables left out), the IP sets with
// their members sorted (without the random hash seed and the sizes that
// depend on a set's history), the routes and the permanent neighbour
// entries.
func (h *Host) KernelState() string {
	var b strings.Builder
	for _, save := range saveCommands {
		out, err := h.Exec(save)
		if err != nil {
			fmt.Fprintf(&b, "== %s: %v\n", save, err)
			continue
		}
		if s := normalizeSave(out); s != "" {
			fmt.Fprintf(&b, "== %s\n%s", save, s)
		}
	}
	sets, _ := h.Exec("ipset", "save")
	fmt.Fprintf(&b, "== ipset\n%s", sortedLines(setNoise.ReplaceAllString(sets, "")))
	for _, cmd := range [][]string{{"ip", "-4", "route", "show", "table", "main"}, {"ip", "-6", "route", "show", "table", "main"},
		{"ip", "neigh", "show", "nud", "permanent"}} {
		out, _ := h.Exec(cmd[0], cmd[1:]...)
		fmt.Fprintf(&b, "== %s\n%s", strings.Join(cmd, " "), sortedLines(out))
	}
	return b.String()
}

// setNoise is what differs between identical sets made at different times.
var setNoise = regexp.MustCompile(` (initval 0x[0-9a-f]+|hashsize \d+|bucketsize \d+)`)

var counters = regexp.MustCompile(` \[\d+:\d+\]$`)

// normalizeSave turns iptables-save output into tables and chains sorted
// by name, rules in order within a chain, without counters and comments.
// A table with no rules and only built-in chains that accept is the same
// as a table never loaded, and is left out.
func normalizeSave(out string) string {
	type table struct {
		policies map[string]string
		rules    map[string][]string
	}
	tables := map[string]*table{}
	var cur *table
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			cur = &table{policies: map[string]string{}, rules: map[string][]string{}}
			tables[line[1:]] = cur
		case cur == nil, line == "", strings.HasPrefix(line, "#"), line == "COMMIT":
		case strings.HasPrefix(line, ":"):
			name, policy, _ := strings.Cut(counters.ReplaceAllString(line[1:], ""), " ")
			cur.policies[name] = policy
		case strings.HasPrefix(line, "-A "):
			name, _, _ := strings.Cut(line[3:], " ")
			cur.rules[name] = append(cur.rules[name], line)
		default:
			cur.rules["?"] = append(cur.rules["?"], line)
		}
	}
	var b strings.Builder
	for _, tn := range SortedKeys(tables) {
		t := tables[tn]
		empty := len(t.rules) == 0
		for _, policy := range t.policies {
			empty = empty && policy == "ACCEPT" // user chains have "-"
		}
		if empty {
			continue
		}
		fmt.Fprintf(&b, "*%s\n", tn)
		for _, name := range SortedKeys(t.policies) {
			fmt.Fprintf(&b, ":%s %s\n", name, t.policies[name])
			for _, r := range t.rules[name] {
				b.WriteString(r + "\n")
			}
		}
		if r := t.rules["?"]; len(r) > 0 {
			b.WriteString(strings.Join(r, "\n") + "\n")
		}
	}
	return b.String()
}

func sortedLines(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

// Wipe removes everything an agent programs from the host's namespace, as
// on a freshly booted host: every table of both backends that holds
// anything, every IP set, the routes of Ocelot's protocol and the
// permanent neighbour entries. The agent must be stopped.
func (h *Host) Wipe() {
	t := h.Lab.T
	t.Helper()
	for _, save := range saveCommands {
		out, err := h.Exec(save)
		if err != nil {
			continue
		}
		cmd := strings.TrimSuffix(save, "-save")
		for _, line := range strings.Split(out, "\n") {
			if table, ok := strings.CutPrefix(line, "*"); ok {
				h.NS.MustExec(t, cmd, "-t", table, "-F")
				h.NS.MustExec(t, cmd, "-t", table, "-X")
			}
		}
	}
	h.NS.MustExec(t, "ipset", "destroy")
	// The agent's routes are those of its protocol (boot, iproute2's
	// default too) on the VMs' taps.
	links := h.NS.MustExec(t, "ip", "-o", "link", "show")
	for _, line := range strings.Split(links, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[1], "tap") {
			continue
		}
		tap, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		h.NS.MustExec(t, "ip", "-4", "route", "flush", "dev", tap, "proto", "boot")
		h.NS.MustExec(t, "ip", "-6", "route", "flush", "dev", tap, "proto", "boot")
		h.NS.MustExec(t, "ip", "neigh", "flush", "dev", tap, "nud", "permanent")
	}
}

// Iptables is the iptables command ("iptables-legacy" or "iptables-nft")
// whose tables hold the agent's IPv4 chains ("" when neither does).
func (h *Host) Iptables() string {
	for _, cmd := range []string{"iptables-legacy", "iptables-nft"} {
		if out, err := h.Exec(cmd+"-save", "-t", "filter"); err == nil && strings.Contains(out, ":cali-") {
			return cmd
		}
	}
	return ""
}

// IptablesSave is the IPv4 filter table of the backend holding the
// agent's chains.
func (h *Host) IptablesSave(t netlab.T) string {
	t.Helper()
	cmd := h.Iptables()
	if cmd == "" {
		cmd = "iptables"
	}
	return h.NS.MustExec(t, cmd+"-save", "-t", "filter")
}
