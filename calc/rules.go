package calc

import (
	"fmt"

	"ocelot/contract"
	"ocelot/datastore/resource"
	"ocelot/selector"
)

// setSpec describes an IP set a rule needs: a selector set (hash:net) or a
// named-port set (hash:ip,port) over the endpoints a selector matches.
type setSpec struct {
	id       string
	sel      *selector.Selector
	typ      contract.IPSetType
	proto    uint8  // named-port sets: 0 means any protocol
	portName string // named-port sets
}

// text is the set's selector as explanations show it: the canonical
// selector, and for a named-port set its protocol and port name.
func (s setSpec) text() string {
	if s.typ != contract.IPSetIPAndPort {
		return s.sel.String()
	}
	proto := "any protocol"
	if s.proto != 0 {
		proto = contract.ProtoName(s.proto)
	}
	return s.sel.String() + " port " + s.portName + " (" + proto + ")"
}

// resolved is a policy's or profile's rules in dataplane form, with the
// sets they refer to and the problems met on the way.
type resolved struct {
	inbound, outbound []contract.Rule
	sets              []setSpec
	problems          []string
}

// resolveRules converts API rules (in the scope of namespace; "" for global
// policies and profiles) to dataplane rules.
func resolveRules(in, out []resource.Rule, namespace string) (resolved, error) {
	var r resolved
	var err error
	if r.inbound, err = r.convert("ingress", in, namespace); err != nil {
		return r, err
	}
	if r.outbound, err = r.convert("egress", out, namespace); err != nil {
		return r, err
	}
	return r, nil
}

func (r *resolved) convert(dir string, rules []resource.Rule, ns string) ([]contract.Rule, error) {
	out := make([]contract.Rule, 0, len(rules))
	for i, ar := range rules {
		rule, keep, err := r.convertRule(ar, ns)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", dir, i, err)
		}
		if ar.Unenforceable != "" {
			if keep {
				r.problems = append(r.problems, fmt.Sprintf("%s[%d]: a %s match cannot be enforced with iptables; the rule denies without it (fail closed)", dir, i, ar.Unenforceable))
			} else {
				r.problems = append(r.problems, fmt.Sprintf("%s[%d]: a %s match cannot be enforced with iptables; the rule is skipped and allows nothing (fail closed)", dir, i, ar.Unenforceable))
			}
		}
		if keep {
			out = append(out, rule)
		}
	}
	return out, nil
}

// convertRule resolves one rule. A rule with a match Ocelot cannot enforce
// fails closed: an Allow or Log is dropped (it allows nothing), a Deny or
// Pass becomes a Deny of everything else it matches.
func (r *resolved) convertRule(ar resource.Rule, ns string) (contract.Rule, bool, error) {
	rule := contract.Rule{IPVersion: ar.IPVersion, Annotations: ar.Annotations}
	switch ar.Action {
	case resource.Allow:
		rule.Action = contract.ActionAllow
	case resource.Deny:
		rule.Action = contract.ActionDeny
	case resource.Pass:
		rule.Action = contract.ActionPass
	case resource.Log:
		rule.Action = contract.ActionLog
	default:
		return rule, false, fmt.Errorf("unknown action %q", ar.Action)
	}
	if ar.Unenforceable != "" {
		if rule.Action == contract.ActionAllow || rule.Action == contract.ActionLog {
			return rule, false, nil
		}
		rule.Action = contract.ActionDeny
	}
	rule.Protocol = convProto(ar.Protocol)
	rule.NotProtocol = convProto(ar.NotProtocol)
	rule.ICMP = convICMP(ar.ICMP)
	rule.NotICMP = convICMP(ar.NotICMP)
	var proto uint8
	if ar.Protocol != nil {
		proto = ar.Protocol.Num
	}

	src, err := r.entity(ar.Source, ns, proto)
	if err != nil {
		return rule, false, fmt.Errorf("source: %w", err)
	}
	dst, err := r.entity(ar.Destination, ns, proto)
	if err != nil {
		return rule, false, fmt.Errorf("destination: %w", err)
	}
	rule.SrcNets, rule.NotSrcNets = ar.Source.Nets, ar.Source.NotNets
	rule.DstNets, rule.NotDstNets = ar.Destination.Nets, ar.Destination.NotNets
	rule.SrcPorts, rule.NotSrcPorts = src.ports, src.notPorts
	rule.DstPorts, rule.NotDstPorts = dst.ports, dst.notPorts
	rule.SrcIPSetIDs, rule.NotSrcIPSetIDs = src.sets, src.notSets
	rule.DstIPSetIDs, rule.NotDstIPSetIDs = dst.sets, dst.notSets
	rule.SrcNamedPortIPSetIDs, rule.NotSrcNamedPortIPSetIDs = src.namedSets, src.notNamedSets
	rule.DstNamedPortIPSetIDs, rule.NotDstNamedPortIPSetIDs = dst.namedSets, dst.notNamedSets
	return rule, true, nil
}

