package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"ocelot/contract"
	"ocelot/internal/netlab"
)

// A busy compute host: 200 local endpoints with 20 policies each, over 2,000
// IP sets of 50 members.
const (
	benchEndpoints = 200
	benchPolicies  = 1000 // each endpoint uses 20 of them
	benchSets      = 2000
	benchMembers   = 50
)

func benchMessages() []contract.Message {
	var msgs []contract.Message
	for s := 0; s < benchSets; s++ {
		var members []contract.Member
		for m := 0; m < benchMembers; m++ {
			a := netip.AddrFrom4([4]byte{100, 64 + byte(s>>8)&63, byte(s), byte(m)})
			members = append(members, contract.Member{Net: netip.PrefixFrom(a, 32)})
		}
		msgs = append(msgs, contract.IPSetUpdate{ID: fmt.Sprintf("s:bench%05d", s), Type: contract.IPSetNet, Members: members})
	}
	for p := 0; p < benchPolicies; p++ {
		msgs = append(msgs, benchPolicy(p, 80))
	}
	for e := 0; e < benchEndpoints; e++ {
		var ids []contract.PolicyID
		for k := 0; k < 20; k++ {
			ids = append(ids, benchPolicyID((e*20+k)%benchPolicies))
		}
		msgs = append(msgs, contract.EndpointUpdate{
			ID:       contract.EndpointID{Orchestrator: "openstack", WorkloadID: "ns/vm", EndpointID: fmt.Sprint("port", e)},
			Name:     fmt.Sprintf("tap%08x-00", e),
			IPv4Nets: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(e >> 8), byte(e)}), 32)},
			Tiers:    []contract.TierPolicies{{Name: "default", DefaultAction: "Deny", Ingress: ids, Egress: ids}},
		})
	}
	return append(msgs, contract.InSync{})
}

func benchPolicyID(p int) contract.PolicyID {
	return contract.PolicyID{Kind: "NetworkPolicy", Namespace: "openstack-region-RegionOne", Name: fmt.Sprintf("ossg.default.%08d", p)}
}

func benchPolicy(p int, port uint16) contract.PolicyUpdate {
	tcp := &contract.Protocol{Name: "tcp", Num: 6}
	return contract.PolicyUpdate{ID: benchPolicyID(p),
		Inbound: []contract.Rule{
			{Action: contract.ActionAllow, Protocol: tcp, DstPorts: []contract.PortRange{{First: port, Last: port}}, SrcIPSetIDs: []string{fmt.Sprintf("s:bench%05d", (2*p)%benchSets)}},
			{Action: contract.ActionAllow, SrcIPSetIDs: []string{fmt.Sprintf("s:bench%05d", (2*p+1)%benchSets)}},
		},
		Outbound: []contract.Rule{{Action: contract.ActionAllow}},
	}
}

// written sums what the drivers have written so far.
func (d *Dataplane) written() (iptLines, iptBytes, setLines, setBytes int) {
	for _, f := range d.families {
		if f.nft != nil {
			iptLines += f.nft.OpsWritten // ops, not lines: one op per rule, chain or element batch
			continue
		}
		l, b := f.ipt.Written()
		iptLines += l
		iptBytes += b
		setLines += f.ipset.LinesWritten
		setBytes += f.ipset.BytesWritten
	}
	return
}

func newBenchDataplane(b *testing.B) *Dataplane {
	cfg := testConfig(b)
	cfg.IPv6 = false
	if be := os.Getenv("OCELOT_BENCH_BACKEND"); be != "" {
		cfg.Backend = be
	}
	if os.Getenv("OCELOT_BENCH_NFTABLES") != "" {
		cfg.NFTablesMode, cfg.NFTRules = "Enabled", cfg.Rules
	}
	d, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	d.routes.synced = true
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	d.conntrack.Start(ctx) // as Run does
	return d
}

// cleanKernel removes everything the previous iteration programmed.
func cleanKernel(b *testing.B) {
	for _, cmd := range [][]string{
		{"sh", "-c", "for t in filter nat mangle raw; do iptables-legacy -t $t -F; iptables-legacy -t $t -X; done"},
		{"sh", "-c", "for t in filter nat mangle raw; do iptables-nft -t $t -F 2>/dev/null; iptables-nft -t $t -X 2>/dev/null; done; true"},
		{"sh", "-c", "nft delete table ip calico 2>/dev/null; nft delete table ip6 calico 2>/dev/null; true"},
		{"ipset", "destroy"},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v %s", cmd, err, out)
		}
	}
}

