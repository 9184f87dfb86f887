package scalebench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	RunChildIfAsked() // the test binary is also the members and the proxy
	os.Exit(m.Run())
}

// The proxy's own counters (prefixed) replace the unused member counters
// its binary also exposes, in either order; sums filter by label.
func TestParseMetrics(t *testing.T) {
	for _, text := range []string{
		"# HELP x\netcd_network_client_grpc_sent_bytes_total 0\nscalebench_proxy_etcd_network_client_grpc_sent_bytes_total 42\n" +
			"scalebench_proxy_grpc_server_started_total{grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\"} 3\n" +
			"scalebench_proxy_grpc_server_started_total{grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\"} 5\nunrelated 7\n",
		"scalebench_proxy_etcd_network_client_grpc_sent_bytes_total 42\netcd_network_client_grpc_sent_bytes_total 0\n" +
			"scalebench_proxy_grpc_server_started_total{grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\"} 5\n" +
			"scalebench_proxy_grpc_server_started_total{grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\"} 3\n",
	} {
		m, err := parseMetrics(strings.NewReader(text), proxyPrefix, []string{mSentBytes, mStarted})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.sum(mSentBytes); got != 42 {
			t.Errorf("sent bytes %v, want the proxy's 42", got)
		}
		if got, all := m.sum(mStarted, `grpc_method="Watch"`), m.sum(mStarted); got != 3 || all != 8 {
			t.Errorf("watch starts %v of %v, want 3 of 8", got, all)
		}
		if _, ok := m["unrelated"]; ok {
			t.Error("kept a metric not asked for")
		}
	}
	if m, _ := parseMetrics(strings.NewReader("etcd_network_client_grpc_sent_bytes_total 9\n"), "", []string{mSentBytes}); m.sum(mSentBytes) != 9 {
		t.Errorf("a member's counter: %v", m.sum(mSentBytes))
	}
}

// TestSmoke runs the harness at toy size in both topologies and checks
// that it measures what it claims: every write reaches every agent, each
// agent holds its own watch on a member when it talks to the members, the
// proxy folds them into fewer, and every process is read.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two three-member etcd clusters")
	}
	const agents = 6
	for _, proxy := range []bool{false, true} {
		t.Run(fmt.Sprintf("proxy=%v", proxy), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := Run(ctx, Config{
				Dir: t.TempDir(), Proxy: proxy, Levels: []int{agents},
				Cloud:     Cloud{Endpoints: 240, Regions: []string{"RegionOne", "RegionTwo", "RegionThree"}, Groups: 20, PerHost: 30},
				ChurnRate: 50, ChurnWindow: time.Second, IdleWindow: 500 * time.Millisecond, Settle: 200 * time.Millisecond,
				HeartbeatInterval: time.Second, HeartbeatTTL: 3 * time.Second,
				AgentLog: testLog(t),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Log(res.Markdown())
			l := res.Levels[0]
			w := l.Churn
			if w.Writes < 20 || w.Received != w.Expected || w.Expected != w.Writes*agents {
				t.Errorf("writes %d: received %d of %d deliveries", w.Writes, w.Received, w.Expected)
			}
			if w.LatP50 <= 0 || w.AllP99 < w.LatP50 {
				t.Errorf("latencies p50 %v, last agent p99 %v", w.LatP50, w.AllP99)
			}
			watchers := l.Idle.members(func(p Proc) float64 { return p.Watchers })
			sent := w.members(func(p Proc) float64 { return p.SentBytes })
			cpu := w.members(func(p Proc) float64 { return p.CPUSeconds })
			if sent <= 0 || cpu <= 0 {
				t.Errorf("members: sent %.0f bytes, %.2f CPU seconds in the churn window", sent, cpu)
			}
			if l.Idle.Leases < agents {
				t.Errorf("%d leases alive; every agent's heartbeat holds one", l.Idle.Leases)
			}
			if l.Herd.ListP50 <= 0 || l.Probe.List <= 0 {
				t.Errorf("list times: herd p50 %v, probe %v", l.Herd.ListP50, l.Probe.List)
			}
			if !proxy {
				if watchers < agents {
					t.Errorf("members hold %.0f watchers for %d agents", watchers, agents)
				}
				return
			}
			// The proxy keeps one watcher of its own on leadership, and
			// folds the agents' identical watches into fewer.
			if watchers >= agents {
				t.Errorf("behind the proxy, members hold %.0f watchers for %d agents", watchers, agents)
			}
			if w.Proxy == nil || w.Proxy.SentBytes <= 0 || w.Proxy.CPUSeconds <= 0 {
				t.Errorf("proxy not measured: %+v", w.Proxy)
			}
		})
	}
}

