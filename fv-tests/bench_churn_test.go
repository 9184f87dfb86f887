package fvtests

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ocelot/fv-tests/lab"
	"ocelot/internal/netlab"
	"ocelot/selector"
)

// Churn: remote endpoints changing groups at a steady rate, the way a
// busy cloud changes all day. Its cost is the agent's CPU (children
// included) while it keeps up.
const (
	churnRate     = 100 // remote endpoint updates per second
	churnDuration = 30 * time.Second
	churnMovers   = 100 // remote endpoints that change
)

// TestBenchE2EChurn measures the agent's CPU under 100 remote endpoint
// updates per second at 10,000 endpoints, or at another of the
// benchmark's scales named by OCELOT_BENCH_CHURN_SCALE (make bench-e2e
// runs it with TestBenchE2E, at 10k). Every update moves a remote VM between two groups that
// local policies allow, so each one removes a member from a set a local
// endpoint uses: the case that makes the agent forget conntrack flows.
//
// With OCELOT_BENCH_FELIX naming a calico-felix binary, Calico's Felix
// then goes through the same churn on the same cloud, on a host of the
// same name in a namespace of its own (after ocelot has stopped: the two
// never share the cores), and the ratio of their CPU is printed.
func TestBenchE2EChurn(t *testing.T) {
	if os.Getenv("OCELOT_BENCH_E2E") == "" {
		t.Skip("set OCELOT_BENCH_E2E=1 (make bench-e2e)")
	}
	sc := churnScale(t)
	l := newLab(t)
	l.AgentEnv = strings.Fields(os.Getenv("OCELOT_BENCH_AGENT_ENV"))
	rng := rand.New(rand.NewPCG(11, 12))
	var kvs [][2]string
	for _, r := range e2eRegions {
		for g := 0; g < sc.groups; g++ {
			kvs = append(kvs, [2]string{lab.SGPolicyKey(r, e2eSG(g)), e2ePolicyOf(r, g, sc.groups, 80)})
		}
	}
	localGroup := make([]int, sc.local)
	for i := 0; i < sc.endpoints; i++ {
		region, host := e2eRegions[i%3], fmt.Sprintf("%s-compute%d", strings.ToLower(e2eRegions[i%3]), i/60)
		g := rng.IntN(sc.groups)
		if i < sc.local {
			region, host = "RegionOne", "r1-compute1"
			localGroup[i] = g
		}
		port := fmt.Sprintf("%08x-1111-4000-8000-%012x", i, i)
		ip := fmt.Sprintf("100.%d.%d.%d", 64+i>>16&63, i>>8&255, i&255) // in 100.64.0.0/10
		k, v := endpointJSON(region, host, fmt.Sprintf("vm-%d", i), port, ip, g, rng.IntN(sc.groups))
		kvs = append(kvs, [2]string{k, v})
	}
	// The movers alternate between the groups the first two local VMs'
	// cross-region rules allow.
	c := &churn{scale: sc, groupA: (localGroup[0] + 1) % sc.groups, groupB: (localGroup[1] + 1) % sc.groups}
	putAll(t, l.Cli, append(kvs, c.start()...))

	debug := os.Getenv("OCELOT_BENCH_DEBUG") != ""
	if debug {
		t.Setenv("OCELOT_DEBUG_PPROF", ":6060") // the CPU profile below
	}
	cfg := []string{"LogSeverityScreen = info", "ReportingIntervalSecs = 30", "ReportingTTLSecs = 90",
		"IptablesRefreshInterval = 180", "IpsetsRefreshInterval = 90", "RouteRefreshInterval = 90"}
	h := l.AddHost("r1-compute1", "RegionOne", cfg...)
	ours := c.measure(t, h, debug)
	ours.print("Ocelot")
	felix := os.Getenv("OCELOT_BENCH_FELIX")
	if felix == "" {
		return
	}
	h.Stop()
	putAll(t, l.Cli, c.start()) // the movers back where the cloud began
	// Felix takes only a lowercase DNS label for OpenstackRegion; it uses
	// the region for where it reports status, not to select endpoints.
	f := l.AddHostRunning("r1-compute1", "regionone", felixCommand(felix), cfg...)
	theirs := c.measure(t, f, false)
	theirs.print("Felix")
	complaints := felixComplaints(f.Log())
	fmt.Printf("  Felix's log: %d kinds of warning or error\n", len(complaints))
	for _, c := range complaints {
		fmt.Printf("    %s\n", c)
	}
	fmt.Printf(`
Ocelot / Felix under the same churn: CPU %.2f (%.1f%% vs %.1f%% of a core; target <= 0.33), peak RSS %.1f vs %.1f MiB
  iptables backends: ocelot %s, Felix %s
`, ours.core()/theirs.core(), ours.core(), theirs.core(), ours.hwmMiB, theirs.hwmMiB, iptablesBackend(h), iptablesBackend(f))
}

