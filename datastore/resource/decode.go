package resource

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"ocelot/selector"
)

// Error is a validation failure: the field (a JSON path such as
// spec.ingress[0].destination.ports[1]) and the rule it broke.
type Error struct {
	Field string
	Rule  string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Rule
	}
	return e.Field + ": " + e.Rule
}

func errf(field, format string, args ...any) *Error {
	return &Error{Field: field, Rule: fmt.Sprintf(format, args...)}
}

// Options tell Decode what it cannot learn from the bytes.
type Options struct {
	// Hostname is this host's FelixHostname: endpoints of other hosts are
	// reduced to a *RemoteEndpoint.
	Hostname string
}

type wireMeta struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// envelope is a stored resource with its spec decoded in the same pass.
type envelope[T any] struct {
	Kind     string   `json:"kind"`
	Metadata wireMeta `json:"metadata"`
	Spec     T        `json:"spec"`
}

func unmarshal[T any](kind Kind, data []byte) (wireMeta, *T, error) {
	var env envelope[T]
	if !isObject(data) {
		// encoding/json reads null into an empty resource, which for a
		// policy would select everything; only an object is a resource.
		return env.Metadata, nil, errf("", "the stored value is not a JSON object")
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return env.Metadata, nil, jsonError(err)
	}
	if env.Kind != "" && env.Kind != string(kind) {
		return env.Metadata, nil, errf("kind", "is %+q but the key holds %s resources", clip(env.Kind), kind)
	}
	return env.Metadata, &env.Spec, nil
}

// Decode turns a stored value into a validated resource of the given kind.
// namespace and name come from the key, which is authoritative; they are
// validated here too (CheckName). It returns (nil, nil) for a value Felix
// treats as absent (an endpoint without addresses). On failure it returns
// an *Error; for policies it also returns an *Invalid carrying whatever of
// the policy could be recovered.
func Decode(kind Kind, namespace, name string, data []byte, opts Options) (any, error) {
	if len(data) > MaxValueBytes {
		err := errf("", "the stored value is %d bytes long; the limit is %d", len(data), MaxValueBytes)
		if kind == KindNetworkPolicy || kind == KindGlobalNetworkPolicy {
			return &Invalid{Kind: kind}, err
		}
		return nil, err
	}
	if err := checkKey(kind, namespace, name); err != nil {
		if kind == KindNetworkPolicy || kind == KindGlobalNetworkPolicy {
			return invalidPolicy(kind, namespace, name, data), err
		}
		return nil, err
	}
	switch kind {
	case KindWorkloadEndpoint:
		if parts, ok := ParseEndpointName(name); ok && parts[0] != opts.Hostname {
			// Another host's endpoint: decode only what IP sets need.
			if k, labels, labelsOK, w, ok := fastRemoteEndpoint(data); ok && (k == "" || k == string(kind)) {
				return decodeRemoteEndpoint(namespace, labels, labelsOK, &w)
			}
			meta, w, err := unmarshal[wireRemoteEndpointSpec](kind, data)
			if err != nil {
				return nil, err
			}
			labels, labelsOK := internLabels(meta.Labels, reservedLabel)
			return decodeRemoteEndpoint(namespace, labels, labelsOK, w)
		}
		meta, w, err := unmarshal[wireEndpointSpec](kind, data)
		if err != nil {
			return nil, err
		}
		return decodeEndpoint(namespace, name, meta, w, opts)
	case KindNetworkPolicy, KindGlobalNetworkPolicy:
		_, w, err := unmarshal[wirePolicySpec](kind, data)
		if err == nil {
			var p *Policy
			if p, err = decodePolicy(kind, namespace, name, w); err == nil {
				return p, nil
			}
		}
		return invalidPolicy(kind, namespace, name, data), err
	case KindProfile:
		_, w, err := unmarshal[wireProfileSpec](kind, data)
		if err != nil {
			return nil, err
		}
		return decodeProfile(name, w)
	case KindTier:
		_, w, err := unmarshal[wireTierSpec](kind, data)
		if err != nil {
			return nil, err
		}
		return decodeTier(name, w)
	case KindNetworkSet, KindGlobalNetworkSet:
		meta, w, err := unmarshal[wireNetworkSetSpec](kind, data)
		if err != nil {
			return nil, err
		}
		return decodeNetworkSet(namespace, name, meta, w)
	case KindHostEndpoint:
		meta, w, err := unmarshal[wireHostEndpointSpec](kind, data)
		if err != nil {
			return nil, err
		}
		return decodeHostEndpoint(name, meta, w)
	case KindFelixConfiguration:
		meta, w, err := unmarshal[map[string]any](kind, data)
		if err != nil {
			return nil, err
		}
		return &FelixConfiguration{Name: name, Spec: *w, Annotations: meta.Annotations}, nil
	case KindLiveMigration:
		return decodeLiveMigration(namespace, name, data)
	case KindClusterInformation:
		_, w, err := unmarshal[wireClusterInfoSpec](kind, data)
		if err != nil {
			return nil, err
		}
		return &ClusterInformation{Name: name, ClusterGUID: w.ClusterGUID, ClusterType: w.ClusterType,
			CalicoVersion: w.CalicoVersion, Variant: w.Variant, DatastoreReady: w.DatastoreReady}, nil
	}
	return nil, errf("kind", "%+q is not a kind Ocelot reads", clip(string(kind)))
}

