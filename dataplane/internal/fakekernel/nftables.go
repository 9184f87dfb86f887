package fakekernel

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"syscall"

	"github.com/google/nftables/expr"

	"ocelot/dataplane/nftables"
)

// nftTable is one nftables table: chains with their rules, and named sets
// and maps with their elements.
type nftTable struct {
	chains map[string]*nftChain
	sets   map[string]*nftSet
}

type nftChain struct {
	base  *nftables.BaseChain
	rules []*nftables.Rule
}

type nftSet struct {
	spec  nftables.SetSpec
	elems []nftables.Elem
}

func (t *nftTable) clone() *nftTable {
	c := &nftTable{chains: make(map[string]*nftChain, len(t.chains)), sets: make(map[string]*nftSet, len(t.sets))}
	for n, ch := range t.chains {
		c.chains[n] = &nftChain{base: ch.base, rules: slices.Clone(ch.rules)}
	}
	for n, s := range t.sets {
		c.sets[n] = &nftSet{spec: s.spec, elems: slices.Clone(s.elems)}
	}
	return c
}

// NFT is the nftables netlink interface of the fake kernel: it implements
// the nftables driver's Runner. Each Run is one transaction: all of it
// applies, or none.
type NFT struct{ k *Kernel }

// NFT returns the kernel's nftables interface.
func (k *Kernel) NFT() *NFT { return &NFT{k} }

func (k *Kernel) nftTables() map[string]*nftTable {
	if k.nft == nil {
		k.nft = map[string]*nftTable{}
	}
	return k.nft
}

func nftKey(family int, table string) string { return fmt.Sprintf("%d/%s", family, table) }

// Read returns a table as the kernel lists it.
func (x *NFT) Read(family int, table string) (*nftables.State, error) {
	x.k.mu.Lock()
	defer x.k.mu.Unlock()
	t := x.k.nftTables()[nftKey(family, table)]
	if t == nil {
		return nil, nil
	}
	st := &nftables.State{Chains: map[string]*nftables.ChainState{}, Sets: map[string]*nftables.SetState{}}
	for n, ch := range t.chains {
		cs := &nftables.ChainState{Base: ch.base}
		for _, r := range ch.rules {
			cs.Hashes = append(cs.Hashes, nftables.HashOf(r.UserData()))
		}
		st.Chains[n] = cs
	}
	for n, s := range t.sets {
		st.Sets[n] = &nftables.SetState{Spec: s.spec, Elems: slices.Clone(s.elems)}
	}
	return st, nil
}

// Exists reports whether the family has the table.
func (x *NFT) Exists(family int, table string) (bool, error) {
	x.k.mu.Lock()
	defer x.k.mu.Unlock()
	return x.k.nftTables()[nftKey(family, table)] != nil, nil
}

// Counters returns the rules of the chains whose names start with prefix,
// with their hashes; the fake passes no packets, so every counter is 0
// unless a test set it with NFTCount.
func (x *NFT) Counters(family int, table, prefix string) (map[string][]nftables.RuleCounter, error) {
	x.k.mu.Lock()
	defer x.k.mu.Unlock()
	t := x.k.nftTables()[nftKey(family, table)]
	out := map[string][]nftables.RuleCounter{}
	if t == nil {
		return out, nil
	}
	for name, ch := range t.chains {
		if len(name) < len(prefix) || name[:len(prefix)] != prefix {
			continue
		}
		cs := make([]nftables.RuleCounter, len(ch.rules))
		for i, r := range ch.rules {
			cs[i] = nftables.RuleCounter{Hash: nftables.HashOf(r.UserData())}
			if n := x.k.nftCounts[r]; n != nil {
				cs[i].Packets, cs[i].Bytes = n[0], n[1]
			}
		}
		out[name] = cs
	}
	return out, nil
}

// NFTCount makes the kernel count packets and bytes on the rule at index
// i of a chain (tests of the counter collector).
func (k *Kernel) NFTCount(family int, table, chain string, i int, packets, bytes uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if t := k.nftTables()[nftKey(family, table)]; t != nil && t.chains[chain] != nil && i < len(t.chains[chain].rules) {
		if k.nftCounts == nil {
			k.nftCounts = map[*nftables.Rule]*[2]uint64{}
		}
		k.nftCounts[t.chains[chain].rules[i]] = &[2]uint64{packets, bytes}
	}
}

