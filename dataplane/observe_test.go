package dataplane

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"ocelot/config"
	"ocelot/contract"
	"ocelot/dataplane/droplog"
	"ocelot/dataplane/internal/fakekernel"
	"ocelot/dataplane/rules"
	rs "ocelot/dataplane/ruleset"
	"ocelot/explain"
)

// The explain queries are served by the running dataplane, from the
// state it holds: the policies as sent and the sets' members as sent.
func TestExplainServedByTheLoop(t *testing.T) {
	h := newHarness(t)
	h.plug("tapweb")
	web := epID("web")
	ep := endpoint(web, "tapweb", "198.18.11.5", "web")
	ep.Labels = map[string]string{"sg": "web"}
	set := ipset("s:clients", "198.18.12.5")
	set.Selector = "has(sg-clients)"
	h.send(set, policy("web", "s:clients"), ep, contract.InSync{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.d.Run(ctx)
	ask := func(q explain.Query) explain.Answer {
		t.Helper()
		qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
		defer qcancel()
		a, err := h.d.Explain(qctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	deadline := time.Now().Add(5 * time.Second)
	for !ask(explain.Query{Endpoint: "tapweb"}).InSync && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	a := ask(explain.Query{Endpoint: "198.18.11.5"})
	if a.Error != "" || !a.InSync || a.Endpoint.Labels["sg"] != "web" || len(a.Endpoint.Sets) != 1 ||
		a.Endpoint.Sets[0].Selector != "has(sg-clients)" || a.Endpoint.Sets[0].Members[0] != 1 || a.Endpoint.ToChain != tw("tapweb") {
		t.Fatalf("endpoint: %+v", a)
	}
	if a.Endpoint.Ingress[0].Policies[0].Chain != pi("web") {
		t.Errorf("policy chain %q, want %q", a.Endpoint.Ingress[0].Policies[0].Chain, pi("web"))
	}
	flow := func(src string, port uint16) string {
		return ask(explain.Query{Flow: &explain.Flow{Src: src, Dst: "tapweb", DstPort: port}}).Flow.Verdict
	}
	if v := flow("198.18.12.5", 80); v != "allowed" {
		t.Errorf("member of the set, port 80: %s", v)
	}
	if v := flow("198.18.12.6", 80); v != "denied" {
		t.Errorf("not a member: %s", v)
	}
	// A member added later counts as soon as the dataplane has it.
	h.d.Send([]contract.Message{contract.IPSetDelta{ID: "s:clients", Added: []contract.Member{member("198.18.12.6")}}})
	deadline = time.Now().Add(5 * time.Second)
	for flow("198.18.12.6", 80) != "allowed" {
		if time.Now().After(deadline) {
			t.Fatal("a member sent later is not seen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A query that waits longer than its caller gives up, without
	// holding the loop.
	cancelled, c2 := context.WithCancel(ctx)
	c2()
	if _, err := h.d.Explain(cancelled, explain.Query{Endpoint: "tapweb"}); err == nil {
		t.Error("a cancelled query was answered")
	}
}

// Counters come from the kernel's rule counters of the rules that
// decide; rewritten chains do not make them go back; a policy's series
// go with it.
func TestPolicyCounters(t *testing.T) {
	h := newHarness(t)
	h.plug("tapweb")
	web := epID("web")
	h.send(ipset("s:clients", "198.18.12.5"), policy("web", "s:clients"), endpoint(web, "tapweb", "198.18.11.5", "web"), contract.InSync{})
	h.apply()
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.d.counters)
	h.d.counters.minInterval = 0
	series := func(name string, labels ...string) float64 {
		t.Helper()
		return metricValue(t, reg, name, labels...)
	}
	allow := []string{"policy", "np/ns/web", "direction", "ingress", "action", "allow"}
	if v := series("ocelot_policy_packets_total", allow...); v != 0 {
		t.Fatalf("before any traffic: %v", v)
	}
	// Traffic: the allow rule's mark rule counts.
	if !h.k.Count(4, "filter", pi("web"), "--set-mark 0x10000/0x10000", 7, 420) {
		t.Fatalf("no allow rule to count:\n%s", strings.Join(h.chain(pi("web")), "\n"))
	}
	if !h.k.Count(4, "filter", tw("tapweb"), "End of tier default", 3, 180) {
		t.Fatal("no end-of-tier rule to count")
	}
	if v := series("ocelot_policy_packets_total", allow...); v != 7 {
		t.Errorf("allowed packets %v, want 7", v)
	}
	if v := series("ocelot_policy_bytes_total", allow...); v != 420 {
		t.Errorf("allowed bytes %v, want 420", v)
	}
	if v := series("ocelot_endpoint_default_drop_packets_total", "endpoint", web.String(), "iface", "tapweb", "direction", "ingress"); v != 3 {
		t.Errorf("default drops %v, want 3", v)
	}
	// Reading again adds nothing new.
	if v := series("ocelot_policy_packets_total", allow...); v != 7 {
		t.Errorf("read twice: %v", v)
	}
	// The policy changes: its chain is rewritten with fresh counters; the
	// total keeps what it had and grows from there.
	p := policy("web", "s:clients")
	p.Inbound = append(p.Inbound, contract.Rule{Action: contract.ActionDeny})
	h.send(p)
	h.apply()
	h.k.Count(4, "filter", pi("web"), "--set-mark 0x10000/0x10000", 2, 120)
	// The verdict rule after the mark counts the same packets again: not
	// added.
	if !h.k.Count(4, "filter", pi("web"), "--jump RETURN", 2, 120) {
		t.Fatal("no verdict rule")
	}
	if v := series("ocelot_policy_packets_total", allow...); v != 9 {
		t.Errorf("after a rewrite: %v, want 9", v)
	}
	h.k.Count(4, "filter", pi("web"), "--set-mark 0x40000/0x40000", 5, 300)
	if v := series("ocelot_policy_packets_total", "policy", "np/ns/web", "direction", "ingress", "action", "deny"); v != 5 {
		t.Errorf("denied: %v, want 5", v)
	}
	// The endpoint goes: no local endpoint uses the policy, its series go.
	h.send(contract.EndpointRemove{ID: web}, contract.PolicyRemove{ID: polID("web")})
	h.apply()
	if n := countSeries(t, reg, "ocelot_policy_packets_total"); n != 0 {
		t.Errorf("%d policy series left after the policy went", n)
	}
	if n := countSeries(t, reg, "ocelot_endpoint_default_drop_packets_total"); n != 0 {
		t.Errorf("%d endpoint series left after the endpoint went", n)
	}
}

// In nftables mode the counters come from the rules' counter expressions,
// matched by the nftables rendering's hashes.
func TestPolicyCountersNftables(t *testing.T) {
	h := newHarnessWith(t, func(c *Config) { c.NFTablesMode = "Enabled" })
	h.plug("tapweb")
	web := epID("web")
	pol := policy("web", "s:clients")
	h.send(ipset("s:clients", "198.18.12.5"), pol, endpoint(web, "tapweb", "198.18.11.5", "web"), contract.InSync{})
	h.apply()
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.d.counters)
	h.d.counters.minInterval = 0
	allow := []string{"policy", "np/ns/web", "direction", "ingress", "action", "allow"}
	// The allow rule: the rule that sets the accept mark.
	f := h.d.families[0]
	idx := slices.IndexFunc(f.rules.PolicyChain(&pol, true).Rules, func(r rs.Rule) bool {
		m, ok := r.Action.(rs.SetMark)
		return ok && m.Value == f.rules.Marks.Accept
	})
	if idx < 0 {
		t.Fatal("no allow rule in the policy chain")
	}
	h.k.NFTCount(4, "calico", "filter-"+pi("web"), idx, 7, 420)
	if v := metricValue(t, reg, "ocelot_policy_packets_total", allow...); v != 7 {
		t.Errorf("allowed packets %v, want 7", v)
	}
	if v := metricValue(t, reg, "ocelot_policy_bytes_total", allow...); v != 420 {
		t.Errorf("allowed bytes %v, want 420", v)
	}
}

// A logged denial reaches the drop log's reader, which names the policy,
// the rule and the endpoint from the dataplane's state.
func TestDropLogNamesThePolicy(t *testing.T) {
	cfg := testConfig(t)
	cfg.DropActionOverride = "LogAndDrop"
	cfg.DropLog = DropLogConfig{Enabled: true, Group: 20, Rate: 100, Burst: 100}
	cfg.Rules.DropLog = &rules.DropLog{Group: 20, Limit: limitOf(config.LogRate{Count: 10, Per: "second"}, 20, 10), Size: 128}
	var logs syncBuffer
	cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	h := &harness{t: t, k: fakekernel.New(), st: map[contract.EndpointID]string{}}
	src := &fakeSource{pkts: make(chan droplog.Packet, 4)}
	k := fakeKernel(h.k)
	var opened bool
	k.nflog = func(group uint16, size uint32) (droplog.Source, error) {
		opened = group == 20 && size == 128
		return src, nil
	}
	idx := map[uint32]string{}
	k.ifName = func(i uint32) string { return idx[i] }
	d, err := newDataplane(cfg, nil, k)
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	d.routes.synced = true
	h.plug("tapweb")
	web := epID("web")
	p := policy("web", "s:clients")
	p.Inbound = append(p.Inbound, contract.Rule{Action: contract.ActionDeny, Protocol: &contract.Protocol{Name: "udp", Num: 17}})
	h.send(ipset("s:clients", "198.18.12.5"), p, endpoint(web, "tapweb", "198.18.11.5", "web"), contract.InSync{})
	h.apply()
	// The rendered rule logs under the prefix the reader resolves.
	prefix := rules.DropRef{Policy: polID("web"), Inbound: true, Rule: 1}.Prefix()
	if !strings.Contains(strings.Join(h.chain(pi("web")), "\n"), `--nflog-prefix "`+prefix+`"`) {
		t.Fatalf("no NFLOG rule with %q in %s:\n%s", prefix, pi("web"), strings.Join(h.chain(pi("web")), "\n"))
	}
	for _, l := range h.k.Links() {
		idx[uint32(l.Index)] = l.Name
	}
	var tapIdx uint32
	for i, n := range idx {
		if n == "tapweb" {
			tapIdx = i
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.dropLog.Run(ctx)
	src.pkts <- droplog.Packet{Prefix: prefix, InDev: 1, OutDev: tapIdx, Payload: udpPacket("198.18.12.9", "198.18.11.5", 5000, 53)}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "packet denied by policy") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	line := logs.String()
	for _, want := range []string{"policy=np/ns/web", "rule=1", "direction=ingress", "iface=tapweb", "endpoint=" + web.String(), "src=198.18.12.9", "dport=53"} {
		if !strings.Contains(line, want) {
			t.Errorf("drop line lacks %s:\n%s", want, line)
		}
	}
	if !opened {
		t.Error("the reader did not open group 20 with 128 bytes")
	}
}

type fakeSource struct{ pkts chan droplog.Packet }

func (s *fakeSource) Read() ([]droplog.Packet, int, error) {
	select {
	case p := <-s.pkts:
		return []droplog.Packet{p}, 0, nil
	case <-time.After(50 * time.Millisecond):
		return nil, 0, nil
	}
}

func (s *fakeSource) Close() error { return nil }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func udpPacket(src, dst string, sport, dport uint16) []byte {
	b := make([]byte, 28)
	b[0], b[9] = 0x45, 17
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	return b
}

// metricValue gathers a series' value (0 when absent).
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func countSeries(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	n, err := testutil.GatherAndCount(reg, name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A scrape at the design targets' scale (50 local endpoints, 20 policies
// each), on the fake kernel: parsing the counters and adding them up. On
// a host, iptables-save -c of the filter table comes on top.
func BenchmarkCollectCounters(b *testing.B) {
	h := newHarness(&testing.T{})
	var msgs []contract.Message
	var pols []string
	for p := range 20 {
		name := fmt.Sprint("sg", p)
		pols = append(pols, name)
		msgs = append(msgs, ipset(fmt.Sprint("s:", p), "198.18.1.1"))
		msgs = append(msgs, policy(name, fmt.Sprint("s:", p)))
	}
	for e := range 50 {
		iface := fmt.Sprint("tap", e)
		h.plug(iface)
		msgs = append(msgs, endpoint(epID(iface), iface, fmt.Sprintf("198.19.0.%d", e), pols...))
	}
	h.d.onMessages(append(msgs, contract.InSync{}))
	if _, err := h.d.apply(context.Background()); err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.d.counters)
	h.d.counters.minInterval = 0
	b.ReportAllocs()
	for b.Loop() {
		if n, err := testutil.GatherAndCount(reg, "ocelot_policy_packets_total"); err != nil || n != 40 {
			b.Fatalf("%d series, %v", n, err)
		}
	}
}
