package rules

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"ocelot/contract"
	ipt "ocelot/dataplane/iptables"
)

// PolicyChains renders a policy's inbound and outbound chains.
func (c *Config) PolicyChains(u *contract.PolicyUpdate) []*ipt.Chain {
	return []*ipt.Chain{c.PolicyChain(u, true), c.PolicyChain(u, false)}
}

// PolicyChain renders one direction of a policy: its inbound (cali-pi-)
// or outbound (cali-po-) chain.
func (c *Config) PolicyChain(u *contract.PolicyUpdate, inbound bool) *ipt.Chain {
	who := u.ID.Kind + " " + u.ID.Name
	if u.ID.Namespace != "" {
		who = u.ID.Kind + " " + u.ID.Namespace + "/" + u.ID.Name
	}
	if inbound {
		return &ipt.Chain{Name: PolicyChainName(u.ID, true), Rules: c.ruleChain(u.Inbound, who+" ingress")}
	}
	return &ipt.Chain{Name: PolicyChainName(u.ID, false), Rules: c.ruleChain(u.Outbound, who+" egress")}
}

// ProfileChains renders a profile's inbound and outbound chains.
func (c *Config) ProfileChains(u *contract.ProfileUpdate) []*ipt.Chain {
	return []*ipt.Chain{c.ProfileChain(u, true), c.ProfileChain(u, false)}
}

// ProfileChain renders one direction of a profile: its inbound
// (cali-pri-) or outbound (cali-pro-) chain.
func (c *Config) ProfileChain(u *contract.ProfileUpdate, inbound bool) *ipt.Chain {
	if inbound {
		return &ipt.Chain{Name: ProfileChainName(u.ID, true), Rules: c.ruleChain(u.Inbound, "Profile "+u.ID+" ingress")}
	}
	return &ipt.Chain{Name: ProfileChainName(u.ID, false), Rules: c.ruleChain(u.Outbound, "Profile "+u.ID+" egress")}
}

// ruleChain renders rules, strips trailing RETURNs (falling off a chain
// returns anyway) and puts the chain's description on its first rule.
func (c *Config) ruleChain(rules []contract.Rule, comment string) []ipt.Rule {
	var out []ipt.Rule
	for _, r := range rules {
		out = append(out, c.Rule(r)...)
	}
	for len(out) > 0 && out[len(out)-1].Action == ipt.Return {
		out = out[:len(out)-1]
	}
	if len(out) == 0 {
		return []ipt.Rule{{Comment: []string{comment}}}
	}
	out[0].Comment = append([]string{comment}, out[0].Comment...)
	return out
}

// maxMultiportSlots is how many ports one multiport match takes (a range
// counts twice).
const maxMultiportSlots = 15

// splitPorts groups ports into multiport lists of at most 15 slots.
func splitPorts(ports []contract.PortRange) []string {
	var out []string
	var cur []string
	slots := 0
	for _, p := range ports {
		n := 1
		if p.First != p.Last {
			n = 2
		}
		if slots+n > maxMultiportSlots {
			out = append(out, strings.Join(cur, ","))
			cur, slots = nil, 0
		}
		cur = append(cur, p.String())
		slots += n
	}
	if len(cur) > 0 {
		out = append(out, strings.Join(cur, ","))
	}
	return out
}

// filterNets keeps the CIDRs of this family. ok is false when a non-empty
// list loses all its entries: the rule cannot match in this family.
func (c *Config) filterNets(nets []netip.Prefix) (kept []string, ok bool) {
	for _, n := range nets {
		if n.Addr().Is4() == (c.Family == 4) {
			kept = append(kept, n.String())
		}
	}
	return kept, len(nets) == 0 || len(kept) > 0
}

// block is a group of alternatives at least one of which must match (or,
// negated, none of which may match), evaluated with scratch marks because
// one iptables rule cannot express an OR.
type block struct {
	alts    []ipt.Match
	negated bool
}

