package nftables

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"

	"ocelot/contract"
)

// Set types, as calc names them (ipset's names).
const (
	TypeNet       = "hash:net"
	TypeIPAndPort = "hash:ip,port"
)

// MaxSetNameLength keeps set names as Felix's: the ipset limit.
const MaxSetNameLength = 31

// member is a set member as the driver keeps it.
type member struct {
	net   netip.Prefix
	proto uint8
	port  uint16
}

func keyOf(m contract.Member) member {
	p := m.Net
	if m.Proto == 0 {
		p = p.Masked()
	}
	return member{net: p, proto: m.Proto, port: m.Port}
}

func (k member) member() contract.Member {
	return contract.Member{Net: k.net, Proto: k.proto, Port: k.port}
}

func compareMembers(a, b member) int {
	if c := a.net.Addr().Compare(b.net.Addr()); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.net.Bits(), b.net.Bits()), cmp.Compare(a.proto, b.proto), cmp.Compare(a.port, b.port))
}

// dset is a desired set. A hash:net set is an interval set in the
// kernel, which refuses overlapping elements, so its elements are the
// members no other member contains (top); for hash:ip,port, every member.
// While no member contains another (the usual: addresses), top is nil and
// the members are the elements: no second map.
type dset struct {
	spec    SetSpec
	ipPort  bool
	members map[member]struct{}
	top     map[member]struct{} // hash:net with nesting: the elements written
	lengths map[int]int         // hash:net: members per prefix length
	touched map[member]bool     // elements changed since the last write -> present then
	full    bool                // compare every element at the next apply
}

func (d *dset) elems() map[member]struct{} {
	if d.ipPort || d.top == nil {
		return d.members
	}
	return d.top
}

// host reports whether a member is one address.
func host(k member) bool { return k.net.Bits() == k.net.Addr().BitLen() }

// contains reports whether any other member lies within the network k.
func (d *dset) containsOthers(k member) bool {
	if host(k) {
		return false
	}
	for m := range d.members {
		if m != k && m.net.Bits() > k.net.Bits() && k.net.Contains(m.net.Addr()) {
			return true
		}
	}
	return false
}

func (d *dset) touch(k member, present bool) {
	if d.touched == nil {
		d.touched = map[member]bool{}
	}
	if _, seen := d.touched[k]; !seen {
		d.touched[k] = present
	}
}

// covered reports whether another member contains p.
func (d *dset) covered(p netip.Prefix) bool {
	for l, n := range d.lengths {
		if n > 0 && l < p.Bits() {
			if _, ok := d.members[member{net: netip.PrefixFrom(p.Addr(), l).Masked()}]; ok {
				return true
			}
		}
	}
	return false
}

func (d *dset) add(k member) {
	if _, ok := d.members[k]; ok {
		return
	}
	d.members[k] = struct{}{}
	if d.ipPort {
		d.touch(k, false)
		return
	}
	d.lengths[k.net.Bits()]++
	if d.top == nil {
		if !d.covered(k.net) && !d.containsOthers(k) {
			d.touch(k, false) // still no nesting: the members are the elements
			return
		}
		d.top = maps.Clone(d.members) // nesting from now on: keep the elements apart
		delete(d.top, k)
	}
	if d.covered(k.net) {
		return
	}
	d.touch(k, false)
	d.top[k] = struct{}{}
	if k.net.Bits() < k.net.Addr().BitLen() {
		for q := range d.top {
			if q != k && k.net.Contains(q.net.Addr()) && q.net.Bits() > k.net.Bits() {
				d.touch(q, true)
				delete(d.top, q)
			}
		}
	}
}

func (d *dset) remove(k member) {
	if _, ok := d.members[k]; !ok {
		return
	}
	delete(d.members, k)
	if d.ipPort {
		d.touch(k, true)
		return
	}
	d.lengths[k.net.Bits()]--
	if d.top == nil {
		d.touch(k, true) // no member was within it
		return
	}
	if _, ok := d.top[k]; !ok {
		return
	}
	d.touch(k, true)
	delete(d.top, k)
	if k.net.Bits() < k.net.Addr().BitLen() {
		for m := range d.members {
			if k.net.Contains(m.net.Addr()) && !d.covered(m.net) {
				d.touch(m, false)
				d.top[m] = struct{}{}
			}
		}
	}
}

// setType is the nftables key type of a set of a family.
func setType(typ string, family int) (nftables.SetDatatype, bool, bool) {
	addr := nftables.TypeIPAddr
	if family == 6 {
		addr = nftables.TypeIP6Addr
	}
	switch typ {
	case TypeIPAndPort:
		return nftables.MustConcatSetType(addr, nftables.TypeInetProto, nftables.TypeInetService), false, true
	default:
		return addr, true, false
	}
}

