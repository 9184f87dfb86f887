package dataplane

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"ocelot/calc"
	"ocelot/contract"
	ipt "ocelot/dataplane/iptables"
	"ocelot/dataplane/rules"
	"ocelot/dataplane/ruleset"
	"ocelot/datastore/resource"
	"ocelot/internal/netlab"
	"ocelot/selector"
)

func TestMain(m *testing.M) { netlab.Main(m) }

const (
	ns      = "openstack-region-RegionOne"
	host    = "lab-host"
	sgWeb   = "sg.projectcalico.org/openstack-web"
	sgCli   = "sg.projectcalico.org/openstack-clients"
	timeout = 10 * time.Second
)

func testConfig(t testing.TB) Config {
	marks, _ := rules.MarksFromMask(0xffff0000)
	rc := rules.Config{Prefixes: []string{"tap"}, Marks: marks, FilterAllow: ruleset.Accept{}, MangleAllow: ruleset.Accept{},
		Deny: ruleset.Drop{}, EndpointToHost: ruleset.Drop{}, OpenStack: true, MetadataAddr: "127.0.0.1", MetadataPort: 8775,
		VXLANPort: 4789, LogPrefix: "calico-packet"}
	// NFTablesMode Disabled: a test asks for nftables; Auto would follow
	// what an earlier test left in the namespace.
	return Config{NFTRules: rc, NFTablesMode: "Disabled",
		Rules: rules.Config{Prefixes: []string{"tap"}, Marks: marks, FilterAllow: ruleset.Accept{}, MangleAllow: ruleset.Accept{},
			Deny: ruleset.Drop{}, EndpointToHost: ruleset.Drop{}, OpenStack: true, MetadataAddr: "127.0.0.1", MetadataPort: 8775,
			VXLANPort: 4789, LogPrefix: "calico-packet"},
		IPv6: true, Backend: "auto", InsertMode: true, LockProbe: 50 * time.Millisecond,
		IptablesRefresh: 300 * time.Millisecond, NftablesRefresh: 300 * time.Millisecond, PostWriteCheck: 5 * time.Second, IpsetsRefresh: 300 * time.Millisecond,
		RouteRefresh: 300 * time.Millisecond, InterfaceRefresh: 10 * time.Second,
		RouteProtocol: 3, RemoveExternalRoutes: true, IPForwarding: true, MinApplyInterval: 10 * time.Millisecond,
	}
}

// lab is a host (this test's namespace) running the dataplane, fed by a
// real calc graph.
type lab struct {
	t     *testing.T
	graph *calc.Graph
	dp    *Dataplane
	mu    sync.Mutex
	stat  map[contract.EndpointID]string
	ready chan struct{}
	stop  func() // stops the dataplane, leaving the kernel as it is
}

func newLab(t *testing.T) *lab { return newLabWith(t, nil) }

// newLabMode starts a dataplane with that NFTablesMode.
func newLabMode(t *testing.T, mode string) *lab {
	return newLabWith(t, func(c *Config) { c.NFTablesMode = mode })
}

// newLabWith is newLab with a configuration changed by edit.
func newLabWith(t *testing.T, edit func(*Config)) *lab {
	l := &lab{t: t, stat: map[contract.EndpointID]string{}, ready: make(chan struct{})}
	cfg := testConfig(t)
	if edit != nil {
		edit(&cfg)
	}
	cfg.OnStatus = func(id contract.EndpointID, s string) {
		l.mu.Lock()
		l.stat[id] = s
		l.mu.Unlock()
	}
	var once sync.Once
	cfg.OnInSync = func() { once.Do(func() { close(l.ready) }) }
	dp, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.dp = dp
	// WorkloadSourceSpoofing = Any, so that AllowSpoofedSourcePrefixes
	// reaches the dataplane (the anti-spoofing test exempts a source).
	l.graph = calc.New(calc.Config{Hostname: host, Namespace: ns, InterfacePrefixes: []string{"tap"}, WorkloadSourceSpoofingAny: true}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { dp.Run(ctx); close(done) }()
	var stopped sync.Once
	l.stop = func() { stopped.Do(func() { cancel(); <-done }) }
	t.Cleanup(l.stop)
	return l
}

func (l *lab) update(ups ...resource.Update) {
	l.graph.OnUpdates(ups)
	l.dp.Send(l.graph.Flush())
}

func (l *lab) status(id contract.EndpointID) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stat[id]
}

