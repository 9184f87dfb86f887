package lab

import (
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strings"
)

// A host's own state, as opposed to what an agent programs for its VMs.
// The hostile-input suite captures it before a case and compares it
// after: whatever the datastore says, an agent must leave the host's own
// interfaces, addresses, routes, neighbours, policy rules and sysctls as
// they were, and add no iptables rule outside its own chains.

// OwnState is a host's own state in comparable sections: each section a
// sorted list of normalised lines. Interfaces named with the workload
// prefix, and the agent's IFB devices for QoS controls (bwcali*), are the
// agent's and are left out; what sits on the workload interfaces is
// checked separately (WorkloadRoutes, WorkloadNeighbours).
type OwnState struct {
	Sections map[string][]string
	// WorkloadRoutes and WorkloadNeighbours are what is on the workload
	// interfaces (see Host.WorkloadRoutes and Host.WorkloadNeighbours).
	WorkloadRoutes, WorkloadNeighbours []string
	// Saves are the raw outputs of the iptables save commands, to put a
	// damaged host back (RestoreIptables).
	Saves map[string]string
}

// OwnState reads the host's own state, in one command run in its
// namespace. workloadPrefix is the agent's InterfacePrefix ("tap" in the
// lab).
func (h *Host) OwnState(workloadPrefix string) OwnState {
	s := OwnState{Sections: map[string][]string{}, Saves: map[string]string{}}
	isWorkload := func(iface string) bool {
		return strings.HasPrefix(iface, workloadPrefix) || strings.HasPrefix(iface, agentIFBPrefix)
	}
	cmds := [][2]string{
		{"links", "ip -o link show"}, {"addresses", "ip -o addr show"}, {"ipsets", "ipset list -n"},
		{"qdiscs", "tc qdisc show"},
		// Every interface's and the global sysctls; the workloads' are
		// left out below.
		{"sysctls", `sysctl -a -r '^net\.ipv4\.ip_forward|^net\.ipv[46]\.conf\.'`},
	}
	for _, fam := range []string{"-4", "-6"} {
		cmds = append(cmds, [2]string{"routes" + fam, "ip " + fam + " route show table all"},
			[2]string{"rules" + fam, "ip " + fam + " rule show"}, [2]string{"neighbours" + fam, "ip " + fam + " neigh show nud permanent"})
	}
	for _, cmd := range saveCommands {
		cmds = append(cmds, [2]string{cmd, cmd})
	}
	out := h.batch(cmds)

	var links, addrs []string
	for _, line := range lines(out["links"]) {
		// "2: eth0@if7: <...> mtu 1500 ... state UP ...\    link/ether ..."
		f := strings.Fields(line)
		if len(f) < 2 || isWorkload(ifaceName(f[1])) {
			continue
		}
		links = append(links, line)
	}
	for _, line := range lines(out["addresses"]) {
		f := strings.Fields(line)
		if len(f) < 2 || isWorkload(ifaceName(f[1])) {
			continue
		}
		addrs = append(addrs, addrNoise.ReplaceAllString(line, ""))
	}
	s.Sections["links"], s.Sections["addresses"] = sorted(links), sorted(addrs)

	var qdiscs []string
	for _, line := range lines(out["qdiscs"]) {
		if dev := fieldAfter(line, "dev"); dev == "" || !isWorkload(dev) {
			qdiscs = append(qdiscs, line)
		}
	}
	s.Sections["qdiscs"] = sorted(qdiscs)
	for _, fam := range []string{"-4", "-6"} {
		for _, sec := range []string{"routes" + fam, "neighbours" + fam} {
			var own []string
			for _, line := range lines(out[sec]) {
				if dev := fieldAfter(line, "dev"); dev != "" && isWorkload(dev) {
					continue
				}
				own = append(own, strings.TrimSpace(line))
			}
			s.Sections[sec] = sorted(own)
		}
		s.Sections["rules"+fam] = sorted(lines(out["rules"+fam]))
	}
	var sys []string
	for _, line := range lines(out["sysctls"]) {
		// net.ipv4.conf.<iface>.<name> = <value>
		if f := strings.SplitN(line, ".", 5); len(f) == 5 && f[2] == "conf" && isWorkload(f[3]) {
			continue
		}
		sys = append(sys, line)
	}
	s.Sections["sysctls"] = sorted(sys)
	for _, cmd := range saveCommands {
		s.Saves[cmd] = out[cmd]
		s.Sections[cmd] = ForeignRules(out[cmd])
	}
	var sets []string
	for _, name := range lines(out["ipsets"]) {
		if !strings.HasPrefix(name, "cali") {
			sets = append(sets, name)
		}
	}
	s.Sections["ipsets (not cali*)"] = sorted(sets)
	s.WorkloadRoutes = workloadRoutes(out["routes-4"]+out["routes-6"], workloadPrefix)
	s.WorkloadNeighbours = workloadNeighbours(out["neighbours-4"]+out["neighbours-6"], workloadPrefix)
	return s
}

