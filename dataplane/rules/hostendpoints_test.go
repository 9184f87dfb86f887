package rules

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"ocelot/contract"
	rs "ocelot/dataplane/ruleset"
)

var (
	tcpProto = contract.Protocol{Name: "tcp", Num: 6}
	udpProto = contract.Protocol{Name: "udp", Num: 17}
)

func hepConfig(family int) *Config {
	c := felixConfig(family)
	c.FailsafeIn = []Failsafe{{Protocol: tcpProto, Port: 22}, {Protocol: tcpProto, Port: 443, Net: netip.MustParsePrefix("198.18.0.0/16")},
		{Protocol: udpProto, Port: 53, Net: netip.MustParsePrefix("2001:db8::/32")}}
	c.FailsafeOut = []Failsafe{{Protocol: tcpProto, Port: 2379}}
	return c
}

func gnpID(name string) contract.PolicyID {
	return contract.PolicyID{Kind: "GlobalNetworkPolicy", Name: name}
}

func TestFailsafeChains(t *testing.T) {
	c := hepConfig(4)
	filter := c.FailsafeChains("filter")
	if got := render(filter[0].Rules); !reflect.DeepEqual(got, []string{
		"-p tcp -m multiport --destination-ports 22 --jump ACCEPT",
		"-p tcp -m multiport --destination-ports 443 --source 198.18.0.0/16 --jump ACCEPT"}) {
		t.Errorf("filter in: %q", got)
	}
	if got := render(filter[1].Rules); !reflect.DeepEqual(got, []string{"-p tcp -m multiport --destination-ports 2379 --jump ACCEPT"}) {
		t.Errorf("filter out: %q", got)
	}
	// raw: each direction also lets the other's replies through, by
	// source port (nothing is tracked yet there).
	raw := c.FailsafeChains("raw")
	if got := render(raw[0].Rules); len(got) != 3 || got[2] != "-p tcp -m multiport --source-ports 2379 --jump ACCEPT" {
		t.Errorf("raw in: %q", got)
	}
	if got := render(raw[1].Rules); len(got) != 3 || got[2] != "-p tcp -m multiport --source-ports 443 --destination 198.18.0.0/16 --jump ACCEPT" {
		t.Errorf("raw out: %q", got)
	}
	// IPv6 keeps only its family's nets.
	if got := render(hepConfig(6).FailsafeChains("filter")[0].Rules); len(got) != 2 || !strings.Contains(got[1], "--source 2001:db8::/32") {
		t.Errorf("IPv6 in: %q", got)
	}
}

func TestHostFilterChains(t *testing.T) {
	c := hepConfig(4)
	ep := &contract.HostEndpointUpdate{ID: "h", InterfaceName: "eth0", ProfileIDs: []string{"prof"},
		Tiers:        []contract.TierPolicies{{Name: "default", DefaultAction: "Deny", Ingress: []contract.PolicyID{gnpID("a")}}},
		ForwardTiers: []contract.TierPolicies{{Name: "default", DefaultAction: "Deny", Egress: []contract.PolicyID{gnpID("f")}}}}
	chains := c.HostFilterChains("eth0", ep)
	var names []string
	for _, ch := range chains {
		names = append(names, ch.Name)
	}
	if !reflect.DeepEqual(names, []string{"cali-th-eth0", "cali-fh-eth0", "cali-thfw-eth0", "cali-fhfw-eth0"}) {
		t.Fatalf("chains %v", names)
	}
	if got := render(chains[1].Rules); !reflect.DeepEqual(got, []string{
		"-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
		"-m conntrack --ctstate INVALID --jump DROP",
		"--jump cali-failsafe-in",
		"--jump MARK --set-mark 0/0x30000",
		"Start of tier default --jump MARK --set-mark 0/0x20000",
		"-m mark --mark 0/0x20000 --jump cali-pi-gnp/a",
		"Return if policy accepted -m mark --mark 0x10000/0x10000 --jump RETURN",
		"End of tier default. Drop if no policies passed packet -m mark --mark 0/0x20000 --jump DROP",
		"--jump cali-pri-prof",
		"Return if profile accepted -m mark --mark 0x10000/0x10000 --jump RETURN",
		"Drop if no profiles matched --jump DROP",
	}) {
		t.Errorf("from host endpoint: %q", got)
	}
	// Outgoing: no egress policy in the tier; the profile and the drop;
	// never the workload's encapsulation drops.
	if got := strings.Join(render(chains[0].Rules), "\n"); !strings.Contains(got, "--jump cali-failsafe-out") ||
		strings.Contains(got, "Start of tier") || !strings.Contains(got, "--jump cali-pro-prof") || strings.Contains(got, "VXLAN") {
		t.Errorf("to host endpoint: %s", got)
	}
	// Forward: the egress forward policy, no failsafe, no profile, no
	// final drop; the ingress side has no forward policy in its
	// direction and falls through (Felix's reading: a forward tier exists).
	fwd := strings.Join(render(chains[2].Rules), "\n")
	if !strings.Contains(fwd, "--jump cali-po-gnp/f") || strings.Contains(fwd, "failsafe") || strings.Contains(fwd, "profiles matched") {
		t.Errorf("to forward: %s", fwd)
	}
	// Without any forward policy, forwarded traffic is allowed.
	ep.ForwardTiers = nil
	if got := render(c.HostFilterChains("eth0", ep)[3].Rules); !reflect.DeepEqual(got[len(got)-2:], []string{
		"Allow forwarded traffic by default --jump MARK --set-mark 0x10000/0x10000",
		"Return for accepted forward traffic --jump RETURN"}) {
		t.Errorf("default forward: %q", got)
	}
	// Fail closed: failsafes, then deny; forwarded traffic denied too.
	ep.FailClosed = true
	for _, ch := range c.HostFilterChains("eth0", ep) {
		got := render(ch.Rules)
		if got[len(got)-1] != "Drop: host endpoint invalid (fail closed) --jump DROP" || strings.Contains(strings.Join(got, " "), "cali-p") {
			t.Errorf("fail-closed %s: %q", ch.Name, got)
		}
	}
}

