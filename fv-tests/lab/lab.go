package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"ocelot/internal/embedetcd"
	"ocelot/internal/netlab"
)

// EtcdAddr is where the lab's etcd listens, on the core's loopback.
const EtcdAddr = "198.18.0.1"

// Lab is one cloud.
type Lab struct {
	T       netlab.T
	Dir     string
	Bin     string            // the ocelot binary
	Etcd    *embedetcd.Server // the embedded etcd, if the lab has one
	Cluster *Cluster          // the etcd cluster, if the lab has one
	Cli     *clientv3.Client
	// NFTablesMode is every host's NFTablesMode ("": not set, Auto).
	NFTablesMode string
	// AgentEnv is added to the environment of every ocelot process the
	// lab starts (benchmarks try runtime settings such as GOGC with it).
	AgentEnv []string

	mu    sync.Mutex
	hosts []*Host
}

// New starts the core: addresses, forwarding and etcd. etcdURL, when not
// empty, is an etcd already running (for example Debian's etcd-server).
func New(t netlab.T, dir, bin string, etcdURL string) *Lab {
	t.Helper()
	l := newCore(t, dir, bin)
	if etcdURL == "" {
		srv, err := embedetcd.Start(filepath.Join(dir, "etcd"), embedetcd.Options{Host: EtcdAddr})
		if err != nil {
			t.Fatalf("%v", err)
		}
		t.Cleanup(srv.Stop)
		l.Etcd = srv
		etcdURL = srv.ClientURL
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { cli.Close() })
	l.Cli = cli
	return l
}

// newCore sets up the process's namespace as the core router.
func newCore(t netlab.T, dir, bin string) *Lab {
	t.Helper()
	l := &Lab{T: t, Dir: dir, Bin: bin}
	netlab.Run(t, "ip", "link", "set", "lo", "up")
	if out, _ := netlab.Try("ip", "addr", "show", "dev", "lo"); !strings.Contains(out, EtcdAddr+"/32") {
		netlab.Run(t, "ip", "addr", "add", EtcdAddr+"/32", "dev", "lo")
	}
	netlab.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return l
}

// attach creates a namespace with one interface, eth0, holding addr and
// linked to the core, which routes addr to it (and answers its ARP by
// proxy). The namespace's default route points at the core.
func (l *Lab) attach(name, addr string) *netlab.NS {
	t := l.T
	t.Helper()
	ns := netlab.NewNS(t, name)
	core := "core-" + name
	// The previous test's link of that name goes with its namespace, which
	// the kernel tears down in the background, one namespace at a time for
	// the whole machine (other labs' too): wait for it, for 5 s, then
	// remove it. Once, in a CI run, such links stayed for minutes and
	// every later test of the process failed.
	var refused string
	began, removed := time.Now(), false
	ok := netlab.Within(30*time.Second, func() bool {
		out, err := netlab.Try("ip", "link", "add", core, "type", "veth", "peer", "name", "eth0", "netns", ns.Name)
		if err == nil {
			return true
		}
		refused = fmt.Sprintf("%v: %s", err, strings.TrimSpace(out))
		if !removed && time.Since(began) > 5*time.Second {
			// The old link outlived its namespace's usual teardown: say
			// who holds network namespaces, and remove the link (ours, in
			// the lab's core) rather than wait for it.
			removed = true
			held, _ := netlab.Try("lsns", "-t", "net", "-o", "NS,NPROCS,PID,COMMAND")
			t.Logf("%s still there after 5 s (%s); removing it. Network namespaces held by processes:\n%s", core, refused, held)
			netlab.Try("ip", "link", "del", core)
		}
		return false
	})
	if !ok {
		// Say what stood in the way: the old link (its namespace not yet
		// torn down, or kept alive by something that still holds it), or
		// another refusal.
		old, _ := netlab.Try("ip", "-d", "link", "show", core)
		held, _ := netlab.Try("lsns", "-t", "net", "-o", "NS,NPROCS,PID,COMMAND")
		t.Fatalf("no fresh %s after 30 s: ip link add said %s\nthe link now: %s\nnetwork namespaces held by processes:\n%s",
			core, refused, strings.TrimSpace(old), held)
	}
	netlab.Run(t, "ip", "link", "set", core, "up")
	netlab.Run(t, "sysctl", "-qw", "net.ipv4.conf."+core+".proxy_arp=1")
	netlab.Run(t, "ip", "route", "add", addr+"/32", "dev", core)
	ns.MustExec(t, "ip", "addr", "add", addr+"/32", "dev", "eth0")
	ns.MustExec(t, "ip", "link", "set", "eth0", "up")
	ns.MustExec(t, "ip", "route", "add", "default", "dev", "eth0")
	ns.MustExec(t, "ip", "-6", "route", "add", "default", "dev", "eth0")
	return ns
}

