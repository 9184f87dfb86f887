package dataplane

// Unit tests of the trust boundary in the dataplane: whatever calc's
// messages say, the dataplane touches only its own interfaces. They run
// on the fake kernel, as a normal user.

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"ocelot/contract"
	"ocelot/dataplane/hostaddrs"
	"ocelot/dataplane/ifacemon"
	"ocelot/dataplane/rules"
)

func ipnet(s string) *net.IPNet {
	p := netip.MustParsePrefix(s)
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// hostUplink gives the fake host an uplink, eth0, as a compute host has
// one: a connected route, a default route through a gateway, another
// static route, and a permanent neighbour entry. The default route has
// protocol 3 (boot), the DeviceRouteProtocol of endpoint routes too, so
// only the interface tells them apart.
func hostUplink(h *harness) (routes, neighs []string) {
	idx := h.k.AddLink("eth0", true, true)
	gw := net.ParseIP("198.18.0.254")
	h.k.AddRoute(netlink.Route{LinkIndex: idx, Dst: ipnet("198.18.0.0/24"), Protocol: unix.RTPROT_KERNEL, Scope: netlink.SCOPE_LINK, Table: unix.RT_TABLE_MAIN})
	h.k.AddRoute(netlink.Route{LinkIndex: idx, Dst: ipnet("0.0.0.0/0"), Gw: gw, Protocol: unix.RTPROT_BOOT, Table: unix.RT_TABLE_MAIN}) // netlink lists a default route so
	h.k.AddRoute(netlink.Route{LinkIndex: idx, Dst: ipnet("198.19.0.0/16"), Gw: gw, Protocol: unix.RTPROT_STATIC, Table: unix.RT_TABLE_MAIN})
	mac, _ := net.ParseMAC("fa:16:3e:aa:bb:cc")
	if err := h.k.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: gw, HardwareAddr: mac}); err != nil {
		h.t.Fatal(err)
	}
	return h.k.Routes("eth0"), h.k.Neighs("eth0")
}

