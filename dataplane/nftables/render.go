package nftables

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"ocelot/contract"
	"ocelot/dataplane/ruleset"
)

// HashPrefix starts every rule comment, as in Felix's nftables rules
// ("cali:<hash>; <comments>").
const HashPrefix = "cali:"

// maxComment is nft's limit on a rule comment.
const maxComment = 128

// Registers: reg 1 (16 bytes) for single values; the 4-byte registers
// from 8 on for concatenations (address . protocol . port).
const (
	reg1    = 1
	reg32_0 = 8
)

// Rule is one rendered rule: its expressions, the anonymous sets they
// look up (port lists), its comment (without the hash) and its hash.
// A table keeps its rules compiled: the expressions as netlink attributes,
// as a batch sends them (Exprs nil), unless they look up an anonymous set,
// whose name and ID each batch gives anew.
type Rule struct {
	Exprs   []expr.Any
	Anon    []AnonSet
	Comment string
	Hash    string
	enc     []byte // compiled: NFTA_LIST_ELEM attributes, one per expression
}

// AnonSet is an anonymous constant set a rule looks up: the Lookup at
// Exprs[Index] reads it. A writer creates it in the rule's transaction.
type AnonSet struct {
	Index    int
	KeyType  nftables.SetDatatype
	Interval bool
	Elems    []Elem
}

// Renderer turns the neutral rule model into nftables expressions for one
// family and one layer of the table. Every Ocelot table (raw, mangle, nat,
// filter) is a layer of one nftables table: a chain "cali-FORWARD" of the
// filter layer is "filter-cali-FORWARD", as Felix names it.
type Renderer struct {
	Family  int    // 4 or 6
	Layer   string // raw, mangle, nat or filter
	SetName func(id string) string
}

// ChainName is a chain's name in the table: "<layer>-<name>".
func (r Renderer) ChainName(name string) string { return r.Layer + "-" + name }

func (r Renderer) setName(id string) string {
	if r.SetName == nil {
		return id
	}
	return r.SetName(id)
}

// Rule renders one rule of the model.
func (r Renderer) Rule(x ruleset.Rule) Rule {
	var out Rule
	for _, c := range x.Match {
		r.criterion(&out, c)
	}
	if x.Action != nil {
		out.Exprs = append(out.Exprs, &expr.Counter{})
		out.Exprs = append(out.Exprs, r.action(x.Action)...)
	}
	if len(out.Exprs) == 0 {
		// A rule of comments only: nft needs an expression.
		out.Exprs = append(out.Exprs, &expr.Verdict{Kind: expr.VerdictContinue})
	}
	out.Comment = comment(x.Comment)
	return out
}

// Chain renders a chain's rules and their hashes (chained as Felix's
// are: each covers the chain's name and every rule before it).
func (r Renderer) Chain(name string, rules []ruleset.Rule) []Rule {
	out := make([]Rule, len(rules))
	for i, x := range rules {
		out[i] = r.Rule(x)
	}
	hashRules(r.ChainName(name), r.Family, out)
	return out
}

func hashRules(chain string, family int, rules []Rule) { hashAndCompile(chain, family, rules, false) }

// hashAndCompile hashes the rules and, with compile, replaces the
// expressions of each rule that looks up no anonymous set with their
// encoding (from the bytes just hashed: the batch sends the same).
func hashAndCompile(chain string, family int, rules []Rule, compile bool) {
	sum := sha256.Sum224([]byte(chain))
	prev := sum[:]
	d := sha256.New224()
	head := []byte("-A " + chain + " HASH ")
	var b bytes.Buffer // one for the chain's rules
	var ends []int
	for i := range rules {
		r := &rules[i]
		b.Reset()
		ends = writeRule(&b, family, r, ends[:0])
		d.Reset()
		d.Write(prev)
		d.Write(head)
		d.Write(b.Bytes())
		prev = d.Sum(prev[:0])
		r.Hash = base64.RawURLEncoding.EncodeToString(prev)[:16]
		if compile && len(r.Anon) == 0 && len(ends) == len(r.Exprs) {
			r.enc = encodeExprs(b.Bytes(), ends)
			r.Exprs = nil
		}
	}
}

