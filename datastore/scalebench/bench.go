package scalebench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"

	"ocelot/datastore"
	"ocelot/datastore/resource"
)

// Config is one run: one topology (direct or through a proxy), a fresh
// cluster, the cloud loaded, and agents added level by level.
type Config struct {
	Dir    string // scratch directory: members' data, logs
	Proxy  bool   // agents reach the cluster through one grpc-proxy
	Levels []int  // agent counts, ascending; e.g. 1, 50, 100, 300
	Cloud  Cloud

	ChurnRate   int           // endpoint updates per second in the churn window
	ChurnWindow time.Duration // how long the churn runs at each level
	IdleWindow  time.Duration // a window without churn: heartbeats and keepalives only
	Settle      time.Duration // pause after agents start, before measuring

	HeartbeatInterval, HeartbeatTTL time.Duration // ReportingIntervalSecs, ReportingTTLSecs

	Log      *slog.Logger // progress; nil discards
	AgentLog *slog.Logger // the agents' own warnings; nil discards
}

// Result is what one run measured.
type Result struct {
	Proxy      bool
	Keys       int // keys loaded
	ValueBytes int // bytes of their values
	LoadTime   time.Duration
	Levels     []Level

	// The mean size of one endpoint update as a watch event: as the Syncer
	// asks for it (with the previous value) and without the previous value.
	EventBytes, EventBytesNoPrev float64
}

// Level is what was measured with a given number of agents running.
type Level struct {
	Agents int
	Herd   Herd   // the agents this level added, started at once
	Idle   Window // no churn
	Churn  Window // ChurnRate endpoint updates per second
	Probe  Probe  // one more agent starting while Agents run
}

// Herd is the start of several agents at once (a region's restart, or all
// agents re-listing after a leader loss).
type Herd struct {
	Started           int
	Duration          time.Duration // until the last one is in sync
	ListP50, ListMax  time.Duration // each agent's start to in sync
	MemberCPU         time.Duration // CPU the members spent meanwhile, together
	ProxyCPU          time.Duration
	MemberSent        float64 // bytes the members sent to their clients meanwhile
	ProxySent         float64 // bytes the proxy sent to the agents
	ProxyRSSMiB       float64 // the proxy's RSS after the herd
	MemberRSSMiBAfter float64 // the members' RSS after the herd, together
}

// Probe is one more agent's cold start, alone, with the level's agents running.
type Probe struct {
	List       time.Duration // start to in sync
	MemberSent float64       // bytes the members sent meanwhile
	ProxySent  float64
}

// Window is a steady-state measurement over a period.
type Window struct {
	Duration time.Duration
	Members  []Proc // m1, m2, m3
	Proxy    *Proc  // nil without one
	Leases   int    // leases alive at the end
	Resyncs  float64
	SelfCPU  float64 // cores used by the benchmark process (every agent and the writer)
	HostBusy float64 // cores the whole machine was busy (other work included)

	Writes, WriteFailures int
	PutP50                time.Duration // the writer's Put round trip
	Expected, Received    int           // (writes x agents) and how many arrived
	LatP50, LatP99        time.Duration // write -> an agent has it, over every (write, agent)
	AllP50, AllP99        time.Duration // write -> the last agent has it
}

// Proc is one member's (or the proxy's) cost over a window.
type Proc struct {
	Name                  string
	Leader                bool
	CPU                   float64 // cores
	RSSMiB                float64 // at the end
	Streams, Watchers     float64 // watch streams and watchers at the end (gauges)
	SlowWatchers          float64
	SentBytesPerSec       float64 // etcd_network_client_grpc_sent_bytes_total
	WatchMsgsPerSec       float64 // grpc_server_msg_sent_total{grpc_method="Watch"}
	EventsPerSec          float64 // etcd_debugging_mvcc_events_total
	WatchStarts           float64 // watch streams opened by clients in the window (grpc_server_started_total{grpc_method="Watch"})
	RangesPerSec          float64 // range requests (listings, start-up reads, the agents' probes)
	WatchReqsPerSec       float64 // messages on watch streams from clients (creates, progress requests, cancels)
	CoalescedWatchers     float64 // proxy: etcd_grpc_proxy_watchers_coalescing_total
	ProxyCacheKeys        float64 // proxy: etcd_grpc_proxy_cache_keys_total
	SentBytes, CPUSeconds float64 // raw deltas
}

