package labelindex

import (
	"maps"

	"ocelot/selector"
)

// broadKeys are labels nearly every endpoint carries. A selector is filed
// under one of them only when it requires nothing narrower, so that an
// endpoint change does not re-evaluate every namespace-scoped selector.
var broadKeys = map[string]bool{
	selector.NamespaceLabel:          true,
	"projectcalico.org/orchestrator": true,
}

type selEntry[S comparable] struct {
	id      S
	sel     *selector.Selector
	keys    []string // keys the selector is filed under; nil: scanned
	matches handleSet
	stamp   uint64 // dedup marker while collecting candidates
}

type itemEntry[I comparable] struct {
	id      I
	own     map[string]string
	parents []string
	labels  map[string]string // effective: own over parents
}

type parentEntry struct {
	labels   map[string]string
	children map[handle]struct{}
}

// Index matches selectors with IDs of type S against items with IDs of
// type I. The zero value is not usable; call New.
type Index[S, I comparable] struct {
	onStart, onStop func(S, I)

	selHandles map[S]handle
	sels       []*selEntry[S] // by handle; nil when free
	freeSels   []handle

	itemHandles map[I]handle
	items       []*itemEntry[I]
	freeItems   []handle

	parents map[string]*parentEntry

	postings  map[string]*handleSet // label key -> items whose effective labels have it
	selsByKey map[string]*handleSet // label key -> selectors filed under it
	scanned   handleSet             // selectors filed under no key

	stamp uint64
	evals uint64
}

// New returns an empty index that calls onStart and onStop as
// (selector, item) pairs start and stop matching.
func New[S, I comparable](onStart, onStop func(S, I)) *Index[S, I] {
	return &Index[S, I]{
		onStart:     onStart,
		onStop:      onStop,
		selHandles:  map[S]handle{},
		itemHandles: map[I]handle{},
		parents:     map[string]*parentEntry{},
		postings:    map[string]*handleSet{},
		selsByKey:   map[string]*handleSet{},
	}
}

// Evaluations counts selector evaluations so far (for tests and metrics).
func (x *Index[S, I]) Evaluations() uint64 { return x.evals }

// NumItems and NumSelectors report the index's size.
func (x *Index[S, I]) NumItems() int     { return len(x.itemHandles) }
func (x *Index[S, I]) NumSelectors() int { return len(x.selHandles) }

// UpdateSelector adds a selector or replaces the one with the same ID,
// reporting only the pairs whose state changes.
func (x *Index[S, I]) UpdateSelector(id S, sel *selector.Selector) {
	h, exists := x.selHandles[id]
	var e *selEntry[S]
	if exists {
		e = x.sels[h]
		if e.sel.String() == sel.String() {
			e.sel = sel
			return
		}
		x.unfile(h, e)
	} else {
		h = allocate(&x.sels, &x.freeSels)
		e = &selEntry[S]{id: id}
		x.sels[h] = e
		x.selHandles[id] = h
	}
	e.sel = sel
	e.keys = x.chooseKeys(sel)
	x.file(h, e)

	old := e.matches
	e.matches = handleSet{}
	all := sel.IsAll()
	x.forEachCandidateItem(e.keys, func(ih handle) {
		if all {
			e.matches.add(ih)
			return
		}
		x.evals++
		if sel.Evaluate(x.items[ih].labels) {
			e.matches.add(ih)
		}
	})
	old.each(func(ih handle) {
		if !e.matches.has(ih) {
			x.onStop(id, x.items[ih].id)
		}
	})
	e.matches.each(func(ih handle) {
		if !old.has(ih) {
			x.onStart(id, x.items[ih].id)
		}
	})
}

// DeleteSelector removes a selector, reporting the end of all its matches.
func (x *Index[S, I]) DeleteSelector(id S) {
	h, ok := x.selHandles[id]
	if !ok {
		return
	}
	e := x.sels[h]
	e.matches.each(func(ih handle) { x.onStop(id, x.items[ih].id) })
	x.unfile(h, e)
	delete(x.selHandles, id)
	x.sels[h] = nil
	x.freeSels = append(x.freeSels, h)
}

