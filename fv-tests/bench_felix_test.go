package fvtests

import (
	"fmt"
	"os"
	"strings"

	"ocelot/fv-tests/lab"
)

// Calico's Felix as the agent of a lab host, for benchmarks that measure
// it side by side with ocelot on the same machine, cloud and run. The
// binary is the operator's (OCELOT_BENCH_FELIX names it); nothing of Felix
// is part of this repository.

// felixCommand runs the Felix binary at bin on a lab host. It reads the
// host's felix.cfg (Felix ignores the parameters it does not know, such as
// ExplainSocketPath) with the etcdv3 datastore, and the environment turns
// off everything that could reach beyond the host's namespace: BPF and XDP
// programs, the clean-up of a BPF connect-time load balancer (which mounts
// bpffs and walks cgroups), tunnels, WireGuard and usage reporting. Felix
// also writes /var/lib/calico/mtu and may create /var/run/calico, so it
// runs in a mount namespace of its own ("ip netns exec" makes one) with
// empty tmpfs over /run and /var/lib. OCELOT_BENCH_FELIX_ENV adds
// settings (space-separated NAME=value), e.g. FELIX_IPTABLESBACKEND=nft.
func felixCommand(bin string) func(h *lab.Host) ([]string, []string) {
	return func(h *lab.Host) ([]string, []string) {
		env := []string{
			"FELIX_DATASTORETYPE=etcdv3",
			"FELIX_BPFENABLED=false",
			"FELIX_XDPENABLED=false",
			"FELIX_GENERICXDPENABLED=false",
			"FELIX_DebugSkipCTLBCleanup=true",
			"FELIX_IPINIPENABLED=false",
			"FELIX_VXLANENABLED=false",
			"FELIX_WIREGUARDENABLED=false",
			"FELIX_WIREGUARDENABLEDV6=false",
			"FELIX_USAGEREPORTINGENABLED=false",
			"FELIX_LOGFILEPATH=none",
			"FELIX_LOGSEVERITYSYS=none",
			"FELIX_HEALTHENABLED=true",
			"FELIX_PROMETHEUSMETRICSENABLED=true",
		}
		env = append(env, strings.Fields(os.Getenv("OCELOT_BENCH_FELIX_ENV"))...)
		// The shell execs Felix, so the lab's PID (and its CPU
		// accounting) is Felix's.
		script := `mount -t tmpfs felix-run /run && mount -t tmpfs felix-lib /var/lib && exec "$0" -c "$1"`
		return []string{"sh", "-c", script, bin, h.CfgPath}, env
	}
}

// felixComplaints lists the distinct warnings and errors in Felix's log
// (one line per place in Felix's source that logged them, with a count),
// so that a reader of a side-by-side run sees whether Felix was struggling
// with the lab rather than working.
func felixComplaints(log string) []string {
	count := map[string]int{}
	first := map[string]string{}
	var order []string
	for _, line := range strings.Split(log, "\n") {
		_, rest, ok := strings.Cut(line, " [WARNING][")
		if !ok {
			if _, rest, ok = strings.Cut(line, " [ERROR]["); !ok {
				if _, rest, ok = strings.Cut(line, " [FATAL]["); !ok {
					continue
				}
			}
		}
		// "<pid>] felix/file.go 123: message"
		_, rest, _ = strings.Cut(rest, "] ")
		where, msg, _ := strings.Cut(rest, ": ")
		if count[where] == 0 {
			order = append(order, where)
			first[where] = msg
		}
		count[where]++
	}
	var out []string
	for _, where := range order {
		msg := first[where]
		if len(msg) > 160 {
			msg = msg[:160] + "…"
		}
		out = append(out, fmt.Sprintf("%d× %s: %s", count[where], where, msg))
	}
	return out
}
