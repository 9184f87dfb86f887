package dataplane

// Unit tests of the managers' ownership and reference counting. They run
// on dataplane/internal/fakekernel, as a normal user and without network
// namespaces; the fake refuses what the kernel refuses (a jump to a
// missing chain, deleting a chain something jumps to, matching a missing
// set, destroying a set a rule matches), so a wrong order fails here.

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ocelot/contract"
	"ocelot/dataplane/hostaddrs"
	"ocelot/dataplane/ifacemon"
	"ocelot/dataplane/internal/fakekernel"
	ipt "ocelot/dataplane/iptables"
	"ocelot/dataplane/livemigration"
	"ocelot/dataplane/rules"
)

// harness is a dataplane on a fake kernel, driven directly: messages in,
// apply, look at the kernel.
type harness struct {
	t     *testing.T
	k     *fakekernel.Kernel
	d     *Dataplane
	mu    sync.Mutex
	st    map[contract.EndpointID]string
	hst   map[string]string // host endpoint statuses
	clock *fakeClock

	hostAddrs map[string][]netip.Addr // host interfaces' addresses reported (hostIfaces)
}

func fakeKernel(k *fakekernel.Kernel) kernel {
	return kernel{
		tc:   k,
		tick: 15.625,
		listenPacket: func(iface string) (livemigration.Capture, error) {
			c, err := k.ListenPacket(iface)
			if err != nil {
				return nil, err
			}
			return c, nil
		},
		iptables:         func(v int) (ipt.Runner, error) { return k.IPTables(v), nil },
		iptablesOf:       func(_ string, v int) (ipt.Runner, error) { return k.IPTables(v), nil },
		iptablesBackends: func() []string { return []string{ipt.Legacy} },
		nft:              k.NFT(),
		ipsets:           k.IPSets(),
		ipsetsNL:         k.IPSets(),
		routes:           k,
		sysctls:          k,
		conntrack:        k,
		watchIfaces: func(ctx context.Context, out chan<- ifacemon.Event) {
			var ev ifacemon.Event
			for _, l := range k.Links() {
				ev.States = append(ev.States, ifacemon.State{Name: l.Name, Index: l.Index, Up: l.Up, Running: l.Running})
			}
			ev.Synced = true
			select {
			case out <- ev:
			case <-ctx.Done():
			}
		},
		watchHostIfaces: func(ctx context.Context, out chan<- ifacemon.Event) {
			select {
			case out <- ifacemon.Event{Synced: true}:
			case <-ctx.Done():
			}
		},
		watchHost: func(ctx context.Context, out chan<- hostaddrs.Snapshot) {
			select {
			case out <- k.HostAddrs():
			case <-ctx.Done():
			}
		},
	}
}

func newHarness(t *testing.T) *harness { return newHarnessWith(t, nil) }

// newHarnessWith is newHarness with a configuration changed by edit.
func newHarnessWith(t *testing.T, edit func(*Config)) *harness {
	h := &harness{t: t, k: fakekernel.New(), st: map[contract.EndpointID]string{}, hst: map[string]string{}, clock: &fakeClock{},
		hostAddrs: map[string][]netip.Addr{}}
	cfg := testConfig(t)
	if edit != nil {
		edit(&cfg)
	}
	cfg.OnStatus = func(id contract.EndpointID, s string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.st[id] = s
	}
	cfg.OnHostEndpointStatus = func(id, s string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.hst[id] = s
	}
	k := fakeKernel(h.k)
	k.clock = h.clock
	d, err := newDataplane(cfg, nil, k)
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	d.routes.synced, d.hostEPs.synced = true, true
	d.onHost(h.k.HostAddrs())
	d.routes.OnEtcd(nil)
	return h
}

func (h *harness) send(msgs ...contract.Message) { h.t.Helper(); h.d.onMessages(msgs) }

func (h *harness) apply() {
	h.t.Helper()
	if _, err := h.d.apply(context.Background()); err != nil {
		h.t.Fatalf("apply: %v", err)
	}
}

