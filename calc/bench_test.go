package calc

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"ocelot/contract"
	"ocelot/datastore/resource"
)

// An OpenStack cloud at scale: endpoints across 3 regions, 200 of
// them local; one SG policy per group in the local region, each allowing
// its own group, a same-region remote group and a cross-region group
// (namespaceSelector: all()) on TCP 22/80, and all egress.
type cloud struct {
	endpoints, groups, local int
	ups                      []resource.Update
}

var regions = []string{nsOne, nsTwo, "openstack-region-RegionThree"}

func sg(i int) string {
	return fmt.Sprintf("sg.projectcalico.org/openstack-%08d-0000-4000-8000-%012d", i, i)
}

func (c *cloud) endpoint(i int, groups ...int) resource.Update {
	ns := regions[i%3]
	l := map[string]string{nsLabel: ns, "projectcalico.org/orchestrator": "openstack",
		"projectcalico.org/openstack-project-id": fmt.Sprintf("%032x", i%300)}
	for _, g := range groups {
		l[sg(g)] = "sg"
	}
	ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
	if i < c.local {
		return localEP(nsOne, fmt.Sprint("vm", i), fmt.Sprintf("port%07d", i), ip, l)
	}
	return remoteEP(ns, fmt.Sprint("compute", i/40), fmt.Sprint("vm", i), fmt.Sprint("port", i), ip, l)
}

func (c *cloud) policy(g int, port uint16) resource.Update {
	in := []resource.Rule{
		{Action: resource.Allow, Source: resource.EntityRule{Selector: S(has(sg(g)))}},
		{Action: resource.Allow, Protocol: tcp(), Source: resource.EntityRule{Selector: S(has(sg((g + 1) % c.groups)))},
			Destination: resource.EntityRule{Ports: []resource.Port{{First: 22, Last: 22}}}},
		{Action: resource.Allow, Protocol: tcp(), Source: resource.EntityRule{Selector: S(has(sg((g + 2) % c.groups))), NamespaceSelector: S("all()")},
			Destination: resource.EntityRule{Ports: []resource.Port{{First: port, Last: port}}}},
	}
	out := []resource.Rule{{Action: resource.Allow, IPVersion: 4}, {Action: resource.Allow, IPVersion: 6}}
	return policy(npKey(nsOne, fmt.Sprintf("ossg.default.%08d", g)), has(sg(g)), nil, nil, in, out)
}

func newCloud(endpoints, groups, local int) *cloud {
	c := &cloud{endpoints: endpoints, groups: groups, local: local}
	rng := rand.New(rand.NewPCG(5, 6))
	for g := 0; g < groups; g++ {
		c.ups = append(c.ups, c.policy(g, 80))
	}
	for i := 0; i < endpoints; i++ {
		var gs []int
		for n := 0; n < 1+rng.IntN(3); n++ {
			gs = append(gs, rng.IntN(groups))
		}
		c.ups = append(c.ups, c.endpoint(i, gs...))
	}
	return c
}

func (c *cloud) build() (*Graph, []contract.Message) {
	g := New(testConfig, nil)
	for i := 0; i < len(c.ups); i += 500 {
		g.OnUpdates(c.ups[i:min(i+500, len(c.ups))])
	}
	g.OnInSync()
	return g, g.Flush()
}

func BenchmarkInitial(b *testing.B) {
	c := newCloud(100_000, 10_000, 200)
	b.ReportAllocs()
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		g, msgs := c.build()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(len(msgs)), "messages")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "retained-MiB")
		runtime.KeepAlive(g)
	}
}

// small changes on a built cloud, measured one at a time.

// benchChange measures one change at a time; want, if not nil, checks
// that each change produced the output it is meant to cost (a benchmark of
// a change that does nothing measures nothing).
func benchChange(b *testing.B, c *cloud, change func(i int) []resource.Update, want func(i int, msgs []contract.Message) bool) {
	g, _ := c.build()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		g.OnUpdates(change(i))
		if msgs := g.Flush(); want != nil && !want(i, msgs) {
			b.Fatalf("change %d did not produce the expected output: %v", i, msgs)
		}
		i++
	}
}

