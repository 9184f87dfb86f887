package rules

import (
	"bufio"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"ocelot/contract"
	ipt "ocelot/dataplane/iptables"
	rs "ocelot/dataplane/ruleset"
)

func felixConfig(family int) *Config {
	marks, _ := MarksFromMask(0xffff0000)
	return &Config{
		Family: family, Prefixes: []string{"tap"}, Marks: marks,
		FilterAllow: rs.Accept{}, MangleAllow: rs.Accept{}, Deny: rs.Drop{}, EndpointToHost: rs.Drop{},
		OpenStack: true, MetadataAddr: "127.0.0.1", MetadataPort: 8775, VXLANPort: 4789, LogPrefix: "calico-packet",
	}
}

// setName names sets as the IPv4 set driver does.
func setName(id string) string {
	n := "cali40" + id
	if len(n) > 31 {
		n = n[:31]
	}
	return n
}

// renderer renders as the iptables driver of a family does.
func renderer(family int) ipt.Renderer {
	return ipt.Renderer{SetName: func(id string) string {
		n := "cali" + string(rune('0'+family)) + "0" + id
		if len(n) > 31 {
			n = n[:31]
		}
		return n
	}}
}

var hashRE = regexp.MustCompile(`--comment "cali:([a-zA-Z0-9_-]+)"`)

// observed reads Felix's iptables-save output: table -> chain -> hashes.
func observed(t *testing.T, file string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string][]string{}
	var table string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			out[table] = map[string][]string{}
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			if _, ok := out[table][name]; !ok {
				out[table][name] = nil // a chain with no rules is still a chain
			}
		case strings.HasPrefix(line, "-A "):
			chain, rest, _ := strings.Cut(line[3:], " ")
			if m := hashRE.FindStringSubmatch(rest); m != nil {
				out[table][chain] = append(out[table][chain], m[1])
			}
		}
	}
	return out
}

// The scenario Felix programmed (on a real host; docs/calico.md): one local VM on
// tapa7734e61-b5 selected by allow-tcp-80 for ingress.
func felixScenario() (*contract.EndpointUpdate, *contract.PolicyUpdate) {
	id := contract.PolicyID{Kind: "NetworkPolicy", Namespace: "openstack-region-regionone", Name: "allow-tcp-80"}
	ep := &contract.EndpointUpdate{Name: "tapa7734e61-b5", IPv4Nets: []netip.Prefix{netip.MustParsePrefix("10.65.0.2/32")},
		Tiers: []contract.TierPolicies{{Name: "default", DefaultAction: "Deny", Ingress: []contract.PolicyID{id}}}}
	pol := &contract.PolicyUpdate{ID: id, Inbound: []contract.Rule{{Action: contract.ActionAllow, Protocol: &contract.Protocol{Name: "tcp", Num: 6},
		DstPorts: []contract.PortRange{{First: 80, Last: 80}}, SrcIPSetIDs: []string{"s:bnhJRqUSRy3lLnoKpL4N8es39Kv7B1tayge5xQ"}}}}
	return ep, pol
}

func TestChainsMatchFelix(t *testing.T) {
	for _, tc := range []struct {
		family int
		file   string
	}{{4, "testdata/iptables-save.txt"}, {6, "testdata/ip6tables-save.txt"}} {
		c := felixConfig(tc.family)
		want := observed(t, tc.file)
		ep, pol := felixScenario()
		static, hooks := c.Static()
		rendered := map[string][]*rs.Chain{}
		r := renderer(tc.family)
		for table, chains := range static {
			rendered[table] = append(chains, c.HostDispatchChains(table, HostDispatch{}, HostDispatch{})...)
		}
		rendered["filter"] = append(rendered["filter"], c.DispatchChains([]string{ep.Name})...)
		rendered["filter"] = append(rendered["filter"], c.EndpointChains(ep)...)
		rendered["filter"] = append(rendered["filter"], c.PolicyChains(pol)[0]) // the only one Felix programs: referenced
		checked := 0
		for table, chains := range rendered {
			felix, ok := want[table]
			if !ok {
				continue // Felix did not program this table for this family
			}
			for _, ch := range chains {
				if table == "mangle" && ch.Name == "cali-POSTROUTING" {
					continue // Felix's has a DSCP rule Ocelot leaves out
				}
				f, ok := felix[ch.Name]
				if !ok {
					t.Errorf("IPv%d %s: Felix has no chain %s", tc.family, table, ch.Name)
					continue
				}
				if got := r.Hashes(ch.Name, ch.Rules); !reflect.DeepEqual(got, f) && !(len(got) == 0 && len(f) == 0) {
					t.Errorf("IPv%d %s %s:\n got %v\nwant %v", tc.family, table, ch.Name, got, f)
				}
				checked++
			}
			for kc, rules := range hooks[table].Inserts {
				if got := r.Hashes(kc, rules); !reflect.DeepEqual(got, felix[kc][:len(got)]) {
					t.Errorf("IPv%d %s %s hooks: got %v, Felix %v", tc.family, table, kc, got, felix[kc])
				}
			}
			for kc, rules := range hooks[table].Appends {
				f := felix[kc]
				if got := r.Hashes(kc+"*appends*", rules); !reflect.DeepEqual(got, f[len(f)-len(got):]) {
					t.Errorf("IPv%d %s %s appends: got %v, Felix %v", tc.family, table, kc, got, f)
				}
			}
		}
		if checked < 15 {
			t.Errorf("IPv%d: only %d chains compared", tc.family, checked)
		}
	}
}

