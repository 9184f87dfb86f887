package fvtests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"ocelot/fv-tests/lab"
	"ocelot/selector"
)

// benchScale is a generated cloud: endpoints across 3 regions, one
// security group per 10 endpoints (one policy per group per region, rules
// from remote groups via namespaceSelector: all()), local endpoints on
// the measured host. The scales of the Felix comparison.
type benchScale struct {
	name                     string
	endpoints, groups, local int
}

var benchScales = []benchScale{{"1k", 1_000, 100, 20}, {"10k", 10_000, 1_000, 50}, {"50k", 50_000, 5_000, 100}, {"100k", 100_000, 10_000, 200}}

const (
	e2eChanges = 100
	// spacing is the pause between two measured changes: a change's
	// conntrack cleanup runs on a worker after its rules are in, and a
	// change that arrives while the worker's queue is full waits for it.
	// Changes a cloud makes are seconds apart; back to back (0) they
	// measure that queue.
	spacingDefault = 50 * time.Millisecond
	e2eChurnRate   = 100 // remote endpoint updates per second
	churnWindow    = 20 * time.Second
	idleSettle     = 20 * time.Second
	idleWindow     = 30 * time.Second
)

var e2eRegions = []string{"RegionOne", "RegionTwo", "RegionThree"}

func e2eSG(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

// e2ePolicyOf is group g's policy: SSH from its own group, and a rule per
// TCP port from the next group (of groups) of any region.
func e2ePolicyOf(region string, g, groups int, ports ...int) string {
	rules := []lab.SGRule{lab.AllowTCPFromGroup(22, e2eSG(g))}
	for _, port := range ports {
		rules = append(rules, lab.SGRule{"action": "Allow", "ipVersion": 4, "protocol": 6, "destination": map[string]any{"ports": []int{port}},
			"source": map[string]any{"selector": "has(sg.projectcalico.org/openstack-" + e2eSG((g+1)%groups) + ")", "namespaceSelector": "all()"}})
	}
	return lab.SGPolicyJSON(region, e2eSG(g), rules...)
}

func endpointJSON(region, host, vm, port, ip string, groups ...int) (string, string) {
	ns := lab.Namespace(region)
	name := strings.ReplaceAll(host, "-", "--") + "-openstack-" + strings.ReplaceAll(vm, "-", "--") + "-" + strings.ReplaceAll(port, "-", "--")
	var labels strings.Builder
	for _, g := range groups {
		fmt.Fprintf(&labels, `"sg.projectcalico.org/openstack-%s": "sg%d", `, e2eSG(g), g)
	}
	key := "/calico/resources/v3/projectcalico.org/workloadendpoints/" + ns + "/" + name
	value := fmt.Sprintf(`{"kind": "WorkloadEndpoint", "apiVersion": "projectcalico.org/v3", "metadata": {"name": %q, "namespace": %q, "labels": {%s"projectcalico.org/namespace": %q, "projectcalico.org/orchestrator": "openstack"}}, "spec": {"orchestrator": "openstack", "workload": %q, "node": %q, "endpoint": %q, "interfaceName": %q, "mac": "fa:16:3e:00:00:01", "ipNetworks": [%q]}}`,
		name, ns, labels.String(), ns, vm, host, port, "tap"+port[:11], ip+"/32")
	return key, value
}

func putAll(t *testing.T, cli *clientv3.Client, kvs [][2]string) {
	for i := 0; i < len(kvs); i += 100 {
		var ops []clientv3.Op
		for _, kv := range kvs[i:min(i+100, len(kvs))] {
			ops = append(ops, clientv3.OpPut(kv[0], kv[1]))
		}
		if _, err := cli.Txn(context.Background()).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

// procStat reads a process's CPU time (with its children's) and peak RSS.
func procStat(pid int) (cpu time.Duration, hwmKiB int) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:])
		// utime, stime, and those of its exited children (the iptables
		// and ipset runs are part of the agent's cost).
		var ticks int
		for _, i := range []int{11, 12, 13, 14} {
			n, _ := strconv.Atoi(f[i])
			ticks += n
		}
		cpu = time.Duration(ticks) * 10 * time.Millisecond // USER_HZ = 100
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				hwmKiB, _ = strconv.Atoi(strings.Fields(line)[1])
			}
		}
	}
	return
}