// Rule renders one resolved rule for this family: nothing when it cannot
// match here, otherwise its match and action rules, preceded by block
// rules when it needs ORs (several port lists or named-port sets, several
// CIDRs on one side).
func (c *Config) Rule(r contract.Rule) []ipt.Rule {
	if r.IPVersion != 0 && r.IPVersion != c.Family {
		return nil
	}
	if r.Protocol != nil && ((r.Protocol.Num == 1 && c.Family == 6) || (r.Protocol.Num == 58 && c.Family == 4)) {
		return nil
	}
	src, ok1 := c.filterNets(r.SrcNets)
	notSrc, ok2 := c.filterNets(r.NotSrcNets)
	dst, ok3 := c.filterNets(r.DstNets)
	notDst, ok4 := c.filterNets(r.NotDstNets)
	if !(ok1 && ok2 && ok3 && ok4) {
		return nil
	}
	for _, n := range append(append([]netip.Prefix(nil), r.NotSrcNets...), r.NotDstNets...) {
		if n.Bits() == 0 && n.Addr().Is4() == (c.Family == 4) {
			return nil // negating everything matches nothing
		}
	}
	proto := ""
	if r.Protocol != nil {
		proto = r.Protocol.String()
	}
	m := c.Marks
	var blocks []block
	portAlts := func(ports []contract.PortRange, named []string, source bool) []ipt.Match {
		var alts []ipt.Match
		for _, list := range splitPorts(ports) {
			if source {
				alts = append(alts, ipt.Match{}.Protocol(proto).SourcePorts(list))
			} else {
				alts = append(alts, ipt.Match{}.Protocol(proto).DestPorts(list))
			}
		}
		for _, id := range named {
			if source {
				alts = append(alts, ipt.Match{}.SourceIPPortSet(c.SetName(id)))
			} else {
				alts = append(alts, ipt.Match{}.DestIPPortSet(c.SetName(id)))
			}
		}
		return alts
	}
	srcPortAlts := portAlts(r.SrcPorts, r.SrcNamedPortIPSetIDs, true)
	dstPortAlts := portAlts(r.DstPorts, r.DstNamedPortIPSetIDs, false)
	srcPortsInBlock, dstPortsInBlock := len(srcPortAlts) > 1, len(dstPortAlts) > 1
	if srcPortsInBlock {
		blocks = append(blocks, block{alts: srcPortAlts})
	}
	if dstPortsInBlock {
		blocks = append(blocks, block{alts: dstPortAlts})
	}
	netAlts := func(nets []string, source bool) []ipt.Match {
		var alts []ipt.Match
		for _, n := range nets {
			if source {
				alts = append(alts, ipt.Match{}.SourceNet(n))
			} else {
				alts = append(alts, ipt.Match{}.DestNet(n))
			}
		}
		return alts
	}
	if len(src) > 1 {
		blocks = append(blocks, block{alts: netAlts(src, true)})
	}
	if len(dst) > 1 {
		blocks = append(blocks, block{alts: netAlts(dst, false)})
	}
	notSrcInBlock := len(notSrc) > 0 && len(src)+len(notSrc) > 1
	notDstInBlock := len(notDst) > 0 && len(dst)+len(notDst) > 1
	if notSrcInBlock {
		blocks = append(blocks, block{alts: netAlts(notSrc, true), negated: true})
	}
	if notDstInBlock {
		blocks = append(blocks, block{alts: netAlts(notDst, false), negated: true})
	}

	var out []ipt.Rule
	// Blocks: S0 ends up set only if every positive block had a matching
	// alternative and no negated block did.
	for i, b := range blocks {
		switch {
		case i == 0 && b.negated:
			out = append(out, ipt.Rule{Action: ipt.SetMaskedMark(m.Scratch0, m.Scratch0|m.Scratch1)})
		case i == 0:
			out = append(out, ipt.Rule{Action: ipt.ClearMark(m.Scratch0 | m.Scratch1)})
		case !b.negated:
			out = append(out, ipt.Rule{Action: ipt.ClearMark(m.Scratch1)})
		}
		for _, alt := range b.alts {
			switch {
			case b.negated:
				out = append(out, ipt.Rule{Match: alt, Action: ipt.ClearMark(m.Scratch0)})
			case i == 0:
				out = append(out, ipt.Rule{Match: alt, Action: ipt.SetMark(m.Scratch0)})
			default:
				out = append(out, ipt.Rule{Match: alt, Action: ipt.SetMark(m.Scratch1)})
			}
		}
		if i > 0 && !b.negated {
			out = append(out, ipt.Rule{Match: ipt.Match{}.MarkClear(m.Scratch1), Action: ipt.ClearMark(m.Scratch0)})
		}
	}

	// The main match, in Felix's order.
	var mt ipt.Match
	if proto != "" {
		mt = mt.Protocol(proto)
	}
	if len(src) == 1 {
		mt = mt.SourceNet(src[0])
	}
	for _, id := range r.SrcIPSetIDs {
		mt = mt.SourceIPSet(c.SetName(id))
	}
	if !srcPortsInBlock {
		if len(r.SrcPorts) > 0 {
			mt = mt.SourcePorts(splitPorts(r.SrcPorts)[0])
		}
		for _, id := range r.SrcNamedPortIPSetIDs {
			mt = mt.SourceIPPortSet(c.SetName(id))
		}
	}
	if len(dst) == 1 {
		mt = mt.DestNet(dst[0])
	}
	for _, id := range r.DstIPSetIDs {
		mt = mt.DestIPSet(c.SetName(id))
	}
	if !dstPortsInBlock {
		if len(r.DstPorts) > 0 {
			mt = mt.DestPorts(splitPorts(r.DstPorts)[0])
		}
		for _, id := range r.DstNamedPortIPSetIDs {
			mt = mt.DestIPPortSet(c.SetName(id))
		}
	}
	if r.ICMP != nil {
		mt = c.icmp(mt, r.ICMP, false)
	}
	if r.NotProtocol != nil {
		mt = mt.NotProtocol(r.NotProtocol.String())
	}
	if len(notSrc) == 1 && !notSrcInBlock {
		mt = mt.NotSourceNet(notSrc[0])
	}
	for _, id := range r.NotSrcIPSetIDs {
		mt = mt.NotSourceIPSet(c.SetName(id))
	}
	for _, list := range splitPorts(r.NotSrcPorts) {
		mt = mt.NotSourcePorts(list)
	}
	for _, id := range r.NotSrcNamedPortIPSetIDs {
		mt = mt.NotSourceIPPortSet(c.SetName(id))
	}
	if len(notDst) == 1 && !notDstInBlock {
		mt = mt.NotDestNet(notDst[0])
	}
	for _, id := range r.NotDstIPSetIDs {
		mt = mt.NotDestIPSet(c.SetName(id))
	}
	for _, list := range splitPorts(r.NotDstPorts) {
		mt = mt.NotDestPorts(list)
	}
	for _, id := range r.NotDstNamedPortIPSetIDs {
		mt = mt.NotDestIPPortSet(c.SetName(id))
	}
	if r.NotICMP != nil {
		mt = c.icmp(mt, r.NotICMP, true)
	}
	if len(blocks) > 0 {
		mt = mt.MarkSet(m.Scratch0)
	}

	var comments []string
	for _, k := range slices.Sorted(maps.Keys(r.Annotations)) {
		comments = append(comments, k+"="+r.Annotations[k])
	}
	switch r.Action {
	case contract.ActionAllow:
		out = append(out, ipt.Rule{Match: mt, Action: ipt.SetMark(m.Accept), Comment: comments},
			ipt.Rule{Match: ipt.Match{}.MarkSet(m.Accept), Action: ipt.Return})
	case contract.ActionPass:
		out = append(out, ipt.Rule{Match: mt, Action: ipt.SetMark(m.Pass), Comment: comments},
			ipt.Rule{Match: ipt.Match{}.MarkSet(m.Pass), Action: ipt.Return})
	case contract.ActionDeny:
		out = append(out, ipt.Rule{Match: mt, Action: ipt.SetMark(m.Drop), Comment: comments},
			ipt.Rule{Match: ipt.Match{}.MarkSet(m.Drop), Action: c.deny()})
	case contract.ActionLog:
		out = append(out, ipt.Rule{Match: mt, Action: ipt.Log(c.LogPrefix), Comment: comments})
	default:
		panic(fmt.Sprintf("rules: unknown action %q", r.Action))
	}
	return out
}

func (c *Config) icmp(mt ipt.Match, i *contract.ICMPMatch, negated bool) ipt.Match {
	switch {
	case c.Family == 4 && negated:
		return mt.NotICMPType(i.String())
	case c.Family == 4:
		return mt.ICMPType(i.String())
	case negated:
		return mt.NotICMPv6Type(i.String())
	}
	return mt.ICMPv6Type(i.String())
}