type entityMatch struct {
	ports, notPorts         []contract.PortRange
	sets, notSets           []string
	namedSets, notNamedSets []string
}

// entity resolves a source or destination. The positive selector (scoped
// to the namespace) absorbs the notSelector as (pos) && !(neg), so one set
// serves; without a positive selector the notSelector gets its own set in
// a negated match. Named ports become hash:ip,port sets over the endpoints
// the positive selector (or all()) matches; a side with only named ports
// needs no plain selector set.
func (r *resolved) entity(e resource.EntityRule, ns string, proto uint8) (entityMatch, error) {
	var m entityMatch
	pos, neg := selector.EntityRuleSelectors(e.Selector, e.NamespaceSelector, e.NotSelector, ns)
	if pos != nil && neg != nil {
		pos = selector.And(pos, selector.Not(neg))
		neg = nil
	}
	var named, notNamed []string
	for _, p := range e.Ports {
		if p.Name != "" {
			named = append(named, p.Name)
		} else {
			m.ports = append(m.ports, contract.PortRange{First: p.First, Last: p.Last})
		}
	}
	for _, p := range e.NotPorts {
		if p.Name != "" {
			notNamed = append(notNamed, p.Name)
		} else {
			m.notPorts = append(m.notPorts, contract.PortRange{First: p.First, Last: p.Last})
		}
	}
	if pos != nil && (len(named) == 0 || len(m.ports) > 0) {
		m.sets = append(m.sets, r.selectorSet(pos))
	}
	if neg != nil {
		m.notSets = append(m.notSets, r.selectorSet(neg))
	}
	base := pos
	if base == nil {
		base = selector.All
	}
	for _, name := range named {
		m.namedSets = append(m.namedSets, r.namedPortSet(base, proto, name))
	}
	for _, name := range notNamed {
		m.notNamedSets = append(m.notNamedSets, r.namedPortSet(base, proto, name))
	}
	return m, nil
}

func (r *resolved) selectorSet(s *selector.Selector) string {
	id := s.UniqueID()
	r.sets = append(r.sets, setSpec{id: id, sel: s, typ: contract.IPSetNet})
	return id
}

func (r *resolved) namedPortSet(s *selector.Selector, proto uint8, name string) string {
	protoText := ""
	if proto != 0 {
		protoText = contract.ProtoName(proto)
	}
	id := selector.MakeUniqueID("n", s.UniqueID()+","+protoText+","+name)
	r.sets = append(r.sets, setSpec{id: id, sel: s, typ: contract.IPSetIPAndPort, proto: proto, portName: name})
	return id
}

func convProto(p *resource.Protocol) *contract.Protocol {
	if p == nil {
		return nil
	}
	return &contract.Protocol{Name: p.Name, Num: p.Num}
}

func convICMP(i *resource.ICMP) *contract.ICMPMatch {
	if i == nil {
		return nil
	}
	return &contract.ICMPMatch{Type: i.Type, Code: i.Code}
}
