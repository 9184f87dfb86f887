package scalebench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"ocelot/internal/embedetcd"
)

// cluster is three etcd members, each its own process, and optionally one
// grpc-proxy process in front of them.
type cluster struct {
	members      []*child
	memberURLs   []string
	proxy        *child
	proxyURL     string
	proxyMetrics string // the proxy's /metrics URL
}

// startCluster starts a new three-member cluster with its data and logs in
// dir, and a grpc-proxy when withProxy is set.
func startCluster(dir string, withProxy bool) (*cluster, error) {
	const n = 3
	c := &cluster{}
	var specs []childSpec
	var initial []string
	for i := 0; i < n; i++ {
		cp, err := embedetcd.FreePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		pp, err := embedetcd.FreePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		s := childSpec{Role: "member", Name: fmt.Sprintf("m%d", i+1), Dir: dir,
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", cp), PeerURL: fmt.Sprintf("http://127.0.0.1:%d", pp)}
		specs = append(specs, s)
		initial = append(initial, s.Name+"="+s.PeerURL)
		c.memberURLs = append(c.memberURLs, s.ClientURL)
	}
	for _, s := range specs {
		s.InitialCluster = strings.Join(initial, ",")
		ch, err := startChild(s)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.members = append(c.members, ch)
	}
	for _, m := range c.members {
		if err := m.ready(90 * time.Second); err != nil {
			c.stop()
			return nil, err
		}
	}
	if withProxy {
		gp, err := embedetcd.FreePort("127.0.0.1")
		if err != nil {
			c.stop()
			return nil, err
		}
		mp, err := embedetcd.FreePort("127.0.0.1")
		if err != nil {
			c.stop()
			return nil, err
		}
		s := childSpec{Role: "proxy", Name: "grpc-proxy", Dir: dir, Members: c.memberURLs,
			Listen: fmt.Sprintf("127.0.0.1:%d", gp), MetricsListen: fmt.Sprintf("127.0.0.1:%d", mp)}
		if c.proxy, err = startChild(s); err != nil {
			c.stop()
			return nil, err
		}
		if err := c.proxy.ready(60 * time.Second); err != nil {
			c.stop()
			return nil, err
		}
		c.proxyURL = "http://" + s.Listen
		c.proxyMetrics = "http://" + s.MetricsListen + "/metrics"
	}
	return c, nil
}

// agentEndpoints is what an agent's EtcdEndpoints lists: the proxy when
// there is one, else every member.
func (c *cluster) agentEndpoints() []string {
	if c.proxyURL != "" {
		return []string{c.proxyURL}
	}
	return c.memberURLs
}

func (c *cluster) stop() {
	if c.proxy != nil {
		c.proxy.stop()
	}
	for _, m := range c.members {
		m.stop()
	}
}

// procSample is one process's state at a moment: CPU, RSS and the metrics
// the benchmark reads.
type procSample struct {
	procStat
	m metrics
}

// The metrics read from each member and the proxy.
const (
	mStreams   = "etcd_debugging_mvcc_watch_stream_total"
	mWatchers  = "etcd_debugging_mvcc_watcher_total"
	mSlow      = "etcd_debugging_mvcc_slow_watcher_total"
	mEvents    = "etcd_debugging_mvcc_events_total"
	mSentBytes = "etcd_network_client_grpc_sent_bytes_total"
	mMsgSent   = "grpc_server_msg_sent_total"
	mMsgRecv   = "grpc_server_msg_received_total"
	mStarted   = "grpc_server_started_total"
	mLeader    = "etcd_server_is_leader"
	mCoalesced = "etcd_grpc_proxy_watchers_coalescing_total"
	mCacheKeys = "etcd_grpc_proxy_cache_keys_total"
)

// metrics maps a metric name to its series (label text -> value).
type metrics map[string]map[string]float64

// sum adds up a metric's series whose labels contain every given label
// matcher (such as `grpc_method="Watch"`).
func (m metrics) sum(name string, labels ...string) float64 {
	var s float64
next:
	for l, v := range m[name] {
		for _, want := range labels {
			if !strings.Contains(l, want) {
				continue next
			}
		}
		s += v
	}
	return s
}

// scrape reads a Prometheus text exposition, keeping the named metrics
// (each found under prefix+name when that exists, and kept as name).
func scrape(ctx context.Context, url, prefix string, names ...string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body, prefix, names)
}

func parseMetrics(r io.Reader, prefix string, names []string) (metrics, error) {
	want := map[string]string{} // name in the exposition -> name kept
	for _, n := range names {
		if _, ok := want[n]; !ok {
			want[n] = n
		}
		if prefix != "" {
			want[prefix+n] = n
		}
	}
	seen := map[string]bool{} // kept names found under prefix+name

	m := metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		kept, ok := want[name]
		if !ok {
			continue
		}
		if kept != name {
			if !seen[kept] { // the prefixed counter replaces the plain one
				delete(m, kept)
				seen[kept] = true
			}
		} else if seen[kept] {
			continue
		}
		name = kept
		labels := ""
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				return nil, fmt.Errorf("bad metric line %q", line)
			}
			labels, rest = rest[1:end], rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("bad metric line %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("bad metric line %q: %w", line, err)
		}
		if m[name] == nil {
			m[name] = map[string]float64{}
		}
		m[name][labels] = v
	}
	return m, sc.Err()
}

// sampleProc reads a child's /proc and /metrics (prefix: see scrape).
func sampleProc(ctx context.Context, pid int, metricsURL, prefix string) (procSample, error) {
	st, err := readProc(pid)
	if err != nil {
		return procSample{}, err
	}
	m, err := scrape(ctx, metricsURL, prefix, mStreams, mWatchers, mSlow, mEvents, mSentBytes, mMsgSent, mMsgRecv, mStarted, mLeader, mCoalesced, mCacheKeys)
	return procSample{procStat: st, m: m}, err
}
