package droplog

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"ocelot/contract"
	"ocelot/dataplane/rules"
	"ocelot/internal/netlab"
)

func TestMain(m *testing.M) { netlab.Main(m) }

// ipv4 builds an IPv4 header and transport bytes.
func ipv4(proto uint8, src, dst string, l4 ...byte) []byte {
	b := make([]byte, 20)
	b[0] = 0x45
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return append(b, l4...)
}

func ports(s, d uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, s), d)
}

func TestParseTuple(t *testing.T) {
	v6 := make([]byte, 40)
	v6[0] = 0x60
	v6[6] = 0 // hop-by-hop first
	copy(v6[8:], netip.MustParseAddr("2001:db8::1").AsSlice())
	copy(v6[24:], netip.MustParseAddr("2001:db8::2").AsSlice())
	v6 = append(v6, 17, 0, 0, 0, 0, 0, 0, 0) // hop-by-hop: next udp, 8 bytes
	v6 = append(v6, ports(5353, 53)...)
	for _, c := range []struct {
		name string
		b    []byte
		want Tuple
		ok   bool
	}{
		{"tcp", ipv4(6, "198.18.12.5", "198.18.11.5", ports(40000, 81)...), Tuple{Proto: 6, Src: netip.MustParseAddr("198.18.12.5"),
			Dst: netip.MustParseAddr("198.18.11.5"), SrcPort: 40000, DstPort: 81, ICMPType: -1}, true},
		{"icmp", ipv4(1, "198.18.12.5", "198.18.11.5", 8, 0), Tuple{Proto: 1, Src: netip.MustParseAddr("198.18.12.5"),
			Dst: netip.MustParseAddr("198.18.11.5"), ICMPType: 8}, true},
		{"ipv6 past an extension header", v6, Tuple{Proto: 17, Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"),
			SrcPort: 5353, DstPort: 53, ICMPType: -1}, true},
		{"truncated", ipv4(6, "198.18.12.5", "198.18.11.5")[:12], Tuple{ICMPType: -1}, false},
		{"bad header length", append([]byte{0x4f}, make([]byte, 30)...), Tuple{ICMPType: -1}, false},
		{"not IP", []byte{0x10, 0, 0}, Tuple{ICMPType: -1}, false},
		{"truncated extension", v6[:44], Tuple{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"), ICMPType: -1}, false},
	} {
		got, ok := parseTuple(c.b)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("%s: %+v %v, want %+v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// A netlink read with two packet messages, one of them unreadable.
func TestParseMessages(t *testing.T) {
	msg := func(attrs ...[]byte) []byte {
		b := make([]byte, nlmsgHdrLen+nfgenLen)
		for _, a := range attrs {
			b = append(b, a...)
		}
		binary.NativeEndian.PutUint32(b, uint32(len(b)))
		binary.NativeEndian.PutUint16(b[4:], 4<<8|nfulnlMsgPacket)
		return b
	}
	payload := ipv4(17, "198.18.12.5", "198.18.11.5", ports(1000, 53)...)
	good := msg(attr(nfulaPrefix, []byte("DPI0|np/ns/p\x00")), attr(nfulaIfindexOutdev, be32(7)), attr(nfulaPayload, payload))
	noPayload := msg(attr(nfulaPrefix, []byte("DRE\x00")))
	pkts, bad := parseMessages(append(good, noPayload...))
	if len(pkts) != 1 || bad != 1 || pkts[0].Prefix != "DPI0|np/ns/p" || pkts[0].OutDev != 7 || !bytes.Equal(pkts[0].Payload, payload) {
		t.Errorf("%+v bad %d", pkts, bad)
	}
	// A length that runs past the read is not followed.
	broken := append([]byte(nil), good...)
	binary.NativeEndian.PutUint32(broken, uint32(len(good)+100))
	if pkts, bad := parseMessages(broken); len(pkts) != 0 || bad != 1 {
		t.Errorf("broken: %+v %d", pkts, bad)
	}
}

type fakeResolver struct{}

var webPolicy = contract.PolicyID{Kind: "NetworkPolicy", Namespace: "openstack-region-RegionOne", Name: "ossg.default.web"}

func (fakeResolver) Decision(prefix string) (rules.DropRef, bool) {
	refs := map[string]rules.DropRef{
		"DPI2|np/openstack-region-RegionOne/ossg.default.web": {Policy: webPolicy, Inbound: true, Rule: 2},
		"DPE|default": {Tier: "default", Rule: -1},
	}
	r, ok := refs[prefix]
	return r, ok
}

func (fakeResolver) Endpoint(iface string) (contract.EndpointID, bool) {
	if iface == "tapweb" {
		return contract.EndpointID{Orchestrator: "openstack", WorkloadID: "openstack-region-RegionOne/vm", EndpointID: "port"}, true
	}
	return contract.EndpointID{}, false
}

func newReader(buf *bytes.Buffer, now *time.Time) *Reader {
	return &Reader{Resolve: fakeResolver{}, IfName: func(i uint32) string { return map[uint32]string{7: "tapweb"}[i] },
		Rate: 2, Burst: 3, Log: slog.New(slog.NewTextHandler(buf, nil)), Metrics: NewMetrics(nil), now: func() time.Time { return *now }}
}

func TestReaderLines(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	r := newReader(&buf, &now)
	r.Handle(Packet{Prefix: "DPI2|np/openstack-region-RegionOne/ossg.default.web", InDev: 3, OutDev: 7,
		Payload: ipv4(6, "198.18.12.5", "198.18.11.5", ports(40000, 81)...)})
	line := buf.String()
	for _, want := range []string{`msg="packet denied by policy"`, "endpoint=openstack/openstack-region-RegionOne/vm/port", "iface=tapweb", "direction=ingress",
		"policy=np/openstack-region-RegionOne/ossg.default.web", "rule=2", "proto=tcp", "src=198.18.12.5", "dst=198.18.11.5", "sport=40000", "dport=81", "action=drop"} {
		if !strings.Contains(line, want) {
			t.Errorf("line lacks %s:\n%s", want, line)
		}
	}
	// Egress takes the interface the packet came in on.
	buf.Reset()
	r.Handle(Packet{Prefix: "DPE|default", InDev: 7, Payload: ipv4(17, "198.18.11.5", "198.18.50.1", ports(1000, 53)...)})
	if l := buf.String(); !strings.Contains(l, "iface=tapweb") || !strings.Contains(l, "tier=default") || !strings.Contains(l, `decided_by="end of tier default (egress)`) {
		t.Errorf("egress line: %s", l)
	}
	// A prefix that is not ours writes nothing.
	buf.Reset()
	r.Handle(Packet{Prefix: "someone-else", Payload: ipv4(6, "198.18.12.5", "198.18.11.5", ports(1, 2)...)})
	if buf.Len() != 0 || testutil.ToFloat64(r.Metrics.unknown) != 1 {
		t.Errorf("foreign prefix: %q unknown %v", buf.String(), testutil.ToFloat64(r.Metrics.unknown))
	}
}

// A flood costs Burst lines at once and Rate per second after; the rest
// is counted.
func TestReaderRateLimit(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	r := newReader(&buf, &now)
	p := Packet{Prefix: "DPE|default", InDev: 7, Payload: ipv4(17, "198.18.11.5", "198.18.50.1", ports(1000, 53)...)}
	for range 100 {
		r.Handle(p)
	}
	lines := func() float64 { return testutil.ToFloat64(r.Metrics.lines) }
	if lines() != 3 || testutil.ToFloat64(r.Metrics.suppressed) != 97 || strings.Count(buf.String(), "\n") != 3 {
		t.Fatalf("burst: %v lines, %v suppressed", lines(), testutil.ToFloat64(r.Metrics.suppressed))
	}
	now = now.Add(2 * time.Second) // 2 per second: 4 tokens, but at most Burst (3)
	for range 100 {
		r.Handle(p)
	}
	if lines() != 6 || testutil.ToFloat64(r.Metrics.suppressed) != 194 {
		t.Errorf("after 2 s: %v lines, %v suppressed", lines(), testutil.ToFloat64(r.Metrics.suppressed))
	}
	now = now.Add(500 * time.Millisecond) // one token
	r.Handle(p)
	r.Handle(p)
	if lines() != 7 {
		t.Errorf("after 0.5 s more: %v lines", lines())
	}
}

// The socket against the kernel: an NFLOG rule in this namespace logs a
// packet, which Read returns with its prefix, interface and headers.
func TestNFLOGKernel(t *testing.T) {
	netlab.Require(t)
	netlab.Run(t, "ip", "link", "set", "lo", "up")
	s, err := OpenNFLOG(77, 128)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Only one reader per group.
	if s2, err := OpenNFLOG(77, 128); err == nil {
		s2.Close()
		t.Error("a second socket bound the same group")
	}
	for _, ipt := range []string{"iptables-legacy", "iptables-nft"} {
		rule := []string{"-p", "udp", "--dport", "9", "-j", "NFLOG", "--nflog-group", "77", "--nflog-prefix", "DPI0|np/ns/x", "--nflog-size", "128"}
		netlab.Run(t, ipt, append([]string{"-A", "OUTPUT"}, rule...)...)
		c, err := net.Dial("udp", "127.0.0.1:9")
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("hello"))
		c.Close()
		var got []Packet
		deadline := time.Now().Add(5 * time.Second)
		for len(got) == 0 && time.Now().Before(deadline) {
			pkts, _, err := s.Read()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, pkts...)
		}
		netlab.Run(t, ipt, append([]string{"-D", "OUTPUT"}, rule...)...)
		if len(got) != 1 {
			t.Fatalf("%s: %d packets logged, want 1", ipt, len(got))
		}
		lo, _ := net.InterfaceByName("lo")
		tu, ok := parseTuple(got[0].Payload)
		if got[0].Prefix != "DPI0|np/ns/x" || got[0].OutDev != uint32(lo.Index) || !ok || tu.Proto != 17 || tu.DstPort != 9 ||
			tu.Dst != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("%s: logged %+v (%+v)", ipt, got[0], tu)
		}
	}
	// Control: a packet no rule logs is not read.
	c, _ := net.Dial("udp", "127.0.0.1:9")
	c.Write([]byte("x"))
	c.Close()
	if pkts, _, _ := s.Read(); len(pkts) != 0 {
		t.Errorf("read %d packets no rule logged", len(pkts))
	}
}

// A flood: most packets only meet the rate limit; the written ones are
// resolved and formatted.
func BenchmarkHandle(b *testing.B) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	r := newReader(&buf, &now)
	r.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	p := Packet{Prefix: "DPI2|np/openstack-region-RegionOne/ossg.default.web", OutDev: 7,
		Payload: ipv4(6, "198.18.12.5", "198.18.11.5", ports(40000, 81)...)}
	b.Run("suppressed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Handle(p)
		}
	})
	b.Run("written", func(b *testing.B) {
		r.Rate, r.Burst = 1e12, 1<<30
		b.ReportAllocs()
		for b.Loop() {
			now = now.Add(time.Second)
			r.Handle(p)
		}
	})
}
