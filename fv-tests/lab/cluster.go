package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"

	"ocelot/internal/embedetcd"
	"ocelot/internal/netlab"
)

// Cluster is an etcd cluster whose members are separate processes, each in
// a network namespace of its own behind a veth to the core, so that a test
// can kill, pause, restart and cut off a member for real. A member is this
// very executable started again with envMember set: the program's main (a
// test's TestMain) must call RunEtcdMember first thing.
type Cluster struct {
	Members []*Member
	lab     *Lab
}

// Member is one etcd process.
type Member struct {
	Name      string // e1, e2, ...
	Addr      string // 198.18.0.(1+n), reachable from the core and the hosts
	ClientURL string
	PeerURL   string
	NS        *netlab.NS
	Dir       string // data
	LogPath   string

	c    *Cluster
	spec memberSpec
	bin  string // the executable that runs a member (see RunEtcdMember)

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{}
}

// envMember carries a member's spec to the re-executed process.
const envMember = "OCELOT_LAB_ETCD_MEMBER"

type memberSpec struct {
	Dir  string
	Opts embedetcd.Options
}

// Ports every member uses on its own address.
const (
	clientPort = 2379
	peerPort   = 2380
)

// RunEtcdMember runs an etcd member and exits, when this process was
// started as one by a Cluster; otherwise it returns at once. The member
// stops on SIGTERM or SIGINT (and, like a real etcd, can be killed, or
// paused with SIGSTOP).
func RunEtcdMember() {
	raw := os.Getenv(envMember)
	if raw == "" {
		return
	}
	var spec memberSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "etcd member spec:", err)
		os.Exit(2)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	srv, err := embedetcd.StartMember(spec.Dir, spec.Opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("etcd member", spec.Opts.Name, "started at", srv.ClientURL)
	select {
	case <-sigs:
		srv.Stop()
		os.Exit(0)
	case err := <-srv.Err():
		fmt.Fprintln(os.Stderr, "etcd member stopped:", err)
		os.Exit(1)
	}
}

// NewClustered starts the core and an etcd cluster of n members (see
// Cluster) with the lab's client on all of them.
func NewClustered(t netlab.T, dir, bin string, n int) *Lab {
	t.Helper()
	l := newCore(t, dir, bin)
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("%v", err)
	}
	c := &Cluster{lab: l}
	var initial []string
	for i := 1; i <= n; i++ {
		m := &Member{Name: fmt.Sprintf("e%d", i), Addr: fmt.Sprintf("198.18.0.%d", 1+i), c: c}
		m.ClientURL = fmt.Sprintf("http://%s:%d", m.Addr, clientPort)
		m.PeerURL = fmt.Sprintf("http://%s:%d", m.Addr, peerPort)
		m.Dir = filepath.Join(dir, "etcd-"+m.Name)
		m.LogPath = filepath.Join(dir, "etcd-"+m.Name+".log")
		initial = append(initial, m.Name+"="+m.PeerURL)
		m.NS = l.attach(m.Name, m.Addr)
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.spec = memberSpec{Dir: m.Dir, Opts: embedetcd.Options{Host: m.Addr, Port: clientPort, Name: m.Name,
			PeerHost: m.Addr, PeerPort: peerPort, InitialCluster: strings.Join(initial, ","),
			// Drop clients that stop answering pings within 10 s (etcd's
			// default is hours): a paused agent loses its watch, as it
			// would to a restart of the member.
			ClientKeepAlive: 5 * time.Second,
			LogFile:         m.LogPath}}
		m.bin = self
		m.Start()
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Resume() // a paused process does not die of SIGTERM
			m.Stop()
		}
	})
	l.Cluster = c
	// The lab's own client reconnects as quickly as the agent's does, so
	// that a test's write after an outage does not wait for it.
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: grpcbackoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second}})}})
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { cli.Close() })
	l.Cli = cli
	c.WaitHealthy(t, 60*time.Second)
	return l
}

// Endpoints are the members' client URLs.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// WaitHealthy waits until every member answers and agrees on a leader.
func (c *Cluster) WaitHealthy(t netlab.T, timeout time.Duration) {
	t.Helper()
	netlab.Eventually(t, "etcd cluster healthy", timeout, func() bool {
		var leader uint64
		for _, m := range c.Members {
			st, err := m.Status()
			if err != nil || st.Leader == 0 || (leader != 0 && st.Leader != leader) {
				return false
			}
			leader = st.Leader
		}
		return true
	})
}

