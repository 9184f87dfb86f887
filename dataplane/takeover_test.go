package dataplane

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ocelot/datastore/resource"
	"ocelot/internal/netlab"
)

// felixNftables is the shape of what Felix's nftables mode leaves in its
// calico table: base chains, chains and sets by its names (with the
// marker element nft writes into interval sets), here one that drops all
// forwarded TCP to port 80.
const felixNftables = `table ip calico {
	set cali40s-felix {
		type ipv4_addr; flags interval
		elements = { 198.18.0.0/16 }
	}
	map filter-cali-to-wl-dispatch {
		type ifname : verdict
	}
	chain filter-cali-FORWARD {
		tcp dport 80 ip saddr @cali40s-felix counter drop comment "cali:felixfelixfelix;"
	}
	chain filter-FORWARD {
		type filter hook forward priority filter; policy accept;
		counter jump filter-cali-FORWARD comment "cali:felixfelixfelix;"
	}
	chain mangle-INPUT {
		type filter hook input priority mangle; policy accept;
	}
}
`

// TestTakeoverBothWays moves one host between the backends while a VM
// keeps connecting: from Felix's nftables state to iptables, iptables to
// nftables, a restart in Auto (which keeps nftables), and back to
// iptables. An allowed connection never fails and a denied one never
// succeeds, throughout; after each switch the other backend's state is
// gone.
func TestTakeoverBothWays(t *testing.T) {
	netlab.Require(t)
	if _, err := netlab.Try("nft", "--version"); err != nil {
		netlab.Unavailable(t, "nft: %v", err)
	}
	freshUplink(t, "wl3")
	web := netlab.AddVM(t, nil, "web", "tap00000web3", "fa:16:3e:00:00:01", "198.18.1.1", "2001:db8:1::1")
	cli := netlab.AddVM(t, nil, "cli", "tap00000cli3", "fa:16:3e:00:00:02", "198.18.1.2", "2001:db8:1::2")
	for _, vm := range []*netlab.VM{web, cli} {
		vm.PlugIn(t)
	}
	netlab.Serve(t, web.NS, addr("0.0.0.0", 80))
	netlab.Serve(t, web.NS, addr("0.0.0.0", 81))
	cmd := "nft -f - <<'EOF'\n" + felixNftables + "EOF\n"
	if out, err := netlab.Try("sh", "-c", cmd); err != nil {
		t.Fatalf("loading Felix's table: %v %s", err, out)
	}
	state := []resource.Update{
		epUpdate(web, "port-web", map[string]string{sgWeb: ""}), epUpdate(cli, "port-cli", map[string]string{sgCli: ""}),
		sgPolicy("ossg.default.web", "has("+sgWeb+")", []resource.Rule{allowFrom(sgCli, "TCP", 80)}),
		sgPolicy("ossg.default.clients", "has("+sgCli+")", nil),
	}
	start := func(mode string) *lab {
		l := newLabMode(t, mode)
		l.update(state...)
		l.graph.OnInSync()
		l.dp.Send(l.graph.Flush())
		select {
		case <-l.ready:
		case <-time.After(timeout):
			t.Fatalf("%s: dataplane never applied the first state", mode)
		}
		return l
	}
	iptablesGone := func() bool {
		for _, cmd := range []string{"iptables-legacy-save", "iptables-nft-save"} {
			if out, _ := netlab.Try(cmd); strings.Contains(out, "cali-") {
				return false
			}
		}
		out, _ := netlab.Try("ipset", "list", "-n")
		return !strings.Contains(out, "cali")
	}
	nftGone := func() bool {
		out, _ := netlab.Try("nft", "list", "tables")
		return !strings.Contains(out, "calico")
	}

	// From Felix's nftables state to Ocelot in iptables mode.
	l := start("Disabled")
	netlab.Eventually(t, "Felix's nftables table removed", timeout, nftGone)
	netlab.Eventually(t, "clients -> web:80 connects", timeout, func() bool { return netlab.Connects(cli.NS, addr(web.IP, 80), time.Second) })

	// From here on, probe without a pause.
	var allowedFailed, deniedPassed, allowed, probes atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	probe := func(port int, timeout time.Duration, wrong func(bool) bool, count, bad *atomic.Int64) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if wrong(netlab.Connects(cli.NS, addr(web.IP, port), timeout)) {
				bad.Add(1)
			}
			count.Add(1)
		}
	}
	wg.Go(func() { probe(80, 2*time.Second, func(ok bool) bool { return !ok }, &allowed, &allowedFailed) })
	wg.Go(func() { probe(81, 200*time.Millisecond, func(ok bool) bool { return ok }, &probes, &deniedPassed) })
	probed := func(what string) { // at least a few probes in each phase
		n := probes.Load()
		netlab.Eventually(t, what+": probes ran", timeout, func() bool { return probes.Load() >= n+3 })
	}
	probed("iptables")

	l.stop()
	l = start("Enabled")
	if l.dp.Backend() != BackendNftables {
		t.Fatalf("Enabled gave %s", l.dp.Backend())
	}
	netlab.Eventually(t, "iptables state removed in nftables mode", timeout, iptablesGone)
	probed("nftables")

	l.stop()
	l = start("Auto")
	if l.dp.Backend() != BackendNftables {
		t.Errorf("Auto on a host with the calico nftables table chose %s", l.dp.Backend())
	}
	probed("Auto")

	l.stop()
	l = start("Disabled")
	netlab.Eventually(t, "nftables table removed in iptables mode", timeout, nftGone)
	probed("back to iptables")
	close(stop)
	wg.Wait()
	t.Logf("%d allowed and %d denied probes over four switches", allowed.Load(), probes.Load())
	if n := allowedFailed.Load(); n > 0 {
		t.Errorf("%d of %d allowed connections failed during the switches", n, allowed.Load())
	}
	if n := deniedPassed.Load(); n > 0 {
		t.Errorf("%d of %d denied connections passed during the switches", n, probes.Load())
	}
	l.stop()
}
