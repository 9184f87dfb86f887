package conntrack

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"ocelot/dataplane/internal/nlsock"
)

// PeersTable is the nftables table, one per IP family ("ip" and "ip6"),
// in which the kernel records the far ends of workloads' new flows.
const PeersTable = "ocelot-peers"

// PeersSize bounds each family's record. A record that overflows says so
// (its miss set is not empty) and is not used until it is rebuilt.
const PeersSize = 65536

// NftPeers keeps the record in nftables, whichever backend enforces
// policy: its base chains run after every filter table (priority 100 on
// the forward, input and output hooks), so they see the first packet of
// each flow that was let through, and add the address at the far end —
// the destination of what a workload interface sends, the source of what
// it receives — to a set. An address the set cannot take is put in a
// small "miss" set instead, which marks the record incomplete.
type NftPeers struct {
	Prefixes []string // workload interface prefixes ("tap")
	IPv6     bool     // keep a record for IPv6 too
	Size     uint32   // elements per family (0: PeersSize)

	raw *nlsock.Raw // look-ups (the Forgetter's goroutine only)
}

const (
	peersSet = "peers"
	missSet  = "miss"
	missSize = 16
)

// families are the nftables families the record covers.
func (p *NftPeers) families() []nftables.TableFamily {
	if p.IPv6 {
		return []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6}
	}
	return []nftables.TableFamily{nftables.TableFamilyIPv4}
}

func familyOf(a netip.Addr) nftables.TableFamily {
	if a.Is4() {
		return nftables.TableFamilyIPv4
	}
	return nftables.TableFamilyIPv6
}

// Reset implements Peers: each family's table is replaced by an empty one,
// in one transaction (add, delete, add: the idiom that works whether or
// not it existed).
func (p *NftPeers) Reset(context.Context) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("opening nftables: %w", err)
	}
	for _, fam := range p.families() {
		t := &nftables.Table{Name: PeersTable, Family: fam}
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
		if err := p.build(c, t); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("writing the nftables tables %q: %w", PeersTable, err)
	}
	return nil
}

// build adds the sets and base chains of one family's table.
func (p *NftPeers) build(c *nftables.Conn, t *nftables.Table) error {
	keyType := nftables.TypeIPAddr
	if t.Family == nftables.TableFamilyIPv6 {
		keyType = nftables.TypeIP6Addr
	}
	size := p.Size
	if size == 0 {
		size = PeersSize
	}
	peers := &nftables.Set{Table: t, Name: peersSet, KeyType: keyType, Dynamic: true, Size: size}
	miss := &nftables.Set{Table: t, Name: missSet, KeyType: keyType, Dynamic: true, Size: missSize}
	for _, s := range []*nftables.Set{peers, miss} {
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("adding set %s: %w", s.Name, err)
		}
	}
	hooks := []struct {
		name string
		hook *nftables.ChainHook
		in   bool // the workload interface is the input one (its far end is the destination)
	}{{"forward", nftables.ChainHookForward, true}, {"forward", nftables.ChainHookForward, false},
		{"input", nftables.ChainHookInput, true}, {"output", nftables.ChainHookOutput, false}}
	chains := map[string]*nftables.Chain{}
	for _, h := range hooks {
		ch := chains[h.name]
		if ch == nil {
			accept := nftables.ChainPolicyAccept
			ch = c.AddChain(&nftables.Chain{Name: h.name, Table: t, Type: nftables.ChainTypeFilter, Hooknum: h.hook,
				Priority: nftables.ChainPriorityRef(100), Policy: &accept})
			chains[h.name] = ch
		}
		for _, prefix := range p.Prefixes {
			head := farEnd(t.Family, prefix, h.in)
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(head,
				&expr.Dynset{SrcRegKey: 1, SetName: peersSet, Operation: uint32(unix.NFT_DYNSET_OP_ADD)})})
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(farEnd(t.Family, prefix, h.in),
				&expr.Lookup{SourceRegister: 1, SetName: peersSet, Invert: true},
				&expr.Dynset{SrcRegKey: 1, SetName: missSet, Operation: uint32(unix.NFT_DYNSET_OP_ADD)})})
		}
	}
	return nil
}

// farEnd matches the first packet of a flow through a workload interface
// (the input one, or the output one) and loads the address at its far
// end into register 1.
func farEnd(fam nftables.TableFamily, prefix string, in bool) []expr.Any {
	key, off := expr.MetaKeyOIFNAME, uint32(12) // the source
	if in {
		key, off = expr.MetaKeyIIFNAME, 16 // the destination
	}
	alen := uint32(4)
	if fam == nftables.TableFamilyIPv6 {
		alen, off = 16, map[bool]uint32{true: 24, false: 8}[in]
	}
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(prefix)}, // a prefix: the name's first bytes
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: alen},
	}
}

