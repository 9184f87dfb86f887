package ipsets

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"ocelot/contract"
	"ocelot/internal/netlab"
)

// members parses members as ipset prints them.
func members(t *testing.T, typ string, ss ...string) []contract.Member {
	t.Helper()
	var out []contract.Member
	for _, s := range ss {
		m, ok := parseMember(typ, s)
		if !ok {
			t.Fatalf("bad member %q", s)
		}
		out = append(out, m)
	}
	return out
}

func nets(t *testing.T, ss ...string) []contract.Member { return members(t, TypeNet, ss...) }

func TestMain(m *testing.M) { netlab.Main(m) }

func TestNames(t *testing.T) {
	s := New(4, Options{MaxSize: 1048576})
	if got := s.Name("s:bnhJRqUSRy3lLnoKpL4N8es39Kv7B1tayge5xQ"); got != "cali40s:bnhJRqUSRy3lLnoKpL4N8es" {
		t.Errorf("name %q (Felix: cali40s:bnhJRqUSRy3lLnoKpL4N8es)", got)
	}
	if got := New(6, Options{}).Name("n:x"); got != "cali60n:x" {
		t.Errorf("v6 name %q", got)
	}
}

// Contains answers as the kernel matches: a hash:net set by network, a
// hash:ip,port set by address, protocol and port; other families never.
// A member change of one family leaves the other family's driver with
// nothing to write (so the dataplane does not wake it).
func TestOtherFamilyNotDirty(t *testing.T) {
	v4, v6 := New(4, Options{MaxSize: 1024}), New(6, Options{MaxSize: 1024})
	for _, s := range []*IPSets{v4, v6} {
		s.Replace("s:a", TypeNet, nil)
		clear(s.dirty)
		s.kernel = map[string]*kernelSet{}
		s.AddMembers("s:a", nets(t, "198.18.0.7"))
	}
	if !v4.Dirty() {
		t.Error("the IPv4 driver has an IPv4 member to write and is not dirty")
	}
	if v6.Dirty() {
		t.Error("the IPv6 driver is dirty after an IPv4 member change")
	}
}

func TestContains(t *testing.T) {
	s := New(4, Options{})
	s.Replace("s:a", TypeNet, nets(t, "10.0.0.1", "10.1.0.0/16", "2001:db8::1"))
	s.Replace("n:a", TypeIPAndPort, members(t, TypeIPAndPort, "10.0.0.3,tcp:80"))
	for _, c := range []struct {
		id    string
		addr  string
		proto uint8
		port  uint16
		want  bool
	}{
		{"s:a", "10.0.0.1", 0, 0, true}, {"s:a", "10.0.0.2", 0, 0, false}, {"s:a", "10.1.200.3", 0, 0, true},
		{"s:a", "2001:db8::1", 0, 0, false}, {"s:none", "10.0.0.1", 0, 0, false},
		{"n:a", "10.0.0.3", 6, 80, true}, {"n:a", "10.0.0.3", 17, 80, false}, {"n:a", "10.0.0.3", 6, 81, false},
	} {
		if got := s.Contains(c.id, netip.MustParseAddr(c.addr), c.proto, c.port); got != c.want {
			t.Errorf("%s contains %s %d/%d: %v, want %v", c.id, c.addr, c.proto, c.port, got, c.want)
		}
	}
	if n, ok := s.Size("s:a"); n != 2 || !ok {
		t.Errorf("size %d %v, want 2 (the IPv6 member is not this family's)", n, ok)
	}
}

func TestPlanUpdates(t *testing.T) {
	s := New(4, Options{MaxSize: 1000})
	s.kernel = parseSave([]byte(`create cali40s:a hash:net family inet hashsize 1024 maxelem 1000 bucketsize 12 initval 0x1
add cali40s:a 10.0.0.1
add cali40s:a 10.0.0.9
create cali40s:b hash:net family inet hashsize 1024 maxelem 1000
create other hash:net family inet maxelem 10
add other 1.2.3.4
create cali60s:a hash:net family inet6 maxelem 1000
`), "cali4")
	if _, ok := s.kernel["other"]; ok || len(s.kernel) != 2 {
		t.Fatalf("foreign or other-family sets read as ours: %v", s.kernel)
	}
	s.Replace("s:a", TypeNet, nets(t, "10.0.0.1", "10.0.0.2"))                    // existing: diff against what was read
	s.Replace("s:b", TypeIPAndPort, members(t, TypeIPAndPort, "10.0.0.3,tcp:80")) // type changed: rebuild and swap
	s.Replace("s:new", TypeNet, nets(t, "10.0.0.5", "10.1.0.0/16"))               // missing: create
	want := `add cali40s:a 10.0.0.2
del cali40s:a 10.0.0.9
create cali4t1 hash:ip,port family inet maxelem 1000
add cali4t1 10.0.0.3,tcp:80
swap cali40s:b cali4t1
destroy cali4t1
create cali40s:new hash:net family inet maxelem 1000
add cali40s:new 10.0.0.5
add cali40s:new 10.1.0.0/16
`
	if got := render(s.planUpdates(), "inet"); got != want {
		t.Errorf("plan:\n%s\nwant:\n%s", got, want)
	}

	// After a write, only changed members are written, and add+remove cancels.
	for name := range s.dirty {
		s.kernel[name] = &kernelSet{meta: s.desired[name].meta}
		s.desired[name].touched, s.desired[name].full = nil, false
	}
	clear(s.dirty)
	s.AddMembers("s:a", nets(t, "10.0.0.7", "10.0.0.8"))
	s.RemoveMembers("s:a", nets(t, "10.0.0.1", "10.0.0.8"))
	if got := render(s.planUpdates(), "inet"); got != "del cali40s:a 10.0.0.1\nadd cali40s:a 10.0.0.7\n" {
		t.Errorf("delta plan:\n%s", got)
	}
}