// encodeExprs turns the hashed form's expressions (each followed by the
// separator, ending at ends[i]) into NFTA_LIST_ELEM attributes.
func encodeExprs(hashed []byte, ends []int) []byte {
	n := 0
	start := 0
	for _, e := range ends {
		n += 4 + (e-start+3)&^3
		start = e + 1
	}
	out := make([]byte, 0, n)
	start = 0
	for _, e := range ends {
		m := hashed[start:e]
		out = binary.NativeEndian.AppendUint16(out, uint16(4+len(m)))
		out = binary.NativeEndian.AppendUint16(out, unix.NFTA_LIST_ELEM|unix.NLA_F_NESTED)
		out = append(out, m...)
		for len(out)%4 != 0 {
			out = append(out, 0)
		}
		start = e + 1
	}
	return out
}

// writeRule writes a rule's canonical form for hashing: its expressions
// as netlink marshals them (each followed by 0xff; where each ends is
// appended to ends, for those that marshal), its anonymous sets and its
// comment.
func writeRule(b *bytes.Buffer, family int, x *Rule, ends []int) []int {
	fam := byte(tableFamily(family))
	for _, e := range x.Exprs {
		m, err := expr.Marshal(fam, e)
		if err != nil {
			fmt.Fprintf(b, "!%T:%v", e, err)
		} else {
			ends = append(ends, b.Len()+len(m))
		}
		b.Write(m)
		b.WriteByte(0xff)
	}
	for _, a := range x.Anon {
		fmt.Fprintf(b, "anon %d %s %v", a.Index, a.KeyType.Name, a.Interval)
		for _, e := range a.Elems {
			b.Write(e.Key)
			if e.IntervalEnd {
				b.WriteByte('e')
			}
		}
	}
	b.WriteString(x.Comment)
	return ends
}

// ruleBytes is a rule's canonical form, as hashed.
func ruleBytes(family int, x *Rule) []byte {
	var b bytes.Buffer
	writeRule(&b, family, x, nil)
	return b.Bytes()
}

// Refs returns the chains a rule jumps or goes to and the named sets it
// looks up (the fake kernel checks them, as the kernel does).
func (x *Rule) Refs() (chains, sets []string) {
	for _, e := range x.Exprs {
		switch v := e.(type) {
		case *expr.Verdict:
			if v.Chain != "" {
				chains = append(chains, v.Chain)
			}
		case *expr.Lookup:
			if v.SetName != "" {
				sets = append(sets, v.SetName)
			}
		}
	}
	// Compiled: an immediate's verdict chain
	// (NFTA_IMMEDIATE_DATA/NFTA_DATA_VERDICT/NFTA_VERDICT_CHAIN), a
	// lookup's set (NFTA_LOOKUP_SET).
	each(x.enc, func(_ uint16, elem []byte) {
		name, data := exprOf(elem)
		each(data, func(t uint16, v []byte) {
			switch {
			case name == "lookup" && t == unix.NFTA_LOOKUP_SET:
				sets = append(sets, strings.TrimRight(string(v), "\x00"))
			case name == "immediate" && t == unix.NFTA_IMMEDIATE_DATA:
				each(v, func(t uint16, v []byte) {
					if t == unix.NFTA_DATA_VERDICT {
						each(v, func(t uint16, v []byte) {
							if t == unix.NFTA_VERDICT_CHAIN {
								chains = append(chains, strings.TrimRight(string(v), "\x00"))
							}
						})
					}
				})
			}
		})
	})
	return chains, sets
}

// exprOf is an encoded expression's name and data.
func exprOf(elem []byte) (name string, data []byte) {
	each(elem, func(t uint16, v []byte) {
		switch t {
		case unix.NFTA_EXPR_NAME:
			name = strings.TrimRight(string(v), "\x00")
		case unix.NFTA_EXPR_DATA:
			data = v
		}
	})
	return name, data
}

