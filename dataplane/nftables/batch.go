package nftables

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// batch encodes a transaction's ops as one nfnetlink batch, straight into
// one buffer: the messages nft sends for them, attribute for attribute,
// without a per-message allocation. Only the last message asks for an
// acknowledgement and none asks for an echo: the kernel reports every
// message that fails anyway, so one reply per batch tells success, where
// one per message (and an echo of every rule) cost a cold start more than
// the kernel's own work.
type batch struct {
	buf    []byte
	fam    byte
	table  string
	seq    uint32 // of the last message added
	first  uint32 // of the batch-begin message
	setID  uint32 // the last set ID given out in this batch
	opOf   []int  // the op of each message after the batch begin
	lastAt int    // offset of the last op's message, which asks for the ack
}

const (
	nlmsgHdrLen = 16
	nfgenLen    = 4
	nftMsg      = unix.NFNL_SUBSYS_NFTABLES << 8
	flagsReq    = unix.NLM_F_REQUEST
	flagsCreate = unix.NLM_F_REQUEST | unix.NLM_F_CREATE
)

// nftaSetFieldLen is NFTA_SET_FIELD_LEN (linux/netfilter/nf_tables.h).
const nftaSetFieldLen = 1

// begin starts a message; end patches its length.
func (b *batch) begin(typ, flags uint16, family byte, resID uint16) int {
	at := len(b.buf)
	b.seq++
	b.buf = binary.NativeEndian.AppendUint32(b.buf, 0) // length, patched by end
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, flags)
	b.buf = binary.NativeEndian.AppendUint32(b.buf, b.seq)
	b.buf = binary.NativeEndian.AppendUint32(b.buf, 0) // port id: the kernel's
	b.buf = append(b.buf, family, unix.NFNETLINK_V0)
	b.buf = binary.BigEndian.AppendUint16(b.buf, resID)
	return at
}

func (b *batch) end(at int) {
	binary.NativeEndian.PutUint32(b.buf[at:], uint32(len(b.buf)-at))
}

func (b *batch) pad() {
	for len(b.buf)%4 != 0 {
		b.buf = append(b.buf, 0)
	}
}

func (b *batch) attr(typ uint16, data []byte) {
	b.buf = binary.NativeEndian.AppendUint16(b.buf, uint16(4+len(data)))
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = append(b.buf, data...)
	b.pad()
}

func (b *batch) attrStr(typ uint16, s string) {
	b.buf = binary.NativeEndian.AppendUint16(b.buf, uint16(4+len(s)+1))
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = append(b.buf, s...)
	b.buf = append(b.buf, 0)
	b.pad()
}

func (b *batch) attrU32(typ uint16, v uint32) {
	b.buf = binary.NativeEndian.AppendUint16(b.buf, 8)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = binary.BigEndian.AppendUint32(b.buf, v)
}

// nest starts a nested attribute; unnest patches its length.
func (b *batch) nest(typ uint16) int {
	at := len(b.buf)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, 0)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ|unix.NLA_F_NESTED)
	return at
}

func (b *batch) unnest(at int) {
	binary.NativeEndian.PutUint16(b.buf[at:], uint16(len(b.buf)-at))
}

// batchSize estimates the bytes of the ops' batch (a little over, as a
// rule).
func batchSize(ops []Op) int {
	n := 2 * nlmsgHdrLen
	for i := range ops {
		o := &ops[i]
		n += 64 + len(o.Chain) + len(o.Set.Name) + 64*len(o.Elems)
		if r := o.Rule; r != nil {
			n += len(r.enc) + 48*len(r.Exprs) + len(r.Comment) + 32
			for _, a := range r.Anon {
				n += 160 + 48*len(a.Elems)
			}
		}
	}
	return n
}

// reset starts a batch for a table of a family, reusing the buffer.
func (b *batch) reset(family int, table string, seq uint32) {
	b.buf, b.opOf = b.buf[:0], b.opOf[:0]
	b.fam, b.table, b.seq, b.setID = byte(tableFamily(family)), table, seq, 0
	b.first = seq + 1
	b.end(b.begin(unix.NFNL_MSG_BATCH_BEGIN, flagsReq, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES))
}

// finish closes the batch: the last op's message asks for the
// acknowledgement, and the batch end follows.
func (b *batch) finish() {
	if len(b.opOf) > 0 {
		f := binary.NativeEndian.Uint16(b.buf[b.lastAt+6:])
		binary.NativeEndian.PutUint16(b.buf[b.lastAt+6:], f|unix.NLM_F_ACK)
	}
	b.end(b.begin(unix.NFNL_MSG_BATCH_END, flagsReq, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES))
}

// msg starts the message of op i.
func (b *batch) msg(i int, typ, flags uint16) int {
	at := b.begin(nftMsg|typ, flags, b.fam, 0)
	b.opOf = append(b.opOf, i)
	b.lastAt = at
	return at
}

