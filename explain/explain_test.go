package explain

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"ocelot/contract"
)

// fakeState is a State built in the test: endpoints, policies, profiles
// and sets given literally.
type fakeState struct {
	eps      []*contract.EndpointUpdate
	policies map[contract.PolicyID]*contract.PolicyUpdate
	profiles map[string]*contract.ProfileUpdate
	sets     map[string][]contract.Member
	settings Settings
}

func newFake() *fakeState {
	return &fakeState{policies: map[contract.PolicyID]*contract.PolicyUpdate{}, profiles: map[string]*contract.ProfileUpdate{},
		sets: map[string][]contract.Member{},
		settings: Settings{InSync: true, DenyAction: "DROP", DropOverride: "Drop", LogPrefix: "calico-packet", DropVXLAN: true, VXLANPort: 4789,
			DropIPIP: true, OpenStack: true, MetadataAddr: netip.MustParseAddr("127.0.0.1"), MetadataPort: 8775, EndpointToHost: "DROP",
			HostAddrs: []netip.Addr{netip.MustParseAddr("198.18.0.11")}}}
}

func (f *fakeState) Endpoints() []*contract.EndpointUpdate              { return f.eps }
func (f *fakeState) Policy(id contract.PolicyID) *contract.PolicyUpdate { return f.policies[id] }
func (f *fakeState) Profile(id string) *contract.ProfileUpdate          { return f.profiles[id] }
func (f *fakeState) EndpointChains(iface string) (string, string) {
	return "cali-tw-" + iface, "cali-fw-" + iface
}
func (f *fakeState) PolicyChain(id contract.PolicyID, in bool) string { return "cali-pi-" + id.Name }
func (f *fakeState) ProfileChain(id string, in bool) string           { return "cali-pri-" + id }
func (f *fakeState) Settings() Settings                               { return f.settings }
func (f *fakeState) Set(id string) (SetInfo, bool) {
	m, ok := f.sets[id]
	return SetInfo{ID: id, Type: "hash:net", Selector: "sel(" + id + ")", Names: []string{"cali40" + id}, Members: []int{len(m)}, Families: []int{4}}, ok
}

func (f *fakeState) InSet(id string, a netip.Addr, proto uint8, port uint16) bool {
	for _, m := range f.sets[id] {
		if m.Net.Contains(a) && m.Proto == proto && m.Port == port {
			return true
		}
	}
	return false
}

var (
	tcp = &contract.Protocol{Name: "tcp", Num: 6}
	udp = &contract.Protocol{Name: "udp", Num: 17}
)

func pid(name string) contract.PolicyID {
	return contract.PolicyID{Kind: "NetworkPolicy", Namespace: "openstack-region-RegionOne", Name: name}
}

