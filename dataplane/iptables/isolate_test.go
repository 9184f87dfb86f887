package iptables

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"ocelot/contract"
	"ocelot/dataplane/internal/fakekernel"
	rs "ocelot/dataplane/ruleset"
	"ocelot/internal/netlab"
)

var tcp = contract.Protocol{Name: "tcp", Num: 6}

// isolationTables is a filter table as the dataplane builds it, on the
// fake kernel: a hook into cali-FORWARD, dispatch to two endpoints' chains,
// which jump to policy chains. Policy and endpoint chains may fail closed.
func isolationTables(k *fakekernel.Kernel) (*Tables, *Metrics) {
	m := NewMetrics(nil)
	ts := NewTables(4, k.IPTables(4), Options{InsertMode: true, Metrics: m, Log: slog.New(slog.DiscardHandler),
		FailClosed: func(c string) bool { return strings.HasPrefix(c, "cali-pi-") || strings.HasPrefix(c, "cali-tw-") },
		Describe:   func(c string) string { return "owner of " + c }})
	f := ts.Filter
	f.SetInserts("FORWARD", []rs.Rule{{Action: rs.Jump{Chain: "cali-FORWARD"}}})
	f.UpdateChain(&rs.Chain{Name: "cali-FORWARD", Rules: []rs.Rule{{Match: rs.Match{}.OutInterface("tap+"), Action: rs.Jump{Chain: "cali-to-wl-dispatch"}}}})
	f.UpdateChain(&rs.Chain{Name: "cali-to-wl-dispatch", Rules: []rs.Rule{
		{Match: rs.Match{}.OutInterface("tapa"), Action: rs.Goto{Chain: "cali-tw-tapa"}},
		{Match: rs.Match{}.OutInterface("tapb"), Action: rs.Goto{Chain: "cali-tw-tapb"}},
		{Action: rs.Drop{}},
	}})
	f.UpdateChain(&rs.Chain{Name: "cali-tw-tapa", Rules: []rs.Rule{{Action: rs.Jump{Chain: "cali-pi-good"}}, {Action: rs.Jump{Chain: "cali-pi-bad"}}, {Action: rs.Drop{}}}})
	f.UpdateChain(&rs.Chain{Name: "cali-tw-tapb", Rules: []rs.Rule{{Action: rs.Jump{Chain: "cali-pi-good"}}, {Action: rs.Drop{}}}})
	f.UpdateChain(&rs.Chain{Name: "cali-pi-good", Rules: []rs.Rule{{Match: rs.Match{}.Protocol(tcp).DestPorts(rs.Port(80)), Action: rs.Accept{}}}})
	// The kernel refuses this one: its set does not exist.
	f.UpdateChain(&rs.Chain{Name: "cali-pi-bad", Rules: []rs.Rule{{Match: rs.Match{}.SourceIPSet("cali40s:missing"), Action: rs.Accept{}}}})
	return ts, m
}

func rules(t *testing.T, k *fakekernel.Kernel, chain string) string {
	t.Helper()
	r, ok := k.Chain(4, "filter", chain)
	if !ok {
		t.Fatalf("no chain %s; have %v", chain, k.Chains(4, "filter"))
	}
	return strings.Join(r, "\n")
}

