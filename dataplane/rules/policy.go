package rules

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"ocelot/contract"
	rs "ocelot/dataplane/ruleset"
)

// PolicyChains renders a policy's inbound and outbound chains.
func (c *Config) PolicyChains(u *contract.PolicyUpdate) []*rs.Chain {
	return []*rs.Chain{c.PolicyChain(u, true), c.PolicyChain(u, false)}
}

// PolicyChain renders one direction of a policy: its inbound (cali-pi-)
// or outbound (cali-po-) chain.
func (c *Config) PolicyChain(u *contract.PolicyUpdate, inbound bool) *rs.Chain {
	who := u.ID.Kind + " " + u.ID.Name
	if u.ID.Namespace != "" {
		who = u.ID.Kind + " " + u.ID.Namespace + "/" + u.ID.Name
	}
	if inbound {
		return &rs.Chain{Name: PolicyChainName(u.ID, true), Rules: c.ruleChain(u.Inbound, who+" ingress", DropRef{Policy: u.ID, Inbound: true})}
	}
	return &rs.Chain{Name: PolicyChainName(u.ID, false), Rules: c.ruleChain(u.Outbound, who+" egress", DropRef{Policy: u.ID})}
}

// ProfileChains renders a profile's inbound and outbound chains.
func (c *Config) ProfileChains(u *contract.ProfileUpdate) []*rs.Chain {
	return []*rs.Chain{c.ProfileChain(u, true), c.ProfileChain(u, false)}
}

// ProfileChain renders one direction of a profile: its inbound
// (cali-pri-) or outbound (cali-pro-) chain.
func (c *Config) ProfileChain(u *contract.ProfileUpdate, inbound bool) *rs.Chain {
	if inbound {
		return &rs.Chain{Name: ProfileChainName(u.ID, true), Rules: c.ruleChain(u.Inbound, "Profile "+u.ID+" ingress", DropRef{Profile: u.ID, Inbound: true})}
	}
	return &rs.Chain{Name: ProfileChainName(u.ID, false), Rules: c.ruleChain(u.Outbound, "Profile "+u.ID+" egress", DropRef{Profile: u.ID})}
}

// ruleChain renders rules, strips trailing RETURNs (falling off a chain
// returns anyway) and puts the chain's description on its first rule.
// owner names the policy or profile and direction, for the drop log.
func (c *Config) ruleChain(rules []contract.Rule, comment string, owner DropRef) []rs.Rule {
	var out []rs.Rule
	for i, r := range rules {
		ref := owner
		ref.Rule = i
		out = append(out, c.rule(r, ref)...)
	}
	for len(out) > 0 && out[len(out)-1].Action == rs.Action(rs.Return{}) {
		out = out[:len(out)-1]
	}
	if len(out) == 0 {
		return []rs.Rule{{Comment: []string{comment}}}
	}
	out[0].Comment = append([]string{comment}, out[0].Comment...)
	return out
}