// Run applies a transaction.
func (x *NFT) Run(family int, table string, ops []nftables.Op) error {
	x.k.mu.Lock()
	defer x.k.mu.Unlock()
	if x.k.FailNFT != nil {
		if err := x.k.FailNFT(family, ops); err != nil {
			return err
		}
	}
	key := nftKey(family, table)
	all := x.k.nftTables()
	var t *nftTable
	if cur := all[key]; cur != nil {
		t = cur.clone()
	}
	var journal []string
	for i, o := range ops {
		var err error
		t, err = nftApply(t, o)
		if err != nil {
			return fmt.Errorf("nftables transaction: op %d (%v %s%s): %w", i+1, o.Kind, o.Chain, o.Set.Name, err)
		}
		journal = append(journal, fmt.Sprintf("nft%d %v %s%s", family, o.Kind, o.Chain, o.Set.Name))
	}
	// The kernel checks references at commit: what is left must hold.
	if t != nil {
		if err := t.check(); err != nil {
			return fmt.Errorf("nftables transaction: %w", err)
		}
		all[key] = t
	} else {
		delete(all, key)
	}
	for _, j := range journal {
		x.k.record("%s", j)
	}
	return nil
}

var (
	errNoEnt = syscall.ENOENT
	errBusy  = syscall.EBUSY
	errExist = syscall.EEXIST
)

func nftApply(t *nftTable, o nftables.Op) (*nftTable, error) {
	if o.Kind == nftables.OpAddTable {
		if t == nil {
			t = &nftTable{chains: map[string]*nftChain{}, sets: map[string]*nftSet{}}
		}
		return t, nil
	}
	if t == nil {
		return nil, errNoEnt
	}
	switch o.Kind {
	case nftables.OpDelTable:
		return nil, nil
	case nftables.OpAddChain:
		if ch := t.chains[o.Chain]; ch != nil {
			if (ch.base == nil) != (o.Base == nil) || (ch.base != nil && *ch.base != *o.Base) {
				return t, errExist
			}
			return t, nil
		}
		t.chains[o.Chain] = &nftChain{base: o.Base}
	case nftables.OpFlushChain:
		ch := t.chains[o.Chain]
		if ch == nil {
			return t, errNoEnt
		}
		ch.rules = nil
	case nftables.OpDelChain:
		ch := t.chains[o.Chain]
		if ch == nil {
			return t, errNoEnt
		}
		if len(ch.rules) > 0 || t.referenced(o.Chain) {
			return t, errBusy
		}
		delete(t.chains, o.Chain)
	case nftables.OpAddRule:
		ch := t.chains[o.Chain]
		if ch == nil {
			return t, errNoEnt
		}
		chains, sets := o.Rule.Refs()
		for _, c := range chains {
			if t.chains[c] == nil {
				return t, fmt.Errorf("jump to %s: %w", c, errNoEnt)
			}
		}
		for _, s := range sets {
			if t.sets[s] == nil {
				return t, fmt.Errorf("set %s: %w", s, errNoEnt)
			}
		}
		ch.rules = append(ch.rules, o.Rule)
	case nftables.OpAddSet:
		if s := t.sets[o.Set.Name]; s != nil {
			if !s.spec.Same(o.Set) {
				return t, errExist
			}
			return t, nil
		}
		t.sets[o.Set.Name] = &nftSet{spec: o.Set}
	case nftables.OpDelSet:
		if t.sets[o.Set.Name] == nil {
			return t, errNoEnt
		}
		if t.setUsed(o.Set.Name) {
			return t, errBusy
		}
		delete(t.sets, o.Set.Name)
	case nftables.OpFlushSet:
		s := t.sets[o.Set.Name]
		if s == nil {
			return t, errNoEnt
		}
		s.elems = nil
	case nftables.OpAddElems:
		s := t.sets[o.Set.Name]
		if s == nil {
			return t, errNoEnt
		}
		for _, e := range o.Elems {
			if e.Verdict != nil && (e.Verdict.Kind == expr.VerdictJump || e.Verdict.Kind == expr.VerdictGoto) && t.chains[e.Verdict.Chain] == nil {
				return t, fmt.Errorf("map element to %s: %w", e.Verdict.Chain, errNoEnt)
			}
			if i := s.find(e); i >= 0 {
				if s.spec.Map {
					return t, errExist // a map key takes one verdict
				}
				continue
			}
			s.elems = append(s.elems, e)
		}
		if s.spec.Interval && s.overlaps() {
			return t, fmt.Errorf("set %s: overlapping intervals: %w", o.Set.Name, errExist)
		}
	case nftables.OpDelElems:
		s := t.sets[o.Set.Name]
		if s == nil {
			return t, errNoEnt
		}
		for _, e := range o.Elems {
			i := s.find(e)
			if i < 0 {
				return t, fmt.Errorf("set %s element %x: %w", o.Set.Name, e.Key, errNoEnt)
			}
			s.elems = slices.Delete(s.elems, i, i+1)
		}
	default:
		return t, errors.New("unknown operation")
	}
	return t, nil
}

