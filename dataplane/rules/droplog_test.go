package rules

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"ocelot/contract"
	rs "ocelot/dataplane/ruleset"
)

// dropLogConfig is Felix's configuration with drop logging on.
func dropLogConfig(accept bool) *Config {
	c := felixConfig(4)
	c.DropLog = &DropLog{Group: 20, Limit: rs.Limit{Count: 10, Per: rs.PerSecond, Burst: 20}, Size: 128}
	c.DropAccept = accept
	return c
}

func TestDropLogRendering(t *testing.T) {
	pol := &contract.PolicyUpdate{ID: contract.PolicyID{Kind: "NetworkPolicy", Namespace: "ns", Name: "p"}, Inbound: []contract.Rule{
		{Action: contract.ActionAllow, DstPorts: []contract.PortRange{{First: 80, Last: 80}}, Protocol: &contract.Protocol{Name: "tcp", Num: 6}},
		{Action: contract.ActionDeny}}}
	got := render(dropLogConfig(false).PolicyChain(pol, true).Rules)
	want := []string{
		"NetworkPolicy ns/p ingress -p tcp -m multiport --destination-ports 80 --jump MARK --set-mark 0x10000/0x10000",
		"-m mark --mark 0x10000/0x10000 --jump RETURN",
		"--jump MARK --set-mark 0x40000/0x40000",
		`-m mark --mark 0x40000/0x40000 -m limit --limit 10/second --limit-burst 20 --jump NFLOG --nflog-group 20 --nflog-prefix "DPI1|np/ns/p" --nflog-size 128`,
		"-m mark --mark 0x40000/0x40000 --jump DROP",
	}
	if !slices.Equal(got, want) {
		t.Errorf("policy chain:\n got %q\nwant %q", got, want)
	}

	// Accept instead of drop: the verdict changes, the log stays.
	got = render(dropLogConfig(true).PolicyChain(pol, true).Rules)
	if got[len(got)-1] != "-m mark --mark 0x40000/0x40000 --jump ACCEPT" || !strings.Contains(got[len(got)-2], "NFLOG") {
		t.Errorf("LogAndAccept: %q", got)
	}

	// The endpoint chain logs the end of its tier and of its profiles.
	ep, _ := felixScenario()
	ch := dropLogConfig(false).EndpointChains(ep)[0]
	text := strings.Join(render(ch.Rules), "\n")
	for _, w := range []string{
		`-m mark --mark 0/0x20000 -m limit --limit 10/second --limit-burst 20 --jump NFLOG --nflog-group 20 --nflog-prefix "DPI|default" --nflog-size 128`,
		"End of tier default. Drop if no policies passed packet -m mark --mark 0/0x20000 --jump DROP",
		`-m limit --limit 10/second --limit-burst 20 --jump NFLOG --nflog-group 20 --nflog-prefix "DRI" --nflog-size 128`,
	} {
		if !strings.Contains(text, w) {
			t.Errorf("endpoint chain lacks %q:\n%s", w, text)
		}
	}

	// Off (the default), nothing changes: Felix's hashes are checked by
	// TestChainsMatchFelix with the same configuration.
	if text := strings.Join(render(felixConfig(4).PolicyChain(pol, true).Rules), "\n"); strings.Contains(text, "NFLOG") {
		t.Errorf("drop logging is off but rendered:\n%s", text)
	}
}

