package fvtests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"ocelot/fv-tests/lab"
	"ocelot/internal/netlab"
)

// The hostile-input suite: values in etcd written to hurt, one case after
// another in one lab, each reset by putting back the keys it touched
// (docs/design/hostile-input.md lists the cases and what they found).
// After every case, and again after its reset, it asserts that nothing in
// etcd can hurt a host:
//
//   - the agents are alive (process running, /liveness 200); an exit with
//     129 (a configuration change) is restarted, as systemd would; any
//     other exit, or a Go panic in the log, is a crash;
//   - each host's own state is intact (lab.OwnState): interfaces,
//     addresses, routes, policy rules, permanent neighbours and sysctls
//     of every interface that is not a workload's, every iptables rule
//     outside the agent's cali- chains, no rule in those chains without
//     the agent's hash comment; no route or neighbour entry on a tap for
//     the host's own network; the host still opens a new connection to
//     etcd; the agent writes no key outside its own status keys and no
//     log line that is not a log record;
//   - a fresh valid policy change still takes effect (the probe: a
//     remote VM's access moves between two ports of the web VM, checked
//     as connects on the new port and blocked on the old one);
//   - no flow opens that must stay closed (the victim VM's and the control
//     VM's port 81, each paired with port 80 of the same VM connecting);
//   - where a case's subject must fail closed, the victim VM's port 80 is
//     denied while the control VM's stays open.
//
// A host found damaged is put back (iptables restored from the baseline,
// its routes and neighbours replayed, the agent restarted) so that the
// next case starts clean. Every case runs, whatever failed before; the
// summary at the end counts hostile cases, crashes, bypasses, frozen
// enforcement and damaged hosts. make hostile runs the suite alone.

// Security groups of the suite's VMs, besides the guide's.
const (
	sgVictim  = "3b1f6c2e-9d4a-4e5b-8c7f-1a2b3c4d5e6f"
	sgControl = "7c2d8e4f-0a1b-4c3d-9e5f-6a7b8c9d0e1f"
	sgEsc     = "e5c0a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b" // a label the remote client gets only through escaped JSON
)

const (
	resRoot    = "/calico/resources/v3/projectcalico.org/"
	spoofAddr  = "198.18.99.9" // an address the victim VM holds but Neutron never gave it
	probeKey   = resRoot + "networkpolicies/openstack-region-RegionOne/hostile-probe"
	escKey     = resRoot + "networkpolicies/openstack-region-RegionOne/hostile-escaped-label"
	blockedFor = 600 * time.Millisecond // how long a connection attempt has before it counts as blocked
	// probeWait is how long a fresh policy change may take: it normally
	// takes well under a second.
	probeWait = 10 * time.Second
)

func sgSel(sg string) string { return "has(sg.projectcalico.org/openstack-" + sg + ")" }

// hostileSuite is the lab the cases share: RegionOne's host r1 with the
// web VM (the probe's target), the victim VM (the subject of the cases),
// the control VM (which no case may touch) and a local client; RegionTwo's
// host r2 with a remote client (whose endpoint r1 decodes with its fast
// decoder).
type hostileSuite struct {
	t      *testing.T
	l      *lab.Lab
	r1, r2 *lab.Host
	hosts  []*lab.Host

	web, victim, control, client, rclient *lab.VM

	etcdAddr  string // host:port of the lab's etcd
	probePort int
	base      map[*lab.Host]lab.OwnState
	baseTaps  map[*lab.Host][]string // workload routes at the start
	baseKeys  map[string]bool        // every key outside /calico/felix/ at the start
	logLines  map[*lab.Host]int      // log lines that are not records, so far
	panics    map[*lab.Host]int      // panics seen in each agent's log so far

	mu       sync.Mutex
	restarts int
	results  []*caseResult
}

// caseResult is what one case found, by kind of failure.
type caseResult struct {
	name                                         string
	crash, bypass, freeze, damage, other, repair int
}

func (r *caseResult) failed() bool {
	return r.crash+r.bypass+r.freeze+r.damage+r.other > 0
}

