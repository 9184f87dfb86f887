package rules

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"ocelot/contract"
	rs "ocelot/dataplane/ruleset"
)

// DropRef names the decision that denied a packet, as the drop log and
// the counters report it: a Deny rule of a policy or a profile (Rule is
// its index among the direction's rules), the end of a tier (Tier set,
// Rule -1), or the end of the profiles (neither set, Rule -1).
type DropRef struct {
	Policy  contract.PolicyID // a policy's rule
	Profile string            // a profile's rule
	Tier    string            // the end of this tier
	Inbound bool              // ingress (to the endpoint) or egress
	Rule    int
}

// Kind names the decision's kind: "rule", "end of tier" or "no profile".
func (r DropRef) Kind() string {
	switch {
	case r.Policy != (contract.PolicyID{}) || r.Profile != "":
		return "rule"
	case r.Tier != "":
		return "end of tier"
	}
	return "no profile"
}

// Prefix is the NFLOG prefix of the decision, in Felix's format: the
// action (D, deny), the owner (P policy, R profile), the direction (I, E)
// and, for a rule, its index, then "|" and the policy ID, profile or tier
// ("DPI2|np/ns/name", "DPE|default", "DRI"). A prefix of 63 bytes or more
// keeps its first and last 10 bytes around a hash of the whole, as Felix
// does, so no name can make it longer than the kernel keeps.
func (r DropRef) Prefix() string {
	dir := 'E'
	if r.Inbound {
		dir = 'I'
	}
	var p string
	switch r.Kind() {
	case "rule":
		owner, id := 'P', r.Policy.String()
		if r.Profile != "" {
			owner, id = 'R', r.Profile
		}
		p = fmt.Sprintf("D%c%c%d|%s", owner, dir, r.Rule, id)
	case "end of tier":
		p = fmt.Sprintf("DP%c|%s", dir, r.Tier)
	default:
		return fmt.Sprintf("DR%c", dir)
	}
	return limitPrefix(p)
}

// String describes the decision for people.
func (r DropRef) String() string {
	dir := "egress"
	if r.Inbound {
		dir = "ingress"
	}
	switch {
	case r.Policy != (contract.PolicyID{}):
		return fmt.Sprintf("policy %s %s rule %d", r.Policy, dir, r.Rule)
	case r.Profile != "":
		return fmt.Sprintf("profile %s %s rule %d", r.Profile, dir, r.Rule)
	case r.Tier != "":
		return fmt.Sprintf("end of tier %s (%s): no policy allowed or passed the packet", r.Tier, dir)
	}
	return fmt.Sprintf("no profile allowed the packet (%s)", dir)
}

const (
	prefixKeep    = 10
	prefixHashLen = rs.MaxNFLOGPrefix - 2*prefixKeep - 1
)

func limitPrefix(p string) string {
	if len(p) < rs.MaxNFLOGPrefix {
		return p
	}
	h := sha256.Sum256([]byte(p))
	return p[:prefixKeep] + base64.RawURLEncoding.EncodeToString(h[:])[:prefixHashLen] + "_" + p[len(p)-prefixKeep:]
}

// PolicyDropRefs lists the denials a policy's chain in one direction can
// log: one per Deny rule.
func PolicyDropRefs(u *contract.PolicyUpdate, inbound bool) []DropRef {
	rules := u.Outbound
	if inbound {
		rules = u.Inbound
	}
	return ruleDropRefs(rules, DropRef{Policy: u.ID, Inbound: inbound})
}

// ProfileDropRefs lists the denials a profile's chain in one direction
// can log.
func ProfileDropRefs(u *contract.ProfileUpdate, inbound bool) []DropRef {
	rules := u.Outbound
	if inbound {
		rules = u.Inbound
	}
	return ruleDropRefs(rules, DropRef{Profile: u.ID, Inbound: inbound})
}

func ruleDropRefs(rules []contract.Rule, owner DropRef) []DropRef {
	var out []DropRef
	for i, r := range rules {
		if r.Action == contract.ActionDeny {
			ref := owner
			ref.Rule = i
			out = append(out, ref)
		}
	}
	return out
}

// EndpointDropRefs lists the default denials an endpoint's chain in one
// direction can log: the end of each tier that drops, and the end of the
// profiles.
func EndpointDropRefs(ep *contract.EndpointUpdate, ingress bool) []DropRef {
	var out []DropRef
	for _, t := range ep.Tiers {
		pols := t.Egress
		if ingress {
			pols = t.Ingress
		}
		if len(pols) > 0 && t.DefaultAction != "Pass" {
			out = append(out, DropRef{Tier: t.Name, Inbound: ingress, Rule: -1})
		}
	}
	return append(out, DropRef{Inbound: ingress, Rule: -1})
}

// Counted says what a rule's packet and byte counters count.
type Counted uint8

const (
	NotCounted   Counted = iota
	CountAllow           // packets a policy or profile rule allowed
	CountDeny            // packets a policy or profile rule denied
	CountPass            // packets a policy rule passed to the next tier
	CountDefault         // packets an endpoint chain denied by default (end of tier, no profile)
)

// Counts classifies each rule of a policy, profile or endpoint chain
// rendered with this configuration: a rule action's mark rule counts what
// the rule decided (the packets its match selected: one per rule, however
// many OR blocks precede it); an endpoint chain's end-of-tier and
// end-of-profiles verdicts count its default denials. Everything else
// (OR blocks, logging, verdicts that follow a mark) counts nothing.
func (c *Config) Counts(ch *rs.Chain) []Counted {
	out := make([]Counted, len(ch.Rules))
	endOfTier := rs.Match{}.MarkClear(c.Marks.Pass)
	for i, r := range ch.Rules {
		switch a := r.Action.(type) {
		case rs.SetMark:
			switch {
			case a.Mask != a.Value:
			case a.Value == c.Marks.Accept:
				out[i] = CountAllow
			case a.Value == c.Marks.Drop:
				out[i] = CountDeny
			case a.Value == c.Marks.Pass:
				out[i] = CountPass
			}
		default:
			if r.Action != c.policyDeny() || !strings.HasPrefix(ch.Name, "cali-tw-") && !strings.HasPrefix(ch.Name, "cali-fw-") {
				continue
			}
			if len(r.Match) == 0 || (len(r.Match) == 1 && r.Match[0] == endOfTier[0]) {
				out[i] = CountDefault
			}
		}
	}
	return out
}
