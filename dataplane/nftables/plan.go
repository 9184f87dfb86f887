package nftables

import (
	"fmt"
	"maps"
	"slices"
)

// maxElemsPerOp bounds the elements of one netlink message.
const maxElemsPerOp = 1000

// plan is a write: the ops of the transaction (and of the set fills split
// off before it), and what the kernel holds once it succeeds.
type plan struct {
	early  [][]Op
	ops    []Op
	setOps int

	chains     map[string]*ChainState // written
	delChains  []string
	sets, maps []string // written
	delSets    []string
	wholeTable bool // a rebuild: the kernel holds exactly the desired state
}

// plan computes the ops that turn the kernel's table, as the view has it,
// into the desired one, looking only at what changed since the last write
// (everything, right after a read). Order within the transaction: create
// sets, maps and chains; change set elements; rewrite chains (flush and
// refill: one chain per policy change); change map elements; delete stale
// chains (all flushed first, then deleted), then stale sets and maps.
func (t *Table) plan() *plan {
	v := t.view
	p := &plan{chains: map[string]*ChainState{}}
	var creates, chainCreates, elems, fills, mapDels, mapAdds, flushStale, delStale, delSets []Op
	newElems := 0

	for _, name := range slices.Sorted(maps.Keys(t.sets.dirty)) {
		d, k := t.sets.want[name], v.sets[name]
		if d == nil {
			if k != nil && !k.spec.Map {
				delSets = append(delSets, Op{Kind: OpDelSet, Set: SetSpec{Name: name}})
				p.delSets = append(p.delSets, name)
			}
			continue
		}
		p.sets = append(p.sets, name)
		switch {
		case k == nil:
			creates = append(creates, Op{Kind: OpAddSet, Set: d.spec})
			add := t.elemOps(OpAddElems, d, slices.SortedFunc(maps.Keys(d.elems()), compareMembers))
			elems = append(elems, add...)
			newElems += len(d.elems())
		case k.spec.Map || !k.spec.Same(d.spec):
			// A set's type cannot change in place, and rules may use it.
			t.log.Info("a set's type differs in the kernel; rebuilding the table", "set", name,
				"kernel", fmt.Sprintf("%+v", k.spec), "want", fmt.Sprintf("%+v", d.spec))
			return t.rebuild()
		case k.unparsed:
			elems = append(elems, Op{Kind: OpFlushSet, Set: d.spec})
			elems = append(elems, t.elemOps(OpAddElems, d, slices.SortedFunc(maps.Keys(d.elems()), compareMembers))...)
		case k.elems != nil:
			var add, del []member
			for _, m := range slices.SortedFunc(maps.Keys(d.elems()), compareMembers) {
				if _, have := k.elems[m]; !have {
					add = append(add, m)
				}
			}
			for _, m := range slices.SortedFunc(maps.Keys(k.elems), compareMembers) {
				if _, want := d.elems()[m]; !want {
					del = append(del, m)
				}
			}
			elems = append(elems, t.elemOps(OpDelElems, d, del)...)
			elems = append(elems, t.elemOps(OpAddElems, d, add)...)
		default:
			var add, del []member
			for _, m := range slices.SortedFunc(maps.Keys(d.touched), compareMembers) {
				_, want := d.elems()[m]
				switch was := d.touched[m]; {
				case want && !was:
					add = append(add, m)
				case was && !want:
					del = append(del, m)
				}
			}
			elems = append(elems, t.elemOps(OpDelElems, d, del)...)
			elems = append(elems, t.elemOps(OpAddElems, d, add)...)
		}
	}
	p.setOps = len(elems)

	for _, name := range slices.Sorted(maps.Keys(t.dirtyMaps)) {
		m, k := t.maps[name], v.sets[name]
		if m == nil {
			if k != nil && k.spec.Map {
				delSets = append(delSets, Op{Kind: OpDelSet, Set: SetSpec{Name: name}})
				p.delSets = append(p.delSets, name)
			}
			continue
		}
		p.maps = append(p.maps, name)
		have := map[string]string{}
		if k == nil {
			creates = append(creates, Op{Kind: OpAddSet, Set: m.spec})
		} else if !k.spec.Map {
			// (A map's key type is not compared: the library reads it back
			// as the data type. Every map of this table maps interface
			// names to verdicts.)
			t.log.Info("a map's type differs in the kernel; rebuilding the table", "map", name,
				"kernel", fmt.Sprintf("%+v", k.spec), "want", fmt.Sprintf("%+v", m.spec))
			return t.rebuild()
		} else {
			have = k.mapElems
		}
		var add, del []Elem
		for _, key := range slices.Sorted(maps.Keys(have)) {
			if v, ok := m.elems[key]; !ok || verdictText(v) != have[key] {
				del = append(del, Elem{Key: []byte(key)})
			}
		}
		for _, key := range slices.Sorted(maps.Keys(m.elems)) {
			if verdictText(m.elems[key]) != have[key] {
				add = append(add, Elem{Key: []byte(key), Verdict: m.elems[key]})
			}
		}
		if len(del) > 0 {
			mapDels = append(mapDels, Op{Kind: OpDelElems, Set: m.spec, Elems: del})
		}
		if len(add) > 0 {
			mapAdds = append(mapAdds, Op{Kind: OpAddElems, Set: m.spec, Elems: add})
		}
	}

	for _, name := range slices.Sorted(maps.Keys(t.dirtyChains)) {
		c, k := t.chains[name], v.chains[name]
		if c == nil {
			if k != nil {
				flushStale = append(flushStale, Op{Kind: OpFlushChain, Chain: name})
				delStale = append(delStale, Op{Kind: OpDelChain, Chain: name})
				p.delChains = append(p.delChains, name)
			}
			continue
		}
		switch {
		case k == nil:
			chainCreates = append(chainCreates, Op{Kind: OpAddChain, Chain: name, Base: c.base})
		case !sameBase(k.Base, c.base):
			chainCreates = append(chainCreates, Op{Kind: OpFlushChain, Chain: name}, Op{Kind: OpDelChain, Chain: name},
				Op{Kind: OpAddChain, Chain: name, Base: c.base})
		case slices.Equal(k.Hashes, c.hashes):
			continue
		default:
			fills = append(fills, Op{Kind: OpFlushChain, Chain: name})
		}
		for i := range c.rules {
			fills = append(fills, Op{Kind: OpAddRule, Chain: name, Rule: &c.rules[i]})
		}
		p.chains[name] = &ChainState{Base: c.base, Hashes: c.hashes}
	}

	var head []Op
	if !t.exists {
		head = []Op{{Kind: OpAddTable}}
	}
	if newElems > maxElemsPerBatch {
		// A large fill (a cold start): the new sets are created and filled
		// in transactions of their own first. No rule uses them yet.
		var setCreates, rest []Op
		for _, o := range creates {
			if o.Set.Map {
				rest = append(rest, o)
			} else {
				setCreates = append(setCreates, o)
			}
		}
		p.early = batches(append(append(head, setCreates...), elems...), maxElemsPerBatch)
		head, creates, elems = nil, rest, nil
		if !t.exists {
			p.early[0] = append([]Op{{Kind: OpAddTable}}, p.early[0]...)
		}
	}
	for _, part := range [][]Op{head, creates, chainCreates, elems, fills, mapDels, mapAdds, flushStale, delStale, delSets} {
		p.ops = append(p.ops, part...)
	}
	return p
}