// EtcdEndpoints is what hosts put in EtcdEndpoints: every member.
func (l *Lab) EtcdEndpoints() string {
	switch {
	case l.Cluster != nil:
		return strings.Join(l.Cluster.Endpoints(), ",")
	case l.Etcd != nil:
		return l.Etcd.ClientURL
	}
	return strings.Join(l.Cli.Endpoints(), ",")
}

// Put writes a key. Like an operator, it tries again while the cluster
// cannot take the write (a member down, an election), for up to 30 s.
func (l *Lab) Put(key, value string) int64 {
	l.T.Helper()
	var rev int64
	l.retry("writing "+key, func(ctx context.Context) error {
		r, err := l.Cli.Put(ctx, key, value)
		if err == nil {
			rev = r.Header.Revision
		}
		return err
	})
	return rev
}

// Delete removes a key, trying again as Put does.
func (l *Lab) Delete(key string) {
	l.T.Helper()
	l.retry("deleting "+key, func(ctx context.Context) error {
		_, err := l.Cli.Delete(ctx, key)
		return err
	})
}

// retry runs op until it succeeds, each attempt with 3 s, for 30 s.
func (l *Lab) retry(what string, op func(ctx context.Context) error) {
	l.T.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := op(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			l.T.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Get reads a key ("" when absent) and its lease.
func (l *Lab) Get(key string) (string, int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := l.Cli.Get(ctx, key)
	if err != nil || len(r.Kvs) == 0 {
		return "", 0
	}
	return string(r.Kvs[0].Value), r.Kvs[0].Lease
}

// Host is one compute host: a namespace with an uplink to the core and an
// ocelot process.
type Host struct {
	Lab      *Lab
	Name     string // FelixHostname
	Region   string
	NS       *netlab.NS
	Index    int
	Addr     string // its address, reachable from the core
	CfgPath  string
	LogPath  string
	ExtraCfg string

	// command, when set, gives the agent to run instead of ocelot.
	command func(h *Host) (argv, env []string)

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{}
	exit int
}

// AddHost creates a host in region (may be "") and starts ocelot on it.
// extraCfg lines are appended to its felix.cfg.
func (l *Lab) AddHost(name, region string, extraCfg ...string) *Host {
	l.T.Helper()
	return l.AddHostRunning(name, region, nil, extraCfg...)
}

// AddHostRunning is AddHost with another agent in place of ocelot
// (benchmarks run Calico's Felix side by side with it): once the host's
// namespace and felix.cfg exist, command gives the argv to run inside
// the namespace and what to add to its environment. nil runs ocelot. A
// second host of the same name (a later run on the same cloud) gets files
// of its own.
func (l *Lab) AddHostRunning(name, region string, command func(h *Host) (argv, env []string), extraCfg ...string) *Host {
	t := l.T
	t.Helper()
	l.mu.Lock()
	idx := len(l.hosts) + 1
	h := &Host{Lab: l, Name: name, Region: region, Index: idx, Addr: fmt.Sprintf("198.18.0.%d", 10+idx),
		ExtraCfg: strings.Join(extraCfg, "\n"), command: command}
	stem := name
	for _, o := range l.hosts {
		if o.Name == name {
			stem = fmt.Sprintf("%s.%d", name, idx)
		}
	}
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	h.NS = l.attach(fmt.Sprintf("h%d", idx), h.Addr)
	netlab.Run(t, "ip", "route", "add", h.VMNet(), "via", h.Addr, "dev", fmt.Sprintf("core-h%d", idx)) // "BGP": the host's VMs are behind it
	h.CfgPath = filepath.Join(l.Dir, stem+".cfg")
	h.LogPath = filepath.Join(l.Dir, stem+".log")
	h.WriteConfig()
	h.Start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s", h.Dump())
		}
		h.Stop()
	})
	return h
}

// VMNet is the subnet of the host's VMs: 198.18.<10+index>.0/24.
func (h *Host) VMNet() string { return fmt.Sprintf("198.18.%d.0/24", 10+h.Index) }

// VMAddr is the address of the host's n-th VM.
func (h *Host) VMAddr(n int) string { return fmt.Sprintf("198.18.%d.%d", 10+h.Index, n) }