// snapshot is the state of every process at one moment.
type snapshot struct {
	at      time.Time
	members []procSample
	proxy   *procSample
	self    procStat
	host    time.Duration // the machine's busy CPU time
	leases  int
	resyncs float64
}

// bench holds a run's moving parts.
type bench struct {
	cfg      Config
	cl       *cluster
	admin    *clientv3.Client     // the writer's (Neutron's) client, straight to the members
	reg      *prometheus.Registry // the agents' datastore metrics (felix_resyncs_started)
	dsm      *datastore.Metrics
	agents   []*agent
	nextHost int
}

// Run performs one run. It fails if the harness cannot do its job (a child
// does not start, an agent never gets in sync), never on a number.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.AgentLog == nil {
		cfg.AgentLog = slog.New(slog.DiscardHandler)
	}
	if cfg.ChurnRate <= 0 || len(cfg.Levels) == 0 || cfg.Cloud.PerHost <= 0 || len(cfg.Cloud.Regions) == 0 || cfg.Cloud.Groups <= 0 {
		return nil, errors.New("scalebench: incomplete configuration")
	}
	for i, n := range cfg.Levels {
		if n < 1 || (i > 0 && n <= cfg.Levels[i-1]) {
			return nil, fmt.Errorf("scalebench: levels %v: want ascending agent counts", cfg.Levels)
		}
	}
	cl, err := startCluster(cfg.Dir, cfg.Proxy)
	if err != nil {
		return nil, err
	}
	defer cl.stop()
	admin, err := datastore.Connect(datastore.ClientConfig{Endpoints: cl.memberURLs}, cfg.AgentLog)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	b := &bench{cfg: cfg, cl: cl, admin: admin, reg: prometheus.NewRegistry()}
	b.dsm = datastore.NewMetrics(b.reg)
	defer func() {
		for _, a := range b.agents {
			a.cancel()
		}
		for _, a := range b.agents {
			<-a.done
		}
	}()

	res := &Result{Proxy: cfg.Proxy}
	began := time.Now()
	if res.Keys, res.ValueBytes, err = cfg.Cloud.load(ctx, admin); err != nil {
		return nil, err
	}
	res.LoadTime = time.Since(began)
	cfg.Log.Info("cloud loaded", "keys", res.Keys, "MiB", res.ValueBytes>>20, "took", res.LoadTime.Round(time.Millisecond))
	if res.EventBytes, res.EventBytesNoPrev, err = eventSizes(ctx, admin, cfg.Cloud); err != nil {
		return nil, err
	}

	for _, n := range cfg.Levels {
		lv, err := b.level(ctx, n)
		if err != nil {
			return res, fmt.Errorf("%d agents: %w", n, err)
		}
		res.Levels = append(res.Levels, lv)
	}
	return res, nil
}

// level grows the agents to n and measures.
func (b *bench) level(ctx context.Context, n int) (Level, error) {
	lv := Level{Agents: n}
	var err error
	if lv.Herd, err = b.herd(ctx, n-len(b.agents)); err != nil {
		return lv, err
	}
	b.cfg.Log.Info("agents in sync", "agents", len(b.agents), "herd", lv.Herd.Started, "took", lv.Herd.Duration.Round(time.Millisecond))
	if err := sleep(ctx, b.cfg.Settle); err != nil {
		return lv, err
	}
	if lv.Idle, err = b.window(ctx, 0); err != nil {
		return lv, err
	}
	if lv.Churn, err = b.window(ctx, b.cfg.ChurnRate); err != nil {
		return lv, err
	}
	b.cfg.Log.Info("churn measured", "agents", n, "writes", lv.Churn.Writes, "received", lv.Churn.Received, "of", lv.Churn.Expected,
		"p50", lv.Churn.LatP50, "p99", lv.Churn.LatP99)
	if lv.Probe, err = b.probe(ctx); err != nil {
		return lv, err
	}
	return lv, nil
}

