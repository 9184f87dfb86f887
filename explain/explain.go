package explain

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"ocelot/contract"
)

// Bounds of a query and of an answer.
const (
	MaxQueryText = 256  // bytes of each text field of a query
	MaxSteps     = 2000 // steps of a flow's explanation
	MaxRules     = 2000 // rules listed for an endpoint
)

// State is what the agent holds, as the dataplane holds it. Calls come
// from the dataplane's own goroutine while it serves the query.
type State interface {
	// Endpoints are the local endpoints whose chains are programmed (each
	// owns its interface).
	Endpoints() []*contract.EndpointUpdate
	Policy(id contract.PolicyID) *contract.PolicyUpdate
	Profile(id string) *contract.ProfileUpdate
	// Set describes an IP set calc sent; false when there is none.
	Set(id string) (SetInfo, bool)
	// InSet reports whether an address (with protocol and port, for a
	// hash:ip,port set) is a member of a set, in the address's family.
	InSet(id string, addr netip.Addr, proto uint8, port uint16) bool
	// Chain names, as the rules are rendered.
	EndpointChains(iface string) (to, from string)
	PolicyChain(id contract.PolicyID, inbound bool) string
	ProfileChain(id string, inbound bool) string
	Settings() Settings
}

// Settings are the facts about the host and its configuration that
// decide a flow besides policy.
type Settings struct {
	InSync  bool // the first complete apply is done
	Pending bool // changes wait for the next apply (or a failed one's retry)

	DenyAction   string // IptablesFilterDenyAction: DROP or REJECT
	DropOverride string // DropActionOverride: Drop, Accept, LogAndDrop, LogAndAccept
	LogPrefix    string

	DropVXLAN bool // AllowVXLANPacketsFromWorkloads is false
	VXLANPort int
	DropIPIP  bool // AllowIPIPPacketsFromWorkloads is false

	OpenStack      bool // metadata, DHCP and DNS to the host are accepted before policy
	MetadataAddr   netip.Addr
	MetadataPort   int
	EndpointToHost string // DefaultEndpointToHostAction: DROP, RETURN or ACCEPT

	HostAddrs []netip.Addr // this host's own addresses
}

// SetInfo describes an IP set.
type SetInfo struct {
	ID       string   `json:"id"`
	Type     string   `json:"type"`
	Selector string   `json:"selector,omitempty"`
	Names    []string `json:"names"`    // kernel names, per family
	Members  []int    `json:"members"`  // member counts, per family (as Names)
	Families []int    `json:"families"` // 4, 6 (as Names)
}

// Query is one question: an endpoint, or a flow.
type Query struct {
	Endpoint string `json:"endpoint,omitempty"` // interface, port (endpoint) ID, workload ID, or address
	Flow     *Flow  `json:"flow,omitempty"`
}

// Flow is a packet opening a connection. Src and Dst are addresses or
// local endpoints (as Query.Endpoint).
type Flow struct {
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	Protocol string `json:"protocol,omitempty"` // tcp (default), udp, sctp, udplite, icmp, icmpv6 or a number
	SrcPort  uint16 `json:"src_port,omitempty"`
	DstPort  uint16 `json:"dst_port,omitempty"`
	ICMPType *int   `json:"icmp_type,omitempty"`
	ICMPCode *int   `json:"icmp_code,omitempty"`
}

// Answer is what the agent says.
type Answer struct {
	InSync    bool          `json:"in_sync"`
	Pending   bool          `json:"pending"`
	Endpoint  *EndpointInfo `json:"endpoint,omitempty"`
	Flow      *FlowVerdict  `json:"flow,omitempty"`
	Error     string        `json:"error,omitempty"`
	Truncated bool          `json:"truncated,omitempty"`
}

