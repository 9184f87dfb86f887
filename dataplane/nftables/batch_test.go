package nftables

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"ocelot/contract"
	rs "ocelot/dataplane/ruleset"
	"ocelot/internal/netlab"
)

// recorder is a Runner that keeps the transactions written to it.
type recorder struct{ txns [][]Op }

func (r *recorder) Read(int, string) (*State, error)    { return nil, nil }
func (r *recorder) Exists(int, string) (bool, error)    { return false, nil }
func (r *recorder) Run(_ int, _ string, ops []Op) error { r.txns = append(r.txns, ops); return nil }
func (r *recorder) Counters(int, string, string) (map[string][]RuleCounter, error) {
	return nil, nil
}

// libraryMessages encodes ops through github.com/google/nftables (its
// test dial captures what it would send): the reference the batch encoder
// must match, message for message.
func libraryMessages(t *testing.T, family int, ops []Op) (msgs []netlink.Message, firstSetID uint32) {
	t.Helper()
	c, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		msgs = append(msgs, req...)
		return nil, io.EOF
	}))
	if err != nil {
		t.Fatal(err)
	}
	tb := &nftables.Table{Name: TableName, Family: tableFamily(family)}
	probe := &nftables.Set{Table: tb, Name: "probe", KeyType: nftables.TypeIPAddr}
	if err := c.AddSet(probe, nil); err != nil { // the library's set IDs are global: learn where they are
		t.Fatal(err)
	}
	msgs = nil
	c, _ = nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		msgs = append(msgs, req...)
		return nil, io.EOF
	}))
	chain := func(name string) *nftables.Chain { return &nftables.Chain{Name: name, Table: tb} }
	elems := func(es []Elem) []nftables.SetElement {
		out := make([]nftables.SetElement, len(es))
		for i, e := range es {
			out[i] = nftables.SetElement{Key: e.Key, IntervalEnd: e.IntervalEnd, VerdictData: e.Verdict}
		}
		return out
	}
	set := func(s SetSpec) *nftables.Set {
		out := &nftables.Set{Table: tb, Name: s.Name, KeyType: s.KeyType, Interval: s.Interval,
			Concatenation: len(nftables.ConcatSetTypeElements(s.KeyType)) > 1}
		if s.Map {
			out.IsMap, out.DataType, out.KeyByteOrder = true, nftables.TypeVerdict, binaryutil.NativeEndian
		}
		return out
	}
	for _, o := range ops {
		switch o.Kind {
		case OpAddTable:
			c.AddTable(tb)
		case OpDelTable:
			c.DelTable(tb)
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
			exprs := append([]expr.Any(nil), o.Rule.Exprs...)
			for _, a := range o.Rule.Anon {
				s := &nftables.Set{Table: tb, Anonymous: true, Constant: true, KeyType: a.KeyType, Interval: a.Interval}
				if err := c.AddSet(s, elems(a.Elems)); err != nil {
					t.Fatal(err)
				}
				l := *exprs[a.Index].(*expr.Lookup)
				l.SetName, l.SetID = s.Name, s.ID
				exprs[a.Index] = &l
			}
			c.AddRule(&nftables.Rule{Table: tb, Chain: chain(o.Chain), Exprs: exprs, UserData: o.Rule.UserData()})
		case OpAddSet:
			if err := c.AddSet(set(o.Set), nil); err != nil {
				t.Fatal(err)
			}
		case OpDelSet:
			c.DelSet(&nftables.Set{Table: tb, Name: o.Set.Name})
		case OpAddElems:
			if err := c.SetAddElements(set(o.Set), elems(o.Elems)); err != nil {
				t.Fatal(err)
			}
		case OpDelElems:
			if err := c.SetDeleteElements(set(o.Set), elems(o.Elems)); err != nil {
				t.Fatal(err)
			}
		case OpFlushSet:
			c.FlushSet(&nftables.Set{Table: tb, Name: o.Set.Name})
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	return msgs, probe.ID + 1
}

// The batch encoder sends what github.com/google/nftables sends for the
// same ops (less the acknowledgements and echoes it asks for): every
// kind of rule, base and regular chains, each kind of set and map, and
// every element and removal op.
func TestBatchMatchesTheLibrary(t *testing.T) {
	for _, fam := range []int{4, 6} {
		rec := &recorder{}
		tb := New(fam, rec, Options{DispatchChains: map[string]bool{"cali-to-wl-dispatch": false}})
		tb.Replace("s:example", TypeNet, []contract.Member{mem("198.18.0.0/16"), mem("198.18.1.1"), mem("2001:db8::/64"), mem("0.0.0.0/0"), mem("::/0")})
		tb.Replace("n:example", TypeIPAndPort, []contract.Member{{Net: netip.MustParsePrefix("198.18.0.1/32"), Proto: 6, Port: 80},
			{Net: netip.MustParsePrefix("2001:db8::1/128"), Proto: 17, Port: 53}})
		rules := everyRule(func(rs.Action) bool { return true })
		f := tb.Layer("filter")
		f.UpdateChain(&rs.Chain{Name: "cali-x"})
		f.UpdateChain(&rs.Chain{Name: "cali-all", Rules: rules})
		f.UpdateChain(&rs.Chain{Name: "cali-to-wl-dispatch", Rules: []rs.Rule{
			{Match: rs.Match{}.OutInterface("tap1"), Action: rs.Goto{Chain: "cali-x"}},
			{Match: rs.Match{}.OutInterface("tap2"), Action: rs.Accept{}},
			{Comment: []string{"Unknown interface"}, Action: rs.Drop{}}}})
		f.SetInserts("FORWARD", []rs.Rule{{Action: rs.Jump{Chain: "cali-all"}}})
		tb.Layer("nat").SetAppends("POSTROUTING", []rs.Rule{{Action: rs.Return{}}})
		if _, err := tb.Apply(context.Background()); err != nil {
			t.Fatal(err)
		}
		// The table's ops with its rules (compiled) and, for the library,
		// the same rules rendered anew (expressions).
		var ops, lib []Op
		for _, o := range rec.txns[0] {
			if o.Kind != OpAddRule {
				ops, lib = append(ops, o), append(lib, o)
			}
		}
		rr := Renderer{Family: fam, Layer: "filter", SetName: tb.Name}
		xs := append(rr.Chain("cali-all", rules), vmapRule("filter-cali-all", false))
		hashRules("filter-cali-all", fam, xs)
		cs := slices.Clone(xs)
		refs := 0
		hashAndCompile("filter-cali-all", fam, cs, true)
		for i := range xs {
			if xs[i].Hash == "" || cs[i].Hash != xs[i].Hash || len(xs[i].Anon) == 0 && (cs[i].enc == nil || cs[i].Exprs != nil) {
				t.Fatalf("rule %d not compiled: %+v", i, cs[i])
			}
			// The fake kernel checks a rule's jumps and lookups, compiled
			// as rendered.
			c1, s1 := xs[i].Refs()
			c2, s2 := cs[i].Refs()
			if !slices.Equal(c1, c2) || !slices.Equal(s1, s2) {
				t.Errorf("rule %d refers to %v %v, compiled to %v %v", i, c1, s1, c2, s2)
			}
			refs += len(c1) + len(s1)
			ops = append(ops, Op{Kind: OpAddRule, Chain: "filter-cali-all", Rule: &cs[i]})
			lib = append(lib, Op{Kind: OpAddRule, Chain: "filter-cali-all", Rule: &xs[i]})
		}
		if refs < 4 {
			t.Errorf("only %d references in every kind of rule", refs)
		}
		more := []Op{{Kind: OpFlushChain, Chain: "filter-cali-x"}, {Kind: OpDelChain, Chain: "filter-cali-x"},
			{Kind: OpDelElems, Set: SetSpec{Name: "cali" + string(rune('0'+fam)) + "0s-example"}, Elems: []Elem{{Key: []byte{1, 2, 3, 4}}, {Key: []byte{1, 2, 3, 5}, IntervalEnd: true}}},
			{Kind: OpFlushSet, Set: SetSpec{Name: "x"}}, {Kind: OpDelSet, Set: SetSpec{Name: "x"}}, {Kind: OpDelTable}}
		ops, lib = append(ops, more...), append(lib, more...)

		want, firstID := libraryMessages(t, fam, lib)
		var b batch
		b.reset(fam, TableName, 100)
		b.setID = firstID - 1
		for i := range ops {
			if err := b.add(i, &ops[i]); err != nil {
				t.Fatal(err)
			}
		}
		b.finish()
		got, err := syscall.ParseNetlinkMessage(b.buf)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) < 40 {
			t.Fatalf("IPv%d: only %d messages", fam, len(got))
		}
		if len(got) != len(want) {
			t.Fatalf("IPv%d: %d messages, the library %d", fam, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			const replies = unix.NLM_F_ACK | unix.NLM_F_ECHO
			if g.Header.Type != uint16(w.Header.Type) || g.Header.Flags&^replies != uint16(w.Header.Flags)&^replies || !bytes.Equal(g.Data, w.Data) {
				t.Errorf("IPv%d: message %d: type %#x flags %#x\n%x\nthe library: type %#x flags %#x\n%x", fam, i,
					g.Header.Type, g.Header.Flags, g.Data, uint16(w.Header.Type), uint16(w.Header.Flags), w.Data)
			}
			if g.Header.Seq != 101+uint32(i) {
				t.Errorf("message %d: seq %d", i, g.Header.Seq)
			}
			// Only the last op's message asks for a reply.
			if ack := g.Header.Flags&unix.NLM_F_ACK != 0; ack != (i == len(got)-2) || g.Header.Flags&unix.NLM_F_ECHO != 0 {
				t.Errorf("message %d of %d: flags %#x", i, len(got), g.Header.Flags)
			}
		}
	}
}

// A batch the kernel refuses in its middle is reported (naming the op)
// and leaves nothing; the next batch, on a fresh socket, applies. A batch
// refused whole (here: the table to delete does not exist) is reported
// too.
func TestKernelRefusedBatch(t *testing.T) {
	netlab.Require(t)
	r := &NetlinkRunner{}
	defer r.Close()
	if _, err := Remove(r, 4); err != nil {
		t.Fatal(err)
	}
	rule := &Rule{Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: "filter-missing"}}}
	bad := []Op{{Kind: OpAddTable}, {Kind: OpAddChain, Chain: "filter-a"}, {Kind: OpAddRule, Chain: "filter-a", Rule: rule},
		{Kind: OpAddChain, Chain: "filter-b"}}
	err := r.Run(4, TableName, bad)
	if err == nil || !strings.Contains(err.Error(), "op 2 (add rule filter-a)") {
		t.Fatalf("a jump to a missing chain: %v", err)
	}
	if ok, err := r.Exists(4, TableName); ok || err != nil {
		t.Fatalf("the refused batch left the table (%v, %v)", ok, err)
	}
	good := []Op{{Kind: OpAddTable}, {Kind: OpAddChain, Chain: "filter-missing"}, {Kind: OpAddChain, Chain: "filter-a"},
		{Kind: OpAddRule, Chain: "filter-a", Rule: rule}}
	if err := r.Run(4, TableName, good); err != nil {
		t.Fatalf("the same batch with its chain: %v", err)
	}
	st, err := r.Read(4, TableName)
	if err != nil || st == nil || len(st.Chains["filter-a"].Hashes) != 1 {
		t.Fatalf("read back: %+v, %v", st, err)
	}
	if err := r.Run(4, "nosuchtable", []Op{{Kind: OpDelTable}}); err == nil {
		t.Fatal("deleting a missing table succeeded")
	}
	if err := r.Run(4, TableName, []Op{{Kind: OpFlushChain, Chain: "filter-a"}}); err != nil {
		t.Fatalf("after a refusal: %v", err)
	}
}