// CheckKey validates the namespace and name a key gives a resource (see
// CheckName).
func CheckKey(k Key) error { return checkKey(k.Kind, k.Namespace, k.Name) }

// checkKey validates the namespace and name a key gives a resource.
func checkKey(kind Kind, namespace, name string) error {
	if kind.Namespaced() {
		if namespace == "" {
			return errf("metadata.namespace", "a %s must be in a namespace", kind)
		}
		if err := checkNamespace(namespace); err != nil {
			return err
		}
	}
	return CheckName(kind, name)
}

type wireClusterInfoSpec struct {
	ClusterGUID    string `json:"clusterGUID"`
	ClusterType    string `json:"clusterType"`
	CalicoVersion  string `json:"calicoVersion"`
	Variant        string `json:"variant"`
	DatastoreReady *bool  `json:"datastoreReady"`
}

func jsonError(err error) *Error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return errf(clip(te.Field), "must be a JSON %s, not %s", jsonTypeName(te.Type.Kind().String()), te.Value)
	}
	var ee *Error
	if errors.As(err, &ee) {
		return ee
	}
	return errf("", "not valid JSON: %v", err)
}

func jsonTypeName(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "int", "int64", "float64", "uint16", "uint8":
		return "number"
	case "bool":
		return "boolean"
	case "slice":
		return "list"
	case "map", "struct", "ptr":
		return "object"
	}
	return goKind
}