// churn is the benchmark's workload: churnMovers remote VMs of RegionTwo
// moving between groupA and groupB.
type churn struct {
	scale          benchScale
	groupA, groupB int
}

// churnScale is the cloud OCELOT_BENCH_CHURN_SCALE names (one of
// benchScales; 10k by default).
func churnScale(t *testing.T) benchScale {
	name := envOr("OCELOT_BENCH_CHURN_SCALE", "10k")
	for _, sc := range benchScales {
		if sc.name == name {
			return sc
		}
	}
	t.Fatalf("OCELOT_BENCH_CHURN_SCALE=%s: not one of the benchmark's scales", name)
	return benchScale{}
}

// mover is the i-th mover's key and endpoint in group g, and its address.
func (c *churn) mover(i int, g int) (string, string, string) {
	ip := fmt.Sprintf("100.120.%d.%d", i>>8, i&255)
	k, v := endpointJSON("RegionTwo", "regiontwo-compute998", fmt.Sprintf("mover-%d", i), fmt.Sprintf("%08x-3333-4000-8000-%012x", i, i), ip, g)
	return k, v, ip
}

// start is every mover in groupA, where the cloud begins.
func (c *churn) start() [][2]string {
	var kvs [][2]string
	for i := 0; i < churnMovers; i++ {
		k, v, _ := c.mover(i, c.groupA)
		kvs = append(kvs, [2]string{k, v})
	}
	return kvs
}

// churnResult is what one agent's run measured.
type churnResult struct {
	scale                    benchScale
	updates                  int
	elapsed, cpu             time.Duration
	split                    [4]time.Duration
	gcs, allocBytes          float64
	saves, restores          float64
	heapMiB, hwmMiB          float64
	conntrackPasses, forgets string
	applyMedian              string
}

// core is the CPU used while churning, in percent of a core.
func (r churnResult) core() float64 { return float64(r.cpu) / float64(r.elapsed) * 100 }

// measure waits until h's agent is ready and has the first mover in its
// set, churns for churnDuration, and reads the agent's CPU (its waited-for
// children's included) over the churn.
func (c *churn) measure(t *testing.T, h *lab.Host, debug bool) churnResult {
	t.Helper()
	l := h.Lab
	netlab.Eventually(t, h.Name+" ready", 120*time.Second, h.Ready)
	probe, err := newKernelProbe(h.NS.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	setOf := func(g int) string {
		sel, _ := selector.EntityRuleSelectors(selector.MustParse("has(sg.projectcalico.org/openstack-"+e2eSG(g)+")"), selector.MustParse("all()"), nil, lab.Namespace("RegionOne"))
		return ("cali40" + sel.UniqueID())[:31]
	}
	_, _, ip0 := c.mover(0, c.groupA)
	netlab.Eventually(t, "first mover in its set", 30*time.Second, func() bool { ok, _ := probe.inSet(setOf(c.groupA), ip0); return ok })
	time.Sleep(5 * time.Second) // let the start-up's re-reads settle

	// Writers in parallel, so that the rate does not depend on the round
	// trip of one write.
	puts := make(chan [2]string, churnRate)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for kv := range puts {
				l.Put(kv[0], kv[1])
			}
		})
	}
	profiled := make(chan string, 1)
	allocs := filepath.Join(t.TempDir(), "allocs-before")
	if debug {
		// Where the churn's CPU goes, and what it allocates (the heap
		// profile's allocations, less those before the churn).
		if err := fetch("http://"+h.Addr+":6060/debug/pprof/allocs", allocs); err != nil {
			t.Fatal(err)
		}
		go func() {
			out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=35", "http://"+h.Addr+":6060/debug/pprof/profile?seconds=20").CombinedOutput()
			profiled <- fmt.Sprintf("CPU profile during churn (%v):\n%s", err, out)
		}()
	}
	gc0, alloc0 := metricFloat(h, "go_gc_duration_seconds_count"), metricFloat(h, "go_memstats_alloc_bytes_total")
	saves0, restores0 := metricFloat(h, "felix_iptables_save_calls"), metricFloat(h, "felix_iptables_restore_calls")
	split0 := procSplit(h.Pid())
	cpu0, _ := procStat(h.Pid())
	began := time.Now()
	tick := time.NewTicker(time.Second / churnRate)
	defer tick.Stop()
	n := 0
	var last string
	var lastGroup int
	for time.Since(began) < churnDuration {
		<-tick.C
		i := n % churnMovers
		g := c.groupB
		if (n/churnMovers)%2 == 1 {
			g = c.groupA
		}
		k, v, ip := c.mover(i, g)
		puts <- [2]string{k, v}
		last, lastGroup = ip, g
		n++
	}
	close(puts)
	wg.Wait()
	r := churnResult{scale: c.scale, updates: n, elapsed: time.Since(began)}
	cpu1, hwm := procStat(h.Pid())
	split1 := procSplit(h.Pid())
	if debug {
		t.Log(<-profiled)
		out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=40", "-sample_index=alloc_space", "-base", allocs,
			"http://"+h.Addr+":6060/debug/pprof/allocs").CombinedOutput()
		t.Logf("allocations during churn (%v):\n%s", err, out)
	}
	r.cpu, r.hwmMiB = cpu1-cpu0, float64(hwm)/1024
	for i := range r.split {
		r.split[i] = split1[i] - split0[i]
	}
	r.gcs, r.allocBytes = metricFloat(h, "go_gc_duration_seconds_count")-gc0, metricFloat(h, "go_memstats_alloc_bytes_total")-alloc0
	r.saves, r.restores = metricFloat(h, "felix_iptables_save_calls")-saves0, metricFloat(h, "felix_iptables_restore_calls")-restores0
	netlab.Eventually(t, "the last update enforced", 30*time.Second, func() bool { ok, _ := probe.inSet(setOf(lastGroup), last); return ok })
	r.conntrackPasses, r.forgets = orNone(h.Metric("ocelot_conntrack_passes_total")), orNone(h.Metric("ocelot_conntrack_entries_forgotten_total"))
	r.applyMedian = h.Metric(`felix_int_dataplane_apply_time_seconds{quantile="0.5"}`)
	r.heapMiB = metricFloat(h, "go_memstats_heap_inuse_bytes") / (1 << 20)
	return r
}

