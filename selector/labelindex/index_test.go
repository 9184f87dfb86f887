package labelindex

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"

	"ocelot/selector"
)

type pair struct{ sel, item string }

// recorder checks the exactly-once contract as events arrive.
type recorder struct {
	t       testing.TB
	matches map[pair]bool
	events  []string
}

func newRecorder(t testing.TB) (*recorder, *Index[string, string]) {
	r := &recorder{t: t, matches: map[pair]bool{}}
	idx := New(func(s, i string) {
		p := pair{s, i}
		if r.matches[p] {
			t.Fatalf("duplicate start for %v", p)
		}
		r.matches[p] = true
		r.events = append(r.events, "+"+s+"/"+i)
	}, func(s, i string) {
		p := pair{s, i}
		if !r.matches[p] {
			t.Fatalf("stop without start for %v", p)
		}
		delete(r.matches, p)
		r.events = append(r.events, "-"+s+"/"+i)
	})
	return r, idx
}

func (r *recorder) take() []string {
	ev := r.events
	r.events = nil
	sort.Strings(ev)
	return ev
}

func TestBasicLifecycle(t *testing.T) {
	r, idx := newRecorder(t)
	idx.UpdateItem("vm1", map[string]string{"sg-a": "", "ns": "one"}, nil)
	idx.UpdateSelector("A", selector.MustParse("has(sg-a)"))
	idx.UpdateSelector("all", selector.MustParse("all()"))
	idx.UpdateSelector("notB", selector.MustParse("!has(sg-b)"))
	if got, want := r.take(), []string{"+A/vm1", "+all/vm1", "+notB/vm1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	idx.UpdateItem("vm2", map[string]string{"sg-b": ""}, nil)
	if got, want := r.take(), []string{"+all/vm2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	// Moving vm1 from sg-a to sg-b.
	idx.UpdateItem("vm1", map[string]string{"sg-b": "", "ns": "one"}, nil)
	if got, want := r.take(), []string{"-A/vm1", "-notB/vm1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	// Same labels again: nothing.
	idx.UpdateItem("vm1", map[string]string{"sg-b": "", "ns": "one"}, nil)
	if got := r.take(); len(got) != 0 {
		t.Fatalf("unchanged update produced %v", got)
	}
	// Changing a selector reports only the difference.
	idx.UpdateSelector("A", selector.MustParse("has(sg-b) && ns == 'one'"))
	if got, want := r.take(), []string{"+A/vm1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	idx.DeleteItem("vm1")
	if got, want := r.take(), []string{"-A/vm1", "-all/vm1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	idx.DeleteSelector("all")
	if got, want := r.take(), []string{"-all/vm2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	idx.DeleteSelector("all")
	idx.DeleteItem("nope")
	if got := r.take(); len(got) != 0 {
		t.Fatalf("deleting unknowns produced %v", got)
	}
}

func TestParentLabels(t *testing.T) {
	r, idx := newRecorder(t)
	idx.UpdateSelector("gold", selector.MustParse("tier == 'gold'"))
	idx.UpdateItem("vm", map[string]string{"app": "x"}, []string{"p1", "p2"})
	idx.UpdateParent("p2", map[string]string{"tier": "gold"})
	if got, want := r.take(), []string{"+gold/vm"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("inherit from a later parent: got %v want %v", got, want)
	}
	idx.UpdateParent("p1", map[string]string{"tier": "silver"})
	if got, want := r.take(), []string{"-gold/vm"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("earlier parent wins: got %v want %v", got, want)
	}
	idx.UpdateItem("vm", map[string]string{"app": "x", "tier": "gold"}, []string{"p1", "p2"})
	if got, want := r.take(), []string{"+gold/vm"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("own labels win: got %v want %v", got, want)
	}
	idx.UpdateItem("vm", map[string]string{"app": "x"}, []string{"p2"})
	if got := r.take(); len(got) != 0 {
		t.Fatalf("p2 still gives gold: got %v", got)
	}
	idx.DeleteParent("p2")
	if got, want := r.take(), []string{"-gold/vm"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("deleted parent: got %v want %v", got, want)
	}
}

// TestCostDoesNotGrowWithUnrelatedSelectors checks the indexing promise by
// counting evaluations: a label change on one endpoint evaluates only the
// selectors filed under its keys, however many others exist.
func TestCostDoesNotGrowWithUnrelatedSelectors(t *testing.T) {
	for _, n := range []int{100, 10000} {
		_, idx := newRecorder(t)
		for i := 0; i < n; i++ {
			sg := fmt.Sprintf("sg.projectcalico.org/openstack-%d", i)
			idx.UpdateSelector("pol"+fmt.Sprint(i), selector.MustParse(fmt.Sprintf("(has(%s)) && projectcalico.org/namespace == 'R1'", sg)))
			idx.UpdateSelector("rule"+fmt.Sprint(i), selector.MustParse(fmt.Sprintf("(projectcalico.org/namespace == 'R1') && (has(%s))", sg)))
		}
		idx.UpdateSelector("all", selector.All)
		labels := func(sgs ...int) map[string]string {
			m := map[string]string{selector.NamespaceLabel: "R1", "projectcalico.org/orchestrator": "openstack"}
			for _, s := range sgs {
				m[fmt.Sprintf("sg.projectcalico.org/openstack-%d", s)] = ""
			}
			return m
		}
		idx.UpdateItem("vm", labels(1, 2), nil)
		before := idx.Evaluations()
		idx.UpdateItem("vm", labels(2, 3), nil)
		// Candidates: selectors of sg 1, 2, 3 (two each) and all().
		if got := idx.Evaluations() - before; got != 7 {
			t.Errorf("with %d groups a label change evaluated %d selectors, want 7", n, got)
		}
		before = idx.Evaluations()
		idx.UpdateSelector("new", selector.MustParse("(projectcalico.org/namespace == 'R1') && (has(sg.projectcalico.org/openstack-3))"))
		if got := idx.Evaluations() - before; got != 1 {
			t.Errorf("a new selector evaluated %d items, want 1", got)
		}
	}
}

// TestRandomAgainstBruteForce drives random operations in random order and
// compares the index's view with a from-scratch evaluation after each one.
func TestRandomAgainstBruteForce(t *testing.T) {
	selectors := []string{
		"all()", "has(a)", "a == 'x'", "a != 'x'", "!has(b)", "has(a) && has(b)", "has(a) || has(c)",
		"b in {'x', 'y'}", "b not in {'x'}", "c starts with 'x'", "(has(a) && b == 'y') || c == 'x'",
		"projectcalico.org/namespace == 'n1' && has(c)", "has(p) && !has(a)", "p == 'x'",
	}
	keys := []string{"a", "b", "c", "p", selector.NamespaceLabel}
	values := []string{"x", "y", "n1", ""}
	for seed := uint64(1); seed <= 40; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		r, idx := newRecorder(t)
		itemLabels := map[string]map[string]string{}
		itemParents := map[string][]string{}
		parentLabels := map[string]map[string]string{}
		sels := map[string]*selector.Selector{}
		randLabels := func() map[string]string {
			m := map[string]string{}
			for _, k := range keys {
				if rng.IntN(2) == 0 {
					m[k] = values[rng.IntN(len(values))]
				}
			}
			return m
		}
		for step := 0; step < 400; step++ {
			switch op := rng.IntN(7); op {
			case 0, 1:
				id := fmt.Sprint("i", rng.IntN(12))
				l := randLabels()
				var ps []string
				for p := 0; p < rng.IntN(3); p++ {
					ps = append(ps, fmt.Sprint("p", rng.IntN(3)))
				}
				itemLabels[id], itemParents[id] = l, ps
				idx.UpdateItem(id, l, ps)
			case 2:
				id := fmt.Sprint("i", rng.IntN(12))
				delete(itemLabels, id)
				delete(itemParents, id)
				idx.DeleteItem(id)
			case 3, 4:
				id := fmt.Sprint("s", rng.IntN(8))
				s := selector.MustParse(selectors[rng.IntN(len(selectors))])
				sels[id] = s
				idx.UpdateSelector(id, s)
			case 5:
				id := fmt.Sprint("s", rng.IntN(8))
				delete(sels, id)
				idx.DeleteSelector(id)
			case 6:
				id := fmt.Sprint("p", rng.IntN(3))
				if rng.IntN(3) == 0 {
					delete(parentLabels, id)
					idx.DeleteParent(id)
				} else {
					l := randLabels()
					parentLabels[id] = l
					idx.UpdateParent(id, l)
				}
			}
			want := map[pair]bool{}
			for iid, own := range itemLabels {
				eff := map[string]string{}
				ps := itemParents[iid]
				for i := len(ps) - 1; i >= 0; i-- {
					for k, v := range parentLabels[ps[i]] {
						eff[k] = v
					}
				}
				for k, v := range own {
					eff[k] = v
				}
				for sid, s := range sels {
					if s.Evaluate(eff) {
						want[pair{sid, iid}] = true
					}
				}
			}
			if !reflect.DeepEqual(r.matches, want) {
				t.Fatalf("seed %d step %d: index has %d pairs, brute force %d\nindex %v\nwant  %v", seed, step, len(r.matches), len(want), r.matches, want)
			}
			for sid := range sels {
				n := 0
				idx.Matches(sid, func(string) { n++ })
				c := 0
				for p := range want {
					if p.sel == sid {
						c++
					}
				}
				if n != c {
					t.Fatalf("seed %d step %d: Matches(%s) gave %d, want %d", seed, step, sid, n, c)
				}
			}
		}
	}
}
