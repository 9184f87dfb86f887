package dataplane

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"ocelot/contract"
	"ocelot/datastore/resource"
	"ocelot/internal/netlab"
)

// hostConnects reports whether the host (this test's namespace) reaches
// addr over TCP.
func hostConnects(addr string, timeout time.Duration) bool {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// noDefaultRoute waits until the default routes of an earlier test's
// uplink are gone with its namespace (the kernel removes it in the
// background), so that a test can add its own.
func noDefaultRoute(t *testing.T) {
	t.Helper()
	netlab.Eventually(t, "no default route left by an earlier test", timeout, func() bool {
		return strings.TrimSpace(netlab.Run(t, "ip", "-4", "route", "show", "default")) == "" &&
			strings.TrimSpace(netlab.Run(t, "ip", "-6", "route", "show", "default")) == ""
	})
}

// The host's own state, as an operator would compare it: its uplink's
// routes, addresses and neighbours, and the main table less the routes
// to workload interfaces.
func hostState(t *testing.T) string {
	var b strings.Builder
	for _, cmd := range [][]string{
		{"ip", "-4", "route", "show", "dev", "eth0"}, {"ip", "-6", "route", "show", "dev", "eth0"},
		{"ip", "-br", "addr", "show", "dev", "eth0"}, {"ip", "neigh", "show", "dev", "eth0", "nud", "permanent"},
		{"ip", "route", "show", "table", "all"},
	} {
		for _, line := range strings.Split(netlab.Run(t, cmd[0], cmd[1:]...), "\n") {
			if !strings.Contains(line, "dev tap") && !strings.HasPrefix(line, "Error:") { // iproute2 warns about the peer's namespace
				b.WriteString(line + "\n")
			}
		}
	}
	return b.String()
}

// TestHostStaysReachable: an endpoint that names the host's uplink, and
// one that claims the host's gateway, etcd's address and the host's own
// address, change nothing of the host's: its routes, addresses and
// neighbours are as before, and its traffic to etcd keeps its path. The
// rest of the second endpoint works: its own address is routed to its
// tap and it answers.
func TestHostStaysReachable(t *testing.T) {
	netlab.Require(t)
	// The uplink: eth0 to a "world" holding the gateway and etcd. The
	// default route has protocol boot, the protocol of endpoint routes.
	noDefaultRoute(t)
	world := netlab.NewNS(t, "world")
	netlab.Run(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", world.Name)
	t.Cleanup(func() { netlab.Try("ip", "link", "del", "eth0") }) // with its routes, at once
	netlab.Run(t, "ip", "addr", "add", "198.18.200.1/24", "dev", "eth0")
	netlab.Run(t, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
	// A compute host forwards already (the agent turns it on too), and
	// forwarding gives eth0 its subnet-router anycast route.
	netlab.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	netlab.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	netlab.Run(t, "ip", "link", "set", "eth0", "up")
	world.MustExec(t, "ip", "addr", "add", "198.18.200.254/24", "dev", "eth0")
	world.MustExec(t, "ip", "link", "set", "eth0", "up")
	world.MustExec(t, "ip", "link", "set", "lo", "up")
	world.MustExec(t, "ip", "addr", "add", "198.18.201.1/32", "dev", "lo")
	mac := strings.Fields(world.MustExec(t, "cat", "/sys/class/net/eth0/address"))[0]
	netlab.Run(t, "ip", "route", "add", "default", "via", "198.18.200.254", "dev", "eth0", "proto", "boot")
	netlab.Run(t, "ip", "neigh", "replace", "198.18.200.254", "lladdr", mac, "dev", "eth0", "nud", "permanent")
	netlab.Serve(t, world, addr("198.18.201.1", 2379))
	if !hostConnects(addr("198.18.201.1", 2379), 2*time.Second) {
		t.Fatal("the host cannot reach etcd to begin with")
	}
	// The kernel gives eth0 its link-local address, and the routes that go
	// with it, once the link has a carrier: the host's state is what it is
	// once they are there.
	netlab.Eventually(t, "eth0's link-local routes", 10*time.Second, func() bool {
		out := netlab.Run(t, "ip", "-6", "route", "show", "table", "all", "dev", "eth0")
		return strings.Contains(out, "fe80::/64") && strings.Contains(out, "local fe80::") && strings.Contains(out, "multicast ff00::/8") &&
			strings.Contains(out, "anycast fe80::")
	})
	before := hostState(t)

	web := netlab.AddVM(t, nil, "gst", "tap00000gst1", "fa:16:3e:00:00:01", "198.18.1.1", "2001:db8:1::1")
	web.PlugIn(t)
	netlab.Serve(t, web.NS, addr("0.0.0.0", 80))
	l := newLabWith(t, func(c *Config) { c.EtcdEndpoints = []string{"http://198.18.201.1:2379"} })
	ep := epUpdate(web, "port-gst", map[string]string{sgWeb: ""})
	ep.Value.(*resource.Endpoint).IPv6Nets = nil
	for _, n := range []string{"198.18.200.254/32", "198.18.201.1/32", "198.18.200.1/32"} {
		ep.Value.(*resource.Endpoint).IPv4Nets = append(ep.Value.(*resource.Endpoint).IPv4Nets, netip.MustParsePrefix(n))
	}
	l.update(ep, sgPolicy("ossg.default.web", "has("+sgWeb+")", []resource.Rule{allowNet("198.18.0.0/15", "TCP", 80)}))
	l.graph.OnInSync()
	l.dp.Send(l.graph.Flush())
	// Calc refuses an endpoint on eth0 itself; the dataplane must too, so
	// the message goes to it directly.
	rogue := contract.EndpointID{Orchestrator: "openstack", WorkloadID: ns + "/rogue", EndpointID: "port-rogue"}
	l.dp.Send([]contract.Message{contract.EndpointUpdate{ID: rogue, Name: "eth0", MAC: "fa:16:3e:00:00:66",
		IPv4Nets: []netip.Prefix{netip.MustParsePrefix("198.18.200.99/32")}}})
	select {
	case <-l.ready:
	case <-time.After(timeout):
		t.Fatal("dataplane never applied the first state")
	}

	netlab.Eventually(t, "web's own address routed to its tap", timeout, func() bool {
		return strings.Contains(netlab.Run(t, "ip", "route", "show", "dev", web.HostSide), "198.18.1.1")
	})
	netlab.Eventually(t, "the host reaches web (control)", timeout, func() bool { return hostConnects(addr(web.IP, 80), time.Second) })
	if routes := netlab.Run(t, "ip", "route", "show", "dev", web.HostSide); strings.Contains(routes, "198.18.20") {
		t.Errorf("an address the host uses is routed to the tap:\n%s", routes)
	}
	check := func(when string) {
		t.Helper()
		if after := hostState(t); after != before {
			t.Errorf("%s: the host's routes, addresses or neighbours changed:\nbefore:\n%s\nafter:\n%s", when, before, after)
		}
		if !hostConnects(addr("198.18.201.1", 2379), 2*time.Second) {
			t.Errorf("%s: the host no longer reaches etcd", when)
		}
		if got := netlab.Run(t, "ip", "route", "get", "198.18.201.1"); !strings.Contains(got, "dev eth0") {
			t.Errorf("%s: the host's path to etcd: %s", when, got)
		}
	}
	check("with the endpoints in place")
	l.mu.Lock()
	rogueStatus := l.stat[rogue]
	l.mu.Unlock()
	if rogueStatus != "down" {
		t.Errorf("the endpoint on eth0 is reported %q, want down", rogueStatus)
	}

	// The endpoints go; several route refreshes pass.
	l.dp.Send([]contract.Message{contract.EndpointRemove{ID: rogue}})
	l.update(resource.Update{Key: ep.Key})
	netlab.Eventually(t, "web's routes gone", timeout, func() bool {
		return !strings.Contains(netlab.Run(t, "ip", "route", "show", "dev", web.HostSide), "198.18.1.1")
	})
	time.Sleep(3 * testConfig(t).RouteRefresh)
	check("after the endpoints went")
}
