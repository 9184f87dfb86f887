package resource

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"ocelot/internal/cidr"
)

// Limits where the size of a stored value drives work. A value over a limit
// is an invalid resource (reported with its key and field, failed closed),
// never a crash or an unbounded loop. Each is far above what OpenStack or
// calicoctl write (docs/calico.md, "Names and limits").
const (
	MaxValueBytes   = 8 << 20 // one stored value
	maxNameLength   = 253     // a DNS subdomain, Calico's limit for names
	maxLabelsPerObj = 512     // labels of one endpoint, network set, host endpoint; labelsToApply
	maxRules        = 10_000  // rules per direction of a policy or profile
	maxNets         = 1024    // CIDRs per nets or notNets list of a rule
	maxPorts        = 1024    // entries per ports or notPorts list of a rule
	maxSetNets      = 100_000 // CIDRs of one (global) network set
	maxAddresses    = 256     // ipNetworks, ipNATs, allowSpoofedSourcePrefixes, expectedIPs
	maxNamedPorts   = 256     // named ports of one endpoint
	maxProfiles     = 64      // profiles of one endpoint
	maxAnnotations  = 64      // annotations of one rule (each becomes an iptables comment)
	maxAnnotBytes   = 256 << 10
)

// clip shortens untrusted text for an error message, so that a huge value
// cannot make a huge log line. Callers quote the result with %+q, which
// escapes control characters and everything outside ASCII.
func clip(s string) string {
	const show = 64
	if len(s) <= show {
		return s
	}
	return s[:show] + "..."
}

// Character classes of the name and label grammars (all ASCII: Unicode
// and control characters never pass).
func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
func isAlnum(c byte) bool      { return isLowerAlnum(c) || c >= 'A' && c <= 'Z' }

// isDNSLabel reports whether s is a DNS-1123 label: 1-63 characters of
// [a-z0-9-], starting and ending with a letter or digit. With upper, upper
// case letters are allowed too.
func isDNSLabel(s string, upper bool) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	ok := isLowerAlnum
	if upper {
		ok = isAlnum
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !ok(c) && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// isDNSSubdomain reports whether s is one or more DNS labels joined by
// dots, at most 253 characters.
func isDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > maxNameLength {
		return false
	}
	for part := range strings.SplitSeq(s, ".") {
		if !isDNSLabel(part, false) {
			return false
		}
	}
	return true
}