// benchResult is one run: one scale, one backend.
type benchResult struct {
	scale, backend          string
	cold                    time.Duration
	resync                  string
	rssStart, rssPeak       float64 // MiB
	policy, join, put       []time.Duration
	churnDone               int
	churnCPU, idleCPU       float64 // % of a core
	floorPolicy, floorJoin  time.Duration
	floorNote               string
	applyMedian, calcMedian string // seconds, as the agent's metrics say
}

// TestBenchE2E measures, against the real binary, per scale and backend:
// cold start and memory; etcd write of a policy change -> rule in the
// kernel; remote VM joining a group -> address in the set; the agent's CPU
// under 100 remote endpoint updates a second and idle; and the floors in
// the same run (an etcd put, one bare kernel transaction of each kind).
// make bench-e2e runs it. OCELOT_BENCH_SCALES (10k,50k,100k; default 10k)
// and OCELOT_BENCH_BACKENDS (iptables,nftables; default both) choose the
// runs.
func TestBenchE2E(t *testing.T) {
	if os.Getenv("OCELOT_BENCH_E2E") == "" {
		t.Skip("set OCELOT_BENCH_E2E=1 (make bench-e2e)")
	}
	scales := strings.Split(envOr("OCELOT_BENCH_SCALES", "10k"), ",")
	backends := strings.Split(envOr("OCELOT_BENCH_BACKENDS", "iptables,nftables"), ",")
	var results []benchResult
	for _, sc := range benchScales {
		if !contains(scales, sc.name) {
			continue
		}
		for _, backend := range backends {
			t.Run(sc.name+"/"+backend, func(t *testing.T) {
				r := benchOne(t, sc, backend)
				results = append(results, r)
				printResult(r)
			})
		}
	}
	fmt.Printf("\nSummary (medians; p99 in brackets)\n%-6s %-9s %9s %9s %18s %18s %10s %8s %8s %22s\n",
		"scale", "backend", "cold", "peak RSS", "policy change", "member change", "churn CPU", "idle", "put", "bare policy / member")
	for _, r := range results {
		fmt.Printf("%-6s %-9s %9v %7.0fMi %8v (%6v) %8v (%6v) %9.1f%% %7.2f%% %8v %10v / %v\n", r.scale, r.backend,
			r.cold.Round(time.Millisecond), r.rssPeak, ms(percentile(r.policy, .5)), ms(percentile(r.policy, .99)),
			ms(percentile(r.join, .5)), ms(percentile(r.join, .99)), r.churnCPU, r.idleCPU, ms(percentile(r.put, .5)), fine(r.floorPolicy), fine(r.floorJoin))
	}
}

func ms(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }

func fine(d time.Duration) time.Duration { return d.Round(time.Microsecond) }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.TrimSpace(x) == s {
			return true
		}
	}
	return false
}