// elemsOf renders a member as set elements: a network as its first
// address and, with IntervalEnd, the address after its last (none when it
// reaches the end of the space); an address, protocol and port as one
// concatenated key.
func elemsOf(k member, ipPort bool) []Elem {
	a := k.net.Addr()
	if ipPort {
		key := append(a.AsSlice(), k.proto, 0, 0, 0)
		key = binary.BigEndian.AppendUint16(key, k.port)
		return []Elem{{Key: append(key, 0, 0)}}
	}
	out := []Elem{{Key: a.AsSlice()}}
	if end, ok := afterLast(k.net); ok {
		out = append(out, Elem{Key: end.AsSlice(), IntervalEnd: true})
	}
	return out
}

// afterLast is the first address after a network, if there is one.
func afterLast(p netip.Prefix) (netip.Addr, bool) {
	a := p.Addr()
	var last netip.Addr
	if a.Is4() {
		b := a.As4()
		setHostBits(b[:], p.Bits())
		last = netip.AddrFrom4(b)
	} else {
		b := a.As16()
		setHostBits(b[:], p.Bits())
		last = netip.AddrFrom16(b)
	}
	next := last.Next()
	return next, next.IsValid()
}

// setHostBits sets the bits of an address past a prefix length.
func setHostBits(b []byte, bits int) {
	for i := max(bits, 0); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
}

// parseElems reads a set's elements back into members. ok is false when
// they are not what this driver writes (ranges that are no network, keys
// of the wrong size): the set is then rebuilt.
func parseElems(es []Elem, ipPort bool, family int) (map[member]struct{}, bool) {
	alen := 4
	if family == 6 {
		alen = 16
	}
	out := map[member]struct{}{}
	if ipPort {
		for _, e := range es {
			if len(e.Key) != alen+8 {
				return out, false
			}
			a, _ := netip.AddrFromSlice(e.Key[:alen])
			out[member{net: netip.PrefixFrom(a, a.BitLen()), proto: e.Key[alen], port: binary.BigEndian.Uint16(e.Key[alen+4:])}] = struct{}{}
		}
		return out, true
	}
	s := slices.Clone(es)
	slices.SortStableFunc(s, func(a, b Elem) int {
		if c := bytes.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		// at one key, an end (of the interval before) sorts first
		if a.IntervalEnd != b.IntervalEnd {
			if a.IntervalEnd {
				return -1
			}
			return 1
		}
		return 0
	})
	ok := true
	for i := 0; i < len(s); i++ {
		e := s[i]
		if len(e.Key) != alen {
			return out, false
		}
		if e.IntervalEnd {
			// nft writes an end at the start of the space as a marker.
			if !bytes.Equal(e.Key, make([]byte, alen)) {
				ok = false
			}
			continue
		}
		start, _ := netip.AddrFromSlice(e.Key)
		var end netip.Addr
		hasEnd := i+1 < len(s) && s[i+1].IntervalEnd
		if hasEnd {
			end, _ = netip.AddrFromSlice(s[i+1].Key)
			i++
		}
		p, fits := prefixOf(start, end, hasEnd)
		if !fits {
			ok = false
			continue
		}
		out[member{net: p}] = struct{}{}
	}
	return out, ok
}

