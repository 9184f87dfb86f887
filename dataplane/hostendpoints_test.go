package dataplane

// Unit tests of the host-endpoint manager on the fake kernel: resolution,
// the chains of the three tables and their references, the failsafes,
// statuses.

import (
	"context"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	"ocelot/contract"
	"ocelot/dataplane/hostaddrs"
	"ocelot/dataplane/ifacemon"
	"ocelot/dataplane/internal/fakekernel"
	"ocelot/dataplane/rules"
	"ocelot/dataplane/ruleset"
)

func gnpID(name string) contract.PolicyID {
	return contract.PolicyID{Kind: "GlobalNetworkPolicy", Name: name}
}

// hep is a host endpoint with one policy of each kind, named after it:
// <id>-n (normal), <id>-u (untracked), <id>-p (pre-DNAT), <id>-f (normal
// and forward).
func hep(id, iface string, ips ...string) contract.HostEndpointUpdate {
	u := contract.HostEndpointUpdate{ID: id, InterfaceName: iface,
		Tiers: []contract.TierPolicies{{Name: "default", DefaultAction: "Deny",
			Ingress: []contract.PolicyID{gnpID(id + "-n"), gnpID(id + "-f")}, Egress: []contract.PolicyID{gnpID(id + "-n")}}},
		UntrackedTiers: []contract.TierPolicies{{Name: "default", DefaultAction: "Pass",
			Ingress: []contract.PolicyID{gnpID(id + "-u")}, Egress: []contract.PolicyID{gnpID(id + "-u")}}},
		PreDNATTiers: []contract.TierPolicies{{Name: "default", DefaultAction: "Pass", Ingress: []contract.PolicyID{gnpID(id + "-p")}}},
		ForwardTiers: []contract.TierPolicies{{Name: "default", DefaultAction: "Deny", Ingress: []contract.PolicyID{gnpID(id + "-f")}}},
	}
	for _, ip := range ips {
		u.ExpectedIPv4 = append(u.ExpectedIPv4, netip.MustParseAddr(ip))
	}
	return u
}

func hepPolicies(id string) []contract.Message {
	var out []contract.Message
	for _, k := range []string{"-n", "-u", "-p", "-f"} {
		out = append(out, contract.PolicyUpdate{ID: gnpID(id + k), Inbound: []contract.Rule{{Action: contract.ActionDeny}},
			Outbound: []contract.Rule{{Action: contract.ActionAllow}}})
	}
	return out
}

// testHostIface is a host interface with its addresses, as the host
// interface monitor and the host address watcher report them.
type testHostIface struct {
	ifacemon.State
	addrs []netip.Addr
}

// hostIfaces reports host interfaces to the host endpoint manager: their
// states, and a snapshot of every address reported so far (an interface
// gone takes its addresses with it).
func (h *harness) hostIfaces(ifaces ...testHostIface) {
	reportHostIfaces(h.d, h.hostAddrs, ifaces...)
}

func reportHostIfaces(d *Dataplane, known map[string][]netip.Addr, ifaces ...testHostIface) {
	var ev ifacemon.Event
	for _, i := range ifaces {
		ev.States = append(ev.States, i.State)
		if i.Gone {
			delete(known, i.Name)
		} else {
			known[i.Name] = i.addrs
		}
	}
	d.hostEPs.OnIfaces(ev)
	var s hostaddrs.Snapshot
	for name, addrs := range known {
		for _, a := range addrs {
			s.Addrs = append(s.Addrs, hostaddrs.Addr{IP: a, Iface: name})
		}
	}
	hostaddrs.Normalize(&s)
	d.hostEPs.OnHostAddrs(s)
}

func hostIface(name string, running bool, addrs ...string) testHostIface {
	s := testHostIface{State: ifacemon.State{Name: name, Index: len(name), Running: running}}
	for _, a := range addrs {
		s.addrs = append(s.addrs, netip.MustParseAddr(a))
	}
	return s
}

func (h *harness) has(table, chain string) bool {
	_, ok := h.k.Chain(4, table, chain)
	return ok
}

var hashComment = regexp.MustCompile(`-m comment --comment "cali:[^"]*" `)

// rules returns an IPv4 chain's rules without their hash comments,
// failing if it is absent.
func (h *harness) rules(table, chain string) string {
	h.t.Helper()
	rs, ok := h.k.Chain(4, table, chain)
	if !ok {
		h.t.Fatalf("no %s chain %s; have %v", table, chain, h.k.Chains(4, table))
	}
	return hashComment.ReplaceAllString(strings.Join(rs, "\n"), "")
}

