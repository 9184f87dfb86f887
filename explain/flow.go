package explain

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"ocelot/contract"
)

// FlowVerdict is what this host does with a flow.
type FlowVerdict struct {
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	Protocol string `json:"protocol"`
	SrcPort  uint16 `json:"src_port,omitempty"`
	DstPort  uint16 `json:"dst_port,omitempty"`
	// Verdict is "allowed", "denied", or "not decided here" (neither end
	// is a local endpoint).
	Verdict string   `json:"verdict"`
	Hops    []Hop    `json:"hops"`
	Notes   []string `json:"notes,omitempty"`
}

// Hop is one endpoint chain the packet traverses on this host.
type Hop struct {
	Endpoint  string    `json:"endpoint"`
	Interface string    `json:"interface"`
	Direction string    `json:"direction"` // ingress, egress, or egress to this host
	Chain     string    `json:"chain"`
	Verdict   string    `json:"verdict"` // allowed, denied
	DecidedBy *Decision `json:"decided_by,omitempty"`
	Steps     []string  `json:"steps"`
}

// Decision is what decided a hop.
type Decision struct {
	// Kind: "rule" (of a policy or profile), "end of tier", "no profile",
	// "before policy" (conntrack, encapsulation, OpenStack services to the
	// host) or "host" (DefaultEndpointToHostAction).
	Kind     string `json:"kind"`
	Policy   string `json:"policy,omitempty"`
	Profile  string `json:"profile,omitempty"`
	Tier     string `json:"tier,omitempty"`
	Rule     int    `json:"rule"`
	RuleText string `json:"rule_text,omitempty"`
	Text     string `json:"text"`
}

// packet is the first packet of a flow, as a rule sees it.
type packet struct {
	src, dst           netip.Addr
	proto              uint8
	sport, dport       uint16
	icmpType, icmpCode int // -1: not given
}

func (p packet) family() int {
	if p.src.Is6() {
		return 6
	}
	return 4
}

// evaluator walks one flow, counting steps against MaxSteps.
type evaluator struct {
	st        State
	s         Settings
	steps     int
	truncated bool
}

// evaluate resolves a flow's ends and walks the chains its first packet
// traverses on this host, in the kernel's order.
func evaluate(st State, f Flow) (*FlowVerdict, bool, error) {
	e := &evaluator{st: st, s: st.Settings()}
	p, srcEP, dstEP, v, err := e.resolve(f)
	if err != nil {
		return nil, false, err
	}
	out := func() (*FlowVerdict, bool, error) { return v, e.truncated, nil }

	// NAT first (PREROUTING): the metadata service and floating IPs.
	if md := e.s.MetadataAddr; e.s.OpenStack && p.family() == 4 && md.IsValid() && md.Is4() &&
		p.dst == netip.MustParseAddr("169.254.169.254") && p.proto == 6 && p.dport == 80 {
		v.Notes = append(v.Notes, fmt.Sprintf("169.254.169.254:80 is the metadata service: DNAT to %s:%d", md, e.s.MetadataPort))
		p.dst, p.dport = md, uint16(e.s.MetadataPort)
	}
	if dstEP == nil {
		for _, ep := range st.Endpoints() {
			for _, n := range append(slices.Clone(ep.IPv4NAT), ep.IPv6NAT...) {
				if n.External == p.dst && dstEP == nil {
					v.Notes = append(v.Notes, fmt.Sprintf("%s is a floating IP of %s: DNAT to %s", n.External, ep.Name, n.Internal))
					p.dst, dstEP = n.Internal, ep
				}
			}
		}
	}
	toHost := slices.Contains(e.s.HostAddrs, p.dst) || p.dst.IsLoopback()
	fromHost := slices.Contains(e.s.HostAddrs, p.src) || p.src.IsLoopback()

	switch {
	case srcEP == nil && dstEP == nil:
		v.Verdict = "not decided here"
		v.Notes = append(v.Notes, "neither address belongs to a local endpoint of this host: its policy does not decide this flow")
		return out()
	case fromHost && dstEP != nil:
		v.Verdict = "allowed"
		v.Notes = append(v.Notes, "from this host itself to a local workload: the rules return before any endpoint policy")
		return out()
	}
	if srcEP != nil {
		var hop Hop
		if toHost && dstEP == nil {
			hop = e.toHost(srcEP, p)
		} else {
			hop = e.hop(srcEP, false, p)
		}
		v.Hops = append(v.Hops, hop)
		if hop.Verdict != "allowed" {
			v.Verdict = "denied"
			if dstEP != nil {
				v.Notes = append(v.Notes, fmt.Sprintf("the packet never reaches %s's ingress policy", dstEP.Name))
			}
			return out()
		}
		if hop.DecidedBy != nil && strings.Contains(hop.DecidedBy.Text, "DropActionOverride") {
			v.Verdict = "allowed"
			v.Notes = append(v.Notes, "DropActionOverride accepted the packet at egress: no further check on this host")
			return out()
		}
		if dstEP == nil && !toHost {
			v.Notes = append(v.Notes, fmt.Sprintf("%s is not a local endpoint: its own host decides its ingress", p.dst))
		}
	} else {
		v.Notes = append(v.Notes, fmt.Sprintf("%s is not a local endpoint: its own host decides its egress", p.src))
	}
	if dstEP != nil {
		hop := e.hop(dstEP, true, p)
		v.Hops = append(v.Hops, hop)
		if hop.Verdict != "allowed" {
			v.Verdict = "denied"
			return out()
		}
	}
	v.Verdict = "allowed"
	return out()
}