func epUpdate(vm *netlab.VM, port string, labels map[string]string) resource.Update {
	name := resource.EscapeEndpointNamePart(host) + "-openstack-" + vm.Name[len(vm.Name)-3:] + "-" + port
	labels[selector.NamespaceLabel] = ns
	return resource.Update{Key: resource.Key{Kind: resource.KindWorkloadEndpoint, Namespace: ns, Name: name},
		Value: &resource.Endpoint{Namespace: ns, Name: name, Host: host, Orchestrator: "openstack", Workload: vm.Name[len(vm.Name)-3:],
			EndpointID: port, Labels: labels, InterfaceName: vm.HostSide, MAC: vm.MAC,
			IPv4Nets: []netip.Prefix{netip.MustParsePrefix(vm.IP + "/32")}, IPv6Nets: []netip.Prefix{netip.MustParsePrefix(vm.IP6 + "/128")}}}
}

func sgPolicy(name, sel string, in []resource.Rule) resource.Update {
	return resource.Update{Key: resource.Key{Kind: resource.KindNetworkPolicy, Namespace: ns, Name: name},
		Value: &resource.Policy{Kind: resource.KindNetworkPolicy, Namespace: ns, Name: name, Tier: "default", Selector: selector.MustParse(sel),
			Types: []resource.PolicyType{resource.Ingress, resource.Egress}, Ingress: in, Egress: []resource.Rule{{Action: resource.Allow}}}}
}

func allowFrom(sg string, proto string, port uint16) resource.Rule {
	p, _ := resource.ParseProtocol(proto)
	r := resource.Rule{Action: resource.Allow, Protocol: &p, Source: resource.EntityRule{Selector: selector.MustParse("has(" + sg + ")")}}
	if port != 0 {
		r.Destination.Ports = []resource.Port{{First: port, Last: port}}
	}
	return r
}

func allowNet(cidr, proto string, port uint16) resource.Rule {
	p, _ := resource.ParseProtocol(proto)
	return resource.Rule{Action: resource.Allow, Protocol: &p, Source: resource.EntityRule{Nets: []netip.Prefix{netip.MustParsePrefix(cidr)}},
		Destination: resource.EntityRule{Ports: []resource.Port{{First: port, Last: port}}}}
}

func addr(ip string, port int) string { return net.JoinHostPort(ip, fmt.Sprint(port)) }

// udpSources counts the datagrams a UDP socket receives, by source.
type udpSources struct {
	mu sync.Mutex
	n  map[string]int
}

func (u *udpSources) from(ip string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n[ip]
}

// recordUDP listens on addr inside ns until the test ends.
func recordUDP(t *testing.T, ns *netlab.NS, addr string) *udpSources {
	t.Helper()
	u := &udpSources{n: map[string]int{}}
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp4", addr)
		return err
	}); err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			u.mu.Lock()
			u.n[from.(*net.UDPAddr).IP.String()]++
			u.mu.Unlock()
		}
	}()
	return u
}

// backendTools tamper with and inspect one backend's kernel state from
// outside, as an operator or another tool would.
type backendTools struct {
	flushChain func(name string)
	flushSet   func(name string)
	addStray   func()
	strayGone  func() bool
	setHas     func(name, ip string) bool
	rules      func() string
}

func iptablesTools(t *testing.T) backendTools {
	backend := ipt.DetectBackend("auto", nil)
	iptables := map[string]string{ipt.Legacy: "iptables-legacy", ipt.NFT: "iptables-nft"}[backend]
	return backendTools{
		flushChain: func(name string) { netlab.Run(t, iptables, "-F", name) },
		flushSet:   func(name string) { netlab.Run(t, "ipset", "flush", name) },
		addStray:   func() { netlab.Run(t, iptables, "-N", "cali-stray") },
		strayGone: func() bool {
			_, err := netlab.Try(iptables, "-L", "cali-stray", "-n")
			return err != nil
		},
		setHas: func(name, ip string) bool { return strings.Contains(netlab.Run(t, "ipset", "list", name), ip) },
		rules:  func() string { return netlab.Run(t, iptables+"-save", "-t", "filter") },
	}
}