// Untracked chains accept with NOTRACK, pre-DNAT chains never drop at the
// end, and neither table gets a REJECT (the kernel refuses it there).
func TestHostRawAndMangleChains(t *testing.T) {
	c := hepConfig(4)
	c.Deny = rs.Reject{}
	ep := &contract.HostEndpointUpdate{ID: "h", InterfaceName: "eth0",
		Tiers:          []contract.TierPolicies{{Name: "default", DefaultAction: "Deny", Egress: []contract.PolicyID{gnpID("n")}}},
		UntrackedTiers: []contract.TierPolicies{{Name: "default", DefaultAction: "Pass", Ingress: []contract.PolicyID{gnpID("u")}, Egress: []contract.PolicyID{gnpID("u")}}},
		PreDNATTiers:   []contract.TierPolicies{{Name: "default", DefaultAction: "Pass", Ingress: []contract.PolicyID{gnpID("p")}}}}
	raw := c.HostRawChains("eth0", ep)
	if got := render(raw[1].Rules); !reflect.DeepEqual(got, []string{
		"--jump cali-failsafe-in",
		"--jump MARK --set-mark 0/0x30000",
		"Start of tier default --jump MARK --set-mark 0/0x20000",
		"-m mark --mark 0/0x20000 --jump cali-pi-gnp/u",
		"-m mark --mark 0x10000/0x10000 --jump NOTRACK",
		"Return if policy accepted -m mark --mark 0x10000/0x10000 --jump RETURN",
	}) {
		t.Errorf("raw from: %q", got)
	}
	if raw[0].Name != "cali-th-eth0" || !strings.Contains(strings.Join(render(raw[0].Rules), "\n"), "cali-po-gnp/u") {
		t.Errorf("raw to: %s %q", raw[0].Name, render(raw[0].Rules))
	}
	pre := render(c.HostMangleIngressChain("eth0", ep).Rules)
	if !strings.Contains(strings.Join(pre, "\n"), "--jump cali-pi-gnp/p") || strings.Contains(strings.Join(pre, "\n"), "End of tier") ||
		strings.Contains(strings.Join(pre, "\n"), "profiles matched") {
		t.Errorf("pre-DNAT: %q", pre)
	}
	egress := render(c.HostMangleEgressChain("eth0", ep).Rules)
	if egress[0] != "-m conntrack --ctstate RELATED,ESTABLISHED --jump MARK --set-mark 0x10000/0x10000" ||
		egress[1] != "-m conntrack --ctstate RELATED,ESTABLISHED --jump RETURN" || egress[len(egress)-1] != "Drop if no profiles matched --jump DROP" {
		t.Errorf("mangle egress: %q", egress)
	}
	for _, ch := range append(raw, c.HostMangleIngressChain("eth0", ep), c.HostMangleEgressChain("eth0", ep)) {
		if strings.Contains(strings.Join(render(ch.Rules), "\n"), "REJECT") {
			t.Errorf("%s has a REJECT outside filter", ch.Name)
		}
	}
	if c.ForTable("filter").Deny != rs.Action(rs.Reject{}) || c.ForTable("mangle").Deny != rs.Action(rs.Drop{}) {
		t.Error("ForTable")
	}
}

