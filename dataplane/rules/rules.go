package rules

import (
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"

	"ocelot/contract"
	rs "ocelot/dataplane/ruleset"
)

// Marks are the mark bits the rules use, allocated from IptablesMarkMask.
type Marks struct {
	Accept, Pass, Drop, Scratch0, Scratch1 uint32
}

// MarksFromMask allocates single bits from the lowest set bit of mask
// upward, as Felix does.
func MarksFromMask(mask uint32) (Marks, error) {
	var got []uint32
	for m := mask; m != 0 && len(got) < 5; m &= m - 1 {
		got = append(got, 1<<bits.TrailingZeros32(m))
	}
	if len(got) < 5 {
		return Marks{}, fmt.Errorf("IptablesMarkMask %#x has %d bits; Ocelot needs 5", mask, bits.OnesCount32(mask))
	}
	return Marks{got[0], got[1], got[2], got[3], got[4]}, nil
}

// Config is what rendering needs to know.
type Config struct {
	Family         int      // 4 or 6
	Prefixes       []string // InterfacePrefix
	Marks          Marks
	FilterAllow    rs.Action // Accept or Return (IptablesFilterAllowAction)
	MangleAllow    rs.Action // Accept or Return (IptablesMangleAllowAction)
	Deny           rs.Action // Drop or Reject (IptablesFilterDenyAction)
	EndpointToHost rs.Action // Drop, Return or Accept (DefaultEndpointToHostAction)
	OpenStack      bool      // OpenStack special cases (metadata, DHCP, DNS)
	MetadataAddr   string
	MetadataPort   int
	NoInvalidCheck bool // DisableConntrackInvalidCheck
	AllowVXLAN     bool
	AllowIPIP      bool
	VXLANPort      int
	LogPrefix      string
	LogLimit       *rs.Limit // LogActionRateLimit(Burst): Log rules' rate limit; nil: none

	// DropAccept turns policy denials into acceptance
	// (DropActionOverride Accept and LogAndAccept): a Deny rule, the end of
	// a tier and the end of the profiles accept where they would deny.
	DropAccept bool
	// DropLog hands each policy denial to NFLOG first (DropActionOverride
	// LogAndDrop and LogAndAccept); nil: denials are not logged.
	DropLog *DropLog
	// FailsafeIn and FailsafeOut are FailsafeInboundHostPorts and
	// FailsafeOutboundHostPorts: host-endpoint policy never blocks them.
	FailsafeIn, FailsafeOut []Failsafe
	// FlatDispatch renders one dispatch chain per direction with a rule
	// for every interface, for a backend that turns such a run into one
	// map lookup (nftables); otherwise interfaces are bucketed into child
	// chains, so that a packet meets few rules.
	FlatDispatch bool
}

// DropLog says where policy denials are logged: the NFLOG group the
// agent reads, the rate limit of each logging rule, and how many bytes of
// each packet are copied (enough for the headers).
type DropLog struct {
	Group uint16
	Limit rs.Limit
	Size  uint32
}

// Validate checks what the renderer relies on: verdicts of the right
// kinds, ports in range.
func (c *Config) Validate() error {
	check := func(name string, a rs.Action, allowed ...rs.Action) error {
		var names []string
		for _, x := range allowed {
			if a == x {
				return nil
			}
			names = append(names, fmt.Sprintf("%T", x))
		}
		return fmt.Errorf("%s is %T; it must be one of %s", name, a, strings.Join(names, ", "))
	}
	if err := check("filter allow action", c.FilterAllow, rs.Accept{}, rs.Return{}); err != nil {
		return err
	}
	if err := check("mangle allow action", c.MangleAllow, rs.Accept{}, rs.Return{}); err != nil {
		return err
	}
	if err := check("deny action", c.Deny, rs.Drop{}, rs.Reject{}); err != nil {
		return err
	}
	if err := check("endpoint-to-host action", c.EndpointToHost, rs.Drop{}, rs.Return{}, rs.Accept{}); err != nil {
		return err
	}
	if c.MetadataPort < 0 || c.MetadataPort > 65535 || c.VXLANPort < 0 || c.VXLANPort > 65535 {
		return fmt.Errorf("port out of range: metadata %d, VXLAN %d", c.MetadataPort, c.VXLANPort)
	}
	for _, l := range []*rs.Limit{c.LogLimit, c.dropLogLimit()} {
		if l != nil && (l.Count < 1 || l.Count > 10000 || l.Burst > 10000 || !validUnit(l.Per)) {
			return fmt.Errorf("rate limit %d/%s burst %d out of range (1-10000 per second, minute, hour or day; burst up to 10000)", l.Count, l.Per, l.Burst)
		}
	}
	if c.DropLog != nil && (c.DropLog.Group == 0 || c.DropLog.Size < 40 || c.DropLog.Size > 65535) {
		return fmt.Errorf("drop log group %d or size %d out of range", c.DropLog.Group, c.DropLog.Size)
	}
	for _, f := range append(slices.Clone(c.FailsafeIn), c.FailsafeOut...) {
		if f.Protocol.Num != 6 && f.Protocol.Num != 17 {
			return fmt.Errorf("failsafe port %s:%d: the protocol must be tcp or udp", f.Protocol, f.Port)
		}
	}
	return nil
}

