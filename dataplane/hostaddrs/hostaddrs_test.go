package hostaddrs

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"ocelot/internal/netlab"
)

func TestMain(m *testing.M) { netlab.Main(m) }

func has(l []Addr, ip, iface string) bool {
	return slices.Contains(l, Addr{IP: netip.MustParseAddr(ip), Iface: iface})
}

// The watcher lists the addresses on the host's interfaces and the
// gateways of its routes (in every table), and reports a new snapshot
// soon after either changes.
func TestWatcher(t *testing.T) {
	netlab.Require(t)
	netlab.Run(t, "ip", "link", "add", "upl0", "type", "veth", "peer", "name", "upl1")
	defer netlab.Try("ip", "link", "del", "upl0")
	netlab.Run(t, "ip", "link", "set", "upl0", "up")
	netlab.Run(t, "ip", "link", "set", "upl1", "up")
	netlab.Run(t, "ip", "addr", "add", "198.18.30.1/24", "dev", "upl0")
	netlab.Run(t, "ip", "route", "add", "198.19.0.0/16", "via", "198.18.30.254", "dev", "upl0")
	netlab.Run(t, "ip", "route", "add", "198.19.7.0/24", "via", "198.18.30.253", "dev", "upl0", "table", "7")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan Snapshot, 16)
	go (&Watcher{Timeout: time.Second}).Run(ctx, out)
	var s Snapshot
	next := func(what string, cond func(Snapshot) bool) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case s = <-out:
				if cond(s) {
					return
				}
			case <-deadline:
				t.Fatalf("%s: not reported; last snapshot %+v", what, s)
			}
		}
	}
	next("the initial listing", func(s Snapshot) bool {
		return has(s.Addrs, "198.18.30.1", "upl0") && has(s.Gateways, "198.18.30.254", "upl0") && has(s.Gateways, "198.18.30.253", "upl0")
	})
	netlab.Run(t, "ip", "addr", "add", "198.18.31.1/32", "dev", "upl1")
	netlab.Run(t, "ip", "addr", "add", "2001:db8:31::1/64", "dev", "upl1", "nodad")
	next("new addresses", func(s Snapshot) bool {
		return has(s.Addrs, "198.18.31.1", "upl1") && has(s.Addrs, "2001:db8:31::1", "upl1")
	})
	netlab.Run(t, "ip", "addr", "del", "198.18.31.1/32", "dev", "upl1")
	next("an address gone", func(s Snapshot) bool { return !has(s.Addrs, "198.18.31.1", "upl1") })
	if !has(s.Addrs, "2001:db8:31::1", "upl1") {
		t.Error("the interface's other address went too")
	}
	netlab.Run(t, "ip", "route", "del", "198.19.0.0/16")
	next("a route gone", func(s Snapshot) bool { return !has(s.Gateways, "198.18.30.254", "upl0") })
}