func benchOne(t *testing.T, sc benchScale, backend string) benchResult {
	res := benchResult{scale: sc.name, backend: backend}
	spacing := spacingDefault
	if v := os.Getenv("OCELOT_BENCH_SPACING"); v != "" {
		var err error
		if spacing, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	l := newLab(t)
	l.AgentEnv = strings.Fields(os.Getenv("OCELOT_BENCH_AGENT_ENV")) // e.g. GOMAXPROCS=2
	rng := rand.New(rand.NewPCG(11, 12))
	var kvs [][2]string
	for _, r := range e2eRegions {
		for g := 0; g < sc.groups; g++ {
			kvs = append(kvs, [2]string{lab.SGPolicyKey(r, e2eSG(g)), e2ePolicyOf(r, g, sc.groups, 80)})
		}
	}
	localGroup := make([]int, sc.local)
	type remote struct {
		region, host, vm, port, ip string
		g                          int
	}
	var remotes []remote
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
		if i >= sc.local && len(remotes) < e2eChurnRate*2 {
			remotes = append(remotes, remote{region, host, fmt.Sprintf("vm-%d", i), port, ip, g})
		}
	}
	t0 := time.Now()
	putAll(t, l.Cli, kvs)
	t.Logf("loaded %d keys in %v", len(kvs), time.Since(t0))

	if os.Getenv("OCELOT_BENCH_DEBUG") != "" {
		t.Setenv("OCELOT_DEBUG_PPROF", ":6060")
	}
	// Cold start: process start to /readiness 200 (first in-sync apply done).
	start := time.Now()
	mode := map[string]string{"iptables": "Disabled", "nftables": "Enabled"}[backend]
	// Production intervals, not the lab's quick ones (they cost idle CPU).
	h := l.AddHost("r1-compute1", "RegionOne", "LogSeverityScreen = info", "ReportingIntervalSecs = 30", "ReportingTTLSecs = 90",
		"IptablesBackend = "+envOr("OCELOT_BENCH_BACKEND", "auto"), "NFTablesMode = "+mode,
		"IptablesRefreshInterval = 180", "IpsetsRefreshInterval = 90", "RouteRefreshInterval = 90", "NftablesRefreshInterval = 180")
	for deadline := time.Now().Add(300 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if code, _ := h.HTTP(9099, "/readiness"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 300 s:\n%s", h.Log())
		}
	}
	res.cold = time.Since(start)
	_, hwm := procStat(h.Pid())
	res.rssStart = float64(hwm) / 1024
	res.resync = h.Metric("felix_int_dataplane_initial_resync_time_seconds")

	// The observers. nftables: the kernel's nftables events. iptables:
	// there are no events for iptables-legacy, so a cheap getsockopt
	// (IPT_SO_GET_INFO: the table's size) is polled until the table
	// changes, and only then are the rules read; IP sets are tested over
	// netlink. (iptables-nft would emit nftables events, but measuring it
	// would measure another backend than the one Ocelot's iptables numbers
	// have always been for.)
	var rulePort func(port int) func() (time.Time, bool)
	var member func(ip string) (time.Time, bool)
	deadline := func() time.Time { return time.Now().Add(30 * time.Second) }
	unobserve := func() {}
	if backend == "nftables" {
		mon, err := newNFTMonitor(h.NS.Name)
		if err != nil {
			t.Fatal(err)
		}
		defer mon.Close()
		unobserve = mon.Close
		rulePort = func(port int) func() (time.Time, bool) {
			return func() (time.Time, bool) { return mon.rulePort(uint16(port), deadline()) }
		}
		member = func(ip string) (time.Time, bool) { return mon.member(ip, deadline()) }
	} else {
		probe, err := newKernelProbe(h.NS.Name)
		if err != nil {
			t.Fatal(err)
		}
		defer probe.Close()
		poll := func(cond func() (bool, error)) (time.Time, bool) {
			for end := deadline(); time.Now().Before(end); time.Sleep(100 * time.Microsecond) {
				if ok, err := cond(); err != nil {
					t.Fatal(err)
				} else if ok {
					return time.Now(), true
				}
			}
			return time.Time{}, false
		}
		rulePort = func(port int) func() (time.Time, bool) {
			before, err := probe.filterInfo()
			if err != nil {
				t.Fatal(err)
			}
			return func() (time.Time, bool) {
				return poll(func() (bool, error) {
					info, err := probe.filterInfo()
					if err != nil || info == before {
						return false, err
					}
					before = info
					return probe.hasDestPort(uint16(port))
				})
			}
		}
		member = func(ip string) (time.Time, bool) {
			return poll(func() (bool, error) { return probe.inSet(probeSets[ip], ip) })
		}
	}

	// Policy change -> rule in the kernel. Each change alternates its
	// policy between one and two port rules (the iptables observer needs
	// the table's size to change).
	rulesOf := map[int]int{}
	for i := 0; i < e2eChanges; i++ {
		g := localGroup[i%sc.local]
		port := 10000 + i
		ports := []int{port}
		if rulesOf[g] != 2 {
			ports = append(ports, 30000+i)
		}
		rulesOf[g] = len(ports)
		seen := rulePort(port)
		began := time.Now()
		l.Put(lab.SGPolicyKey("RegionOne", e2eSG(g)), e2ePolicyOf("RegionOne", g, sc.groups, ports...))
		res.put = append(res.put, time.Since(began))
		at, ok := seen()
		if !ok {
			t.Fatalf("policy change %d (port %d) not seen in 30 s", i, port)
		}
		res.policy = append(res.policy, at.Sub(began))
		time.Sleep(spacing)
	}

	// Remote VM joins a group a local policy allows -> address in the set.
	for i := 0; i < e2eChanges; i++ {
		g := (localGroup[i%sc.local] + 1) % sc.groups // allowed by the local VM's cross-region rule
		sel, _ := selector.EntityRuleSelectors(selector.MustParse("has(sg.projectcalico.org/openstack-"+e2eSG(g)+")"), selector.MustParse("all()"), nil, lab.Namespace("RegionOne"))
		probeSets[fmt.Sprintf("100.121.%d.%d", i>>8, i&255)] = ("cali40" + sel.UniqueID())[:31]
		ip := fmt.Sprintf("100.121.%d.%d", i>>8, i&255)
		k, v := endpointJSON("RegionTwo", "regiontwo-compute999", fmt.Sprintf("joiner-%d", i), fmt.Sprintf("%08x-2222-4000-8000-%012x", i, i), ip, g)
		began := time.Now()
		l.Put(k, v)
		res.put = append(res.put, time.Since(began))
		at, ok := member(ip)
		if !ok {
			t.Fatalf("join %d (%s) not seen in 30 s", i, ip)
		}
		res.join = append(res.join, at.Sub(began))
		time.Sleep(spacing)
	}

	res.applyMedian = h.Metric(`felix_int_dataplane_apply_time_seconds{quantile="0.5"}`)
	res.calcMedian = h.Metric(`felix_calc_graph_update_time_seconds{quantile="0.5"}`)

	// Churn: remote endpoints change group at e2eChurnRate a second, each
	// change moving an address between two sets local policies use. No
	// observer listens meanwhile: a listener on the nftables events makes
	// the kernel build a notification of every element of the agent's
	// transactions, in the agent's system call, which a host without
	// "nft monitor" running does not pay.
	unobserve()
	profiled := make(chan string, 1)
	if os.Getenv("OCELOT_BENCH_DEBUG") != "" {
		// Where the churn's CPU goes: the agent's profile over the window.
		go func() {
			out, _ := exec.Command("go", "tool", "pprof", "-top", "-nodecount=35",
				fmt.Sprintf("http://%s:6060/debug/pprof/profile?seconds=%d", h.Addr, int(churnWindow.Seconds())-2)).CombinedOutput()
			profiled <- string(out)
		}()
	}
	cpu0, _ := procStat(h.Pid())
	tick := time.NewTicker(time.Second / e2eChurnRate)
	began := time.Now()
	for n := 0; time.Since(began) < churnWindow; n++ {
		<-tick.C
		r := remotes[n%len(remotes)]
		other := (localGroup[n%sc.local] + 1) % sc.groups
		if (n/len(remotes))%2 == 1 {
			other = localGroup[n%sc.local]
		}
		k, v := endpointJSON(r.region, r.host, r.vm, r.port, r.ip, r.g, other)
		l.Put(k, v)
		res.churnDone++
	}
	tick.Stop()
	elapsed := time.Since(began)
	cpu1, _ := procStat(h.Pid())
	res.churnCPU = float64(cpu1-cpu0) / float64(elapsed) * 100
	if os.Getenv("OCELOT_BENCH_DEBUG") != "" {
		t.Logf("agent CPU during churn:\n%s", <-profiled)
	}

	// The floors on this host, in the same run.
	res.floorPolicy, res.floorJoin, res.floorNote = floors(t, h, backend)

	// Idle CPU: let the re-reads that follow the last write back off, then
	// measure.
	time.Sleep(idleSettle)
	cpu0, _ = procStat(h.Pid())
	time.Sleep(idleWindow)
	cpu1, hwm = procStat(h.Pid())
	res.idleCPU = float64(cpu1-cpu0) / float64(idleWindow) * 100
	res.rssPeak = float64(hwm) / 1024
	return res
}