// TestBenchEtcdScale is the full benchmark (make bench-etcd): a cloud of
// 10,000 endpoints, agents added in levels, direct and through a
// grpc-proxy. It prints the tables of docs/design/datastore-scale.md.
//
// Tunables: OCELOT_BENCH_ETCD_LEVELS (default 1,50,100,300),
// OCELOT_BENCH_ETCD_CHURN (window, default 20s), OCELOT_BENCH_ETCD_IDLE
// (default 30s, one heartbeat interval), OCELOT_BENCH_ETCD_TOPOLOGY
// (direct, proxy or both).
func TestBenchEtcdScale(t *testing.T) {
	if os.Getenv("OCELOT_BENCH_ETCD") == "" {
		t.Skip("set OCELOT_BENCH_ETCD=1 (make bench-etcd)")
	}
	levels := []int{1, 50, 100, 300}
	if s := os.Getenv("OCELOT_BENCH_ETCD_LEVELS"); s != "" {
		levels = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || (len(levels) > 0 && n <= levels[len(levels)-1]) {
				t.Fatalf("OCELOT_BENCH_ETCD_LEVELS=%q: want ascending agent counts", s)
			}
			levels = append(levels, n)
		}
	}
	dur := func(env string, def time.Duration) time.Duration {
		if s := os.Getenv(env); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				t.Fatalf("%s: %v", env, err)
			}
			return d
		}
		return def
	}
	topologies := map[string][]bool{"direct": {false}, "proxy": {true}, "both": {false, true}, "": {false, true}}[os.Getenv("OCELOT_BENCH_ETCD_TOPOLOGY")]
	if topologies == nil {
		t.Fatal("OCELOT_BENCH_ETCD_TOPOLOGY: direct, proxy or both")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var results []*Result
	for _, proxy := range topologies {
		log.Info("run", "proxy", proxy, "levels", levels)
		began := time.Now()
		res, err := Run(context.Background(), Config{
			Dir: t.TempDir(), Proxy: proxy, Levels: levels,
			Cloud:     Cloud{Endpoints: 10_000, Regions: []string{"RegionOne", "RegionTwo", "RegionThree"}, Groups: 1000, PerHost: 32},
			ChurnRate: 100, ChurnWindow: dur("OCELOT_BENCH_ETCD_CHURN", 20*time.Second),
			IdleWindow: dur("OCELOT_BENCH_ETCD_IDLE", 30*time.Second), Settle: 3 * time.Second,
			HeartbeatInterval: 30 * time.Second, HeartbeatTTL: 90 * time.Second, // Felix's defaults
			Log: log, AgentLog: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		})
		if err != nil {
			t.Fatal(err)
		}
		log.Info("run done", "proxy", proxy, "took", time.Since(began).Round(time.Second))
		results = append(results, res)
		fmt.Print(res.Markdown())
	}
	fmt.Print(MarginalMarkdown(results...))
}

// TestBenchEtcdOutage: how long an agent takes to report the datastore
// unreachable when the cluster loses its quorum or goes down entirely,
// direct and through the proxy (make bench-etcd).
func TestBenchEtcdOutage(t *testing.T) {
	if os.Getenv("OCELOT_BENCH_ETCD") == "" {
		t.Skip("set OCELOT_BENCH_ETCD=1 (make bench-etcd)")
	}
	const wait = 30 * time.Second
	fmt.Printf("\n### Outage: until the agent reports the datastore unreachable (Syncer.Status, readiness)\n\n| agent | quorum lost (2 of 3 members stopped) | cluster down (3 of 3 stopped) |\n|---|---|---|\n")
	for _, proxy := range []bool{false, true} {
		how := "direct to the members"
		if proxy {
			how = "through one grpc-proxy"
		}
		fmt.Printf("| %s |", how)
		for _, stop := range []int{2, 3} {
			d, ok, err := Outage(context.Background(), t.TempDir(), proxy, stop, wait,
				slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
			if err != nil {
				t.Fatal(err)
			}
			after := d.Round(100 * time.Millisecond).String()
			if !ok {
				after = "still connected after " + wait.String()
			}
			fmt.Printf(" %s |", after)
		}
		fmt.Println()
	}
}

// testLog shows the agents' warnings in verbose runs.
func testLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}