func TestHostileInput(t *testing.T) {
	s := newHostileSuite(t)
	for _, hc := range hostileCases(s) {
		t.Run(hc.name, func(t *testing.T) { s.run(t, hc) })
	}
	s.summary()
}

func newHostileSuite(t *testing.T) *hostileSuite {
	l := newLab(t)
	s := &hostileSuite{t: t, l: l, probePort: 8080, base: map[*lab.Host]lab.OwnState{},
		baseTaps: map[*lab.Host][]string{}, logLines: map[*lab.Host]int{}, panics: map[*lab.Host]int{}}
	u, err := url.Parse(l.Etcd.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	s.etcdAddr = u.Host
	// The failsafe ports cover what the hosts need, as an operator who
	// protects hosts with host endpoints sets them: etcd's port (the lab's
	// is not 2379) out, health and metrics in.
	_, etcdPort, _ := net.SplitHostPort(s.etcdAddr)
	failsafes := []string{"FailsafeOutboundHostPorts = udp:53,udp:67,tcp:179,tcp:" + etcdPort,
		"FailsafeInboundHostPorts = tcp:22,udp:68,tcp:9099,tcp:9091"}
	s.r1 = l.AddHost("r1-compute1", "RegionOne", failsafes...)
	s.r2 = l.AddHost("r2-compute1", "RegionTwo", failsafes...)
	s.hosts = []*lab.Host{s.r1, s.r2}

	// r1 reaches the world through a gateway, the core's address (where
	// etcd listens too), with a permanent neighbour entry for it: losing
	// either would show.
	coreMAC := strings.TrimSpace(netlab.Run(t, "cat", "/sys/class/net/core-h1/address"))
	s.r1.NS.MustExec(t, "ip", "route", "replace", "default", "via", lab.EtcdAddr, "dev", "eth0", "onlink")
	s.r1.NS.MustExec(t, "ip", "neigh", "replace", lab.EtcdAddr, "lladdr", coreMAC, "dev", "eth0", "nud", "permanent")

	s.web = s.r1.AddVM("web", 5)
	s.victim = s.r1.AddVM("victim", 6)
	s.control = s.r1.AddVM("control", 7)
	s.client = s.r1.AddVM("client", 8)
	s.rclient = s.r2.AddVM("rclient", 5)
	s.web.Serve(80, 8080, 8081, 8082)
	s.victim.Serve(80, 81)
	s.control.Serve(80, 81)

	// The victim's traffic gets back to it whatever the agent makes of
	// its endpoint (a route of the lab's own, in a table of its own), so
	// "blocked" tests the agent's rules, not a route it left out. The
	// victim also holds an address Neutron did not give it, for the
	// anti-spoofing cases, routed back the same way.
	s.victim.PathBack()
	s.victim.MustExec(t, "ip", "addr", "add", spoofAddr+"/32", "dev", "eth0")
	s.r1.NS.MustExec(t, "ip", "route", "add", spoofAddr+"/32", "dev", s.victim.HostSide, "table", "100")
	s.r1.NS.MustExec(t, "ip", "rule", "add", "to", spoofAddr+"/32", "lookup", "100", "pref", "100")
	fromClients := func(port int) lab.SGRule {
		return lab.SGRule{"action": "Allow", "protocol": "TCP", "destination": map[string]any{"ports": []int{port}},
			"source": map[string]any{"selector": sgSel(sgClients), "namespaceSelector": "all()"}}
	}
	l.PutSG("RegionOne", sgWeb, fromClients(80))
	l.PutSG("RegionOne", sgVictim, fromClients(80))
	l.PutSG("RegionOne", sgControl, fromClients(80), lab.SGRule{"action": "Allow", "protocol": "TCP",
		"destination": map[string]any{"ports": []int{80}}, "source": map[string]any{"selector": sgSel(sgVictim)}})
	l.PutSG("RegionOne", sgClients)
	l.PutSG("RegionTwo", sgClients)
	l.Put(escKey, namespacedPolicy("openstack-region-RegionOne", "hostile-escaped-label", map[string]any{
		"selector": sgSel(sgWeb), "types": []string{"Ingress"},
		"ingress": []any{map[string]any{"action": "Allow", "protocol": "TCP", "destination": map[string]any{"ports": []int{8082}},
			"source": map[string]any{"selector": sgSel(sgEsc), "namespaceSelector": "all()"}}}}))
	l.Put(probeKey, probeJSON(s.probePort))
	s.web.Plug(map[string]string{sgWeb: "web"})
	s.victim.Plug(map[string]string{sgVictim: "victim"})
	s.control.Plug(map[string]string{sgControl: "control"})
	s.client.Plug(map[string]string{sgClients: "clients"})
	s.rclient.Plug(map[string]string{sgClients: "clients"})
	ready(t, s.r1, s.r2)

	// The starting point, every pair over one path: what must connect
	// does, what must not does not.
	eventuallyConnects(t, s.rclient, s.web, 8080)
	eventuallyConnects(t, s.client, s.victim, 80)
	eventuallyConnects(t, s.client, s.control, 80)
	if !dialFrom(s.victim.VM, s.victim.IP, s.control.IP, 80, 2*time.Second) {
		t.Fatal("victim -> control:80 from its own address does not connect to begin with")
	}
	for _, f := range []struct {
		from *lab.VM
		src  string
		to   *lab.VM
		port int
	}{{s.rclient, "", s.web, 8081}, {s.rclient, "", s.web, 8082}, {s.client, "", s.victim, 81},
		{s.client, "", s.control, 81}, {s.victim, spoofAddr, s.control, 80}} {
		if dialFrom(f.from.VM, f.src, f.to.IP, f.port, blockedFor) {
			t.Fatalf("%s (source %q) -> %s:%d connects to begin with; must be blocked", f.from.Name, f.src, f.to.Name, f.port)
		}
	}
	// Settle, then take the baseline.
	netlab.Eventually(t, "workload routes in place", wait, func() bool {
		return len(s.r1.WorkloadRoutes("tap")) == 6 && len(s.r2.WorkloadRoutes("tap")) == 1
	})
	for _, h := range s.hosts {
		s.base[h] = h.OwnState("tap")
		s.baseTaps[h] = h.WorkloadRoutes("tap")
		s.logLines[h] = foreignLogLines(h.Log())
	}
	s.baseKeys = s.keys(t)
	return s
}

// run plays one case and resets it.
func (s *hostileSuite) run(t *testing.T, hc hostileCase) {
	c := &caseRun{t: t, s: s, res: &caseResult{name: hc.name}, orig: map[string]*string{}}
	s.mu.Lock()
	s.results = append(s.results, c.res)
	s.mu.Unlock()
	defer s.reset(c)
	before := s.problems(s.r1)
	restartsBefore := s.restarts

	for _, kv := range hc.puts {
		c.put(kv[0], kv[1])
	}
	if hc.run != nil {
		hc.run(c)
	}
	c.sync()
	c.standardFlows(hc)
	if hc.check != nil {
		hc.check(c)
	}
	s.checkHosts(c, "after the case")
	if hc.reported && s.restarts == restartsBefore {
		if after := s.problems(s.r1); after <= before {
			c.fail(&c.res.other, "the case was not reported (problem counters %v -> %v)", before, after)
		}
	}
}

// hostileCase is one case: keys written in order, then steps of its own,
// then the expectations.
type hostileCase struct {
	name string
	puts [][2]string
	run  func(c *caseRun)
	// closed: the victim VM is denied afterwards (the case's subject
	// fails closed on it); victimAny: its port 80 may go either way;
	// opens81: the case opens its port 81 on purpose.
	closed, victimAny, opens81 bool
	reported                   bool // r1 counts the case as a problem
	check                      func(c *caseRun)
}

// caseRun is a case in progress.
type caseRun struct {
	t       *testing.T
	s       *hostileSuite
	res     *caseResult
	touched []string
	orig    map[string]*string // the value before the case (nil: absent)
	// probeOld is the port the last sync closed, to be checked with the
	// next flows.
	probeOld int
}

// fail reports a failure of a kind.
func (c *caseRun) fail(kind *int, format string, args ...any) {
	c.t.Helper()
	*kind++
	label := map[*int]string{&c.res.crash: "CRASH", &c.res.bypass: "BYPASS", &c.res.freeze: "FROZEN",
		&c.res.damage: "HOST DAMAGED", &c.res.other: "FAILED"}[kind]
	c.t.Errorf("%s: "+format, append([]any{label}, args...)...)
}

func (c *caseRun) remember(key string) {
	if _, ok := c.orig[key]; ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.s.l.Cli.Get(ctx, key)
	if err != nil {
		c.t.Fatalf("reading %q: %v", key, err)
	}
	var old *string
	if len(r.Kvs) > 0 {
		v := string(r.Kvs[0].Value)
		old = &v
	}
	c.orig[key] = old
	c.touched = append(c.touched, key)
}

// put writes a key (remembering what to put back).
func (c *caseRun) put(key, value string) {
	c.t.Helper()
	c.remember(key)
	c.write(key, value)
}

// write writes a key.
func (c *caseRun) write(key, value string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.s.l.Cli.Put(ctx, key, value); err != nil {
		c.t.Fatalf("writing %q (%d bytes): %v", key, len(value), err)
	}
}

// del deletes a key (remembering what to put back).
func (c *caseRun) del(key string) {
	c.t.Helper()
	c.remember(key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.s.l.Cli.Delete(ctx, key); err != nil {
		c.t.Fatalf("deleting %q: %v", key, err)
	}
}

// eventually polls cond until it holds or the timeout passes, restarting
// agents that exited meanwhile.
func (c *caseRun) eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		c.s.supervise(c)
		time.Sleep(50 * time.Millisecond)
	}
}

