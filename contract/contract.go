package contract

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Message is one of the message types of this package: IPSetUpdate,
// IPSetDelta, IPSetRemove, PolicyUpdate, PolicyRemove, ProfileUpdate,
// ProfileRemove, EndpointUpdate, EndpointRemove, HostEndpointUpdate,
// HostEndpointRemove and InSync. The set is closed: only this package can
// add a type.
type Message interface{ isMessage() }

func (IPSetUpdate) isMessage()        {}
func (IPSetDelta) isMessage()         {}
func (IPSetRemove) isMessage()        {}
func (PolicyUpdate) isMessage()       {}
func (PolicyRemove) isMessage()       {}
func (ProfileUpdate) isMessage()      {}
func (ProfileRemove) isMessage()      {}
func (EndpointUpdate) isMessage()     {}
func (EndpointRemove) isMessage()     {}
func (HostEndpointUpdate) isMessage() {}
func (HostEndpointRemove) isMessage() {}
func (InSync) isMessage()             {}

// IPSetType is the kernel set type.
type IPSetType string

const (
	IPSetNet       IPSetType = "hash:net"     // selector sets
	IPSetIPAndPort IPSetType = "hash:ip,port" // named-port sets
)

// Member is one IP-set entry: a CIDR, plus protocol and port for
// hash:ip,port sets. It is comparable and cheap to keep in maps.
type Member struct {
	Net   netip.Prefix
	Proto uint8 // 0 for hash:net members
	Port  uint16
}

// String renders the member as ipset takes it.
func (m Member) String() string {
	if m.Proto == 0 {
		if m.Net.IsSingleIP() {
			return m.Net.Addr().String()
		}
		return m.Net.String()
	}
	return fmt.Sprintf("%s,%s:%d", m.Net.Addr(), ProtoName(m.Proto), m.Port)
}

// ProtoName is the name ipset and Felix use for a protocol number.
func ProtoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 132:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// Is6 reports the member's address family.
func (m Member) Is6() bool { return m.Net.Addr().Is6() }

// IPSetUpdate creates a set or replaces its members.
type IPSetUpdate struct {
	ID      string
	Type    IPSetType
	Members []Member
	// Selector is the canonical selector the set stands for (with the
	// named port, for hash:ip,port sets), for explanations only: nothing
	// renders it.
	Selector string
}

// IPSetDelta changes the members of a set already sent.
type IPSetDelta struct {
	ID             string
	Added, Removed []Member
}

// IPSetRemove deletes a set no rule refers to any more.
type IPSetRemove struct{ ID string }

// PolicyID names a policy, as Felix does: by its datastore key (kind,
// namespace, and the key's name), so that two resources never share an ID
// or a chain. The tier is not part of it (the key is unique without it,
// and a policy that moves to another tier keeps its chains); it travels in
// EndpointUpdate.Tiers. Name and Namespace hold only [A-Za-z0-9._-]: calc
// replaces a name that fails validation by "_" and a hash, which no valid
// name can equal.
type PolicyID struct {
	Kind      string // "NetworkPolicy" or "GlobalNetworkPolicy"
	Namespace string
	Name      string
}

// String is Felix's policy ID, "np/<ns>/<name>" or "gnp/<name>", from which
// chain names derive.
func (p PolicyID) String() string {
	if p.Kind == "GlobalNetworkPolicy" {
		return "gnp/" + p.Name
	}
	return "np/" + p.Namespace + "/" + p.Name
}

// PolicyUpdate carries a policy's rules in resolved form.
type PolicyUpdate struct {
	ID                PolicyID
	Inbound, Outbound []Rule
	// FailClosed says the policy's stored form could not be used and it is
	// enforced as deny-all; Reason says why.
	FailClosed bool
	Reason     string
}

// PolicyRemove deletes a policy no local endpoint uses any more.
type PolicyRemove struct{ ID PolicyID }

// ProfileUpdate carries a profile's rules in resolved form.
type ProfileUpdate struct {
	ID                string
	Inbound, Outbound []Rule
	FailClosed        bool
	Reason            string
}

// ProfileRemove deletes a profile no local endpoint uses any more.
type ProfileRemove struct{ ID string }

// EndpointID is Felix's identity of a workload endpoint.
type EndpointID struct {
	Orchestrator string
	WorkloadID   string // "<namespace>/<workload>"
	EndpointID   string
}

func (e EndpointID) String() string { return e.Orchestrator + "/" + e.WorkloadID + "/" + e.EndpointID }

// NAT is a 1:1 mapping (an OpenStack floating IP).
type NAT struct{ Internal, External netip.Addr }

