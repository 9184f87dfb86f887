package dataplane

import (
	"net"
	"net/netip"
	"regexp"
	"testing"
	"time"

	"ocelot/datastore/resource"
	"ocelot/internal/netlab"
	"ocelot/selector"
)

var ctIDRE = regexp.MustCompile(`id=(\d+)`)

// ctID is the id of the conntrack entry of a TCP flow from src to dst
// ("" when there is none): a flow forgotten and picked up again gets a
// new one.
func ctID(t *testing.T, src, dst string) string {
	out, _ := netlab.Try("conntrack", "-L", "-p", "tcp", "-s", src, "-d", dst, "--dport", "80", "-o", "id")
	if m := ctIDRE.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

// TestConntrackCutsWhatLostItsPermission: an established flow through a
// floating IP and one from a NetworkSet's CIDR are cut when the rule that
// allowed them no longer does; flows that are still allowed (direct and
// through the floating IP) keep their conntrack entries.
func TestConntrackCutsWhatLostItsPermission(t *testing.T) {
	netlab.Require(t)
	noDefaultRoute(t)
	netlab.AddUplink(t, nil, "ctu")
	// Its default route goes with the link at once, not when the kernel
	// gets round to the namespace: the next test adds its own.
	t.Cleanup(func() { netlab.Try("ip", "link", "del", "up-ctu") })
	const sgF = "sg.projectcalico.org/openstack-fip-clients"
	web := netlab.AddVM(t, nil, "ctw", "tap00000ctw1", "fa:16:3e:00:60:01", "198.18.60.1", "2001:db8:60::1")
	cli := netlab.AddVM(t, nil, "ctc", "tap00000ctc1", "fa:16:3e:00:60:02", "198.18.60.2", "2001:db8:60::2")
	fcl := netlab.AddVM(t, nil, "ctf", "tap00000ctf1", "fa:16:3e:00:60:03", "198.18.60.3", "2001:db8:60::3")
	nst := netlab.AddVM(t, nil, "ctn", "tap00000ctn1", "fa:16:3e:00:60:04", "198.18.40.7", "2001:db8:60::4")
	for _, vm := range []*netlab.VM{web, cli, fcl, nst} {
		vm.PlugIn(t)
	}
	netlab.Serve(t, web.NS, addr("0.0.0.0", 80))
	const fip = "198.18.69.9"

	l := newLab(t)
	webEP := epUpdate(web, "port-ctw", map[string]string{sgWeb: ""})
	webEP.Value.(*resource.Endpoint).IPv4NAT = []resource.NAT{{Internal: netip.MustParseAddr(web.IP), External: netip.MustParseAddr(fip)}}
	fromPartners := resource.Rule{Action: resource.Allow, Source: resource.EntityRule{Selector: selector.MustParse("role == 'partner'")}}
	partners := resource.Update{Key: resource.Key{Kind: resource.KindNetworkSet, Namespace: ns, Name: "partners"},
		Value: &resource.NetworkSet{Namespace: ns, Name: "partners", Labels: map[string]string{"role": "partner", selector.NamespaceLabel: ns},
			Nets: []netip.Prefix{netip.MustParsePrefix("198.18.40.0/24")}}}
	l.update(webEP, epUpdate(cli, "port-ctc", map[string]string{sgCli: ""}), epUpdate(fcl, "port-ctf", map[string]string{sgF: ""}),
		epUpdate(nst, "port-ctn", map[string]string{}), partners,
		sgPolicy("ossg.default.web", "has("+sgWeb+")", []resource.Rule{allowFrom(sgCli, "TCP", 80), allowFrom(sgF, "TCP", 80), fromPartners}),
		sgPolicy("ossg.default.others", "!has("+sgWeb+")", nil))
	l.graph.OnInSync()
	l.dp.Send(l.graph.Flush())
	select {
	case <-l.ready:
	case <-time.After(timeout):
		t.Fatal("dataplane never applied the first state")
	}

	dial := func(vm *netlab.VM, dst string) net.Conn {
		t.Helper()
		var c net.Conn
		netlab.Eventually(t, vm.Name+" -> "+dst+":80 connects", timeout, func() bool {
			var err error
			c, err = netlab.Dial(vm.NS, addr(dst, 80), time.Second)
			return err == nil
		})
		t.Cleanup(func() { c.Close() })
		if !netlab.Echoes(c, time.Second) {
			t.Fatalf("%s -> %s:80 does not echo to begin with", vm.Name, dst)
		}
		return c
	}
	control, controlFIP := dial(cli, web.IP), dial(cli, fip)
	viaFIP, fromNet := dial(fcl, fip), dial(nst, web.IP)
	controlIDs := [2]string{ctID(t, cli.IP, web.IP), ctID(t, cli.IP, fip)}
	if controlIDs[0] == "" || controlIDs[1] == "" {
		t.Fatalf("no conntrack entries for the control flows: %q", netlab.Run(t, "conntrack", "-L"))
	}
	controlsKept := func(when string) {
		t.Helper()
		if !netlab.Echoes(control, time.Second) || !netlab.Echoes(controlFIP, time.Second) {
			t.Errorf("%s: a control flow that is still allowed was cut", when)
		}
		if got := [2]string{ctID(t, cli.IP, web.IP), ctID(t, cli.IP, fip)}; got != controlIDs {
			t.Errorf("%s: the control flows' conntrack entries were forgotten (ids %v, were %v)", when, got, controlIDs)
		}
	}

	// The floating IP's client leaves the group that allowed it.
	l.update(epUpdate(fcl, "port-ctf", map[string]string{}))
	netlab.Eventually(t, "the flow through the floating IP is cut", timeout, func() bool { return !netlab.Echoes(viaFIP, 300*time.Millisecond) })
	if netlab.Connects(fcl.NS, addr(fip, 80), 500*time.Millisecond) {
		t.Error("a new connection through the floating IP passed after its permission went")
	}
	controlsKept("after the floating IP's client lost its group")
	if !netlab.Echoes(fromNet, time.Second) {
		t.Error("the NetworkSet's flow was cut too early")
	}

	// The NetworkSet goes.
	l.update(resource.Update{Key: partners.Key})
	netlab.Eventually(t, "the flow from the NetworkSet's CIDR is cut", timeout, func() bool { return !netlab.Echoes(fromNet, 300*time.Millisecond) })
	if netlab.Connects(nst.NS, addr(web.IP, 80), 500*time.Millisecond) {
		t.Error("a new connection from the former NetworkSet passed")
	}
	controlsKept("after the NetworkSet went")
}