// probeSets maps a joiner's address to the kernel name of the set it
// joins (the iptables observer tests that set).
var probeSets = map[string]string{}

// floors times the bare kernel writes a change costs at least, on the
// host's own tables: iptables, one iptables-restore of one chain (a
// process, as the agent runs it); nftables, one transaction that flushes
// and refills a policy chain with its own rules, and one element add.
func floors(t *testing.T, h *lab.Host, backend string) (policy, join time.Duration, note string) {
	if backend != "nftables" {
		iptRestore := "iptables-legacy-restore"
		if h.Iptables() == "iptables-nft" {
			iptRestore = "iptables-nft-restore"
		}
		began := time.Now()
		script := `printf '*filter\n:cali-floor - [0:0]\n-A cali-floor -j ACCEPT\nCOMMIT\n' | ` + iptRestore + ` --noflush`
		if out, err := h.Exec("sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do "+script+"; done"); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		policy = time.Since(began) / 10
		h.Exec(strings.TrimSuffix(iptRestore, "-restore"), "-X", "cali-floor")
		began = time.Now()
		if out, err := h.Exec("sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do ipset add -exist cali40floor 100.122.0.1 2>/dev/null; done; true"); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		return policy, time.Since(began) / 10, "one " + iptRestore + " of one chain; one ipset process"
	}
	ns, err := netns.GetFromName(h.NS.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)), nftables.AsLasting())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseLasting()
	table := &nftables.Table{Name: "calico", Family: nftables.TableFamilyIPv4}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	var chain *nftables.Chain
	for _, ch := range chains {
		if ch.Table.Name == "calico" && strings.HasPrefix(ch.Name, "filter-cali-pi-") {
			chain = ch
			break
		}
	}
	rules, err := c.GetRules(table, chain)
	if err != nil {
		t.Fatal(err)
	}
	var ds []time.Duration
	for range 20 {
		c.FlushChain(chain)
		for _, r := range rules {
			c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: r.Exprs, UserData: r.UserData})
		}
		began := time.Now()
		if err := c.Flush(); err != nil {
			t.Fatalf("bare policy transaction: %v", err)
		}
		ds = append(ds, time.Since(began))
	}
	policy = percentile(ds, .5)
	sets, err := c.GetSets(table)
	if err != nil || len(sets) == 0 {
		t.Fatalf("sets: %v", err)
	}
	var set *nftables.Set
	for _, s := range sets {
		if strings.HasPrefix(s.Name, "cali40s-") {
			set = s
			break
		}
	}
	ds = ds[:0]
	key := []byte{10, 201, 0, 1}
	for range 20 {
		c.SetAddElements(set, []nftables.SetElement{{Key: key}, {Key: []byte{10, 201, 0, 2}, IntervalEnd: true}})
		began := time.Now()
		if err := c.Flush(); err != nil {
			t.Fatalf("bare element transaction: %v", err)
		}
		ds = append(ds, time.Since(began))
		c.SetDeleteElements(set, []nftables.SetElement{{Key: key}, {Key: []byte{10, 201, 0, 2}, IntervalEnd: true}})
		c.Flush()
	}
	return policy, percentile(ds, .5), "one netlink transaction refilling one policy chain; one adding one element"
}

