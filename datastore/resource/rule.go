package resource

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"ocelot/selector"
	"strconv"
	"strings"
)

// Action is a rule's action, normalized to the API's spelling.
type Action string

const (
	Allow Action = "Allow"
	Deny  Action = "Deny"
	Log   Action = "Log"
	Pass  Action = "Pass"
)

// Rule is one ingress or egress rule.
type Rule struct {
	Action      Action
	IPVersion   int // 0 (both), 4 or 6
	Protocol    *Protocol
	NotProtocol *Protocol
	ICMP        *ICMP
	NotICMP     *ICMP
	Source      EntityRule
	Destination EntityRule
	// Unenforceable names a match an iptables agent cannot enforce (http,
	// serviceAccounts, services); calc makes such a rule fail closed.
	Unenforceable string
	Annotations   map[string]string
}

// EntityRule is a rule's source or destination.
type EntityRule struct {
	Nets    []netip.Prefix
	NotNets []netip.Prefix
	// Parsed selectors; nil when the field is absent. NamespaceSelector
	// may be global() (only cluster-scoped peers); global() appears
	// nowhere else.
	Selector          *selector.Selector
	NotSelector       *selector.Selector
	NamespaceSelector *selector.Selector
	Ports             []Port
	NotPorts          []Port
}

// ICMP matches an ICMP type and optionally a code.
type ICMP struct {
	Type int
	Code *int
}

// Protocol is an IP protocol: a well-known name or a number.
type Protocol struct {
	Name string // lower-case v1 name (tcp, udp, icmp, icmpv6, sctp, udplite) or ""
	Num  uint8
}

var protocolNames = map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132, "udplite": 136}

// ParseProtocol reads a protocol name (any case) or number 1-255.
func ParseProtocol(s string) (Protocol, error) {
	if n, ok := protocolNames[strings.ToLower(s)]; ok {
		return Protocol{Name: strings.ToLower(s), Num: n}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 255 {
		return Protocol{}, fmt.Errorf("protocol %+q must be TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number from 1 to 255", clip(s))
	}
	for name, num := range protocolNames {
		if int(num) == n {
			return Protocol{Name: name, Num: num}, nil
		}
	}
	return Protocol{Num: uint8(n)}, nil
}

// String renders the protocol as iptables takes it.
func (p Protocol) String() string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Num))
}

// SupportsPorts reports whether numeric ports make sense with p.
func (p Protocol) SupportsPorts() bool { return p.Num == 6 || p.Num == 17 || p.Num == 132 }

// Port is a single port, an inclusive range, or a named port.
type Port struct {
	First, Last uint16
	Name        string
}

func (p Port) String() string {
	switch {
	case p.Name != "":
		return p.Name
	case p.First == p.Last:
		return strconv.Itoa(int(p.First))
	}
	return fmt.Sprintf("%d:%d", p.First, p.Last)
}

// ParsePort reads "80", "8000:8080" or a name.
func ParsePort(s string) (Port, error) {
	if s == "" {
		return Port{}, fmt.Errorf("port must not be empty")
	}
	if lo, hi, ok := strings.Cut(s, ":"); ok {
		a, err1 := strconv.ParseUint(lo, 10, 16)
		b, err2 := strconv.ParseUint(hi, 10, 16)
		if err1 != nil || err2 != nil {
			return Port{}, fmt.Errorf("port range %+q must be <min>:<max> with numbers from 0 to 65535", clip(s))
		}
		if a > b {
			return Port{}, fmt.Errorf("port range %+q has its minimum above its maximum", clip(s))
		}
		return Port{First: uint16(a), Last: uint16(b)}, nil
	}
	if isDigits(s) {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return Port{}, fmt.Errorf("port %+q must be from 0 to 65535", clip(s))
		}
		return Port{First: uint16(n), Last: uint16(n)}, nil
	}
	if !namedPortRE.MatchString(s) {
		return Port{}, fmt.Errorf("named port %+q must be 1-128 characters from [a-zA-Z0-9_.-]", clip(s))
	}
	return Port{Name: s}, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// numOrString decodes a JSON number or string into its text.
type numOrString string

func (v *numOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = numOrString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("must be a number or a string")
	}
	*v = numOrString(n.String())
	return nil
}