func report(b *testing.B, d *Dataplane, start time.Time, before [4]int) {
	l, by, sl, sb := d.written()
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ms/apply")
	b.ReportMetric(float64(l-before[0]), "ipt-lines")
	b.ReportMetric(float64(by-before[1]), "ipt-bytes")
	b.ReportMetric(float64(sl-before[2]), "ipset-lines")
	b.ReportMetric(float64(sb-before[3]), "ipset-bytes")
}

func snapshot(d *Dataplane) [4]int {
	a, b, c, e := d.written()
	return [4]int{a, b, c, e}
}

func BenchmarkFirstApply(b *testing.B) {
	netlab.Require(b)
	msgs := benchMessages()
	for b.Loop() {
		b.StopTimer()
		cleanKernel(b)
		d := newBenchDataplane(b)
		b.StartTimer()
		start := time.Now()
		d.onMessages(msgs)
		if _, err := d.apply(context.Background()); err != nil {
			b.Fatal(err)
		}
		report(b, d, start, [4]int{})
	}
}

func benchSmallChange(b *testing.B, change func(i int) []contract.Message) {
	netlab.Require(b)
	cleanKernel(b)
	d := newBenchDataplane(b)
	d.onMessages(benchMessages())
	if _, err := d.apply(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	i := 0
	var total time.Duration
	before := snapshot(d)
	for b.Loop() {
		start := time.Now()
		d.onMessages(change(i))
		if _, err := d.apply(context.Background()); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		i++
	}
	l, by, sl, sb := d.written()
	b.ReportMetric(float64(total.Microseconds())/1000/float64(i), "ms/apply")
	b.ReportMetric(float64(l-before[0])/float64(i), "ipt-lines")
	b.ReportMetric(float64(by-before[1])/float64(i), "ipt-bytes")
	b.ReportMetric(float64(sl-before[2])/float64(i), "ipset-lines")
	b.ReportMetric(float64(sb-before[3])/float64(i), "ipset-bytes")
}

// One member joins or leaves one set.
func BenchmarkOneMemberChange(b *testing.B) {
	m := []contract.Member{{Net: netip.MustParsePrefix("100.99.0.1/32")}}
	benchSmallChange(b, func(i int) []contract.Message {
		if i%2 == 0 {
			return []contract.Message{contract.IPSetDelta{ID: "s:bench00007", Added: m}}
		}
		return []contract.Message{contract.IPSetDelta{ID: "s:bench00007", Removed: m}}
	})
}

// One policy's rule changes port.
func BenchmarkOnePolicyChange(b *testing.B) {
	benchSmallChange(b, func(i int) []contract.Message {
		return []contract.Message{benchPolicy(3, uint16(80+i%2))}
	})
}

// BenchmarkBareRestore is the floor: one iptables-restore and one ipset
// restore of the same ruleset, with no reading, diffing or rendering.
func BenchmarkBareRestore(b *testing.B) {
	netlab.Require(b)
	cleanKernel(b)
	d := newBenchDataplane(b)
	d.onMessages(benchMessages())
	if _, err := d.apply(context.Background()); err != nil {
		b.Fatal(err)
	}
	var dumps []string
	for _, t := range []string{"filter", "raw", "mangle", "nat"} {
		out, err := exec.Command("iptables-legacy-save", "-t", t).Output()
		if err != nil {
			b.Fatal(err)
		}
		dumps = append(dumps, string(out))
	}
	ipsets, err := exec.Command("ipset", "save").Output()
	if err != nil {
		b.Fatal(err)
	}
	bytes := 0
	for _, s := range dumps {
		bytes += len(s)
	}
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		cleanKernel(b)
		b.StartTimer()
		cmd := exec.Command("ipset", "restore")
		cmd.Stdin = strings.NewReader(string(ipsets))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ipset restore: %v %s", err, out)
		}
		cmd = exec.Command("iptables-legacy-restore")
		cmd.Stdin = strings.NewReader(strings.Join(dumps, ""))
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(bytes), "ipt-bytes")
	b.ReportMetric(float64(len(ipsets)), "ipset-bytes")
}