// Leader is the member that leads, as the members report it (nil if none
// answers).
func (c *Cluster) Leader() *Member {
	for _, m := range c.Members {
		if st, err := m.Status(); err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
			return m
		}
	}
	return nil
}

// Others are the members other than m.
func (c *Cluster) Others(m *Member) []*Member {
	var out []*Member
	for _, o := range c.Members {
		if o != m {
			out = append(out, o)
		}
	}
	return out
}

// Watched is the member that serves a watch, according to the members'
// own counts of watchers (the lab's client watches nothing, so with one
// agent in the lab there is exactly one). nil when no member or more
// than one has watchers.
func (c *Cluster) Watched() *Member {
	var found *Member
	for _, m := range c.Members {
		if n, _ := m.Metric("etcd_debugging_mvcc_watcher_total"); n > 0 {
			if found != nil {
				return nil
			}
			found = m
		}
	}
	return found
}

// Status asks this member alone for its status.
func (m *Member) Status() (*clientv3.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return m.c.lab.Cli.Status(ctx, m.ClientURL)
}

// Metric reads a metric without labels from the member's /metrics.
func (m *Member) Metric(name string) (float64, error) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(m.ClientURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s: no metric %s", m.Name, name)
}

// Start runs the member's process (again, on the same data, after Kill
// or Stop).
func (m *Member) Start() {
	t := m.c.lab.T
	m.mu.Lock()
	defer m.mu.Unlock()
	spec, _ := json.Marshal(m.spec)
	logf, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("%v", err)
	}
	cmd := exec.Command("ip", "netns", "exec", m.NS.Name, m.bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), envMember+"="+string(spec))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting etcd member %s: %v", m.Name, err)
	}
	m.proc, m.done = cmd, make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		logf.Close()
		close(done)
	}(cmd, m.done)
}

// running reports the process and its exit channel, nil when never started.
func (m *Member) running() (*exec.Cmd, chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc, m.done
}

// signal sends sig to the member process and, for SIGKILL and SIGTERM,
// waits for it to exit (SIGKILL after 10 s).
func (m *Member) signal(sig syscall.Signal) {
	proc, done := m.running()
	if proc == nil {
		return
	}
	select {
	case <-done:
		return // not running
	default:
	}
	proc.Process.Signal(sig)
	if sig != syscall.SIGKILL && sig != syscall.SIGTERM {
		return
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		proc.Process.Kill()
		<-done
	}
}

// Kill kills the member at once, as a crash or a power cut would.
func (m *Member) Kill() { m.signal(syscall.SIGKILL) }

// Stop stops the member cleanly.
func (m *Member) Stop() { m.signal(syscall.SIGTERM) }

// Pause freezes the member (SIGSTOP): its connections stay open and
// nothing answers on them.
func (m *Member) Pause() { m.signal(syscall.SIGSTOP) }

// Resume continues a paused member.
func (m *Member) Resume() { m.signal(syscall.SIGCONT) }

// Partition cuts the member off from its peers with DROP rules inside its
// own namespace; its clients still reach it.
func (m *Member) Partition() {
	t := m.c.lab.T
	t.Helper()
	m.NS.Exec("iptables", "-N", "LAB-PARTITION")
	m.NS.Exec("iptables", "-D", "INPUT", "-j", "LAB-PARTITION")
	m.NS.Exec("iptables", "-D", "OUTPUT", "-j", "LAB-PARTITION")
	m.NS.MustExec(t, "iptables", "-I", "INPUT", "-j", "LAB-PARTITION")
	m.NS.MustExec(t, "iptables", "-I", "OUTPUT", "-j", "LAB-PARTITION")
	for _, o := range m.c.Others(m) {
		m.NS.MustExec(t, "iptables", "-A", "LAB-PARTITION", "-s", o.Addr, "-j", "DROP")
		m.NS.MustExec(t, "iptables", "-A", "LAB-PARTITION", "-d", o.Addr, "-j", "DROP")
	}
}

// Heal removes the partition.
func (m *Member) Heal() {
	m.c.lab.T.Helper()
	m.NS.MustExec(m.c.lab.T, "iptables", "-F", "LAB-PARTITION")
}