// resolve reads a flow's ends (addresses or local endpoints) and its
// protocol and ports.
func (e *evaluator) resolve(f Flow) (packet, *contract.EndpointUpdate, *contract.EndpointUpdate, *FlowVerdict, error) {
	p := packet{sport: f.SrcPort, dport: f.DstPort, icmpType: -1, icmpCode: -1}
	end := func(ref string) (netip.Addr, *contract.EndpointUpdate, error) {
		if a, err := netip.ParseAddr(ref); err == nil {
			a = a.Unmap()
			eps := findEndpoints(e.st, a.String())
			if len(eps) > 0 {
				return a, eps[0], nil
			}
			return a, nil, nil
		}
		ep, err := findEndpoint(e.st, ref)
		if err != nil {
			return netip.Addr{}, nil, err
		}
		return netip.Addr{}, ep, nil
	}
	var srcEP, dstEP *contract.EndpointUpdate
	var err error
	if p.src, srcEP, err = end(f.Src); err != nil {
		return p, nil, nil, nil, fmt.Errorf("source: %w", err)
	}
	if p.dst, dstEP, err = end(f.Dst); err != nil {
		return p, nil, nil, nil, fmt.Errorf("destination: %w", err)
	}
	// An end named as an endpoint takes its first address of the family
	// the other end has (IPv4 when both are free to choose).
	pick := func(ep *contract.EndpointUpdate, v6 bool) netip.Addr {
		nets := ep.IPv4Nets
		if v6 {
			nets = ep.IPv6Nets
		}
		if len(nets) == 0 {
			return netip.Addr{}
		}
		return nets[0].Addr()
	}
	switch {
	case !p.src.IsValid() && !p.dst.IsValid():
		p.src, p.dst = pick(srcEP, false), pick(dstEP, false)
		if !p.src.IsValid() || !p.dst.IsValid() {
			p.src, p.dst = pick(srcEP, true), pick(dstEP, true)
		}
	case !p.src.IsValid():
		p.src = pick(srcEP, p.dst.Is6())
	case !p.dst.IsValid():
		p.dst = pick(dstEP, p.src.Is6())
	}
	if !p.src.IsValid() || !p.dst.IsValid() {
		return p, nil, nil, nil, fmt.Errorf("the flow's ends have no addresses of one family")
	}
	if p.src.Is6() != p.dst.Is6() {
		return p, nil, nil, nil, fmt.Errorf("source %s and destination %s are of different families", p.src, p.dst)
	}
	if p.proto, err = ParseProtocol(f.Protocol, p.src.Is6()); err != nil {
		return p, nil, nil, nil, err
	}
	if f.ICMPType != nil {
		if p.proto != 1 && p.proto != 58 {
			return p, nil, nil, nil, fmt.Errorf("an ICMP type needs protocol icmp")
		}
		p.icmpType = *f.ICMPType
		if f.ICMPCode != nil {
			p.icmpCode = *f.ICMPCode
		}
	}
	v := &FlowVerdict{Src: p.src.String(), Dst: p.dst.String(), Protocol: protoName(p.proto), SrcPort: p.sport, DstPort: p.dport}
	return p, srcEP, dstEP, v, nil
}