func TestMarks(t *testing.T) {
	m, err := MarksFromMask(0xffff0000)
	if err != nil || m != (Marks{0x10000, 0x20000, 0x40000, 0x80000, 0x100000}) {
		t.Errorf("%+v %v", m, err)
	}
	if _, err := MarksFromMask(0xf0); err == nil {
		t.Error("4 bits accepted")
	}
}

// render writes rules as the iptables renderer does, with comments
// joined by "|" in front.
func render(rules []rs.Rule) []string {
	var out []string
	r := renderer(4)
	for _, x := range rules {
		var parts []string
		action := ""
		if x.Action != nil {
			action = ipt.Action(x.Action)
		}
		for _, p := range []string{strings.Join(x.Comment, "|"), r.Match(x.Match), action} {
			if p != "" {
				parts = append(parts, p)
			}
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}

func TestRuleRendering(t *testing.T) {
	c := felixConfig(4)
	set := setName
	tcp := &contract.Protocol{Name: "tcp", Num: 6}
	code := 0
	cases := []struct {
		name string
		rule contract.Rule
		want []string
	}{
		{"allow all", contract.Rule{Action: contract.ActionAllow}, []string{
			"--jump MARK --set-mark 0x10000/0x10000", "-m mark --mark 0x10000/0x10000 --jump RETURN"}},
		{"deny from net", contract.Rule{Action: contract.ActionDeny, SrcNets: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}, []string{
			"--source 198.51.100.0/24 --jump MARK --set-mark 0x40000/0x40000", "-m mark --mark 0x40000/0x40000 --jump DROP"}},
		{"pass", contract.Rule{Action: contract.ActionPass, NotProtocol: tcp}, []string{
			"! -p tcp --jump MARK --set-mark 0x20000/0x20000", "-m mark --mark 0x20000/0x20000 --jump RETURN"}},
		{"log", contract.Rule{Action: contract.ActionLog, Protocol: tcp}, []string{`-p tcp --jump LOG --log-prefix "calico-packet: " --log-level 5`}},
		{"icmp", contract.Rule{Action: contract.ActionAllow, Protocol: &contract.Protocol{Name: "icmp", Num: 1}, ICMP: &contract.ICMPMatch{Type: 8, Code: &code}}, []string{
			"-p icmp -m icmp --icmp-type 8/0 --jump MARK --set-mark 0x10000/0x10000", "-m mark --mark 0x10000/0x10000 --jump RETURN"}},
		{"everything in order", contract.Rule{Action: contract.ActionAllow, Protocol: tcp,
			SrcNets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, SrcIPSetIDs: []string{"s:a"}, SrcPorts: []contract.PortRange{{First: 1000, Last: 2000}},
			DstNets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, DstIPSetIDs: []string{"s:b"}, DstPorts: []contract.PortRange{{First: 80, Last: 80}, {First: 443, Last: 443}},
			NotSrcIPSetIDs: []string{"s:c"}, NotDstPorts: []contract.PortRange{{First: 8080, Last: 8080}}}, []string{
			"-p tcp --source 10.0.0.0/8 -m set --match-set " + set("s:a") + " src -m multiport --source-ports 1000:2000 --destination 10.1.0.0/16 -m set --match-set " + set("s:b") +
				" dst -m multiport --destination-ports 80,443 -m set ! --match-set " + set("s:c") + " src -m multiport ! --destination-ports 8080 --jump MARK --set-mark 0x10000/0x10000",
			"-m mark --mark 0x10000/0x10000 --jump RETURN"}},
		{"IPv6 rule skipped in IPv4", contract.Rule{Action: contract.ActionAllow, IPVersion: 6}, nil},
		{"only IPv6 nets: skipped in IPv4", contract.Rule{Action: contract.ActionAllow, SrcNets: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}}, nil},
		{"negated catch-all matches nothing", contract.Rule{Action: contract.ActionAllow, NotDstNets: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}, nil},
		{"two source nets: a block", contract.Rule{Action: contract.ActionAllow, SrcNets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16")}}, []string{
			"--jump MARK --set-mark 0/0x180000",
			"--source 10.0.0.0/8 --jump MARK --set-mark 0x80000/0x80000",
			"--source 192.168.0.0/16 --jump MARK --set-mark 0x80000/0x80000",
			"-m mark --mark 0x80000/0x80000 --jump MARK --set-mark 0x10000/0x10000",
			"-m mark --mark 0x10000/0x10000 --jump RETURN"}},
		{"ports and a named port, and a positive and negated net", contract.Rule{Action: contract.ActionDeny, Protocol: tcp,
			DstPorts: []contract.PortRange{{First: 22, Last: 22}}, DstNamedPortIPSetIDs: []string{"n:web"},
			DstNets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, NotDstNets: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}}, []string{
			"--jump MARK --set-mark 0/0x180000",
			"-p tcp -m multiport --destination-ports 22 --jump MARK --set-mark 0x80000/0x80000",
			"-m set --match-set " + set("n:web") + " dst,dst --jump MARK --set-mark 0x80000/0x80000",
			"--destination 10.9.0.0/16 --jump MARK --set-mark 0/0x80000",
			"-p tcp --destination 10.0.0.0/8 -m mark --mark 0x80000/0x80000 --jump MARK --set-mark 0x40000/0x40000",
			"-m mark --mark 0x40000/0x40000 --jump DROP"}},
	}
	for _, tc := range cases {
		if got := render(c.Rule(tc.rule)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
	// 16 single ports need two multiport lists: an OR block when positive,
	// two ANDed negations when negated.
	var ports []contract.PortRange
	for p := uint16(1); p <= 16; p++ {
		ports = append(ports, contract.PortRange{First: p, Last: p})
	}
	got := render(c.Rule(contract.Rule{Action: contract.ActionAllow, Protocol: tcp, DstPorts: ports}))
	if len(got) != 5 || !strings.Contains(got[1], "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 --jump MARK --set-mark 0x80000") || !strings.Contains(got[2], "--destination-ports 16 ") {
		t.Errorf("16 ports: %q", got)
	}
	got = render(c.Rule(contract.Rule{Action: contract.ActionAllow, Protocol: tcp, NotDstPorts: ports}))
	if len(got) != 2 || strings.Count(got[0], "! --destination-ports") != 2 {
		t.Errorf("16 negated ports: %q", got)
	}
	// IPv6 ICMP.
	c6 := felixConfig(6)
	got = render(c6.Rule(contract.Rule{Action: contract.ActionAllow, Protocol: &contract.Protocol{Name: "icmpv6", Num: 58}, ICMP: &contract.ICMPMatch{Type: 128}}))
	if got[0] != "-p icmpv6 -m icmp6 --icmpv6-type 128 --jump MARK --set-mark 0x10000/0x10000" {
		t.Errorf("icmpv6: %q", got)
	}
	if r := c6.Rule(contract.Rule{Action: contract.ActionAllow, Protocol: &contract.Protocol{Name: "icmp", Num: 1}}); r != nil {
		t.Errorf("IPv4 ICMP rendered for IPv6: %v", r)
	}
}

func TestDispatchChains(t *testing.T) {
	c := felixConfig(4)
	chains := c.DispatchChains([]string{"tapab1", "tapab2", "tapc", "tapab3"})
	names := []string{}
	for _, ch := range chains {
		names = append(names, ch.Name)
	}
	if !reflect.DeepEqual(names, []string{"cali-from-wl-dispatch", "cali-to-wl-dispatch", "cali-from-wl-dispatch-a", "cali-to-wl-dispatch-a"}) {
		t.Fatalf("chains %v", names)
	}
	if got := render(chains[0].Rules); !reflect.DeepEqual(got, []string{
		"--in-interface tapa+ --goto cali-from-wl-dispatch-a",
		"--in-interface tapc --goto cali-fw-tapc",
		"Unknown interface --jump DROP"}) {
		t.Errorf("root %q", got)
	}
	if got := render(chains[3].Rules); !reflect.DeepEqual(got, []string{
		"--out-interface tapab1 --goto cali-tw-tapab1", "--out-interface tapab2 --goto cali-tw-tapab2",
		"--out-interface tapab3 --goto cali-tw-tapab3", "Unknown interface --jump DROP"}) {
		t.Errorf("child %q", got)
	}
	if got := render(c.DispatchChains(nil)[0].Rules); !reflect.DeepEqual(got, []string{"Unknown interface --jump DROP"}) {
		t.Errorf("no endpoints: %q", got)
	}
}

func TestEndpointChainsTiersAndProfiles(t *testing.T) {
	c := felixConfig(4)
	a := contract.PolicyID{Kind: "GlobalNetworkPolicy", Name: "a"}
	b := contract.PolicyID{Kind: "NetworkPolicy", Namespace: "ns", Name: "b"}
	ep := &contract.EndpointUpdate{Name: "tapx", ProfileIDs: []string{"prof"}, Tiers: []contract.TierPolicies{
		{Name: "admin", DefaultAction: "Pass", Ingress: []contract.PolicyID{a}, Egress: []contract.PolicyID{a}},
		{Name: "default", DefaultAction: "Deny", Egress: []contract.PolicyID{b}},
	}}
	chains := c.EndpointChains(ep)
	want := []string{
		"-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
		"-m conntrack --ctstate INVALID --jump DROP",
		"--jump MARK --set-mark 0/0x30000",
		"Start of tier admin --jump MARK --set-mark 0/0x20000",
		"-m mark --mark 0/0x20000 --jump " + PolicyChainName(a, true),
		"Return if policy accepted -m mark --mark 0x10000/0x10000 --jump RETURN",
		"--jump cali-pri-prof",
		"Return if profile accepted -m mark --mark 0x10000/0x10000 --jump RETURN",
		"Drop if no profiles matched --jump DROP",
	}
	if got := render(chains[0].Rules); !reflect.DeepEqual(got, want) {
		t.Errorf("ingress:\n%q\nwant\n%q", got, want)
	}
	got := render(chains[1].Rules)
	if !strings.Contains(strings.Join(got, "\n"), "End of tier default. Drop if no policies passed packet -m mark --mark 0/0x20000 --jump DROP") ||
		strings.Contains(strings.Join(got, "\n"), "End of tier admin") || !strings.Contains(got[3], "Drop VXLAN") {
		t.Errorf("egress: %q", got)
	}
	// REJECT and RETURN variants.
	c.Deny, c.FilterAllow = rs.Reject{}, rs.Return{}
	got = render(c.EndpointChains(ep)[0].Rules)
	if got[0] != "-m conntrack --ctstate RELATED,ESTABLISHED --jump MARK --set-mark 0x10000/0x10000" || got[len(got)-1] != "Reject if no profiles matched --jump REJECT" {
		t.Errorf("variants: %q", got)
	}
}

// QoS limits in the endpoint chains, as Felix renders them: the packet
// rate before conntrack (every packet counts), the connection limit after
// it (new connections only); each direction in its own chain; nothing
// when the controls go.
func TestEndpointChainsQoS(t *testing.T) {
	c := felixConfig(4)
	ep := &contract.EndpointUpdate{Name: "tapx", QoS: &contract.QoSControls{
		Ingress: contract.QoSLimits{PacketRate: 100, PacketBurst: 5, Bandwidth: 1_000_000},
		Egress:  contract.QoSLimits{MaxConnections: 10}}}
	chains := c.EndpointChains(ep)
	want := []string{
		"Clear ingress packet rate limit mark --jump MARK --set-mark 0/0x80000",
		"Mark packets within ingress packet rate limit -m limit --limit 100/sec --limit-burst 5 --jump MARK --set-mark 0x80000/0x80000",
		"Drop packets over ingress packet rate limit -m mark ! --mark 0x80000/0x80000 --jump DROP",
		"Clear ingress packet rate limit mark --jump MARK --set-mark 0/0x80000",
		"-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
		"-m conntrack --ctstate INVALID --jump DROP",
		"--jump MARK --set-mark 0/0x30000",
	}
	if got := render(chains[0].Rules); !reflect.DeepEqual(got[:len(want)], want) {
		t.Errorf("ingress:\n%q\nwant\n%q", got, want)
	}
	want = []string{
		"-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
		"-m conntrack --ctstate INVALID --jump DROP",
		"Reject connections over egress connection limit -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 10 --connlimit-mask 0 -j REJECT --reject-with tcp-reset",
		"--jump MARK --set-mark 0/0x30000",
	}
	if got := render(chains[1].Rules); !reflect.DeepEqual(got[:len(want)], want) {
		t.Errorf("egress:\n%q\nwant\n%q", got, want)
	}
	plain := c.EndpointChains(&contract.EndpointUpdate{Name: "tapx"})
	ep.QoS = &contract.QoSControls{Ingress: contract.QoSLimits{Bandwidth: 1_000_000}} // tc's business, not the rules'
	if !reflect.DeepEqual(c.EndpointChains(ep), plain) {
		t.Error("bandwidth alone changed the rules")
	}
}

func TestPolicyChainsFailClosedAndEmpty(t *testing.T) {
	c := felixConfig(4)
	u := &contract.PolicyUpdate{ID: contract.PolicyID{Kind: "GlobalNetworkPolicy", Name: "broken"}, Inbound: []contract.Rule{contract.DenyAll}, FailClosed: true}
	chains := c.PolicyChains(u)
	if got := render(chains[0].Rules); !reflect.DeepEqual(got, []string{
		"GlobalNetworkPolicy broken ingress --jump MARK --set-mark 0x40000/0x40000", "-m mark --mark 0x40000/0x40000 --jump DROP"}) {
		t.Errorf("deny-all: %q", got)
	}
	if got := render(chains[1].Rules); !reflect.DeepEqual(got, []string{"GlobalNetworkPolicy broken egress"}) {
		t.Errorf("empty: %q", got)
	}
}

func TestFloatingIPsAndRPFSkip(t *testing.T) {
	c := felixConfig(4)
	ep := &contract.EndpointUpdate{Name: "tapx", IPv4NAT: []contract.NAT{{Internal: netip.MustParseAddr("10.0.0.5"), External: netip.MustParseAddr("198.18.9.9")}},
		AllowSpoofedSourcePrefixes: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16"), netip.MustParsePrefix("2001:db8::/64")}}
	fip := c.FloatingIPChains([]*contract.EndpointUpdate{ep})
	if got := render(fip[0].Rules); !reflect.DeepEqual(got, []string{"--destination 198.18.9.9 --jump DNAT --to-destination 10.0.0.5"}) {
		t.Errorf("dnat %q", got)
	}
	if got := render(fip[1].Rules); !reflect.DeepEqual(got, []string{"--destination 10.0.0.5 --source 10.0.0.5 --jump SNAT --to-source 198.18.9.9"}) {
		t.Errorf("snat %q", got)
	}
	if got := render(c.RPFSkipChain([]*contract.EndpointUpdate{ep}).Rules); !reflect.DeepEqual(got, []string{"--in-interface tapx --source 10.9.0.0/16 --jump ACCEPT"}) {
		t.Errorf("rpf skip %q", got)
	}
}
func TestLimitedName(t *testing.T) {
	cases := map[[2]string]string{
		{"cali-tw-", "tap1a2b3c4d-5e"}:                             "cali-tw-tap1a2b3c4d-5e",
		{"cali-pi-", "np/openstack-region-regionone/allow-tcp-80"}: "cali-pi-_RGEREAU0BOwMmLa7Pa1",
		{"cali-pi-", "12345678901234567890"}:                       "cali-pi-12345678901234567890",
	}
	for in, want := range cases {
		if got := LimitedName(in[0], in[1]); got != want || len(got) > MaxChainNameLength {
			t.Errorf("LimitedName(%q, %q) = %q, want %q", in[0], in[1], got, want)
		}
	}
	if got := LimitedName("cali-pi-", "_234567890123456789x"); !strings.HasPrefix(got, "cali-pi-_") || got == "cali-pi-_234567890123456789x" {
		t.Errorf("a 28-character name whose suffix starts with _ must be hashed: %q", got)
	}
	// Felix's all-interfaces host endpoint keeps its name.
	if got := LimitedName("cali-fh-", "*"); got != "cali-fh-*" {
		t.Errorf("LimitedName(cali-fh-, *) = %q", got)
	}
	// A short name with a character a restore script would take as
	// structure is hashed; each to its own name.
	seen := map[string]string{}
	for _, suffix := range []string{"a b", "a\"b", "a\nb", "a'b", "a\tb", "a;b", "a\x00", "é"} {
		got := LimitedName("cali-pro-", suffix)
		if !strings.HasPrefix(got, "cali-pro-_") || len(got) != MaxChainNameLength || strings.ContainsAny(got, " \"'\n\t;\x00") {
			t.Errorf("LimitedName(cali-pro-, %q) = %q, want a hashed name", suffix, got)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("%q and %q share the chain %s", suffix, other, got)
		}
		seen[got] = suffix
	}
}