// prefixOf is the network [start, end), if it is one.
func prefixOf(start, end netip.Addr, hasEnd bool) (netip.Prefix, bool) {
	for bits := 0; bits <= start.BitLen(); bits++ {
		p := netip.PrefixFrom(start, bits)
		if p.Masked().Addr() != start {
			continue
		}
		e, ok := afterLast(p)
		if ok == hasEnd && (!ok || e == end) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// sets is the named-set half of a Table: calc's IP sets, by kernel name.
type sets struct {
	family int
	want   map[string]*dset
	dirty  map[string]struct{} // names to create, change or remove
}

// Name is the kernel name of a set ID: Felix's ipset name with ':'
// replaced (cali40s-…), at most 31 characters.
func (t *Table) Name(id string) string {
	n := "cali" + strconv.Itoa(t.Family) + "0" + id
	if len(n) > MaxSetNameLength {
		n = n[:MaxSetNameLength]
	}
	return strings.ReplaceAll(n, ":", "-")
}

func (t *Table) ours(m contract.Member) bool { return m.Net.Addr().Unmap().Is6() == (t.Family == 6) }

// Replace sets a set's type and full membership. Members of the other
// family are left out.
func (t *Table) Replace(id, typ string, members []contract.Member) {
	name := t.Name(id)
	kt, interval, ipPort := setType(typ, t.Family)
	d := &dset{spec: SetSpec{Name: name, KeyType: kt, Interval: interval}, ipPort: ipPort,
		members: make(map[member]struct{}, len(members)), full: true}
	if !ipPort {
		d.lengths = map[int]int{}
	}

	sorted := make([]member, 0, len(members))
	for _, m := range members {
		if t.ours(m) {
			sorted = append(sorted, keyOf(m))
		}
	}
	// Shorter prefixes first, so that top is built in one pass.
	slices.SortFunc(sorted, func(a, b member) int { return cmp.Compare(a.net.Bits(), b.net.Bits()) })
	for _, k := range sorted {
		if _, dup := d.members[k]; dup {
			continue
		}
		d.members[k] = struct{}{}
		if !ipPort {
			if d.covered(k.net) && d.top == nil {
				// The first member within another: the elements are the
				// members so far (shorter first: none of them nested).
				d.top = maps.Clone(d.members)
				delete(d.top, k)
			} else if d.top != nil && !d.covered(k.net) {
				d.top[k] = struct{}{}
			}
			d.lengths[k.net.Bits()]++
		}
	}
	if k := t.view.set(name); k != nil && !k.spec.Map && k.elems == nil {
		// The kernel holds what was last written: compare with that.
		if old := t.sets.want[name]; old != nil {
			k.elems = old.written()
		} else {
			t.invalidate() // not known: read it
		}
	}
	t.sets.want[name] = d
	t.sets.dirty[name] = struct{}{}
	t.dirty = true
}

// written is what the kernel holds of the set: its elements less the
// changes not written yet.
func (d *dset) written() map[member]struct{} {
	out := maps.Clone(d.elems())
	for m, was := range d.touched {
		if was {
			out[m] = struct{}{}
		} else {
			delete(out, m)
		}
	}
	return out
}

// AddMembers and RemoveMembers change a set already given to Replace.
func (t *Table) AddMembers(id string, members []contract.Member) { t.change(id, members, true) }

func (t *Table) RemoveMembers(id string, members []contract.Member) { t.change(id, members, false) }

func (t *Table) change(id string, members []contract.Member, add bool) {
	name := t.Name(id)
	d := t.sets.want[name]
	if d == nil {
		t.log.Warn("member change for an unknown set ignored", "set", name)
		return
	}
	for _, m := range members {
		if !t.ours(m) {
			continue
		}
		if add {
			d.add(keyOf(m))
		} else {
			d.remove(keyOf(m))
		}
	}
	t.sets.dirty[name] = struct{}{}
	t.dirty = true
}

// Remove forgets a set; the next apply deletes it, after the rules that
// use it.
func (t *Table) Remove(id string) {
	name := t.Name(id)
	if k, old := t.view.set(name), t.sets.want[name]; k != nil && !k.spec.Map && k.elems == nil && old != nil {
		k.elems = old.written() // a set added back before the next apply is compared with this
	}
	delete(t.sets.want, name)
	t.sets.dirty[name] = struct{}{}
	t.dirty = true
}

// Has reports whether a set is desired.
func (t *Table) Has(id string) bool { _, ok := t.sets.want[t.Name(id)]; return ok }

// Members returns a desired set's members, sorted (tests).
func (t *Table) Members(id string) []contract.Member {
	d := t.sets.want[t.Name(id)]
	if d == nil {
		return nil
	}
	var out []contract.Member
	for _, k := range slices.SortedFunc(maps.Keys(d.members), compareMembers) {
		out = append(out, k.member())
	}
	return out
}

// NumSets is the number of desired sets.
func (t *Table) NumSets() int { return len(t.sets.want) }

// Resync makes the next apply read the kernel and repair any drift.
func (t *Table) Resync() { t.invalidate() }

// Size is the number of a desired set's members.
func (t *Table) Size(id string) (int, bool) {
	d := t.sets.want[t.Name(id)]
	if d == nil {
		return 0, false
	}
	return len(d.members), true
}

// Contains reports whether a desired set matches a packet's address (and,
// for an address-protocol-port set, its protocol and port) as the kernel
// would: a network set by any of its networks, the other exactly.
func (t *Table) Contains(id string, addr netip.Addr, proto uint8, port uint16) bool {
	d := t.sets.want[t.Name(id)]
	if d == nil || addr.Unmap().Is6() != (t.Family == 6) {
		return false
	}
	addr = addr.Unmap()
	if d.ipPort {
		_, ok := d.members[member{net: netip.PrefixFrom(addr, addr.BitLen()), proto: proto, port: port}]
		return ok
	}
	for bits := addr.BitLen(); bits >= 0; bits-- {
		if _, ok := d.members[member{net: netip.PrefixFrom(addr, bits).Masked()}]; ok {
			return true
		}
	}
	return false
}