func net1(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func ports(p ...uint16) []contract.PortRange {
	var out []contract.PortRange
	for _, x := range p {
		out = append(out, contract.PortRange{First: x, Last: x})
	}
	return out
}

// lab is web (198.18.11.5, tapweb) in tiers admin (Pass by default) and
// default; client (198.18.11.6, tapclient) with a profile.
func lab() *fakeState {
	f := newFake()
	web := &contract.EndpointUpdate{ID: contract.EndpointID{Orchestrator: "openstack", WorkloadID: "openstack-region-RegionOne/vm-web", EndpointID: "port-web"},
		Name: "tapweb", IPv4Nets: []netip.Prefix{net1("198.18.11.5/32")}, Labels: map[string]string{"sg": "web"},
		IPv4NAT: []contract.NAT{{Internal: netip.MustParseAddr("198.18.11.5"), External: netip.MustParseAddr("198.19.0.5")}},
		Tiers: []contract.TierPolicies{
			{Name: "admin", DefaultAction: "Pass", Ingress: []contract.PolicyID{pid("quarantine"), pid("pass-ssh")}},
			{Name: "default", DefaultAction: "Deny", Ingress: []contract.PolicyID{pid("web")}, Egress: []contract.PolicyID{pid("web")}},
		}}
	client := &contract.EndpointUpdate{ID: contract.EndpointID{Orchestrator: "openstack", WorkloadID: "openstack-region-RegionOne/vm-client", EndpointID: "port-client"},
		Name: "tapclient", IPv4Nets: []netip.Prefix{net1("198.18.11.6/32")}, ProfileIDs: []string{"prof"}}
	f.eps = []*contract.EndpointUpdate{web, client}
	f.policies[pid("quarantine")] = &contract.PolicyUpdate{ID: pid("quarantine"), Inbound: []contract.Rule{
		{Action: contract.ActionLog, SrcIPSetIDs: []string{"s:bad"}},
		{Action: contract.ActionDeny, SrcIPSetIDs: []string{"s:bad"}}}}
	f.policies[pid("pass-ssh")] = &contract.PolicyUpdate{ID: pid("pass-ssh"), Inbound: []contract.Rule{
		{Action: contract.ActionPass, Protocol: tcp, DstPorts: ports(22)},
		{Action: contract.ActionAllow, Protocol: tcp, DstPorts: ports(8443)}}}
	f.policies[pid("web")] = &contract.PolicyUpdate{ID: pid("web"),
		Inbound: []contract.Rule{
			{Action: contract.ActionAllow, Protocol: tcp, DstPorts: ports(80), SrcIPSetIDs: []string{"s:clients"}},
			{Action: contract.ActionAllow, Protocol: tcp, DstNamedPortIPSetIDs: []string{"n:http"}},
			{Action: contract.ActionDeny, Protocol: udp},
			{Action: contract.ActionAllow, Protocol: &contract.Protocol{Name: "icmp", Num: 1}, ICMP: &contract.ICMPMatch{Type: 8}}},
		Outbound: []contract.Rule{{Action: contract.ActionAllow}}}
	f.profiles["prof"] = &contract.ProfileUpdate{ID: "prof", Outbound: []contract.Rule{{Action: contract.ActionAllow, NotDstNets: []netip.Prefix{net1("198.18.99.0/24")}}}}
	f.sets["s:clients"] = []contract.Member{{Net: net1("198.18.12.0/24")}}
	f.sets["s:bad"] = []contract.Member{{Net: net1("198.18.12.66/32")}}
	f.sets["n:http"] = []contract.Member{{Net: net1("198.18.11.5/32"), Proto: 6, Port: 8080}}
	return f
}

func flow(f *fakeState, src, dst, proto string, dport uint16) *FlowVerdict {
	a := Explain(f, Query{Flow: &Flow{Src: src, Dst: dst, Protocol: proto, DstPort: dport}})
	if a.Error != "" {
		panic(a.Error)
	}
	return a.Flow
}

func TestFlows(t *testing.T) {
	f := lab()
	icmp8 := 8
	for _, c := range []struct {
		name, src, dst, proto string
		dport                 uint16
		verdict               string
		kind, policy          string
		rule                  int
		steps                 []string // substrings the steps must hold
	}{
		{"allowed by a rule via a set", "198.18.12.5", "198.18.11.5", "tcp", 80, "allowed", "rule", "np/openstack-region-RegionOne/web", 0,
			[]string{"its default action Pass moves on", "no match: destination port 80 is not in [22]", "rule 0 allow protocol=tcp dstPorts=[80] srcSets=[s:clients]: matches"}},
		{"denied by a rule", "198.18.12.5", "tapweb", "udp", 53, "denied", "rule", "np/openstack-region-RegionOne/web", 2, nil},
		{"denied by default", "198.18.12.5", "port-web", "tcp", 81, "denied", "end of tier", "", -1,
			[]string{"source 198.18.12.5 is not in set s:bad, selector sel(s:bad)"}},
		{"not in the set", "198.18.13.5", "198.18.11.5", "tcp", 80, "denied", "end of tier", "", -1,
			[]string{"source 198.18.13.5 is not in set s:clients"}},
		{"Pass, then the next tier decides", "198.18.12.5", "198.18.11.5", "tcp", 22, "denied", "end of tier", "", -1,
			[]string{"Pass skips the rest of tier admin", "on to the next tier"}},
		{"allowed in the tier that passes by default", "198.18.12.5", "198.18.11.5", "tcp", 8443, "allowed", "rule", "np/openstack-region-RegionOne/pass-ssh", 1, nil},
		{"logged, then denied", "198.18.12.66", "198.18.11.5", "tcp", 80, "denied", "rule", "np/openstack-region-RegionOne/quarantine", 1,
			[]string{`logged with prefix "calico-packet: "`}},
		{"named port", "198.18.40.1", "198.18.11.5", "tcp", 8080, "allowed", "rule", "np/openstack-region-RegionOne/web", 1, nil},
		{"floating IP", "198.18.12.5", "198.19.0.5", "tcp", 80, "allowed", "rule", "np/openstack-region-RegionOne/web", 0, nil},
		{"egress by profile", "tapclient", "198.18.50.1", "tcp", 443, "allowed", "rule", "", 0, nil},
		{"egress: no profile allows", "tapclient", "198.18.99.1", "tcp", 443, "denied", "no profile", "", -1,
			[]string{"destination 198.18.99.1 is in the excluded [198.18.99.0/24]"}},
		{"both local: egress then ingress", "tapclient", "tapweb", "tcp", 80, "denied", "end of tier", "", -1, nil},
		{"VXLAN from a workload", "tapweb", "198.18.50.1", "udp", 4789, "denied", "before policy", "", -1, nil},
		{"to the host: DNS", "tapweb", "198.18.0.11", "udp", 53, "allowed", "before policy", "", -1, nil},
		{"to the host: metadata", "tapweb", "169.254.169.254", "tcp", 80, "allowed", "before policy", "", -1, nil},
		{"to the host: policy allows, the host action drops", "tapweb", "198.18.0.11", "tcp", 22, "denied", "host", "", -1, nil},
	} {
		v := flow(f, c.src, c.dst, c.proto, c.dport)
		if v.Verdict != c.verdict {
			t.Errorf("%s: verdict %s, want %s\n%s", c.name, v.Verdict, c.verdict, text(v))
			continue
		}
		last := v.Hops[len(v.Hops)-1].DecidedBy
		if last == nil || last.Kind != c.kind || last.Policy != c.policy || last.Rule != c.rule {
			t.Errorf("%s: decided by %+v, want %s %q rule %d\n%s", c.name, last, c.kind, c.policy, c.rule, text(v))
		}
		all := text(v)
		for _, s := range c.steps {
			if !strings.Contains(all, s) {
				t.Errorf("%s: explanation lacks %q:\n%s", c.name, s, all)
			}
		}
	}
	// ICMP with a type: echo request allowed, echo reply not.
	a := Explain(f, Query{Flow: &Flow{Src: "198.18.12.5", Dst: "198.18.11.5", Protocol: "icmp", ICMPType: &icmp8}})
	if a.Flow.Verdict != "allowed" {
		t.Errorf("ICMP echo: %s", text(a.Flow))
	}
	zero := 0
	if a := Explain(f, Query{Flow: &Flow{Src: "198.18.12.5", Dst: "198.18.11.5", Protocol: "icmp", ICMPType: &zero}}); a.Flow.Verdict != "denied" {
		t.Errorf("ICMP echo reply: %s", text(a.Flow))
	}
	// Neither end local.
	if v := flow(f, "198.18.12.5", "198.18.13.5", "tcp", 80); v.Verdict != "not decided here" || len(v.Hops) != 0 {
		t.Errorf("remote to remote: %s", text(v))
	}
}

func TestDropActionOverride(t *testing.T) {
	f := lab()
	f.settings.DropOverride = "LogAndAccept"
	v := flow(f, "198.18.12.5", "198.18.11.5", "tcp", 81)
	if v.Verdict != "allowed" || !strings.Contains(v.Hops[0].DecidedBy.Text, "accepted instead") {
		t.Errorf("LogAndAccept: %s", text(v))
	}
	// To the host, an accepted denial is accepted there, before
	// DefaultEndpointToHostAction (which would drop it).
	f.policies[pid("web")].Outbound = []contract.Rule{{Action: contract.ActionDeny}}
	if v := flow(f, "tapweb", "198.18.0.11", "tcp", 22); v.Verdict != "allowed" || v.Hops[0].DecidedBy.Kind != "rule" {
		t.Errorf("LogAndAccept to the host: %s", text(v))
	}
	// Not a policy decision: the VXLAN drop stays.
	if v := flow(f, "tapweb", "198.18.50.1", "udp", 4789); v.Verdict != "denied" {
		t.Errorf("LogAndAccept opened the VXLAN drop: %s", text(v))
	}
}

func TestFailClosed(t *testing.T) {
	f := lab()
	f.policies[pid("web")] = &contract.PolicyUpdate{ID: pid("web"), Inbound: []contract.Rule{contract.DenyAll}, Outbound: []contract.Rule{contract.DenyAll},
		FailClosed: true, Reason: "selector does not parse"}
	v := flow(f, "198.18.12.5", "198.18.11.5", "tcp", 80)
	if v.Verdict != "denied" || !strings.Contains(v.Hops[0].DecidedBy.Text, "fail-closed: selector does not parse") {
		t.Errorf("fail-closed policy: %s", text(v))
	}
}

func TestEndpoint(t *testing.T) {
	f := lab()
	for _, ref := range []string{"tapweb", "port-web", "vm-web", "198.18.11.5", "openstack/openstack-region-RegionOne/vm-web/port-web"} {
		a := Explain(f, Query{Endpoint: ref})
		if a.Error != "" || a.Endpoint == nil || a.Endpoint.Interface != "tapweb" {
			t.Errorf("%q: %+v", ref, a)
		}
	}
	a := Explain(f, Query{Endpoint: "tapweb"})
	e := a.Endpoint
	if e.Region != "RegionOne" || e.Namespace != "openstack-region-RegionOne" || e.Labels["sg"] != "web" || e.ToChain != "cali-tw-tapweb" {
		t.Errorf("identity: %+v", e)
	}
	var order []string
	for _, ti := range e.Ingress {
		for _, p := range ti.Policies {
			order = append(order, ti.Name+":"+p.ID)
		}
	}
	want := []string{"admin:np/openstack-region-RegionOne/quarantine", "admin:np/openstack-region-RegionOne/pass-ssh", "default:np/openstack-region-RegionOne/web"}
	if !slices.Equal(order, want) {
		t.Errorf("ingress order %v, want %v", order, want)
	}
	var sets []string
	for _, s := range e.Sets {
		sets = append(sets, s.ID)
	}
	if !slices.Equal(sets, []string{"n:http", "s:bad", "s:clients"}) {
		t.Errorf("sets %v", sets)
	}
	var b bytes.Buffer
	a.WriteText(&b)
	for _, s := range []string{"namespace  openstack-region-RegionOne (region RegionOne)", "tier admin (default action Pass)",
		"rule 0: allow protocol=tcp dstPorts=[80] srcSets=[s:clients]", "s:clients  hash:net  cali40s:clients 1 member", "sel(s:clients)"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, b.String())
		}
	}
	// QoS controls are shown, and a flow says it assumes it is within them.
	f.eps[0].QoS = &contract.QoSControls{Ingress: contract.QoSLimits{PacketRate: 100, PacketBurst: 5, MaxConnections: 10}}
	b.Reset()
	a = Explain(f, Query{Endpoint: "tapweb"})
	a.WriteText(&b)
	if !strings.Contains(b.String(), "QoS        ingress: 0 bit/s (burst 0 bit, peak 0 bit/s), 100 packets/s (burst 5), 10 connections") {
		t.Errorf("QoS not shown:\n%s", b.String())
	}
	if v := flow(f, "198.18.12.5", "198.18.11.5", "tcp", 80); !strings.Contains(text(v), "beyond 10 open ones") {
		t.Errorf("QoS not in the flow:\n%s", text(v))
	}
	if a := Explain(f, Query{Endpoint: "198.18.11.7"}); a.Error == "" {
		t.Error("an address no endpoint has was explained")
	}
}