func (h *harness) hostStatuses() map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hst
}

// Every kind of policy of a host endpoint lands in its table, jumped to
// by the interface's chains there; failsafes exist while some chain jumps
// to them; everything goes with the endpoint, and nothing of it touches a
// workload.
func TestHostEndpointChainsInEveryTable(t *testing.T) {
	h := newHarness(t)
	h.hostIfaces(hostIface("eth0", true, "198.18.0.11"), hostIface("eth1", true))
	msgs := append(hepPolicies("a"), hep("a", "eth0"), contract.InSync{})
	h.send(msgs...)
	h.apply()
	pi := func(id string, _ tableID) string { return rules.PolicyChainName(gnpID(id), true) }
	po := func(id string) string { return rules.PolicyChainName(gnpID(id), false) }
	for _, c := range []struct{ table, chain string }{
		{"filter", "cali-fh-eth0"}, {"filter", "cali-th-eth0"}, {"filter", "cali-fhfw-eth0"}, {"filter", "cali-thfw-eth0"},
		{"filter", pi("a-n", tableFilter)}, {"filter", po("a-n")}, {"filter", pi("a-f", tableFilter)},
		{"mangle", "cali-th-eth0"}, {"mangle", "cali-fh-eth0"}, {"mangle", po("a-n")}, {"mangle", pi("a-p", tableMangle)},
		{"raw", "cali-th-eth0"}, {"raw", "cali-fh-eth0"}, {"raw", pi("a-u", tableRaw)}, {"raw", po("a-u")},
		{"filter", rules.ChainFailsafeIn}, {"mangle", rules.ChainFailsafeOut}, {"raw", rules.ChainFailsafeIn},
	} {
		if !h.has(c.table, c.chain) {
			t.Errorf("no %s chain %s", c.table, c.chain)
		}
	}
	// Policies stay in their tables: no pre-DNAT or untracked policy in
	// filter, no normal one in raw.
	for _, c := range []struct{ table, chain string }{
		{"filter", pi("a-p", tableFilter)}, {"filter", pi("a-u", tableFilter)}, {"raw", pi("a-n", tableRaw)}, {"mangle", pi("a-n", tableMangle)},
		{"filter", "cali-fh-eth1"},
	} {
		if h.has(c.table, c.chain) {
			t.Errorf("%s chain %s should not exist", c.table, c.chain)
		}
	}
	if got := h.rules("filter", rules.ChainFromHostEndpoint); got != "--in-interface eth0 --goto cali-fh-eth0" {
		t.Errorf("filter from-host dispatch: %q", got)
	}
	if got := h.rules("raw", rules.ChainToHostEndpoint); got != "--out-interface eth0 --goto cali-th-eth0" {
		t.Errorf("raw to-host dispatch: %q", got)
	}
	if got := h.rules("raw", "cali-fh-eth0"); !strings.Contains(got, "--jump NOTRACK") {
		t.Errorf("raw chain without NOTRACK:\n%s", got)
	}
	if st := h.hostStatuses()["a"]; st != "up" {
		t.Errorf("status %q", st)
	}

	// The endpoint goes: its chains, its policies' chains and the
	// failsafes go; the dispatch chains stay, empty.
	h.send(contract.HostEndpointRemove{ID: "a"})
	for _, k := range []string{"-n", "-u", "-p", "-f"} {
		h.send(contract.PolicyRemove{ID: gnpID("a" + k)})
	}
	h.apply()
	for _, table := range []string{"raw", "mangle", "filter"} {
		for _, name := range h.k.Chains(4, table) {
			if strings.HasPrefix(name, "cali-p") || strings.HasPrefix(name, "cali-th") || strings.HasPrefix(name, "cali-fh") || strings.Contains(name, "failsafe") {
				t.Errorf("%s chain %s left behind", table, name)
			}
		}
	}
	if got, _ := h.k.Chain(4, "filter", rules.ChainFromHostEndpoint); len(got) != 0 {
		t.Errorf("dispatch not emptied: %q", got)
	}
	if st, ok := h.hostStatuses()["a"]; !ok || st != "" {
		t.Errorf("status of a removed endpoint %q (reported: %v)", st, ok)
	}
}

