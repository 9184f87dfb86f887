package ruleset

import (
	"net/netip"

	"ocelot/contract"
)

// Builders: each returns the match with one criterion appended, so rules
// read as a chain of conditions ("Match{}.Protocol(TCP).DestPorts(80)").

// MarkClear matches packets with every bit of bits clear.
func (m Match) MarkClear(bits uint32) Match { return m.With(Mark{Mask: bits}) }

// MarkNotClear matches packets with any bit of bits set.
func (m Match) MarkNotClear(bits uint32) Match { return m.With(Mark{Mask: bits, Negate: true}) }

// MarkSet matches packets with every bit of bits set.
func (m Match) MarkSet(bits uint32) Match { return m.With(Mark{Value: bits, Mask: bits}) }

func (m Match) InInterface(name string) Match  { return m.With(InInterface{name}) }
func (m Match) OutInterface(name string) Match { return m.With(OutInterface{name}) }
func (m Match) RPFCheckFailed() Match          { return m.With(RPFCheckFailed{}) }

func (m Match) ConntrackState(s ...CtState) Match { return m.With(ConntrackState{States: s}) }
func (m Match) NotConntrackState(s ...CtState) Match {
	return m.With(ConntrackState{States: s, Negate: true})
}

func (m Match) Protocol(p contract.Protocol) Match { return m.With(Protocol{Proto: p}) }
func (m Match) NotProtocol(p contract.Protocol) Match {
	return m.With(Protocol{Proto: p, Negate: true})
}

func (m Match) SourceNet(n netip.Prefix) Match    { return m.With(Net{Dir: Src, Net: n}) }
func (m Match) NotSourceNet(n netip.Prefix) Match { return m.With(Net{Dir: Src, Net: n, Negate: true}) }
func (m Match) DestNet(n netip.Prefix) Match      { return m.With(Net{Dir: Dst, Net: n}) }
func (m Match) NotDestNet(n netip.Prefix) Match   { return m.With(Net{Dir: Dst, Net: n, Negate: true}) }
func (m Match) SourceAddr(a netip.Addr) Match     { return m.With(Addr{Dir: Src, Addr: a}) }
func (m Match) DestAddr(a netip.Addr) Match       { return m.With(Addr{Dir: Dst, Addr: a}) }

func (m Match) SourceIPSet(id string) Match    { return m.With(IPSet{Dir: Src, ID: id}) }
func (m Match) NotSourceIPSet(id string) Match { return m.With(IPSet{Dir: Src, ID: id, Negate: true}) }
func (m Match) DestIPSet(id string) Match      { return m.With(IPSet{Dir: Dst, ID: id}) }
func (m Match) NotDestIPSet(id string) Match   { return m.With(IPSet{Dir: Dst, ID: id, Negate: true}) }

func (m Match) SourceIPPortSet(id string) Match { return m.With(IPPortSet{Dir: Src, ID: id}) }
func (m Match) NotSourceIPPortSet(id string) Match {
	return m.With(IPPortSet{Dir: Src, ID: id, Negate: true})
}
func (m Match) DestIPPortSet(id string) Match { return m.With(IPPortSet{Dir: Dst, ID: id}) }
func (m Match) NotDestIPPortSet(id string) Match {
	return m.With(IPPortSet{Dir: Dst, ID: id, Negate: true})
}

func (m Match) SourcePorts(p ...contract.PortRange) Match { return m.With(Ports{Dir: Src, Ports: p}) }
func (m Match) NotSourcePorts(p ...contract.PortRange) Match {
	return m.With(Ports{Dir: Src, Ports: p, Negate: true})
}
func (m Match) DestPorts(p ...contract.PortRange) Match { return m.With(Ports{Dir: Dst, Ports: p}) }
func (m Match) NotDestPorts(p ...contract.PortRange) Match {
	return m.With(Ports{Dir: Dst, Ports: p, Negate: true})
}

func (m Match) ICMP(v6 bool, t contract.ICMPMatch) Match { return m.With(ICMP{V6: v6, Type: t}) }
func (m Match) NotICMP(v6 bool, t contract.ICMPMatch) Match {
	return m.With(ICMP{V6: v6, Type: t, Negate: true})
}

// TCPSyn matches a TCP connection's first packet (SYN without FIN, RST or
// ACK).
func (m Match) TCPSyn() Match {
	return m.With(TCPFlags{Mask: TCPFin | TCPSyn | TCPRst | TCPAck, Set: TCPSyn})
}

// WithinPacketRate matches packets within rate packets per second, with
// a burst of burst.
func (m Match) WithinPacketRate(rate, burst uint32) Match {
	return m.With(PacketRate{Rate: rate, Burst: burst})
}

// ConnLimitAbove matches connections beyond the first n this rule counts.
func (m Match) ConnLimitAbove(n uint32) Match { return m.With(ConnLimit{Above: n}) }

// Port is a single port as a range.
func Port(p uint16) contract.PortRange { return contract.PortRange{First: p, Last: p} }

// With appends any criterion.
func (m Match) With(c Criterion) Match { return append(m, c) }