// plug creates a workload interface and tells the dataplane.
func (h *harness) plug(name string) {
	idx := h.k.AddLink(name, true, true)
	h.d.onIfaces(ifacemon.Event{States: []ifacemon.State{{Name: name, Index: idx, Up: true, Running: true}}, Synced: true})
}

func (h *harness) status(id contract.EndpointID) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st[id]
}

// chain returns a filter chain of IPv4, failing if it is absent.
func (h *harness) chain(name string) []string {
	h.t.Helper()
	rs, ok := h.k.Chain(4, "filter", name)
	if !ok {
		h.t.Fatalf("no chain %s in the kernel; have %v", name, h.k.Chains(4, "filter"))
	}
	return rs
}

func (h *harness) hasChain(name string) bool {
	_, ok := h.k.Chain(4, "filter", name)
	return ok
}

var targetRE = regexp.MustCompile(`--(?:jump|goto) (\S+)`)

// targets lists the chains a chain's rules jump or go to.
func targets(rules []string) []string {
	var out []string
	for _, r := range rules {
		if m := targetRE.FindStringSubmatch(r); m != nil && strings.HasPrefix(m[1], "cali-") {
			out = append(out, m[1])
		}
	}
	return out
}

func (h *harness) setName(id string) string { return h.d.families[0].sets.Name(id) }

func (h *harness) hasSet(id string) bool {
	_, ok := h.k.Set(h.setName(id))
	return ok
}

// Fixtures.

func epID(name string) contract.EndpointID {
	return contract.EndpointID{Orchestrator: "openstack", WorkloadID: "ns/" + name, EndpointID: "port-" + name}
}

func polID(name string) contract.PolicyID {
	return contract.PolicyID{Kind: "NetworkPolicy", Namespace: "ns", Name: name}
}

func endpoint(id contract.EndpointID, iface, ip string, pols ...string) contract.EndpointUpdate {
	var ids []contract.PolicyID
	for _, p := range pols {
		ids = append(ids, polID(p))
	}
	return contract.EndpointUpdate{ID: id, Name: iface, MAC: "fa:16:3e:00:00:01",
		IPv4Nets: []netip.Prefix{netip.MustParsePrefix(ip + "/32")},
		Tiers:    []contract.TierPolicies{{Name: "default", DefaultAction: "Deny", Ingress: ids, Egress: ids}}}
}

// policy allows TCP 80 from each of the sets.
func policy(name string, sets ...string) contract.PolicyUpdate {
	tcp := &contract.Protocol{Name: "tcp", Num: 6}
	u := contract.PolicyUpdate{ID: polID(name), Outbound: []contract.Rule{{Action: contract.ActionAllow}}}
	for _, s := range sets {
		u.Inbound = append(u.Inbound, contract.Rule{Action: contract.ActionAllow, Protocol: tcp,
			DstPorts: []contract.PortRange{{First: 80, Last: 80}}, SrcIPSetIDs: []string{s}})
	}
	return u
}

func ipset(id string, addrs ...string) contract.IPSetUpdate {
	u := contract.IPSetUpdate{ID: id, Type: contract.IPSetNet}
	for _, a := range addrs {
		u.Members = append(u.Members, contract.Member{Net: netip.MustParsePrefix(a + "/32")})
	}
	return u
}

func member(a string) contract.Member { return contract.Member{Net: netip.MustParsePrefix(a + "/32")} }

var (
	tw = rules.ToWorkloadChainName
	pi = func(name string) string { return rules.PolicyChainName(polID(name), true) }
)