// sync moves the probe to the other port and waits until the new port
// connects: the agents have then processed everything written before
// (etcd delivers in order, and the dataplane applies in order). A probe
// that does not take effect is frozen enforcement. The old port must be
// blocked again: the next flows call checks that, with its own flows.
func (c *caseRun) sync() {
	c.t.Helper()
	s := c.s
	if c.probeOld != 0 {
		c.flows()
	}
	s.supervise(c)
	old := s.probePort
	s.probePort = 8080 + 8081 - old
	c.write(probeKey, probeJSON(s.probePort))
	// Short attempts: a SYN the old rules drop is not sent again within
	// one, so each attempt after the apply is a fresh chance.
	if !c.eventually(probeWait, func() bool { return s.rclient.Connects(s.web.IP, s.probePort, 200*time.Millisecond) }) {
		c.fail(&c.res.freeze, "a fresh policy change did not take effect within %v: rclient -> web:%d does not connect", probeWait, s.probePort)
		return
	}
	c.probeOld = old
}

// flow is a connection attempt and whether it must succeed.
type flow struct {
	from *lab.VM
	src  string // source address ("": the VM's own)
	to   *lab.VM
	port int
	open bool
}

func (f flow) String() string {
	src := ""
	if f.src != "" {
		src = " from " + f.src
	}
	return fmt.Sprintf("%s%s -> %s:%d", f.from.Name, src, f.to.Name, f.port)
}