// step records one step of a hop, within MaxSteps.
func (e *evaluator) step(h *Hop, format string, args ...any) {
	if e.steps >= MaxSteps {
		e.truncated = true
		return
	}
	e.steps++
	h.Steps = append(h.Steps, fmt.Sprintf(format, args...))
}

// decide ends a hop with a verdict. A policy denial under
// DropActionOverride Accept or LogAndAccept is accepted instead.
func (e *evaluator) decide(h *Hop, allowed bool, d Decision) {
	h.Verdict = "denied"
	if allowed {
		h.Verdict = "allowed"
	}
	policyDenial := !allowed && (d.Kind == "rule" || d.Kind == "end of tier" || d.Kind == "no profile")
	if policyDenial && strings.HasPrefix(e.s.DropOverride, "Log") {
		d.Text += "; logged to the drop log (DropActionOverride=" + e.s.DropOverride + ")"
	}
	if policyDenial && strings.HasSuffix(e.s.DropOverride, "Accept") {
		h.Verdict = "allowed"
		d.Text += "; accepted instead (DropActionOverride=" + e.s.DropOverride + ")"
	}
	h.DecidedBy = &d
	e.step(h, "=> %s: %s", h.Verdict, d.Text)
}

// hop walks an endpoint's chain in one direction: conntrack, the
// encapsulation drops (egress), each tier's policies, the profiles, and
// the final drop — Calico's order.
func (e *evaluator) hop(ep *contract.EndpointUpdate, ingress bool, p packet) Hop {
	to, from := e.st.EndpointChains(ep.Name)
	h := Hop{Endpoint: ep.ID.String(), Interface: ep.Name, Direction: directionName(ingress), Chain: from}
	if ingress {
		h.Chain = to
	}
	if ep.QoS != nil {
		l := ep.QoS.Egress
		if ingress {
			l = ep.QoS.Ingress
		}
		if l.PacketRate > 0 {
			e.step(&h, "QoS: packets over %d per second (burst %d) are dropped before anything else; this flow is taken to be within it", l.PacketRate, l.PacketBurst)
		}
		if l.MaxConnections > 0 {
			e.step(&h, "QoS: a new TCP connection beyond %d open ones is refused with a reset; this one is taken to be within it", l.MaxConnections)
		}
	}
	e.step(&h, "a new connection (packets of an established or related one are accepted before any policy)")
	if !ingress {
		if e.s.DropVXLAN && p.proto == 17 && int(p.dport) == e.s.VXLANPort {
			e.decide(&h, false, Decision{Kind: "before policy", Rule: -1, Text: fmt.Sprintf("VXLAN (udp %d) from a workload is dropped (AllowVXLANPacketsFromWorkloads is false)", e.s.VXLANPort)})
			return h
		}
		if e.s.DropIPIP && p.proto == 4 {
			e.decide(&h, false, Decision{Kind: "before policy", Rule: -1, Text: "IP-in-IP from a workload is dropped (AllowIPIPPacketsFromWorkloads is false)"})
			return h
		}
	}
	if e.tiers(&h, ep, ingress, p) {
		return h
	}
	for _, id := range ep.ProfileIDs {
		if e.profile(&h, id, ingress, p) {
			return h
		}
	}
	e.decide(&h, false, Decision{Kind: "no profile", Rule: -1, Text: "no profile allowed it (the endpoint chain's final drop)"})
	return h
}