// Two endpoints name one interface: the least ID owns it (chains, routes,
// status); the other waits and takes over when the owner goes; when both
// are gone, the interface falls back to the dispatch chains' drop.
func TestInterfaceClaimedByTwoEndpoints(t *testing.T) {
	h := newHarness(t)
	h.plug("tap1")
	a, b := epID("a"), epID("b")
	h.send(policy("pa"), policy("pb"), endpoint(b, "tap1", "198.18.0.2", "pb"), endpoint(a, "tap1", "198.18.0.1", "pa"), contract.InSync{})
	h.apply()
	if got := targets(h.chain(tw("tap1"))); !slices.Contains(got, pi("pa")) || slices.Contains(got, pi("pb")) {
		t.Errorf("tap1's chain jumps to %v; want the owner a's policy only", got)
	}
	if got := h.k.Routes("tap1"); !slices.Equal(got, []string{"198.18.0.1/32 proto boot"}) {
		t.Errorf("routes of tap1 %v, want a's address only", got)
	}
	if h.status(a) != "up" || h.status(b) != "down" {
		t.Errorf("statuses a=%q b=%q, want up and down (b is shadowed)", h.status(a), h.status(b))
	}
	if h.hasChain(pi("pb")) {
		t.Error("the shadowed endpoint's policy chain is programmed; nothing jumps to it")
	}

	// The shadowed endpoint changes: the owner's chains stay.
	h.send(endpoint(b, "tap1", "198.18.0.3", "pb"))
	h.apply()
	if got := h.k.Routes("tap1"); !slices.Equal(got, []string{"198.18.0.1/32 proto boot"}) {
		t.Errorf("a shadowed endpoint's update moved tap1's routes: %v", got)
	}

	// The owner goes: b takes the interface.
	h.send(contract.EndpointRemove{ID: a}, contract.PolicyRemove{ID: polID("pa")})
	h.apply()
	if got := targets(h.chain(tw("tap1"))); !slices.Contains(got, pi("pb")) || slices.Contains(got, pi("pa")) {
		t.Errorf("after a went, tap1's chain jumps to %v; want b's policy", got)
	}
	if got := h.k.Routes("tap1"); !slices.Equal(got, []string{"198.18.0.3/32 proto boot"}) {
		t.Errorf("after a went, routes of tap1 %v, want b's address", got)
	}
	if h.status(b) != "up" || h.status(a) != "" {
		t.Errorf("statuses a=%q b=%q, want withdrawn and up", h.status(a), h.status(b))
	}
	if h.hasChain(pi("pa")) {
		t.Error("a's policy chain outlived a and its policy")
	}

	// Both gone: no endpoint chains, no routes, tap1 not in the dispatch.
	h.send(contract.EndpointRemove{ID: b})
	h.apply()
	if h.hasChain(tw("tap1")) || len(h.k.Routes("tap1")) != 0 {
		t.Errorf("tap1 keeps chains or routes with no endpoint: routes %v", h.k.Routes("tap1"))
	}
	if got := strings.Join(h.chain(rules.ChainToWorkloadDispatch), "\n"); strings.Contains(got, "tap1") {
		t.Errorf("dispatch still sends tap1 somewhere:\n%s", got)
	}
}

// A policy used by two endpoints is programmed once and stays until the
// last of them stops using it.
func TestPolicySharedByEndpoints(t *testing.T) {
	h := newHarness(t)
	h.plug("tap1")
	h.plug("tap2")
	a, b := epID("a"), epID("b")
	h.send(ipset("s:web", "198.18.9.1"), policy("shared", "s:web"),
		endpoint(a, "tap1", "198.18.0.1", "shared"), endpoint(b, "tap2", "198.18.0.2", "shared"), contract.InSync{})
	h.apply()
	for _, iface := range []string{"tap1", "tap2"} {
		if !slices.Contains(targets(h.chain(tw(iface))), pi("shared")) {
			t.Errorf("%s does not jump to the shared policy", iface)
		}
	}
	h.chain(pi("shared"))
	if n := len(h.d.policies.users[policyKey(polID("shared"), true)]); n != 2 {
		t.Errorf("shared policy has %d users, want 2", n)
	}

	h.send(contract.EndpointRemove{ID: a})
	h.apply()
	h.chain(pi("shared")) // b still uses it

	// An update that keeps the policy (a new address) keeps the chain.
	h.send(endpoint(b, "tap2", "198.18.0.22", "shared"))
	h.apply()
	h.chain(pi("shared"))
	if got := h.k.Routes("tap2"); !slices.Equal(got, []string{"198.18.0.22/32 proto boot"}) {
		t.Errorf("routes of tap2 after its address changed: %v", got)
	}

	// An endpoint that moves to another policy lets go of this one.
	h.send(policy("other"), endpoint(b, "tap2", "198.18.0.22", "other"))
	h.apply()
	if h.hasChain(pi("shared")) {
		t.Error("the shared policy's chain outlived its last user")
	}
	if _, ok := h.d.policies.users[policyKey(polID("shared"), true)]; ok {
		t.Error("a reference count with no users is kept")
	}
}

