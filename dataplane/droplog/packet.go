package droplog

import (
	"encoding/binary"
	"net/netip"
)

// Packet is one packet the kernel logged: the rule's prefix, the
// interfaces it came in and was going out on (0: none), and its first
// bytes from the IP header on.
type Packet struct {
	Prefix        string
	InDev, OutDev uint32
	Payload       []byte
}

// Tuple is what a log line says of a packet. Ports are 0 for protocols
// without them; ICMP gives its type and code instead.
type Tuple struct {
	Proto            uint8
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	ICMPType         int // -1 when not ICMP
	ICMPCode         int
}

// parseTuple reads the IP header (IPv4, or IPv6 past its usual extension
// headers) and the transport ports. It is false for anything it cannot
// read; it never reads past the payload.
func parseTuple(b []byte) (Tuple, bool) {
	t := Tuple{ICMPType: -1}
	if len(b) < 1 {
		return t, false
	}
	var l4 []byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return t, false
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return t, false
		}
		t.Proto = b[9]
		t.Src = netip.AddrFrom4([4]byte(b[12:16]))
		t.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
			return t, true // a later fragment: no transport header
		}
		l4 = b[ihl:]
	case 6:
		if len(b) < 40 {
			return t, false
		}
		t.Src = netip.AddrFrom16([16]byte(b[8:24]))
		t.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		next, rest := b[6], b[40:]
		for range 8 { // hop-by-hop, routing, destination options, fragment
			switch next {
			case 0, 43, 60:
				if len(rest) < 8 {
					return t, false
				}
				n := (int(rest[1]) + 1) * 8
				if len(rest) < n {
					return t, false
				}
				next, rest = rest[0], rest[n:]
				continue
			case 44:
				if len(rest) < 8 {
					return t, false
				}
				if binary.BigEndian.Uint16(rest[2:4])&0xfff8 != 0 {
					t.Proto = rest[0]
					return t, true // a later fragment
				}
				next, rest = rest[0], rest[8:]
				continue
			}
			break
		}
		t.Proto, l4 = next, rest
	default:
		return t, false
	}
	switch t.Proto {
	case 6, 17, 132, 136:
		if len(l4) >= 4 {
			t.SrcPort, t.DstPort = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
		}
	case 1, 58:
		if len(l4) >= 2 {
			t.ICMPType, t.ICMPCode = int(l4[0]), int(l4[1])
		}
	}
	return t, true
}