// profile walks one profile's rules; true when one decided. A Pass
// leaves the profile without a decision: on to the next one.
func (e *evaluator) profile(h *Hop, id string, ingress bool, p packet) bool {
	pr := e.st.Profile(id)
	if pr == nil {
		e.step(h, "profile %s: not known to the dataplane; nothing in it matches", id)
		return false
	}
	e.step(h, "profile %s (chain %s)%s", id, e.st.ProfileChain(id, ingress), failClosed(pr.FailClosed, pr.Reason))
	for i, r := range direction(pr.Inbound, pr.Outbound, ingress) {
		ok, why := e.match(r, p)
		if !ok {
			e.step(h, "  rule %d %s: no match: %s", i, r, why)
			continue
		}
		d := Decision{Kind: "rule", Profile: id, Rule: i, RuleText: r.String()}
		switch r.Action {
		case contract.ActionAllow:
			e.step(h, "  rule %d %s: matches", i, r)
			d.Text = fmt.Sprintf("profile %s rule %d allows it", id, i)
			e.decide(h, true, d)
			return true
		case contract.ActionDeny:
			e.step(h, "  rule %d %s: matches", i, r)
			d.Text = fmt.Sprintf("profile %s rule %d denies it", id, i)
			e.decide(h, false, d)
			return true
		case contract.ActionLog:
			e.step(h, "  rule %d %s: matches: logged with prefix %q, evaluation continues", i, r, e.s.LogPrefix+": ")
		case contract.ActionPass:
			e.step(h, "  rule %d %s: matches: Pass leaves the profile without allowing; on to the next profile", i, r)
			return false
		}
	}
	return false
}

// tiers walks the tiers; true when one decided.
func (e *evaluator) tiers(h *Hop, ep *contract.EndpointUpdate, ingress bool, p packet) bool {
	for _, t := range ep.Tiers {
		ids := direction2(t, ingress)
		if len(ids) == 0 {
			continue
		}
		e.step(h, "tier %s: %d %s %s", t.Name, len(ids), directionName(ingress), plural(len(ids), "policy", "policies"))
		passed := false
	policies:
		for _, id := range ids {
			pol := e.st.Policy(id)
			if pol == nil {
				e.step(h, "  policy %s: not known to the dataplane; nothing in it matches", id)
				continue
			}
			rules := direction(pol.Inbound, pol.Outbound, ingress)
			e.step(h, "  policy %s (chain %s)%s", id, e.st.PolicyChain(id, ingress), failClosed(pol.FailClosed, pol.Reason))
			for i, r := range rules {
				ok, why := e.match(r, p)
				if !ok {
					e.step(h, "    rule %d %s: no match: %s", i, r, why)
					continue
				}
				d := Decision{Kind: "rule", Policy: id.String(), Tier: t.Name, Rule: i, RuleText: r.String()}
				if r.Action == contract.ActionAllow || r.Action == contract.ActionDeny {
					e.step(h, "    rule %d %s: matches", i, r)
				}
				switch r.Action {
				case contract.ActionAllow:
					d.Text = fmt.Sprintf("policy %s rule %d allows it", id, i)
					e.decide(h, true, d)
					return true
				case contract.ActionDeny:
					d.Text = fmt.Sprintf("policy %s rule %d denies it", id, i)
					if pol.FailClosed {
						d.Text += " (the policy is fail-closed: " + pol.Reason + ")"
					}
					e.decide(h, false, d)
					return true
				case contract.ActionLog:
					e.step(h, "    rule %d %s: matches: logged with prefix %q, evaluation continues", i, r, e.s.LogPrefix+": ")
				case contract.ActionPass:
					e.step(h, "    rule %d %s: matches: Pass skips the rest of tier %s", i, r, t.Name)
					passed = true
					break policies
				}
			}
			if len(rules) == 0 {
				e.step(h, "    no %s rules", directionName(ingress))
			}
		}
		switch {
		case passed:
			e.step(h, "  on to the next tier")
		case t.DefaultAction == "Pass":
			e.step(h, "  end of tier %s: no policy decided; its default action Pass moves on to the next tier", t.Name)
		default:
			e.decide(h, false, Decision{Kind: "end of tier", Tier: t.Name, Rule: -1,
				Text: fmt.Sprintf("end of tier %s: no policy allowed or passed it", t.Name)})
			return true
		}
	}
	return false
}