// TestKernel drives real sets in the test's namespace.
func TestKernel(t *testing.T) {
	netlab.Require(t)
	ctx := context.Background()
	m := NewMetrics(nil)
	s := New(4, Options{MaxSize: 65536, Netlink: kernelNetlink(t), Metrics: m})
	s.Replace("s:one", TypeNet, nets(t, "198.18.0.1", "198.18.0.2"))
	s.Replace("n:port", TypeIPAndPort, members(t, TypeIPAndPort, "198.18.0.1,tcp:80"))
	if err := s.ApplyUpdates(ctx); err != nil {
		t.Fatal(err)
	}
	save := func() string { return netlab.Run(t, "ipset", "save") }
	out := save()
	for _, want := range []string{"add cali40s:one 198.18.0.1", "add cali40s:one 198.18.0.2", "add cali40n:port 198.18.0.1,tcp:80"} {
		if !strings.Contains(out, want) {
			t.Errorf("kernel lacks %q:\n%s", want, out)
		}
	}
	// A one-member change writes one line, over netlink: no ipset run.
	lines, calls, nl := s.LinesWritten, testutil.ToFloat64(m.calls), testutil.ToFloat64(m.netlinkChanges)
	s.AddMembers("s:one", nets(t, "198.18.0.3", "198.18.0.9"))
	s.RemoveMembers("s:one", nets(t, "198.18.0.9"))
	if err := s.ApplyUpdates(ctx); err != nil || s.LinesWritten-lines != 1 {
		t.Errorf("one-member change wrote %d lines (err %v)", s.LinesWritten-lines, err)
	}
	if c, n := testutil.ToFloat64(m.calls)-calls, testutil.ToFloat64(m.netlinkChanges)-nl; c != 0 || n != 1 {
		t.Errorf("one-member change: %v ipset runs and %v netlink changes, want 0 and 1", c, n)
	}
	if out := save(); !strings.Contains(out, "add cali40s:one 198.18.0.3") || strings.Contains(out, "198.18.0.9") {
		t.Errorf("netlink change not in the kernel:\n%s", out)
	}
	// Removing over netlink, and a member already gone (-exist semantics).
	netlab.Run(t, "ipset", "del", "cali40s:one", "198.18.0.2")
	s.RemoveMembers("s:one", nets(t, "198.18.0.2", "198.18.0.3"))
	s.AddMembers("s:one", nets(t, "198.18.0.0/24"))
	if err := s.ApplyUpdates(ctx); err != nil {
		t.Fatal(err)
	}
	if out := save(); strings.Contains(out, "198.18.0.3") || !strings.Contains(out, "add cali40s:one 198.18.0.0/24") {
		t.Errorf("netlink removal/CIDR add not in the kernel:\n%s", out)
	}
	// A change to a set of another type goes to ipset restore.
	calls = testutil.ToFloat64(m.calls)
	s.AddMembers("n:port", members(t, TypeIPAndPort, "198.18.0.2,tcp:443"))
	if err := s.ApplyUpdates(ctx); err != nil || testutil.ToFloat64(m.calls)-calls != 1 {
		t.Errorf("hash:ip,port change: %v ipset runs (err %v), want 1", testutil.ToFloat64(m.calls)-calls, err)
	}
	s.RemoveMembers("s:one", nets(t, "198.18.0.0/24"))
	s.AddMembers("s:one", nets(t, "198.18.0.3"))
	if err := s.ApplyUpdates(ctx); err != nil {
		t.Fatal(err)
	}
	// Drift: someone flushes a set and adds a stray one; a resync repairs it.
	netlab.Run(t, "ipset", "flush", "cali40s:one")
	netlab.Run(t, "ipset", "create", "cali40s:stray", "hash:net")
	s.Resync()
	if err := s.ApplyUpdates(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyDeletions(ctx); err != nil {
		t.Fatal(err)
	}
	out = save()
	if !strings.Contains(out, "add cali40s:one 198.18.0.3") || strings.Contains(out, "cali40s:stray") {
		t.Errorf("not repaired:\n%s", out)
	}
	// Removal: destroyed by ApplyDeletions, not before.
	s.Remove("n:port")
	if err := s.ApplyUpdates(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(save(), "cali40n:port") {
		t.Error("set destroyed before ApplyDeletions")
	}
	if err := s.ApplyDeletions(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(save(), "cali40n:port") {
		t.Error("set not destroyed")
	}
	// A set the kernel will not destroy (a rule still uses it) is tried
	// again at the next ApplyDeletions, with no other change in between;
	// a member change alone does not make it look again.
	s.Replace("s:held", TypeNet, nets(t, "198.18.0.7"))
	if err := s.ApplyUpdates(ctx); err != nil {
		t.Fatal(err)
	}
	rule := []string{"INPUT", "-m", "set", "--match-set", "cali40s:held", "src", "-j", "ACCEPT"}
	netlab.Run(t, "iptables", append([]string{"-A"}, rule...)...)
	s.Remove("s:held")
	if err := s.ApplyDeletions(ctx); err == nil {
		t.Fatal("destroying a set a rule uses did not fail")
	}
	netlab.Run(t, "iptables", append([]string{"-D"}, rule...)...)
	if err := s.ApplyDeletions(ctx); err != nil || strings.Contains(save(), "cali40s:held") {
		t.Errorf("a set released by its rule was not destroyed at the next try (err %v)", err)
	}
	netlab.Run(t, "ipset", "create", "cali40s:late", "hash:net")
	s.AddMembers("s:one", nets(t, "198.18.0.8"))
	if err := s.ApplyUpdates(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyDeletions(ctx); err != nil || !strings.Contains(save(), "cali40s:late") {
		t.Errorf("a member change scanned the kernel's sets (err %v)", err)
	}
	s.Resync() // the next read finds it
	s.Remove("s:one")
	s.ApplyUpdates(ctx)
	s.ApplyDeletions(ctx)
	if strings.Contains(save(), "cali4") {
		t.Errorf("sets left:\n%s", save())
	}
}

// kernelNetlink is netlink in the test's namespace.
func kernelNetlink(t *testing.T) *NetlinkSocket {
	t.Helper()
	nl, err := OpenNetlink(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nl.Close() })
	return nl
}

// The netlink writer: several sets' additions and deletions in one write,
// networks and IPv6 too, with -exist semantics; a set that does not exist
// is an error.
func TestNetlinkSocket(t *testing.T) {
	netlab.Require(t)
	netlab.Run(t, "ipset", "create", "cali40s:nla", "hash:net", "family", "inet")
	netlab.Run(t, "ipset", "create", "cali60s:nlb", "hash:net", "family", "inet6")
	t.Cleanup(func() { netlab.Try("ipset", "destroy", "cali40s:nla"); netlab.Try("ipset", "destroy", "cali60s:nlb") })
	nl := kernelNetlink(t)
	p := netip.MustParsePrefix
	err := nl.Write([]Change{
		{Set: "cali40s:nla", Add: true, Nets: []netip.Prefix{p("198.18.0.1/32"), p("198.18.0.2/32"), p("198.18.8.0/24")}},
		{Set: "cali60s:nlb", Add: true, Nets: []netip.Prefix{p("2001:db8::1/128"), p("2001:db8:1::/64")}},
		{Set: "cali40s:nla", Nets: []netip.Prefix{p("198.18.0.2/32"), p("198.18.0.77/32")}}, // one absent: no error
		{Set: "cali40s:nla", Add: true, Nets: []netip.Prefix{p("198.18.0.1/32")}},           // present: no error
	})
	if err != nil {
		t.Fatal(err)
	}
	got := netlab.Run(t, "ipset", "save")
	for _, want := range []string{"add cali40s:nla 198.18.0.1\n", "add cali40s:nla 198.18.8.0/24\n", "add cali60s:nlb 2001:db8::1\n", "add cali60s:nlb 2001:db8:1::/64\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("the kernel lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "198.18.0.2\n") {
		t.Errorf("a deleted member remains:\n%s", got)
	}
	if err := nl.Write([]Change{{Set: "cali40s:none", Add: true, Nets: []netip.Prefix{p("198.18.0.1/32")}}}); err == nil {
		t.Error("a write to a set that does not exist succeeded")
	}
	// The socket still works after an error.
	if err := nl.Write([]Change{{Set: "cali40s:nla", Add: true, Nets: []netip.Prefix{p("198.18.0.3/32")}}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(netlab.Run(t, "ipset", "list", "cali40s:nla"), "198.18.0.3") {
		t.Error("the write after an error did not take effect")
	}
}