func (s *nftSet) find(e nftables.Elem) int {
	return slices.IndexFunc(s.elems, func(x nftables.Elem) bool { return bytes.Equal(x.Key, e.Key) && x.IntervalEnd == e.IntervalEnd })
}

// overlaps reports whether two intervals of the set overlap.
func (s *nftSet) overlaps() bool {
	sorted := slices.Clone(s.elems)
	slices.SortStableFunc(sorted, func(a, b nftables.Elem) int {
		if c := bytes.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		if a.IntervalEnd != b.IntervalEnd {
			if a.IntervalEnd {
				return -1
			}
			return 1
		}
		return 0
	})
	open := false
	for _, e := range sorted {
		if e.IntervalEnd {
			open = false
			continue
		}
		if open {
			return true
		}
		open = true
	}
	return false
}

func (t *nftTable) referenced(chain string) bool {
	for _, ch := range t.chains {
		for _, r := range ch.rules {
			if chains, _ := r.Refs(); slices.Contains(chains, chain) {
				return true
			}
		}
	}
	for _, s := range t.sets {
		for _, e := range s.elems {
			if e.Verdict != nil && e.Verdict.Chain == chain {
				return true
			}
		}
	}
	return false
}

func (t *nftTable) setUsed(name string) bool {
	for _, ch := range t.chains {
		for _, r := range ch.rules {
			if _, sets := r.Refs(); slices.Contains(sets, name) {
				return true
			}
		}
	}
	return false
}

// check verifies what a transaction leaves: every jump and lookup has its
// target.
func (t *nftTable) check() error {
	for n, ch := range t.chains {
		for _, r := range ch.rules {
			chains, sets := r.Refs()
			for _, c := range chains {
				if t.chains[c] == nil {
					return fmt.Errorf("%s jumps to missing %s: %w", n, c, errNoEnt)
				}
			}
			for _, s := range sets {
				if t.sets[s] == nil {
					return fmt.Errorf("%s looks up missing %s: %w", n, s, errNoEnt)
				}
			}
		}
	}
	return nil
}

// NFTChains returns the names of a table's chains, sorted (nil: no
// table).
func (k *Kernel) NFTChains(family int, table string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.nftTables()[nftKey(family, table)]
	if t == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(t.chains))
}

// NFTRules returns a chain's rules as comments ("cali:<hash>; ..."), and
// whether the chain exists.
func (k *Kernel) NFTRules(family int, table, chain string) ([]string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.nftTables()[nftKey(family, table)]
	if t == nil || t.chains[chain] == nil {
		return nil, false
	}
	var out []string
	for _, r := range t.chains[chain].rules {
		out = append(out, string(r.UserData()))
	}
	return out, true
}

// NFTElems returns the number of elements of a set or map, and whether it
// exists.
func (k *Kernel) NFTElems(family int, table, set string) (int, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.nftTables()[nftKey(family, table)]
	if t == nil || t.sets[set] == nil {
		return 0, false
	}
	return len(t.sets[set].elems), true
}

// NFTTamper changes a table as another tool would: f gets the ops' target
// as a Runner transaction.
func (k *Kernel) NFTTamper(family int, table string, ops ...nftables.Op) error {
	return k.NFT().Run(family, table, ops)
}