func nftTools(t *testing.T) backendTools {
	return backendTools{
		flushChain: func(name string) { netlab.Run(t, "nft", "flush", "chain", "ip", "calico", "filter-"+name) },
		flushSet:   func(name string) { netlab.Run(t, "nft", "flush", "set", "ip", "calico", name) },
		addStray:   func() { netlab.Run(t, "nft", "add", "chain", "ip", "calico", "filter-cali-stray") },
		strayGone: func() bool {
			_, err := netlab.Try("nft", "list", "chain", "ip", "calico", "filter-cali-stray")
			return err != nil
		},
		setHas: func(name, ip string) bool {
			return strings.Contains(netlab.Run(t, "nft", "list", "set", "ip", "calico", name), ip)
		},
		rules: func() string { return netlab.Run(t, "nft", "list", "table", "ip", "calico") },
	}
}

// freshUplink adds an uplink once the previous test's is gone: its veth
// (and default route) outlive its namespace for a moment.
func freshUplink(t *testing.T, name string) {
	netlab.Eventually(t, "the previous uplink gone", timeout, func() bool {
		out, _ := netlab.Try("ip", "route", "show", "default")
		out6, _ := netlab.Try("ip", "-6", "route", "show", "default")
		return strings.TrimSpace(out+out6) == ""
	})
	netlab.AddUplink(t, nil, name)
}

// TestEnforcement runs the same scenario, the same policies and the same
// packets, through both backends: the iptables rendering and the
// nftables rendering of one rule model must decide alike. The nftables
// run follows the iptables one on the same host, so it starts with a
// takeover of the iptables state.
func TestEnforcement(t *testing.T) { testEnforcement(t, false) }

func TestEnforcementNftables(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		netlab.Require(t)
		netlab.Unavailable(t, "nft: %v", err)
	}
	testEnforcement(t, true)
}

