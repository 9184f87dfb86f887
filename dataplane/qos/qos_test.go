package qos

import (
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"ocelot/contract"
	"ocelot/internal/netlab"
)

func TestMain(m *testing.M) { netlab.Main(m) }

func TestIFBName(t *testing.T) {
	// Felix's name for a Neutron tap's device: the prefix and the SHA-512
	// of the name, cut to 15 characters.
	if got := IFBName("tap5c9d0e1f-2a"); len(got) != 15 || !strings.HasPrefix(got, "bwcali") || got == IFBName("tap5c9d0e1f-2b") {
		t.Errorf("IFBName = %q", got)
	}
}

func TestNewBucket(t *testing.T) {
	// 10 Mbit/s with a 100 kbit burst on a 1500-byte MTU, 15.625 ticks
	// per microsecond (a common psched rate): 1.25 MB/s; the burst takes
	// 10 ms to send; the queue holds 25 ms at the rate plus the buffer.
	b := NewBucket(contract.QoSLimits{Bandwidth: 10_000_000, Burst: 100_000}, 1500, 15.625)
	want := Bucket{Rate: 1_250_000, Buffer: 156_250, Limit: 31_250 + 156_250}
	if b == nil || *b != want {
		t.Errorf("bucket %+v, want %+v", b, want)
	}
	if NewBucket(contract.QoSLimits{PacketRate: 10}, 1500, 1) != nil {
		t.Error("a bucket without a bandwidth")
	}
	// A peak rate: the minimum burst is at least a full frame, and the
	// queue is the smaller of the two limits.
	b = NewBucket(contract.QoSLimits{Bandwidth: 10_000_000, Burst: 1_000_000, Peakrate: 20_000_000, Minburst: 1000}, 1500, 1)
	if b.Peakrate != 2_500_000 || b.Minburst != 1514 || b.Limit != 62_500+605 {
		t.Errorf("peak bucket %+v", b)
	}
}

// counting counts the kernel writes the table makes.
type counting struct {
	*Kernel
	writes []string
}

func (c *counting) LinkAdd(l netlink.Link) error {
	c.writes = append(c.writes, "link add "+l.Attrs().Name)
	return c.Kernel.LinkAdd(l)
}
func (c *counting) LinkDel(l netlink.Link) error {
	c.writes = append(c.writes, "link del "+l.Attrs().Name)
	return c.Kernel.LinkDel(l)
}
func (c *counting) QdiscReplace(q netlink.Qdisc) error {
	c.writes = append(c.writes, "qdisc replace "+q.Type())
	return c.Kernel.QdiscReplace(q)
}
func (c *counting) QdiscDel(q netlink.Qdisc) error {
	c.writes = append(c.writes, "qdisc del "+q.Type())
	return c.Kernel.QdiscDel(q)
}
func (c *counting) FilterAdd(f netlink.Filter) error {
	c.writes = append(c.writes, "filter add "+f.Type())
	return c.Kernel.FilterAdd(f)
}
func (c *counting) FilterDel(f netlink.Filter) error {
	c.writes = append(c.writes, "filter del "+f.Type())
	return c.Kernel.FilterDel(f)
}

func (c *counting) take() []string { w := c.writes; c.writes = nil; return w }

func apply(t *testing.T, tb *Table) {
	t.Helper()
	if errs := tb.Apply(); len(errs) != 0 {
		t.Fatalf("apply: %v", errs)
	}
}

// tc shows what the kernel has, as tc prints it.
func tc(t *testing.T, args ...string) string { return netlab.Run(t, "tc", args...) }

