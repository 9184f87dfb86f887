package nftables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	mnl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// NetlinkRunner reads and writes tables over netlink in the namespace of
// the thread that first uses it (one lasting socket per family, so that
// the two families write concurrently).
type NetlinkRunner struct {
	mu    [2]sync.Mutex
	conns [2]*nftables.Conn
}

func (n *NetlinkRunner) conn(family int) (*nftables.Conn, *sync.Mutex, error) {
	i := familyIndex(family)
	n.mu[i].Lock()
	if n.conns[i] == nil {
		c, err := nftables.New(nftables.AsLasting(), nftables.WithSockOptions(bigBuffers))
		if err != nil {
			n.mu[i].Unlock()
			return nil, nil, fmt.Errorf("nftables netlink socket: %w", err)
		}
		n.conns[i] = c
	}
	return n.conns[i], &n.mu[i], nil
}

func familyIndex(family int) int {
	if family == 6 {
		return 1
	}
	return 0
}

// socketBuffer is the send and receive buffer of the netlink socket: a
// cold start writes its sets and chains in batches of megabytes, and the
// kernel acknowledges every message of a batch before it is read.
const socketBuffer = 64 << 20

// bigBuffers raises the socket's buffers past the system's limits (as
// root; otherwise as far as the limits allow), as nft does for a large
// ruleset.
func bigBuffers(c *mnl.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		for _, opt := range [][2]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt[0], socketBuffer) != nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt[1], socketBuffer)
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// Close closes the sockets.
func (n *NetlinkRunner) Close() {
	for i := range n.conns {
		n.mu[i].Lock()
		if n.conns[i] != nil {
			_ = n.conns[i].CloseLasting() // closing: its errors change nothing
			n.conns[i] = nil
		}
		n.mu[i].Unlock()
	}
}

// Read returns the table's chains (with their rules' hashes) and sets
// (with their elements), or nil when the family has no such table.
func (n *NetlinkRunner) Read(family int, table string) (*State, error) {
	c, mu, err := n.conn(family)
	if err != nil {
		return nil, err
	}
	defer mu.Unlock()
	fam := tableFamily(family)
	tables, err := c.ListTablesOfFamily(fam)
	if err != nil {
		return nil, fmt.Errorf("listing nftables tables: %w", err)
	}
	var t *nftables.Table
	for _, x := range tables {
		if x.Name == table {
			t = x
		}
	}
	if t == nil {
		return nil, nil
	}
	st := &State{Chains: map[string]*ChainState{}, Sets: map[string]*SetState{}}
	chains, err := c.ListChainsOfTableFamily(fam)
	if err != nil {
		return nil, fmt.Errorf("listing chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name != table {
			continue
		}
		cs := &ChainState{}
		if ch.Hooknum != nil && ch.Priority != nil {
			cs.Base = &BaseChain{Type: ch.Type, Hook: *ch.Hooknum, Priority: *ch.Priority}
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return nil, fmt.Errorf("reading chain %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			cs.Hashes = append(cs.Hashes, HashOf(r.UserData))
		}
		st.Chains[ch.Name] = cs
	}
	sets, err := c.GetSets(t)
	if err != nil {
		return nil, fmt.Errorf("listing sets: %w", err)
	}
	for _, s := range sets {
		if s.Anonymous {
			continue
		}
		ss := &SetState{Spec: SetSpec{Name: s.Name, KeyType: s.KeyType, Interval: s.Interval, Map: s.IsMap}}
		elems, err := c.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("reading set %s: %w", s.Name, err)
		}
		for _, e := range elems {
			v := e.VerdictData
			if v == nil && s.IsMap {
				v = decodeVerdict(e.Val)
			}
			ss.Elems = append(ss.Elems, Elem{Key: e.Key, IntervalEnd: e.IntervalEnd, Verdict: v})
		}
		st.Sets[s.Name] = ss
	}
	return st, nil
}

// Exists reports whether the family has the table.
func (n *NetlinkRunner) Exists(family int, table string) (bool, error) {
	c, mu, err := n.conn(family)
	if err != nil {
		return false, err
	}
	defer mu.Unlock()
	tables, err := c.ListTablesOfFamily(tableFamily(family))
	if err != nil {
		return false, fmt.Errorf("listing nftables tables: %w", err)
	}
	for _, x := range tables {
		if x.Name == table {
			return true, nil
		}
	}
	return false, nil
}

// Counters reads the counters of the chains whose names start with
// prefix.
func (n *NetlinkRunner) Counters(family int, table, prefix string) (map[string][]RuleCounter, error) {
	c, mu, err := n.conn(family)
	if err != nil {
		return nil, err
	}
	defer mu.Unlock()
	chains, err := c.ListChainsOfTableFamily(tableFamily(family))
	if err != nil {
		return nil, fmt.Errorf("listing chains: %w", err)
	}
	t := &nftables.Table{Name: table, Family: tableFamily(family)}
	out := map[string][]RuleCounter{}
	for _, ch := range chains {
		if ch.Table.Name != table || !strings.HasPrefix(ch.Name, prefix) {
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return nil, fmt.Errorf("reading chain %s: %w", ch.Name, err)
		}
		cs := make([]RuleCounter, len(rules))
		for i, r := range rules {
			cs[i].Hash = HashOf(r.UserData)
			for _, e := range r.Exprs {
				if x, ok := e.(*expr.Counter); ok {
					cs[i].Packets, cs[i].Bytes = x.Packets, x.Bytes
				}
			}
		}
		out[ch.Name] = cs
	}
	return out, nil
}