// each calls f with the type (flags masked) and payload of each netlink
// attribute in b.
func each(b []byte, f func(typ uint16, v []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		if l < 4 || l > len(b) {
			return
		}
		f(binary.NativeEndian.Uint16(b[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER), b[4:l])
		b = b[min((l+3)&^3, len(b)):]
	}
}

// UserData is what the kernel keeps with a rule: its comment, led by its
// hash.
func (x *Rule) UserData() []byte {
	return userdataComment(joinComment(HashPrefix+x.Hash+";", x.Comment))
}

var unsafeComment = regexp.MustCompile(`[^\w @%+=:,./-]`)

// comment joins a rule's comments as Felix does, with characters outside
// a safe set replaced, within nft's limit (less the hash).
func comment(cs []string) string {
	if len(cs) == 0 {
		return ""
	}
	per := (maxComment - len(HashPrefix) - 18) / len(cs)
	parts := make([]string, len(cs))
	for i, c := range cs {
		c = unsafeComment.ReplaceAllString(c, "_")
		if len(c) > per {
			c = c[:per]
		}
		parts[i] = c
	}
	return strings.Join(parts, " ")
}

func joinComment(hash, c string) string {
	s := hash
	if c != "" {
		s += " " + c
	}
	if len(s) > maxComment {
		s = s[:maxComment]
	}
	return s
}

func tableFamily(v int) nftables.TableFamily {
	if v == 6 {
		return nftables.TableFamilyIPv6
	}
	return nftables.TableFamilyIPv4
}

func (r Renderer) addrLen() uint32 {
	if r.Family == 6 {
		return 16
	}
	return 4
}

// addrOffset is the offset of the source or destination address in the
// network header.
func (r Renderer) addrOffset(d ruleset.Dir) uint32 {
	switch {
	case r.Family == 6 && d == ruleset.Src:
		return 8
	case r.Family == 6:
		return 24
	case d == ruleset.Src:
		return 12
	}
	return 16
}

func portOffset(d ruleset.Dir) uint32 {
	if d == ruleset.Src {
		return 0
	}
	return 2
}

func cmpOp(negate bool) expr.CmpOp {
	if negate {
		return expr.CmpOpNeq
	}
	return expr.CmpOpEq
}

func native32(v uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	return b
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// never is a match that no packet passes.
func never() []expr.Any {
	return []expr.Any{&expr.Immediate{Register: reg1, Data: []byte{0}}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{1}}}
}

// IfName is an interface name as nft compares it: the exact name padded
// with NULs to IFNAMSIZ. A name of 16 bytes or more keeps 16, and as no
// interface's name is that long it matches none.
func IfName(name string) []byte {
	b := make([]byte, 16)
	copy(b, name)
	return b
}

func (r Renderer) ifaceMatch(key expr.MetaKey, name string) []expr.Any {
	data := IfName(name)
	if p, wild := strings.CutSuffix(name, "+"); wild {
		if p == "" {
			return nil // every interface
		}
		data = []byte(p)
		if len(data) > 16 {
			data = data[:16]
		}
	}
	return []expr.Any{&expr.Meta{Key: key, Register: reg1}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: data}}
}

// ct state bits (NF_CT_STATE_*) and the DNAT status bit.
var ctStateBits = map[ruleset.CtState]uint32{
	ruleset.CtInvalid: 1, ruleset.CtEstablished: 2, ruleset.CtRelated: 4,
}

const ctStatusDNAT = 1 << 5 // IPS_DST_NAT

