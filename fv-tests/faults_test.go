package fvtests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"ocelot/fv-tests/lab"
	"ocelot/internal/netlab"
)

// The fault suite: the real ocelot binary against a three-member etcd
// cluster whose members are processes in namespaces of their own, so
// that they are killed, paused and cut off for real. Every scenario
// checks enforcement with real TCP (every "blocked" next to a "connects"
// over the same path) and logs the time the agent took, as
// "fault: <scenario>: <what>: <time>" (go test -v -run TestFault).

// refreshSecs is the lab host's iptables, ipset and route refresh
// interval: tampering must be repaired within it (plus an apply).
const refreshSecs = 3

// faultLab is a cluster, one compute host in RegionOne and three VMs on
// it: web serves TCP 80 and 81 and allows 80 from the clients group; a is
// in the clients group, b in the other group.
type faultLab struct {
	l         *lab.Lab
	c         *lab.Cluster
	h         *lab.Host
	web, a, b *lab.VM
}

func newFaultLab(t *testing.T) *faultLab {
	netlab.Require(t)
	l := lab.NewClustered(t, t.TempDir(), os.Getenv("OCELOT_BIN"), 3)
	l.Bootstrap()
	f := &faultLab{l: l, c: l.Cluster}
	f.h = l.AddHost("r1-compute1", "RegionOne", fmt.Sprintf("IptablesRefreshInterval = %d", refreshSecs),
		fmt.Sprintf("IpsetsRefreshInterval = %d", refreshSecs), fmt.Sprintf("RouteRefreshInterval = %d", refreshSecs))
	f.web, f.a, f.b = f.h.AddVM("web", 5), f.h.AddVM("a", 6), f.h.AddVM("b", 7)
	f.web.Serve(80, 81)
	f.allow81(false)
	l.PutSG("RegionOne", sgClients)
	l.PutSG("RegionOne", sgOther)
	f.web.Plug(map[string]string{sgWeb: "web"})
	f.a.Plug(map[string]string{sgClients: "clients"})
	f.b.Plug(map[string]string{sgOther: "other"})
	ready(t, f.h)
	eventuallyConnects(t, f.a, f.web, 80)
	blocked(t, f.a, f.web, 81)
	blocked(t, f.b, f.web, 80)
	return f
}

// allow81 writes web's group: TCP 80 from the clients, and 81 too if on.
func (f *faultLab) allow81(on bool) {
	rules := []lab.SGRule{lab.AllowTCPFromGroup(80, sgClients)}
	if on {
		rules = append(rules, lab.AllowTCPFromGroup(81, sgClients))
	}
	f.l.PutSG("RegionOne", sgWeb, rules...)
}

// connects tries one TCP connection with a short timeout, for polling.
func connects(from, to *lab.VM, port int) bool {
	return from.Connects(to.IP, port, 400*time.Millisecond)
}

// measured polls cond until it holds, failing the test after deadline,
// and logs and returns the time since start.
func measured(t *testing.T, scenario, what string, start time.Time, deadline time.Duration, cond func() bool) time.Duration {
	t.Helper()
	netlab.Eventually(t, scenario+": "+what, deadline, cond)
	d := time.Since(start)
	t.Logf("fault: %s: %s: %v", scenario, what, d.Round(10*time.Millisecond))
	return d
}

// agentAlive fails the test if the agent has exited.
func (f *faultLab) agentAlive(t *testing.T) {
	t.Helper()
	if exited, code := f.h.Exited(); exited {
		t.Fatalf("the agent exited with code %d", code)
	}
}

// datastoreRow is the Datastore line of a health table.
func datastoreRow(table string) string {
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "Datastore ") {
			return line
		}
	}
	return ""
}

