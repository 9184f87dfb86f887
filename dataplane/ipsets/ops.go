package ipsets

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"ocelot/contract"
	"ocelot/internal/cidr"
)

// OpKind is what an Op does.
type OpKind uint8

// The operations the driver writes. Add and Del are idempotent (a present
// member added, or an absent one deleted, is not an error), as with
// "ipset restore -exist".
const (
	OpCreate  OpKind = iota + 1 // create Set with Type and MaxElem
	OpAdd                       // add Member to Set
	OpDel                       // delete Member from Set
	OpSwap                      // exchange the contents of Set and Other
	OpDestroy                   // destroy Set
)

// Op is one change to the kernel's IP sets. The driver plans changes as
// ops; "ipset restore" text is one way to write them (restoreLine), a
// netlink message the other (netlinkEntry).
type Op struct {
	Kind    OpKind
	Set     string
	Type    string          // OpCreate
	MaxElem int             // OpCreate
	Member  contract.Member // OpAdd, OpDel
	Other   string          // OpSwap
}

// restoreLine renders the op as one line of "ipset restore" input. Names
// and members are the driver's own (set names from Name, members from
// parsed addresses), so nothing here can add a line or a field.
func (o Op) restoreLine(family string) string {
	switch o.Kind {
	case OpCreate:
		return fmt.Sprintf("create %s %s family %s maxelem %d\n", o.Set, o.Type, family, o.MaxElem)
	case OpAdd:
		return "add " + o.Set + " " + o.Member.String() + "\n"
	case OpDel:
		return "del " + o.Set + " " + o.Member.String() + "\n"
	case OpSwap:
		return "swap " + o.Set + " " + o.Other + "\n"
	case OpDestroy:
		return "destroy " + o.Set + "\n"
	}
	panic(fmt.Sprintf("ipsets: unknown op kind %d", o.Kind))
}

// memberOfNet reports whether the op is a member change that netlink can
// write (an address or network, no port).
func (o Op) memberOfNet() bool {
	return (o.Kind == OpAdd || o.Kind == OpDel) && o.Member.Proto == 0
}

func render(ops []Op, family string) string {
	var b strings.Builder
	for _, o := range ops {
		b.WriteString(o.restoreLine(family))
	}
	return b.String()
}

// parseMember reads a member as "ipset save" prints it for a set type:
// an address or CIDR (hash:net), or "addr,proto:port" (hash:ip,port).
func parseMember(typ, s string) (contract.Member, bool) {
	switch typ {
	case TypeNet:
		p, err := cidr.Parse(s)
		if err != nil {
			return contract.Member{}, false
		}
		return contract.Member{Net: p.Masked()}, true
	case TypeIPAndPort:
		a, pp, ok := strings.Cut(s, ",")
		if !ok {
			return contract.Member{}, false
		}
		addr, err := netip.ParseAddr(a)
		proto, port, ok2 := strings.Cut(pp, ":")
		n, err2 := strconv.ParseUint(port, 10, 16)
		num, ok3 := protoNumber(proto)
		if err != nil || !ok2 || err2 != nil || !ok3 {
			return contract.Member{}, false
		}
		return contract.Member{Net: netip.PrefixFrom(addr, addr.BitLen()), Proto: num, Port: uint16(n)}, true
	}
	return contract.Member{}, false
}

// protoNumber reads a protocol as ipset prints it: by name for the ones
// it names, by number otherwise.
func protoNumber(s string) (uint8, bool) {
	switch s {
	case "tcp":
		return 6, true
	case "udp":
		return 17, true
	case "sctp":
		return 132, true
	case "udplite":
		return 136, true
	}
	n, err := strconv.ParseUint(s, 10, 8)
	return uint8(n), err == nil
}

// member is a set member as the driver keeps it in its maps: 22 bytes,
// comparable, and free of pointers (a contract.Member is 40 and holds
// one), which matters at a hundred thousand members.
type member struct {
	addr  [16]byte // IPv4 as its IPv4-mapped IPv6 form
	is4   bool
	bits  uint8
	proto uint8
	port  uint16
}

// keyOf is a member's key; a hash:net member's network is masked, as the
// kernel keeps it.
func keyOf(m contract.Member) member {
	p := m.Net
	if m.Proto == 0 {
		p = p.Masked()
	}
	a := p.Addr()
	return member{addr: a.As16(), is4: a.Is4(), bits: uint8(p.Bits()), proto: m.Proto, port: m.Port}
}

func (k member) member() contract.Member {
	a := netip.AddrFrom16(k.addr)
	if k.is4 {
		a = a.Unmap()
	}
	return contract.Member{Net: netip.PrefixFrom(a, int(k.bits)), Proto: k.proto, Port: k.port}
}

// compareKeys orders members for deterministic output.
func compareKeys(a, b member) int {
	if c := bytes.Compare(a.addr[:], b.addr[:]); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.bits, b.bits), cmp.Compare(a.proto, b.proto), cmp.Compare(a.port, b.port))
}