// toHost walks a workload's packet to this host itself (INPUT): IPv6
// neighbour discovery and OpenStack's metadata, DHCP and DNS are accepted
// before policy; then the egress policy; then
// DefaultEndpointToHostAction.
func (e *evaluator) toHost(ep *contract.EndpointUpdate, p packet) Hop {
	h := Hop{Endpoint: ep.ID.String(), Interface: ep.Name, Direction: "egress to this host", Chain: "cali-wl-to-host"}
	before := func(why string) Hop {
		e.decide(&h, true, Decision{Kind: "before policy", Rule: -1, Text: why + " to the host is accepted before policy"})
		return h
	}
	v6 := p.family() == 6
	if v6 && p.proto == 58 && slices.Contains([]int{130, 131, 132, 133, 135, 136}, p.icmpType) {
		return before("IPv6 neighbour discovery")
	}
	if e.s.OpenStack {
		md := e.s.MetadataAddr
		switch {
		case !v6 && md.IsValid() && md.Is4() && p.proto == 6 && p.dst == md && int(p.dport) == e.s.MetadataPort:
			return before("the metadata service")
		case !v6 && p.proto == 17 && p.sport == 68 && p.dport == 67, v6 && p.proto == 17 && p.sport == 546 && p.dport == 547:
			return before("DHCP")
		case p.proto == 17 && p.dport == 53:
			return before("DNS")
		}
	}
	inner := e.hop(ep, false, p)
	h.Steps = append(h.Steps, inner.Steps...)
	// A denial, or a denial DropActionOverride accepted (the kernel
	// accepts it there, before DefaultEndpointToHostAction), is final.
	if inner.Verdict != "allowed" || inner.DecidedBy != nil && strings.Contains(inner.DecidedBy.Text, "DropActionOverride") {
		h.Verdict, h.DecidedBy = inner.Verdict, inner.DecidedBy
		return h
	}
	switch e.s.EndpointToHost {
	case "ACCEPT":
		e.decide(&h, true, Decision{Kind: "host", Rule: -1, Text: "DefaultEndpointToHostAction=ACCEPT accepts it"})
	case "RETURN":
		e.decide(&h, true, Decision{Kind: "host", Rule: -1, Text: "DefaultEndpointToHostAction=RETURN: the host's own INPUT rules decide"})
	default:
		e.decide(&h, false, Decision{Kind: "host", Rule: -1, Text: "DefaultEndpointToHostAction=DROP drops what policy allowed to the host"})
	}
	return h
}

func direction2(t contract.TierPolicies, ingress bool) []contract.PolicyID {
	if ingress {
		return t.Ingress
	}
	return t.Egress
}