func (c *Config) dropLogLimit() *rs.Limit {
	if c.DropLog == nil {
		return nil
	}
	return &c.DropLog.Limit
}

func validUnit(u rs.Unit) bool {
	switch u {
	case rs.PerSecond, rs.PerMinute, rs.PerHour, rs.PerDay:
		return true
	}
	return false
}

// policyDeny is what a policy's denial does: the deny action, or accept
// under DropActionOverride Accept and LogAndAccept.
func (c *Config) policyDeny() rs.Action { return c.policyVerdict(c.Deny) }

// policyVerdict is policyDeny for a chain whose deny is deny (DROP in raw
// and mangle).
func (c *Config) policyVerdict(deny rs.Action) rs.Action {
	if c.DropAccept {
		return rs.Accept{}
	}
	return deny
}

// dropLogRule logs a denial that mt selects to the drop log, as ref; nil
// when denials are not logged.
func (c *Config) dropLogRule(mt rs.Match, ref DropRef) []rs.Rule {
	if c.DropLog == nil {
		return nil
	}
	m := append(rs.Match{}, mt...)
	m = m.With(c.DropLog.Limit)
	return []rs.Rule{{Match: m, Action: rs.NFLOG{Group: c.DropLog.Group, Prefix: ref.Prefix(), Size: c.DropLog.Size}}}
}

// verb names a deny action in comments ("Drop" or "Reject").
func verb(deny rs.Action) string {
	if deny == (rs.Reject{}) {
		return "Reject"
	}
	return "Drop"
}

var (
	tcp = contract.Protocol{Name: "tcp", Num: 6}
	udp = contract.Protocol{Name: "udp", Num: 17}
)

func protoNum(n uint8) contract.Protocol { return contract.Protocol{Num: n} }

func port(p uint16) contract.PortRange { return rs.Port(p) }

// Hooks are the rules a table keeps in the kernel's chains.
type Hooks struct {
	Inserts map[string][]rs.Rule
	Appends map[string][]rs.Rule
}

