package datastore

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"ocelot/datastore/resource"
	"ocelot/internal/embedetcd"
)

// testLog shows warnings from the code under test in verbose runs.
func testLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func startEtcd(t testing.TB, opts embedetcd.Options) *embedetcd.Server {
	t.Helper()
	s, err := embedetcd.Start(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func connect(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := Connect(ClientConfig{Endpoints: endpoints}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func put(t testing.TB, cli *clientv3.Client, key, value string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Put(ctx, key, value)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

func del(t testing.TB, cli *clientv3.Client, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
}

// poll waits for cond, failing the test after the deadline.
func poll(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// collector runs a syncer and keeps everything it emits.
type collector struct {
	mu      sync.Mutex
	updates []resource.Update
	inSync  int
	cancel  context.CancelFunc
	done    chan struct{}
	syncer  *Syncer
}

func runSyncer(t testing.TB, cli *clientv3.Client, cfg SyncerConfig) *collector {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = testLog(t)
	}
	return runThis(t, NewSyncer(cli, cfg))
}

// runThis runs a syncer prepared by the test.
func runThis(t testing.TB, s *Syncer) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{cancel: cancel, done: make(chan struct{}), syncer: s}
	out := make(chan Batch)
	go func() {
		defer close(c.done)
		s.Run(ctx, out)
	}()
	go func() {
		for {
			select {
			case b := <-out:
				c.mu.Lock()
				c.updates = append(c.updates, b.Updates...)
				if b.InSync {
					c.inSync++
				}
				c.mu.Unlock()
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

func (c *collector) snapshot() ([]resource.Update, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]resource.Update(nil), c.updates...), c.inSync
}

// state folds the updates into the latest value per path.
func (c *collector) state() map[string]any {
	ups, _ := c.snapshot()
	m := map[string]any{}
	for _, u := range ups {
		if u.Value == nil {
			delete(m, u.Key.Path())
		} else {
			m[u.Key.Path()] = u.Value
		}
	}
	return m
}

// countFor counts updates for one path.
func (c *collector) countFor(path string) int {
	ups, _ := c.snapshot()
	n := 0
	for _, u := range ups {
		if u.Key.Path() == path {
			n++
		}
	}
	return n
}

func (c *collector) waitInSync(t testing.TB) {
	t.Helper()
	poll(t, "InSync", 20*time.Second, func() bool { _, n := c.snapshot(); return n > 0 })
}

// proxy is a TCP proxy the test can cut, standing in for a network
// partition or a dropped connection between agent and etcd, or freeze,
// standing in for a member that stops answering without closing anything.
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
	frozen bool
	conns  []net.Conn
	down   atomic.Int64 // bytes forwarded from etcd to the client
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target}
	p.cond = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(func() { l.Close(); p.Thaw(); p.Pause() })
	return p
}

func (p *proxy) URL() string { return "http://" + p.l.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.paused {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { p.copy(up, c, nil); up.Close() }()
		go func() { p.copy(c, up, &p.down); c.Close() }()
	}
}

// copy forwards until either side closes, holding data while frozen.
func (p *proxy) copy(dst, src net.Conn, count *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.frozen {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			if count != nil {
				count.Add(int64(n))
			}
		}
		if err != nil {
			return
		}
	}
}

// Pause drops every connection and refuses new ones.
func (p *proxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) Resume() {
	p.mu.Lock()
	p.paused = false
	p.mu.Unlock()
}

// Freeze stops forwarding in both directions and keeps every connection
// open: to the client the member has gone silent.
func (p *proxy) Freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// Thaw forwards again.
func (p *proxy) Thaw() {
	p.mu.Lock()
	p.frozen = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Test data in the shapes calicoctl and the Neutron driver write.

const readyJSON = `{"kind":"ClusterInformation","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"clusterGUID":"5e0b8f2a9c7d4e1fa3b6c8d0e2f4a6b8","clusterType":"openstack","datastoreReady":true}}`

func clusterInfoKey() string {
	return resource.Key{Kind: resource.KindClusterInformation, Name: "default"}.Path()
}

func wepKey(ns, host, vm, port string) string {
	name := resource.EscapeEndpointNamePart(host) + "-openstack-" + resource.EscapeEndpointNamePart(vm) + "-" + resource.EscapeEndpointNamePart(port)
	return resource.Key{Kind: resource.KindWorkloadEndpoint, Namespace: ns, Name: name}.Path()
}

// wepJSON is a VM port as the Neutron driver writes it (spaced separators).
func wepJSON(ns, host, vm, port, ip, sg string) string {
	name := resource.EscapeEndpointNamePart(host) + "-openstack-" + resource.EscapeEndpointNamePart(vm) + "-" + resource.EscapeEndpointNamePart(port)
	return fmt.Sprintf(`{"kind": "WorkloadEndpoint", "apiVersion": "projectcalico.org/v3", "metadata": {"name": %q, "namespace": %q, "labels": {"sg.projectcalico.org/openstack-%s": "sg", "projectcalico.org/namespace": %q, "projectcalico.org/orchestrator": "openstack"}}, "spec": {"orchestrator": "openstack", "workload": %q, "node": %q, "endpoint": %q, "interfaceName": %q, "mac": "fa:16:3e:00:00:01", "ipNetworks": [%q]}}`,
		name, ns, sg, ns, vm, host, port, "tap"+port[:min(11, len(port))], ip+"/32")
}

func policyKey(ns, name string) string {
	return resource.Key{Kind: resource.KindNetworkPolicy, Namespace: ns, Name: name}.Path()
}

func sgPolicyJSON(ns, sg string) string {
	return fmt.Sprintf(`{"kind": "NetworkPolicy", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "ossg.default.%s", "namespace": %q}, "spec": {"ingress": [], "egress": [{"action": "Allow", "ipVersion": 4}], "selector": "has(sg.projectcalico.org/openstack-%s)"}}`, sg, ns, sg)
}