// TierPolicies are the policies of one tier that apply to an endpoint.
type TierPolicies struct {
	Name          string
	DefaultAction string // "Deny" or "Pass"
	Ingress       []PolicyID
	Egress        []PolicyID
}

// EndpointUpdate describes a local endpoint and the policies that apply.
type EndpointUpdate struct {
	ID                         EndpointID
	Name                       string // host-side interface
	MAC                        string
	IPv4Nets, IPv6Nets         []netip.Prefix
	IPv4NAT, IPv6NAT           []NAT
	AllowSpoofedSourcePrefixes []netip.Prefix
	Tiers                      []TierPolicies
	ProfileIDs                 []string
	QoS                        *QoSControls // nil: no limits

	// LiveMigration is the endpoint's part in a live migration of its VM,
	// and MigrationUID the migration's UID (for logs).
	LiveMigration LiveMigrationRole
	MigrationUID  string
	// Labels are the endpoint's own labels (its profiles' labelsToApply
	// not included), for explanations only: nothing renders them.
	Labels map[string]string
}

// LiveMigrationRole is an endpoint's part in a live migration.
type LiveMigrationRole uint8

const (
	// NoMigration: the endpoint is not migrating (or its migration ended).
	NoMigration LiveMigrationRole = iota
	// MigrationSource: the VM is leaving this endpoint. Its routes stay
	// as they are.
	MigrationSource
	// MigrationTarget: the VM is arriving at this endpoint and has not
	// taken over yet. Its routes wait for the VM to announce itself.
	MigrationTarget
)

func (r LiveMigrationRole) String() string {
	switch r {
	case MigrationSource:
		return "source"
	case MigrationTarget:
		return "target"
	}
	return "none"
}

// QoSControls are an endpoint's limits, valid and with defaults applied:
// every non-zero value is in the range Calico's API allows. Ingress is
// traffic to the VM, egress traffic from it.
type QoSControls struct {
	Ingress, Egress QoSLimits
}

// QoSLimits are one direction's limits; zero means none.
type QoSLimits struct {
	Bandwidth uint64 // bits per second
	Burst     uint64 // bits
	Peakrate  uint64 // bits per second
	Minburst  uint32 // bytes
	// PacketRate is in packets per second, PacketBurst in packets.
	PacketRate, PacketBurst uint32
	MaxConnections          uint32
}

// EndpointRemove deletes a local endpoint.
type EndpointRemove struct{ ID EndpointID }

// AllInterfaces is the InterfaceName of a host endpoint that stands for
// every interface of the host that no other host endpoint claims.
const AllInterfaces = "*"

// HostEndpointUpdate describes a host endpoint of this host (a
// HostEndpoint resource whose node is this host) and the policies that
// apply to it. It names its interface (InterfaceName: a name, or
// AllInterfaces), or leaves that empty and claims the interfaces that hold
// one of its expected addresses; the dataplane resolves which interface
// each endpoint governs.
//
// Policies are split as Felix splits them: doNotTrack policies in
// UntrackedTiers (raw table, both directions), preDNAT policies in
// PreDNATTiers (mangle table, ingress only), every other policy in Tiers
// (filter and mangle), and of those the applyOnForward ones also in
// ForwardTiers (forwarded traffic). Untracked and pre-DNAT tiers end in
// Pass, so that the normal policies still apply to what they do not
// decide.
type HostEndpointUpdate struct {
	ID                         string // the HostEndpoint's name
	InterfaceName              string // "", a name, or AllInterfaces
	ExpectedIPv4, ExpectedIPv6 []netip.Addr
	ProfileIDs                 []string
	Tiers                      []TierPolicies
	UntrackedTiers             []TierPolicies
	PreDNATTiers               []TierPolicies
	ForwardTiers               []TierPolicies
	// FailClosed says the endpoint's stored form could not be used: its
	// interface is enforced as deny-all (failsafe ports still open) with
	// the last interface and addresses that were valid. Reason says why.
	FailClosed bool
	Reason     string
}

// HostEndpointRemove deletes a host endpoint: its interfaces are no
// longer policed.
type HostEndpointRemove struct{ ID string }

// InSync follows the first complete state: from here on the dataplane may
// sweep what it does not recognise.
type InSync struct{}

// Action of a resolved rule.
type Action string

const (
	ActionAllow Action = "allow"
	ActionDeny  Action = "deny"
	ActionPass  Action = "pass"
	ActionLog   Action = "log"
)

// Protocol is an IP protocol, named when it has a well-known name.
type Protocol struct {
	Name string // tcp, udp, icmp, icmpv6, sctp, udplite, or ""
	Num  uint8
}

func (p Protocol) String() string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Num))
}

