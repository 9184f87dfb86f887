package labelindex

import (
	"math/rand/v2"
	"sort"
	"testing"
)

func TestHandleSetAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var s handleSet
	ref := map[handle]bool{}
	for step := 0; step < 20000; step++ {
		h := handle(rng.IntN(300))
		if step%3000 > 1500 { // phases that grow and shrink across the list/bitmap boundary
			if got, want := s.remove(h), ref[h]; got != want {
				t.Fatalf("step %d remove(%d) = %v want %v", step, h, got, want)
			}
			delete(ref, h)
		} else {
			if got, want := s.add(h), !ref[h]; got != want {
				t.Fatalf("step %d add(%d) = %v want %v", step, h, got, want)
			}
			ref[h] = true
		}
		if s.len() != len(ref) {
			t.Fatalf("step %d len %d want %d", step, s.len(), len(ref))
		}
		if step%97 == 0 {
			var got []int
			s.each(func(x handle) { got = append(got, int(x)) })
			sort.Ints(got)
			var want []int
			for x := range ref {
				want = append(want, int(x))
			}
			sort.Ints(want)
			if len(got) != len(want) {
				t.Fatalf("step %d each gave %d members, want %d", step, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("step %d members differ", step)
				}
				if !s.has(handle(got[i])) {
					t.Fatalf("has(%d) false", got[i])
				}
			}
		}
	}
}