// On a real tap (a veth in the test's namespace): both directions'
// buckets and the redirect are programmed, a second apply writes
// nothing, a change rewrites only the bucket, and removing the controls
// leaves the tap as it was, the IFB gone, and a foreign filter and a
// foreign IFB-named device that is no IFB untouched.
func TestTrafficControlOnATap(t *testing.T) {
	netlab.Require(t)
	netlab.Run(t, "ip", "link", "add", "tapqos0", "type", "veth", "peer", "name", "qospeer0")
	t.Cleanup(func() {
		netlab.Try("ip", "link", "del", "tapqos0")
		netlab.Try("ip", "link", "del", IFBName("tapqos0"))
	})
	netlab.Run(t, "ip", "link", "set", "tapqos0", "up")
	nl, err := NewKernel(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	k := &counting{Kernel: nl}
	tb := New(k, netlink.TickInUsec(), nil)
	limits := &contract.QoSControls{Ingress: contract.QoSLimits{Bandwidth: 10_000_000, Burst: 100_000},
		Egress: contract.QoSLimits{Bandwidth: 20_000_000, Burst: 200_000}}
	tb.Set("tapqos0", limits)
	apply(t, tb)
	ifb := IFBName("tapqos0")
	if out := tc(t, "qdisc", "show", "dev", "tapqos0"); !strings.Contains(out, "qdisc tbf 1: root") || !strings.Contains(out, "rate 10Mbit") ||
		!strings.Contains(out, "qdisc ingress ffff:") {
		t.Errorf("tap's qdiscs:\n%s", out)
	}
	if out := tc(t, "filter", "show", "dev", "tapqos0", "parent", "ffff:"); !strings.Contains(out, "Egress Redirect to device "+ifb) {
		t.Errorf("tap's filters:\n%s", out)
	}
	if out := tc(t, "qdisc", "show", "dev", ifb); !strings.Contains(out, "qdisc tbf 1: root") || !strings.Contains(out, "rate 20Mbit") {
		t.Errorf("%s's qdiscs:\n%s", ifb, out)
	}
	if w := k.take(); len(w) != 5 {
		t.Errorf("first apply wrote %q", w)
	}
	tb.Resync()
	apply(t, tb)
	if w := k.take(); len(w) != 0 {
		t.Errorf("a second apply wrote %q", w)
	}
	limits2 := *limits
	limits2.Ingress.Bandwidth = 5_000_000
	tb.Set("tapqos0", &limits2)
	apply(t, tb)
	if w := k.take(); len(w) != 1 || w[0] != "qdisc replace tbf" {
		t.Errorf("a rate change wrote %q", w)
	}
	// Someone else's filter on the ingress qdisc, and a device that has
	// an IFB's name but is no IFB.
	netlab.Run(t, "tc", "filter", "add", "dev", "tapqos0", "parent", "ffff:", "protocol", "ip", "prio", "7", "u32", "match", "u32", "0", "0", "flowid", "1:2")
	netlab.Run(t, "ip", "link", "add", "bwcalifake", "type", "veth", "peer", "name", "bwcalifake1")
	t.Cleanup(func() { netlab.Try("ip", "link", "del", "bwcalifake") })
	tb.Set("tapqos0", nil)
	apply(t, tb)
	if out := tc(t, "qdisc", "show", "dev", "tapqos0"); strings.Contains(out, "tbf") || !strings.Contains(out, "ingress") {
		t.Errorf("after removal, tap's qdiscs:\n%s", out)
	}
	if out := tc(t, "filter", "show", "dev", "tapqos0", "parent", "ffff:"); strings.Contains(out, "mirred") || !strings.Contains(out, "flowid 1:2") {
		t.Errorf("after removal, tap's filters:\n%s", out)
	}
	if _, err := netlink.LinkByName(ifb); err == nil {
		t.Errorf("%s left", ifb)
	}
	if _, err := netlink.LinkByName("bwcalifake"); err != nil {
		t.Errorf("a device that is no IFB was deleted: %v", err)
	}
	// Without the foreign filter the ingress qdisc goes too.
	netlab.Run(t, "tc", "filter", "del", "dev", "tapqos0", "parent", "ffff:", "prio", "7")
	tb.Resync()
	apply(t, tb)
	if out := tc(t, "qdisc", "show", "dev", "tapqos0"); strings.Contains(out, "ingress") {
		t.Errorf("empty ingress qdisc left:\n%s", out)
	}
}

// A stale IFB device (its endpoint went while the agent was down) is
// swept; the interface gone takes its qdiscs, and its IFB goes.
func TestSweepAndGoneTap(t *testing.T) {
	netlab.Require(t)
	netlab.Run(t, "ip", "link", "add", "tapqos1", "type", "veth", "peer", "name", "qospeer1")
	netlab.Run(t, "ip", "link", "add", "bwcali0stale00", "type", "ifb")
	t.Cleanup(func() {
		netlab.Try("ip", "link", "del", "tapqos1")
		netlab.Try("ip", "link", "del", "bwcali0stale00")
		netlab.Try("ip", "link", "del", IFBName("tapqos1"))
	})
	k, err := NewKernel(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tb := New(k, netlink.TickInUsec(), nil)
	tb.Set("tapqos1", &contract.QoSControls{Egress: contract.QoSLimits{Bandwidth: 1_000_000, Burst: 100_000}})
	apply(t, tb)
	if _, err := netlink.LinkByName("bwcali0stale00"); err == nil {
		t.Error("stale IFB device not swept")
	}
	if _, err := netlink.LinkByName(IFBName("tapqos1")); err != nil {
		t.Errorf("the live IFB device: %v", err)
	}
	netlab.Run(t, "ip", "link", "del", "tapqos1")
	tb.Remove("tapqos1")
	apply(t, tb)
	if _, err := netlink.LinkByName(IFBName("tapqos1")); err == nil {
		t.Error("the gone tap's IFB device is left")
	}
	if tb.Limited() != 0 {
		t.Errorf("limited %d", tb.Limited())
	}
}