// flows checks flows concurrently: an open one may take up to 10 s to
// connect; a closed one gets one attempt (the state has settled: flows
// are checked after a sync).
func (c *caseRun) flows(fs ...flow) {
	c.t.Helper()
	if c.probeOld != 0 {
		fs = append(fs, flow{from: c.s.rclient, to: c.s.web, port: c.probeOld})
		c.probeOld = 0
	}
	type result struct {
		f  flow
		ok bool
	}
	results := make(chan result, len(fs))
	for _, f := range fs {
		go func(f flow) {
			if !f.open {
				results <- result{f, !dialFrom(f.from.VM, f.src, f.to.IP, f.port, blockedFor)}
				return
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				if dialFrom(f.from.VM, f.src, f.to.IP, f.port, 300*time.Millisecond) {
					results <- result{f, true}
					return
				}
				if time.Now().After(deadline) {
					results <- result{f, false}
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}(f)
	}
	for range fs {
		r := <-results
		switch {
		case r.ok:
		case r.f.open:
			c.fail(&c.res.other, "%v does not connect; must connect", r.f)
		default:
			c.fail(&c.res.bypass, "%v connects; must be blocked", r.f)
		}
	}
}

// standardFlows checks the victim and the control after a case.
func (c *caseRun) standardFlows(hc hostileCase) {
	c.t.Helper()
	s := c.s
	fs := []flow{{from: s.client, to: s.control, port: 80, open: true}, {from: s.client, to: s.control, port: 81}}
	switch {
	case hc.closed:
		fs = append(fs, flow{from: s.client, to: s.victim, port: 80})
	case !hc.victimAny:
		fs = append(fs, flow{from: s.client, to: s.victim, port: 80, open: true})
	}
	if !hc.opens81 {
		fs = append(fs, flow{from: s.client, to: s.victim, port: 81})
	}
	c.flows(fs...)
}

// reset puts back every key the case touched, syncs, checks the hosts
// again, and repairs a damaged host.
func (s *hostileSuite) reset(c *caseRun) {
	for i := len(c.touched) - 1; i >= 0; i-- {
		key := c.touched[i]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var err error
		if old := c.orig[key]; old != nil {
			_, err = s.l.Cli.Put(ctx, key, *old)
		} else {
			_, err = s.l.Cli.Delete(ctx, key)
		}
		cancel()
		if err != nil {
			c.t.Errorf("resetting %q: %v", key, err)
		}
	}
	c.touched, c.orig = nil, map[string]*string{}
	// The agents have taken the reset, and the victim is back: the next
	// case starts from the baseline (its own flows check the blocked
	// ports, the probe's old port among them).
	c.sync()
	c.probeOld = 0
	c.flows(flow{from: s.client, to: s.victim, port: 80, open: true})
	for _, h := range s.hosts {
		if !c.eventually(probeWait, func() bool { return equal(h.WorkloadRoutes("tap"), s.baseTaps[h]) }) {
			c.fail(&c.res.damage, "%s after the reset: routes on taps %q; want %q", h.Name, h.WorkloadRoutes("tap"), s.baseTaps[h])
		}
	}
	damaged := s.checkHosts(c, "after the reset")
	if keys := s.keys(c.t); !equal(lab.SortedKeys(keys), lab.SortedKeys(s.baseKeys)) {
		c.fail(&c.res.other, "keys outside the status tree differ after the reset: %q", lab.SortedKeys(keys))
	}
	for _, h := range damaged {
		c.res.repair++
		s.repair(c, h)
	}
}

// supervise restarts an agent that exited: after 129 (a configuration
// change that needs a restart) as systemd would; after anything else as
// a crash.
func (s *hostileSuite) supervise(c *caseRun) {
	for _, h := range s.hosts {
		if n := panics(h.Log()); n > s.panics[h] {
			s.panics[h] = n
			c.fail(&c.res.crash, "%s's log holds a new Go panic or fatal error:\n%s", h.Name, tail(h.Log(), 30))
		}
		exited, code := h.Exited()
		if !exited {
			continue
		}
		if code == exitRestart {
			s.mu.Lock()
			s.restarts++
			s.mu.Unlock()
			c.t.Logf("%s exited with 129 (configuration change); restarting it as systemd would", h.Name)
		} else {
			c.fail(&c.res.crash, "%s's agent exited with code %d:\n%s", h.Name, code, tail(h.Log(), 30))
		}
		h.Start()
		if !netlab.Within(wait, h.Ready) {
			c.fail(&c.res.freeze, "%s's restarted agent is not ready within %v", h.Name, wait)
		}
	}
}

const exitRestart = 129

// checkHosts compares each host with its baseline; it returns the hosts
// found damaged.
func (s *hostileSuite) checkHosts(c *caseRun, phase string) []*lab.Host {
	c.t.Helper()
	s.supervise(c)
	type finding struct {
		kind *int
		msg  string
	}
	findings := make([][]finding, len(s.hosts))
	var wg sync.WaitGroup
	for i, h := range s.hosts {
		wg.Go(func() {
			add := func(kind *int, format string, args ...any) {
				findings[i] = append(findings[i], finding{kind, h.Name + " " + phase + ": " + fmt.Sprintf(format, args...)})
			}
			switch code, body := h.HTTP(9099, "/liveness"); code {
			case 200:
			case 0: // unreachable: the host's own routing is what broke (checked below)
				add(&c.res.other, "/liveness cannot be reached: %s", body)
			default:
				add(&c.res.freeze, "/liveness answers %d: %s", code, body)
			}
			st := h.OwnState("tap")
			if d := st.Diff(s.base[h]); len(d) > 0 {
				add(&c.res.damage, "the host's own state changed:\n%s", strings.Join(d, "\n"))
				for _, l := range d {
					if strings.Contains(l, "tables-") && strings.Contains(l, ": + ") {
						add(&c.res.bypass, "a rule outside the agent's chains: %s", l)
					}
				}
			}
			for _, cmd := range lab.SortedKeys(st.Saves) {
				if r := lab.UncommentedAgentRules(st.Saves[cmd]); len(r) > 0 {
					add(&c.res.bypass, "rules in the agent's chains that the agent did not write (%s):\n%s", cmd, strings.Join(r, "\n"))
				}
			}
			for _, r := range st.WorkloadRoutes {
				if hostAddress(strings.Fields(r)[0]) {
					add(&c.res.damage, "a route into a VM for the host's own network: %s", r)
				}
			}
			for _, n := range st.WorkloadNeighbours {
				if hostAddress(strings.Fields(n)[0]) {
					add(&c.res.damage, "a neighbour entry on a tap for the host's own network: %s", n)
				}
			}
			if conn, err := netlab.Dial(h.NS, s.etcdAddr, 3*time.Second); err != nil {
				add(&c.res.damage, "the host cannot open a connection to etcd at %s: %v", s.etcdAddr, err)
			} else {
				conn.Close()
			}
		})
	}
	wg.Wait()
	var damaged []*lab.Host
	for i, h := range s.hosts {
		for _, f := range findings[i] {
			c.fail(f.kind, "%s", f.msg)
		}
		if len(findings[i]) > 0 {
			damaged = append(damaged, h)
		}
		if n := foreignLogLines(h.Log()); n > s.logLines[h] {
			c.fail(&c.res.other, "%s %s: %d log lines that are not log records (a value broke out of its quotes?):\n%s",
				h.Name, phase, n-s.logLines[h], tail(h.Log(), 20))
			s.logLines[h] = n
		}
	}
	s.checkStatusKeys(c, phase)
	return damaged
}

// checkStatusKeys: the agents write only their own status keys, in their
// own shape.
func (s *hostileSuite) checkStatusKeys(c *caseRun, phase string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := s.l.Cli.Get(ctx, "/calico/felix/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		c.t.Errorf("listing status keys: %v", err)
		return
	}
	prefixes := []string{"/calico/felix/v2/region-RegionOne/host/r1-compute1/", "/calico/felix/v2/region-RegionTwo/host/r2-compute1/"}
	// Host endpoints' statuses, without a region (docs/calico.md).
	hepPrefixes := []string{"/calico/felix/v1/host/r1-compute1/endpoint/", "/calico/felix/v1/host/r2-compute1/endpoint/"}
	for _, kv := range r.Kvs {
		k := string(kv.Key)
		ok := false
		for _, p := range hepPrefixes {
			if name, found := strings.CutPrefix(k, p); found && name != "" && !strings.Contains(name, "/") && printableASCII(name) {
				ok = true
			}
		}
		for _, p := range prefixes {
			rest, found := strings.CutPrefix(k, p)
			if !found {
				continue
			}
			segs := strings.Split(rest, "/")
			ok = rest == "status" || rest == "last_reported_status" ||
				len(segs) == 5 && segs[0] == "workload" && segs[3] == "endpoint" && segs[1] != "" && segs[2] != "" && segs[4] != ""
			for _, seg := range segs {
				if !printableASCII(seg) {
					ok = false
				}
			}
		}
		if !ok {
			c.fail(&c.res.other, "%s: a status key outside the agents' own or of the wrong shape: %q", phase, k)
		}
	}
}

// printableASCII reports whether s holds only printable ASCII without
// spaces.
func printableASCII(s string) bool {
	for _, ch := range s {
		if ch < 0x21 || ch > 0x7e {
			return false
		}
	}
	return true
}

// keys lists every key outside /calico/felix/.
func (s *hostileSuite) keys(t testing.TB) map[string]bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := s.l.Cli.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatalf("listing keys: %v", err)
	}
	out := map[string]bool{}
	for _, kv := range r.Kvs {
		if k := string(kv.Key); !strings.HasPrefix(k, "/calico/felix/") {
			out[k] = true
		}
	}
	return out
}