func (r Renderer) criterion(out *Rule, c ruleset.Criterion) {
	add := func(e ...expr.Any) { out.Exprs = append(out.Exprs, e...) }
	switch x := c.(type) {
	case ruleset.Mark:
		add(&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(x.Mask), Xor: native32(0)},
			&expr.Cmp{Op: cmpOp(x.Negate), Register: reg1, Data: native32(x.Value & x.Mask)})
	case ruleset.InInterface:
		add(r.ifaceMatch(expr.MetaKeyIIFNAME, x.Name)...)
	case ruleset.OutInterface:
		add(r.ifaceMatch(expr.MetaKeyOIFNAME, x.Name)...)
	case ruleset.RPFCheckFailed:
		// No route back to the source through the interface it came in
		// on, the packet's mark taken into account.
		add(&expr.Fib{Register: reg1, FlagSADDR: true, FlagMARK: true, FlagIIF: true, ResultOIF: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: native32(0)})
	case ruleset.ConntrackState:
		var bits uint32
		dnat := false
		for _, s := range x.States {
			if s == ruleset.CtDNAT {
				dnat = true
				continue
			}
			b, ok := ctStateBits[s]
			if !ok {
				panic(fmt.Sprintf("nftables: no rendering for conntrack state %q", s))
			}
			bits |= b
		}
		key := expr.CtKeySTATE
		if dnat {
			if bits != 0 {
				panic("nftables: a conntrack match mixing DNAT with states cannot be one rule")
			}
			key, bits = expr.CtKeySTATUS, ctStatusDNAT
		}
		op := expr.CmpOpNeq // any of the bits
		if x.Negate {
			op = expr.CmpOpEq
		}
		add(&expr.Ct{Register: reg1, Key: key},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(bits), Xor: native32(0)},
			&expr.Cmp{Op: op, Register: reg1, Data: native32(0)})
	case ruleset.Protocol:
		add(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, &expr.Cmp{Op: cmpOp(x.Negate), Register: reg1, Data: []byte{x.Proto.Num}})
	case ruleset.Net:
		add(r.netMatch(x.Dir, x.Net, x.Negate)...)
	case ruleset.Addr:
		add(r.netMatch(x.Dir, netip.PrefixFrom(x.Addr, x.Addr.BitLen()), x.Negate)...)
	case ruleset.IPSet:
		add(&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: r.addrOffset(x.Dir), Len: r.addrLen()},
			&expr.Lookup{SourceRegister: reg1, SetName: r.setName(x.ID), Invert: x.Negate})
	case ruleset.IPPortSet:
		// address . protocol . port, each in its own 4-byte registers.
		words := r.addrLen() / 4
		add(&expr.Payload{DestRegister: reg32_0, Base: expr.PayloadBaseNetworkHeader, Offset: r.addrOffset(x.Dir), Len: r.addrLen()},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32_0 + words},
			&expr.Payload{DestRegister: reg32_0 + words + 1, Base: expr.PayloadBaseTransportHeader, Offset: portOffset(x.Dir), Len: 2},
			&expr.Lookup{SourceRegister: reg32_0, SetName: r.setName(x.ID), Invert: x.Negate})
	case ruleset.Ports:
		add(&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: portOffset(x.Dir), Len: 2})
		r.portsMatch(out, x.Ports, x.Negate)
	case ruleset.ICMP:
		proto := byte(unix.IPPROTO_ICMP)
		if x.V6 {
			proto = unix.IPPROTO_ICMPV6
		}
		if x.V6 != (r.Family == 6) {
			// ICMP of the other family: a positive match fails, a negated
			// one holds for every packet of this one.
			if !x.Negate {
				add(never()...)
			}
			return
		}
		data, n := []byte{byte(x.Type.Type)}, uint32(1)
		if x.Type.Code != nil {
			data, n = append(data, byte(*x.Type.Code)), 2
		}
		add(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{proto}},
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: n},
			&expr.Cmp{Op: cmpOp(x.Negate), Register: reg1, Data: data})
	case ruleset.TCPFlags:
		// The flags byte of the TCP header, under the mask.
		add(&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 1, Mask: []byte{x.Mask}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{x.Set & x.Mask}})
	case ruleset.PacketRate:
		add(&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(x.Rate), Unit: expr.LimitTimeSecond, Burst: x.Burst})
	case ruleset.ConnLimit:
		// "ct count over N": the rule's own count of live connections,
		// every address together.
		add(&expr.Connlimit{Count: x.Above, Flags: expr.NFT_CONNLIMIT_F_INV})
	case ruleset.Limit:
		burst := x.Burst
		if burst == 0 {
			burst = 5 // iptables' default, which the model's 0 means
		}
		add(&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(x.Count), Unit: limitUnit(x.Per), Burst: burst})
	default:
		panic(fmt.Sprintf("nftables: no rendering for match criterion %T", c))
	}
}

