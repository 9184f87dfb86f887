package calc

import (
	"net/netip"
	"slices"

	"ocelot/contract"
	"ocelot/datastore/resource"
)

// memberItem is anything whose addresses can be IP-set members: an
// endpoint of any host and region, a network set, a host endpoint.
type memberItem struct {
	nets  []netip.Prefix
	ports []resource.NamedPort
	sets  []string // IDs of the sets whose selector matches the item
}

// ipSet is one set that at least one active rule refers to.
type ipSet struct {
	spec    setSpec
	refs    int                          // rule references from active policies and profiles
	indexed bool                         // its selector is in the set index
	members map[contract.Member]int      // member -> contributors
	sent    bool                         // the dataplane has the set
	added   map[contract.Member]struct{} // changes since the last flush (once sent)
	removed map[contract.Member]struct{}
}

// contributions lists the members an item gives the set.
func (s *ipSet) contributions(it *memberItem) []contract.Member {
	if s.spec.typ == contract.IPSetNet {
		out := make([]contract.Member, len(it.nets))
		for i, n := range it.nets {
			out[i] = contract.Member{Net: n}
		}
		return out
	}
	var out []contract.Member
	for _, p := range it.ports {
		if p.Name != s.spec.portName || (s.spec.proto != 0 && p.Protocol.Num != s.spec.proto) {
			continue
		}
		for _, n := range it.nets {
			out = append(out, contract.Member{Net: netip.PrefixFrom(n.Addr(), n.Addr().BitLen()), Proto: p.Protocol.Num, Port: p.Port})
		}
	}
	return out
}

func (s *ipSet) add(m contract.Member) {
	s.members[m]++
	if s.members[m] != 1 || !s.sent {
		return
	}
	if _, ok := s.removed[m]; ok {
		delete(s.removed, m)
	} else {
		s.added[m] = struct{}{}
	}
}

func (s *ipSet) remove(m contract.Member) {
	n, ok := s.members[m]
	if !ok {
		return
	}
	if n > 1 {
		s.members[m] = n - 1
		return
	}
	delete(s.members, m)
	if !s.sent {
		return
	}
	if _, ok := s.added[m]; ok {
		delete(s.added, m)
	} else {
		s.removed[m] = struct{}{}
	}
}

// updateItem adds or changes a member item. Address changes are applied to
// the sets already matching before the label index sees the new labels,
// so that every start and stop uses the item's current addresses.
func (g *Graph) updateItem(key resource.Key, labels map[string]string, parents []string, nets []netip.Prefix, ports []resource.NamedPort) {
	it := g.items[key]
	if it == nil {
		it = &memberItem{}
		g.items[key] = it
	}
	if !slices.Equal(it.nets, nets) || !slices.EqualFunc(it.ports, ports, func(a, b resource.NamedPort) bool { return a == b }) {
		for _, id := range it.sets {
			s := g.sets[id]
			for _, m := range s.contributions(it) {
				s.remove(m)
			}
		}
		it.nets, it.ports = nets, ports
		for _, id := range it.sets {
			s := g.sets[id]
			for _, m := range s.contributions(it) {
				s.add(m)
			}
			g.dirtySets[id] = struct{}{}
		}
	}
	g.setIndex.UpdateItem(key, labels, parents)
}

func (g *Graph) deleteItem(key resource.Key) {
	if g.items[key] == nil {
		return
	}
	g.setIndex.DeleteItem(key)
	delete(g.items, key)
}

func (g *Graph) onSetMatch(id string, key resource.Key) {
	s, it := g.sets[id], g.items[key]
	for _, m := range s.contributions(it) {
		s.add(m)
	}
	it.sets = append(it.sets, id)
	g.dirtySets[id] = struct{}{}
}

func (g *Graph) onSetMatchStopped(id string, key resource.Key) {
	s, it := g.sets[id], g.items[key]
	for _, m := range s.contributions(it) {
		s.remove(m)
	}
	if i := slices.Index(it.sets, id); i >= 0 {
		it.sets = slices.Delete(it.sets, i, i+1)
	}
	g.dirtySets[id] = struct{}{}
}

func (g *Graph) acquireSets(specs []setSpec) {
	for _, sp := range specs {
		s := g.sets[sp.id]
		if s == nil {
			s = &ipSet{spec: sp, members: map[contract.Member]int{}, added: map[contract.Member]struct{}{}, removed: map[contract.Member]struct{}{}}
			g.sets[sp.id] = s
		}
		s.refs++
		g.dirtySets[sp.id] = struct{}{}
	}
}

func (g *Graph) releaseSets(specs []setSpec) {
	for _, sp := range specs {
		g.sets[sp.id].refs--
		g.dirtySets[sp.id] = struct{}{}
	}
}

// settleSets indexes newly referenced sets (their members arrive as match
// events) and unindexes sets nobody refers to any more (their members
// leave the same way; the set itself goes at the next flush).
func (g *Graph) settleSets() {
	for id := range g.dirtySets {
		s := g.sets[id]
		switch {
		case s.refs > 0 && !s.indexed:
			s.indexed = true
			g.numActiveSets++
			g.setIndex.UpdateSelector(id, s.spec.sel)
		case s.refs <= 0 && s.indexed:
			s.indexed = false
			g.numActiveSets--
			g.setIndex.DeleteSelector(id)
		}
	}
}
