package resource

import (
	"net/netip"
	"ocelot/selector"
)

// Kind names a resource kind as it appears in JSON ("kind").
type Kind string

const (
	KindWorkloadEndpoint    Kind = "WorkloadEndpoint"
	KindNetworkPolicy       Kind = "NetworkPolicy"
	KindGlobalNetworkPolicy Kind = "GlobalNetworkPolicy"
	KindProfile             Kind = "Profile"
	KindTier                Kind = "Tier"
	KindNetworkSet          Kind = "NetworkSet"
	KindGlobalNetworkSet    Kind = "GlobalNetworkSet"
	KindHostEndpoint        Kind = "HostEndpoint"
	KindFelixConfiguration  Kind = "FelixConfiguration"
	KindClusterInformation  Kind = "ClusterInformation"
	KindLiveMigration       Kind = "LiveMigration"
)

// Namespaced reports whether resources of the kind live in a namespace.
func (k Kind) Namespaced() bool {
	switch k {
	case KindWorkloadEndpoint, KindNetworkPolicy, KindNetworkSet, KindLiveMigration:
		return true
	}
	return false
}

// Endpoint is a validated WorkloadEndpoint. Its identity follows Felix's v1
// model: the name splits into host, orchestrator, workload and endpoint.
type Endpoint struct {
	Namespace, Name string

	Host         string // hostname part of the name (Felix's locality test)
	Orchestrator string
	Workload     string // without the namespace
	EndpointID   string

	Node                       string // spec.node
	Labels                     map[string]string
	Profiles                   []string
	InterfaceName              string
	MAC                        string
	IPv4Nets                   []netip.Prefix // /32s
	IPv6Nets                   []netip.Prefix // /128s
	IPv4NAT                    []NAT
	IPv6NAT                    []NAT
	IPv4Gateway                netip.Addr
	IPv6Gateway                netip.Addr
	Ports                      []NamedPort
	AllowSpoofedSourcePrefixes []netip.Prefix
	QoS                        *QoSControls // nil: no limits
}

// WorkloadID is Felix's v1 workload ID: "<namespace>/<workload>".
func (e *Endpoint) WorkloadID() string { return e.Namespace + "/" + e.Workload }

// Nets returns all of the endpoint's addresses, IPv4 first.
func (e *Endpoint) Nets() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(e.IPv4Nets)+len(e.IPv6Nets))
	return append(append(out, e.IPv4Nets...), e.IPv6Nets...)
}

// RemoteEndpoint is what Ocelot keeps of an endpoint on another host: only
// what IP-set membership needs.
type RemoteEndpoint struct {
	Namespace string
	Labels    map[string]string
	Profiles  []string
	Nets      []netip.Prefix
	Ports     []NamedPort
}

// NAT is a 1:1 NAT mapping (an OpenStack floating IP).
type NAT struct {
	Internal, External netip.Addr
}

// NamedPort is a named port of an endpoint.
type NamedPort struct {
	Name     string
	Protocol Protocol
	Port     uint16
}

// Policy is a validated NetworkPolicy (Namespace set) or GlobalNetworkPolicy.
type Policy struct {
	Kind      Kind
	Namespace string // "" for GlobalNetworkPolicy
	Name      string

	Tier              string             // "default" when unset
	Order             *float64           // nil sorts last
	Selector          *selector.Selector // nil: all()
	NamespaceSelector *selector.Selector // GlobalNetworkPolicy only; nil when absent
	Types             []PolicyType       // never empty after decoding
	Ingress, Egress   []Rule
	DoNotTrack        bool
	PreDNAT           bool
	ApplyOnForward    bool
}

// PolicyType is Ingress or Egress.
type PolicyType string

const (
	Ingress PolicyType = "Ingress"
	Egress  PolicyType = "Egress"
)

// Applies reports whether the policy governs the given direction.
func (p *Policy) Applies(t PolicyType) bool {
	for _, x := range p.Types {
		if x == t {
			return true
		}
	}
	return false
}

// Profile is a validated Profile.
type Profile struct {
	Name            string
	LabelsToApply   map[string]string
	Ingress, Egress []Rule
}

// Tier is a validated Tier.
type Tier struct {
	Name          string
	Order         *float64
	DefaultAction Action // Deny or Pass
}

// NetworkSet is a validated NetworkSet (Namespace set) or GlobalNetworkSet.
type NetworkSet struct {
	Namespace, Name string
	Labels          map[string]string
	Nets            []netip.Prefix
}

// HostEndpoint is a validated HostEndpoint.
type HostEndpoint struct {
	Name          string
	Node          string
	InterfaceName string
	ExpectedIPs   []netip.Addr
	Profiles      []string
	Labels        map[string]string
	Ports         []NamedPort
}

// FelixConfiguration carries its spec undecoded: config/ maps fields to
// parameters.
type FelixConfiguration struct {
	Name        string
	Spec        map[string]any
	Annotations map[string]string
}

// ClusterInformation is the cluster-wide "default" object.
type ClusterInformation struct {
	Name           string
	ClusterGUID    string
	ClusterType    string
	CalicoVersion  string
	Variant        string
	DatastoreReady *bool
}

// Invalid stands for a stored value that failed to decode or validate.
// Policy, when not nil, holds what could be recovered of a policy (at least
// a valid selector), so that calc can enforce deny-all on the endpoints it
// selects instead of dropping it.
type Invalid struct {
	Kind   Kind
	Reason error
	Policy *Policy
}