// An endpoint that names a host interface (eth0), a name without the
// prefix, an excluded or a malformed one is refused: eth0's routes and
// neighbours, its sysctls and the dispatch chains stay as they were,
// through applies, route resyncs and the endpoint's removal. A control
// endpoint on a real tap gets its routes.
func TestForeignInterfaceNeverTouched(t *testing.T) {
	h := newHarnessWith(t, func(c *Config) { c.InterfaceExclude = func(name string) bool { return name == "tapexcluded" } })
	wantRoutes, wantNeighs := hostUplink(h)
	h.plug("tap1")
	h.k.AddLink("tapexcluded", true, true)
	sysctlsBefore := h.k.Sysctl("net/ipv4/conf/eth0/proxy_arp") + h.k.Sysctl("net/ipv4/conf/eth0/rp_filter")
	control := epID("control")
	bad := map[string]contract.EndpointID{"eth0": epID("eth0"), "lo": epID("lo"), "tapexcluded": epID("excl"),
		"tap1 -j ACCEPT": epID("inject"), "tap\"x": epID("quote"), "tap0123456789abc": epID("long")}
	msgs := []contract.Message{policy("p"), endpoint(control, "tap1", "198.18.1.1", "p")}
	for iface, id := range bad {
		ep := endpoint(id, iface, "198.18.0.77", "p")
		// A migration target would listen on its interface; bandwidth
		// limits would put qdiscs on it.
		ep.LiveMigration = contract.MigrationTarget
		ep.QoS = &contract.QoSControls{Egress: contract.QoSLimits{Bandwidth: 1_000_000, Burst: 100_000}}
		msgs = append(msgs, ep)
	}
	h.send(append(msgs, contract.InSync{})...)
	// The monitor reports eth0 too, as a buggy or broader one might.
	h.d.onIfaces(ifacemon.Event{States: []ifacemon.State{{Name: "eth0", Index: 11, Up: true, Running: true}}})
	h.apply()

	check := func(when string) {
		t.Helper()
		if got := h.k.Routes("eth0"); !slices.Equal(got, wantRoutes) {
			t.Errorf("%s: eth0's routes changed:\n got %v\nwant %v", when, got, wantRoutes)
		}
		if got := h.k.Neighs("eth0"); !slices.Equal(got, wantNeighs) {
			t.Errorf("%s: eth0's neighbours changed: got %v, want %v", when, got, wantNeighs)
		}
		if got := h.k.Sysctl("net/ipv4/conf/eth0/proxy_arp") + h.k.Sysctl("net/ipv4/conf/eth0/rp_filter"); got != sysctlsBefore {
			t.Errorf("%s: eth0's sysctls changed", when)
		}
		for _, l := range h.k.Journal() {
			if strings.Contains(l, "/eth0/") || strings.Contains(l, "/tapexcluded/") || strings.Contains(l, "dev 11 ") ||
				strings.Contains(l, "listen eth0") || strings.Contains(l, "listen tapexcluded") || strings.HasPrefix(l, "tc:") {
				t.Errorf("%s: the dataplane touched a foreign interface: %s", when, l)
			}
		}
		for _, family := range []int{4, 6} {
			for _, name := range h.k.Chains(family, "filter") {
				rs, _ := h.k.Chain(family, "filter", name)
				for _, r := range rs {
					if strings.Contains(r, "eth0") || strings.Contains(r, "tapexcluded") || strings.Contains(r, "ACCEPT\"") {
						t.Errorf("%s: IPv%d %s has a rule for a foreign interface: %s", when, family, name, r)
					}
				}
			}
		}
		if got := h.k.Routes("tap1"); !slices.Equal(got, []string{"198.18.1.1/32 proto boot"}) {
			t.Errorf("%s: the control endpoint's routes are %v", when, got)
		}
	}
	check("after the first apply")
	for iface, id := range bad {
		if s := h.status(id); s != "down" {
			t.Errorf("endpoint naming %q reported %q, want down", iface, s)
		}
	}
	if h.status(control) != "up" {
		t.Errorf("control endpoint %q, want up", h.status(control))
	}
	if !slices.Contains(targets(h.chain(rules.ChainToWorkloadDispatch)), rules.ToWorkloadChainName("tap1")) {
		t.Error("the control endpoint's interface is not dispatched")
	}

	h.d.routes.Resync()
	h.apply()
	check("after a route resync")

	// An endpoint that moves from its tap to eth0 releases the tap and
	// claims nothing.
	h.send(endpoint(control, "eth0", "198.18.1.1", "p"))
	h.apply()
	if got := h.k.Routes("tap1"); len(got) != 0 {
		t.Errorf("routes of tap1 after its endpoint moved to eth0: %v", got)
	}
	h.send(endpoint(control, "tap1", "198.18.1.1", "p"))
	for _, id := range bad {
		h.send(contract.EndpointRemove{ID: id})
	}
	h.apply()
	h.d.routes.Resync()
	h.apply()
	check("after the endpoints went")
	for iface, id := range bad {
		if s := h.status(id); s != "" {
			t.Errorf("endpoint naming %q: status %q after removal, want withdrawn", iface, s)
		}
	}
}

func TestWorkloadIfaces(t *testing.T) {
	w := workloadIfaces{prefixes: []string{"tap", "vnet"}, exclude: func(n string) bool { return n == "tapx" }}
	for name, want := range map[string]bool{
		"tap1": true, "vnet0": true, "tap": true, "tap0123456789ab": true,
		"eth0": false, "tapx": false, "": false, "tap0123456789abc": false, "tap 1": false, "tap\n1": false,
		"tap\"": false, "tap/1": false, "tap:1": false, "atap": false,
	} {
		if got := w.Ours(name); got != want {
			t.Errorf("Ours(%q) = %v, want %v", name, got, want)
		}
	}
	if (workloadIfaces{prefixes: []string{""}}).Ours("eth0") {
		t.Error("an empty prefix made eth0 ours")
	}
}