// Every prefix the chains log under is one the refs list, so the agent
// can name what any logged packet hit.
func TestDropRefsCoverRenderedPrefixes(t *testing.T) {
	c := dropLogConfig(false)
	long := contract.PolicyID{Kind: "NetworkPolicy", Namespace: "openstack-region-RegionOne", Name: "ossg.default.0b6a0101-0001-4005-8001-000000000005"}
	pol := &contract.PolicyUpdate{ID: long, Inbound: []contract.Rule{{Action: contract.ActionDeny, IPVersion: 4}, {Action: contract.ActionAllow}, {Action: contract.ActionDeny}},
		Outbound: []contract.Rule{{Action: contract.ActionDeny}}}
	prof := &contract.ProfileUpdate{ID: "prof", Inbound: []contract.Rule{{Action: contract.ActionDeny}}}
	ep := &contract.EndpointUpdate{Name: "tap1", Tiers: []contract.TierPolicies{
		{Name: "admin", DefaultAction: "Pass", Ingress: []contract.PolicyID{long}},
		{Name: "default", DefaultAction: "Deny", Ingress: []contract.PolicyID{long}, Egress: []contract.PolicyID{long}}}, ProfileIDs: []string{"prof"}}
	known := map[string]DropRef{}
	var refs []DropRef
	for _, in := range []bool{true, false} {
		refs = append(refs, PolicyDropRefs(pol, in)...)
		refs = append(refs, ProfileDropRefs(prof, in)...)
		refs = append(refs, EndpointDropRefs(ep, in)...)
	}
	for _, r := range refs {
		if len(r.Prefix()) > rs.MaxNFLOGPrefix {
			t.Errorf("%v: prefix %q longer than the kernel keeps", r, r.Prefix())
		}
		known[r.Prefix()] = r
	}
	chains := append(c.PolicyChains(pol), c.ProfileChains(prof)...)
	chains = append(chains, c.EndpointChains(ep)...)
	logged := 0
	for _, ch := range chains {
		for _, r := range ch.Rules {
			if n, ok := r.Action.(rs.NFLOG); ok {
				logged++
				if _, ok := known[n.Prefix]; !ok {
					t.Errorf("%s logs under %q, which no ref names", ch.Name, n.Prefix)
				}
			}
		}
	}
	// 2 inbound denies + 1 outbound, 1 profile deny, ends of tier: default
	// in both directions (admin passes), the end of profiles both ways.
	if logged != 8 {
		t.Errorf("%d logging rules, want 8", logged)
	}
	if p := (DropRef{Policy: long, Inbound: true, Rule: 2}).Prefix(); !strings.HasPrefix(p, "DPI2|np/op") || len(p) != rs.MaxNFLOGPrefix {
		t.Errorf("long prefix %q: want Felix's shape, 63 bytes", p)
	}
}

func TestLogActionRateLimit(t *testing.T) {
	c := felixConfig(4)
	c.LogLimit = &rs.Limit{Count: 1, Per: rs.PerSecond, Burst: 5}
	got := render(c.Rule(contract.Rule{Action: contract.ActionLog, Protocol: &contract.Protocol{Name: "tcp", Num: 6}}))
	want := []string{`-m limit --limit 1/second --limit-burst 5 -p tcp --jump LOG --log-prefix "calico-packet: " --log-level 5`}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q (Felix's order: the limit before the match)", got, want)
	}
	c.LogLimit.Count = 0
	if err := c.Validate(); err == nil {
		t.Error("a limit of 0 per second validated")
	}
}

func TestCounts(t *testing.T) {
	for _, accept := range []bool{false, true} {
		c := dropLogConfig(accept)
		pol := &contract.PolicyUpdate{ID: contract.PolicyID{Kind: "GlobalNetworkPolicy", Name: "g"}, Inbound: []contract.Rule{
			{Action: contract.ActionAllow, SrcNets: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("198.18.1.0/24")}},
			{Action: contract.ActionPass, Protocol: &contract.Protocol{Name: "udp", Num: 17}},
			{Action: contract.ActionLog},
			{Action: contract.ActionDeny}}}
		ch := c.PolicyChain(pol, true)
		var got []Counted
		for _, k := range c.Counts(ch) {
			if k != NotCounted {
				got = append(got, k)
			}
		}
		if want := []Counted{CountAllow, CountPass, CountDeny}; !slices.Equal(got, want) {
			t.Errorf("accept=%v policy chain counts %v, want %v", accept, got, want)
		}
		ep, _ := felixScenario()
		ep.ProfileIDs = []string{"p"}
		for _, ch := range c.EndpointChains(ep) {
			n := 0
			for _, k := range c.Counts(ch) {
				if k == CountDefault {
					n++
				} else if k != NotCounted {
					t.Errorf("%s counts %v", ch.Name, k)
				}
			}
			want := 1 // the end of the profiles
			if strings.HasPrefix(ch.Name, "cali-tw-") {
				want = 2 // and the end of the tier
			}
			if n != want {
				t.Errorf("accept=%v %s: %d default denials counted, want %d", accept, ch.Name, n, want)
			}
		}
	}
}