// Add implements Peers.
func (p *NftPeers) Add(_ context.Context, addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return nil
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("opening nftables: %w", err)
	}
	byFamily := map[nftables.TableFamily][]nftables.SetElement{}
	for _, a := range addrs {
		byFamily[familyOf(a)] = append(byFamily[familyOf(a)], nftables.SetElement{Key: a.AsSlice()})
	}
	for fam, es := range byFamily {
		s := &nftables.Set{Table: &nftables.Table{Name: PeersTable, Family: fam}, Name: peersSet}
		for len(es) > 0 {
			n := min(len(es), 4096)
			if err := c.SetAddElements(s, es[:n]); err != nil {
				return err
			}
			es = es[n:]
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("recording %d addresses in %q: %w", len(addrs), PeersTable, err)
	}
	return nil
}

// Complete implements Peers: no family's miss set holds an address (one
// dump of each, a set of at most a few elements).
func (p *NftPeers) Complete(context.Context) (bool, error) {
	r, err := p.socket()
	if err != nil {
		return false, err
	}
	for _, fam := range p.families() {
		p.request(r, unix.NLM_F_DUMP, uint8(fam), nil)
		empty := true
		err := p.exchange(r, func(typ uint16, payload []byte) {
			if typ == subsysNFTables<<8|msgNewSetElem && hasElements(payload) {
				empty = false
			}
		}, func(_ uint32, errno syscall.Errno) error {
			if errno != 0 {
				return fmt.Errorf("reading %q's miss set: %w", PeersTable, errno)
			}
			return nil
		})
		if err != nil || !empty {
			return false, err
		}
	}
	return true, nil
}

// Seen implements Peers: one look-up per address, answered from the
// set's hash (no dump of the set), all sent in one write.
func (p *NftPeers) Seen(_ context.Context, addrs []netip.Addr) (bool, error) {
	r, err := p.socket()
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if !a.Is4() && !p.IPv6 {
			return true, nil // no record of this family: it may have had flows
		}
	}
	for _, a := range addrs {
		p.request(r, unix.NLM_F_ACK, uint8(familyOf(a)), a.AsSlice())
	}
	seen := false
	err = p.exchange(r, nil, func(_ uint32, errno syscall.Errno) error {
		switch errno {
		case 0:
			seen = true
		case syscall.ENOENT:
		default:
			return fmt.Errorf("looking an address up in %q: %w", PeersTable, errno)
		}
		return nil
	})
	return seen, err
}

// nftables' netlink numbers (linux/netfilter/nf_tables.h) for the set
// element requests the library does not offer: a look-up of one element,
// and a dump answered without building every element as a Go value.
const (
	subsysNFTables    = 10
	msgNewSetElem     = 12
	msgGetSetElem     = 13
	attrElemListTable = 1
	attrElemListSet   = 2
	attrElemListElems = 3
	attrListElem      = 1
	attrSetElemKey    = 1
	attrDataValue     = 1
	nfgenmsgSize      = 4
)

// socket is the record's netlink socket, opened at first use (on the
// Forgetter's goroutine, in the agent's namespace) and kept.
func (p *NftPeers) socket() (*nlsock.Raw, error) {
	if p.raw == nil {
		raw, err := nlsock.OpenRaw(5 * time.Second)
		if err != nil {
			return nil, err
		}
		p.raw = raw
	}
	return p.raw, nil
}

// exchange runs r's queued requests; after a failure, replies may be
// left unread, so the next exchange gets a new socket.
func (p *NftPeers) exchange(r *nlsock.Raw, data func(typ uint16, payload []byte), done func(seq uint32, errno syscall.Errno) error) error {
	if err := r.Exchange(data, done); err != nil {
		_ = r.Close() // replaced at the next use
		p.raw = nil
		return err
	}
	return nil
}

// request queues a GETSETELEM: a dump of the miss set (key nil), or a
// look-up of key in the peers set.
func (p *NftPeers) request(r *nlsock.Raw, flags uint16, family uint8, key []byte) {
	set := missSet
	if key != nil {
		set = peersSet
	}
	r.Begin(subsysNFTables<<8|msgGetSetElem, flags, family)
	r.Attr(attrElemListTable, append([]byte(PeersTable), 0))
	r.Attr(attrElemListSet, append([]byte(set), 0))
	if key != nil {
		list := r.Nest(attrElemListElems)
		elem := r.Nest(attrListElem)
		k := r.Nest(attrSetElemKey)
		r.Attr(attrDataValue, key)
		r.End(k)
		r.End(elem)
		r.End(list)
	}
	r.Finish()
}

// hasElements reports whether a set element message lists any element.
func hasElements(payload []byte) bool {
	if len(payload) < nfgenmsgSize {
		return false
	}
	found := false
	_ = attrs(payload[nfgenmsgSize:], func(typ uint16, val []byte) error {
		if typ == attrElemListElems && len(val) >= 4 {
			found = true
		}
		return nil
	})
	return found
}

// Remove deletes the record's tables (those that exist).
func (p *NftPeers) Remove() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		t := &nftables.Table{Name: PeersTable, Family: fam}
		c.AddTable(t)
		c.DelTable(t)
	}
	return c.Flush()
}