// Static returns the skeleton chains of each table and their hooks. The
// host-endpoint dispatch chains they jump to (HostDispatchChains) are the
// host-endpoint manager's.
func (c *Config) Static() (map[string][]*rs.Chain, map[string]Hooks) {
	m := c.Marks
	all := m.Accept | m.Pass | m.Scratch0 | m.Scratch1
	chains := map[string][]*rs.Chain{}
	hooks := map[string]Hooks{}
	jump := func(chain string) []rs.Rule { return []rs.Rule{{Action: rs.Jump{Chain: chain}}} }
	clearMark := func(bits uint32) rs.Action { return rs.SetMark{Mask: bits} }
	setMark := func(bits uint32) rs.Action { return rs.SetMark{Value: bits, Mask: bits} }

	// raw: mark packets from workloads, strict reverse-path check against
	// their routes (anti-spoofing), with the DHCP discover exception.
	pre := []rs.Rule{{Action: clearMark(all)}}
	for _, p := range c.Prefixes {
		pre = append(pre, rs.Rule{Match: rs.Match{}.InInterface(p + "+"), Action: setMark(m.Scratch0)})
	}
	pre = append(pre, rs.Rule{Match: rs.Match{}.MarkSet(m.Scratch0), Action: rs.Jump{Chain: ChainRPFSkip}})
	if c.OpenStack && c.Family == 4 {
		pre = append(pre, rs.Rule{Match: rs.Match{}.Protocol(udp).SourceAddr(netip.IPv4Unspecified()).SourcePorts(port(68)).DestPorts(port(67)),
			Action: rs.Accept{}})
	}
	pre = append(pre,
		rs.Rule{Match: rs.Match{}.MarkSet(m.Scratch0).RPFCheckFailed(), Action: c.ForTable("raw").Deny},
		rs.Rule{Match: rs.Match{}.MarkClear(m.Scratch0), Action: rs.Jump{Chain: "cali-from-host-endpoint"}},
		rs.Rule{Match: rs.Match{}.MarkSet(m.Accept), Action: rs.Accept{}},
	)
	chains["raw"] = []*rs.Chain{
		{Name: "cali-PREROUTING", Rules: pre},
		{Name: "cali-OUTPUT", Rules: []rs.Rule{
			{Action: clearMark(all)},
			{Action: rs.Jump{Chain: "cali-to-host-endpoint"}},
			{Match: rs.Match{}.MarkSet(m.Accept), Action: rs.Accept{}},
		}},
	}
	hooks["raw"] = Hooks{Inserts: map[string][]rs.Rule{"PREROUTING": jump("cali-PREROUTING"), "OUTPUT": jump("cali-OUTPUT")}}

	// mangle: accept what is established or already accepted early.
	hepOK := []string{"Host endpoint policy accepted packet."}
	chains["mangle"] = []*rs.Chain{
		{Name: "cali-PREROUTING", Rules: []rs.Rule{
			{Match: rs.Match{}.ConntrackState(rs.CtRelated, rs.CtEstablished), Action: c.MangleAllow},
			{Match: rs.Match{}.MarkSet(m.Accept), Action: c.MangleAllow},
			{Action: rs.Jump{Chain: "cali-from-host-endpoint"}},
			{Comment: hepOK, Match: rs.Match{}.MarkSet(m.Accept), Action: c.MangleAllow},
		}},
		{Name: "cali-POSTROUTING", Rules: []rs.Rule{
			{Match: rs.Match{}.MarkSet(m.Accept), Action: rs.Return{}},
			{Action: clearMark(all)},
			{Match: rs.Match{}.ConntrackState(rs.CtDNAT), Action: rs.Jump{Chain: "cali-to-host-endpoint"}},
			{Comment: hepOK, Match: rs.Match{}.MarkSet(m.Accept), Action: rs.Return{}},
		}},
	}
	hooks["mangle"] = Hooks{Inserts: map[string][]rs.Rule{"PREROUTING": jump("cali-PREROUTING"), "POSTROUTING": jump("cali-POSTROUTING")}}

	// nat: floating IPs and the metadata DNAT.
	natPre := []rs.Rule{{Action: rs.Jump{Chain: ChainFIPDNAT}}}
	if md := c.metadataIP(); c.OpenStack && c.Family == 4 && md.IsValid() {
		natPre = append(natPre, rs.Rule{
			Match:  rs.Match{}.Protocol(tcp).DestPorts(port(80)).DestNet(netip.MustParsePrefix("169.254.169.254/32")),
			Action: rs.DNAT{Addr: md, Port: uint16(c.MetadataPort)},
		})
	}
	chains["nat"] = []*rs.Chain{
		{Name: "cali-PREROUTING", Rules: natPre},
		{Name: "cali-OUTPUT", Rules: jump(ChainFIPDNAT)},
		{Name: "cali-POSTROUTING", Rules: []rs.Rule{{Action: rs.Jump{Chain: ChainFIPSNAT}}, {Action: rs.Jump{Chain: "cali-nat-outgoing"}}}},
		{Name: "cali-nat-outgoing"},
	}
	hooks["nat"] = Hooks{
		Inserts: map[string][]rs.Rule{"PREROUTING": jump("cali-PREROUTING"), "OUTPUT": jump("cali-OUTPUT")},
		Appends: map[string][]rs.Rule{"POSTROUTING": jump("cali-POSTROUTING")},
	}

	// filter.
	forward := []rs.Rule{
		{Action: clearMark(m.Pass | m.Scratch0 | m.Scratch1)},
		{Match: rs.Match{}.MarkClear(m.Accept), Action: rs.Jump{Chain: "cali-from-hep-forward"}},
	}
	for _, p := range c.Prefixes {
		forward = append(forward,
			rs.Rule{Match: rs.Match{}.InInterface(p + "+"), Action: rs.Jump{Chain: ChainFromWorkloadDispatch}},
			rs.Rule{Match: rs.Match{}.OutInterface(p + "+"), Action: rs.Jump{Chain: ChainToWorkloadDispatch}})
	}
	forward = append(forward, rs.Rule{Action: rs.Jump{Chain: "cali-to-hep-forward"}}, rs.Rule{Action: rs.Jump{Chain: "cali-cidr-block"}})
	var input []rs.Rule
	for _, p := range c.Prefixes {
		input = append(input, rs.Rule{Match: rs.Match{}.InInterface(p + "+"), Action: rs.Goto{Chain: ChainWorkloadToHost}})
	}
	input = append(input,
		rs.Rule{Match: rs.Match{}.MarkSet(m.Accept), Action: c.FilterAllow},
		rs.Rule{Action: clearMark(all)},
		rs.Rule{Action: rs.Jump{Chain: "cali-from-host-endpoint"}},
		rs.Rule{Comment: hepOK, Match: rs.Match{}.MarkSet(m.Accept), Action: c.FilterAllow},
	)
	output := []rs.Rule{{Match: rs.Match{}.MarkSet(m.Accept), Action: c.FilterAllow}}
	for _, p := range c.Prefixes {
		output = append(output, rs.Rule{Match: rs.Match{}.OutInterface(p + "+"), Action: rs.Return{}})
	}
	output = append(output,
		rs.Rule{Action: clearMark(all)},
		rs.Rule{Match: rs.Match{}.NotConntrackState(rs.CtDNAT), Action: rs.Jump{Chain: "cali-to-host-endpoint"}},
		rs.Rule{Comment: hepOK, Match: rs.Match{}.MarkSet(m.Accept), Action: c.FilterAllow},
	)
	chains["filter"] = []*rs.Chain{
		{Name: "cali-FORWARD", Rules: forward},
		{Name: "cali-INPUT", Rules: input},
		{Name: "cali-OUTPUT", Rules: output},
		{Name: ChainWorkloadToHost, Rules: c.workloadToHost()},
		{Name: "cali-cidr-block"},
	}
	hooks["filter"] = Hooks{
		Inserts: map[string][]rs.Rule{"INPUT": jump("cali-INPUT"), "FORWARD": jump("cali-FORWARD"), "OUTPUT": jump("cali-OUTPUT")},
		Appends: map[string][]rs.Rule{"FORWARD": {
			{Comment: []string{"Policy explicitly accepted packet."}, Match: rs.Match{}.MarkSet(m.Accept), Action: c.FilterAllow},
			{Action: setMark(m.Accept)},
		}},
	}
	return chains, hooks
}