// A set used by two policies stays while either uses it, even if calc
// removed it early; it is destroyed after the last rule matching it is
// gone from the kernel, in the same apply.
func TestSetReferencedBySeveralPolicies(t *testing.T) {
	h := newHarness(t)
	h.plug("tap1")
	h.plug("tap2")
	a, b := epID("a"), epID("b")
	h.send(ipset("s:shared", "198.18.9.1"), policy("p1", "s:shared"), policy("p2", "s:shared"),
		endpoint(a, "tap1", "198.18.0.1", "p1"), endpoint(b, "tap2", "198.18.0.2", "p2"), contract.InSync{})
	h.apply()
	if !h.hasSet("s:shared") {
		t.Fatal("set not created")
	}

	// p1 goes: p2 still uses the set.
	h.send(contract.EndpointRemove{ID: a}, contract.PolicyRemove{ID: polID("p1")})
	h.apply()
	if !h.hasSet("s:shared") {
		t.Fatal("set destroyed while p2 uses it")
	}

	// Out of calc's order: the set is removed while p2 still matches it.
	// It stays; enforcement of p2 is intact.
	h.send(contract.IPSetRemove{ID: "s:shared"})
	h.apply()
	if !h.hasSet("s:shared") || !strings.Contains(strings.Join(h.chain(pi("p2")), "\n"), h.setName("s:shared")) {
		t.Fatal("a set a programmed policy matches was removed")
	}
	if !h.d.families[0].sets.Has("s:shared") {
		t.Fatal("a set a programmed policy matches left the desired state (its members would no longer be kept)")
	}

	// p2 stops using it: chain and set both go in one apply, the rule
	// first.
	h.send(policy("p2"))
	h.apply()
	if h.hasSet("s:shared") {
		t.Fatal("set outlived its last user")
	}
	ruleGone := -1
	for i, l := range h.k.Journal() {
		if strings.HasPrefix(l, "ip4tables filter: -A "+pi("p2")) {
			ruleGone = i // the rewrite of p2 without the set
		}
	}
	destroyed := h.k.JournalIndex("ipset: destroy " + h.setName("s:shared"))
	if ruleGone < 0 || destroyed < ruleGone {
		t.Errorf("set destroyed at journal line %d, the rule stopped matching it at %d", destroyed, ruleGone)
	}
}

// Calc moves endpoints to their new policies before the old ones go;
// applied together or one message at a time, the kernel never has an
// endpoint jumping to a missing chain, and a policy chain an endpoint
// still jumps to survives the removal of its policy.
func TestEndpointsMoveBeforePoliciesGo(t *testing.T) {
	for _, oneByOne := range []bool{false, true} {
		t.Run(fmt.Sprint("one by one ", oneByOne), func(t *testing.T) {
			h := newHarness(t)
			h.plug("tap1")
			a := epID("a")
			h.send(ipset("s:old", "198.18.9.1"), policy("old", "s:old"), endpoint(a, "tap1", "198.18.0.1", "old"), contract.InSync{})
			h.apply()
			steps := []contract.Message{ipset("s:new", "198.18.9.2"), policy("new", "s:new"),
				endpoint(a, "tap1", "198.18.0.1", "new"), contract.PolicyRemove{ID: polID("old")}, contract.IPSetRemove{ID: "s:old"}}
			if oneByOne {
				for _, m := range steps {
					h.send(m)
					h.apply()
					for _, target := range targets(h.chain(tw("tap1"))) {
						h.chain(target) // fails if the endpoint jumps to a chain that is gone
					}
				}
			} else {
				h.send(steps...)
				h.apply()
			}
			if got := targets(h.chain(tw("tap1"))); !slices.Contains(got, pi("new")) || slices.Contains(got, pi("old")) {
				t.Errorf("tap1 jumps to %v", got)
			}
			if h.hasChain(pi("old")) || h.hasSet("s:old") || !h.hasSet("s:new") {
				t.Errorf("old chain %v, old set %v, new set %v", h.hasChain(pi("old")), h.hasSet("s:old"), h.hasSet("s:new"))
			}
		})
	}

	// Out of order: the policy is removed while the endpoint still jumps
	// to it. The chain stays (enforced) until the endpoint moves.
	h := newHarness(t)
	h.plug("tap1")
	a := epID("a")
	h.send(policy("old"), endpoint(a, "tap1", "198.18.0.1", "old"), contract.InSync{})
	h.apply()
	h.send(contract.PolicyRemove{ID: polID("old")})
	h.apply()
	h.chain(pi("old"))
	h.send(policy("new"), endpoint(a, "tap1", "198.18.0.1", "new"))
	h.apply()
	if h.hasChain(pi("old")) {
		t.Error("removed policy's chain outlived its last user")
	}
}