func (r churnResult) print(agent string) {
	fmt.Printf(`
%s under churn (%d endpoints, %d local; %d remote endpoint updates at %.0f/s, each moving a VM between two groups local policies use)
  agent CPU while churning: %.1f%% of a core, children included (over %v)
  per update: %v of CPU, so %.1f%% of a core at exactly %d/s
  conntrack: %s passes, %s entries deleted; dataplane apply median %ss
  split: user %v, system %v, children's user %v, children's system %v
  iptables: %.0f saves, %.0f restores
  Go runtime: %.0f GC cycles, %.1f KiB allocated per update; heap in use %.1f MiB, peak RSS %.1f MiB
`, agent, r.scale.endpoints+churnMovers, r.scale.local, r.updates, float64(r.updates)/r.elapsed.Seconds(), r.core(), r.elapsed.Round(time.Millisecond),
		(r.cpu / time.Duration(r.updates)).Round(10*time.Microsecond), float64(r.cpu)/float64(r.updates)*churnRate/float64(time.Second)*100, churnRate,
		r.conntrackPasses, r.forgets, r.applyMedian,
		r.split[0], r.split[1], r.split[2], r.split[3], r.saves, r.restores, r.gcs, r.allocBytes/float64(r.updates)/1024, r.heapMiB, r.hwmMiB)
}

// iptablesBackend says which iptables holds the agent's chains in h's
// namespace: legacy, nft or both.
func iptablesBackend(h *lab.Host) string {
	var found []string
	for _, b := range []string{"legacy", "nft"} {
		if out, err := h.Exec("iptables-"+b+"-save", "-t", "filter"); err == nil && strings.Contains(out, ":cali-") {
			found = append(found, b)
		}
	}
	if len(found) == 0 {
		return "none"
	}
	return strings.Join(found, "+")
}

// fetch saves what an HTTP GET of url returns in path.
func fetch(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// metricFloat reads one of the agent's metrics as a number (0 when absent).
func metricFloat(h *lab.Host, name string) float64 {
	v, _ := strconv.ParseFloat(h.Metric(name), 64)
	return v
}

func orNone(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

// procSplit reads a process's user and system CPU, and its waited-for
// children's, from /proc/<pid>/stat.
func procSplit(pid int) (d [4]time.Duration) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return d
	}
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:])
	for i := range d {
		n, _ := strconv.Atoi(f[11+i])
		d[i] = time.Duration(n) * 10 * time.Millisecond
	}
	return d
}
