package explain

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// WriteText writes an answer for people.
func (a *Answer) WriteText(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	if a.Error != "" {
		p("error: %s", a.Error)
		return
	}
	switch {
	case !a.InSync:
		p("note: the dataplane has not completed its first apply; this is the state it is applying")
	case a.Pending:
		p("note: changes are waiting for the next apply; this is the state being applied")
	}
	if a.Endpoint != nil {
		a.Endpoint.writeText(p)
	}
	if a.Flow != nil {
		a.Flow.writeText(p)
	}
	if a.Truncated {
		p("(the answer was cut at its size limit)")
	}
}

func (e *EndpointInfo) writeText(p func(string, ...any)) {
	p("endpoint   %s", e.ID)
	p("interface  %s", e.Interface)
	ns := e.Namespace
	if e.Region != "" {
		ns += " (region " + e.Region + ")"
	}
	p("namespace  %s", ns)
	p("addresses  %s", strings.Join(e.Addresses, ", "))
	if len(e.NAT) > 0 {
		p("floating   %s", strings.Join(e.NAT, ", "))
	}
	if e.MAC != "" {
		p("MAC        %s", e.MAC)
	}
	for _, q := range e.QoS {
		p("QoS        %s (0: no limit)", q)
	}
	for i, k := range slices.Sorted(maps.Keys(e.Labels)) {
		head := "labels    "
		if i > 0 {
			head = "          "
		}
		p("%s %s=%s", head, k, e.Labels[k])
	}
	for _, d := range []struct {
		name  string
		chain string
		tiers []TierInfo
		ing   bool
	}{{"ingress", e.ToChain, e.Ingress, true}, {"egress", e.FromChain, e.Egress, false}} {
		p("")
		p("%s (chain %s):", d.name, d.chain)
		for _, t := range d.tiers {
			p("  tier %s (default action %s)", t.Name, t.DefaultAction)
			for i, pol := range t.Policies {
				head := fmt.Sprintf("    %d. %s  chain %s", i+1, pol.ID, pol.Chain)
				switch {
				case pol.Missing:
					head += "  (not known to the dataplane yet)"
				case pol.FailClosed:
					head += "  FAIL-CLOSED: " + pol.Reason
				}
				p("%s", head)
				for j, r := range pol.Rules {
					p("         rule %d: %s", j, r)
				}
				if len(pol.Rules) == 0 && !pol.Missing {
					p("         (no %s rules)", d.name)
				}
			}
			if t.DefaultAction == "Pass" {
				p("    end of tier: on to the next tier")
			} else {
				p("    end of tier: drop")
			}
		}
		for _, pr := range e.Profiles {
			chain := pr.FromChain
			rules := pr.Egress
			if d.ing {
				chain, rules = pr.ToChain, pr.Ingress
			}
			head := fmt.Sprintf("  profile %s  chain %s", pr.ID, chain)
			if pr.FailClosed {
				head += "  FAIL-CLOSED: " + pr.Reason
			}
			p("%s", head)
			for j, r := range rules {
				p("         rule %d: %s", j, r)
			}
		}
		if len(e.Profiles) == 0 {
			p("  no profile: drop")
		} else {
			p("  no profile allowed: drop")
		}
	}
	if len(e.Sets) > 0 {
		p("")
		p("IP sets:")
		for _, s := range e.Sets {
			var sizes []string
			for i, n := range s.Names {
				sizes = append(sizes, fmt.Sprintf("%s %d %s", n, s.Members[i], plural(s.Members[i], "member", "members")))
			}
			p("  %s  %s  %s", s.ID, s.Type, strings.Join(sizes, ", "))
			if s.Selector != "" {
				p("      selector %s", s.Selector)
			}
		}
	}
}

func (f *FlowVerdict) writeText(p func(string, ...any)) {
	dst := f.Dst
	if f.DstPort != 0 {
		dst = fmt.Sprintf("%s port %d", f.Dst, f.DstPort)
	}
	src := f.Src
	if f.SrcPort != 0 {
		src = fmt.Sprintf("%s port %d", f.Src, f.SrcPort)
	}
	p("flow %s from %s to %s: %s", f.Protocol, src, dst, strings.ToUpper(f.Verdict))
	for _, n := range f.Notes {
		p("  %s", n)
	}
	for _, h := range f.Hops {
		p("")
		decided := ""
		if h.DecidedBy != nil {
			decided = ": " + h.DecidedBy.Text
		}
		p("%s of %s (%s, chain %s): %s%s", h.Direction, h.Endpoint, h.Interface, h.Chain, h.Verdict, decided)
		for _, s := range h.Steps {
			p("  %s", s)
		}
	}
}