func printResult(r benchResult) {
	fmt.Printf(`
Ocelot end to end, %s, %s backend
  cold start -> dataplane complete (/readiness 200)   %v   (initial resync %ss)
  peak RSS                                            %.1f MiB (%.1f MiB at start-up)
  policy change -> rule in the kernel    median %v   p99 %v   (%d changes)
  remote VM joins a group -> IP in set   median %v   p99 %v   (%d joins)
  %d remote endpoint updates/s for %v: agent CPU %.1f%% of a core, children included (%d updates)
  idle CPU (%v after the last change, over %v)        %.2f%% of a core
  inside the agent: calc per batch median %ss, dataplane apply median %ss
  floor: etcd put median %v; %s: %v and %v
`, r.scale, r.backend, r.cold.Round(time.Millisecond), r.resync, r.rssPeak, r.rssStart,
		ms(percentile(r.policy, .5)), ms(percentile(r.policy, .99)), len(r.policy),
		ms(percentile(r.join, .5)), ms(percentile(r.join, .99)), len(r.join),
		e2eChurnRate, churnWindow, r.churnCPU, r.churnDone, idleSettle, idleWindow, r.idleCPU, r.calcMedian, r.applyMedian,
		ms(percentile(r.put, .5)), r.floorNote, fine(r.floorPolicy), fine(r.floorJoin))
}
