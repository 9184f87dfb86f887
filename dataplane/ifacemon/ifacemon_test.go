package ifacemon

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"ocelot/internal/netlab"
)

func TestMain(m *testing.M) { netlab.Main(m) }

// TestStates follows a workload interface through appear, up, down and
// delete, ignoring interfaces without the prefix.
func TestStates(t *testing.T) {
	netlab.Require(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan Event, 64)
	go (&Monitor{Prefixes: []string{"tap"}}).Run(ctx, out)
	state := map[string]State{}
	synced := false
	read := func(d time.Duration) {
		deadline := time.After(d)
		for {
			select {
			case ev := <-out:
				for _, s := range ev.States {
					if s.Gone {
						delete(state, s.Name)
					} else {
						state[s.Name] = s
					}
				}
				synced = synced || ev.Synced
			case <-deadline:
				return
			}
		}
	}
	read(200 * time.Millisecond)
	if !synced {
		t.Fatal("no initial listing")
	}
	vm := netlab.AddVM(t, nil, "vm", "tapmon0", "fa:16:3e:00:00:07", "198.18.7.7", "")
	netlab.Run(t, "ip", "link", "add", "other0", "type", "veth", "peer", "name", "other1")
	defer netlab.Try("ip", "link", "del", "other0")
	netlab.Eventually(t, "tap seen down", 5*time.Second, func() bool { read(50 * time.Millisecond); s, ok := state["tapmon0"]; return ok && !s.Running })
	vm.PlugIn(t)
	netlab.Eventually(t, "tap running", 5*time.Second, func() bool { read(50 * time.Millisecond); return state["tapmon0"].Running && state["tapmon0"].Up })
	netlab.Run(t, "ip", "link", "set", "tapmon0", "down")
	netlab.Eventually(t, "tap down", 5*time.Second, func() bool { read(50 * time.Millisecond); return !state["tapmon0"].Running })
	netlab.Run(t, "ip", "link", "del", "tapmon0")
	netlab.Eventually(t, "tap gone", 5*time.Second, func() bool { read(50 * time.Millisecond); _, ok := state["tapmon0"]; return !ok })
	if _, ok := state["other0"]; ok {
		t.Error("an interface without the prefix was reported")
	}
}

// TestHostMonitor follows host interfaces and their addresses, leaving out
// workload interfaces, excluded ones and names no rule can match.
func TestHostMonitor(t *testing.T) {
	netlab.Require(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan HostEvent, 64)
	mon := &HostMonitor{WorkloadPrefixes: []string{"tap"}, Exclude: func(n string) bool { return n == "skip0" }}
	go mon.Run(ctx, out)
	state := map[string]HostIface{}
	synced := false
	read := func(d time.Duration) {
		deadline := time.After(d)
		for {
			select {
			case ev := <-out:
				for _, s := range ev.Ifaces {
					if s.Gone {
						delete(state, s.Name)
					} else {
						state[s.Name] = s
					}
				}
				synced = synced || ev.Synced
			case <-deadline:
				return
			}
		}
	}
	has := func(name, addr string) bool {
		return slices.Contains(state[name].Addrs, netip.MustParseAddr(addr))
	}
	read(200 * time.Millisecond)
	if !synced {
		t.Fatal("no initial listing")
	}
	for _, l := range [][]string{{"hmon0", "hmon1"}, {"tapmon1", "tapmon2"}, {"skip0", "skip1"}, {"odd+x", "odd1"}} {
		netlab.Run(t, "ip", "link", "add", l[0], "type", "veth", "peer", "name", l[1])
		defer netlab.Try("ip", "link", "del", l[0])
	}
	netlab.Run(t, "ip", "addr", "add", "198.18.9.1/24", "dev", "hmon0")
	netlab.Run(t, "ip", "addr", "add", "2001:db8:9::1/64", "dev", "hmon0", "nodad")
	netlab.Eventually(t, "hmon0 with both addresses", 5*time.Second, func() bool {
		read(50 * time.Millisecond)
		return has("hmon0", "198.18.9.1") && has("hmon0", "2001:db8:9::1")
	})
	netlab.Run(t, "ip", "link", "set", "hmon0", "up")
	netlab.Run(t, "ip", "link", "set", "hmon1", "up")
	netlab.Eventually(t, "hmon0 running", 5*time.Second, func() bool { read(50 * time.Millisecond); return state["hmon0"].Running })
	netlab.Run(t, "ip", "addr", "del", "198.18.9.1/24", "dev", "hmon0")
	netlab.Eventually(t, "address gone", 5*time.Second, func() bool { read(50 * time.Millisecond); return !has("hmon0", "198.18.9.1") })
	if !has("hmon0", "2001:db8:9::1") {
		t.Error("the other address went too")
	}
	netlab.Run(t, "ip", "link", "del", "hmon0")
	netlab.Eventually(t, "hmon0 gone", 5*time.Second, func() bool { read(50 * time.Millisecond); _, ok := state["hmon0"]; return !ok })
	for _, name := range []string{"tapmon1", "skip0", "odd+x"} {
		if _, ok := state[name]; ok {
			t.Errorf("%s was reported", name)
		}
	}
	if _, ok := state["skip1"]; !ok {
		t.Error("a plain host interface (skip1) was not reported: the check above could not fail")
	}
}