// netMatch compares the masked address with the network. A network of the
// other family cannot match here: positive, no packet passes; negated,
// every packet does.
func (r Renderer) netMatch(d ruleset.Dir, n netip.Prefix, negate bool) []expr.Any {
	if n.Addr().Unmap().Is4() != (r.Family == 4) {
		if negate {
			return nil
		}
		return never()
	}
	n = netip.PrefixFrom(n.Addr().Unmap(), n.Bits()).Masked()
	load := &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: r.addrOffset(d), Len: r.addrLen()}
	out := []expr.Any{load}
	if n.Bits() < n.Addr().BitLen() {
		out = append(out, &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: r.addrLen(),
			Mask: prefixMask(n.Bits(), int(r.addrLen())), Xor: make([]byte, r.addrLen())})
	}
	return append(out, &expr.Cmp{Op: cmpOp(negate), Register: reg1, Data: n.Addr().AsSlice()})
}

func prefixMask(bits, n int) []byte {
	m := make([]byte, n)
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// portsMatch compares the port in reg 1 with the ranges: one port or one
// range directly, a list through an anonymous set.
func (r Renderer) portsMatch(out *Rule, ports []contract.PortRange, negate bool) {
	merged := mergeRanges(ports)
	switch {
	case len(merged) == 1 && merged[0].First == merged[0].Last:
		out.Exprs = append(out.Exprs, &expr.Cmp{Op: cmpOp(negate), Register: reg1, Data: be16(merged[0].First)})
	case len(merged) == 1:
		op := expr.CmpOpEq
		if negate {
			op = expr.CmpOpNeq
		}
		out.Exprs = append(out.Exprs, &expr.Range{Op: op, Register: reg1, FromData: be16(merged[0].First), ToData: be16(merged[0].Last)})
	default:
		a := AnonSet{Index: len(out.Exprs), KeyType: nftables.TypeInetService}
		for _, p := range merged {
			if p.First != p.Last {
				a.Interval = true
			}
		}
		for _, p := range merged {
			if !a.Interval {
				a.Elems = append(a.Elems, Elem{Key: be16(p.First)})
				continue
			}
			a.Elems = append(a.Elems, Elem{Key: be16(p.First)})
			if p.Last < 65535 {
				a.Elems = append(a.Elems, Elem{Key: be16(p.Last + 1), IntervalEnd: true})
			}
		}
		out.Anon = append(out.Anon, a)
		out.Exprs = append(out.Exprs, &expr.Lookup{SourceRegister: reg1, Invert: negate})
	}
}

// mergeRanges sorts port ranges and merges those that overlap or touch:
// an interval set refuses overlapping elements.
func mergeRanges(ports []contract.PortRange) []contract.PortRange {
	s := slices.Clone(ports)
	slices.SortFunc(s, func(a, b contract.PortRange) int { return int(a.First) - int(b.First) })
	var out []contract.PortRange
	for _, p := range s {
		if p.Last < p.First {
			p.First, p.Last = p.Last, p.First
		}
		if n := len(out); n > 0 && uint32(p.First) <= uint32(out[n-1].Last)+1 {
			out[n-1].Last = max(out[n-1].Last, p.Last)
			continue
		}
		out = append(out, p)
	}
	return out
}

func (r Renderer) action(a ruleset.Action) []expr.Any {
	verdict := func(k expr.VerdictKind, chain string) []expr.Any {
		return []expr.Any{&expr.Verdict{Kind: k, Chain: chain}}
	}
	nfproto := uint32(unix.NFPROTO_IPV4)
	if r.Family == 6 {
		nfproto = unix.NFPROTO_IPV6
	}
	switch x := a.(type) {
	case ruleset.Accept:
		return verdict(expr.VerdictAccept, "")
	case ruleset.Drop:
		return verdict(expr.VerdictDrop, "")
	case ruleset.Return:
		return verdict(expr.VerdictReturn, "")
	case ruleset.Jump:
		return verdict(expr.VerdictJump, r.ChainName(x.Chain))
	case ruleset.Goto:
		return verdict(expr.VerdictGoto, r.ChainName(x.Chain))
	case ruleset.Reject:
		if x.With == ruleset.RejectTCPReset {
			return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}
		}
		// iptables' default: ICMP port unreachable.
		code := uint8(3)
		if r.Family == 6 {
			code = 4
		}
		return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: code}}
	case ruleset.SetMark:
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(^x.Mask), Xor: native32(x.Value & x.Mask)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1}}
	case ruleset.DNAT:
		if x.Addr.Unmap().Is4() != (r.Family == 4) {
			return verdict(expr.VerdictContinue, "")
		}
		out := []expr.Any{&expr.Immediate{Register: reg1, Data: x.Addr.Unmap().AsSlice()}}
		nat := &expr.NAT{Type: expr.NATTypeDestNAT, Family: nfproto, RegAddrMin: reg1, RegAddrMax: reg1}
		if x.Port != 0 {
			out = append(out, &expr.Immediate{Register: 2, Data: be16(x.Port)})
			nat.RegProtoMin, nat.RegProtoMax, nat.Specified = 2, 2, true
		}
		return append(out, nat)
	case ruleset.SNAT:
		if x.Addr.Unmap().Is4() != (r.Family == 4) {
			return verdict(expr.VerdictContinue, "")
		}
		return []expr.Any{&expr.Immediate{Register: reg1, Data: x.Addr.Unmap().AsSlice()},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: nfproto, RegAddrMin: reg1, RegAddrMax: reg1}}
	case ruleset.Log:
		return []expr.Any{&expr.Log{Key: 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_LEVEL, Level: expr.LogLevelNotice,
			Data: []byte(x.Prefix + ": ")}}
	case ruleset.NoTrack:
		return []expr.Any{&expr.Notrack{}}
	case ruleset.NFLOG:
		prefix := unsafePrefix.ReplaceAllString(x.Prefix, "_")
		if len(prefix) > ruleset.MaxNFLOGPrefix {
			prefix = prefix[:ruleset.MaxNFLOGPrefix]
		}
		return []expr.Any{&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_SNAPLEN,
			Group: x.Group, Data: []byte(prefix), Snaplen: x.Size}}
	}
	panic(fmt.Sprintf("nftables: no rendering for action %T", a))
}