// An endpoint cannot take an address the host uses: its gateway, its own
// addresses, an etcd endpoint's address, or a network holding one. Those
// are not routed to its tap (so they are no source it may use either),
// no floating IP maps them, each is counted; the endpoint's other
// addresses work. When the host starts or stops using an address, the
// routes follow.
func TestEndpointCannotTakeHostAddresses(t *testing.T) {
	h := newHarness(t)
	hostUplink(h)
	if err := h.k.AddAddr("eth0", netip.MustParseAddr("198.18.0.1")); err != nil {
		t.Fatal(err)
	}
	h.d.onHost(h.k.HostAddrs())
	h.d.routes.OnEtcd([]netip.Addr{netip.MustParseAddr("198.18.5.5")})
	h.plug("tap1")
	ep := endpoint(epID("a"), "tap1", "198.18.1.1", "p")
	for _, n := range []string{"198.18.0.254/32", "198.18.5.5/32", "198.18.0.1/32", "198.18.5.0/24", "0.0.0.0/0", "127.0.0.1/32"} {
		ep.IPv4Nets = append(ep.IPv4Nets, netip.MustParsePrefix(n))
	}
	ep.IPv4NAT = []contract.NAT{
		{Internal: netip.MustParseAddr("198.18.1.1"), External: netip.MustParseAddr("198.18.0.1")}, // the host's address
		{Internal: netip.MustParseAddr("198.18.1.1"), External: netip.MustParseAddr("198.18.9.9")},
	}
	h.send(policy("p"), ep, contract.InSync{})
	h.apply()
	if got, want := h.k.Routes("tap1"), []string{"198.18.1.1/32 proto boot", "198.18.9.9/32 proto boot"}; !slices.Equal(got, want) {
		t.Errorf("routes of tap1: %v, want only the endpoint's own address and its floating IP %v", got, want)
	}
	if got := h.k.Neighs("tap1"); !slices.Equal(got, []string{"198.18.1.1 fa:16:3e:00:00:01", "198.18.9.9 fa:16:3e:00:00:01"}) {
		t.Errorf("neighbours of tap1: %v", got)
	}
	dnat, _ := h.k.Chain(4, "nat", rules.ChainFIPDNAT)
	if s := strings.Join(dnat, "\n"); strings.Contains(s, "198.18.0.1 ") || !strings.Contains(s, "198.18.9.9") {
		t.Errorf("floating-IP DNAT chain maps the host's address, or lost the valid one:\n%s", s)
	}
	if n := testutil.ToFloat64(h.d.metrics.refusals.WithLabelValues("host_address")); n != 7 {
		t.Errorf("refusals counted: %v, want 7 (six networks and the floating IP)", n)
	}
	if h.status(epID("a")) != "up" {
		t.Errorf("status %q: the rest of the endpoint must work", h.status(epID("a")))
	}

	// The host takes the endpoint's own address (an operator adds it to
	// eth0): it is no longer routed to the tap. And back.
	if err := h.k.AddAddr("eth0", netip.MustParseAddr("198.18.1.1")); err != nil {
		t.Fatal(err)
	}
	h.d.onHost(h.k.HostAddrs())
	h.apply()
	if got := h.k.Routes("tap1"); !slices.Equal(got, []string{"198.18.9.9/32 proto boot"}) {
		t.Errorf("routes of tap1 once the host uses 198.18.1.1: %v", got)
	}
	h.d.onHost(hostaddrs.Snapshot{Addrs: []hostaddrs.Addr{{IP: netip.MustParseAddr("198.18.0.1"), Iface: "eth0"}},
		Gateways: []hostaddrs.Addr{{IP: netip.MustParseAddr("198.18.0.254"), Iface: "eth0"}}})
	h.apply()
	if got := h.k.Routes("tap1"); !slices.Equal(got, []string{"198.18.1.1/32 proto boot", "198.18.9.9/32 proto boot"}) {
		t.Errorf("routes of tap1 once the host no longer uses 198.18.1.1: %v", got)
	}
}

