package nftables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"ocelot/dataplane/internal/nlsock"
	"strings"
	"sync"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	mnl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// NetlinkRunner reads and writes tables over netlink in the namespace of
// the thread that first uses it (one lasting socket per family, so that
// the two families write concurrently).
type NetlinkRunner struct {
	mu      [2]sync.Mutex
	conns   [2]*nftables.Conn // reads
	writers [2]writer         // transactions
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
		n.writers[i].close()
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
	rules, err := n.writers[familyIndex(family)].dumpRules(family, table, "")
	if err != nil {
		return nil, err
	}
	for _, ch := range chains {
		if ch.Table.Name != table {
			continue
		}
		cs := &ChainState{}
		if ch.Hooknum != nil && ch.Priority != nil {
			cs.Base = &BaseChain{Type: ch.Type, Hook: *ch.Hooknum, Priority: *ch.Priority}
		}
		for _, r := range rules[ch.Name] {
			cs.Hashes = append(cs.Hashes, r.Hash)
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
	i := familyIndex(family)
	n.mu[i].Lock()
	defer n.mu[i].Unlock()
	return n.writers[i].dumpRules(family, table, prefix)
}

// dumpRules reads every rule of a table in one dump (the library's
// GetRules is a dump per chain, and decodes every expression of every
// rule): each rule's hash and counter, by chain, in order, for the chains
// whose names start with prefix.
func (w *writer) dumpRules(family int, table, prefix string) (map[string][]RuleCounter, error) {
	if w.fd == 0 {
		if err := w.open(); err != nil {
			return nil, err
		}
	}
	b := &w.b // its buffer, for one request
	b.buf, b.fam, b.seq = b.buf[:0], byte(tableFamily(family)), w.seq
	b.first = b.seq + 1
	at := b.begin(nftMsg|unix.NFT_MSG_GETRULE, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, b.fam, 0)
	b.attrStr(unix.NFTA_RULE_TABLE, table)
	b.end(at)
	w.seq = b.seq
	fail := func(err error) (map[string][]RuleCounter, error) {
		w.close()
		return nil, fmt.Errorf("reading the rules of %s: %w", table, err)
	}
	if err := nlsock.Send(w.fd, b.buf); err != nil {
		return fail(err)
	}
	if w.recv == nil {
		w.recv = make([]byte, 64<<10)
	}
	out := map[string][]RuleCounter{}
	for {
		nr, err := nlsock.Recv(w.fd, w.recv, 0) // retries after a signal itself
		if err != nil {
			return fail(err)
		}
		msgs, err := syscall.ParseNetlinkMessage(w.recv[:nr])
		if err != nil {
			return fail(err)
		}
		for _, m := range msgs {
			if m.Header.Seq != b.first {
				continue // not this dump's
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if code := -int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
						return fail(syscall.Errno(code))
					}
				}
			case nftMsg | unix.NFT_MSG_NEWRULE:
				if len(m.Data) < nfgenLen {
					continue
				}
				chain, rc := ruleCounter(m.Data[nfgenLen:])
				if strings.HasPrefix(chain, prefix) {
					out[chain] = append(out[chain], rc)
				}
			}
		}
	}
}

// ruleCounter reads a rule message's chain, hash (from its user data)
// and counter.
func ruleCounter(attrs []byte) (chain string, rc RuleCounter) {
	each(attrs, func(t uint16, v []byte) {
		switch t {
		case unix.NFTA_RULE_CHAIN:
			chain = strings.TrimRight(string(v), "\x00")
		case unix.NFTA_RULE_USERDATA:
			rc.Hash = HashOf(v)
		case unix.NFTA_RULE_EXPRESSIONS:
			each(v, func(_ uint16, elem []byte) {
				name, data := exprOf(elem)
				if name != "counter" {
					return
				}
				each(data, func(t uint16, v []byte) {
					if len(v) != 8 {
						return
					}
					switch t {
					case unix.NFTA_COUNTER_PACKETS:
						rc.Packets = binary.BigEndian.Uint64(v)
					case unix.NFTA_COUNTER_BYTES:
						rc.Bytes = binary.BigEndian.Uint64(v)
					}
				})
			})
		}
	})
	return chain, rc
}