// Felix's resolution: a name beats an expected address, the least ID wins
// among equals, the all-interfaces endpoint takes the rest, an interface
// going away frees it; statuses follow.
func TestHostEndpointResolution(t *testing.T) {
	h := newHarness(t)
	h.hostIfaces(hostIface("eth0", true, "198.18.0.11"), hostIface("eth1", false, "198.18.0.12"))
	var msgs []contract.Message
	for _, id := range []string{"byip", "byip2", "named", "all", "nothing"} {
		msgs = append(msgs, hepPolicies(id)...)
	}
	msgs = append(msgs, hep("byip", "", "198.18.0.11", "198.18.0.12"), hep("byip2", "", "198.18.0.12"), hep("named", "eth0"),
		hep("all", "*"), hep("nothing", "", "198.18.99.99"), contract.InSync{})
	h.send(msgs...)
	h.apply()
	// eth0: named (by name, over byip); eth1: byip (least ID of byip, byip2).
	if got := h.rules("filter", "cali-fh-eth0"); !strings.Contains(got, "cali-pi-gnp/named-n") || strings.Contains(got, "byip") {
		t.Errorf("eth0 is not named's:\n%s", got)
	}
	if got := h.rules("filter", "cali-fh-eth1"); !strings.Contains(got, "cali-pi-gnp/byip-n") {
		t.Errorf("eth1 is not byip's:\n%s", got)
	}
	from := h.rules("filter", rules.ChainFromHostEndpoint)
	if !strings.HasSuffix(from, "--goto cali-fh-*") || !strings.Contains(from, "--in-interface tap+ --jump RETURN") {
		t.Errorf("no all-interfaces default (after the workload exception):\n%s", from)
	}
	if h.has("raw", "cali-fh-*") {
		t.Error("untracked chains for the all-interfaces endpoint (Felix ignores them)")
	}
	want := map[string]string{"byip": "down", "byip2": "error", "named": "up", "all": "up", "nothing": "error"}
	for id, st := range want {
		if got := h.hostStatuses()[id]; got != st {
			t.Errorf("status of %s %q, want %q", id, got, st)
		}
	}
	// eth0 goes: named governs nothing; eth1 comes up.
	h.hostIfaces(testHostIface{State: ifacemon.State{Name: "eth0", Gone: true}}, hostIface("eth1", true, "198.18.0.12"))
	h.apply()
	if h.has("filter", "cali-fh-eth0") || h.has("mangle", "cali-th-eth0") {
		t.Error("chains of a vanished interface left")
	}
	if h.hostStatuses()["named"] != "error" || h.hostStatuses()["byip"] != "up" {
		t.Errorf("statuses after changes: %v", h.hostStatuses())
	}
	// byip goes: byip2 takes eth1.
	h.send(contract.HostEndpointRemove{ID: "byip"})
	h.apply()
	if got := h.rules("filter", "cali-fh-eth1"); !strings.Contains(got, "cali-pi-gnp/byip2-n") || strings.Contains(got, "gnp/byip-n") {
		t.Errorf("eth1 after byip went:\n%s", got)
	}
	if h.has("filter", rules.PolicyChainName(gnpID("byip-n"), true)) {
		t.Error("policy chain of the removed endpoint left (nothing jumps to it)")
	}
}

// A policy both a workload and a host endpoint use lives in filter while
// either does; in mangle only for the host endpoint.
func TestHostEndpointSharesPolicyWithWorkload(t *testing.T) {
	h := newHarness(t)
	h.plug("tap1")
	h.hostIfaces(hostIface("eth0", true))
	shared := contract.PolicyUpdate{ID: polID("shared"), Inbound: []contract.Rule{{Action: contract.ActionAllow}},
		Outbound: []contract.Rule{{Action: contract.ActionAllow}}}
	host := contract.HostEndpointUpdate{ID: "h", InterfaceName: "eth0",
		Tiers: []contract.TierPolicies{{Name: "default", DefaultAction: "Deny", Ingress: []contract.PolicyID{polID("shared")}, Egress: []contract.PolicyID{polID("shared")}}}}
	h.send(shared, endpoint(epID("a"), "tap1", "198.18.0.1", "shared"), host, contract.InSync{})
	h.apply()
	po := rules.PolicyChainName(polID("shared"), false)
	if !h.has("filter", po) || !h.has("mangle", po) {
		t.Fatal("shared policy not in filter and mangle")
	}
	h.send(contract.HostEndpointRemove{ID: "h"})
	h.apply()
	if !h.has("filter", po) || h.has("mangle", po) {
		t.Errorf("after the host endpoint went: filter %v mangle %v; want the workload's only", h.has("filter", po), h.has("mangle", po))
	}
	h.send(endpoint(epID("a"), "tap1", "198.18.0.1"))
	h.apply()
	if h.has("filter", po) {
		t.Error("policy chain outlived its last user")
	}
}