// Run writes the ops as one netlink batch: the kernel applies all of it
// or none.
func (n *NetlinkRunner) Run(family int, table string, ops []Op) error {
	c, mu, err := n.conn(family)
	if err != nil {
		return err
	}
	defer mu.Unlock()
	t := &nftables.Table{Name: table, Family: tableFamily(family)}
	chain := func(name string) *nftables.Chain { return &nftables.Chain{Name: name, Table: t} }
	var errs []error
	for _, o := range ops {
		switch o.Kind {
		case OpAddTable:
			c.AddTable(t)
		case OpDelTable:
			c.DelTable(t)
		case OpAddChain:
			ch := chain(o.Chain)
			if b := o.Base; b != nil {
				hook, prio, accept := b.Hook, b.Priority, nftables.ChainPolicyAccept
				ch.Type, ch.Hooknum, ch.Priority, ch.Policy = b.Type, &hook, &prio, &accept
			}
			c.AddChain(ch)
		case OpFlushChain:
			c.FlushChain(chain(o.Chain))
		case OpDelChain:
			c.DelChain(chain(o.Chain))
		case OpAddRule:
			exprs := o.Rule.Exprs
			if len(o.Rule.Anon) > 0 {
				exprs = append([]expr.Any(nil), exprs...)
				for _, a := range o.Rule.Anon {
					s := &nftables.Set{Table: t, Anonymous: true, Constant: true, KeyType: a.KeyType, Interval: a.Interval}
					if err := c.AddSet(s, setElements(a.Elems)); err != nil {
						errs = append(errs, err)
						continue
					}
					l := *exprs[a.Index].(*expr.Lookup)
					l.SetName, l.SetID = s.Name, s.ID
					exprs[a.Index] = &l
				}
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: chain(o.Chain), Exprs: exprs, UserData: o.Rule.UserData()})
		case OpAddSet:
			if err := c.AddSet(nftSet(t, o.Set), nil); err != nil {
				errs = append(errs, err)
			}
		case OpDelSet:
			c.DelSet(&nftables.Set{Table: t, Name: o.Set.Name})
		case OpAddElems:
			if err := c.SetAddElements(nftSet(t, o.Set), setElements(o.Elems)); err != nil {
				errs = append(errs, err)
			}
		case OpDelElems:
			if err := c.SetDeleteElements(nftSet(t, o.Set), setElements(o.Elems)); err != nil {
				errs = append(errs, err)
			}
		case OpFlushSet:
			c.FlushSet(&nftables.Set{Table: t, Name: o.Set.Name})
		default:
			errs = append(errs, fmt.Errorf("unknown op %d", o.Kind))
		}
	}
	if len(errs) > 0 {
		// Nothing is sent: a batch with a part missing must not reach
		// the kernel. The socket goes, with what was queued on it.
		_ = c.CloseLasting()
		n.conns[familyIndex(family)] = nil
		return fmt.Errorf("encoding the transaction: %w", errors.Join(errs...))
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables transaction (%d ops): %w", len(ops), err)
	}
	return nil
}

// decodeVerdict reads a map element's verdict, which the library leaves
// as the attributes of NFTA_DATA_VERDICT: the code and, for a jump or a
// goto, the chain.
func decodeVerdict(b []byte) *expr.Verdict {
	ad, err := mnl.NewAttributeDecoder(b)
	if err != nil {
		return nil
	}
	ad.ByteOrder = binary.BigEndian
	v := &expr.Verdict{}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			v.Kind = expr.VerdictKind(int32(ad.Uint32()))
		case unix.NFTA_VERDICT_CHAIN:
			v.Chain = ad.String()
		}
	}
	if ad.Err() != nil {
		return nil
	}
	return v
}

func nftSet(t *nftables.Table, s SetSpec) *nftables.Set {
	out := &nftables.Set{Table: t, Name: s.Name, KeyType: s.KeyType, Interval: s.Interval,
		Concatenation: len(nftables.ConcatSetTypeElements(s.KeyType)) > 1}
	if s.Map {
		// The key's byte order in the set's user data, as nft writes it
		// for ifname keys: nft then prints them as names.
		out.IsMap, out.DataType, out.KeyByteOrder = true, nftables.TypeVerdict, binaryutil.NativeEndian
	}
	return out
}

func setElements(es []Elem) []nftables.SetElement {
	out := make([]nftables.SetElement, len(es))
	for i, e := range es {
		out[i] = nftables.SetElement{Key: e.Key, IntervalEnd: e.IntervalEnd, VerdictData: e.Verdict}
	}
	return out
}
