package dataplane

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"ocelot/contract"
	"ocelot/internal/netlab"
)

// Conntrack cleanup reaches flows through a floating IP (their original
// destination is the floating IP, not the VM) and flows from a
// NetworkSet's CIDR; a flow that is still allowed survives each step.
func TestConntrackFloatingIPsAndNetworkSets(t *testing.T) {
	h := newHarness(t)
	h.plug("tap1")
	vm, fipAddr := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.9.9")
	client, inNet, control := netip.MustParseAddr("198.18.3.3"), netip.MustParseAddr("198.18.40.7"), netip.MustParseAddr("198.18.50.1")
	h.k.AddNATFlow(client, fipAddr, vm)  // through the floating IP
	h.k.AddFlow(inNet, vm)               // from the NetworkSet's CIDR
	h.k.AddFlow(control, vm)             // still allowed throughout
	h.k.AddNATFlow(control, fipAddr, vm) // through the floating IP, from an allowed peer
	set := contract.IPSetUpdate{ID: "s:peers", Type: contract.IPSetNet, Members: []contract.Member{
		{Net: netip.MustParsePrefix("198.18.40.0/24")}, member("198.18.3.3"), member("198.18.50.1")}}
	ep := endpoint(epID("a"), "tap1", "198.18.0.1", "p")
	ep.IPv4NAT = []contract.NAT{{Internal: vm, External: fipAddr}}
	h.send(set, policy("p", "s:peers"), ep, contract.InSync{})
	h.apply()
	flows := func() []string { return h.k.Flows() }
	if got := flows(); len(got) != 4 {
		t.Fatalf("the first apply forgot flows: %v", got)
	}

	// The NetworkSet's CIDR leaves the set.
	h.send(contract.IPSetDelta{ID: "s:peers", Removed: []contract.Member{{Net: netip.MustParsePrefix("198.18.40.0/24")}}})
	h.apply()
	want := []string{"198.18.3.3->198.18.9.9", "198.18.50.1->198.18.0.1", "198.18.50.1->198.18.9.9"}
	if got := flows(); !slices.Equal(got, want) {
		t.Errorf("after the CIDR left the set: %v, want %v", got, want)
	}

	// The floating IP's client leaves the set: its flow through the
	// floating IP goes.
	h.send(contract.IPSetDelta{ID: "s:peers", Removed: []contract.Member{member("198.18.3.3")}})
	h.apply()
	want = []string{"198.18.50.1->198.18.0.1", "198.18.50.1->198.18.9.9"}
	if got := flows(); !slices.Equal(got, want) {
		t.Errorf("after the client left the set: %v, want %v", got, want)
	}

	// The floating IP goes: flows through it go, the direct one stays.
	ep.IPv4NAT = nil
	h.send(ep)
	h.apply()
	want = []string{"198.18.50.1->198.18.0.1"}
	if got := flows(); !slices.Equal(got, want) {
		t.Errorf("after the floating IP went: %v, want %v", got, want)
	}

	// A set replaced whole (not by a delta) forgets what it dropped.
	h.send(contract.IPSetDelta{ID: "s:peers", Added: []contract.Member{member("198.18.50.2")}})
	h.apply()
	h.k.AddFlow(netip.MustParseAddr("198.18.50.2"), vm)
	h.send(contract.IPSetUpdate{ID: "s:peers", Type: contract.IPSetNet, Members: []contract.Member{member("198.18.50.1")}})
	h.apply()
	if got := flows(); !slices.Equal(got, want) {
		t.Errorf("after the set was replaced: %v, want %v", got, want)
	}
}

// With the forgetter running, many changes in a short time cost one pass
// over the table, and the applies do not wait for it.
func TestConntrackPassesAreBatched(t *testing.T) {
	h := newHarness(t)
	h.plug("tap1")
	vm := netip.MustParseAddr("198.18.0.1")
	var members []contract.Member
	for i := range 20 {
		a := netip.AddrFrom4([4]byte{198, 18, 8, byte(i + 1)})
		members = append(members, contract.Member{Net: netip.PrefixFrom(a, 32)})
		h.k.AddFlow(a, vm)
	}
	h.send(contract.IPSetUpdate{ID: "s:g", Type: contract.IPSetNet, Members: members}, policy("p", "s:g"),
		endpoint(epID("a"), "tap1", "198.18.0.1", "p"), contract.InSync{})
	h.apply()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.d.conntrack.forgetter = newConntrackManager(h.k, nil, 300*time.Millisecond, h.d.log, nil).forgetter
	h.d.conntrack.Start(ctx)
	before := h.k.Passes()
	for _, m := range members {
		h.send(contract.IPSetDelta{ID: "s:g", Removed: []contract.Member{m}})
		h.apply()
	}
	netlab.Eventually(t, "every flow forgotten", 5*time.Second, func() bool { return len(h.k.Flows()) == 0 })
	if n := h.k.Passes() - before; n > 2 {
		t.Errorf("%d passes over the table for 20 changes within one window", n)
	}
}