// add encodes op i. A rule's anonymous sets are created (and filled)
// before it, as nft does.
func (b *batch) add(i int, o *Op) error {
	switch o.Kind {
	case OpAddTable, OpDelTable:
		typ, flags := uint16(unix.NFT_MSG_NEWTABLE), uint16(flagsCreate)
		if o.Kind == OpDelTable {
			typ, flags = unix.NFT_MSG_DELTABLE, flagsReq
		}
		at := b.msg(i, typ, flags)
		b.attrStr(unix.NFTA_TABLE_NAME, b.table)
		b.attrU32(unix.NFTA_TABLE_FLAGS, 0)
		b.end(at)
	case OpAddChain:
		at := b.msg(i, unix.NFT_MSG_NEWCHAIN, flagsCreate)
		b.attrStr(unix.NFTA_CHAIN_TABLE, b.table)
		b.attrStr(unix.NFTA_CHAIN_NAME, o.Chain)
		if bc := o.Base; bc != nil {
			h := b.nest(unix.NFTA_CHAIN_HOOK)
			b.attrU32(unix.NFTA_HOOK_HOOKNUM, uint32(bc.Hook))
			b.attrU32(unix.NFTA_HOOK_PRIORITY, uint32(bc.Priority))
			b.unnest(h)
			b.attrU32(unix.NFTA_CHAIN_POLICY, uint32(nftables.ChainPolicyAccept))
			b.attrStr(unix.NFTA_CHAIN_TYPE, string(bc.Type))
		}
		b.end(at)
	case OpFlushChain, OpDelChain:
		typ, tAttr, nAttr := uint16(unix.NFT_MSG_DELRULE), uint16(unix.NFTA_RULE_TABLE), uint16(unix.NFTA_RULE_CHAIN)
		if o.Kind == OpDelChain {
			typ, tAttr, nAttr = unix.NFT_MSG_DELCHAIN, unix.NFTA_CHAIN_TABLE, unix.NFTA_CHAIN_NAME
		}
		at := b.msg(i, typ, flagsReq)
		b.attrStr(tAttr, b.table)
		b.attrStr(nAttr, o.Chain)
		b.end(at)
	case OpAddRule:
		return b.rule(i, o)
	case OpAddSet:
		b.set(i, o.Set, setFlags(o.Set), nil)
	case OpDelSet, OpFlushSet:
		typ := uint16(unix.NFT_MSG_DELSET)
		if o.Kind == OpFlushSet {
			typ = unix.NFT_MSG_DELSETELEM
		}
		at := b.msg(i, typ, flagsReq)
		b.attrStr(unix.NFTA_SET_TABLE, b.table)
		b.attrStr(unix.NFTA_SET_NAME, o.Set.Name)
		b.end(at)
	case OpAddElems:
		b.elems(i, unix.NFT_MSG_NEWSETELEM, o.Set.Name, 0, o.Elems)
	case OpDelElems:
		b.elems(i, unix.NFT_MSG_DELSETELEM, o.Set.Name, 0, o.Elems)
	default:
		return fmt.Errorf("unknown op %d", o.Kind)
	}
	return nil
}

func setFlags(s SetSpec) uint32 {
	var f uint32
	if s.Interval {
		f |= unix.NFT_SET_INTERVAL
	}
	if s.Map {
		f |= unix.NFT_SET_MAP
	}
	if len(nftables.ConcatSetTypeElements(s.KeyType)) > 1 {
		f |= nftables.NFT_SET_CONCAT
	}
	return f
}

// set encodes a set's creation: a named set, a verdict map, or (with
// anon) an anonymous constant set of anon's elements.
func (b *batch) set(i int, s SetSpec, flags uint32, anon *AnonSet) (name string, id uint32) {
	b.setID++
	id, name = b.setID, s.Name
	if anon != nil {
		flags |= unix.NFT_SET_ANONYMOUS | unix.NFT_SET_CONSTANT
		name = "__set%d"
	}
	at := b.msg(i, unix.NFT_MSG_NEWSET, flagsCreate)
	b.attrStr(unix.NFTA_SET_TABLE, b.table)
	b.attrStr(unix.NFTA_SET_NAME, name)
	b.attrU32(unix.NFTA_SET_FLAGS, flags)
	b.attrU32(unix.NFTA_SET_KEY_TYPE, s.KeyType.GetNFTMagic())
	b.attrU32(unix.NFTA_SET_KEY_LEN, s.KeyType.Bytes)
	b.attrU32(unix.NFTA_SET_ID, id)
	if s.Map {
		b.attrU32(unix.NFTA_SET_DATA_TYPE, unix.NFT_DATA_VERDICT)
		b.attrU32(unix.NFTA_SET_DATA_LEN, nftables.TypeVerdict.Bytes)
	}
	if anon != nil {
		d := b.nest(unix.NFTA_SET_DESC)
		b.attrU32(unix.NFTA_SET_DESC_SIZE, uint32(len(anon.Elems)))
		b.unnest(d)
	}
	if types := nftables.ConcatSetTypeElements(s.KeyType); len(types) > 1 {
		d := b.nest(unix.NFTA_SET_DESC)
		c := b.nest(nftables.NFTA_SET_DESC_CONCAT)
		for _, t := range types {
			// Each field's length: a list element (not flagged nested,
			// as nft and the library send it) holding NFTA_SET_FIELD_LEN.
			e := len(b.buf)
			b.buf = binary.NativeEndian.AppendUint16(b.buf, 0)
			b.buf = binary.NativeEndian.AppendUint16(b.buf, unix.NFTA_LIST_ELEM)
			b.attrU32(nftaSetFieldLen, t.Bytes)
			b.unnest(e)
		}
		b.unnest(c)
		b.unnest(d)
	}
	// The key's byte order in the set's user data, as nft writes it: big
	// endian for addresses and ports, host order for interface names
	// (nft then prints a map's keys as names).
	switch {
	case anon != nil || s.Interval:
		b.attr(unix.NFTA_SET_USERDATA, userdata.AppendUint32(nil, userdata.NFTNL_UDATA_SET_KEYBYTEORDER, 2))
	case s.Map:
		b.attr(unix.NFTA_SET_USERDATA, userdata.AppendUint32(nil, userdata.NFTNL_UDATA_SET_KEYBYTEORDER, 1))
	}
	b.end(at)
	if anon != nil && len(anon.Elems) > 0 {
		b.elems(i, unix.NFT_MSG_NEWSETELEM, name, id, anon.Elems)
	}
	return name, id
}

