package ifacemon

import (
	"context"
	"strings"
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
	go (&Monitor{Wanted: func(n string) bool { return strings.HasPrefix(n, "tap") }}).Run(ctx, out)
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

// TestOnlyWanted follows the interfaces Wanted accepts (here, as for
// host endpoints: no workload prefix, not excluded, a plain name) and
// reports no other.
func TestOnlyWanted(t *testing.T) {
	netlab.Require(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan Event, 64)
	wanted := func(n string) bool { return !strings.HasPrefix(n, "tap") && n != "skip0" && !strings.Contains(n, "+") }
	go (&Monitor{Wanted: wanted}).Run(ctx, out)
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
	for _, l := range [][]string{{"hmon0", "hmon1"}, {"tapmon1", "tapmon2"}, {"skip0", "skip1"}, {"odd+x", "odd1"}} {
		netlab.Run(t, "ip", "link", "add", l[0], "type", "veth", "peer", "name", l[1])
		defer netlab.Try("ip", "link", "del", l[0])
	}
	netlab.Eventually(t, "hmon0 seen down", 5*time.Second, func() bool { read(50 * time.Millisecond); s, ok := state["hmon0"]; return ok && !s.Running })
	netlab.Run(t, "ip", "link", "set", "hmon0", "up")
	netlab.Run(t, "ip", "link", "set", "hmon1", "up")
	netlab.Eventually(t, "hmon0 running", 5*time.Second, func() bool { read(50 * time.Millisecond); return state["hmon0"].Running })
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