func failClosed(fc bool, reason string) string {
	if !fc {
		return ""
	}
	return " is fail-closed (" + reason + "): it denies everything"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// match reports whether a rule matches the packet, and if not, the first
// reason why not. A rule matches when every field does (contract.Rule).
func (e *evaluator) match(r contract.Rule, p packet) (bool, string) {
	if r.IPVersion != 0 && r.IPVersion != p.family() {
		return false, fmt.Sprintf("the rule is for IPv%d only", r.IPVersion)
	}
	if r.Protocol != nil && r.Protocol.Num != p.proto {
		return false, fmt.Sprintf("protocol %s is not %s", protoName(p.proto), r.Protocol)
	}
	if r.NotProtocol != nil && r.NotProtocol.Num == p.proto {
		return false, fmt.Sprintf("protocol %s is excluded", r.NotProtocol)
	}
	// Felix's family filter: a CIDR list keeps only the packet's family,
	// and a list left empty by that (negated ones too) means the rule does
	// not apply to this family at all.
	for _, l := range []struct {
		name string
		nets []netip.Prefix
	}{{"source", r.SrcNets}, {"excluded source", r.NotSrcNets}, {"destination", r.DstNets}, {"excluded destination", r.NotDstNets}} {
		if len(l.nets) > 0 && !slices.ContainsFunc(l.nets, func(n netip.Prefix) bool { return n.Addr().Is6() == (p.family() == 6) }) {
			return false, fmt.Sprintf("the rule's %s networks %v have none of IPv%d: the rule does not apply to IPv%d", l.name, l.nets, p.family(), p.family())
		}
	}
	for _, s := range []struct {
		name          string
		a             netip.Addr
		port          uint16
		portGiven     bool
		nets, notNets []netip.Prefix
		sets, notSets []string
		ports, notP   []contract.PortRange
		named, notN   []string
	}{
		{"source", p.src, p.sport, p.sport != 0, r.SrcNets, r.NotSrcNets, r.SrcIPSetIDs, r.NotSrcIPSetIDs, r.SrcPorts, r.NotSrcPorts, r.SrcNamedPortIPSetIDs, r.NotSrcNamedPortIPSetIDs},
		{"destination", p.dst, p.dport, true, r.DstNets, r.NotDstNets, r.DstIPSetIDs, r.NotDstIPSetIDs, r.DstPorts, r.NotDstPorts, r.DstNamedPortIPSetIDs, r.NotDstNamedPortIPSetIDs},
	} {
		if len(s.nets) > 0 && !containsAddr(s.nets, s.a) {
			return false, fmt.Sprintf("%s %s is not in %v", s.name, s.a, s.nets)
		}
		if containsAddr(s.notNets, s.a) {
			return false, fmt.Sprintf("%s %s is in the excluded %v", s.name, s.a, s.notNets)
		}
		for _, id := range s.sets {
			if !e.st.InSet(id, s.a, 0, 0) {
				return false, fmt.Sprintf("%s %s is not in set %s%s", s.name, s.a, id, e.setText(id))
			}
		}
		for _, id := range s.notSets {
			if e.st.InSet(id, s.a, 0, 0) {
				return false, fmt.Sprintf("%s %s is in the excluded set %s%s", s.name, s.a, id, e.setText(id))
			}
		}
		if len(s.ports)+len(s.named) > 0 || len(s.notP)+len(s.notN) > 0 {
			if !hasPorts(p.proto) {
				return false, fmt.Sprintf("protocol %s has no ports", protoName(p.proto))
			}
		}
		unknown := ""
		if !s.portGiven {
			unknown = " (no source port given)"
		}
		if len(s.ports)+len(s.named) > 0 {
			in := portIn(s.port, s.ports)
			for _, id := range s.named {
				in = in || e.st.InSet(id, s.a, p.proto, s.port)
			}
			if !in {
				return false, fmt.Sprintf("%s port %d is not in %s%s", s.name, s.port, portsText(s.ports, s.named), unknown)
			}
		}
		if portIn(s.port, s.notP) {
			return false, fmt.Sprintf("%s port %d is in the excluded %v%s", s.name, s.port, s.notP, unknown)
		}
		for _, id := range s.notN {
			if e.st.InSet(id, s.a, p.proto, s.port) {
				return false, fmt.Sprintf("%s %s port %d is in the excluded named-port set %s%s", s.name, s.a, s.port, id, e.setText(id))
			}
		}
	}
	if r.ICMP != nil && !icmpMatches(*r.ICMP, p) {
		return false, fmt.Sprintf("not ICMP type %s%s", r.ICMP, icmpGiven(p))
	}
	if r.NotICMP != nil && icmpMatches(*r.NotICMP, p) {
		return false, fmt.Sprintf("ICMP type %s is excluded", r.NotICMP)
	}
	return true, ""
}

func (e *evaluator) setText(id string) string {
	si, ok := e.st.Set(id)
	if !ok || si.Selector == "" {
		return ""
	}
	return ", selector " + si.Selector
}

func containsAddr(nets []netip.Prefix, a netip.Addr) bool {
	return slices.ContainsFunc(nets, func(n netip.Prefix) bool { return n.Contains(a) })
}

func portIn(port uint16, ranges []contract.PortRange) bool {
	return slices.ContainsFunc(ranges, func(r contract.PortRange) bool { return r.First <= port && port <= r.Last })
}

func portsText(ports []contract.PortRange, named []string) string {
	var parts []string
	for _, p := range ports {
		parts = append(parts, p.String())
	}
	for _, id := range named {
		parts = append(parts, "named ports of "+id)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// hasPorts: the protocols whose ports a rule can match (iptables'
// multiport).
func hasPorts(proto uint8) bool { return proto == 6 || proto == 17 || proto == 132 || proto == 136 }

func icmpMatches(m contract.ICMPMatch, p packet) bool {
	if (p.proto != 1 && p.proto != 58) || p.icmpType != m.Type {
		return false
	}
	return m.Code == nil || *m.Code == p.icmpCode
}

func icmpGiven(p packet) string {
	if p.icmpType < 0 {
		return " (no ICMP type given)"
	}
	return ""
}