var (
	ifaceNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,15}$`)
	namedPortRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)
)

// ParseEndpointName splits a WorkloadEndpoint name into its four parts
// (host, orchestrator, workload, endpoint): a single '-' separates parts,
// "--" is an escaped '-'.
func ParseEndpointName(name string) ([]string, bool) {
	parts := make([]string, 0, 4)
	start, escaped := 0, false
	for i := 0; i < len(name); i++ {
		switch {
		case name[i] != '-':
		case i+1 < len(name) && name[i+1] == '-':
			escaped = true
			i++
		default:
			parts = append(parts, unescapePart(name[start:i], escaped))
			start, escaped = i+1, false
		}
	}
	parts = append(parts, unescapePart(name[start:], escaped))
	if len(parts) != 4 {
		return nil, false
	}
	for _, p := range parts {
		if p == "" {
			return nil, false
		}
	}
	return parts, true
}

func unescapePart(p string, escaped bool) string {
	if escaped {
		return strings.ReplaceAll(p, "--", "-")
	}
	return p
}

// EscapeEndpointNamePart doubles each '-' (the inverse of ParseEndpointName).
func EscapeEndpointNamePart(s string) string { return strings.ReplaceAll(s, "-", "--") }

type wireNAT struct {
	InternalIP string `json:"internalIP"`
	ExternalIP string `json:"externalIP"`
}

type wirePort struct {
	Name     string       `json:"name"`
	Protocol *numOrString `json:"protocol"`
	Port     int          `json:"port"`
}

type wireEndpointSpec struct {
	Orchestrator               string           `json:"orchestrator"`
	Workload                   string           `json:"workload"`
	Node                       string           `json:"node"`
	Endpoint                   string           `json:"endpoint"`
	ServiceAccountName         string           `json:"serviceAccountName"`
	IPNetworks                 []string         `json:"ipNetworks"`
	IPNATs                     []wireNAT        `json:"ipNATs"`
	IPv4Gateway                string           `json:"ipv4Gateway"`
	IPv6Gateway                string           `json:"ipv6Gateway"`
	Profiles                   []string         `json:"profiles"`
	InterfaceName              string           `json:"interfaceName"`
	MAC                        string           `json:"mac"`
	Ports                      []wirePort       `json:"ports"`
	AllowSpoofedSourcePrefixes []string         `json:"allowSpoofedSourcePrefixes"`
	QoSControls                *wireQoSControls `json:"qosControls"`
}

// Reserved label prefixes an endpoint may not set itself (namespace and
// service-account labels).
func reservedLabel(k string) bool {
	return strings.HasPrefix(k, "pcns.") || strings.HasPrefix(k, "pcsa.")
}

const serviceAccountLabel = "projectcalico.org/serviceaccount"

// wireRemoteEndpointSpec is the part of a WorkloadEndpoint that matters for
// an endpoint on another host.
type wireRemoteEndpointSpec struct {
	ServiceAccountName string     `json:"serviceAccountName"`
	IPNetworks         []string   `json:"ipNetworks"`
	Profiles           []string   `json:"profiles"`
	Ports              []wirePort `json:"ports"`
}

func decodeRemoteEndpoint(namespace string, labels map[string]string, labelsOK bool, w *wireRemoteEndpointSpec) (any, error) {
	nets, ports, profiles, err := endpointCommon(labels, labelsOK, w.ServiceAccountName, w.IPNetworks, w.Ports, w.Profiles)
	if err != nil || len(nets) == 0 {
		return nil, err
	}
	return &RemoteEndpoint{Namespace: intern(namespace), Labels: labels, Profiles: profiles, Nets: nets, Ports: ports}, nil
}

// endpointCommon validates what local and remote endpoints share; labels
// (interned, reserved ones dropped, labelsOK when every one is valid) gain
// the service account's.
func endpointCommon(labels map[string]string, labelsOK bool, serviceAccount string, ipNetworks []string, wports []wirePort, wprofiles []string) (
	nets []netip.Prefix, ports []NamedPort, profiles []string, err error) {
	if !labelsOK || len(labels) > maxLabelsPerObj {
		if err := checkLabels("metadata.labels", labels); err != nil {
			return nil, nil, nil, err
		}
	}
	if serviceAccount != "" {
		if !isDNSSubdomain(serviceAccount) {
			return nil, nil, nil, errf("spec.serviceAccountName", "%+q must be a lower-case DNS subdomain", clip(serviceAccount))
		}
		labels[serviceAccountLabel] = intern(serviceAccount)
	}
	if len(ipNetworks) > maxAddresses {
		return nil, nil, nil, errf("spec.ipNetworks", "has %d entries; at most %d are allowed", len(ipNetworks), maxAddresses)
	}
	if err := checkProfiles("spec.profiles", wprofiles); err != nil {
		return nil, nil, nil, err
	}
	var v6 []netip.Prefix
	for i, s := range ipNetworks {
		p, err := parseHostPrefix(s)
		if err != nil {
			return nil, nil, nil, errf(fmt.Sprintf("spec.ipNetworks[%d]", i), "%v", err)
		}
		if p.Addr().Is4() {
			nets = append(nets, p)
		} else {
			v6 = append(v6, p)
		}
	}
	nets = append(nets, v6...)
	if ports, err = decodeNamedPorts("spec.ports", wports); err != nil {
		return nil, nil, nil, err
	}
	if len(wprofiles) > 0 {
		profiles = make([]string, len(wprofiles))
		for i, p := range wprofiles {
			profiles[i] = intern(p)
		}
	}
	return nets, ports, profiles, nil
}

func decodeEndpoint(namespace, name string, meta wireMeta, w *wireEndpointSpec, opts Options) (any, error) {
	parts, ok := ParseEndpointName(name)
	if !ok {
		return nil, errf("metadata.name", "%+q must be <node>-<orchestrator>-<workload>-<endpoint> with '-' inside a part doubled", clip(name))
	}
	if w.Node != "" && w.Node != parts[0] {
		// The name decides which host programs the endpoint (as in Felix);
		// a spec that names another host is a contradiction, not a claim.
		return nil, errf("spec.node", "%+q is not the node %+q the name gives", clip(w.Node), parts[0])
	}
	labels, labelsOK := internLabels(meta.Labels, reservedLabel)
	nets, ports, profiles, err := endpointCommon(labels, labelsOK, w.ServiceAccountName, w.IPNetworks, w.Ports, w.Profiles)
	if err != nil {
		return nil, err
	}
	if len(nets) == 0 {
		return nil, nil // Felix drops an endpoint without addresses
	}
	var v4, v6 []netip.Prefix
	for _, n := range nets {
		if n.Addr().Is4() {
			v4 = append(v4, n)
		} else {
			v6 = append(v6, n)
		}
	}
	if parts[0] != opts.Hostname {
		return &RemoteEndpoint{Namespace: intern(namespace), Labels: labels, Profiles: profiles, Nets: nets, Ports: ports}, nil
	}

	e := &Endpoint{
		Namespace: namespace, Name: name,
		Host: parts[0], Orchestrator: parts[1], Workload: parts[2], EndpointID: parts[3],
		Node: w.Node, Labels: labels, Profiles: profiles, InterfaceName: w.InterfaceName,
		IPv4Nets: v4, IPv6Nets: v6, Ports: ports,
	}
	if !ifaceNameRE.MatchString(w.InterfaceName) {
		return nil, errf("spec.interfaceName", "%+q must be 1-15 characters from [a-zA-Z0-9_.-]", clip(w.InterfaceName))
	}
	if w.MAC != "" {
		mac, err := parseMAC(w.MAC)
		if err != nil {
			return nil, errf("spec.mac", "%v", err)
		}
		e.MAC = mac
	}
	if len(w.IPNATs) > maxAddresses {
		return nil, errf("spec.ipNATs", "has %d entries; at most %d are allowed", len(w.IPNATs), maxAddresses)
	}
	for i, n := range w.IPNATs {
		field := fmt.Sprintf("spec.ipNATs[%d]", i)
		in, err1 := parseAddr(n.InternalIP)
		ext, err2 := parseAddr(n.ExternalIP)
		if err1 != nil || err2 != nil || in.Is4() != ext.Is4() {
			return nil, errf(field, "internalIP and externalIP must be addresses of one family")
		}
		if !containsAddr(e.Nets(), in) {
			return nil, errf(field+".internalIP", "%s is not one of the endpoint's ipNetworks", in)
		}
		if in.Is4() {
			e.IPv4NAT = append(e.IPv4NAT, NAT{Internal: in, External: ext})
		} else {
			e.IPv6NAT = append(e.IPv6NAT, NAT{Internal: in, External: ext})
		}
	}
	for field, s := range map[string]string{"spec.ipv4Gateway": w.IPv4Gateway, "spec.ipv6Gateway": w.IPv6Gateway} {
		if s == "" {
			continue
		}
		a, err := parseAddr(s)
		if err != nil {
			return nil, errf(field, "%v", err)
		}
		if a.Is4() != (field == "spec.ipv4Gateway") {
			return nil, errf(field, "%s is of the wrong address family", a)
		}
		if field == "spec.ipv4Gateway" {
			e.IPv4Gateway = a
		} else {
			e.IPv6Gateway = a
		}
	}
	if e.AllowSpoofedSourcePrefixes, err = parseCIDRs("spec.allowSpoofedSourcePrefixes", w.AllowSpoofedSourcePrefixes, maxAddresses); err != nil {
		return nil, err
	}
	if e.QoS, err = decodeQoS(w.QoSControls); err != nil {
		return nil, err
	}
	return e, nil
}

func containsAddr(nets []netip.Prefix, a netip.Addr) bool {
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// parseCIDRs reads a list of at most limit CIDRs; an error names the element.
func parseCIDRs(field string, ss []string, limit int) ([]netip.Prefix, error) {
	if len(ss) > limit {
		return nil, errf(field, "has %d entries; at most %d are allowed", len(ss), limit)
	}
	var out []netip.Prefix
	for i, s := range ss {
		p, err := parseCIDR(s)
		if err != nil {
			return nil, errf(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parseHostPrefix(s string) (netip.Prefix, error) {
	p, err := parseCIDR(s)
	if err != nil {
		return p, err
	}
	if p.Bits() != p.Addr().BitLen() {
		return p, fmt.Errorf("%+q must be a /32 or /128: only host routes are supported", clip(s))
	}
	return p, nil
}

func decodeNamedPorts(field string, in []wirePort) ([]NamedPort, error) {
	if len(in) > maxNamedPorts {
		return nil, errf(field, "has %d entries; at most %d are allowed", len(in), maxNamedPorts)
	}
	var out []NamedPort
	for i, p := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !namedPortRE.MatchString(p.Name) || isDigits(p.Name) {
			return nil, errf(f+".name", "%+q must be 1-128 characters from [a-zA-Z0-9_.-], not all digits", clip(p.Name))
		}
		if p.Port < 1 || p.Port > 65535 {
			return nil, errf(f+".port", "must be from 1 to 65535")
		}
		if p.Protocol == nil {
			return nil, errf(f+".protocol", "is required")
		}
		proto, err := ParseProtocol(string(*p.Protocol))
		if err != nil {
			return nil, errf(f+".protocol", "%v", err)
		}
		out = append(out, NamedPort{Name: p.Name, Protocol: proto, Port: uint16(p.Port)})
	}
	return out, nil
}

type wirePolicySpec struct {
	Tier                   string     `json:"tier"`
	Order                  *float64   `json:"order"`
	Selector               string     `json:"selector"`
	NamespaceSelector      string     `json:"namespaceSelector"`
	ServiceAccountSelector string     `json:"serviceAccountSelector"`
	Types                  []string   `json:"types"`
	Ingress                []wireRule `json:"ingress"`
	Egress                 []wireRule `json:"egress"`
	DoNotTrack             bool       `json:"doNotTrack"`
	PreDNAT                bool       `json:"preDNAT"`
	ApplyOnForward         bool       `json:"applyOnForward"`
}

// decodePolicy validates a policy. Its name is the key's, as in Felix: the
// read-side name calicoctl shows (the projectcalico.org/metadata annotation,
// or the name without "default.") plays no part in identity or order.
func decodePolicy(kind Kind, namespace, name string, w *wirePolicySpec) (*Policy, error) {
	p := &Policy{Kind: kind, Namespace: namespace, Name: name, Tier: w.Tier, Order: w.Order,
		DoNotTrack: w.DoNotTrack, PreDNAT: w.PreDNAT, ApplyOnForward: w.ApplyOnForward}
	if p.Tier == "" {
		p.Tier = "default"
	}
	if !isDNSLabel(p.Tier, false) {
		return nil, errf("spec.tier", "%+q must be a lower-case DNS label", clip(p.Tier))
	}
	if kind == KindNetworkPolicy && w.NamespaceSelector != "" {
		return nil, errf("spec.namespaceSelector", "is only allowed in a GlobalNetworkPolicy")
	}
	var err error
	if p.Selector, err = parseSelector("spec.selector", w.Selector, false); err != nil {
		return nil, err
	}
	if p.NamespaceSelector, err = parseSelector("spec.namespaceSelector", w.NamespaceSelector, false); err != nil {
		return nil, err
	}
	if w.ServiceAccountSelector != "" {
		return nil, errf("spec.serviceAccountSelector", "service accounts exist only in Kubernetes; Ocelot cannot apply this policy")
	}
	for i, t := range w.Types {
		switch PolicyType(t) {
		case Ingress, Egress:
			p.Types = append(p.Types, PolicyType(t))
		default:
			return nil, errf(fmt.Sprintf("spec.types[%d]", i), "%+q must be Ingress or Egress", clip(t))
		}
		if slices.Index(p.Types, PolicyType(t)) < len(p.Types)-1 {
			return nil, errf(fmt.Sprintf("spec.types[%d]", i), "%s is listed twice", t)
		}
	}
	if len(p.Types) == 0 {
		// A stored policy without types governs both directions (Felix's
		// reading; the Neutron driver writes none).
		p.Types = []PolicyType{Ingress, Egress}
	}
	if w.DoNotTrack && w.PreDNAT {
		return nil, errf("spec.preDNAT", "cannot be combined with doNotTrack")
	}
	if (w.DoNotTrack || w.PreDNAT) && !w.ApplyOnForward {
		return nil, errf("spec.applyOnForward", "must be true with doNotTrack or preDNAT")
	}
	if w.PreDNAT && len(w.Egress) > 0 {
		return nil, errf("spec.egress", "a preDNAT policy may not have egress rules")
	}
	if p.Ingress, err = decodeRules("spec.ingress", w.Ingress); err != nil {
		return nil, err
	}
	if p.Egress, err = decodeRules("spec.egress", w.Egress); err != nil {
		return nil, err
	}
	return p, nil
}

// invalidPolicy recovers what it can of a policy that failed validation, so
// that calc can enforce deny-all where its selector reaches. Other kinds get
// a plain *Invalid from the caller.
func invalidPolicy(kind Kind, namespace, name string, data []byte) *Invalid {
	inv := &Invalid{Kind: kind}
	// Each field is recovered on its own (raw first, then typed), so that
	// a malformed order, tier or types cannot cost the selector: without
	// it the policy could not deny anything.
	var env struct {
		Spec struct {
			Tier              json.RawMessage `json:"tier"`
			Order             json.RawMessage `json:"order"`
			Selector          json.RawMessage `json:"selector"`
			NamespaceSelector json.RawMessage `json:"namespaceSelector"`
			Types             json.RawMessage `json:"types"`
		} `json:"spec"`
	}
	if !isObject(data) || json.Unmarshal(data, &env) != nil {
		return inv
	}
	w := env.Spec
	var selText, nsSelText, tier string
	var order *float64
	var types []string
	if !optionalJSON(w.Selector, &selText) || !optionalJSON(w.NamespaceSelector, &nsSelText) {
		return inv
	}
	optionalJSON(w.Tier, &tier)
	optionalJSON(w.Order, &order)
	optionalJSON(w.Types, &types)
	sel, err := parseSelector("", selText, false)
	if err != nil {
		return inv
	}
	nsSel, err := parseSelector("", nsSelText, false)
	if err != nil {
		return inv
	}
	p := &Policy{Kind: kind, Namespace: namespace, Name: name, Tier: tier, Order: order,
		Selector: sel, NamespaceSelector: nsSel}
	if !isDNSLabel(p.Tier, false) {
		p.Tier = "default"
	}
	for _, t := range types {
		if PolicyType(t) == Ingress || PolicyType(t) == Egress {
			p.Types = append(p.Types, PolicyType(t))
		}
	}
	if len(p.Types) == 0 {
		p.Types = []PolicyType{Ingress, Egress}
	}
	inv.Policy = p
	return inv
}

// isObject reports whether data holds a JSON object (its first byte past
// white space is '{'); json.Unmarshal checks the rest.
func isObject(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// optionalJSON decodes raw into v when it is present; it reports false
// only for a present value that does not decode (v is left as it was).
func optionalJSON(raw json.RawMessage, v any) bool {
	if len(raw) == 0 {
		return true
	}
	return json.Unmarshal(raw, v) == nil
}

// parseSelector parses a selector field; an absent (empty) field is nil.
// global() is allowed only where wholeGlobal says so, and only as the
// whole selector.
func parseSelector(field, s string, wholeGlobal bool) (*selector.Selector, error) {
	if s == "" {
		return nil, nil
	}
	sel, err := selector.Parse(s)
	if err != nil {
		return nil, errf(field, "%v", err)
	}
	if sel.UsesGlobal() && !(wholeGlobal && sel.IsGlobal()) {
		return nil, errf(field, "global() is only allowed as the whole of a rule's namespaceSelector")
	}
	return sel, nil
}

type wireProfileSpec struct {
	Ingress       []wireRule        `json:"ingress"`
	Egress        []wireRule        `json:"egress"`
	LabelsToApply map[string]string `json:"labelsToApply"`
}

func decodeProfile(name string, w *wireProfileSpec) (*Profile, error) {
	p := &Profile{Name: name}
	p.LabelsToApply, _ = internLabels(w.LabelsToApply, nil)
	if err := checkLabels("spec.labelsToApply", p.LabelsToApply); err != nil {
		return nil, err
	}
	var err error
	if p.Ingress, err = decodeRules("spec.ingress", w.Ingress); err != nil {
		return nil, err
	}
	if p.Egress, err = decodeRules("spec.egress", w.Egress); err != nil {
		return nil, err
	}
	return p, nil
}

type wireTierSpec struct {
	Order         *float64 `json:"order"`
	DefaultAction string   `json:"defaultAction"`
}

func decodeTier(name string, w *wireTierSpec) (*Tier, error) {
	t := &Tier{Name: name, Order: w.Order, DefaultAction: Deny}
	switch w.DefaultAction {
	case "", "Deny":
	case "Pass":
		t.DefaultAction = Pass
	default:
		return nil, errf("spec.defaultAction", "%+q must be Deny or Pass", clip(w.DefaultAction))
	}
	return t, nil
}

type wireNetworkSetSpec struct {
	Nets []string `json:"nets"`
}

func decodeNetworkSet(namespace, name string, meta wireMeta, w *wireNetworkSetSpec) (*NetworkSet, error) {
	ns := &NetworkSet{Namespace: namespace, Name: name}
	ns.Labels, _ = internLabels(meta.Labels, reservedLabel)
	if err := checkLabels("metadata.labels", ns.Labels); err != nil {
		return nil, err
	}
	if namespace != "" {
		ns.Labels[selector.NamespaceLabel] = intern(namespace)
	}
	var err error
	if ns.Nets, err = parseCIDRs("spec.nets", w.Nets, maxSetNets); err != nil {
		return nil, err
	}
	return ns, nil
}

type wireHostEndpointSpec struct {
	Node          string     `json:"node"`
	InterfaceName string     `json:"interfaceName"`
	ExpectedIPs   []string   `json:"expectedIPs"`
	Profiles      []string   `json:"profiles"`
	Ports         []wirePort `json:"ports"`
}

func decodeHostEndpoint(name string, meta wireMeta, w *wireHostEndpointSpec) (*HostEndpoint, error) {
	h := &HostEndpoint{Name: name, Node: w.Node, InterfaceName: w.InterfaceName, Profiles: w.Profiles}
	h.Labels, _ = internLabels(meta.Labels, reservedLabel)
	if err := checkLabels("metadata.labels", h.Labels); err != nil {
		return nil, err
	}
	if w.Node == "" {
		return nil, errf("spec.node", "is required")
	}
	if err := CheckName(KindWorkloadEndpoint, w.Node); err != nil { // a host name: the same characters
		return nil, errf("spec.node", "%s", err.(*Error).Rule)
	}
	if w.InterfaceName != "" && w.InterfaceName != "*" && !ifaceNameRE.MatchString(w.InterfaceName) {
		return nil, errf("spec.interfaceName", "%+q must be '*' or 1-15 characters from [a-zA-Z0-9_.-]", clip(w.InterfaceName))
	}
	if w.InterfaceName == "" && len(w.ExpectedIPs) == 0 {
		return nil, errf("spec.expectedIPs", "is required when interfaceName is empty")
	}
	if err := checkProfiles("spec.profiles", w.Profiles); err != nil {
		return nil, err
	}
	if len(w.ExpectedIPs) > maxAddresses {
		return nil, errf("spec.expectedIPs", "has %d entries; at most %d are allowed", len(w.ExpectedIPs), maxAddresses)
	}
	for i, s := range w.ExpectedIPs {
		a, err := parseAddr(s)
		if err != nil {
			return nil, errf(fmt.Sprintf("spec.expectedIPs[%d]", i), "%v", err)
		}
		h.ExpectedIPs = append(h.ExpectedIPs, a)
	}
	var err error
	if h.Ports, err = decodeNamedPorts("spec.ports", w.Ports); err != nil {
		return nil, err
	}
	return h, nil
}