// TestFaultLeaderKilled: the leader is killed; a change made through the
// rest of the cluster is enforced; the leader comes back and changes keep
// flowing.
func TestFaultLeaderKilled(t *testing.T) {
	const scenario = "leader killed"
	f := newFaultLab(t)
	leader := f.c.Leader()
	if leader == nil {
		t.Fatal("no leader")
	}
	leader.Kill()
	killed := time.Now()
	f.allow81(true)
	wrote := time.Now()
	t.Logf("fault: %s: a write accepted by the rest of the cluster after: %v", scenario, wrote.Sub(killed).Round(10*time.Millisecond))
	measured(t, scenario, "that change enforced after the write", wrote, 30*time.Second, func() bool { return connects(f.a, f.web, 81) })
	if !connects(f.a, f.web, 80) {
		t.Error("control: a -> web:80 stopped")
	}

	leader.Start()
	restarted := time.Now()
	f.c.WaitHealthy(t, 30*time.Second)
	f.allow81(false)
	measured(t, scenario, "after its restart, a change enforced", restarted, 30*time.Second, func() bool { return !connects(f.a, f.web, 81) })
	eventuallyConnects(t, f.a, f.web, 80)
	netlab.Eventually(t, "ready", wait, f.h.Ready)
	f.agentAlive(t)
}

// TestFaultMemberInUseKilled: the member serving the agent's watch dies;
// the watch fails over and a change made meanwhile is enforced.
func TestFaultMemberInUseKilled(t *testing.T) {
	const scenario = "member in use killed"
	f := newFaultLab(t)
	watched := f.watchedMember(t)
	wasLeader := watched == f.c.Leader()
	watched.Kill()
	killed := time.Now()
	f.allow81(true)
	wrote := time.Now()
	t.Logf("fault: %s (the leader: %v): a write accepted after: %v", scenario, wasLeader, wrote.Sub(killed).Round(10*time.Millisecond))
	measured(t, scenario, "that change enforced after the write", wrote, 30*time.Second, func() bool { return connects(f.a, f.web, 81) })
	netlab.Eventually(t, "the watch on another member", wait, func() bool { w := f.c.Watched(); return w != nil && w != watched })
	if !connects(f.a, f.web, 80) {
		t.Error("control: a -> web:80 stopped")
	}
	watched.Start()
	f.c.WaitHealthy(t, 30*time.Second)
	netlab.Eventually(t, "ready", wait, f.h.Ready)
	f.agentAlive(t)
}

// watchedMember is the member serving the agent's watch, as the members
// count their watchers, checked against what the agent logged.
func (f *faultLab) watchedMember(t *testing.T) *lab.Member {
	t.Helper()
	var m *lab.Member
	netlab.Eventually(t, "one member serves the agent's watch", wait, func() bool { m = f.c.Watched(); return m != nil })
	lines := regexp.MustCompile(`msg="watching the datastore" endpoint=(\S+)`).FindAllStringSubmatch(f.h.Log(), -1)
	if len(lines) == 0 || lines[len(lines)-1][1] != m.ClientURL {
		t.Errorf("the agent's log does not name %s as the member it watches: %v", m.ClientURL, lines)
	}
	return m
}

// TestFaultPartitionedMember: the member the agent watches is cut off
// from its peers (its clients still reach it): a change made through the
// majority arrives within seconds, and the watch leaves that member.
func TestFaultPartitionedMember(t *testing.T) {
	const scenario = "watched member partitioned"
	f := newFaultLab(t)
	watched := f.watchedMember(t)
	watched.Partition()
	cut := time.Now()
	f.allow81(true)
	wrote := time.Now()
	t.Logf("fault: %s: a write accepted by the majority after: %v", scenario, wrote.Sub(cut).Round(10*time.Millisecond))
	measured(t, scenario, "that change enforced after the write", wrote, 30*time.Second, func() bool { return connects(f.a, f.web, 81) })
	netlab.Eventually(t, "the watch on another member", wait, func() bool { w := f.c.Watched(); return w != nil && w != watched })
	if !connects(f.a, f.web, 80) {
		t.Error("control: a -> web:80 stopped")
	}
	watched.Heal()
	f.c.WaitHealthy(t, 30*time.Second)
	f.allow81(false)
	eventuallyBlocked(t, f.a, f.web, 81)
	netlab.Eventually(t, "ready", wait, f.h.Ready)
	f.agentAlive(t)
}