// WriteConfig writes the host's felix.cfg: the lab's defaults, then the
// host's extra lines and these, each "Name = value" line replacing a
// default of the same name.
func (h *Host) WriteConfig(extra ...string) {
	params := [][2]string{
		{"FelixHostname", h.Name},
		{"OpenstackRegion", h.Region},
		{"EtcdEndpoints", h.Lab.EtcdEndpoints()},
		{"InterfacePrefix", "tap"},
		{"HealthEnabled", "true"},
		{"HealthHost", "0.0.0.0"},
		{"HealthPort", "9099"},
		{"PrometheusMetricsEnabled", "true"},
		{"PrometheusMetricsPort", "9091"},
		{"LogFilePath", "none"},
		{"LogSeveritySys", "none"},
		{"ReportingIntervalSecs", "2"},
		{"ReportingTTLSecs", "6"},
		{"IptablesRefreshInterval", "10"},
		{"IpsetsRefreshInterval", "10"},
		{"RouteRefreshInterval", "10"},
		{"ExplainSocketPath", h.ExplainSocket()},                              // hosts share the file system: one socket each
		{"EndpointStatusPathPrefix", filepath.Join(h.Lab.Dir, h.Name+"-run")}, // not the machine's /var/run/calico
		{"NftablesRefreshInterval", "10"},
		{"NFTablesMode", h.Lab.NFTablesMode},
	}
	var rest []string
	for _, line := range append(strings.Split(h.ExtraCfg, "\n"), extra...) {
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		replaced := false
		for i := range params {
			if ok && strings.EqualFold(params[i][0], name) {
				params[i][1], replaced = value, true
			}
		}
		if !replaced {
			rest = append(rest, line)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# felix.cfg of lab host %s\n[global]\n", h.Name)
	for _, p := range params {
		if p[1] != "" {
			fmt.Fprintf(&b, "%s = %s\n", p[0], p[1])
		}
	}
	b.WriteString(strings.Join(rest, "\n") + "\n")
	if err := os.WriteFile(h.CfgPath, []byte(b.String()), 0o644); err != nil {
		h.Lab.T.Fatalf("%v", err)
	}
}

// ExplainSocket is where the host's agent serves "ocelot explain".
func (h *Host) ExplainSocket() string { return filepath.Join(h.Lab.Dir, h.Name, "explain.sock") }

// Explain runs "ocelot explain" against the host's agent and returns its
// output.
func (h *Host) Explain(args ...string) (string, error) {
	out, err := exec.Command(h.Lab.Bin, append([]string{"explain", "--socket", h.ExplainSocket()}, args...)...).CombinedOutput()
	return string(out), err
}

// Start runs ocelot in the host's namespace.
func (h *Host) Start() {
	h.mu.Lock()
	defer h.mu.Unlock()
	logf, err := os.OpenFile(h.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		h.Lab.T.Fatalf("%v", err)
	}
	argv, env := []string{h.Lab.Bin, "run", "-c", h.CfgPath}, h.Lab.AgentEnv
	if h.command != nil {
		argv, env = h.command(h)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS.Name}, argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	// No Pdeathsig: it fires when the forking OS thread exits, and the lab
	// discards threads it locked into VM namespaces. Stray processes are
	// killed with their namespaces instead (netlab).
	if err := cmd.Start(); err != nil {
		h.Lab.T.Fatalf("starting %v on %s: %v", argv[0], h.Name, err)
	}
	h.proc, h.done = cmd, make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		logf.Close()
		h.mu.Lock()
		h.exit = cmd.ProcessState.ExitCode()
		h.mu.Unlock()
		close(done)
	}(cmd, h.done)
}

// Stop sends SIGTERM and waits for ocelot to exit (SIGKILL after 10s).
func (h *Host) Stop() {
	h.mu.Lock()
	proc, done := h.proc, h.done
	h.mu.Unlock()
	if proc == nil {
		return
	}
	proc.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		proc.Process.Kill()
		<-done
	}
}

// Exited reports whether ocelot has exited, and its code.
func (h *Host) Exited() (bool, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.done:
		return true, h.exit
	default:
		return false, 0
	}
}

// Pid is the ocelot process's PID (that of "ip netns exec", which execs it).
func (h *Host) Pid() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.proc.Process.Pid
}

// Signal sends a signal to ocelot.
func (h *Host) Signal(s syscall.Signal) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.proc.Process.Signal(s)
}

// Log returns ocelot's output so far.
func (h *Host) Log() string {
	b, _ := os.ReadFile(h.LogPath)
	return string(b)
}