// repair puts a damaged host back to its baseline: the agent stopped, its
// iptables restored, its own routes and neighbour entries replayed, stray
// routes and neighbours on taps deleted, the agent started again.
func (s *hostileSuite) repair(c *caseRun, h *lab.Host) {
	c.t.Logf("repairing %s", h.Name)
	h.Stop()
	base := s.base[h]
	cur := h.OwnState("tap")
	// The agent's own chains too: a rule in them (a DNAT of the host's
	// traffic, say) may be what keeps the agent from etcd.
	for cmd, save := range base.Saves {
		if err := h.RestoreIptables(cmd, save); err != nil {
			c.t.Errorf("repairing %s: %v", h.Name, err)
		}
	}
	for _, fam := range []string{"-4", "-6"} {
		added, removed := diff(base.Sections["routes"+fam], cur.Sections["routes"+fam])
		for _, r := range added {
			h.Exec("ip", append([]string{fam, "route", "del"}, strings.Fields(r)...)...)
		}
		for _, r := range removed {
			h.Exec("ip", append([]string{fam, "route", "replace"}, strings.Fields(r)...)...)
		}
		added, removed = diff(base.Sections["neighbours"+fam], cur.Sections["neighbours"+fam])
		for _, n := range added {
			f := strings.Fields(n)
			h.Exec("ip", fam, "neigh", "del", f[0], "dev", fieldAfter(f, "dev"))
		}
		for _, n := range removed {
			f := strings.Fields(n)
			h.Exec("ip", fam, "neigh", "replace", f[0], "dev", fieldAfter(f, "dev"), "lladdr", fieldAfter(f, "lladdr"), "nud", "permanent")
		}
	}
	for _, fam := range []string{"-4", "-6"} {
		routes, _ := h.Exec("ip", fam, "route", "show", "table", "all")
		for _, line := range strings.Split(routes, "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(fieldAfter(f, "dev"), "tap") && hostAddress(f[0]) {
				if out, err := h.Exec("ip", append([]string{fam, "route", "del"}, f...)...); err != nil {
					c.t.Errorf("repairing %s: ip route del %s: %v: %s", h.Name, line, err, out)
				}
			}
		}
	}
	for _, n := range h.WorkloadNeighbours("tap") {
		if f := strings.Fields(n); hostAddress(f[0]) {
			h.Exec("ip", "neigh", "del", f[0], "dev", f[2])
		}
	}
	h.Start()
	if !netlab.Within(wait, h.Ready) {
		c.t.Errorf("%s not ready after the repair", h.Name)
	}
	if d := h.OwnState("tap").Diff(base); len(d) > 0 {
		c.t.Errorf("%s still differs from its baseline after the repair:\n%s", h.Name, strings.Join(d, "\n"))
	}
}