func TestQueriesAreBounded(t *testing.T) {
	f := lab()
	for _, q := range []Query{
		{},
		{Endpoint: strings.Repeat("x", MaxQueryText+1)},
		{Endpoint: "tap\nweb"},
		{Endpoint: "tapweb", Flow: &Flow{Src: "a", Dst: "b"}},
		{Flow: &Flow{Src: "198.18.12.5"}},
		{Flow: &Flow{Src: "198.18.12.5", Dst: "2001:db8::1"}},
		{Flow: &Flow{Src: "198.18.12.5", Dst: "198.18.11.5", Protocol: "tcp; rm"}},
	} {
		if a := Explain(f, q); a.Error == "" {
			t.Errorf("%+v: no error", q)
		}
	}
	// A policy with more rules than an answer may hold is cut, and says so.
	var many []contract.Rule
	for i := 0; i < MaxSteps+10; i++ {
		many = append(many, contract.Rule{Action: contract.ActionAllow, Protocol: udp})
	}
	f.policies[pid("web")].Inbound = many
	a := Explain(f, Query{Flow: &Flow{Src: "198.18.12.5", Dst: "198.18.11.5", DstPort: 81}})
	if !a.Truncated || a.Flow.Verdict != "denied" {
		t.Errorf("long policy: truncated %v verdict %s", a.Truncated, a.Flow.Verdict)
	}
	if a := Explain(f, Query{Endpoint: "tapweb"}); !a.Truncated {
		t.Error("endpoint with too many rules not truncated")
	}
}

func text(v *FlowVerdict) string {
	var b bytes.Buffer
	(&Answer{InSync: true, Flow: v}).WriteText(&b)
	return b.String()
}