// batch runs shell commands in the host's namespace with one process,
// returning each one's standard output by name ("error: ..." when it
// failed).
func (h *Host) batch(cmds [][2]string) map[string]string {
	const mark = "@@ocelot-lab@@ "
	var script strings.Builder
	for _, c := range cmds {
		fmt.Fprintf(&script, "echo '%s%s'; %s 2>/dev/null || echo 'error: exit status '$?\n", mark, c[0], c[1])
	}
	raw, err := h.output("sh", "-c", script.String())
	out := map[string]string{}
	if err != nil {
		for _, c := range cmds {
			out[c[0]] = "error: " + err.Error()
		}
		return out
	}
	name := ""
	var b strings.Builder
	for _, line := range strings.SplitAfter(raw, "\n") {
		if n, ok := strings.CutPrefix(line, mark); ok {
			if name != "" {
				out[name] = b.String()
			}
			name, b = strings.TrimSpace(n), strings.Builder{}
			continue
		}
		b.WriteString(line)
	}
	if name != "" {
		out[name] = b.String()
	}
	return out
}

// Diff lists, per section, the lines that appeared (+) and disappeared (-)
// from base to s.
func (s OwnState) Diff(base OwnState) []string {
	var out []string
	names := map[string]bool{}
	for n := range s.Sections {
		names[n] = true
	}
	for n := range base.Sections {
		names[n] = true
	}
	for _, n := range SortedKeys(names) {
		added, removed := diffLines(base.Sections[n], s.Sections[n])
		for _, l := range removed {
			out = append(out, fmt.Sprintf("%s: - %s", n, l))
		}
		for _, l := range added {
			out = append(out, fmt.Sprintf("%s: + %s", n, l))
		}
	}
	return out
}

// ForeignRules normalises an iptables-save output to what is not the
// agent's own: every table's built-in chains with their policies and rules
// (the agent's hooks into them included: they never change once in
// place), without counters; the agent's cali- chains and their rules left
// out. Any rule an agent adds outside its chains, or any change it
// makes to a built-in chain, shows up here.
func ForeignRules(save string) []string {
	var out []string
	table := ""
	for _, line := range lines(save) {
		switch {
		case strings.HasPrefix(line, "#") || line == "COMMIT":
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":"):
			if !strings.HasPrefix(line, ":cali-") {
				out = append(out, table+" "+counterNoise.ReplaceAllString(line, ""))
			}
		case strings.HasPrefix(line, "-A cali-"):
		default:
			out = append(out, table+" "+counterNoise.ReplaceAllString(line, ""))
		}
	}
	return out
}

// UncommentedAgentRules lists the rules in cali- chains that do not start
// with the agent's hash comment ("-m comment --comment "cali:<16>""):
// every rule an agent writes carries one, so a rule without it was
// smuggled in, for example by a parameter that broke out of its quotes.
func UncommentedAgentRules(save string) []string {
	var out []string
	table := ""
	for _, line := range lines(save) {
		if strings.HasPrefix(line, "*") {
			table = line[1:]
		}
		if strings.HasPrefix(line, "-A cali-") && !agentRule.MatchString(line) {
			out = append(out, table+" "+line)
		}
	}
	return out
}

// agentRule is the start of a rule the agent wrote: iptables-save prints
// addresses, interfaces and protocol first, then the matches in the order
// they were given, and the agent gives its hash comment first.
var agentRule = regexp.MustCompile(`^-A cali-\S+ ((! )?-[isodp] \S+ )*-m comment --comment "?cali:[A-Za-z0-9_-]{16}"? `)

