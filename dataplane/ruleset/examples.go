package ruleset

import (
	"net/netip"

	"ocelot/contract"
)

// Examples returns one value of every criterion kind and every action
// kind, for renderers' tests: a renderer that cannot render one of them
// has fallen behind the model. A test here checks the lists are complete.
func Examples() ([]Criterion, []Action) {
	code := 0
	return []Criterion{
			Mark{Value: 0x10000, Mask: 0x10000},
			InInterface{Name: "tap+"},
			OutInterface{Name: "tap1"},
			RPFCheckFailed{},
			ConntrackState{States: []CtState{CtRelated, CtEstablished}},
			Protocol{Proto: contract.Protocol{Name: "tcp", Num: 6}},
			Net{Dir: Src, Net: netip.MustParsePrefix("198.18.0.0/16")},
			Addr{Dir: Dst, Addr: netip.MustParseAddr("198.18.0.1")},
			IPSet{Dir: Src, ID: "s:example"},
			IPPortSet{Dir: Dst, ID: "n:example"},
			Ports{Dir: Dst, Ports: []contract.PortRange{{First: 80, Last: 80}, {First: 8000, Last: 8080}}},
			ICMP{Type: contract.ICMPMatch{Type: 8, Code: &code}},
			TCPFlags{Mask: TCPFin | TCPSyn | TCPRst | TCPAck, Set: TCPSyn},
			PacketRate{Rate: 100, Burst: 5},
			ConnLimit{Above: 10},
			Limit{Count: 10, Per: PerSecond, Burst: 20},
		}, []Action{
			Accept{}, Drop{}, Reject{With: RejectTCPReset}, Return{}, Jump{Chain: "cali-x"}, Goto{Chain: "cali-y"},
			SetMark{Value: 0x10000, Mask: 0x10000}, DNAT{Addr: netip.MustParseAddr("198.18.0.1"), Port: 80},
			SNAT{Addr: netip.MustParseAddr("198.18.0.2")}, Log{Prefix: "calico-packet"},
			NFLOG{Group: 20, Prefix: "DPI0|np/ns/name", Size: 128}, NoTrack{},
		}
}