// unsafePrefix is what an NFLOG prefix may not hold (the model's rule).
var unsafePrefix = regexp.MustCompile(`[^A-Za-z0-9 ._:/|-]`)

func limitUnit(u ruleset.Unit) expr.LimitTime {
	switch u {
	case ruleset.PerMinute:
		return expr.LimitTimeMinute
	case ruleset.PerHour:
		return expr.LimitTimeHour
	case ruleset.PerDay:
		return expr.LimitTimeDay
	}
	return expr.LimitTimeSecond
}

// DispatchRun splits a dispatch chain's rules into its leading run of
// rules that each match one exact interface name (the input interface, or
// the output one when in is false) and do nothing but a verdict, and the
// rest. The run becomes one verdict-map lookup: the first rule for a name
// wins, as it would in order.
func DispatchRun(rules []ruleset.Rule, in bool) (run map[string]ruleset.Action, rest []ruleset.Rule) {
	run = map[string]ruleset.Action{}
	i := 0
	for ; i < len(rules); i++ {
		x := rules[i]
		if len(x.Match) != 1 || len(x.Comment) != 0 {
			break
		}
		var name string
		switch m := x.Match[0].(type) {
		case ruleset.InInterface:
			if !in {
				return run, rules[i:]
			}
			name = m.Name
		case ruleset.OutInterface:
			if in {
				return run, rules[i:]
			}
			name = m.Name
		default:
			return run, rules[i:]
		}
		if strings.HasSuffix(name, "+") {
			break
		}
		switch x.Action.(type) {
		case ruleset.Goto, ruleset.Jump, ruleset.Accept, ruleset.Drop, ruleset.Return:
		default:
			return run, rules[i:]
		}
		if _, seen := run[name]; !seen {
			run[name] = x.Action
		}
	}
	return run, rules[i:]
}

// verdictOf is a map element's verdict for a dispatch action.
func (r Renderer) verdictOf(a ruleset.Action) *expr.Verdict {
	return r.action(a)[0].(*expr.Verdict)
}