// Explain answers a query from the state.
func Explain(st State, q Query) Answer {
	s := st.Settings()
	a := Answer{InSync: s.InSync, Pending: s.Pending}
	if err := q.validate(); err != nil {
		a.Error = err.Error()
		return a
	}
	var err error
	if q.Flow != nil {
		a.Flow, a.Truncated, err = evaluate(st, *q.Flow)
	} else {
		a.Endpoint, a.Truncated, err = describe(st, q.Endpoint)
	}
	if err != nil {
		a.Error = err.Error()
	}
	return a
}

func (q Query) validate() error {
	fields := []string{q.Endpoint}
	if q.Flow != nil {
		fields = append(fields, q.Flow.Src, q.Flow.Dst, q.Flow.Protocol)
	}
	for _, f := range fields {
		if len(f) > MaxQueryText {
			return fmt.Errorf("a query field is longer than %d bytes", MaxQueryText)
		}
		if strings.ContainsFunc(f, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return errors.New("a query field holds a control character")
		}
	}
	switch {
	case q.Flow == nil && q.Endpoint == "":
		return errors.New("ask about an endpoint or a flow")
	case q.Flow != nil && q.Endpoint != "":
		return errors.New("ask about an endpoint or a flow, not both")
	case q.Flow != nil && (q.Flow.Src == "" || q.Flow.Dst == ""):
		return errors.New("a flow needs a source and a destination")
	}
	return nil
}

// ParseProtocol reads a protocol name or number; icmp means ICMPv6 for
// an IPv6 flow.
func ParseProtocol(s string, v6 bool) (uint8, error) {
	switch strings.ToLower(s) {
	case "", "tcp":
		return 6, nil
	case "udp":
		return 17, nil
	case "sctp":
		return 132, nil
	case "udplite":
		return 136, nil
	case "icmp", "icmpv6", "icmp6":
		if v6 {
			return 58, nil
		}
		return 1, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("protocol %q is not a name (tcp, udp, sctp, udplite, icmp) or a number up to 255", s)
	}
	return uint8(n), nil
}

// protoName names a protocol as rules do.
func protoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	case 136:
		return "udplite"
	}
	return contract.ProtoName(p)
}

// findEndpoints returns the local endpoints a reference names: by
// interface, port (endpoint) ID, workload ID, full ID, or address.
func findEndpoints(st State, ref string) []*contract.EndpointUpdate {
	addr, err := netip.ParseAddr(ref)
	isAddr := err == nil
	var out []*contract.EndpointUpdate
	for _, ep := range st.Endpoints() {
		_, workload, _ := strings.Cut(ep.ID.WorkloadID, "/")
		switch {
		case isAddr && ownsAddr(ep, addr),
			!isAddr && (ep.Name == ref || ep.ID.EndpointID == ref || ep.ID.WorkloadID == ref || workload == ref || ep.ID.String() == ref):
			out = append(out, ep)
		}
	}
	return out
}

// findEndpoint is findEndpoints for exactly one.
func findEndpoint(st State, ref string) (*contract.EndpointUpdate, error) {
	eps := findEndpoints(st, ref)
	switch len(eps) {
	case 0:
		return nil, fmt.Errorf("no local endpoint is %q (give an interface, a port ID, a workload ID or an address)", ref)
	case 1:
		return eps[0], nil
	}
	var names []string
	for _, ep := range eps {
		names = append(names, ep.Name)
	}
	return nil, fmt.Errorf("%q names %d endpoints (%s); give the interface or the port ID", ref, len(eps), strings.Join(names, ", "))
}

func ownsAddr(ep *contract.EndpointUpdate, a netip.Addr) bool {
	nets := ep.IPv4Nets
	if a.Is6() {
		nets = ep.IPv6Nets
	}
	return slices.ContainsFunc(nets, func(n netip.Prefix) bool { return n.Contains(a) })
}

// namespace is the endpoint's namespace: its workload ID's first part.
func namespace(ep *contract.EndpointUpdate) string {
	ns, _, _ := strings.Cut(ep.ID.WorkloadID, "/")
	return ns
}

// directionName names a direction of an endpoint.
func directionName(ingress bool) string {
	if ingress {
		return "ingress"
	}
	return "egress"
}