// PortRange is an inclusive range; a single port has First == Last.
type PortRange struct{ First, Last uint16 }

func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d:%d", r.First, r.Last)
}

// ICMPMatch matches an ICMP type and optionally a code.
type ICMPMatch struct {
	Type int
	Code *int
}

// String renders "type" or "type/code", as iptables takes it.
func (m ICMPMatch) String() string {
	if m.Code == nil {
		return strconv.Itoa(m.Type)
	}
	return fmt.Sprintf("%d/%d", m.Type, *m.Code)
}

// Rule is a policy rule in resolved form: selectors have become IP-set
// IDs; every remaining field is a match the dataplane renders directly.
// A rule matches when every field matches.
type Rule struct {
	Action    Action
	IPVersion int // 0, 4 or 6

	Protocol, NotProtocol *Protocol

	SrcNets, NotSrcNets, DstNets, NotDstNets     []netip.Prefix
	SrcPorts, NotSrcPorts, DstPorts, NotDstPorts []PortRange

	SrcIPSetIDs, NotSrcIPSetIDs, DstIPSetIDs, NotDstIPSetIDs []string
	// Named-port sets: a packet matches when its (address, protocol, port)
	// is in any of them, or its port is in the numeric ports.
	SrcNamedPortIPSetIDs, NotSrcNamedPortIPSetIDs []string
	DstNamedPortIPSetIDs, NotDstNamedPortIPSetIDs []string

	ICMP, NotICMP *ICMPMatch

	Annotations map[string]string
}

// IPSetIDs lists the IP sets the rule refers to, from every field that
// holds set IDs (this method is the one place that knows which do).
func (r Rule) IPSetIDs() []string {
	var out []string
	for _, l := range [][]string{r.SrcIPSetIDs, r.NotSrcIPSetIDs, r.DstIPSetIDs, r.NotDstIPSetIDs,
		r.SrcNamedPortIPSetIDs, r.NotSrcNamedPortIPSetIDs, r.DstNamedPortIPSetIDs, r.NotDstNamedPortIPSetIDs} {
		out = append(out, l...)
	}
	return out
}

// String is a compact human-readable form, used in tests and "why" output.
func (r Rule) String() string {
	var b strings.Builder
	b.WriteString(string(r.Action))
	add := func(k string, v any) { fmt.Fprintf(&b, " %s=%v", k, v) }
	if r.IPVersion != 0 {
		add("ipVersion", r.IPVersion)
	}
	if r.Protocol != nil {
		add("protocol", r.Protocol)
	}
	if r.NotProtocol != nil {
		add("!protocol", r.NotProtocol)
	}
	for _, f := range []struct {
		k string
		v any
		n int
	}{
		{"srcNets", r.SrcNets, len(r.SrcNets)}, {"!srcNets", r.NotSrcNets, len(r.NotSrcNets)},
		{"dstNets", r.DstNets, len(r.DstNets)}, {"!dstNets", r.NotDstNets, len(r.NotDstNets)},
		{"srcPorts", r.SrcPorts, len(r.SrcPorts)}, {"!srcPorts", r.NotSrcPorts, len(r.NotSrcPorts)},
		{"dstPorts", r.DstPorts, len(r.DstPorts)}, {"!dstPorts", r.NotDstPorts, len(r.NotDstPorts)},
		{"srcSets", r.SrcIPSetIDs, len(r.SrcIPSetIDs)}, {"!srcSets", r.NotSrcIPSetIDs, len(r.NotSrcIPSetIDs)},
		{"dstSets", r.DstIPSetIDs, len(r.DstIPSetIDs)}, {"!dstSets", r.NotDstIPSetIDs, len(r.NotDstIPSetIDs)},
		{"srcNamedPortSets", r.SrcNamedPortIPSetIDs, len(r.SrcNamedPortIPSetIDs)},
		{"!srcNamedPortSets", r.NotSrcNamedPortIPSetIDs, len(r.NotSrcNamedPortIPSetIDs)},
		{"dstNamedPortSets", r.DstNamedPortIPSetIDs, len(r.DstNamedPortIPSetIDs)},
		{"!dstNamedPortSets", r.NotDstNamedPortIPSetIDs, len(r.NotDstNamedPortIPSetIDs)},
	} {
		if f.n > 0 {
			add(f.k, f.v)
		}
	}
	if r.ICMP != nil {
		add("icmp", r.ICMP)
	}
	if r.NotICMP != nil {
		add("!icmp", r.NotICMP)
	}
	return b.String()
}

// DenyAll is the rule a fail-closed policy or profile holds.
var DenyAll = Rule{Action: ActionDeny}