// One chain the kernel refuses does not stop the rest: it is found,
// enforced as a drop, reported, and everything else is written; when it
// changes, or on a retry once the kernel takes it, it is written as it is.
func TestRefusedChainIsIsolated(t *testing.T) {
	k := fakekernel.New()
	ts, m := isolationTables(k)
	wrote, err := ts.Apply(context.Background())
	if err != nil || !wrote {
		t.Fatalf("apply: wrote %v, err %v; one refused chain must not fail the rest", wrote, err)
	}
	if got := rules(t, k, "cali-pi-bad"); !strings.Contains(got, "--jump DROP") || strings.Contains(got, "match-set") {
		t.Errorf("the refused chain is not a drop:\n%s", got)
	}
	if got := rules(t, k, "cali-pi-good"); !strings.Contains(got, "--destination-ports 80 --jump ACCEPT") {
		t.Errorf("a good chain was not written:\n%s", got)
	}
	for _, c := range []string{"cali-tw-tapa", "cali-tw-tapb", "cali-to-wl-dispatch", "cali-FORWARD"} {
		rules(t, k, c)
	}
	if got := rules(t, k, "FORWARD"); !strings.Contains(got, "--jump cali-FORWARD") {
		t.Errorf("the hook was not written: %s", got)
	}
	ref := ts.Refused()
	if len(ref) != 1 || ref[0].Chain != "cali-pi-bad" || ref[0].Action != "drop" || ref[0].Err == nil || !strings.Contains(ref[0].Err.Error(), "cali40s:missing") {
		t.Errorf("refused: %+v, want cali-pi-bad as a drop with the kernel's reason", ref)
	}
	if n := testutil.ToFloat64(m.refused.WithLabelValues("4")); n != 1 {
		t.Errorf("ocelot_iptables_refused_chains = %v, want 1", n)
	}
	if n := testutil.ToFloat64(m.isolations.WithLabelValues("4")); n != 1 {
		t.Errorf("isolations = %v, want 1", n)
	}
	// Steady: the next apply writes nothing.
	restores := testutil.ToFloat64(m.restoreCalls)
	ts.Invalidate()
	if _, err := ts.Apply(context.Background()); err != nil || testutil.ToFloat64(m.restoreCalls) != restores {
		t.Errorf("a second apply ran %v restores (err %v); the held-back chain must stay held back", testutil.ToFloat64(m.restoreCalls)-restores, err)
	}

	// A retry while the kernel still refuses it: held back again.
	ts.RetryQuarantined()
	if _, err := ts.Apply(context.Background()); err != nil || len(ts.Refused()) != 1 {
		t.Errorf("retry: err %v, refused %+v", err, ts.Refused())
	}
	// The set appears; the retry writes the chain as it is.
	if err := k.IPSetRestore("create cali40s:missing hash:net family inet\n"); err != nil {
		t.Fatal(err)
	}
	ts.RetryQuarantined()
	if _, err := ts.Apply(context.Background()); err != nil || len(ts.Refused()) != 0 {
		t.Fatalf("retry once the kernel takes it: err %v, refused %+v", err, ts.Refused())
	}
	if got := rules(t, k, "cali-pi-bad"); !strings.Contains(got, "match-set cali40s:missing") {
		t.Errorf("after the retry the chain is not written as it is:\n%s", got)
	}

	// A change to a held-back chain lifts its quarantine at once.
	ts.Filter.UpdateChain(&rs.Chain{Name: "cali-pi-bad", Rules: []rs.Rule{{Match: rs.Match{}.SourceIPSet("cali40s:other"), Action: rs.Accept{}}}})
	if _, err := ts.Apply(context.Background()); err != nil || len(ts.Refused()) != 1 {
		t.Fatalf("err %v refused %+v", err, ts.Refused())
	}
	ts.Filter.UpdateChain(&rs.Chain{Name: "cali-pi-bad", Rules: []rs.Rule{{Action: rs.Accept{}}}})
	if _, err := ts.Apply(context.Background()); err != nil || len(ts.Refused()) != 0 {
		t.Fatalf("a valid change is still held back: err %v refused %+v", err, ts.Refused())
	}
	if got := rules(t, k, "cali-pi-bad"); got == "" || strings.Contains(got, "DROP") {
		t.Errorf("the changed chain is not written as it is: %q", got)
	}
}

// A chain that is not only on workload paths (cali-FORWARD: every
// forwarded packet) is not replaced by a drop when refused: the kernel
// keeps its previous version.
func TestRefusedSharedChainKeepsItsVersion(t *testing.T) {
	k := fakekernel.New()
	ts, _ := isolationTables(k)
	ts.Filter.UpdateChain(&rs.Chain{Name: "cali-pi-bad", Rules: []rs.Rule{{Action: rs.Accept{}}}})
	if _, err := ts.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := rules(t, k, "cali-FORWARD")
	ts.Filter.UpdateChain(&rs.Chain{Name: "cali-FORWARD", Rules: []rs.Rule{{Match: rs.Match{}.SourceIPSet("cali40s:missing"), Action: rs.Accept{}}}})
	if _, err := ts.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rules(t, k, "cali-FORWARD"); got != before {
		t.Errorf("cali-FORWARD changed to\n%s\nwant the previous version\n%s", got, before)
	}
	if ref := ts.Refused(); len(ref) != 1 || ref[0].Action != "kept" {
		t.Errorf("refused %+v", ref)
	}
}