// A remote endpoint of this region moves between two groups that an
// active local policy's rules refer to (one same-region rule, one
// cross-region rule): each change moves its address from one live set to
// another.
func BenchmarkRemoteLabelChange(b *testing.B) {
	c := newCloud(100_000, 10_000, 200)
	g0 := groupOfLocal(c)
	ep := c.endpoints - c.endpoints%3 - 3 // a remote endpoint in the local region (index % 3 == 0)
	benchChange(b, c, func(i int) []resource.Update {
		return []resource.Update{c.endpoint(ep, (g0+1+i%2)%c.groups)}
	}, func(i int, msgs []contract.Message) bool {
		deltas := 0
		for _, m := range msgs {
			if d, ok := m.(contract.IPSetDelta); ok && len(d.Added)+len(d.Removed) > 0 {
				deltas++
			}
		}
		return deltas == 2 || i == 0 && deltas == 1 // the first change leaves groups no rule uses
	})
}

// An active policy's rule changes port.
func BenchmarkPolicyRuleChange(b *testing.B) {
	c := newCloud(100_000, 10_000, 200)
	g := groupOfLocal(c)
	benchChange(b, c, func(i int) []resource.Update {
		return []resource.Update{c.policy(g, uint16(81-i%2))}
	}, func(_ int, msgs []contract.Message) bool { return len(msgs) > 0 })
}

// A new local endpoint arrives (and, on alternate iterations, leaves).
func BenchmarkNewLocalEndpoint(b *testing.B) {
	c := newCloud(100_000, 10_000, 200)
	extra := &cloud{local: 1 << 30, groups: c.groups}
	benchChange(b, c, func(i int) []resource.Update {
		u := extra.endpoint(c.endpoints+1, 3, 4)
		if i%2 == 1 {
			return []resource.Update{deleted(u.Key)}
		}
		return []resource.Update{u}
	}, func(_ int, msgs []contract.Message) bool { return len(msgs) > 0 })
}

func groupOfLocal(c *cloud) int {
	for _, u := range c.ups {
		if ep, ok := u.Value.(*resource.Endpoint); ok {
			for k := range ep.Labels {
				var g int
				if _, err := fmt.Sscanf(k, "sg.projectcalico.org/openstack-%08d", &g); err == nil {
					return g
				}
			}
		}
	}
	return 0
}

// TestSmallChangeCostIndependentOfScale counts the work of small changes
// (selector evaluations and messages) in a small and a large cloud: they
// must be equal, so the cost follows the change, not the cloud.
func TestSmallChangeCostIndependentOfScale(t *testing.T) {
	work := func(endpoints, groups int) (evals [3]uint64, msgs [3]int) {
		c := newCloud(endpoints, groups, 50)
		g, _ := c.build()
		// Each change touches what a local endpoint's policy uses: a remote
		// endpoint joins the group its cross-region rule allows, the policy's
		// port changes, a new local endpoint joins its group.
		g0 := groupOfLocal(c)
		changes := [][]resource.Update{
			{c.endpoint(endpoints-1, (g0+2)%groups)},
			{c.policy(g0, 81)},
			{(&cloud{local: 1 << 30, groups: groups}).endpoint(endpoints+5, g0)},
		}
		for i, ch := range changes {
			before := g.polIndex.Evaluations() + g.setIndex.Evaluations()
			g.OnUpdates(ch)
			msgs[i] = len(g.Flush())
			evals[i] = g.polIndex.Evaluations() + g.setIndex.Evaluations() - before
		}
		return evals, msgs
	}
	e1, m1 := work(2_000, 200)
	e2, m2 := work(20_000, 2_000)
	names := []string{"remote endpoint label change", "policy rule change", "new local endpoint"}
	for i := range names {
		// Which other groups happen to be active differs between the two
		// random clouds by a selector or two; anything growing with the
		// cloud would differ by hundreds.
		if e2[i] > e1[i]+3 || m2[i] != m1[i] || m1[i] == 0 {
			t.Errorf("%s: small cloud %d evaluations / %d messages, 10x cloud %d / %d", names[i], e1[i], m1[i], e2[i], m2[i])
		}
	}
	t.Logf("evaluations small %v large %v; messages small %v large %v", e1, e2, m1, m2)
}