// TestFaultClusterDown: the whole cluster is down for a minute.
// Enforcement holds (allowed still connects, blocked still blocked, not
// one rule, set or route changes), /liveness stays 200, /readiness is 503
// naming the datastore. After the cluster is back, changes flow again.
func TestFaultClusterDown(t *testing.T) {
	const scenario = "whole cluster down"
	f := newFaultLab(t)
	before := f.h.KernelState()
	for _, m := range f.c.Members {
		m.Kill()
	}
	down := time.Now()
	measured(t, scenario, "readiness reports the outage", down, 30*time.Second, func() bool {
		code, body := f.h.HTTP(9099, "/readiness")
		return code == 503 && strings.Contains(datastoreRow(body), "etcd unreachable")
	})
	checks := 0
	for time.Since(down) < time.Minute {
		if code, body := f.h.HTTP(9099, "/liveness"); code != 200 {
			t.Errorf("liveness %d during the outage:\n%s", code, body)
		}
		if code, body := f.h.HTTP(9099, "/readiness"); code != 503 || !strings.Contains(datastoreRow(body), "reporting non-ready") {
			t.Errorf("readiness %d during the outage:\n%s", code, body)
		}
		if !f.a.Connects(f.web.IP, 80, time.Second) {
			t.Error("allowed flow a -> web:80 failed during the outage")
		}
		if connects(f.a, f.web, 81) || connects(f.b, f.web, 80) {
			t.Error("a blocked flow connected during the outage")
		}
		if now := f.h.KernelState(); now != before {
			t.Fatalf("the dataplane changed during the outage:\n%s", lineDiff(before, now))
		}
		f.agentAlive(t)
		checks++
		time.Sleep(2 * time.Second)
	}
	t.Logf("fault: %s: %d checks over %v: enforcement held, dataplane unchanged, live, not ready", scenario, checks, time.Since(down).Round(time.Second))

	for _, m := range f.c.Members {
		m.Start()
	}
	back := time.Now()
	f.c.WaitHealthy(t, time.Minute)
	t.Logf("fault: %s: cluster healthy again after: %v", scenario, time.Since(back).Round(10*time.Millisecond))
	measured(t, scenario, "ready again after the restart", back, time.Minute, f.h.Ready)
	f.allow81(true)
	wrote := time.Now()
	if d := measured(t, scenario, "first change after the outage enforced after the write", wrote, 30*time.Second, func() bool { return connects(f.a, f.web, 81) }); d > 3*time.Second {
		t.Logf("slow; the agent's log:\n%s", f.h.Log())
	}
	f.agentAlive(t)
}

