package nftables_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	gnft "github.com/google/nftables"
	"github.com/prometheus/client_golang/prometheus"

	"ocelot/contract"
	"ocelot/dataplane/internal/fakekernel"
	nft "ocelot/dataplane/nftables"
	rs "ocelot/dataplane/ruleset"
)

func m(s string) contract.Member {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a := netip.MustParseAddr(s)
		p = netip.PrefixFrom(a, a.BitLen())
	}
	return contract.Member{Net: p}
}

// recorder keeps the ops of every transaction.
type recorder struct {
	nft.Runner
	txs   [][]nft.Op
	reads int
}

func (r *recorder) Read(f int, t string) (*nft.State, error) {
	r.reads++
	return r.Runner.Read(f, t)
}

func (r *recorder) Run(f int, t string, ops []nft.Op) error {
	r.txs = append(r.txs, ops)
	return r.Runner.Run(f, t, ops)
}

func (r *recorder) last() []string {
	if len(r.txs) == 0 {
		return nil
	}
	var out []string
	for _, o := range r.txs[len(r.txs)-1] {
		out = append(out, o.Kind.String()+" "+o.Chain+o.Set.Name)
	}
	return out
}

var tcp = contract.Protocol{Name: "tcp", Num: 6}

func policy(port uint16, set string) *rs.Chain {
	return &rs.Chain{Name: "cali-pi-web", Rules: []rs.Rule{{Match: rs.Match{}.Protocol(tcp).SourceIPSet(set).DestPorts(rs.Port(port)), Action: rs.Accept{}}}}
}

func setup(t *testing.T) (*fakekernel.Kernel, *recorder, *nft.Table) {
	k := fakekernel.New()
	rec := &recorder{Runner: k.NFT()}
	tb := nft.New(4, rec, nft.Options{DispatchChains: map[string]bool{"cali-from-wl-dispatch": true, "cali-to-wl-dispatch": false},
		Metrics: nft.NewMetrics(prometheus.NewRegistry())})
	tb.Replace("s:web", nft.TypeNet, []contract.Member{m("198.18.0.1"), m("198.18.0.2")})
	f := tb.Layer("filter")
	f.UpdateChain(policy(80, "s:web"))
	f.UpdateChain(&rs.Chain{Name: "cali-tw-tap1", Rules: []rs.Rule{{Action: rs.Jump{Chain: "cali-pi-web"}}}})
	f.UpdateChain(dispatch("tap1"))
	f.UpdateChain(&rs.Chain{Name: "cali-FORWARD", Rules: []rs.Rule{{Action: rs.Jump{Chain: "cali-to-wl-dispatch"}}}})
	f.SetInserts("FORWARD", []rs.Rule{{Action: rs.Jump{Chain: "cali-FORWARD"}}})
	apply(t, tb)
	return k, rec, tb
}

func dispatch(ifaces ...string) *rs.Chain {
	c := &rs.Chain{Name: "cali-to-wl-dispatch"}
	for _, i := range ifaces {
		c.Rules = append(c.Rules, rs.Rule{Match: rs.Match{}.OutInterface(i), Action: rs.Goto{Chain: "cali-tw-" + i}})
	}
	c.Rules = append(c.Rules, rs.Rule{Comment: []string{"Unknown interface"}, Action: rs.Drop{}})
	return c
}

