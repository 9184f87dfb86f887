package explain

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"ocelot/contract"
)

// EndpointInfo is what applies to a local endpoint.
type EndpointInfo struct {
	ID        string            `json:"id"`
	Interface string            `json:"interface"`
	Namespace string            `json:"namespace"`
	Region    string            `json:"region,omitempty"`
	MAC       string            `json:"mac,omitempty"`
	Addresses []string          `json:"addresses"`
	NAT       []string          `json:"floating_ips,omitempty"` // "external -> internal"
	Labels    map[string]string `json:"labels"`
	QoS       []string          `json:"qos,omitempty"` // the QoS controls, one per direction that has any
	ToChain   string            `json:"to_chain"`      // ingress
	FromChain string            `json:"from_chain"`    // egress
	Ingress   []TierInfo        `json:"ingress"`
	Egress    []TierInfo        `json:"egress"`
	Profiles  []ProfileInfo     `json:"profiles,omitempty"`
	Sets      []SetInfo         `json:"sets,omitempty"`
}

// TierInfo is one tier's policies in one direction, in order.
type TierInfo struct {
	Name          string       `json:"name"`
	DefaultAction string       `json:"default_action"`
	Policies      []PolicyInfo `json:"policies"`
}

// PolicyInfo is a policy's rules in one direction.
type PolicyInfo struct {
	ID         string   `json:"id"`
	Chain      string   `json:"chain"`
	Rules      []string `json:"rules"`
	FailClosed bool     `json:"fail_closed,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Missing    bool     `json:"missing,omitempty"` // referenced, not (yet) known
}

// ProfileInfo is a profile's rules.
type ProfileInfo struct {
	ID         string   `json:"id"`
	ToChain    string   `json:"to_chain"`
	FromChain  string   `json:"from_chain"`
	Ingress    []string `json:"ingress"`
	Egress     []string `json:"egress"`
	FailClosed bool     `json:"fail_closed,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Missing    bool     `json:"missing,omitempty"`
}

// describe gathers what applies to the endpoint ref names.
func describe(st State, ref string) (*EndpointInfo, bool, error) {
	ep, err := findEndpoint(st, ref)
	if err != nil {
		return nil, false, err
	}
	info := &EndpointInfo{ID: ep.ID.String(), Interface: ep.Name, Namespace: namespace(ep), MAC: ep.MAC, Labels: ep.Labels}
	if info.Labels == nil {
		info.Labels = map[string]string{}
	}
	if r, ok := strings.CutPrefix(info.Namespace, "openstack-region-"); ok {
		info.Region = r
	}
	for _, n := range append(slices.Clone(ep.IPv4Nets), ep.IPv6Nets...) {
		info.Addresses = append(info.Addresses, n.String())
	}
	for _, n := range append(slices.Clone(ep.IPv4NAT), ep.IPv6NAT...) {
		info.NAT = append(info.NAT, n.External.String()+" -> "+n.Internal.String())
	}
	if q := ep.QoS; q != nil {
		for _, d := range []struct {
			name string
			l    contract.QoSLimits
		}{{"ingress", q.Ingress}, {"egress", q.Egress}} {
			if d.l != (contract.QoSLimits{}) {
				info.QoS = append(info.QoS, fmt.Sprintf("%s: %d bit/s (burst %d bit, peak %d bit/s), %d packets/s (burst %d), %d connections",
					d.name, d.l.Bandwidth, d.l.Burst, d.l.Peakrate, d.l.PacketRate, d.l.PacketBurst, d.l.MaxConnections))
			}
		}
	}
	info.ToChain, info.FromChain = st.EndpointChains(ep.Name)
	budget := MaxRules
	truncated := false
	sets := map[string]struct{}{}
	rulesText := func(rules []contract.Rule) []string {
		var out []string
		for _, r := range rules {
			for _, id := range r.IPSetIDs() {
				sets[id] = struct{}{}
			}
			if budget == 0 {
				truncated = true
				continue
			}
			budget--
			out = append(out, r.String())
		}
		return out
	}
	for _, ingress := range []bool{true, false} {
		var tiers []TierInfo
		for _, t := range ep.Tiers {
			ids := t.Egress
			if ingress {
				ids = t.Ingress
			}
			if len(ids) == 0 {
				continue
			}
			ti := TierInfo{Name: t.Name, DefaultAction: t.DefaultAction}
			for _, id := range ids {
				pi := PolicyInfo{ID: id.String(), Chain: st.PolicyChain(id, ingress)}
				if p := st.Policy(id); p == nil {
					pi.Missing = true
				} else {
					pi.FailClosed, pi.Reason = p.FailClosed, p.Reason
					pi.Rules = rulesText(direction(p.Inbound, p.Outbound, ingress))
				}
				ti.Policies = append(ti.Policies, pi)
			}
			tiers = append(tiers, ti)
		}
		if ingress {
			info.Ingress = tiers
		} else {
			info.Egress = tiers
		}
	}
	for _, id := range ep.ProfileIDs {
		pi := ProfileInfo{ID: id, ToChain: st.ProfileChain(id, true), FromChain: st.ProfileChain(id, false)}
		if p := st.Profile(id); p == nil {
			pi.Missing = true
		} else {
			pi.FailClosed, pi.Reason = p.FailClosed, p.Reason
			pi.Ingress, pi.Egress = rulesText(p.Inbound), rulesText(p.Outbound)
		}
		info.Profiles = append(info.Profiles, pi)
	}
	for _, id := range slices.Sorted(maps.Keys(sets)) {
		si, ok := st.Set(id)
		if !ok {
			si = SetInfo{ID: id, Type: "(unknown to the dataplane)"}
		}
		info.Sets = append(info.Sets, si)
	}
	return info, truncated, nil
}

func direction(in, out []contract.Rule, ingress bool) []contract.Rule {
	if ingress {
		return in
	}
	return out
}