// Named interfaces go to their chains; with an all-interfaces endpoint,
// every other interface goes to its chains, except workload interfaces.
func TestHostDispatchChains(t *testing.T) {
	c := hepConfig(4)
	all := HostDispatch{Ifaces: []string{"eth0", "eth1", "bond0"}, All: true}
	chains := c.HostDispatchChains("filter", HostDispatch{}, all)
	byName := map[string][]string{}
	for _, ch := range chains {
		byName[ch.Name] = render(ch.Rules)
	}
	if got := byName["cali-from-host-endpoint"]; !reflect.DeepEqual(got, []string{
		"--in-interface bond0 --goto cali-fh-bond0",
		"--in-interface e+ --goto cali-from-host-endpoint-e",
		"Skip host endpoint policy for traffic of workloads --in-interface tap+ --jump RETURN",
		"--goto cali-fh-*",
	}) {
		t.Errorf("from: %q", got)
	}
	if got := byName["cali-to-hep-forward-e"]; !reflect.DeepEqual(got, []string{
		"--out-interface eth0 --goto cali-thfw-eth0", "--out-interface eth1 --goto cali-thfw-eth1",
		"Skip host endpoint policy for traffic of workloads --out-interface tap+ --jump RETURN", "--goto cali-thfw-*",
	}) {
		t.Errorf("forward child: %q", got)
	}
	if len(chains) != 8 {
		t.Errorf("%d filter dispatch chains", len(chains))
	}
	// mangle: pre-DNAT over its own interfaces; raw: no all-interfaces.
	mangle := c.HostDispatchChains("mangle", HostDispatch{Ifaces: []string{"eth1"}}, all)
	if got := render(mangle[0].Rules); mangle[0].Name != "cali-from-host-endpoint" || !reflect.DeepEqual(got, []string{"--in-interface eth1 --goto cali-fh-eth1"}) {
		t.Errorf("mangle from: %q", got)
	}
	raw := c.HostDispatchChains("raw", HostDispatch{Ifaces: []string{"eth1"}, All: true}, all)
	if got := render(raw[1].Rules); len(raw) != 2 || !reflect.DeepEqual(got, []string{"--out-interface eth1 --goto cali-th-eth1"}) {
		t.Errorf("raw to: %q", got)
	}
}

// Under DropActionOverride a host endpoint's default denials are logged
// and overridden as a workload's are, in filter and in mangle.
func TestHostChainsDropLog(t *testing.T) {
	c := hepConfig(4)
	c.DropLog = &DropLog{Group: 20, Limit: rs.Limit{Count: 10, Per: rs.PerSecond, Burst: 20}, Size: 128}
	c.DropAccept = true
	ep := &contract.HostEndpointUpdate{ID: "h", InterfaceName: "eth0",
		Tiers: []contract.TierPolicies{{Name: "default", DefaultAction: "Deny", Ingress: []contract.PolicyID{gnpID("a")}}}}
	fh := render(c.HostFilterChains("eth0", ep)[1].Rules)
	joined := strings.Join(fh, "\n")
	if !strings.Contains(joined, `--nflog-prefix "DPI|default"`) || !strings.Contains(joined, `--nflog-prefix "DRI"`) ||
		!strings.HasSuffix(fh[len(fh)-1], "--jump ACCEPT") {
		t.Errorf("filter from-host chain:\n%s", joined)
	}
	if th := render(c.HostMangleEgressChain("eth0", ep).Rules); !strings.Contains(strings.Join(th, "\n"), `--nflog-prefix "DRE"`) {
		t.Errorf("mangle to-host chain: %q", th)
	}
	refs := HostEndpointDropRefs(ep)
	var prefixes []string
	for _, r := range refs {
		prefixes = append(prefixes, r.Prefix())
	}
	if !strings.Contains(strings.Join(prefixes, " "), "DPI|default") || len(HostEndpointDropRefs(&contract.HostEndpointUpdate{FailClosed: true})) != 0 {
		t.Errorf("drop refs %v", prefixes)
	}
}
