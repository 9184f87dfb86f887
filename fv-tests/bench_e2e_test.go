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

	clientv3 "go.etcd.io/etcd/client/v3"

	"ocelot/fv-tests/lab"
	"ocelot/selector"
)

// The scale of the Felix comparison (README, Performance): 10,000 endpoints across 3 regions,
// 1,000 security groups (one ossg policy per group per region, rules from
// remote groups via namespaceSelector: all()), 50 local taps.
const (
	e2eEndpoints = 10_000
	e2eGroups    = 1_000
	e2eLocal     = 50
	e2eChanges   = 100
	idleSettle   = 20 * time.Second
	idleWindow   = 30 * time.Second
)

var e2eRegions = []string{"RegionOne", "RegionTwo", "RegionThree"}

func e2eSG(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

// e2ePolicy is group g's policy: SSH from its own group, and a rule per
// TCP port from the next group of any region.
func e2ePolicy(region string, g int, ports ...int) string {
	rules := []lab.SGRule{lab.AllowTCPFromGroup(22, e2eSG(g))}
	for _, port := range ports {
		rules = append(rules, lab.SGRule{"action": "Allow", "ipVersion": 4, "protocol": 6, "destination": map[string]any{"ports": []int{port}},
			"source": map[string]any{"selector": "has(sg.projectcalico.org/openstack-" + e2eSG((g+1)%e2eGroups) + ")", "namespaceSelector": "all()"}})
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

// TestBenchE2E measures, against the real binary: cold start, peak memory,
// etcd write of a policy change -> rule in iptables, remote VM joining a
// group -> address in the IP set, and idle CPU. make bench-e2e runs it.
func TestBenchE2E(t *testing.T) {
	if os.Getenv("OCELOT_BENCH_E2E") == "" {
		t.Skip("set OCELOT_BENCH_E2E=1 (make bench-e2e)")
	}
	l := newLab(t)
	rng := rand.New(rand.NewPCG(11, 12))
	var kvs [][2]string
	for _, r := range e2eRegions {
		for g := 0; g < e2eGroups; g++ {
			kvs = append(kvs, [2]string{lab.SGPolicyKey(r, e2eSG(g)), e2ePolicy(r, g, 80)})
		}
	}
	localGroup := make([]int, e2eLocal)
	for i := 0; i < e2eEndpoints; i++ {
		region, host := e2eRegions[i%3], fmt.Sprintf("%s-compute%d", strings.ToLower(e2eRegions[i%3]), i/60)
		g := rng.IntN(e2eGroups)
		if i < e2eLocal {
			region, host = "RegionOne", "r1-compute1"
			localGroup[i] = g
		}
		port := fmt.Sprintf("%08x-1111-4000-8000-%012x", i, i)
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		k, v := endpointJSON(region, host, fmt.Sprintf("vm-%d", i), port, ip, g, rng.IntN(e2eGroups))
		kvs = append(kvs, [2]string{k, v})
	}
	t0 := time.Now()
	putAll(t, l.Cli, kvs)
	t.Logf("loaded %d keys in %v", len(kvs), time.Since(t0))

	if os.Getenv("OCELOT_BENCH_DEBUG") != "" {
		t.Setenv("OCELOT_DEBUG_PPROF", ":6060") // the heap profiles below
	}
	// Cold start: process start to /readiness 200 (first in-sync apply done).
	start := time.Now()
	// Production intervals, not the lab's quick ones (they cost idle CPU).
	backend := os.Getenv("OCELOT_BENCH_BACKEND")
	if backend == "" {
		backend = "auto"
	}
	h := l.AddHost("r1-compute1", "RegionOne", "LogSeverityScreen = info", "ReportingIntervalSecs = 30", "ReportingTTLSecs = 90", "IptablesBackend = "+backend,
		"IptablesRefreshInterval = 180", "IpsetsRefreshInterval = 90", "RouteRefreshInterval = 90")
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if code, _ := h.HTTP(9099, "/readiness"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 120 s:\n%s", h.Log())
		}
	}
	cold := time.Since(start)
	_, hwmStart := procStat(h.Pid())
	if os.Getenv("OCELOT_BENCH_DEBUG") != "" {
		t.Logf("start-up log:\n%s", h.Log())
	}
	resync := h.Metric("felix_int_dataplane_initial_resync_time_seconds")
	if os.Getenv("OCELOT_BENCH_DEBUG") != "" {
		if out, err := exec.Command("go", "tool", "pprof", "-top", "-inuse_space", "-nodecount=25", "http://"+h.Addr+":6060/debug/pprof/heap").CombinedOutput(); err == nil {
			t.Logf("heap:\n%s", out)
		}
		for _, m := range []string{"go_memstats_heap_inuse_bytes", "go_memstats_heap_sys_bytes", "go_memstats_sys_bytes", "go_memstats_stack_inuse_bytes", "process_resident_memory_bytes", "go_memstats_next_gc_bytes"} {
			t.Logf("%s %s", m, h.Metric(m))
		}
	}

	iptSave := "iptables-legacy-save"
	if out, _ := h.Exec("iptables-nft-save", "-t", "filter"); strings.Contains(out, "cali-FORWARD") {
		iptSave = "iptables-nft-save"
	}
	// The observer reads the kernel directly in a tight loop (microseconds
	// a read, where iptables-save or ipset test cost a process each). With
	// the nft backend the legacy getsockopt interface does not see the
	// rules, so it falls back to polling iptables-nft-save.
	probe, err := newKernelProbe(h.NS.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	waitFor := func(what string, cond func() (bool, error)) {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Microsecond) {
			ok, err := cond()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not seen in 30 s", what)
			}
		}
	}
	// A rule is seen in two steps: IPT_SO_GET_INFO (the table's size, a
	// cheap read) until the table changes, then the rules themselves.
	// Reading the whole table every poll would slow the agent's own
	// iptables-restore, which waits for the same kernel lock. Each change
	// below alternates its policy between one and two port rules, so that
	// every change alters the table's size.
	ruleHasPort := func(port int) func() (bool, error) {
		if iptSave != "iptables-legacy-save" {
			return func() (bool, error) {
				out, err := h.Exec(iptSave, "-t", "filter")
				return strings.Contains(out, fmt.Sprintf("--dports %d ", port)), err
			}
		}
		before, err := probe.filterInfo()
		if err != nil {
			t.Fatal(err)
		}
		return func() (bool, error) {
			info, err := probe.filterInfo()
			if err != nil || info == before {
				return false, err
			}
			before = info
			return probe.hasDestPort(uint16(port))
		}
	}
	// Policy change -> rule in iptables.
	var policyLat, putLat []time.Duration
	rulesOf := map[int]int{}
	for i := 0; i < e2eChanges; i++ {
		g := localGroup[i%e2eLocal]
		port := 10000 + i
		ports := []int{port}
		if rulesOf[g] != 2 { // one port rule when loaded: alternate 2, 1, 2...
			ports = append(ports, 30000+i)
		}
		rulesOf[g] = len(ports)
		cond := ruleHasPort(port)
		began := time.Now()
		l.Put(lab.SGPolicyKey("RegionOne", e2eSG(g)), e2ePolicy("RegionOne", g, ports...))
		putLat = append(putLat, time.Since(began))
		waitFor(fmt.Sprintf("policy change %d (port %d)", i, port), cond)
		policyLat = append(policyLat, time.Since(began))
	}

	// Remote VM joins a group a local policy allows -> address in the set.
	var joinLat []time.Duration
	for i := 0; i < e2eChanges; i++ {
		g := (localGroup[i%e2eLocal] + 1) % e2eGroups // allowed by the local VM's cross-region rule
		sel, _ := selector.EntityRuleSelectors(selector.MustParse("has(sg.projectcalico.org/openstack-"+e2eSG(g)+")"), selector.MustParse("all()"), nil, lab.Namespace("RegionOne"))
		set := ("cali40" + sel.UniqueID())[:31]
		ip := fmt.Sprintf("10.200.%d.%d", i>>8, i&255)
		k, v := endpointJSON("RegionTwo", "regiontwo-compute999", fmt.Sprintf("joiner-%d", i), fmt.Sprintf("%08x-2222-4000-8000-%012x", i, i), ip, g)
		began := time.Now()
		l.Put(k, v)
		putLat = append(putLat, time.Since(began))
		waitFor(fmt.Sprintf("join %d (%s in %s)", i, ip, set), func() (bool, error) { return probe.inSet(set, ip) })
		joinLat = append(joinLat, time.Since(began))
	}

	// The floor: one bare write and one read of the same filter table.
	iptRestore := strings.Replace(iptSave, "-save", "-restore", 1)
	floor := func(script string) time.Duration {
		began := time.Now()
		if out, err := h.Exec("sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do "+script+"; done"); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		return time.Since(began) / 10
	}
	writeFloor := floor(`printf '*filter\n:cali-floor - [0:0]\n-A cali-floor -j ACCEPT\nCOMMIT\n' | ` + iptRestore + ` --noflush`)
	readFloor := floor(iptSave + " -t filter >/dev/null")
	h.Exec(strings.TrimSuffix(iptSave, "-save"), "-X", "cali-floor")

	if os.Getenv("OCELOT_BENCH_DEBUG") != "" {
		if out, err := exec.Command("go", "tool", "pprof", "-top", "-sample_index=alloc_space", "-nodecount=30", "http://"+h.Addr+":6060/debug/pprof/heap").CombinedOutput(); err == nil {
			t.Logf("allocations:\n%s", out)
		}
	}
	applyMedian := h.Metric(`felix_int_dataplane_apply_time_seconds{quantile="0.5"}`)
	calcMedian := h.Metric(`felix_calc_graph_update_time_seconds{quantile="0.5"}`)

	// Idle CPU: let the re-reads that follow the last write back off (they
	// double from IptablesPostWriteCheckIntervalSecs), then measure.
	time.Sleep(idleSettle)
	cpu0, _ := procStat(h.Pid())
	time.Sleep(idleWindow)
	cpu1, hwm := procStat(h.Pid())
	if os.Getenv("OCELOT_BENCH_DEBUG") != "" {
		_, body := h.HTTP(9091, "/metrics")
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "go_memstats_") || strings.HasPrefix(line, "go_goroutines") {
				t.Log(line)
			}
		}
	}
	idle := float64(cpu1-cpu0) / float64(idleWindow) * 100

	fmt.Printf(`
Ocelot end to end (%d endpoints across 3 regions, %d groups x 3 regions of policies, %d local endpoints)
  cold start -> dataplane complete (/readiness 200)   %v   (initial resync %ss)
  peak RSS                                            %.1f MiB (%.1f MiB at start-up)
  policy change -> rule in iptables     median %v   p99 %v   (%d changes)
  remote VM joins a group -> IP in set  median %v   p99 %v   (%d joins)
  idle CPU (%v after the last change, over %v)        %.2f%% of a core, children included
  inside the agent: calc per batch median %ss, dataplane apply median %ss
  floor on this host: etcd write (Put round trip) median %v; one %s of one chain %v; one %s -t filter %v
(observed by reading the host's kernel every 0.1 ms from the test process)
`, e2eEndpoints, e2eGroups, e2eLocal, cold.Round(time.Millisecond), resync, float64(hwm)/1024, float64(hwmStart)/1024,
		percentile(policyLat, 0.5).Round(100*time.Microsecond), percentile(policyLat, 0.99).Round(100*time.Microsecond), len(policyLat),
		percentile(joinLat, 0.5).Round(100*time.Microsecond), percentile(joinLat, 0.99).Round(100*time.Microsecond), len(joinLat), idleSettle, idleWindow, idle, calcMedian, applyMedian,
		percentile(putLat, 0.5).Round(100*time.Microsecond), iptRestore, writeFloor.Round(100*time.Microsecond), iptSave, readFloor.Round(100*time.Microsecond))
}
