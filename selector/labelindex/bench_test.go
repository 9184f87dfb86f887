package labelindex

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"ocelot/selector"
)

// OpenStack scale: 100,000 endpoints, each in 1-3 of 5,000
// security groups, across 3 regions; 10,000 selectors has(sg...) (two per
// group: the SG policy's own and a remote-group rule) plus a few all() and
// negated ones.
const (
	benchEndpoints = 100_000
	benchGroups    = 5_000
)

func sgKey(i int) string {
	return fmt.Sprintf("sg.projectcalico.org/openstack-%08d-0000-4000-8000-%012d", i, i)
}

func benchLabels(n int) []map[string]string {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]map[string]string, n)
	for i := range out {
		ns := fmt.Sprintf("openstack-region-Region%d", i%3)
		m := map[string]string{
			selector.NamespaceLabel:                    ns,
			"projectcalico.org/orchestrator":           "openstack",
			"projectcalico.org/openstack-project-id":   fmt.Sprintf("%032x", i%500),
			"projectcalico.org/openstack-network-name": fmt.Sprintf("net-%d", i%200),
		}
		for g := 0; g < 1+rng.IntN(3); g++ {
			m[sgKey(rng.IntN(benchGroups))] = "sg"
		}
		out[i] = m
	}
	return out
}

type benchSel struct {
	id  string
	sel *selector.Selector
}

func benchSelectors() []benchSel {
	var out []benchSel
	for g := 0; g < benchGroups; g++ {
		pol := selector.PolicySelector(selector.MustParse("has("+sgKey(g)+")"), nil, "openstack-region-Region0")
		rule, _ := selector.EntityRuleSelectors(selector.MustParse("has("+sgKey(g)+")"), selector.MustParse("all()"), nil, "openstack-region-Region0")
		out = append(out, benchSel{pol.UniqueID(), pol}, benchSel{rule.UniqueID(), rule})
	}
	for _, s := range []string{"all()", "!has(quarantine)", "projectcalico.org/orchestrator != 'k8s'"} {
		sel := selector.MustParse(s)
		out = append(out, benchSel{sel.UniqueID(), sel})
	}
	return out
}

func itemID(i int) string { return fmt.Sprintf("wep-%06d", i) }

func buildIndex(labels []map[string]string, sels []benchSel) *Index[string, string] {
	var n int
	count := func(string, string) { n++ }
	idx := New(count, count)
	for i, l := range labels {
		idx.UpdateItem(itemID(i), l, nil)
	}
	for _, s := range sels {
		idx.UpdateSelector(s.id, s.sel)
	}
	return idx
}

func BenchmarkBuild(b *testing.B) {
	labels, sels := benchLabels(benchEndpoints), benchSelectors()
	b.ReportAllocs()
	for b.Loop() {
		buildIndex(labels, sels)
	}
}

func BenchmarkBuildSelectorsFirst(b *testing.B) {
	labels, sels := benchLabels(benchEndpoints), benchSelectors()
	b.ReportAllocs()
	for b.Loop() {
		idx := New(func(string, string) {}, func(string, string) {})
		for _, s := range sels {
			idx.UpdateSelector(s.id, s.sel)
		}
		for i, l := range labels {
			idx.UpdateItem(itemID(i), l, nil)
		}
	}
}

// BenchmarkLabelChange moves one endpoint between security groups.
func BenchmarkLabelChange(b *testing.B) {
	labels, sels := benchLabels(benchEndpoints), benchSelectors()
	idx := buildIndex(labels, sels)
	a := map[string]string{selector.NamespaceLabel: "openstack-region-Region1", sgKey(1): "", sgKey(2): ""}
	c := map[string]string{selector.NamespaceLabel: "openstack-region-Region1", sgKey(2): "", sgKey(3): ""}
	evals := idx.Evaluations()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			idx.UpdateItem(itemID(42), a, nil)
		} else {
			idx.UpdateItem(itemID(42), c, nil)
		}
		i++
	}
	b.ReportMetric(float64(idx.Evaluations()-evals)/float64(i), "evals/op")
}

// BenchmarkNewSelector adds and removes a selector for one group.
func BenchmarkNewSelector(b *testing.B) {
	labels, sels := benchLabels(benchEndpoints), benchSelectors()
	idx := buildIndex(labels, sels)
	sel, _ := selector.EntityRuleSelectors(selector.MustParse("has("+sgKey(77)+")"), nil, nil, "openstack-region-Region2")
	b.ReportAllocs()
	for b.Loop() {
		idx.UpdateSelector("new", sel)
		idx.DeleteSelector("new")
	}
}

// BenchmarkMemoryPerEndpoint reports the index's own heap per endpoint
// (the label maps belong to the caller and are allocated beforehand).
func BenchmarkMemoryPerEndpoint(b *testing.B) {
	labels, sels := benchLabels(benchEndpoints), benchSelectors()
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		idx := buildIndex(labels, sels)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/benchEndpoints, "B/endpoint")
		runtime.KeepAlive(idx)
	}
}