// problems sums r1's counters of reported problems.
func (s *hostileSuite) problems(h *lab.Host) float64 {
	_, body := h.HTTP(9091, "/metrics")
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "ocelot_datastore_invalid_resources_total") || strings.HasPrefix(line, "ocelot_calc_problems_total") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// summary prints how many cases ran and, by kind, how many failed.
func (s *hostileSuite) summary() {
	var total caseResult
	var failed []string
	for _, r := range s.results {
		total.crash += r.crash
		total.bypass += r.bypass
		total.freeze += r.freeze
		total.damage += r.damage
		total.other += r.other
		total.repair += r.repair
		if r.failed() {
			failed = append(failed, fmt.Sprintf("%s (crash %d, bypass %d, frozen %d, host %d, other %d)", r.name, r.crash, r.bypass, r.freeze, r.damage, r.other))
		}
	}
	s.t.Logf("hostile cases: %d; failed: %d; crashes: %d; bypasses: %d; frozen: %d; host damage: %d; other: %d; hosts repaired: %d; agent restarts for configuration: %d",
		len(s.results), len(failed), total.crash, total.bypass, total.freeze, total.damage, total.other, total.repair, s.restarts)
	for _, f := range failed {
		s.t.Logf("  failed: %s", f)
	}
}

// dialFrom reports whether a TCP connection from vm (from address src,
// "" for its own) to ip:port carries an echo within timeout.
func dialFrom(vm *netlab.VM, src, ip string, port int, timeout time.Duration) bool {
	var conn net.Conn
	err := vm.Do(func() error {
		d := net.Dialer{Timeout: timeout}
		if src != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		}
		var err error
		conn, err = d.Dial("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		return err
	})
	if err != nil {
		return false
	}
	defer conn.Close()
	return netlab.Echoes(conn, timeout)
}