// isLabelName reports whether s is the name part of a Kubernetes label key
// or a label value (when not empty): at most 63 characters of
// [A-Za-z0-9_.-], starting and ending with a letter or digit.
func isLabelName(s string) bool {
	if len(s) == 0 || len(s) > 63 || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// isQualifiedName reports whether s is a Kubernetes label key: an optional
// DNS subdomain prefix and '/', then a label name.
func isQualifiedName(s string) bool {
	prefix, name, ok := strings.Cut(s, "/")
	if !ok {
		return isLabelName(s)
	}
	return isDNSSubdomain(prefix) && isLabelName(name)
}

// CheckName reports whether name is a valid name for a resource of the
// kind, by Calico's rules (docs/calico.md, "Names and limits"). Names reach
// chain names, log lines and status keys, so no kind admits spaces, quotes,
// control characters or anything outside ASCII.
func CheckName(kind Kind, name string) error {
	var ok bool
	var rule string
	switch kind {
	case KindGlobalNetworkPolicy:
		// A DNS label, optionally after "<tier>." (names from before
		// Calico 3.30 carry their tier).
		tier, rest, dotted := strings.Cut(name, ".")
		ok = isDNSLabel(name, false) || dotted && isDNSLabel(tier, false) && isDNSLabel(rest, false)
		rule = "must be a lower-case DNS label, optionally after '<tier>.'"
	case KindNetworkPolicy:
		// As a GlobalNetworkPolicy, or a DNS subdomain after "knp.default."
		// or "ossg.default." (Kubernetes and Neutron security groups).
		tier, rest, dotted := strings.Cut(name, ".")
		ok = isDNSLabel(name, false) || dotted && isDNSLabel(tier, false) && isDNSLabel(rest, false)
		for _, p := range []string{"knp.default.", "ossg.default."} {
			if r, found := strings.CutPrefix(name, p); found && isDNSSubdomain(r) {
				ok = true
			}
		}
		rule = "must be a lower-case DNS label, optionally after '<tier>.', or a DNS subdomain after 'ossg.default.' or 'knp.default.'"
	case KindTier:
		ok, rule = isDNSLabel(name, false), "must be a lower-case DNS label (1-63 characters of [a-z0-9-])"
	case KindWorkloadEndpoint, KindLiveMigration:
		// Neutron builds these from Nova host names, which keep their case
		// (a LiveMigration is named after its destination endpoint).
		ok = len(name) > 0 && len(name) <= maxNameLength
		for i := 0; ok && i < len(name); i++ {
			c := name[i]
			ok = isAlnum(c) || c == '-' || c == '.' || c == '_'
		}
		rule = "must be 1-253 characters of [A-Za-z0-9._-]"
	case KindFelixConfiguration, KindClusterInformation:
		return nil // the datastore reads only "default" and "node.<FelixHostname>"
	default:
		ok, rule = isDNSSubdomain(name), "must be a lower-case DNS subdomain (1-253 characters of [a-z0-9.-])"
	}
	if len(name) > maxNameLength {
		ok, rule = false, fmt.Sprintf("is %d characters long; the limit is %d", len(name), maxNameLength)
	}
	if !ok {
		return errf("metadata.name", "%+q %s", clip(name), rule)
	}
	return nil
}

// checkNamespace validates a namespace from a key: a DNS label, in which
// Ocelot also allows upper case (OpenStack regions such as RegionOne make
// namespaces such as openstack-region-RegionOne).
func checkNamespace(ns string) error {
	if !isDNSLabel(ns, true) {
		return errf("metadata.namespace", "%+q must be 1-63 characters of [A-Za-z0-9-], starting and ending with a letter or digit", clip(ns))
	}
	return nil
}

// checkLabels applies Kubernetes' label rules, which Calico's API applies:
// qualified-name keys and values of at most 63 characters of
// [A-Za-z0-9_.-] starting and ending with a letter or digit (or empty).
func checkLabels(field string, labels map[string]string) error {
	if len(labels) > maxLabelsPerObj {
		return errf(field, "has %d labels; at most %d are allowed", len(labels), maxLabelsPerObj)
	}
	for k, v := range labels {
		if !isQualifiedName(k) {
			return errf(field, "key %+q must be a label name (at most 63 characters of [A-Za-z0-9_.-], starting and ending with a letter or digit), optionally after a DNS subdomain and '/'", clip(k))
		}
		if v != "" && !isLabelName(v) {
			return errf(fmt.Sprintf("%s[%+q]", field, clip(k)), "value %+q must be empty or at most 63 characters of [A-Za-z0-9_.-], starting and ending with a letter or digit", clip(v))
		}
	}
	return nil
}

// checkAnnotations validates a rule's annotations, which become iptables
// comments: qualified-name keys, printable ASCII values, bounded in number
// and size.
func checkAnnotations(field string, a map[string]string) error {
	if len(a) > maxAnnotations {
		return errf(field, "has %d annotations; at most %d are allowed", len(a), maxAnnotations)
	}
	size := 0
	for k, v := range a {
		if !isQualifiedName(strings.ToLower(k)) {
			return errf(field, "key %+q must be a qualified name (at most 63 characters of [A-Za-z0-9_.-], optionally after a DNS subdomain and '/')", clip(k))
		}
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				return errf(fmt.Sprintf("%s[%+q]", field, clip(k)), "value may hold only printable ASCII characters (found byte 0x%02x)", v[i])
			}
		}
		size += len(k) + len(v)
	}
	if size > maxAnnotBytes {
		return errf(field, "annotations total %d bytes; the limit is %d", size, maxAnnotBytes)
	}
	return nil
}

// checkProfiles validates an endpoint's profile names, which become chain
// names (cali-pri-<name>).
func checkProfiles(field string, names []string) error {
	if len(names) > maxProfiles {
		return errf(field, "has %d profiles; at most %d are allowed", len(names), maxProfiles)
	}
	for i, n := range names {
		if err := CheckName(KindProfile, n); err != nil {
			return errf(fmt.Sprintf("%s[%d]", field, i), "%s", err.(*Error).Rule)
		}
	}
	return nil
}

// parseAddr reads an IP address. IPv6 zones ("fe80::1%eth0", where the
// zone is free text) and IPv4-mapped IPv6 addresses (of which the family
// is ambiguous) are refused.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("%+q is not an IP address (IPv6 zones and IPv4-mapped addresses are not accepted)", clip(s))
	}
	return a, nil
}

// parseCIDR reads a CIDR or a bare address (a full-length prefix), with
// the same refusals as parseAddr.
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := cidr.Parse(s)
	if err != nil || strings.IndexByte(s, '%') >= 0 || p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%+q is not a CIDR", clip(s))
	}
	return p, nil
}

// parseMAC reads an Ethernet (EUI-48) address, the only kind a tap has.
func parseMAC(s string) (string, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return "", fmt.Errorf("%+q is not an Ethernet MAC address", clip(s))
	}
	return mac.String(), nil
}
