package resource

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

type wireICMP struct {
	Type *int `json:"type"`
	Code *int `json:"code"`
}

type wireEntity struct {
	Nets              []string        `json:"nets"`
	NotNets           []string        `json:"notNets"`
	Selector          string          `json:"selector"`
	NotSelector       string          `json:"notSelector"`
	NamespaceSelector string          `json:"namespaceSelector"`
	Ports             []numOrString   `json:"ports"`
	NotPorts          []numOrString   `json:"notPorts"`
	ServiceAccounts   json.RawMessage `json:"serviceAccounts"`
	Services          json.RawMessage `json:"services"`
}

type wireRule struct {
	Action      string          `json:"action"`
	IPVersion   *int            `json:"ipVersion"`
	Protocol    *numOrString    `json:"protocol"`
	NotProtocol *numOrString    `json:"notProtocol"`
	ICMP        *wireICMP       `json:"icmp"`
	NotICMP     *wireICMP       `json:"notICMP"`
	Source      wireEntity      `json:"source"`
	Destination wireEntity      `json:"destination"`
	HTTP        json.RawMessage `json:"http"`
	Metadata    *struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

func present(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s != "" && s != "null"
}

func decodeRules(field string, in []wireRule) ([]Rule, error) {
	if len(in) > maxRules {
		return nil, errf(field, "has %d rules; at most %d are allowed", len(in), maxRules)
	}
	out := make([]Rule, 0, len(in))
	for i, w := range in {
		r, err := decodeRule(fmt.Sprintf("%s[%d]", field, i), w)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func decodeRule(field string, w wireRule) (Rule, error) {
	var r Rule
	switch strings.ToLower(w.Action) {
	case "allow":
		r.Action = Allow
	case "deny":
		r.Action = Deny
	case "log":
		r.Action = Log
	case "pass", "next-tier":
		r.Action = Pass
	case "":
		return r, errf(field+".action", "is required (Allow, Deny, Log or Pass)")
	default:
		return r, errf(field+".action", "%+q must be Allow, Deny, Log or Pass", clip(w.Action))
	}
	if w.IPVersion != nil {
		if *w.IPVersion != 4 && *w.IPVersion != 6 {
			return r, errf(field+".ipVersion", "must be 4 or 6, not %d", *w.IPVersion)
		}
		r.IPVersion = *w.IPVersion
	}
	if w.Protocol != nil {
		p, err := ParseProtocol(string(*w.Protocol))
		if err != nil {
			return r, errf(field+".protocol", "%v", err)
		}
		r.Protocol = &p
	}
	if w.NotProtocol != nil {
		p, err := ParseProtocol(string(*w.NotProtocol))
		if err != nil {
			return r, errf(field+".notProtocol", "%v", err)
		}
		r.NotProtocol = &p
	}
	var err error
	if r.ICMP, err = decodeICMP(field+".icmp", w.ICMP, r); err != nil {
		return r, err
	}
	if r.NotICMP, err = decodeICMP(field+".notICMP", w.NotICMP, r); err != nil {
		return r, err
	}
	if r.Source, err = decodeEntity(field+".source", w.Source, r); err != nil {
		return r, err
	}
	if r.Destination, err = decodeEntity(field+".destination", w.Destination, r); err != nil {
		return r, err
	}
	if err := checkFamilies(field, &r); err != nil {
		return r, err
	}
	switch {
	case present(w.HTTP):
		if r.Action != Allow {
			return r, errf(field+".http", "is only allowed in Allow rules")
		}
		r.Unenforceable = "http"
	case present(w.Source.ServiceAccounts) || present(w.Destination.ServiceAccounts):
		r.Unenforceable = "serviceAccounts"
	case present(w.Source.Services) || present(w.Destination.Services):
		r.Unenforceable = "services"
	}
	if w.Metadata != nil && len(w.Metadata.Annotations) > 0 {
		if err := checkAnnotations(field+".metadata.annotations", w.Metadata.Annotations); err != nil {
			return r, err
		}
		r.Annotations = w.Metadata.Annotations
	}
	return r, nil
}

func decodeICMP(field string, w *wireICMP, r Rule) (*ICMP, error) {
	if w == nil || (w.Type == nil && w.Code == nil) {
		return nil, nil
	}
	if w.Type == nil {
		return nil, errf(field+".code", "needs a type")
	}
	if *w.Type < 0 || *w.Type > 254 {
		return nil, errf(field+".type", "must be from 0 to 254")
	}
	if w.Code != nil && (*w.Code < 0 || *w.Code > 255) {
		return nil, errf(field+".code", "must be from 0 to 255")
	}
	switch {
	case r.Protocol != nil && r.Protocol.Num == 1:
		if r.IPVersion == 6 {
			return nil, errf(field, "ICMP (protocol 1) needs ipVersion 4")
		}
	case r.Protocol != nil && r.Protocol.Num == 58:
		if r.IPVersion == 4 {
			return nil, errf(field, "ICMPv6 (protocol 58) needs ipVersion 6")
		}
	default:
		return nil, errf(field, "needs protocol ICMP or ICMPv6")
	}
	return &ICMP{Type: *w.Type, Code: w.Code}, nil
}

func decodeEntity(field string, w wireEntity, r Rule) (EntityRule, error) {
	var e EntityRule
	var err error
	if e.Nets, err = decodeNets(field+".nets", w.Nets, false); err != nil {
		return e, err
	}
	if e.NotNets, err = decodeNets(field+".notNets", w.NotNets, true); err != nil {
		return e, err
	}
	if e.Selector, err = parseSelector(field+".selector", w.Selector, false); err != nil {
		return e, err
	}
	if e.NotSelector, err = parseSelector(field+".notSelector", w.NotSelector, false); err != nil {
		return e, err
	}
	if e.NamespaceSelector, err = parseSelector(field+".namespaceSelector", w.NamespaceSelector, true); err != nil {
		return e, err
	}
	if e.Ports, err = decodePorts(field+".ports", w.Ports, r); err != nil {
		return e, err
	}
	if e.NotPorts, err = decodePorts(field+".notPorts", w.NotPorts, r); err != nil {
		return e, err
	}
	if present(w.Services) && (w.Selector != "" || w.NotSelector != "" || w.NamespaceSelector != "" || len(w.Nets)+len(w.NotNets) > 0) {
		return e, errf(field+".services", "cannot be combined with selectors, nets or namespaceSelector")
	}
	return e, nil
}

func decodeNets(field string, in []string, negated bool) ([]netip.Prefix, error) {
	if len(in) > maxNets {
		return nil, errf(field, "has %d entries; at most %d are allowed", len(in), maxNets)
	}
	var out []netip.Prefix
	for i, s := range in {
		p, err := parseCIDR(s)
		if err != nil {
			return nil, errf(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
		if negated && p.Bits() == 0 {
			return nil, errf(fmt.Sprintf("%s[%d]", field, i), "a catch-all prefix (%s) may not be negated", p)
		}
		out = append(out, p)
	}
	return out, nil
}

func decodePorts(field string, in []numOrString, r Rule) ([]Port, error) {
	if len(in) > maxPorts {
		return nil, errf(field, "has %d entries; at most %d are allowed", len(in), maxPorts)
	}
	var out []Port
	for i, s := range in {
		p, err := ParsePort(string(s))
		if err != nil {
			return nil, errf(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
		if p.Name == "" && (r.Protocol == nil || !r.Protocol.SupportsPorts()) {
			return nil, errf(fmt.Sprintf("%s[%d]", field, i), "numeric ports need protocol TCP, UDP or SCTP")
		}
		out = append(out, p)
	}
	return out, nil
}

// checkFamilies enforces one address family per rule, agreeing with
// ipVersion when it is set.
func checkFamilies(field string, r *Rule) error {
	family := r.IPVersion
	for _, f := range []struct {
		name string
		nets []netip.Prefix
	}{
		{"source.nets", r.Source.Nets}, {"source.notNets", r.Source.NotNets},
		{"destination.nets", r.Destination.Nets}, {"destination.notNets", r.Destination.NotNets},
	} {
		for i, n := range f.nets {
			v := 4
			if n.Addr().Is6() {
				v = 6
			}
			if family == 0 {
				family = v
			} else if family != v {
				if r.IPVersion != 0 {
					return errf(fmt.Sprintf("%s.%s[%d]", field, f.name, i), "%s is not an IPv%d CIDR as ipVersion says", n, r.IPVersion)
				}
				return errf(fmt.Sprintf("%s.%s[%d]", field, f.name, i), "%s mixes address families in one rule", n)
			}
		}
	}
	return nil
}