// startAgents starts k agents at once and waits until all are in sync.
func (b *bench) startAgents(ctx context.Context, k int) ([]*agent, error) {
	var started []*agent
	for i := 0; i < k; i++ {
		a := startAgent(b.cl.agentEndpoints(), b.cfg.Cloud, b.nextHost, heartbeat{b.cfg.HeartbeatInterval, b.cfg.HeartbeatTTL}, b.dsm, b.cfg.AgentLog)
		b.nextHost++
		started = append(started, a)
	}
	deadline := time.NewTimer(10 * time.Minute)
	defer deadline.Stop()
	for _, a := range started {
		select {
		case <-a.inSync:
		case <-a.done:
			return started, fmt.Errorf("agent %s stopped before it was in sync", a.host)
		case <-deadline.C:
			return started, fmt.Errorf("agent %s not in sync after 10 minutes", a.host)
		case <-ctx.Done():
			return started, ctx.Err()
		}
	}
	return started, nil
}

func (b *bench) herd(ctx context.Context, k int) (Herd, error) {
	h := Herd{Started: k}
	s0, err := b.snapshot(ctx)
	if err != nil {
		return h, err
	}
	started, err := b.startAgents(ctx, k)
	b.agents = append(b.agents, started...)
	if err != nil {
		return h, err
	}
	s1, err := b.snapshot(ctx)
	if err != nil {
		return h, err
	}
	var lists []time.Duration
	for _, a := range started {
		lists = append(lists, a.listTime)
		h.Duration = max(h.Duration, a.listTime)
	}
	h.ListP50, h.ListMax = percentile(lists, 0.5), percentile(lists, 1)
	for i := range s1.members {
		h.MemberCPU += s1.members[i].CPU - s0.members[i].CPU
		h.MemberSent += s1.members[i].m.sum(mSentBytes) - s0.members[i].m.sum(mSentBytes)
		h.MemberRSSMiBAfter += float64(s1.members[i].RSSKiB) / 1024
	}
	if s1.proxy != nil {
		h.ProxyCPU = s1.proxy.CPU - s0.proxy.CPU
		h.ProxySent = s1.proxy.m.sum(mSentBytes) - s0.proxy.m.sum(mSentBytes)
		h.ProxyRSSMiB = float64(s1.proxy.RSSKiB) / 1024
	}
	return h, nil
}

func (b *bench) probe(ctx context.Context) (Probe, error) {
	var p Probe
	s0, err := b.snapshot(ctx)
	if err != nil {
		return p, err
	}
	started, err := b.startAgents(ctx, 1)
	defer func() {
		for _, a := range started {
			a.stop()
		}
	}()
	if err != nil {
		return p, err
	}
	s1, err := b.snapshot(ctx)
	if err != nil {
		return p, err
	}
	p.List = started[0].listTime
	for i := range s1.members {
		p.MemberSent += s1.members[i].m.sum(mSentBytes) - s0.members[i].m.sum(mSentBytes)
	}
	if s1.proxy != nil {
		p.ProxySent = s1.proxy.m.sum(mSentBytes) - s0.proxy.m.sum(mSentBytes)
	}
	return p, nil
}