// metadataIP is MetadataAddr when it is an address of this family, as
// Felix renders it (a host name gives no metadata rules).
func (c *Config) metadataIP() netip.Addr {
	a, err := netip.ParseAddr(c.MetadataAddr)
	if err != nil || a.Is4() != (c.Family == 4) {
		return netip.Addr{}
	}
	return a
}

// workloadToHost is the chain for traffic from a VM to the host: neighbour
// discovery (IPv6), then OpenStack's metadata, DHCP and DNS, accepted
// before and regardless of the VM's egress policy; then the egress policy;
// then DefaultEndpointToHostAction.
func (c *Config) workloadToHost() []rs.Rule {
	var r []rs.Rule
	if c.Family == 6 {
		for _, t := range []int{130, 131, 132, 133, 135, 136} {
			r = append(r, rs.Rule{Match: rs.Match{}.Protocol(protoNum(58)).ICMP(true, contract.ICMPMatch{Type: t}), Action: c.FilterAllow})
		}
	}
	if c.OpenStack {
		if md := c.metadataIP(); c.Family == 4 && md.IsValid() {
			r = append(r, rs.Rule{Match: rs.Match{}.Protocol(tcp).DestAddr(md).DestPorts(port(uint16(c.MetadataPort))), Action: c.FilterAllow})
		}
		if c.Family == 4 {
			r = append(r, rs.Rule{Match: rs.Match{}.Protocol(udp).SourcePorts(port(68)).DestPorts(port(67)), Action: c.FilterAllow})
		} else {
			r = append(r, rs.Rule{Match: rs.Match{}.Protocol(udp).SourcePorts(port(546)).DestPorts(port(547)), Action: c.FilterAllow})
		}
		r = append(r, rs.Rule{Match: rs.Match{}.Protocol(udp).DestPorts(port(53)), Action: c.FilterAllow})
	}
	r = append(r, rs.Rule{Action: rs.Jump{Chain: ChainFromWorkloadDispatch}})
	r = append(r, rs.Rule{Comment: []string{"Configured DefaultEndpointToHostAction"}, Action: c.EndpointToHost})
	return r
}