// The restore writer refuses a script with a control character, whatever
// rendered it: here a rule body that would add a line of its own. The
// line never reaches the kernel; its chain fails closed; the rest is in.
func TestControlCharacterNeverReachesTheKernel(t *testing.T) {
	k := fakekernel.New()
	ts, _ := isolationTables(k)
	ts.Filter.UpdateChain(&rs.Chain{Name: "cali-pi-bad", Rules: []rs.Rule{{Action: rs.Accept{}}}})
	inj := &rendered{bodies: []string{"--jump ACCEPT\n-I FORWARD 1 -j ACCEPT"}}
	inj.hashes = hashes("cali-tw-tapb", inj.bodies)
	ts.Filter.chains["cali-tw-tapb"] = inj
	var seen []string
	k.FailRestore = func(tool, script string) error { seen = append(seen, script); return nil }
	if _, err := ts.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, s := range seen {
		if strings.Contains(s, "-I FORWARD 1 -j ACCEPT") {
			t.Fatalf("a script with the injected line reached iptables-restore:\n%s", s)
		}
	}
	if got := rules(t, k, "FORWARD"); strings.Contains(got, "-j ACCEPT") && !strings.Contains(got, "cali:") {
		t.Errorf("FORWARD holds an accept that is not ours: %s", got)
	}
	if got := rules(t, k, "cali-tw-tapb"); !strings.Contains(got, "DROP") {
		t.Errorf("the chain with the control character does not fail closed: %s", got)
	}
	if ref := ts.Refused(); len(ref) != 1 || ref[0].Chain != "cali-tw-tapb" || !strings.Contains(ref[0].Err.Error(), "control character") {
		t.Errorf("refused %+v", ref)
	}
	rules(t, k, "cali-pi-good")
}

// A name iptables would not take as one chain name is never written.
func TestInvalidChainNameRefused(t *testing.T) {
	k := fakekernel.New()
	ts, _ := isolationTables(k)
	ts.Filter.UpdateChain(&rs.Chain{Name: "cali-pi-bad", Rules: []rs.Rule{{Action: rs.Accept{}}}})
	for _, name := range []string{"cali-x y", "cali-x\n-A FORWARD", "-A", "", "cali-0123456789012345678901234", "cali-\"q"} {
		ts.Filter.UpdateChain(&rs.Chain{Name: name, Rules: []rs.Rule{{Action: rs.Accept{}}}})
	}
	if _, err := ts.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(ts.Refused()); got != 6 {
		t.Errorf("refused %d names, want 6: %+v", got, ts.Refused())
	}
	for _, c := range k.Chains(4, "filter") {
		if strings.ContainsAny(c, " \n\"") || len(c) > 28 {
			t.Errorf("chain %q reached the kernel", c)
		}
	}
}