// A fail-closed host endpoint denies everything after the failsafes, and
// jumps to no policy; with REJECT configured, raw and mangle still drop
// (the fake kernel refuses REJECT there, as the kernel does).
func TestHostEndpointFailClosedAndReject(t *testing.T) {
	h := newHarness(t)
	for _, f := range h.d.families {
		f.rules.Deny = ruleset.Reject{}
		f.rules.FailsafeIn = []rules.Failsafe{{Protocol: contract.Protocol{Name: "tcp", Num: 6}, Port: 22}}
	}
	h.hostIfaces(hostIface("eth0", true), hostIface("eth1", true))
	h.send(append(hepPolicies("a"), hep("a", "eth0"), contract.HostEndpointUpdate{ID: "b", InterfaceName: "eth1", FailClosed: true},
		contract.InSync{})...)
	h.apply()
	got := h.rules("filter", "cali-fh-eth1")
	if !strings.Contains(got, "--jump cali-failsafe-in\n") || !strings.HasSuffix(got, "--jump REJECT") || strings.Contains(got, "cali-p") {
		t.Errorf("fail-closed chain:\n%s", got)
	}
	if fwd := h.rules("filter", "cali-fhfw-eth1"); !strings.HasSuffix(fwd, "--jump REJECT") {
		t.Errorf("fail-closed forward chain:\n%s", fwd)
	}
	if fs := h.rules("raw", rules.ChainFailsafeIn); !strings.Contains(fs, "--destination-ports 22") {
		t.Errorf("raw failsafe:\n%s", fs)
	}
	if got := h.rules("mangle", "cali-th-eth0"); !strings.HasSuffix(got, "--jump DROP") {
		t.Errorf("mangle chain does not end in DROP:\n%s", got)
	}
}

// The host endpoint of an interface is looked up again when its
// addresses change.
func TestHostEndpointFollowsAddresses(t *testing.T) {
	h := newHarness(t)
	h.hostIfaces(hostIface("eth0", true))
	h.send(append(hepPolicies("a"), hep("a", "", "198.18.0.11"), contract.InSync{})...)
	h.apply()
	if h.has("filter", "cali-fh-eth0") || h.hostStatuses()["a"] != "error" {
		t.Fatalf("resolved without the address (status %q)", h.hostStatuses()["a"])
	}
	h.hostIfaces(hostIface("eth0", true, "198.18.0.11"))
	h.apply()
	if !h.has("filter", "cali-fh-eth0") || h.hostStatuses()["a"] != "up" {
		t.Errorf("not resolved once the address appeared (status %q)", h.hostStatuses()["a"])
	}
	if got := targets(strings.Split(h.rules("filter", rules.ChainToHostEndpoint), "\n")); !slices.Equal(got, []string{"cali-th-eth0"}) {
		t.Errorf("to-host dispatch targets %v", got)
	}
}

// With IptablesFilterDenyAction = REJECT the whole dataplane still
// applies: nothing renders a REJECT into raw or mangle, which the kernel
// (and the fake kernel) refuses there.
func TestRejectOnlyInFilter(t *testing.T) {
	k := fakekernel.New()
	cfg := testConfig(t)
	cfg.Rules.Deny = ruleset.Reject{}
	d, err := newDataplane(cfg, nil, fakeKernel(k))
	if err != nil {
		t.Fatal(err)
	}
	d.routes.synced, d.hostEPs.synced = true, true
	reportHostIfaces(d, map[string][]netip.Addr{}, hostIface("eth0", true))
	d.onMessages(append(hepPolicies("a"), hep("a", "eth0"), contract.InSync{}))
	if _, err := d.apply(context.Background()); err != nil {
		t.Fatalf("apply with REJECT: %v", err)
	}
	if rs, _ := k.Chain(4, "filter", "cali-fh-eth0"); !strings.HasSuffix(rs[len(rs)-1], "--jump REJECT") {
		t.Errorf("filter does not reject: %q", rs)
	}
}