func apply(t *testing.T, tb *nft.Table) {
	t.Helper()
	if _, err := tb.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestFirstApplyBuildsTheTable(t *testing.T) {
	k, rec, _ := setup(t)
	if len(rec.txs) != 1 {
		t.Fatalf("%d transactions, want 1", len(rec.txs))
	}
	want := []string{"filter-FORWARD", "filter-cali-FORWARD", "filter-cali-pi-web", "filter-cali-to-wl-dispatch", "filter-cali-tw-tap1"}
	if got := k.NFTChains(4, nft.TableName); !slices.Equal(got, want) {
		t.Errorf("chains %v, want %v", got, want)
	}
	if n, ok := k.NFTElems(4, nft.TableName, "filter-cali-to-wl-dispatch"); !ok || n != 1 {
		t.Errorf("dispatch map has %d elements (exists %v), want 1", n, ok)
	}
	if rules, _ := k.NFTRules(4, nft.TableName, "filter-cali-to-wl-dispatch"); len(rules) != 2 || !strings.Contains(rules[1], "Unknown interface") {
		t.Errorf("dispatch chain: %q", rules)
	}
}

// A policy change flushes and refills its chain, in one transaction, and
// touches nothing else.
func TestPolicyChangeRewritesOnlyItsChain(t *testing.T) {
	_, rec, tb := setup(t)
	tb.Layer("filter").UpdateChain(policy(443, "s:web"))
	apply(t, tb)
	want := []string{"flush chain filter-cali-pi-web", "add rule filter-cali-pi-web"}
	if got := rec.last(); !slices.Equal(got, want) {
		t.Errorf("ops %q, want %q", got, want)
	}
}

// A member change adds and deletes elements, nothing else.
func TestMemberChangeTouchesOnlyElements(t *testing.T) {
	k, rec, tb := setup(t)
	tb.AddMembers("s:web", []contract.Member{m("198.18.0.3")})
	tb.RemoveMembers("s:web", []contract.Member{m("198.18.0.1")})
	apply(t, tb)
	want := []string{"delete elements cali40s-web", "add elements cali40s-web"}
	if got := rec.last(); !slices.Equal(got, want) {
		t.Errorf("ops %q, want %q", got, want)
	}
	if n, _ := k.NFTElems(4, nft.TableName, "cali40s-web"); n != 4 { // two /32s, two elements each
		t.Errorf("%d elements, want 4", n)
	}
}

// A network that contains members replaces them as elements (the kernel
// refuses overlapping intervals), and gives them back when it goes.
func TestNestedMembers(t *testing.T) {
	k, _, tb := setup(t)
	tb.AddMembers("s:web", []contract.Member{m("198.18.0.0/24")})
	apply(t, tb)
	if n, _ := k.NFTElems(4, nft.TableName, "cali40s-web"); n != 2 {
		t.Errorf("with the /24: %d elements, want 2", n)
	}
	tb.AddMembers("s:web", []contract.Member{m("198.18.0.9")}) // inside the /24: no change
	tb.RemoveMembers("s:web", []contract.Member{m("198.18.0.0/24")})
	apply(t, tb)
	if n, _ := k.NFTElems(4, nft.TableName, "cali40s-web"); n != 6 {
		t.Errorf("without the /24: %d elements, want 6", n)
	}
	if got := tb.Members("s:web"); len(got) != 3 {
		t.Errorf("members %v", got)
	}
}

// An endpoint joining adds its chain and one map element; leaving removes
// them, the element before the chain.
func TestDispatchByMap(t *testing.T) {
	k, rec, tb := setup(t)
	f := tb.Layer("filter")
	f.UpdateChain(&rs.Chain{Name: "cali-tw-tap2", Rules: []rs.Rule{{Action: rs.Drop{}}}})
	f.UpdateChain(dispatch("tap1", "tap2"))
	apply(t, tb)
	want := []string{"add chain filter-cali-tw-tap2", "add rule filter-cali-tw-tap2", "add elements filter-cali-to-wl-dispatch"}
	if got := rec.last(); !slices.Equal(got, want) {
		t.Errorf("join: ops %q, want %q", got, want)
	}
	f.UpdateChain(dispatch("tap1"))
	f.RemoveChain("cali-tw-tap2")
	apply(t, tb)
	want = []string{"delete elements filter-cali-to-wl-dispatch", "flush chain filter-cali-tw-tap2", "delete chain filter-cali-tw-tap2"}
	if got := rec.last(); !slices.Equal(got, want) {
		t.Errorf("leave: ops %q, want %q", got, want)
	}
	if n, _ := k.NFTElems(4, nft.TableName, "filter-cali-to-wl-dispatch"); n != 1 {
		t.Errorf("map has %d elements", n)
	}
}

// What others change in the table is repaired at the next read; what is
// not ours to want (a stray chain, a stray set) goes.
func TestDriftRepairAndTakeover(t *testing.T) {
	k, _, tb := setup(t)
	if err := k.NFTTamper(4, nft.TableName,
		nft.Op{Kind: nft.OpFlushChain, Chain: "filter-cali-pi-web"},
		nft.Op{Kind: nft.OpAddChain, Chain: "filter-cali-stray"},
		nft.Op{Kind: nft.OpAddSet, Set: nft.SetSpec{Name: "cali40s-stray", KeyType: gnft.TypeIPAddr}},
		nft.Op{Kind: nft.OpDelElems, Set: nft.SetSpec{Name: "cali40s-web"}, Elems: []nft.Elem{{Key: []byte{198, 18, 0, 1}}}},
	); err != nil {
		t.Fatal(err)
	}
	tb.Invalidate()
	apply(t, tb)
	if rules, _ := k.NFTRules(4, nft.TableName, "filter-cali-pi-web"); len(rules) != 1 {
		t.Errorf("policy chain not refilled: %q", rules)
	}
	if slices.Contains(k.NFTChains(4, nft.TableName), "filter-cali-stray") {
		t.Error("stray chain kept")
	}
	if _, ok := k.NFTElems(4, nft.TableName, "cali40s-stray"); ok {
		t.Error("stray set kept")
	}
	if n, _ := k.NFTElems(4, nft.TableName, "cali40s-web"); n != 4 {
		t.Errorf("set not repaired: %d elements", n)
	}
	// A fresh driver (a restart) finds everything in place and writes nothing.
	k2rec := &recorder{Runner: k.NFT()}
	fresh := nft.New(4, k2rec, nft.Options{DispatchChains: map[string]bool{"cali-to-wl-dispatch": false}})
	fresh.Replace("s:web", nft.TypeNet, []contract.Member{m("198.18.0.1"), m("198.18.0.2")})
	f := fresh.Layer("filter")
	f.UpdateChain(policy(80, "s:web"))
	f.UpdateChain(&rs.Chain{Name: "cali-tw-tap1", Rules: []rs.Rule{{Action: rs.Jump{Chain: "cali-pi-web"}}}})
	f.UpdateChain(dispatch("tap1"))
	f.UpdateChain(&rs.Chain{Name: "cali-FORWARD", Rules: []rs.Rule{{Action: rs.Jump{Chain: "cali-to-wl-dispatch"}}}})
	f.SetInserts("FORWARD", []rs.Rule{{Action: rs.Jump{Chain: "cali-FORWARD"}}})
	apply(t, fresh)
	if len(k2rec.txs) != 0 {
		t.Errorf("restart wrote %q", k2rec.last())
	}
}

// When incremental writes keep failing, the table is rebuilt whole.
func TestRebuildAfterFailures(t *testing.T) {
	k, _, tb := setup(t)
	fails := 0
	k.FailNFT = func(_ int, ops []nft.Op) error {
		if ops[0].Kind != nft.OpAddTable || len(ops) < 2 || ops[1].Kind != nft.OpDelTable {
			fails++
			return errors.New("refused")
		}
		return nil
	}
	tb.Layer("filter").UpdateChain(policy(22, "s:web"))
	if _, err := tb.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fails != 3 {
		t.Errorf("%d incremental attempts, want 3", fails)
	}
	if rules, _ := k.NFTRules(4, nft.TableName, "filter-cali-pi-web"); len(rules) != 1 {
		t.Errorf("policy chain %q", rules)
	}
}

// A set removed and added back before the next apply is compared with
// what the kernel has, without reading the table again.
func TestSetRemovedAndAddedBackNeedsNoRead(t *testing.T) {
	_, rec, tb := setup(t)
	reads := rec.reads
	tb.Remove("s:web")
	tb.Replace("s:web", nft.TypeNet, []contract.Member{m("198.18.0.1"), m("198.18.0.3")})
	apply(t, tb)
	want := []string{"delete elements cali40s-web", "add elements cali40s-web"}
	if got := rec.last(); !slices.Equal(got, want) {
		t.Errorf("ops %q, want %q", got, want)
	}
	if rec.reads != reads {
		t.Errorf("%d reads of the table", rec.reads-reads)
	}
}

// The rule count follows chains added, changed and removed.
func TestNumRules(t *testing.T) {
	_, _, tb := setup(t)
	base := tb.NumRules()
	f := tb.Layer("filter")
	f.UpdateChain(&rs.Chain{Name: "cali-extra", Rules: []rs.Rule{{Action: rs.Accept{}}, {Action: rs.Drop{}}}})
	if got := tb.NumRules(); got != base+2 {
		t.Errorf("after adding a chain of 2: %d, want %d", got, base+2)
	}
	f.UpdateChain(&rs.Chain{Name: "cali-extra", Rules: []rs.Rule{{Action: rs.Accept{}}}})
	if got := tb.NumRules(); got != base+1 {
		t.Errorf("after shrinking it to 1: %d, want %d", got, base+1)
	}
	f.RemoveChain("cali-extra")
	if got := tb.NumRules(); got != base {
		t.Errorf("after removing it: %d, want %d", got, base)
	}
}