// WorkloadRoutes lists the routes (every table, both families) on
// interfaces with the workload prefix as "<destination> dev <iface>",
// leaving out the kernel's own (link-local, multicast, local).
func (h *Host) WorkloadRoutes(workloadPrefix string) []string {
	out := h.batch([][2]string{{"-4", "ip -4 route show table all"}, {"-6", "ip -6 route show table all"}})
	return workloadRoutes(out["-4"]+out["-6"], workloadPrefix)
}

func workloadRoutes(routes, workloadPrefix string) []string {
	var out []string
	for _, line := range lines(routes) {
		dev := fieldAfter(line, "dev")
		if !strings.HasPrefix(dev, workloadPrefix) || fieldAfter(line, "proto") == "kernel" {
			continue
		}
		f := strings.Fields(line)
		dst := f[0]
		if isRouteType(dst) && len(f) > 1 {
			dst = f[0] + " " + f[1]
		}
		out = append(out, dst+" dev "+dev)
	}
	return sorted(out)
}

// WorkloadNeighbours lists the permanent neighbour entries on interfaces
// with the workload prefix as "<address> dev <iface> lladdr <mac>".
func (h *Host) WorkloadNeighbours(workloadPrefix string) []string {
	got, _ := h.output("ip", "neigh", "show", "nud", "permanent")
	return workloadNeighbours(got, workloadPrefix)
}

func workloadNeighbours(neigh, workloadPrefix string) []string {
	var out []string
	for _, line := range lines(neigh) {
		dev := fieldAfter(line, "dev")
		if !strings.HasPrefix(dev, workloadPrefix) {
			continue
		}
		out = append(out, strings.Fields(line)[0]+" dev "+dev+" lladdr "+fieldAfter(line, "lladdr"))
	}
	return sorted(out)
}

// RestoreIptables writes a saved state of one save command's family and
// backend back (all of its tables, replacing what is there).
func (h *Host) RestoreIptables(saveCmd, save string) error {
	restore := strings.Replace(saveCmd, "-save", "-restore", 1)
	cmd := exec.Command("ip", "netns", "exec", h.NS.Name, restore)
	cmd.Stdin = strings.NewReader(save)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", restore, err, out)
	}
	return nil
}

// output runs a command in the host's namespace and returns what it
// printed on stdout (ip prints warnings about peers in other namespaces
// on stderr).
func (h *Host) output(name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS.Name, name}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), err
}

// agentIFBPrefix names the IFB devices the agent makes for QoS controls.
const agentIFBPrefix = "bwcali"

var (
	counterNoise = regexp.MustCompile(` \[\d+:\d+\]`)
	// Lifetimes count down, and DAD flags come and go.
	addrNoise = regexp.MustCompile(`\\\s+valid_lft.*$| tentative| dadfailed`)
)

func isRouteType(s string) bool {
	switch s {
	case "local", "broadcast", "multicast", "unicast", "anycast", "blackhole", "unreachable", "prohibit", "throw", "nat":
		return true
	}
	return false
}

// ifaceName turns "eth0@if7:" into "eth0".
func ifaceName(f string) string {
	f = strings.TrimSuffix(f, ":")
	name, _, _ := strings.Cut(f, "@")
	return name
}

// fieldAfter returns the field after the first field equal to key.
func fieldAfter(line, key string) string {
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == key {
			return f[i+1]
		}
	}
	return ""
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimRight(l, " \t"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func sorted(l []string) []string {
	out := append([]string(nil), l...)
	sort.Strings(out)
	return out
}

// diffLines compares two lists as multisets (order matters only within
// runs of equal lines).
func diffLines(a, b []string) (added, removed []string) {
	count := map[string]int{}
	for _, l := range a {
		count[l]++
	}
	for _, l := range b {
		count[l]--
	}
	for _, l := range sorted(append(append([]string(nil), a...), b...)) {
		switch n := count[l]; {
		case n > 0:
			removed = append(removed, l)
			count[l]--
		case n < 0:
			added = append(added, l)
			count[l]++
		}
	}
	return added, removed
}