// TestFaultCompactionWhilePaused: the agent is paused (SIGSTOP) long
// enough for etcd to drop it; meanwhile groups change, remote endpoints
// come and go, a policy is created and deleted, and the cluster is
// compacted past everything the agent saw. After SIGCONT the agent must
// re-list and converge to exactly the final state.
func TestFaultCompactionWhilePaused(t *testing.T) {
	const scenario = "compaction while paused"
	f := newFaultLab(t)
	f.h.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { f.h.Signal(syscall.SIGCONT) })
	paused := time.Now()

	f.allow81(true)
	f.b.Plug(map[string]string{sgOther: "other", sgClients: "clients"}) // b joins the clients...
	f.a.Plug(map[string]string{sgOther: "other"})                       // ...and a leaves them
	f.l.Put(burstPolicyKey(1), burstPolicyJSON(1, 3000))                // the clients of every region may reach web:3000
	remotes := map[string]string{}                                      // key -> address, present at the end
	for n := 0; n < 60; n++ {
		ip := fmt.Sprintf("198.19.1.%d", n+1)
		key, value := lab.RemoteEndpoint("RegionTwo", "r2-compute9", n, ip, map[string]string{sgClients: "clients"})
		f.l.Put(key, value)
		remotes[key] = ip
		if n%3 == 0 {
			f.l.Delete(key)
			delete(remotes, key)
		}
	}
	for i := 0; i < 10; i++ {
		f.l.Put(burstPolicyKey(99), burstPolicyJSON(99, 3000+i))
		f.l.Delete(burstPolicyKey(99))
	}
	// More than the agent's connection can take unread (its flow-control
	// window, 4 MiB): the rest of the pause's events are still in etcd's
	// queue when etcd drops the agent, so its next watch starts at a
	// compacted revision. Under the watched root, in a kind Ocelot ignores.
	filler := strings.Repeat("x", 1<<20)
	for i := 0; i < 6; i++ {
		f.l.Put(fmt.Sprintf("%sippools/filler-%d", lab.ResourceRoot, i), filler)
	}
	rev := f.l.Put(lab.ResourceRoot+"networkpolicies/"+lab.Namespace("RegionTwo")+"/elsewhere", "{}")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := f.l.Cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// etcd drops a client that does not answer its pings (the lab's
	// members after 10 s): then the agent's watch is gone.
	netlab.Eventually(t, "etcd dropped the paused agent's watch", time.Minute, func() bool {
		for _, m := range f.c.Members {
			if n, err := m.Metric("etcd_debugging_mvcc_watcher_total"); err != nil || n != 0 {
				return false
			}
		}
		return true
	})
	f.h.Signal(syscall.SIGCONT)
	resumed := time.Now()
	t.Logf("fault: %s: paused for %v", scenario, resumed.Sub(paused).Round(100*time.Millisecond))
	measured(t, scenario, "converged after SIGCONT", resumed, 30*time.Second, func() bool {
		return connects(f.b, f.web, 80) && connects(f.b, f.web, 81) && !connects(f.a, f.web, 80)
	})
	blocked(t, f.a, f.web, 81)
	if !strings.Contains(f.h.Log(), "watch fell behind a compaction; re-listing") {
		t.Error("the agent did not meet the compaction (the scenario did not happen)")
	}
	// The clients of every region: b and the remote endpoints left.
	want := map[string]bool{f.b.IP: true}
	for _, ip := range remotes {
		want[ip] = true
	}
	f.setExactlyWith(t, f.b.IP, want)
	ports := policyPorts(f.h.IptablesSave(t))
	if _, ok := ports["burst-99"]; ok {
		t.Errorf("the deleted policy is in the kernel: %v", ports["burst-99"])
	}
	if p := ports["burst-1"]; len(p) != 1 || p[0] != "3000" {
		t.Errorf("the policy made during the pause: ports %v, want [3000]", p)
	}
	f.sameAsFreshAgent(t, scenario)
}

// ipsetMembers lists the members of every set in the host's namespace.
func ipsetMembers(t *testing.T, h *lab.Host) map[string]map[string]bool {
	out, err := h.Exec("ipset", "save")
	if err != nil {
		t.Fatalf("ipset save: %v\n%s", err, out)
	}
	sets := map[string]map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "create":
			sets[f[1]] = map[string]bool{}
		case len(f) >= 3 && f[0] == "add":
			sets[f[1]][strings.TrimSuffix(f[2], "/32")] = true
		}
	}
	return sets
}

// sameAsFreshAgent compares the host's settled kernel state with what a
// fresh agent programs on a wiped host from the same datastore: nothing
// missing, nothing left over, nothing duplicated.
func (f *faultLab) sameAsFreshAgent(t *testing.T, scenario string) {
	t.Helper()
	got := settled(t, f.h)
	f.h.Stop()
	f.h.Wipe()
	f.h.Start()
	ready(t, f.h)
	want := settled(t, f.h)
	if got != want {
		t.Errorf("%s: the kernel differs from a fresh agent's (- converged, + fresh):\n%s", scenario, lineDiff(got, want))
	} else {
		t.Logf("fault: %s: kernel state identical to a fresh agent's (%d lines)", scenario, strings.Count(got, "\n"))
	}
}

// settled reads the kernel state until two reads a second apart agree.
func settled(t *testing.T, h *lab.Host) string {
	t.Helper()
	var s string
	prev := h.KernelState()
	netlab.Eventually(t, "kernel state settles", wait, func() bool {
		time.Sleep(time.Second)
		s = h.KernelState()
		same := s == prev
		prev = s
		return same
	})
	return s
}

