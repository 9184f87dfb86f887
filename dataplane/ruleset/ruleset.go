package ruleset

import (
	"fmt"
	"net/netip"

	"ocelot/contract"
)

// Chain is a named list of rules, evaluated in order.
type Chain struct {
	Name  string
	Rules []Rule
}

// Rule is a match, an action and comments. A rule with no criteria
// matches every packet; one with no action (nil) only carries its
// comments.
type Rule struct {
	Match   Match
	Action  Action
	Comment []string
}

// Match is a conjunction of criteria. Renderers keep their order.
type Match []Criterion

// Criterion is one match criterion: one of this package's types.
type Criterion interface{ criterion() }

// Dir says which end of a packet a criterion looks at.
type Dir uint8

const (
	Src Dir = iota // the source address or port
	Dst            // the destination address or port
)

// Mark matches when the packet mark's bits under Mask equal Value.
type Mark struct {
	Value, Mask uint32
	Negate      bool
}

// InInterface matches packets arriving on an interface; a Name ending in
// "+" matches every interface whose name starts with what precedes it.
type InInterface struct{ Name string }

// OutInterface matches packets leaving through an interface; "+" as for
// InInterface.
type OutInterface struct{ Name string }

// RPFCheckFailed matches packets whose source address would not be routed
// back through the interface they arrived on (strict reverse-path check,
// with the packet's mark taken into account).
type RPFCheckFailed struct{}

// CtState is a connection-tracking state.
type CtState string

// The conntrack states the rules use. DNAT is the state of a connection
// whose destination was translated.
const (
	CtEstablished CtState = "ESTABLISHED"
	CtRelated     CtState = "RELATED"
	CtInvalid     CtState = "INVALID"
	CtDNAT        CtState = "DNAT"
)

// ConntrackState matches packets whose connection is in any of States.
type ConntrackState struct {
	States []CtState
	Negate bool
}

// Protocol matches the IP protocol (the next header, for IPv6).
type Protocol struct {
	Proto  contract.Protocol
	Negate bool
}

// Net matches an address in a network.
type Net struct {
	Dir    Dir
	Net    netip.Prefix
	Negate bool
}

// Addr matches one address. It means what a Net of that single address
// means; backends that can tell write it as an address.
type Addr struct {
	Dir    Dir
	Addr   netip.Addr
	Negate bool
}

// IPSet matches an address in the IP set calc knows as ID (a hash:net
// set).
type IPSet struct {
	Dir    Dir
	ID     string
	Negate bool
}

// IPPortSet matches (address, protocol, port) in the IP set calc knows as
// ID (a hash:ip,port set of named ports).
type IPPortSet struct {
	Dir    Dir
	ID     string
	Negate bool
}

// MaxPortSlots is how many ports one Ports criterion may hold, a range
// counting as two (iptables' multiport limit; rules splits longer lists).
const MaxPortSlots = 15

// Ports matches a transport port in any of the ranges. The match needs a
// Protocol criterion with ports (tcp, udp, sctp, udplite) before it.
type Ports struct {
	Dir    Dir
	Ports  []contract.PortRange
	Negate bool
}

// ICMP matches an ICMP (V6: ICMPv6) type and, optionally, code.
type ICMP struct {
	V6     bool
	Type   contract.ICMPMatch
	Negate bool
}

// TCP flag bits, for TCPFlags.
const (
	TCPFin uint8 = 1 << iota
	TCPSyn
	TCPRst
	TCPPsh
	TCPAck
	TCPUrg
)

// TCPFlags matches TCP packets whose flags under Mask are exactly Set (a
// connection's first packet: Mask FIN|SYN|RST|ACK, Set SYN). It needs a
// Protocol criterion for TCP before it.
type TCPFlags struct{ Mask, Set uint8 }

// PacketRate matches packets while a token bucket filled at Rate packets
// per second, holding at most Burst, has a token: the packets within the
// rate. Each rule has its own bucket.
type PacketRate struct{ Rate, Burst uint32 }

// ConnLimit matches packets of a connection that would make more than
// Above connections counted by this rule: the rule counts the live
// connections whose packets it has seen, all together (not per address).
// Used after a match on a connection's first packet.
type ConnLimit struct{ Above uint32 }