// window measures a period with rate endpoint updates per second (0: idle).
func (b *bench) window(ctx context.Context, rate int) (Window, error) {
	var w Window
	for _, a := range b.agents {
		a.takeReceipts()
	}
	s0, err := b.snapshot(ctx)
	if err != nil {
		return w, err
	}
	var writes []write
	if rate == 0 {
		if err := sleep(ctx, b.cfg.IdleWindow); err != nil {
			return w, err
		}
	} else {
		cctx, cancel := context.WithTimeout(ctx, b.cfg.ChurnWindow)
		writes, w.WriteFailures = b.cfg.Cloud.churn(cctx, b.admin, rate, uint64(time.Now().UnixNano()))
		cancel()
		if err := ctx.Err(); err != nil {
			return w, err
		}
		b.drain(ctx, writes)
	}
	s1, err := b.snapshot(ctx)
	if err != nil {
		return w, err
	}
	w.Duration = s1.at.Sub(s0.at)
	secs := w.Duration.Seconds()
	for i := range s1.members {
		w.Members = append(w.Members, procWindow(fmt.Sprintf("m%d", i+1), s0.members[i], s1.members[i], secs))
	}
	if s1.proxy != nil {
		p := procWindow("grpc-proxy", *s0.proxy, *s1.proxy, secs)
		w.Proxy = &p
	}
	w.Leases = s1.leases
	w.Resyncs = s1.resyncs - s0.resyncs
	w.SelfCPU = (s1.self.CPU - s0.self.CPU).Seconds() / secs
	w.HostBusy = (s1.host - s0.host).Seconds() / secs
	if rate > 0 {
		w.Writes = len(writes)
		var puts []time.Duration
		for _, wr := range writes {
			puts = append(puts, wr.put)
		}
		w.PutP50 = percentile(puts, 0.5)
		w.latencies(writes, b.agents)
	}
	return w, nil
}

// eventSizes watches the resource prefix twice, with and without the
// previous values, while 50 endpoints are updated, and returns the mean
// marshalled size of an event on each.
func eventSizes(ctx context.Context, cli *clientv3.Client, cloud Cloud) (withPrev, withoutPrev float64, err error) {
	const n = 50
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "health-probe")
	if err != nil {
		return 0, 0, err
	}
	from := resp.Header.Revision + 1
	prefix := clientv3.WithPrefix()
	with := cli.Watch(ctx, resource.ResourcePrefix, prefix, clientv3.WithRev(from), clientv3.WithPrevKV())
	without := cli.Watch(ctx, resource.ResourcePrefix, prefix, clientv3.WithRev(from))
	for k := 0; k < n; k++ {
		e := cloud.endpoint(k * cloud.Endpoints / n)
		if _, err := cli.Put(ctx, e.key(), e.value(cloud.groupsOf(e.i, 1), 1)); err != nil {
			return 0, 0, err
		}
	}
	codec := encoding.GetCodecV2(grpcproto.Name) // how gRPC marshals them
	mean := func(ch clientv3.WatchChan) (float64, error) {
		var bytes, events int
		for events < n {
			wr, ok := <-ch
			if !ok || wr.Err() != nil {
				return 0, fmt.Errorf("measuring event sizes: watch ended (%v)", wr.Err())
			}
			for _, ev := range wr.Events {
				b, err := codec.Marshal((*mvccpb.Event)(ev))
				if err != nil {
					return 0, err
				}
				bytes += b.Len()
				b.Free()
				events++
			}
		}
		return float64(bytes) / float64(events), nil
	}
	if withPrev, err = mean(with); err != nil {
		return 0, 0, err
	}
	withoutPrev, err = mean(without)
	return withPrev, withoutPrev, err
}

