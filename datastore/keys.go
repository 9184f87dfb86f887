package datastore

import (
	"net/url"
	"strings"

	"ocelot/datastore/resource"
)

// ResourcePrefix is the root of Calico's v3 resources in etcd.
const ResourcePrefix = "/calico/resources/v3/projectcalico.org/"

// Key identifies a resource by kind, namespace and name, as its etcd path does.
type Key struct {
	Kind      resource.Kind
	Namespace string // "" for cluster-scoped kinds
	Name      string
}

var pluralOf = map[resource.Kind]string{
	resource.KindWorkloadEndpoint:    "workloadendpoints",
	resource.KindNetworkPolicy:       "networkpolicies",
	resource.KindGlobalNetworkPolicy: "globalnetworkpolicies",
	resource.KindProfile:             "profiles",
	resource.KindTier:                "tiers",
	resource.KindNetworkSet:          "networksets",
	resource.KindGlobalNetworkSet:    "globalnetworksets",
	resource.KindHostEndpoint:        "hostendpoints",
	resource.KindFelixConfiguration:  "felixconfigurations",
	resource.KindClusterInformation:  "clusterinformations",
}

var kindOf = func() map[string]resource.Kind {
	m := map[string]resource.Kind{}
	for k, p := range pluralOf {
		m[p] = k
	}
	return m
}()

// KindPrefix is the etcd prefix of every resource of a kind (with a
// trailing slash), optionally within one namespace.
func KindPrefix(kind resource.Kind, namespace string) string {
	p := ResourcePrefix + pluralOf[kind] + "/"
	if namespace != "" {
		p += escapeSegment(namespace) + "/"
	}
	return p
}

// Path returns the key's etcd path.
func (k Key) Path() string {
	if k.Kind.Namespaced() {
		return KindPrefix(k.Kind, k.Namespace) + escapeSegment(k.Name)
	}
	return KindPrefix(k.Kind, "") + escapeSegment(k.Name)
}

func (k Key) String() string { return k.Path() }

// ParseKey reads an etcd path under ResourcePrefix. It returns false for
// paths of other kinds or with the wrong number of segments.
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
		k.Namespace, k.Name = unescapeSegment(segs[1]), unescapeSegment(segs[2])
	case !kind.Namespaced() && len(segs) == 2:
		k.Name = unescapeSegment(segs[1])
	default:
		return Key{}, false
	}
	if k.Name == "" || (kind.Namespaced() && k.Namespace == "") {
		return Key{}, false
	}
	return k, true
}

func escapeSegment(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "%", "%25"), "/", "%2f")
}

func unescapeSegment(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