// Run writes the ops as one netlink batch: the kernel applies all of it
// or none. The batch is encoded by this package (batch) and sent on a
// socket of its own, which is closed after any failure so that no stale
// reply can meet the next batch.
func (n *NetlinkRunner) Run(family int, table string, ops []Op) error {
	i := familyIndex(family)
	n.mu[i].Lock()
	defer n.mu[i].Unlock()
	w := &n.writers[i]
	b := &w.b
	if need := batchSize(ops); cap(b.buf) < need {
		b.buf = make([]byte, 0, need) // one allocation, not a doubling series
	}
	b.reset(family, table, w.seq)
	for j := range ops {
		if err := b.add(j, &ops[j]); err != nil {
			return fmt.Errorf("encoding the transaction: %w", err)
		}
	}
	b.finish()
	w.seq = b.seq
	err := w.send(ops)
	if cap(b.buf) > keepBuffer {
		// A cold start's batch: give its megabytes back.
		b.buf, b.opOf = nil, nil
	}
	return err
}

// keepBuffer is the largest batch buffer kept between transactions.
const keepBuffer = 1 << 20

// writer is a family's socket for transactions and its batch buffer.
type writer struct {
	fd   int // 0: not open
	seq  uint32
	b    batch
	recv []byte
}

func (w *writer) open() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return fmt.Errorf("nftables netlink socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = unix.Close(fd) // not opened: its error changes nothing
		}
	}()
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("nftables netlink socket: %w", err)
	}
	for _, opt := range [][2]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt[0], socketBuffer) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt[1], socketBuffer) // as far as the limits allow
		}
	}
	// Errors without the failed message echoed back; a reply that never
	// comes is an error, not a hang.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1) // older kernels: longer errors, same meaning
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 30}); err != nil {
		return fmt.Errorf("nftables netlink socket: %w", err)
	}
	ok = true
	w.fd = fd
	return nil
}

func (w *writer) close() {
	if w.fd != 0 {
		_ = unix.Close(w.fd) // closing: its error changes nothing
		w.fd = 0
	}
}

// send writes the batch and reads its replies: the acknowledgement of the
// last message, or the errors of the messages the kernel refused (the
// batch is then not applied).
func (w *writer) send(ops []Op) error {
	b := &w.b
	if w.fd == 0 {
		if err := w.open(); err != nil {
			return err
		}
	}
	if err := nlsock.Send(w.fd, b.buf); err != nil {
		w.close()
		return fmt.Errorf("nftables transaction (%d ops): sending: %w", len(ops), err)
	}
	last := b.first + uint32(len(b.opOf)) // the seq of the last op's message
	if len(b.opOf) == 0 {
		return nil // an empty batch: nothing asked for a reply
	}
	if w.recv == nil {
		w.recv = make([]byte, 64<<10)
	}
	var errs []error
	flags := 0
	for {
		n, err := nlsock.Recv(w.fd, w.recv, flags) // retries after a signal itself
		if err != nil {
			if flags != 0 && err == unix.EAGAIN {
				break // drained after a failure of the whole batch
			}
			w.close()
			return fmt.Errorf("nftables transaction (%d ops): reading the reply: %w", len(ops), errors.Join(append(errs, err)...))
		}
		msgs, err := syscall.ParseNetlinkMessage(w.recv[:n])
		if err != nil {
			w.close()
			return fmt.Errorf("nftables transaction (%d ops): reading the reply: %w", len(ops), err)
		}
		done := false
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
				continue
			}
			seq := m.Header.Seq
			if code := -int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
				errs = append(errs, w.describe(ops, seq, syscall.Errno(code)))
				if seq == b.first {
					// The batch failed whole (commit or memory): what
					// else it says is already queued.
					flags = unix.MSG_DONTWAIT
				}
			}
			if seq == last {
				done = true
			}
		}
		if done {
			break
		}
	}
	if len(errs) > 0 {
		w.close()
		return fmt.Errorf("nftables transaction (%d ops): %w", len(ops), errors.Join(errs...))
	}
	return nil
}

// describe names the op a reply's sequence number is for.
func (w *writer) describe(ops []Op, seq uint32, err error) error {
	b := &w.b
	k := int(seq) - int(b.first) - 1
	if k < 0 || k >= len(b.opOf) {
		return err
	}
	o := &ops[b.opOf[k]]
	what := o.Chain
	if what == "" {
		what = o.Set.Name
	}
	return fmt.Errorf("op %d (%v %s): %w", b.opOf[k], o.Kind, what, err)
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