// splitPorts groups ports into lists of at most MaxPortSlots slots (a
// range counts twice).
func splitPorts(ports []contract.PortRange) [][]contract.PortRange {
	var out [][]contract.PortRange
	var cur []contract.PortRange
	slots := 0
	for _, p := range ports {
		n := 1
		if p.First != p.Last {
			n = 2
		}
		if slots+n > rs.MaxPortSlots {
			out = append(out, cur)
			cur, slots = nil, 0
		}
		cur = append(cur, p)
		slots += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// side is what a rule matches at one end of a packet.
type side struct {
	dir             rs.Dir
	nets, notNets   []netip.Prefix
	sets, notSets   []string
	ports, notPorts []contract.PortRange
	named, notNamed []string // named-port sets
}

func sides(r contract.Rule) (src, dst side) {
	return side{rs.Src, r.SrcNets, r.NotSrcNets, r.SrcIPSetIDs, r.NotSrcIPSetIDs, r.SrcPorts, r.NotSrcPorts, r.SrcNamedPortIPSetIDs, r.NotSrcNamedPortIPSetIDs},
		side{rs.Dst, r.DstNets, r.NotDstNets, r.DstIPSetIDs, r.NotDstIPSetIDs, r.DstPorts, r.NotDstPorts, r.DstNamedPortIPSetIDs, r.NotDstNamedPortIPSetIDs}
}

// inFamily keeps the side's CIDRs of this family. It is false when the
// side cannot match here: a list that had CIDRs has none of this family,
// or a negated list holds this family's catch-all (negating everything
// matches nothing).
func (c *Config) inFamily(s *side) bool {
	ours := func(n netip.Prefix) bool { return n.Addr().Is4() == (c.Family == 4) }
	keep := func(nets []netip.Prefix) ([]netip.Prefix, bool) {
		kept := slices.DeleteFunc(slices.Clone(nets), func(n netip.Prefix) bool { return !ours(n) })
		return kept, len(nets) == 0 || len(kept) > 0
	}
	var ok1, ok2 bool
	s.nets, ok1 = keep(s.nets)
	s.notNets, ok2 = keep(s.notNets)
	catchAll := slices.ContainsFunc(s.notNets, func(n netip.Prefix) bool { return n.Bits() == 0 })
	return ok1 && ok2 && !catchAll
}

// portAlts are the alternatives of a side's positive ports: each port
// list (with the protocol) and each named-port set.
func (s side) portAlts(proto *contract.Protocol) []rs.Match {
	var alts []rs.Match
	for _, list := range splitPorts(s.ports) {
		var m rs.Match
		if proto != nil {
			m = m.Protocol(*proto)
		}
		alts = append(alts, m.With(rs.Ports{Dir: s.dir, Ports: list}))
	}
	for _, id := range s.named {
		alts = append(alts, rs.Match{}.With(rs.IPPortSet{Dir: s.dir, ID: id}))
	}
	return alts
}

func netAlts(dir rs.Dir, nets []netip.Prefix) []rs.Match {
	alts := make([]rs.Match, len(nets))
	for i, n := range nets {
		alts[i] = rs.Match{}.With(rs.Net{Dir: dir, Net: n})
	}
	return alts
}

// block is a group of alternatives at least one of which must match (or,
// negated, none of which may match), evaluated with scratch marks because
// one rule cannot express an OR.
type block struct {
	alts    []rs.Match
	negated bool
}

// plan is how a rule is split: the OR blocks it needs, and which parts of
// each side are in blocks rather than in the main match.
type plan struct {
	blocks                   []block
	srcPortsOR, dstPortsOR   bool // positive ports and named ports
	srcNotNetOR, dstNotNetOR bool
}

// planBlocks decides the OR blocks, in Felix's order: source ports, then
// destination ports, then several positive CIDRs per side, then negated
// CIDRs that cannot be a single negation.
func planBlocks(src, dst side, proto *contract.Protocol) plan {
	var p plan
	if alts := src.portAlts(proto); len(alts) > 1 {
		p.blocks, p.srcPortsOR = append(p.blocks, block{alts: alts}), true
	}
	if alts := dst.portAlts(proto); len(alts) > 1 {
		p.blocks, p.dstPortsOR = append(p.blocks, block{alts: alts}), true
	}
	for _, s := range []side{src, dst} {
		if len(s.nets) > 1 {
			p.blocks = append(p.blocks, block{alts: netAlts(s.dir, s.nets)})
		}
	}
	for _, s := range []side{src, dst} {
		if len(s.notNets) > 0 && len(s.nets)+len(s.notNets) > 1 {
			p.blocks = append(p.blocks, block{alts: netAlts(s.dir, s.notNets), negated: true})
			if s.dir == rs.Src {
				p.srcNotNetOR = true
			} else {
				p.dstNotNetOR = true
			}
		}
	}
	return p
}

// blockRules evaluate the blocks into Scratch0: it ends up set only if
// every positive block had a matching alternative and no negated block
// did (Scratch1 carries a positive block's result after the first).
func (c *Config) blockRules(blocks []block) []rs.Rule {
	m := c.Marks
	var out []rs.Rule
	for i, b := range blocks {
		switch {
		case i == 0 && b.negated:
			out = append(out, rs.Rule{Action: rs.SetMark{Value: m.Scratch0, Mask: m.Scratch0 | m.Scratch1}})
		case i == 0:
			out = append(out, rs.Rule{Action: rs.SetMark{Mask: m.Scratch0 | m.Scratch1}})
		case !b.negated:
			out = append(out, rs.Rule{Action: rs.SetMark{Mask: m.Scratch1}})
		}
		for _, alt := range b.alts {
			switch {
			case b.negated:
				out = append(out, rs.Rule{Match: alt, Action: rs.SetMark{Mask: m.Scratch0}})
			case i == 0:
				out = append(out, rs.Rule{Match: alt, Action: rs.SetMark{Value: m.Scratch0, Mask: m.Scratch0}})
			default:
				out = append(out, rs.Rule{Match: alt, Action: rs.SetMark{Value: m.Scratch1, Mask: m.Scratch1}})
			}
		}
		if i > 0 && !b.negated {
			out = append(out, rs.Rule{Match: rs.Match{}.MarkClear(m.Scratch1), Action: rs.SetMark{Mask: m.Scratch0}})
		}
	}
	return out
}

// positive appends what a side requires: its CIDR (when only one), its
// sets, and its ports unless they are in a block.
func (s side) positive(mt rs.Match, portsOR bool) rs.Match {
	if len(s.nets) == 1 {
		mt = mt.With(rs.Net{Dir: s.dir, Net: s.nets[0]})
	}
	for _, id := range s.sets {
		mt = mt.With(rs.IPSet{Dir: s.dir, ID: id})
	}
	if !portsOR {
		if len(s.ports) > 0 {
			mt = mt.With(rs.Ports{Dir: s.dir, Ports: splitPorts(s.ports)[0]})
		}
		for _, id := range s.named {
			mt = mt.With(rs.IPPortSet{Dir: s.dir, ID: id})
		}
	}
	return mt
}

// negative appends what a side excludes: its negated CIDR (unless in a
// block), sets, port lists (each negated: none may match) and named
// ports.
func (s side) negative(mt rs.Match, notNetOR bool) rs.Match {
	if len(s.notNets) == 1 && !notNetOR {
		mt = mt.With(rs.Net{Dir: s.dir, Net: s.notNets[0], Negate: true})
	}
	for _, id := range s.notSets {
		mt = mt.With(rs.IPSet{Dir: s.dir, ID: id, Negate: true})
	}
	for _, list := range splitPorts(s.notPorts) {
		mt = mt.With(rs.Ports{Dir: s.dir, Ports: list, Negate: true})
	}
	for _, id := range s.notNamed {
		mt = mt.With(rs.IPPortSet{Dir: s.dir, ID: id, Negate: true})
	}
	return mt
}

// Rule renders one resolved rule for this family: nothing when it cannot
// match here; otherwise the block rules it needs for ORs (several port
// lists or named-port sets, several CIDRs on one side), then its main
// match, in Felix's order, with its action. A Deny it renders is not
// drop-logged: PolicyChain and ProfileChain render rules with their
// owner, which the drop log names.
func (c *Config) Rule(r contract.Rule) []rs.Rule { return c.rule(r, DropRef{Rule: -1}) }

func (c *Config) rule(r contract.Rule, ref DropRef) []rs.Rule {
	if r.IPVersion != 0 && r.IPVersion != c.Family {
		return nil
	}
	if r.Protocol != nil && ((r.Protocol.Num == 1 && c.Family == 6) || (r.Protocol.Num == 58 && c.Family == 4)) {
		return nil
	}
	src, dst := sides(r)
	if !c.inFamily(&src) || !c.inFamily(&dst) {
		return nil
	}
	p := planBlocks(src, dst, r.Protocol)

	var mt rs.Match
	if r.Protocol != nil {
		mt = mt.Protocol(*r.Protocol)
	}
	mt = src.positive(mt, p.srcPortsOR)
	mt = dst.positive(mt, p.dstPortsOR)
	if r.ICMP != nil {
		mt = mt.ICMP(c.Family == 6, *r.ICMP)
	}
	if r.NotProtocol != nil {
		mt = mt.NotProtocol(*r.NotProtocol)
	}
	mt = src.negative(mt, p.srcNotNetOR)
	mt = dst.negative(mt, p.dstNotNetOR)
	if r.NotICMP != nil {
		mt = mt.NotICMP(c.Family == 6, *r.NotICMP)
	}
	if len(p.blocks) > 0 {
		mt = mt.MarkSet(c.Marks.Scratch0)
	}
	return append(c.blockRules(p.blocks), c.actionRules(r, mt, ref)...)
}

// actionRules apply a rule's action to packets its match selects: Allow,
// Pass and Deny set their mark bit and act on it (so a Pass or Allow
// returns from the policy chain; a Deny is drop-logged, as ref, before
// its verdict); Log logs, within LogLimit, and carries on.
func (c *Config) actionRules(r contract.Rule, mt rs.Match, ref DropRef) []rs.Rule {
	var comments []string
	for _, k := range slices.Sorted(maps.Keys(r.Annotations)) {
		comments = append(comments, k+"="+r.Annotations[k])
	}
	mark := func(bit uint32, then rs.Action) []rs.Rule {
		return []rs.Rule{{Match: mt, Action: rs.SetMark{Value: bit, Mask: bit}, Comment: comments},
			{Match: rs.Match{}.MarkSet(bit), Action: then}}
	}
	switch r.Action {
	case contract.ActionAllow:
		return mark(c.Marks.Accept, rs.Return{})
	case contract.ActionPass:
		return mark(c.Marks.Pass, rs.Return{})
	case contract.ActionDeny:
		out := mark(c.Marks.Drop, c.policyDeny())
		if ref.Rule >= 0 {
			out = slices.Insert(out, 1, c.dropLogRule(rs.Match{}.MarkSet(c.Marks.Drop), ref)...)
		}
		return out
	case contract.ActionLog:
		var lm rs.Match
		if c.LogLimit != nil {
			lm = lm.With(*c.LogLimit)
		}
		return []rs.Rule{{Match: append(lm, mt...), Action: rs.Log{Prefix: c.LogPrefix}, Comment: comments}}
	}
	panic(fmt.Sprintf("rules: unknown action %q", r.Action))
}