// UpdateItem adds an item or replaces the labels and parents of an
// existing one. The labels map is kept, not copied: the caller must not
// modify it afterwards.
func (x *Index[S, I]) UpdateItem(id I, labels map[string]string, parents []string) {
	h, exists := x.itemHandles[id]
	var e *itemEntry[I]
	if exists {
		e = x.items[h]
		if maps.Equal(e.own, labels) && equalStrings(e.parents, parents) {
			e.own = labels
			if len(parents) == 0 {
				e.labels = labels
			}
			return
		}
		x.setParents(h, e, parents)
	} else {
		h = allocate(&x.items, &x.freeItems)
		e = &itemEntry[I]{id: id}
		x.items[h] = e
		x.itemHandles[id] = h
		x.setParents(h, e, parents)
	}
	e.own = labels
	x.relabel(h, e)
}

// DeleteItem removes an item, reporting the end of all its matches.
func (x *Index[S, I]) DeleteItem(id I) {
	h, ok := x.itemHandles[id]
	if !ok {
		return
	}
	e := x.items[h]
	x.forEachCandidateSel(e.labels, nil, func(sh handle) {
		s := x.sels[sh]
		if s.matches.remove(h) {
			x.onStop(s.id, id)
		}
	})
	for k := range e.labels {
		x.unpost(k, h)
	}
	x.setParents(h, e, nil)
	delete(x.itemHandles, id)
	x.items[h] = nil
	x.freeItems = append(x.freeItems, h)
}

// UpdateParent sets the labels a parent (profile) gives its children.
func (x *Index[S, I]) UpdateParent(id string, labels map[string]string) {
	p := x.parents[id]
	if p == nil {
		p = &parentEntry{children: map[handle]struct{}{}}
		x.parents[id] = p
	} else if maps.Equal(p.labels, labels) {
		return
	}
	p.labels = labels
	for ih := range p.children {
		x.relabel(ih, x.items[ih])
	}
}

// DeleteParent removes a parent's labels from its children.
func (x *Index[S, I]) DeleteParent(id string) {
	p := x.parents[id]
	if p == nil {
		return
	}
	if len(p.children) == 0 {
		delete(x.parents, id)
		return
	}
	p.labels = nil
	for ih := range p.children {
		x.relabel(ih, x.items[ih])
	}
}

// Matches calls f for every item the selector matches now.
func (x *Index[S, I]) Matches(id S, f func(I)) {
	h, ok := x.selHandles[id]
	if !ok {
		return
	}
	x.sels[h].matches.each(func(ih handle) { f(x.items[ih].id) })
}

// relabel recomputes an item's effective labels, keeps the postings in
// step and reports the pairs that change.
func (x *Index[S, I]) relabel(h handle, e *itemEntry[I]) {
	old := e.labels
	e.labels = x.effectiveLabels(e)
	if old != nil && maps.Equal(old, e.labels) {
		return
	}
	for k := range old {
		if _, ok := e.labels[k]; !ok {
			x.unpost(k, h)
		}
	}
	for k := range e.labels {
		if _, ok := old[k]; !ok {
			x.post(k, h)
		}
	}
	x.forEachCandidateSel(old, e.labels, func(sh handle) {
		s := x.sels[sh]
		x.evals++
		if s.sel.Evaluate(e.labels) {
			if s.matches.add(h) {
				x.onStart(s.id, e.id)
			}
		} else if s.matches.remove(h) {
			x.onStop(s.id, e.id)
		}
	})
}

func (x *Index[S, I]) effectiveLabels(e *itemEntry[I]) map[string]string {
	inherited := false
	for _, pid := range e.parents {
		if p := x.parents[pid]; p != nil && len(p.labels) > 0 {
			inherited = true
			break
		}
	}
	if !inherited {
		return e.own
	}
	out := make(map[string]string, len(e.own)+4)
	for i := len(e.parents) - 1; i >= 0; i-- {
		if p := x.parents[e.parents[i]]; p != nil {
			maps.Copy(out, p.labels)
		}
	}
	maps.Copy(out, e.own)
	return out
}