// Dispatch child chains are removed when their bucket empties, whatever
// characters (of those an interface name may hold) the names use: the
// manager removes what it programmed, not names it guesses.
func TestDispatchChildChainsFollowWhatWasProgrammed(t *testing.T) {
	h := newHarness(t)
	names := []string{"tap_1", "tap_2", "tap.1", "tap.2", "tapx1", "tapx2"}
	var msgs []contract.Message
	for i, n := range names {
		h.plug(n)
		msgs = append(msgs, endpoint(epID(fmt.Sprint("e", i)), n, fmt.Sprintf("198.18.0.%d", i+1)))
	}
	h.send(append(msgs, contract.InSync{})...)
	h.apply()
	for _, c := range []string{rules.ChainToWorkloadDispatch + "-_", rules.ChainToWorkloadDispatch + "-."} {
		h.chain(c)
	}
	h.send(contract.EndpointRemove{ID: epID("e0")}, contract.EndpointRemove{ID: epID("e1")})
	h.apply()
	if h.hasChain(rules.ChainToWorkloadDispatch+"-_") || h.hasChain(rules.ChainFromWorkloadDispatch+"-_") {
		t.Errorf("an emptied dispatch bucket's chains remain: %v", h.k.Chains(4, "filter"))
	}
	h.chain(rules.ChainToWorkloadDispatch + "-.")
	// One name left in a bucket: a direct goto, no child chain.
	h.send(contract.EndpointRemove{ID: epID("e2")})
	h.apply()
	if h.hasChain(rules.ChainToWorkloadDispatch + "-.") {
		t.Error("a dispatch child chain for a single interface remains")
	}
}

// The message set is closed; an unknown message is a bug and must not be
// dropped silently.
func TestUnknownMessagePanics(t *testing.T) {
	h := newHarness(t)
	defer func() {
		if recover() == nil {
			t.Error("an unknown message was dropped silently")
		}
	}()
	h.send(nil)
}

// Nothing is written before calc's InSync and a complete interface
// listing; then everything is, once.
func TestNothingWrittenBeforeInSync(t *testing.T) {
	k := fakekernel.New()
	k.AddLink("tap1", true, true)
	var once sync.Once
	ready := make(chan struct{})
	cfg := testConfig(t)
	cfg.OnInSync = func() { once.Do(func() { close(ready) }) }
	d, err := newDataplane(cfg, nil, fakeKernel(k))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	d.Send([]contract.Message{policy("p"), endpoint(epID("a"), "tap1", "198.18.0.1", "p")})
	time.Sleep(100 * time.Millisecond) // what would be written is written within this
	for _, l := range k.Journal() {
		if !strings.HasPrefix(l, "sysctl: net/") || strings.Contains(l, "tap1") {
			t.Fatalf("written before InSync: %s", l)
		}
	}
	d.Send([]contract.Message{contract.InSync{}})
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("no apply after InSync")
	}
	if _, ok := k.Chain(4, "filter", pi("p")); !ok {
		t.Error("the policy's chain is not programmed after InSync")
	}
}