// The rule dump reads each rule's hash and counter, by chain and in
// order, for the chains of a prefix; Read gets every chain's hashes from
// it, an empty chain's too.
func TestKernelRuleDump(t *testing.T) {
	netlab.Require(t)
	r := &NetlinkRunner{}
	defer r.Close()
	if _, err := Remove(r, 4); err != nil {
		t.Fatal(err)
	}
	rule := func(hash string, packets, bytes uint64) *Rule {
		return &Rule{Exprs: []expr.Any{&expr.Counter{Packets: packets, Bytes: bytes}, &expr.Verdict{Kind: expr.VerdictAccept}}, Hash: hash, Comment: "c"}
	}
	ops := []Op{{Kind: OpAddTable}, {Kind: OpAddChain, Chain: "filter-a"}, {Kind: OpAddChain, Chain: "filter-b"}, {Kind: OpAddChain, Chain: "raw-c"},
		{Kind: OpAddChain, Chain: "filter-empty"},
		{Kind: OpAddRule, Chain: "filter-a", Rule: rule("aaaaaaaaaaaaaaa1", 56, 1234)},
		{Kind: OpAddRule, Chain: "filter-b", Rule: rule("bbbbbbbbbbbbbbb1", 1, 2)},
		{Kind: OpAddRule, Chain: "filter-a", Rule: rule("aaaaaaaaaaaaaaa2", 0, 0)},
		{Kind: OpAddRule, Chain: "filter-a", Rule: &Rule{Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}}},
		{Kind: OpAddRule, Chain: "raw-c", Rule: rule("ccccccccccccccc1", 7, 8)}}
	if err := r.Run(4, TableName, ops); err != nil {
		t.Fatal(err)
	}
	got, err := r.Counters(4, TableName, "filter-")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]RuleCounter{
		"filter-a": {{Hash: "aaaaaaaaaaaaaaa1", Packets: 56, Bytes: 1234}, {Hash: "aaaaaaaaaaaaaaa2"}, {}},
		"filter-b": {{Hash: "bbbbbbbbbbbbbbb1", Packets: 1, Bytes: 2}},
	}
	if len(got) != len(want) || !slices.Equal(got["filter-a"], want["filter-a"]) || !slices.Equal(got["filter-b"], want["filter-b"]) {
		t.Errorf("counters %+v, want %+v", got, want)
	}
	st, err := r.Read(4, TableName)
	if err != nil {
		t.Fatal(err)
	}
	if h := st.Chains["filter-a"].Hashes; !slices.Equal(h, []string{"aaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaa2", ""}) {
		t.Errorf("filter-a read as %q", h)
	}
	if c := st.Chains["filter-empty"]; c == nil || len(c.Hashes) != 0 || len(st.Chains) != 4 {
		t.Errorf("chains read as %+v", st.Chains)
	}
}

// everyRule is a rule per example criterion, accepting, and one per
// example action that keep admits, each with a comment that tries to end
// its quoting.
func everyRule(keep func(rs.Action) bool) []rs.Rule {
	crit, acts := rs.Examples()
	var rules []rs.Rule
	for _, c := range crit {
		rules = append(rules, rs.Rule{Match: rs.Match{c}, Action: rs.Accept{}})
	}
	for _, a := range acts {
		if keep(a) {
			rules = append(rules, rs.Rule{Action: a, Comment: []string{"x\" ; drop"}})
		}
	}
	return rules
}
