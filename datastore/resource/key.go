package resource

import "strings"

// ResourcePrefix is the root of Calico's v3 resources in etcd.
const ResourcePrefix = "/calico/resources/v3/projectcalico.org/"

// Key identifies a resource by kind, namespace and name, as its etcd path does.
type Key struct {
	Kind      Kind
	Namespace string // "" for cluster-scoped kinds
	Name      string
}

var pluralOf = map[Kind]string{
	KindWorkloadEndpoint:    "workloadendpoints",
	KindNetworkPolicy:       "networkpolicies",
	KindGlobalNetworkPolicy: "globalnetworkpolicies",
	KindProfile:             "profiles",
	KindTier:                "tiers",
	KindNetworkSet:          "networksets",
	KindGlobalNetworkSet:    "globalnetworksets",
	KindHostEndpoint:        "hostendpoints",
	KindFelixConfiguration:  "felixconfigurations",
	KindClusterInformation:  "clusterinformations",
	KindLiveMigration:       "livemigrations",
}

var kindOf = func() map[string]Kind {
	m := map[string]Kind{}
	for k, p := range pluralOf {
		m[p] = k
	}
	return m
}()

// KindPrefix is the etcd prefix of every resource of a kind (with a
// trailing slash), optionally within one namespace.
func KindPrefix(kind Kind, namespace string) string {
	p := ResourcePrefix + pluralOf[kind] + "/"
	if namespace != "" {
		p += namespace + "/"
	}
	return p
}

// Path returns the key's etcd path.
func (k Key) Path() string {
	if k.Kind.Namespaced() {
		return KindPrefix(k.Kind, k.Namespace) + k.Name
	}
	return KindPrefix(k.Kind, "") + k.Name
}

func (k Key) String() string { return k.Path() }

// ParseKey reads an etcd path under ResourcePrefix. It returns false for
// paths of other kinds or with the wrong number of segments.
//
// Segments are taken literally, as libcalico-go does for v3 resources:
// nothing is unescaped, so the mapping from paths to keys is one to one
// and two different paths can never name (and so replace or delete) one
// resource. A segment that is not a valid name (a '%' escape, a space, a
// control character) still yields a key; Decode then reports the resource
// as invalid, with its key, and calc fails closed for it.
func ParseKey(path string) (Key, bool) {
	rest, ok := strings.CutPrefix(path, ResourcePrefix)
	if !ok {
		return Key{}, false
	}
	segs := strings.Split(rest, "/")
	kind, ok := kindOf[segs[0]]
	if !ok {
		return Key{}, false
	}
	var k Key
	k.Kind = kind
	switch {
	case kind.Namespaced() && len(segs) == 3:
		k.Namespace, k.Name = segs[1], segs[2]
	case !kind.Namespaced() && len(segs) == 2:
		k.Name = segs[1]
	default:
		return Key{}, false
	}
	if k.Name == "" || (kind.Namespaced() && k.Namespace == "") {
		return Key{}, false
	}
	return k, true
}

// EscapeSegment escapes '%' and '/' for a segment of a status key (Felix's
// v1 status keys hold workload IDs, which contain '/').
func EscapeSegment(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "%", "%25"), "/", "%2f")
}

// Update is one change: the resource at Key now has Value, or was deleted
// (Value nil). Value is a *Endpoint or *RemoteEndpoint,
// *Policy, *Profile, *Tier, *NetworkSet,
// *HostEndpoint, *FelixConfiguration,
// *ClusterInformation, *LiveMigration, or *Invalid for a stored value
// that did not decode or validate.
type Update struct {
	Key      Key
	Value    any
	Revision int64 // etcd mod revision of the change
}