// drain waits (up to 30 s) until every agent has received the last write.
func (b *bench) drain(ctx context.Context, writes []write) {
	var last int64
	for _, wr := range writes {
		last = max(last, wr.rev)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range b.agents {
		for time.Now().Before(deadline) && ctx.Err() == nil {
			a.mu.Lock()
			n := len(a.receipts)
			got := n > 0 && a.receipts[n-1].rev >= last
			a.mu.Unlock()
			if got {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// latencies joins the writes with every agent's receipts.
func (w *Window) latencies(writes []write, agents []*agent) {
	at := make(map[int64]int, len(writes)) // revision -> index in writes
	for i, wr := range writes {
		at[wr.rev] = i
	}
	last := make([]time.Duration, len(writes))
	seen := make([]int, len(writes))
	var all []time.Duration
	for _, a := range agents {
		for _, r := range a.takeReceipts() {
			i, ok := at[r.rev]
			if !ok {
				continue
			}
			d := r.at.Sub(writes[i].at)
			all = append(all, d)
			last[i] = max(last[i], d)
			seen[i]++
		}
	}
	w.Expected, w.Received = len(writes)*len(agents), len(all)
	var complete []time.Duration
	for i := range writes {
		if seen[i] == len(agents) {
			complete = append(complete, last[i])
		}
	}
	w.LatP50, w.LatP99 = percentile(all, 0.5), percentile(all, 0.99)
	w.AllP50, w.AllP99 = percentile(complete, 0.5), percentile(complete, 0.99)
}

func procWindow(name string, a, b procSample, secs float64) Proc {
	p := Proc{
		Name:              name,
		Leader:            b.m.sum(mLeader) == 1,
		CPUSeconds:        (b.CPU - a.CPU).Seconds(),
		RSSMiB:            float64(b.RSSKiB) / 1024,
		Streams:           b.m.sum(mStreams),
		Watchers:          b.m.sum(mWatchers),
		SlowWatchers:      b.m.sum(mSlow),
		SentBytes:         b.m.sum(mSentBytes) - a.m.sum(mSentBytes),
		CoalescedWatchers: b.m.sum(mCoalesced),
		ProxyCacheKeys:    b.m.sum(mCacheKeys),
	}
	p.CPU = p.CPUSeconds / secs
	p.SentBytesPerSec = p.SentBytes / secs
	p.WatchMsgsPerSec = (b.m.sum(mMsgSent, `grpc_method="Watch"`) - a.m.sum(mMsgSent, `grpc_method="Watch"`)) / secs
	p.EventsPerSec = (b.m.sum(mEvents) - a.m.sum(mEvents)) / secs
	p.WatchStarts = b.m.sum(mStarted, `grpc_method="Watch"`) - a.m.sum(mStarted, `grpc_method="Watch"`)
	p.RangesPerSec = (b.m.sum(mStarted, `grpc_method="Range"`) - a.m.sum(mStarted, `grpc_method="Range"`)) / secs
	p.WatchReqsPerSec = (b.m.sum(mMsgRecv, `grpc_method="Watch"`) - a.m.sum(mMsgRecv, `grpc_method="Watch"`)) / secs
	return p
}

func (b *bench) snapshot(ctx context.Context) (snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s := snapshot{at: time.Now()}
	for i, m := range b.cl.members {
		ps, err := sampleProc(ctx, m.pid(), b.cl.memberURLs[i]+"/metrics", "")
		if err != nil {
			return s, fmt.Errorf("sampling %s: %w", m.spec.Name, err)
		}
		s.members = append(s.members, ps)
	}
	if b.cl.proxy != nil {
		ps, err := sampleProc(ctx, b.cl.proxy.pid(), b.cl.proxyMetrics, proxyPrefix)
		if err != nil {
			return s, fmt.Errorf("sampling the proxy: %w", err)
		}
		s.proxy = &ps
	}
	self, err := readProc(os.Getpid())
	if err != nil {
		return s, err
	}
	s.self = self
	if s.host, err = hostBusy(); err != nil {
		return s, err
	}
	leases, err := b.admin.Leases(ctx)
	if err != nil {
		return s, fmt.Errorf("listing leases: %w", err)
	}
	s.leases = len(leases.Leases)
	mfs, err := b.reg.Gather()
	if err != nil {
		return s, err
	}
	for _, mf := range mfs {
		if mf.GetName() == "felix_resyncs_started" {
			for _, m := range mf.GetMetric() {
				s.resyncs += m.GetCounter().GetValue()
			}
		}
	}
	return s, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// percentile of ds (0 when empty); p = 1 is the maximum.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}