// Limit matches while a token bucket has a token: at most Count packets
// per Per on average, Burst at once (0: the backend's default of 5). Each
// rule that holds one has its own bucket; a packet over the limit does
// not match, so the rule's action is skipped. It limits logging (the Log
// action, the drop log), and is written as Felix writes the Log action's
// limit; PacketRate, per second, is QoS's, written as Felix writes that.
type Limit struct {
	Count uint32 // 1-10000
	Per   Unit
	Burst uint32 // 0-10000
}

// Unit is the period of a Limit.
type Unit string

// The periods a Limit may count in.
const (
	PerSecond Unit = "second"
	PerMinute Unit = "minute"
	PerHour   Unit = "hour"
	PerDay    Unit = "day"
)

func (Mark) criterion()           {}
func (InInterface) criterion()    {}
func (OutInterface) criterion()   {}
func (RPFCheckFailed) criterion() {}
func (ConntrackState) criterion() {}
func (Protocol) criterion()       {}
func (Net) criterion()            {}
func (Addr) criterion()           {}
func (IPSet) criterion()          {}
func (IPPortSet) criterion()      {}
func (Ports) criterion()          {}
func (ICMP) criterion()           {}
func (TCPFlags) criterion()       {}
func (PacketRate) criterion()     {}
func (ConnLimit) criterion()      {}
func (Limit) criterion()          {}

// Action is what a matching rule does: one of this package's types.
type Action interface{ action() }

// Accept ends evaluation of the packet in this table, letting it pass.
type Accept struct{}

// Drop discards the packet.
type Drop struct{}

// Reject discards the packet and tells the sender, by ICMP unless With
// says otherwise.
type Reject struct{ With RejectWith }

// RejectWith is how a Reject tells the sender.
type RejectWith uint8

const (
	RejectICMP     RejectWith = iota // ICMP port unreachable (the default)
	RejectTCPReset                   // a TCP reset; the rule must match TCP only
)

// Return leaves this chain for the one that jumped to it.
type Return struct{}

// Jump evaluates Chain, then continues here if it returns.
type Jump struct{ Chain string }

// Goto evaluates Chain and does not come back: its return is this
// chain's.
type Goto struct{ Chain string }

// SetMark sets the packet mark's bits under Mask to Value, leaving the
// others (Value 0 clears them).
type SetMark struct{ Value, Mask uint32 }

// DNAT rewrites the destination to Addr (and Port, when not 0).
type DNAT struct {
	Addr netip.Addr
	Port uint16
}

// SNAT rewrites the source to Addr.
type SNAT struct{ Addr netip.Addr }

// Log logs the packet, with Prefix, and continues.
type Log struct{ Prefix string }

// NFLOG hands the packet's headers (Size bytes of it) to the process
// bound to netlink log Group, with Prefix, and continues. Prefix holds
// at most MaxNFLOGPrefix bytes of letters, digits and " ._:/|-";
// renderers replace any other character with "_".
type NFLOG struct {
	Group  uint16
	Prefix string
	Size   uint32
}

// MaxNFLOGPrefix is the longest NFLOG prefix the kernel keeps whole.
const MaxNFLOGPrefix = 63

// NoTrack exempts the packet from connection tracking and continues
// (raw table only: untracked host-endpoint policy).
type NoTrack struct{}

func (Accept) action()  {}
func (Drop) action()    {}
func (Reject) action()  {}
func (Return) action()  {}
func (Jump) action()    {}
func (Goto) action()    {}
func (SetMark) action() {}
func (DNAT) action()    {}
func (SNAT) action()    {}
func (Log) action()     {}
func (NFLOG) action()   {}
func (NoTrack) action() {}

// Verdict turns the name of a configurable verdict (IptablesFilterAllowAction
// and the like: ACCEPT, DROP, REJECT or RETURN) into its action.
func Verdict(name string) (Action, error) {
	switch name {
	case "ACCEPT":
		return Accept{}, nil
	case "DROP":
		return Drop{}, nil
	case "REJECT":
		return Reject{}, nil
	case "RETURN":
		return Return{}, nil
	}
	return nil, fmt.Errorf("%q is not a verdict (ACCEPT, DROP, REJECT or RETURN)", name)
}

// IPSetIDs lists the sets a chain's rules match.
func (c *Chain) IPSetIDs() []string {
	var out []string
	for _, r := range c.Rules {
		for _, m := range r.Match {
			switch x := m.(type) {
			case IPSet:
				out = append(out, x.ID)
			case IPPortSet:
				out = append(out, x.ID)
			}
		}
	}
	return out
}