// A stale chain of ours that another tool's chain jumps to cannot be
// deleted: it is flushed, the rest applies.
func TestUndeletableStaleChainIsFlushed(t *testing.T) {
	k := fakekernel.New()
	if err := k.IPTablesRestore(4, "*filter\n:cali-old - [0:0]\n:operator - [0:0]\n-A cali-old -j ACCEPT\n-A operator -j cali-old\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	ts, _ := isolationTables(k)
	ts.Filter.UpdateChain(&rs.Chain{Name: "cali-pi-bad", Rules: []rs.Rule{{Action: rs.Accept{}}}})
	if _, err := ts.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rules(t, k, "cali-old"); got != "" {
		t.Errorf("the stale chain still has rules: %s", got)
	}
	if ref := ts.Refused(); len(ref) != 1 || ref[0].Chain != "cali-old" || ref[0].Action != "flushed" {
		t.Errorf("refused %+v", ref)
	}
	rules(t, k, "cali-tw-tapa")
}

// When iptables-restore fails whatever it is given (a broken tool, a lock
// held for long), no object is to blame: nothing is held back, the apply
// fails and is retried.
func TestRestoreFailingForEverythingBlamesNothing(t *testing.T) {
	k := fakekernel.New()
	ts, _ := isolationTables(k)
	k.FailRestore = func(string, string) error { return errors.New("Another app is currently holding the xtables lock") }
	if _, err := ts.Apply(context.Background()); err == nil {
		t.Fatal("apply succeeded with a restore that always fails")
	}
	if ref := ts.Refused(); len(ref) != 0 {
		t.Errorf("a global failure held back %+v", ref)
	}
	k.FailRestore = nil
	if _, err := ts.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ref := ts.Refused(); !slices.EqualFunc(ref, []Refusal{{Chain: "cali-pi-bad"}}, func(a, b Refusal) bool { return a.Chain == b.Chain }) {
		t.Errorf("refused %+v", ref)
	}
}

// The same with the real tools, both backends, in the test's namespace:
// a policy chain matching a set that does not exist is enforced as a
// drop, everything else is written.
func TestRefusedChainIsIsolatedKernel(t *testing.T) {
	netlab.Require(t)
	for _, backend := range []string{Legacy, NFT} {
		t.Run(backend, func(t *testing.T) {
			cmds, err := CommandsFor(backend, 4, 0)
			if err != nil {
				netlab.Unavailable(t, "%v", err)
			}
			m := NewMetrics(nil)
			ts := NewTables(4, cmds.Runner(), Options{InsertMode: true, Metrics: m,
				FailClosed: func(c string) bool { return strings.HasPrefix(c, "cali-pi-") }})
			f := ts.Filter
			f.SetInserts("FORWARD", []rs.Rule{{Action: rs.Jump{Chain: "cali-FORWARD"}}})
			f.UpdateChain(&rs.Chain{Name: "cali-FORWARD", Rules: []rs.Rule{{Action: rs.Jump{Chain: "cali-pi-good"}}, {Action: rs.Jump{Chain: "cali-pi-bad"}}}})
			f.UpdateChain(&rs.Chain{Name: "cali-pi-good", Rules: []rs.Rule{{Match: rs.Match{}.Protocol(tcp).DestPorts(rs.Port(80)), Action: rs.Accept{}}}})
			f.UpdateChain(&rs.Chain{Name: "cali-pi-bad", Rules: []rs.Rule{{Match: rs.Match{}.SourceIPSet("cali40s:nosuchset"), Action: rs.Accept{}}}})
			ctx := context.Background()
			if _, err := ts.Apply(ctx); err != nil {
				t.Fatalf("apply: %v", err)
			}
			out, err := exec.Command(cmds.Save, "-t", "filter").CombinedOutput()
			if err != nil {
				t.Fatal(err)
			}
			s := string(out)
			for _, want := range []string{"-A FORWARD -m comment --comment \"cali:", "-j cali-FORWARD", "--dports 80 -j ACCEPT", "-A cali-pi-bad -m comment"} {
				if !strings.Contains(s, want) {
					t.Errorf("kernel lacks %q:\n%s", want, s)
				}
			}
			for _, l := range strings.Split(s, "\n") {
				if strings.HasPrefix(l, "-A cali-pi-bad") && !strings.HasSuffix(l, "-j DROP") {
					t.Errorf("the refused chain is not a drop: %s", l)
				}
			}
			if ref := ts.Refused(); len(ref) != 1 || ref[0].Chain != "cali-pi-bad" || ref[0].Action != "drop" {
				t.Errorf("refused %+v", ref)
			} else {
				t.Logf("refused, as the kernel said: %v", ref[0].Err)
			}
			// Clean up for the other backend.
			if _, err := NewTables(4, cmds.Runner(), Options{InsertMode: true}).Apply(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// noLines hides which line failed, as iptables-nft-restore does for what
// the kernel refuses at COMMIT: isolation bisects instead.
type noLines struct{ Runner }

func (r noLines) Restore(ctx context.Context, script string) error {
	if err := r.Runner.Restore(ctx, script); err != nil {
		return errors.New("iptables-nft-restore: COMMIT failed")
	}
	return nil
}

// Without a line number the refused chain is found by bisection, in a
// number of restores that grows with the logarithm of the changes.
func TestRefusedChainFoundByBisection(t *testing.T) {
	k := fakekernel.New()
	m := NewMetrics(nil)
	ts := NewTables(4, noLines{k.IPTables(4)}, Options{Metrics: m, FailClosed: func(c string) bool { return strings.HasPrefix(c, "cali-pi-") }})
	var jumps []rs.Rule
	for i := range 200 {
		name := fmt.Sprintf("cali-pi-%03d", i)
		var r rs.Rule
		if i == 137 {
			r = rs.Rule{Match: rs.Match{}.SourceIPSet("cali40s:missing"), Action: rs.Accept{}}
		} else {
			r = rs.Rule{Match: rs.Match{}.Protocol(tcp).DestPorts(rs.Port(uint16(1000 + i))), Action: rs.Accept{}}
		}
		ts.Filter.UpdateChain(&rs.Chain{Name: name, Rules: []rs.Rule{r}})
		jumps = append(jumps, rs.Rule{Action: rs.Jump{Chain: name}})
	}
	ts.Filter.UpdateChain(&rs.Chain{Name: "cali-tw-x", Rules: jumps})
	before := testutil.ToFloat64(m.restoreCalls)
	if _, err := ts.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ref := ts.Refused(); len(ref) != 1 || ref[0].Chain != "cali-pi-137" {
		t.Fatalf("refused %+v, want cali-pi-137", ref)
	}
	if got := rules(t, k, "cali-pi-136"); !strings.Contains(got, "1136") {
		t.Errorf("cali-pi-136: %s", got)
	}
	if n := testutil.ToFloat64(m.restoreCalls) - before; n > 2+1+2*8+2 {
		t.Errorf("%v restores to find one refused chain among 201", n)
	} else {
		t.Logf("%v restores to find one refused chain among 201 changes", n)
	}
}