// elems encodes an element list of a set (by name; id for a set of this
// batch that has none yet).
func (b *batch) elems(i int, typ uint16, set string, id uint32, es []Elem) {
	at := b.msg(i, typ, flagsCreate)
	b.attrStr(unix.NFTA_SET_ELEM_LIST_SET, set)
	b.attrU32(unix.NFTA_SET_ELEM_LIST_SET_ID, id)
	b.attrStr(unix.NFTA_SET_ELEM_LIST_TABLE, b.table)
	list := b.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
	for n, e := range es {
		item := b.nest(uint16(n + 1))
		if e.IntervalEnd {
			// (Flagged nested, as the library always sent it.)
			b.buf = binary.NativeEndian.AppendUint16(b.buf, 8)
			b.buf = binary.NativeEndian.AppendUint16(b.buf, unix.NFTA_SET_ELEM_FLAGS|unix.NLA_F_NESTED)
			b.buf = binary.BigEndian.AppendUint32(b.buf, unix.NFT_SET_ELEM_INTERVAL_END)
		}
		k := b.nest(unix.NFTA_SET_ELEM_KEY)
		b.attr(unix.NFTA_DATA_VALUE, e.Key)
		b.unnest(k)
		if v := e.Verdict; v != nil {
			d := b.nest(unix.NFTA_SET_ELEM_DATA)
			vd := b.nest(unix.NFTA_DATA_VERDICT)
			b.attrU32(unix.NFTA_VERDICT_CODE, uint32(v.Kind))
			if v.Chain != "" {
				b.attrStr(unix.NFTA_VERDICT_CHAIN, v.Chain)
			}
			b.unnest(vd)
			b.unnest(d)
		}
		b.unnest(item)
	}
	b.unnest(list)
	b.end(at)
}

// rule encodes a rule appended to its chain, after its anonymous sets.
func (b *batch) rule(i int, o *Op) error {
	r := o.Rule
	type anonRef struct {
		name string
		id   uint32
	}
	var refs map[int]anonRef
	for n := range r.Anon {
		a := &r.Anon[n]
		if a.Index < 0 || a.Index >= len(r.Exprs) {
			return fmt.Errorf("rule of %s: anonymous set of expression %d", o.Chain, a.Index)
		}
		if _, ok := r.Exprs[a.Index].(*expr.Lookup); !ok {
			return fmt.Errorf("rule of %s: expression %d looks up no set", o.Chain, a.Index)
		}
		var flags uint32
		if a.Interval {
			flags = unix.NFT_SET_INTERVAL
		}
		name, id := b.set(i, SetSpec{KeyType: a.KeyType, Interval: a.Interval}, flags, a)
		if refs == nil {
			refs = map[int]anonRef{}
		}
		refs[a.Index] = anonRef{name, id}
	}
	at := b.msg(i, unix.NFT_MSG_NEWRULE, flagsCreate|unix.NLM_F_APPEND)
	b.attrStr(unix.NFTA_RULE_TABLE, b.table)
	b.attrStr(unix.NFTA_RULE_CHAIN, o.Chain)
	list := b.nest(unix.NFTA_RULE_EXPRESSIONS)
	b.buf = append(b.buf, r.enc...)
	for n, e := range r.Exprs {
		if ref, ok := refs[n]; ok {
			l := *e.(*expr.Lookup)
			l.SetName, l.SetID = ref.name, ref.id
			e = &l
		}
		data, err := expr.Marshal(b.fam, e)
		if err != nil {
			return fmt.Errorf("rule of %s: expression %d (%T): %w", o.Chain, n, e, err)
		}
		b.attr(unix.NFTA_LIST_ELEM|unix.NLA_F_NESTED, data)
	}
	b.unnest(list)
	b.attr(unix.NFTA_RULE_USERDATA, r.UserData())
	b.end(at)
	return nil
}