func (x *Index[S, I]) setParents(h handle, e *itemEntry[I], parents []string) {
	for _, pid := range e.parents {
		if p := x.parents[pid]; p != nil {
			delete(p.children, h)
			if len(p.children) == 0 && p.labels == nil {
				delete(x.parents, pid)
			}
		}
	}
	e.parents = append([]string(nil), parents...)
	for _, pid := range parents {
		p := x.parents[pid]
		if p == nil {
			p = &parentEntry{children: map[handle]struct{}{}}
			x.parents[pid] = p
		}
		p.children[h] = struct{}{}
	}
}

// chooseKeys picks the alternative of the selector's required labels with
// the fewest items now, avoiding the broad keys when anything else will do.
func (x *Index[S, I]) chooseKeys(sel *selector.Selector) []string {
	var best []string
	bestCost := -1
	for _, alt := range sel.RequiredLabels() {
		cost := 0
		for _, k := range alt {
			if p := x.postings[k]; p != nil {
				cost += p.len()
			}
			cost++
			if broadKeys[k] {
				cost += 1 << 40
			}
		}
		if bestCost < 0 || cost < bestCost {
			best, bestCost = alt, cost
		}
	}
	return best
}

func (x *Index[S, I]) file(h handle, e *selEntry[S]) {
	if e.keys == nil {
		x.scanned.add(h)
		return
	}
	for _, k := range e.keys {
		addTo(x.selsByKey, k, h)
	}
}

func (x *Index[S, I]) unfile(h handle, e *selEntry[S]) {
	if e.keys == nil {
		x.scanned.remove(h)
		return
	}
	for _, k := range e.keys {
		removeFrom(x.selsByKey, k, h)
	}
}

func (x *Index[S, I]) post(k string, h handle)   { addTo(x.postings, k, h) }
func (x *Index[S, I]) unpost(k string, h handle) { removeFrom(x.postings, k, h) }

func addTo(m map[string]*handleSet, k string, h handle) {
	s := m[k]
	if s == nil {
		s = &handleSet{}
		m[k] = s
	}
	s.add(h)
}

func removeFrom(m map[string]*handleSet, k string, h handle) {
	if s := m[k]; s != nil {
		s.remove(h)
		if s.len() == 0 {
			delete(m, k)
		}
	}
}

// forEachCandidateItem visits the items that hold any of keys, or every
// item when keys is nil. Each item is visited once.
func (x *Index[S, I]) forEachCandidateItem(keys []string, f func(handle)) {
	if keys == nil {
		for _, ih := range x.itemHandles {
			f(ih)
		}
		return
	}
	if len(keys) == 1 {
		if p := x.postings[keys[0]]; p != nil {
			p.each(f)
		}
		return
	}
	var seen handleSet
	for _, k := range keys {
		if p := x.postings[k]; p != nil {
			p.each(func(ih handle) {
				if seen.add(ih) {
					f(ih)
				}
			})
		}
	}
}

// forEachCandidateSel visits, once each, the selectors filed under a key
// of either label map and the scanned selectors.
func (x *Index[S, I]) forEachCandidateSel(a, b map[string]string, f func(handle)) {
	x.stamp++
	visit := func(sh handle) {
		if s := x.sels[sh]; s.stamp != x.stamp {
			s.stamp = x.stamp
			f(sh)
		}
	}
	for _, labels := range [2]map[string]string{a, b} {
		for k := range labels {
			if s := x.selsByKey[k]; s != nil {
				s.each(visit)
			}
		}
	}
	x.scanned.each(visit)
}

func allocate[T any](slots *[]*T, free *[]handle) handle {
	if n := len(*free); n > 0 {
		h := (*free)[n-1]
		*free = (*free)[:n-1]
		return h
	}
	*slots = append(*slots, nil)
	return handle(len(*slots) - 1)
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