// batches splits ops into transactions of at most n elements each.
func batches(ops []Op, n int) [][]Op {
	var out [][]Op
	var cur []Op
	count := 0
	for _, o := range ops {
		if count+len(o.Elems) > n && len(cur) > 0 {
			out = append(out, cur)
			cur, count = nil, 0
		}
		cur = append(cur, o)
		count += len(o.Elems)
	}
	if len(cur) > 0 || len(out) == 0 {
		out = append(out, cur)
	}
	return out
}

// elemOps renders members as element ops of at most maxElemsPerOp
// elements each.
func (t *Table) elemOps(kind OpKind, d *dset, ms []member) []Op {
	var out []Op
	var cur []Elem
	for _, m := range ms {
		cur = append(cur, elemsOf(m, d.ipPort)...)
		if len(cur) >= maxElemsPerOp {
			out = append(out, Op{Kind: kind, Set: d.spec, Elems: cur})
			cur = nil
		}
	}
	if len(cur) > 0 {
		out = append(out, Op{Kind: kind, Set: d.spec, Elems: cur})
	}
	return out
}

// rebuild writes the whole desired table in one transaction: add (so that
// the delete cannot fail), delete, and create it again. Packets see the
// old table or the new one.
func (t *Table) rebuild() *plan {
	p := &plan{chains: map[string]*ChainState{}, wholeTable: true}
	p.ops = []Op{{Kind: OpAddTable}, {Kind: OpDelTable}, {Kind: OpAddTable}}
	var elems, fills []Op
	for _, name := range slices.Sorted(maps.Keys(t.sets.want)) {
		d := t.sets.want[name]
		p.ops = append(p.ops, Op{Kind: OpAddSet, Set: d.spec})
		elems = append(elems, t.elemOps(OpAddElems, d, slices.SortedFunc(maps.Keys(d.elems()), compareMembers))...)
		p.sets = append(p.sets, name)
	}
	for _, name := range slices.Sorted(maps.Keys(t.maps)) {
		p.ops = append(p.ops, Op{Kind: OpAddSet, Set: t.maps[name].spec})
	}
	for _, name := range slices.Sorted(maps.Keys(t.chains)) {
		c := t.chains[name]
		p.ops = append(p.ops, Op{Kind: OpAddChain, Chain: name, Base: c.base})
		for i := range c.rules {
			fills = append(fills, Op{Kind: OpAddRule, Chain: name, Rule: &c.rules[i]})
		}
		p.chains[name] = &ChainState{Base: c.base, Hashes: c.hashes}
	}
	p.ops = append(append(p.ops, elems...), fills...)
	for _, name := range slices.Sorted(maps.Keys(t.maps)) {
		m := t.maps[name]
		var add []Elem
		for _, key := range slices.Sorted(maps.Keys(m.elems)) {
			add = append(add, Elem{Key: []byte(key), Verdict: m.elems[key]})
		}
		if len(add) > 0 {
			p.ops = append(p.ops, Op{Kind: OpAddElems, Set: m.spec, Elems: add})
		}
		p.maps = append(p.maps, name)
	}
	p.setOps = len(elems)
	return p
}

// committed records a successful write in the view.
func (t *Table) committed(p *plan) {
	if p.wholeTable || t.view == nil {
		t.view = &view{chains: map[string]*ChainState{}, sets: map[string]*kset{}}
	}
	v := t.view
	for name, c := range p.chains {
		v.chains[name] = c
	}
	for _, name := range p.delChains {
		delete(v.chains, name)
	}
	for _, name := range p.sets {
		d := t.sets.want[name]
		v.sets[name] = &kset{spec: d.spec}
		d.touched, d.full = nil, false
	}
	for _, name := range p.maps {
		m := t.maps[name]
		k := &kset{spec: m.spec, mapElems: map[string]string{}}
		for key, vd := range m.elems {
			k.mapElems[key] = verdictText(vd)
		}
		v.sets[name] = k
	}
	for _, name := range p.delSets {
		delete(v.sets, name)
	}
	t.exists = true
	clear(t.sets.dirty)
	clear(t.dirtyChains)
	clear(t.dirtyMaps)
	t.dirty = false
}