// HTTP fetches a path from one of the host's servers (9099 health, 9091 metrics).
func (h *Host) HTTP(port int, path string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s:%d%s", h.Addr, port, path))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Ready reports whether /readiness answers 200.
func (h *Host) Ready() bool {
	code, _ := h.HTTP(9099, "/readiness")
	return code == http.StatusOK
}

// Metric returns the value of a metric line starting with name (with
// labels if given), or "" when absent.
func (h *Host) Metric(name string) string {
	_, body := h.HTTP(9091, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name+" ") {
			return strings.TrimSpace(strings.TrimPrefix(line, name))
		}
	}
	return ""
}

// Exec runs a command in the host's namespace.
func (h *Host) Exec(name string, args ...string) (string, error) { return h.NS.Exec(name, args...) }

// VM is a VM on a host with its Neutron identity.
type VM struct {
	*netlab.VM
	Host   *Host
	Name   string
	UUID   string // Nova instance (device_id)
	Port   string // Neutron port UUID
	SGs    map[string]string
	Region string
	QoS    map[string]any // spec.qosControls of its endpoint; nil: none
}

// AddVM creates a VM (namespace and tap) on the host with the n-th address
// of its subnet and plugs it in. It does not write the endpoint.
func (h *Host) AddVM(name string, n int) *VM {
	t := h.Lab.T
	t.Helper()
	uuid := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", 0x0b6a0000+h.Index*256+n, h.Index, n, h.Index, n)
	port := fmt.Sprintf("%08x-%04x-4%03x-9%03x-%012x", 0x5c9d0000+h.Index*256+n, h.Index, n, h.Index, n)
	mac := fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", h.Index, n>>8, n&255)
	vm := &VM{VM: netlab.AddVM(t, h.NS, fmt.Sprintf("h%dv%d", h.Index, n), "tap"+port[:11], mac, h.VMAddr(n), ""),
		Host: h, Name: name, UUID: uuid, Port: port, Region: h.Region}
	vm.PlugIn(t)
	return vm
}

// PathBack gives the VM's host a route to the VM that the agent does not
// own (a policy-routing rule and a table of their own), so that traffic
// reaches the VM whatever the agent makes of its endpoint. A check that
// the VM's traffic is blocked then tests the agent's rules, not a route
// the agent left out.
func (vm *VM) PathBack() {
	t := vm.Lab().T
	t.Helper()
	vm.Host.NS.MustExec(t, "ip", "route", "add", vm.IP+"/32", "dev", vm.HostSide, "table", "100")
	vm.Host.NS.MustExec(t, "ip", "rule", "add", "to", vm.IP+"/32", "lookup", "100", "pref", "100")
}

// Connects reports whether vm reaches ip:port over TCP within timeout.
func (vm *VM) Connects(ip string, port int, timeout time.Duration) bool {
	return netlab.Connects(vm.NS, fmt.Sprintf("%s:%d", ip, port), timeout)
}

// Serve runs TCP echo servers in the VM on the given ports.
func (vm *VM) Serve(ports ...int) {
	for _, p := range ports {
		netlab.Serve(vm.Lab().T, vm.NS, fmt.Sprintf("0.0.0.0:%d", p))
	}
}

// Lab is the VM's lab.
func (vm *VM) Lab() *Lab { return vm.Host.Lab }

// SetsDump lists the host's IP sets with their members, whichever the
// backend: ipset's sets and the calico nftables table.
func (h *Host) SetsDump() string {
	ipsets, _ := h.Exec("ipset", "list")
	nft, err := h.Exec("nft", "list", "table", "ip", "calico")
	if err != nil {
		nft = ""
	}
	return ipsets + nft
}

// Dump describes a host's kernel state, health and log (for failed tests).
func (h *Host) Dump() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "==== %s (%s)\n", h.Name, h.NS.Name)
	for _, cmd := range [][]string{{"iptables-legacy-save", "-t", "filter"}, {"iptables-nft-save", "-t", "filter"}, {"ipset", "list"},
		{"nft", "list", "ruleset"}, {"ip", "route"}} {
		out, _ := h.Exec(cmd[0], cmd[1:]...)
		fmt.Fprintf(&b, "--- %v\n%s\n", cmd, out)
	}
	code, body := h.HTTP(9099, "/readiness")
	fmt.Fprintf(&b, "--- readiness %d\n%s\n--- log\n%s\n", code, body, h.Log())
	return b.String()
}