func testEnforcement(t *testing.T, nftables bool) {
	netlab.Require(t)
	tools, n := iptablesTools(t), "1" // n: the taps of the previous run may linger a moment
	if nftables {
		tools, n = nftTools(t), "2"
	}
	freshUplink(t, "wl"+n)
	web := netlab.AddVM(t, nil, "web", "tap00000web"+n, "fa:16:3e:00:00:01", "198.18.1.1", "2001:db8:1::1")
	cli := netlab.AddVM(t, nil, "cli", "tap00000cli"+n, "fa:16:3e:00:00:02", "198.18.1.2", "2001:db8:1::2")
	for _, vm := range []*netlab.VM{web, cli} {
		vm.PlugIn(t)
	}
	for _, p := range []int{80, 81} {
		netlab.Serve(t, web.NS, addr("0.0.0.0", p))
		netlab.Serve(t, cli.NS, addr("0.0.0.0", p))
	}
	netlab.Serve(t, web.NS, addr("::", 8080))

	l := newLabWith(t, func(c *Config) {
		if nftables {
			c.NFTablesMode = "Enabled"
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			for _, cmd := range [][]string{{"iptables-legacy-save"}, {"iptables-nft-save"}, {"nft", "list", "ruleset"}, {"ipset", "save"}, {"ip", "route"}, {"ip", "neigh"}, {"ip", "link"}} {
				out, _ := netlab.Try(cmd[0], cmd[1:]...)
				t.Logf("%v:\n%s", cmd, out)
			}
		}
	})
	webEP, cliEP := epUpdate(web, "port-web", map[string]string{sgWeb: ""}), epUpdate(cli, "port-cli", map[string]string{sgCli: ""})
	webPol := sgPolicy("ossg.default.web", "has("+sgWeb+")", []resource.Rule{allowFrom(sgCli, "TCP", 80)})
	cliPol := sgPolicy("ossg.default.clients", "has("+sgCli+")", nil)
	l.update(webEP, cliEP, webPol, cliPol)
	l.graph.OnInSync()
	l.dp.Send(l.graph.Flush())
	select {
	case <-l.ready:
	case <-time.After(timeout):
		t.Fatal("dataplane never applied the first state")
	}

	// The other backend's state is gone once this one is in place.
	netlab.Eventually(t, "the other backend's state removed", timeout, func() bool {
		if !nftables {
			out, _ := netlab.Try("nft", "list", "tables")
			return !strings.Contains(out, "calico")
		}
		for _, cmd := range []string{"iptables-legacy-save", "iptables-nft-save", "ip6tables-legacy-save", "ip6tables-nft-save"} {
			if out, _ := netlab.Try(cmd); strings.Contains(out, "cali-") {
				return false
			}
		}
		out, _ := netlab.Try("ipset", "list", "-n")
		return !strings.Contains(out, "cali")
	})

	if nftables {
		// The periodic re-read (every 300 ms here) finds the table as
		// written: it writes nothing. (A read-back that differed would
		// rewrite, or rebuild, at every refresh.)
		counters := regexp.MustCompile(`counter packets \d+ bytes \d+`)
		table := func() string {
			return counters.ReplaceAllString(netlab.Run(t, "nft", "-a", "list", "ruleset"), "counter")
		}
		time.Sleep(time.Second) // let statuses and routes settle
		before := table()
		time.Sleep(time.Second)
		if after := table(); after != before {
			t.Errorf("the tables changed (rules' handles, elements) in a second with nothing to change:\n%s\nthen:\n%s", before, after)
		}
	}

	// Allowed and blocked, each with its control.
	netlab.Eventually(t, "clients -> web:80 connects", timeout, func() bool { return netlab.Connects(cli.NS, addr(web.IP, 80), time.Second) })
	if netlab.Connects(cli.NS, addr(web.IP, 81), 500*time.Millisecond) {
		t.Error("clients -> web:81 connected; only 80 is allowed")
	}
	if netlab.Connects(web.NS, addr(cli.IP, 80), 500*time.Millisecond) {
		t.Error("web -> clients:80 connected; the clients group allows no ingress")
	}
	if netlab.Pings(cli.NS, web.IP, 500*time.Millisecond) {
		t.Error("ping clients -> web answered; no ICMP rule")
	}
	if netlab.Connects(cli.NS, addr(web.IP6, 8080), 500*time.Millisecond) {
		t.Error("IPv6 clients -> web:8080 connected; not allowed")
	}

	// Routes, neighbours, sysctls and status, as Felix sets them.
	routes := netlab.Run(t, "ip", "route", "show", "dev", web.HostSide)
	if !strings.Contains(routes, "198.18.1.1 scope link metric 1024") {
		t.Errorf("route: %q", routes)
	}
	if n := netlab.Run(t, "ip", "neigh", "show", "dev", web.HostSide); !strings.Contains(n, "198.18.1.1 lladdr fa:16:3e:00:00:01 PERMANENT") {
		t.Errorf("neighbour: %q", n)
	}
	if v, _ := os.ReadFile("/proc/sys/net/ipv4/conf/" + web.HostSide + "/proxy_arp"); strings.TrimSpace(string(v)) != "1" {
		t.Errorf("proxy_arp = %q", v)
	}
	webID := contract.EndpointID{Orchestrator: "openstack", WorkloadID: ns + "/web", EndpointID: "port-web"}
	netlab.Eventually(t, "web status up", timeout, func() bool { return l.status(webID) == "up" })

	// ICMP and IPv6 rules take effect when added.
	l.update(sgPolicy("ossg.default.web", "has("+sgWeb+")", []resource.Rule{allowFrom(sgCli, "TCP", 80), allowFrom(sgCli, "ICMP", 0), allowFrom(sgCli, "TCP", 8080)}))
	netlab.Eventually(t, "ping clients -> web", timeout, func() bool { return netlab.Pings(cli.NS, web.IP, 500*time.Millisecond) })
	netlab.Eventually(t, "IPv6 clients -> web:8080", timeout, func() bool { return netlab.Connects(cli.NS, addr(web.IP6, 8080), time.Second) })

	// Anti-spoofing. The client VM sends UDP from an address that is not
	// its own. The policy allows that source, so only the reverse-path
	// check can stop it; web records the sources of what reaches it.
	// Controls over the same path: the VM's own address gets through, and
	// so does the spoofed one once the endpoint is exempted with
	// AllowSpoofedSourcePrefixes.
	const spoof = "198.18.1.99"
	cli.MustExec(t, "ip", "addr", "add", spoof+"/32", "dev", "eth0")
	udp := recordUDP(t, web.NS, addr(web.IP, 9))
	send := func(src string) {
		cli.Do(func() error {
			c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP(web.IP), Port: 9})
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("hello"))
			return err
		})
	}
	udpRules := []resource.Rule{allowFrom(sgCli, "TCP", 80), allowFrom(sgCli, "ICMP", 0), allowFrom(sgCli, "TCP", 8080), allowFrom(sgCli, "UDP", 9), allowNet(spoof+"/32", "UDP", 9)}
	l.update(sgPolicy("ossg.default.web", "has("+sgWeb+")", udpRules))
	netlab.Eventually(t, "UDP from the client's own address reaches web", timeout, func() bool { send(cli.IP); return udp.from(cli.IP) > 0 })
	before := udp.from(cli.IP)
	for range 5 {
		send(spoof)
	}
	send(cli.IP) // sent after the spoofed ones over the same path: once it is in, they had their chance
	netlab.Eventually(t, "the datagram sent after the spoofed ones arrives", timeout, func() bool { return udp.from(cli.IP) > before })
	if n := udp.from(spoof); n > 0 {
		t.Errorf("%d datagrams with a spoofed source got through", n)
	}
	exempt := epUpdate(cli, "port-cli", map[string]string{sgCli: ""})
	exempt.Value.(*resource.Endpoint).AllowSpoofedSourcePrefixes = []netip.Prefix{netip.MustParsePrefix(spoof + "/32")}
	l.update(exempt)
	netlab.Eventually(t, "the spoofed source, exempted, reaches web", timeout, func() bool { send(spoof); return udp.from(spoof) > 0 })
	l.update(cliEP)
	if !netlab.Connects(cli.NS, addr(web.IP, 80), time.Second) {
		t.Error("control: the real address no longer connects")
	}

	// An interface with the tap prefix that no endpoint claims fails closed.
	rogue := netlab.AddVM(t, nil, "rog", "tap00000rog"+n, "fa:16:3e:00:00:09", "198.18.1.9", "")
	rogue.PlugIn(t)
	netlab.Run(t, "ip", "route", "add", "198.18.1.9/32", "dev", rogue.HostSide)
	netlab.Serve(t, rogue.NS, addr("0.0.0.0", 80))
	if netlab.Connects(rogue.NS, addr(web.IP, 80), 500*time.Millisecond) || netlab.Connects(cli.NS, addr(rogue.IP, 80), 500*time.Millisecond) {
		t.Error("an unknown tap interface passed traffic")
	}

	// Tampering is repaired by the periodic re-read.
	polChain := rules.PolicyChainName(contract.PolicyID{Kind: "NetworkPolicy", Namespace: ns, Name: "ossg.default.web"}, true)
	tools.flushChain(polChain)
	netlab.Eventually(t, "flushed policy chain repaired", timeout, func() bool { return netlab.Connects(cli.NS, addr(web.IP, 80), time.Second) })
	cross, _ := selector.EntityRuleSelectors(selector.MustParse("has("+sgCli+")"), nil, nil, ns)
	setName := l.dp.families[0].sets.Name(cross.UniqueID())
	tools.flushSet(setName)
	netlab.Eventually(t, "flushed set repaired", timeout, func() bool { return tools.setHas(setName, "198.18.1.2") })
	tools.addStray()
	netlab.Eventually(t, "stray cali- chain removed", timeout, tools.strayGone)

	// An established connection the policy allowed is cut when the policy goes.
	conn, err := netlab.Dial(cli.NS, addr(web.IP, 80), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !netlab.Echoes(conn, time.Second) {
		t.Fatal("established connection does not work to begin with")
	}
	l.update(sgPolicy("ossg.default.web", "has("+sgWeb+")", nil))
	netlab.Eventually(t, "established connection cut", timeout, func() bool { return !netlab.Echoes(conn, 300*time.Millisecond) })
	if netlab.Connects(cli.NS, addr(web.IP, 80), 500*time.Millisecond) {
		t.Error("a new connection passed after the policy went")
	}

	// Interface down: status down and no route; up again: both back.
	netlab.Run(t, "ip", "link", "set", web.HostSide, "down")
	netlab.Eventually(t, "status down", timeout, func() bool { return l.status(webID) == "down" })
	netlab.Eventually(t, "route removed while down", timeout, func() bool {
		return !strings.Contains(netlab.Run(t, "ip", "route", "show", "dev", web.HostSide), "198.18.1.1")
	})
	netlab.Run(t, "ip", "link", "set", web.HostSide, "up")
	netlab.Eventually(t, "status up again", timeout, func() bool { return l.status(webID) == "up" })

	// The endpoint goes: its status is withdrawn and its tap falls back to the drop.
	l.update(resource.Update{Key: webEP.Key})
	netlab.Eventually(t, "status withdrawn", timeout, func() bool { return l.status(webID) == "" })
	netlab.Eventually(t, "routes of a deleted endpoint removed", timeout, func() bool {
		return !strings.Contains(netlab.Run(t, "ip", "route", "show", "dev", web.HostSide), "198.18.1.1")
	})
	if out := tools.rules(); strings.Contains(out, "cali-tw-"+web.HostSide) {
		t.Errorf("chains of a deleted endpoint remain")
	}
}