// lineDiff lists the lines only in a (-) and only in b (+).
func lineDiff(a, b string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	ca, cb := count(a), count(b)
	var out []string
	for l, n := range ca {
		if cb[l] < n {
			out = append(out, "- "+l)
		}
	}
	for l, n := range cb {
		if ca[l] < n {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func burstPolicyKey(j int) string {
	return lab.ResourceRoot + "networkpolicies/" + lab.Namespace("RegionOne") + fmt.Sprintf("/burst-%d", j)
}

// burstPolicyJSON allows TCP port from the clients of every region to web.
func burstPolicyJSON(j, port int) string {
	b, _ := json.Marshal(map[string]any{
		"kind": "NetworkPolicy", "apiVersion": "projectcalico.org/v3",
		"metadata": map[string]any{"name": fmt.Sprintf("burst-%d", j), "namespace": lab.Namespace("RegionOne")},
		"spec": map[string]any{"tier": "default", "order": 100 + j, "selector": "has(sg.projectcalico.org/openstack-" + sgWeb + ")",
			"types": []string{"Ingress"}, "ingress": []any{map[string]any{"action": "Allow", "protocol": "TCP",
				"source":      map[string]any{"selector": "has(sg.projectcalico.org/openstack-" + sgClients + ")", "namespaceSelector": "all()"},
				"destination": map[string]any{"ports": []int{port}}}}},
	})
	return string(b)
}

var (
	policyComment = regexp.MustCompile(`^-A (\S+) .*--comment "NetworkPolicy [^/"]+/(\S+) ingress"`)
	dports        = regexp.MustCompile(`--dports (\S+)`)
)

// policyPorts maps each NetworkPolicy with an ingress chain in an
// iptables-save to the destination ports its chain's rules name.
func policyPorts(save string) map[string][]string {
	chainOf := map[string]string{}
	for _, line := range strings.Split(save, "\n") {
		if m := policyComment.FindStringSubmatch(line); m != nil {
			chainOf[m[1]] = m[2]
		}
	}
	ports := map[string][]string{}
	for _, line := range strings.Split(save, "\n") {
		chain, _, _ := strings.Cut(strings.TrimPrefix(line, "-A "), " ")
		if name, ok := chainOf[chain]; ok && strings.HasPrefix(line, "-A ") {
			if _, seen := ports[name]; !seen {
				ports[name] = []string{}
			}
			if m := dports.FindStringSubmatch(line); m != nil {
				ports[name] = append(ports[name], m[1])
			}
		}
	}
	return ports
}

// TestFaultKilledDuringBurst: the agent is SIGKILLed in the middle of a
// 500-update burst and started again at once, as systemd would. An
// established connection through the VM survives; afterwards the kernel
// holds exactly the final state, with no duplicate or leftover chain or
// set (compared with a fresh agent's).
func TestFaultKilledDuringBurst(t *testing.T) {
	const scenario = "agent killed mid-burst"
	f := newFaultLab(t)
	conn, err := netlab.Dial(f.a.NS, fmt.Sprintf("%s:80", f.web.IP), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !netlab.Echoes(conn, time.Second) {
		t.Fatal("the established connection does not work to begin with")
	}

	// The burst: remote clients join and leave, policies on web are
	// created, rewritten and deleted.
	type op struct {
		key, value string // value "": delete
		ip         string // a remote endpoint's address
		policy     int    // a burst policy's number, -1 for endpoints
		port       int
	}
	var ops []op
	for n := 0; len(ops) < 500; n++ {
		ip := fmt.Sprintf("198.19.%d.%d", 2+n/200, 1+n%200)
		key, value := lab.RemoteEndpoint("RegionTwo", "r2-compute8", n, ip, map[string]string{sgClients: "clients"})
		ops = append(ops, op{key, value, ip, -1, 0})
		j, port := n%40, 2000+n
		ops = append(ops, op{burstPolicyKey(j), burstPolicyJSON(j, port), "", j, port})
		if n%2 == 1 {
			old, _ := lab.RemoteEndpoint("RegionTwo", "r2-compute8", n-1, "", nil)
			ops = append(ops, op{key: old, policy: -1})
		}
		if n%7 == 6 {
			ops = append(ops, op{key: burstPolicyKey((n / 7) % 40), policy: (n / 7) % 40})
		}
	}
	ops = ops[:500]
	// The model: the final state of the burst.
	remotes := map[string]string{} // key -> address
	policies := map[int]int{}      // j -> port
	for _, o := range ops {
		switch {
		case o.policy < 0 && o.value != "":
			remotes[o.key] = o.ip
		case o.policy < 0:
			delete(remotes, o.key)
		case o.value != "":
			policies[o.policy] = o.port
		default:
			delete(policies, o.policy)
		}
	}
	killAt := len(ops) * 2 / 5
	killed := make(chan time.Time, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i, o := range ops {
			if i == killAt {
				f.h.Signal(syscall.SIGKILL)
				killed <- time.Now()
			}
			if o.value == "" {
				f.l.Delete(o.key)
			} else {
				f.l.Put(o.key, o.value)
			}
		}
	}()
	at := <-killed
	netlab.Eventually(t, "the agent died", wait, func() bool { exited, _ := f.h.Exited(); return exited })
	if !netlab.Echoes(conn, time.Second) {
		t.Error("the established connection broke when the agent was killed")
	}
	f.h.Start()
	restarted := time.Now()
	t.Logf("fault: %s: killed after %d of %d updates; restarted %v later", scenario, killAt, len(ops), restarted.Sub(at).Round(10*time.Millisecond))
	<-done
	burstDone := time.Now()
	measured(t, scenario, "ready after the restart", restarted, wait, f.h.Ready)
	measured(t, scenario, "final state reached after the restart", restarted, time.Minute, func() bool {
		return samePorts(policyPorts(f.h.IptablesSave(t)), policies)
	})
	t.Logf("fault: %s: burst finished %v after the restart", scenario, burstDone.Sub(restarted).Round(10*time.Millisecond))
	for i := 0; i < 3; i++ {
		if !netlab.Echoes(conn, time.Second) {
			t.Fatalf("the established connection broke after the restart (round %d)", i)
		}
	}
	want := map[string]bool{f.a.IP: true}
	for _, ip := range remotes {
		want[ip] = true
	}
	f.setExactlyWith(t, f.a.IP, want)
	eventuallyConnects(t, f.a, f.web, 80)
	blocked(t, f.b, f.web, 80)
	f.sameAsFreshAgent(t, scenario)
}

// samePorts reports whether the burst policies in the kernel are exactly
// the model's, each with its port.
func samePorts(kernel map[string][]string, model map[int]int) bool {
	n := 0
	for name, ports := range kernel {
		var j int
		if _, err := fmt.Sscanf(name, "burst-%d", &j); err != nil {
			continue
		}
		n++
		if p, ok := model[j]; !ok || len(ports) != 1 || ports[0] != fmt.Sprint(p) {
			return false
		}
	}
	return n == len(model)
}

// setExactlyWith checks that the set holding member and the most
// addresses has exactly want.
func (f *faultLab) setExactlyWith(t *testing.T, member string, want map[string]bool) {
	t.Helper()
	var best map[string]bool
	var bestName string
	for name, m := range ipsetMembers(t, f.h) {
		if m[member] && len(m) > len(best) {
			best, bestName = m, name
		}
	}
	var missing, extra []string
	for ip := range want {
		if !best[ip] {
			missing = append(missing, ip)
		}
	}
	for ip := range best {
		if !want[ip] {
			extra = append(extra, ip)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("set %s: missing %v, extra %v", bestName, missing, extra)
	}
}

// TestFaultTampering: another process deletes a rule, flushes a set,
// inserts an ACCEPT into a Calico chain and deletes a route. Each is
// repaired within the refresh interval (plus an apply).
func TestFaultTampering(t *testing.T) {
	const scenario = "tampering"
	f := newFaultLab(t)
	ipt := f.h.Iptables()
	if ipt == "" {
		t.Fatal("no iptables backend holds the agent's chains")
	}
	deadline := time.Duration(refreshSecs)*time.Second + 5*time.Second
	save := func() string { return f.h.IptablesSave(t) }

	// A deleted rule: web's rule allowing 80 from the clients.
	rule := findLine(t, save(), `^-A cali-pi-\S+ .*--dports 80 `)
	f.h.NS.MustExec(t, ipt, append([]string{"-t", "filter", "-D"}, shellFields(strings.TrimPrefix(rule, "-A "))...)...)
	tampered := time.Now()
	effective(t, "deleted rule", func() bool { return !strings.Contains(save(), rule) }, func() bool { return !connects(f.a, f.web, 80) })
	measured(t, scenario, "deleted rule restored", tampered, deadline, func() bool { return strings.Contains(save(), rule) })
	eventuallyConnects(t, f.a, f.web, 80)

	// A flushed set: the one holding a.
	set := ""
	for name, m := range ipsetMembers(t, f.h) {
		if m[f.a.IP] {
			set = name
		}
	}
	f.h.NS.MustExec(t, "ipset", "flush", set)
	tampered = time.Now()
	effective(t, "flushed set", func() bool { return !ipsetMembers(t, f.h)[set][f.a.IP] }, func() bool { return !connects(f.a, f.web, 80) })
	measured(t, scenario, "flushed set refilled", tampered, deadline, func() bool { return ipsetMembers(t, f.h)[set][f.a.IP] })
	eventuallyConnects(t, f.a, f.web, 80)

	// An ACCEPT inserted at the top of web's inbound chain.
	tw := "cali-tw-" + f.web.HostSide
	f.h.NS.MustExec(t, ipt, "-t", "filter", "-I", tw, "1", "-j", "ACCEPT")
	inserted := "-A " + tw + " -j ACCEPT"
	tampered = time.Now()
	effective(t, "inserted ACCEPT", func() bool { return strings.Contains(save(), inserted) }, func() bool { return connects(f.b, f.web, 80) })
	measured(t, scenario, "inserted ACCEPT removed", tampered, deadline, func() bool { return !strings.Contains(save(), inserted) })
	eventuallyBlocked(t, f.b, f.web, 80)
	eventuallyConnects(t, f.a, f.web, 80) // control over the same path

	// A deleted route: web's /32 on its tap.
	route := func() bool {
		out, _ := f.h.Exec("ip", "route", "show", f.web.IP)
		return strings.Contains(out, f.web.HostSide)
	}
	f.h.NS.MustExec(t, "ip", "route", "del", f.web.IP, "dev", f.web.HostSide)
	tampered = time.Now()
	effective(t, "deleted route", func() bool { return !route() }, func() bool { return !connects(f.a, f.web, 80) })
	measured(t, scenario, "deleted route restored", tampered, deadline, route)
	eventuallyConnects(t, f.a, f.web, 80)
	blocked(t, f.a, f.web, 81)
	f.agentAlive(t)
}

// effective checks that a tampering took effect on traffic, so that its
// repair means something: while the kernel is still tampered with
// (tampered), the flow must show it (shows). If the agent repaired it
// first, there is nothing to check.
func effective(t *testing.T, what string, tampered, shows func() bool) {
	t.Helper()
	if tampered() && !shows() && tampered() {
		t.Errorf("%s: traffic did not change while the kernel was tampered with", what)
	}
}

// findLine returns the first line of s matching the pattern.
func findLine(t *testing.T, s, pattern string) string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	for _, line := range strings.Split(s, "\n") {
		if re.MatchString(line) {
			return line
		}
	}
	t.Fatalf("no line matches %s in:\n%s", pattern, s)
	return ""
}

// shellFields splits an iptables-save rule into arguments (double quotes
// group, as iptables-save writes comments).
func shellFields(s string) []string {
	var out []string
	var cur strings.Builder
	quoted, in := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && quoted && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			quoted, in = !quoted, true
		case c == ' ' && !quoted:
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}