// A workload interface's own addresses (a tap with an address) are not
// the host's: they do not stop endpoints from being routed.
func TestHostGuardIgnoresWorkloadInterfaces(t *testing.T) {
	g := newHostGuard(workloadIfaces{prefixes: []string{"tap"}})
	g.SetHost(hostaddrs.Snapshot{Addrs: []hostaddrs.Addr{{IP: netip.MustParseAddr("198.18.1.1"), Iface: "tap1"},
		{IP: netip.MustParseAddr("198.18.0.1"), Iface: "eth0"}}})
	if _, taken := g.Taken(netip.MustParsePrefix("198.18.1.1/32")); taken {
		t.Error("an address on a tap counts as the host's")
	}
	if _, taken := g.Taken(netip.MustParsePrefix("198.18.0.1/32")); !taken {
		t.Error("the address on eth0 does not count as the host's")
	}
	if _, taken := g.Taken(netip.MustParsePrefix("2001:db8::1/128")); taken {
		t.Error("a global IPv6 address nobody uses is refused")
	}
	if _, taken := g.Taken(netip.MustParsePrefix("fe80::1/128")); !taken {
		t.Error("a link-local address is allowed")
	}
}

// A policy chain the kernel refuses (a rule matching a set that does not
// exist) is isolated: that chain drops, every other chain and endpoint is
// programmed, the health detail names the policy; once the kernel takes
// it (the set appears, a retry), it is written as it is.
func TestRefusedPolicyIsIsolated(t *testing.T) {
	h := newHarness(t)
	h.plug("tap1")
	h.plug("tap2")
	bad := policy("bad", "s:never-sent")
	h.send(ipset("s:ok", "198.18.9.1"), policy("good", "s:ok"), bad,
		endpoint(epID("a"), "tap1", "198.18.0.1", "good", "bad"), endpoint(epID("b"), "tap2", "198.18.0.2", "good"), contract.InSync{})
	h.apply()
	if got := strings.Join(h.chain(pi("bad")), "\n"); !strings.Contains(got, "--jump DROP") || strings.Contains(got, "match-set") {
		t.Errorf("the refused policy chain is not a drop:\n%s", got)
	}
	if got := strings.Join(h.chain(pi("good")), "\n"); !strings.Contains(got, "match-set") {
		t.Errorf("the good policy was not programmed:\n%s", got)
	}
	for _, iface := range []string{"tap1", "tap2"} {
		if !slices.Contains(targets(h.chain(tw(iface))), pi("good")) {
			t.Errorf("%s does not jump to the good policy", iface)
		}
	}
	hs := h.d.Health()
	if !hs.Healthy || !strings.Contains(hs.Degraded, "policy "+polID("bad").String()) || !strings.Contains(hs.Degraded, "drop") {
		t.Errorf("health: healthy %v, degraded %q; want healthy and naming the policy", hs.Healthy, hs.Degraded)
	}
	if h.status(epID("b")) != "up" {
		t.Errorf("b is %q", h.status(epID("b")))
	}

	h.send(ipset("s:never-sent", "198.18.9.2"))
	h.apply()
	for _, f := range h.d.families {
		f.tables.RetryQuarantined() // what the dataplane's back-off does
	}
	h.apply()
	if got := strings.Join(h.chain(pi("bad")), "\n"); !strings.Contains(got, "match-set") {
		t.Errorf("after the set appeared and a retry, the policy is still held back:\n%s", got)
	}
	if hs := h.d.Health(); hs.Degraded != "" {
		t.Errorf("still degraded: %q", hs.Degraded)
	}
}
