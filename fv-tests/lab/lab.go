// Package lab builds a small OpenStack cloud out of network namespaces for
// Ocelot's functional tests and demo: an etcd shared by every region, N
// compute hosts each running its own ocelot process with its own felix.cfg,
// VMs behind tap-named veths, and a core namespace routing between hosts
// (standing in for BGP). Resources are written as the Neutron driver and
// calicoctl write them.
//
// The caller's process must run in a network namespace of its own (see
// netlab.Main and netlab.InOwnNetns): it becomes the core router.
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

	"ocelot/internal/embedetcd"
	"ocelot/internal/netlab"
)

// EtcdAddr is where the lab's etcd listens, on the core's loopback.
const EtcdAddr = "198.18.0.1"

// Lab is one cloud.
type Lab struct {
	T    netlab.T
	Dir  string
	Bin  string // the ocelot binary
	Etcd *embedetcd.Server
	Cli  *clientv3.Client

	mu    sync.Mutex
	hosts []*Host
}

// New starts the core: addresses, forwarding and etcd. etcdURL, when not
// empty, is an etcd already running (for example Debian's etcd-server).
func New(t netlab.T, dir, bin string, etcdURL string) *Lab {
	t.Helper()
	l := &Lab{T: t, Dir: dir, Bin: bin}
	netlab.Run(t, "ip", "link", "set", "lo", "up")
	if out, _ := netlab.Try("ip", "addr", "show", "dev", "lo"); !strings.Contains(out, EtcdAddr+"/32") {
		netlab.Run(t, "ip", "addr", "add", EtcdAddr+"/32", "dev", "lo")
	}
	netlab.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	if etcdURL == "" {
		srv, err := embedetcd.Start(filepath.Join(dir, "etcd"), embedetcd.Options{Host: EtcdAddr})
		if err != nil {
			t.Fatalf("%v", err)
		}
		t.Cleanup(srv.Stop)
		l.Etcd = srv
		etcdURL = srv.ClientURL
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { cli.Close() })
	l.Cli = cli
	return l
}

// EtcdURL is the address hosts dial.
func (l *Lab) EtcdURL() string {
	if l.Etcd != nil {
		return l.Etcd.ClientURL
	}
	return l.Cli.Endpoints()[0]
}

// Put writes a key.
func (l *Lab) Put(key, value string) {
	l.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.Cli.Put(ctx, key, value); err != nil {
		l.T.Fatalf("writing %s: %v", key, err)
	}
}

// Delete removes a key.
func (l *Lab) Delete(key string) {
	l.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.Cli.Delete(ctx, key); err != nil {
		l.T.Fatalf("deleting %s: %v", key, err)
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

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{}
	exit int
}

// AddHost creates a host in region (may be "") and starts ocelot on it.
// extraCfg lines are appended to its felix.cfg.
func (l *Lab) AddHost(name, region string, extraCfg ...string) *Host {
	t := l.T
	t.Helper()
	l.mu.Lock()
	idx := len(l.hosts) + 1
	h := &Host{Lab: l, Name: name, Region: region, Index: idx, Addr: fmt.Sprintf("198.18.0.%d", 10+idx),
		ExtraCfg: strings.Join(extraCfg, "\n")}
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	h.NS = netlab.NewNS(t, fmt.Sprintf("h%d", idx))
	core := fmt.Sprintf("core-h%d", idx)
	netlab.Run(t, "ip", "link", "add", core, "type", "veth", "peer", "name", "eth0", "netns", h.NS.Name)
	netlab.Run(t, "ip", "link", "set", core, "up")
	netlab.Run(t, "sysctl", "-qw", "net.ipv4.conf."+core+".proxy_arp=1")
	netlab.Run(t, "ip", "route", "add", h.Addr+"/32", "dev", core)
	netlab.Run(t, "ip", "route", "add", h.VMNet(), "via", h.Addr, "dev", core) // "BGP": the host's VMs are behind it
	h.NS.MustExec(t, "ip", "addr", "add", h.Addr+"/32", "dev", "eth0")
	h.NS.MustExec(t, "ip", "link", "set", "eth0", "up")
	h.NS.MustExec(t, "ip", "route", "add", "default", "dev", "eth0")
	h.NS.MustExec(t, "ip", "-6", "route", "add", "default", "dev", "eth0")
	h.CfgPath = filepath.Join(l.Dir, name+".cfg")
	h.LogPath = filepath.Join(l.Dir, name+".log")
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

// WriteConfig writes the host's felix.cfg.
func (h *Host) WriteConfig(extra ...string) {
	region := ""
	if h.Region != "" {
		region = "OpenstackRegion = " + h.Region + "\n"
	}
	cfg := fmt.Sprintf(`# felix.cfg of lab host %s
[global]
FelixHostname = %s
%sEtcdEndpoints = %s
InterfacePrefix = tap
HealthEnabled = true
HealthHost = 0.0.0.0
HealthPort = 9099
PrometheusMetricsEnabled = true
PrometheusMetricsPort = 9091
LogFilePath = none
LogSeveritySys = none
ReportingIntervalSecs = 2
ReportingTTLSecs = 6
IptablesRefreshInterval = 10
IpsetsRefreshInterval = 10
RouteRefreshInterval = 10
%s
%s
`, h.Name, h.Name, region, h.Lab.EtcdURL(), h.ExtraCfg, strings.Join(extra, "\n"))
	if err := os.WriteFile(h.CfgPath, []byte(cfg), 0o644); err != nil {
		h.Lab.T.Fatalf("%v", err)
	}
}

// Start runs ocelot in the host's namespace.
func (h *Host) Start() {
	h.mu.Lock()
	defer h.mu.Unlock()
	logf, err := os.OpenFile(h.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		h.Lab.T.Fatalf("%v", err)
	}
	cmd := exec.Command("ip", "netns", "exec", h.NS.Name, h.Lab.Bin, "run", "-c", h.CfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// No Pdeathsig: it fires when the forking OS thread exits, and the lab
	// discards threads it locked into VM namespaces. Stray processes are
	// killed with their namespaces instead (netlab).
	if err := cmd.Start(); err != nil {
		h.Lab.T.Fatalf("starting ocelot on %s: %v", h.Name, err)
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

// Dump describes a host's kernel state, health and log (for failed tests).
func (h *Host) Dump() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "==== %s (%s)\n", h.Name, h.NS.Name)
	for _, cmd := range [][]string{{"iptables-legacy-save", "-t", "filter"}, {"iptables-nft-save", "-t", "filter"}, {"ipset", "list"}, {"ip", "route"}} {
		out, _ := h.Exec(cmd[0], cmd[1:]...)
		fmt.Fprintf(&b, "--- %v\n%s\n", cmd, out)
	}
	code, body := h.HTTP(9099, "/readiness")
	fmt.Fprintf(&b, "--- readiness %d\n%s\n--- log\n%s\n", code, body, h.Log())
	return b.String()
}