// Conntrack: nothing is forgotten by the first apply; a policy change
// forgets the flows of every endpoint using the policy; a member leaving
// a set forgets the flows between it and those endpoints only.
func TestConntrackForgetsWhatAChangeAffects(t *testing.T) {
	h := newHarness(t)
	h.plug("tap1")
	h.plug("tap2")
	h.plug("tap3")
	a, b, c := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	remote, other := netip.MustParseAddr("198.18.9.1"), netip.MustParseAddr("198.18.9.2")
	for _, local := range []netip.Addr{a, b, c} {
		h.k.AddFlow(remote, local)
		h.k.AddFlow(other, local)
	}
	all := h.k.Flows()
	h.send(ipset("s:grp", "198.18.9.1", "198.18.9.2"), policy("p", "s:grp"), policy("q"),
		endpoint(epID("a"), "tap1", "198.18.0.1", "p"), endpoint(epID("b"), "tap2", "198.18.0.2", "p"),
		endpoint(epID("c"), "tap3", "198.18.0.3", "q"), contract.InSync{})
	h.apply()
	if got := h.k.Flows(); !slices.Equal(got, all) {
		t.Fatalf("the first apply forgot flows: %v", got)
	}

	h.send(contract.IPSetDelta{ID: "s:grp", Removed: []contract.Member{member("198.18.9.1")}})
	h.apply()
	want := []string{"198.18.9.1->198.18.0.3", "198.18.9.2->198.18.0.1", "198.18.9.2->198.18.0.2", "198.18.9.2->198.18.0.3"}
	if got := h.k.Flows(); !slices.Equal(got, want) {
		t.Errorf("after 198.18.9.1 left the set: %v, want %v", got, want)
	}

	tcp := &contract.Protocol{Name: "tcp", Num: 6}
	changed := policy("p", "s:grp")
	changed.Inbound[0].DstPorts[0] = contract.PortRange{First: 443, Last: 443}
	changed.Inbound[0].Protocol = tcp
	h.send(changed)
	h.apply()
	want = []string{"198.18.9.1->198.18.0.3", "198.18.9.2->198.18.0.3"}
	if got := h.k.Flows(); !slices.Equal(got, want) {
		t.Errorf("after p changed: %v, want only c's flows (c does not use p): %v", got, want)
	}
}

// An interface gets its sysctls and routes when it comes up; its endpoint
// is up only when it has them; a sysctl that cannot be written keeps it
// down, and the next apply tries again.
func TestInterfaceSysctlsRoutesAndStatus(t *testing.T) {
	h := newHarness(t)
	a := epID("a")
	h.send(policy("p"), endpoint(a, "tap1", "198.18.0.1", "p"), contract.InSync{})
	h.apply()
	if h.status(a) != "down" {
		t.Errorf("status %q without an interface, want down", h.status(a))
	}
	h.k.FailSysctl("net/ipv4/conf/tap1/proxy_arp", fmt.Errorf("permission denied"))
	h.plug("tap1")
	if _, err := h.d.apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h.status(a) != "down" || !h.d.dirty() {
		t.Errorf("with a failed sysctl: status %q, dirty %v; want down and a retry pending", h.status(a), h.d.dirty())
	}
	h.k.FailSysctl("net/ipv4/conf/tap1/proxy_arp", nil)
	h.apply()
	for path, want := range map[string]string{"net/ipv4/conf/tap1/proxy_arp": "1", "net/ipv4/conf/tap1/route_localnet": "1",
		"net/ipv4/conf/tap1/forwarding": "1", "net/ipv6/conf/tap1/accept_ra": "0", "net/ipv6/conf/tap1/proxy_ndp": "1"} {
		if got := h.k.Sysctl(path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if h.status(a) != "up" {
		t.Errorf("status %q, want up", h.status(a))
	}
	if got := h.k.Neighs("tap1"); !slices.Equal(got, []string{"198.18.0.1 fa:16:3e:00:00:01"}) {
		t.Errorf("neighbours %v", got)
	}
	// Operationally down: routes go, status down.
	_ = h.k.SetLink("tap1", true, false)
	h.d.onIfaces(ifacemon.Event{States: []ifacemon.State{{Name: "tap1", Index: 11, Up: true, Running: false}}})
	h.apply()
	if len(h.k.Routes("tap1")) != 0 || h.status(a) != "down" {
		t.Errorf("interface down: routes %v, status %q", h.k.Routes("tap1"), h.status(a))
	}
}
