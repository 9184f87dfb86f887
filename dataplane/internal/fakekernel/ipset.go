package fakekernel

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"ocelot/dataplane/ipsets"
)

// set is one IP set. Members are kept as ipset prints them.
type set struct {
	typ, family string
	maxElem     int
	members     map[string]struct{}
}

// IPSets is the ipset tool and the netlink set operations.
type IPSets struct{ k *Kernel }

// IPSets returns the set tools; they implement the set driver's Runner
// and Netlink.
func (k *Kernel) IPSets() *IPSets { return &IPSets{k} }

// Save prints every set as "ipset save" does.
func (x *IPSets) Save(context.Context) ([]byte, error) {
	x.k.mu.Lock()
	defer x.k.mu.Unlock()
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(x.k.sets)) {
		s := x.k.sets[name]
		fmt.Fprintf(&b, "create %s %s family %s hashsize 1024 maxelem %d bucketsize 12 initval 0x12345678\n", name, s.typ, s.family, s.maxElem)
		for _, m := range slices.Sorted(maps.Keys(s.members)) {
			fmt.Fprintf(&b, "add %s %s\n", name, m)
		}
	}
	return []byte(b.String()), nil
}

// Restore applies "ipset restore -exist" input line by line; an error
// stops it, leaving the lines before in effect.
func (x *IPSets) Restore(_ context.Context, script string) error {
	x.k.mu.Lock()
	defer x.k.mu.Unlock()
	if x.k.FailRestore != nil {
		if err := x.k.FailRestore("ipset", script); err != nil {
			return err
		}
	}
	for i, line := range strings.Split(strings.TrimSuffix(script, "\n"), "\n") {
		if err := x.k.ipsetLine(line); err != nil {
			return fmt.Errorf("ipset restore: line %d (%s): %w", i+1, line, err)
		}
		x.k.record("ipset: %s", line)
	}
	return nil
}

func (k *Kernel) ipsetLine(line string) error {
	f := strings.Fields(line)
	if len(f) < 2 {
		return errors.New("syntax error")
	}
	name := f[1]
	s := k.sets[name]
	switch f[0] {
	case "create":
		if len(f) < 3 {
			return errors.New("syntax error")
		}
		n := &set{typ: f[2], family: "inet", maxElem: 65536, members: map[string]struct{}{}}
		for i := 3; i+1 < len(f); i += 2 {
			switch f[i] {
			case "family":
				n.family = f[i+1]
			case "maxelem":
				n.maxElem, _ = strconv.Atoi(f[i+1])
			}
		}
		if s != nil {
			if s.typ != n.typ || s.family != n.family {
				return errors.New("set with the same name already exists")
			}
			return nil // -exist
		}
		k.sets[name] = n
	case "add", "del":
		if s == nil {
			return errors.New("the set with the given name does not exist")
		}
		if len(f) < 3 {
			return errors.New("syntax error")
		}
		m, err := s.member(f[2])
		if err != nil {
			return err
		}
		if f[0] == "add" {
			if len(s.members) >= s.maxElem {
				return errors.New("hash is full, cannot add more elements")
			}
			s.members[m] = struct{}{}
		} else {
			delete(s.members, m)
		}
	case "flush":
		if s == nil {
			return errors.New("the set with the given name does not exist")
		}
		clear(s.members)
	case "swap":
		o := k.sets[f[len(f)-1]]
		if s == nil || o == nil || len(f) != 3 {
			return errors.New("the set with the given name does not exist")
		}
		if s.typ != o.typ || s.family != o.family {
			return errors.New("the sets cannot be swapped: their type does not match")
		}
		k.sets[name], k.sets[f[2]] = o, s
	case "destroy":
		if s == nil {
			return errors.New("the set with the given name does not exist")
		}
		if k.setInUse(name) {
			return errors.New("set cannot be destroyed: it is in use by a kernel component")
		}
		delete(k.sets, name)
	default:
		return errors.New("unknown command")
	}
	return nil
}

// member normalises a member as ipset prints it, refusing one of the
// other family.
func (s *set) member(text string) (string, error) {
	addr := text
	if s.typ == "hash:ip,port" {
		addr, _, _ = strings.Cut(text, ",")
	}
	p, err := netip.ParsePrefix(addr)
	if err != nil {
		a, err2 := netip.ParseAddr(addr)
		if err2 != nil {
			return "", fmt.Errorf("syntax error: %q is not an address", text)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is6() != (s.family == "inet6") {
		return "", fmt.Errorf("%s is not of family %s", text, s.family)
	}
	if s.typ != "hash:net" {
		return text, nil
	}
	if p.IsSingleIP() {
		return p.Addr().String(), nil
	}
	return p.Masked().String(), nil
}

// Write applies member changes over netlink (-exist semantics), each in
// order; it stops at the first that fails.
func (x *IPSets) Write(changes []ipsets.Change) error {
	x.k.mu.Lock()
	defer x.k.mu.Unlock()
	for _, c := range changes {
		op := "del"
		if c.Add {
			op = "add"
		}
		for _, n := range c.Nets {
			line := fmt.Sprintf("%s %s %s", op, c.Set, n)
			if err := x.k.ipsetLine(line); err != nil {
				return err
			}
			x.k.record("netlink: ipset %s", line)
		}
	}
	return nil
}

// Set returns a set's members as ipset prints them, sorted, and whether
// it exists.
func (k *Kernel) Set(name string) ([]string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.sets[name]
	if s == nil {
		return nil, false
	}
	return slices.Sorted(maps.Keys(s.members)), true
}

// Sets returns the names of every set, sorted.
func (k *Kernel) Sets() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Sorted(maps.Keys(k.sets))
}

// IPSetRestore changes sets as another tool would (tests that tamper).
func (k *Kernel) IPSetRestore(script string) error {
	return k.IPSets().Restore(context.Background(), script)
}

// IPTablesRestore changes tables as another tool would (tests that tamper).
func (k *Kernel) IPTablesRestore(family int, script string) error {
	return k.IPTables(family).Restore(context.Background(), script)
}