// infraNet holds the lab's own addresses: the core and etcd (198.18.0.1),
// the hosts (198.18.0.1x), etcd cluster members. VMs live in
// 198.18.1x.0/24.
var infraNet = netip.MustParsePrefix("198.18.0.0/24")

// hostAddress reports whether a route destination or neighbour address
// ("198.18.0.1", "198.18.0.0/16", "default", "::/0") covers or lies in the
// host's own network, or is a default route: a route or neighbour entry
// for it on a tap would take the host's own traffic into a VM.
func hostAddress(dst string) bool {
	if dst == "default" {
		return true
	}
	p, err := netip.ParsePrefix(dst)
	if err != nil {
		a, err := netip.ParseAddr(dst)
		if err != nil {
			return true // unreadable: suspicious
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	return p.Bits() == 0 || p.Overlaps(infraNet)
}

// foreignLogLines counts the lines of an agent's output that are not log
// records (slog's text records start with "time=").
func foreignLogLines(log string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if l != "" && !strings.HasPrefix(l, "time=") {
			n++
		}
	}
	return n
}

// panics counts Go panics and fatal errors in a log.
func panics(log string) int {
	return strings.Count(log, "\npanic: ") + strings.Count(log, "\nfatal error: ")
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// diff compares two sorted lists as multisets: lines only in b (added)
// and only in a (removed).
func diff(a, b []string) (added, removed []string) {
	count := map[string]int{}
	for _, l := range a {
		count[l]++
	}
	for _, l := range b {
		count[l]--
	}
	for l, n := range count {
		for ; n > 0; n-- {
			removed = append(removed, l)
		}
		for ; n < 0; n++ {
			added = append(added, l)
		}
	}
	return added, removed
}

func fieldAfter(f []string, key string) string {
	for i := 0; i+1 < len(f); i++ {
		if f[i] == key {
			return f[i+1]
		}
	}
	return ""
}

// Resource values.

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func globalPolicy(name string, spec map[string]any) string {
	return mustJSON(map[string]any{"kind": "GlobalNetworkPolicy", "apiVersion": "projectcalico.org/v3",
		"metadata": map[string]any{"name": name}, "spec": spec})
}

func namespacedPolicy(ns, name string, spec map[string]any) string {
	return mustJSON(map[string]any{"kind": "NetworkPolicy", "apiVersion": "projectcalico.org/v3",
		"metadata": map[string]any{"name": name, "namespace": ns}, "spec": spec})
}

// probeJSON is the probe policy: the web VM open to the clients group on
// one port.
func probeJSON(port int) string {
	return namespacedPolicy("openstack-region-RegionOne", "hostile-probe", map[string]any{
		"selector": sgSel(sgWeb), "types": []string{"Ingress"},
		"ingress": []any{map[string]any{"action": "Allow", "protocol": "TCP", "destination": map[string]any{"ports": []int{port}},
			"source": map[string]any{"selector": sgSel(sgClients), "namespaceSelector": "all()"}}}})
}
