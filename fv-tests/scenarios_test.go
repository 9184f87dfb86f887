package fvtests

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"ocelot/fv-tests/lab"
	"ocelot/internal/netlab"
)

// guideLab is the guide's setup: web in RegionOne, client and other in
// RegionTwo, the cross-region policy in place and working.
type guideLab struct {
	l                  *lab.Lab
	r1, r2             *lab.Host
	web, client, other *lab.VM
}

func newGuideLab(t *testing.T) *guideLab {
	g := &guideLab{l: newLab(t)}
	g.r1 = g.l.AddHost("r1-compute1", "RegionOne")
	g.r2 = g.l.AddHost("r2-compute1", "RegionTwo")
	g.web = g.r1.AddVM("web", 5)
	g.client = g.r2.AddVM("client", 5)
	g.other = g.r2.AddVM("other", 6)
	g.web.Serve(80, 81)
	g.l.PutSG("RegionOne", sgWeb)
	g.l.PutSG("RegionTwo", sgClients)
	g.l.PutSG("RegionTwo", sgOther)
	g.web.Plug(map[string]string{sgWeb: "web"})
	g.client.Plug(map[string]string{sgClients: "clients"})
	g.other.Plug(map[string]string{sgOther: "other"})
	g.l.Put(lab.GuidePolicyKey("RegionOne"), lab.GuidePolicyJSON("RegionOne", sgWeb, sgClients, true))
	ready(t, g.r1, g.r2)
	eventuallyConnects(t, g.client, g.web, 80)
	backendInUse(t, g.r1)
	return g
}

// backendInUse checks that a host enforces with the lab's backend and
// that the other holds nothing of ours.
func backendInUse(t *testing.T, h *lab.Host) {
	t.Helper()
	nft, err := h.Exec("nft", "list", "table", "ip", "calico")
	if err != nil {
		nft = "" // no table
	}
	ipt := h.Iptables()
	if h.Lab.NFTablesMode == "Enabled" {
		if !strings.Contains(nft, "chain filter-cali-FORWARD") || ipt != "" {
			t.Errorf("%s: nftables mode, but the calico table holds %d bytes and %q has our chains", h.Name, len(nft), ipt)
		}
	} else if ipt == "" || nft != "" {
		t.Errorf("%s: iptables mode, but no iptables chains of ours (%q), or a calico nftables table", h.Name, ipt)
	}
}

// TestMembershipChanges: joining and leaving the remote group, a new remote
// VM, a deleted VM, a deleted and recreated policy all reach RegionOne.
func TestMembershipChanges(t *testing.T) {
	g := newGuideLab(t)
	blocked(t, g.other, g.web, 80)
	// other joins the clients group (it stays in its own too): the
	// control for the check above, over the same path...
	g.other.Plug(map[string]string{sgOther: "other", sgClients: "clients"})
	eventuallyConnects(t, g.other, g.web, 80)
	// ...and leaves it.
	g.other.Plug(map[string]string{sgOther: "other"})
	eventuallyBlocked(t, g.other, g.web, 80)
	if !g.client.Connects(g.web.IP, 80, time.Second) {
		t.Error("control: client lost access when other left the group")
	}

	// A new remote VM in the group gets in.
	newcomer := g.r2.AddVM("newcomer", 7)
	newcomer.Plug(map[string]string{sgClients: "clients"})
	eventuallyConnects(t, newcomer, g.web, 80)

	// A deleted VM is out of the set (its address could be reused).
	newcomer.Unplug()
	netlab.Eventually(t, "deleted VM's address leaves RegionOne's set", wait, func() bool {
		return !strings.Contains(g.r1.SetsDump(), newcomer.IP)
	})
	// The address reused by a VM outside the group: once RegionTwo has
	// programmed it (its route: the path back), RegionOne blocks it; in
	// the group again, over the same path, it connects.
	newcomer.Plug(map[string]string{sgOther: "other"})
	netlab.Eventually(t, "the reused address routed on its host", wait, func() bool {
		out, _ := g.r2.Exec("ip", "route", "show", newcomer.IP)
		return strings.Contains(out, newcomer.HostSide)
	})
	eventuallyBlocked(t, newcomer, g.web, 80)
	newcomer.Plug(map[string]string{sgClients: "clients"})
	eventuallyConnects(t, newcomer, g.web, 80)

	// The policy deleted and recreated.
	g.l.Delete(lab.GuidePolicyKey("RegionOne"))
	eventuallyBlocked(t, g.client, g.web, 80)
	g.l.Put(lab.GuidePolicyKey("RegionOne"), lab.GuidePolicyJSON("RegionOne", sgWeb, sgClients, true))
	eventuallyConnects(t, g.client, g.web, 80)
}

// TestRegionNames: a lower-case region, no region (namespace openstack)
// and a third region, each with its own policy; each region's policy
// governs only its own VMs, though all carry the same group label.
func TestRegionNames(t *testing.T) {
	l := newLab(t)
	hA := l.AddHost("a-compute1", "regionone")
	hB := l.AddHost("b-compute1", "")
	hC := l.AddHost("c-compute1", "RegionThree")
	webA, webB, webC := hA.AddVM("webA", 5), hB.AddVM("webB", 5), hC.AddVM("webC", 5)
	client := hC.AddVM("client", 6)
	for _, vm := range []*lab.VM{webA, webB, webC} {
		vm.Serve(80, 81, 82)
		vm.Plug(map[string]string{sgWeb: "web"})
	}
	client.Plug(map[string]string{sgClients: "clients"})
	for _, r := range []string{"regionone", "", "RegionThree"} {
		l.PutSG(r, sgWeb)
	}
	l.PutSG("RegionThree", sgClients)
	// regionone allows 80 from clients anywhere; no region allows 81 from
	// clients anywhere; RegionThree allows 82 from its own clients.
	l.Put(lab.GuidePolicyKey("regionone"), lab.GuidePolicyJSON("regionone", sgWeb, sgClients, true))
	l.PutSG("", sgWeb, lab.SGRule{"action": "Allow", "protocol": "TCP", "destination": map[string]any{"ports": []int{81}},
		"source": map[string]any{"selector": "has(sg.projectcalico.org/openstack-" + sgClients + ")", "namespaceSelector": "all()"}})
	l.PutSG("RegionThree", sgWeb, lab.AllowTCPFromGroup(82, sgClients))
	ready(t, hA, hB, hC)

	eventuallyConnects(t, client, webA, 80)
	eventuallyConnects(t, client, webB, 81)
	eventuallyConnects(t, client, webC, 82)
	blocked(t, client, webA, 81)
	blocked(t, client, webA, 82)
	blocked(t, client, webB, 80)
	blocked(t, client, webB, 82)
	blocked(t, client, webC, 80)
	blocked(t, client, webC, 81)

	// Heartbeats go under each region's own status prefix.
	for _, k := range []string{
		"/calico/felix/v2/region-regionone/host/a-compute1/status",
		"/calico/felix/v2/no-region/host/b-compute1/status",
		"/calico/felix/v2/region-RegionThree/host/c-compute1/status",
	} {
		netlab.Eventually(t, "heartbeat "+k, wait, func() bool { v, _ := l.Get(k); return v != "" })
	}
}

// TestGlobalPolicyOrder: a GlobalNetworkPolicy Deny at a lower order
// beats the namespaced Allow.
func TestGlobalPolicyOrder(t *testing.T) {
	g := newGuideLab(t)
	deny := `{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"deny-clients-to-web"},"spec":{"tier":"default","order":10,"selector":"has(sg.projectcalico.org/openstack-` + sgWeb + `)","types":["Ingress"],"ingress":[{"action":"Deny","protocol":"TCP","source":{"selector":"has(sg.projectcalico.org/openstack-` + sgClients + `)"},"destination":{"ports":[80]}}]}}`
	key := "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/deny-clients-to-web"
	g.l.Put(key, deny)
	eventuallyBlocked(t, g.client, g.web, 80)
	// Control: other traffic the namespaced policies allow is untouched.
	g.l.Put(lab.GuidePolicyKey("RegionOne"), strings.Replace(lab.GuidePolicyJSON("RegionOne", sgWeb, sgClients, true), `"ports":[80]`, `"ports":[80,81]`, 1))
	eventuallyConnects(t, g.client, g.web, 81)
	// With the Allow at a lower order (5) than the Deny (10), the Allow wins.
	g.l.Put(lab.GuidePolicyKey("RegionOne"), strings.Replace(lab.GuidePolicyJSON("RegionOne", sgWeb, sgClients, true), `"tier":"default",`, `"tier":"default","order":5,`, 1))
	eventuallyConnects(t, g.client, g.web, 80)
	g.l.Delete(key)
}

// TestRestartUnderTraffic: stopping the agent leaves enforcement in place
// (established connections survive, blocked stays blocked); a new agent
// takes over without disturbing them and keeps enforcing changes.
func TestRestartUnderTraffic(t *testing.T) {
	g := newGuideLab(t)
	conn, err := netlab.Dial(g.client.NS, g.web.IP+":80", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !netlab.Echoes(conn, time.Second) {
		t.Fatal("established connection does not work to begin with")
	}
	g.r1.Stop()
	if exited, code := g.r1.Exited(); !exited || code != 0 {
		t.Fatalf("agent did not stop cleanly: exited %v code %d", exited, code)
	}
	if !netlab.Echoes(conn, time.Second) {
		t.Error("established connection broke when the agent stopped")
	}
	if !g.client.Connects(g.web.IP, 80, time.Second) {
		t.Error("new allowed connection failed while the agent was down")
	}
	blocked(t, g.client, g.web, 81)

	g.r1.Start()
	ready(t, g.r1)
	for i := 0; i < 5; i++ { // across the takeover's first applies
		if !netlab.Echoes(conn, time.Second) {
			t.Fatalf("established connection broke after the restart (round %d)", i)
		}
		time.Sleep(200 * time.Millisecond)
	}
	blocked(t, g.client, g.web, 81)
	// Enforcement continues: a policy change after the restart applies.
	g.l.Put(lab.GuidePolicyKey("RegionOne"), strings.Replace(lab.GuidePolicyJSON("RegionOne", sgWeb, sgClients, true), `"ports":[80]`, `"ports":[81]`, 1))
	eventuallyConnects(t, g.client, g.web, 81)
	eventuallyBlocked(t, g.client, g.web, 80)
}

// TestStatusKeys: the heartbeat under region-RegionOne with its lease, and
// endpoint status keys that turn Neutron ports ACTIVE, following the VM.
func TestStatusKeys(t *testing.T) {
	g := newGuideLab(t)
	l := g.l
	prefix := "/calico/felix/v2/region-RegionOne/host/r1-compute1/"
	var hb struct {
		Time        string  `json:"time"`
		Uptime      float64 `json:"uptime"`
		FirstUpdate bool    `json:"first_update"`
	}
	netlab.Eventually(t, "heartbeat", wait, func() bool {
		v, lease := l.Get(prefix + "status")
		return v != "" && lease != 0 && json.Unmarshal([]byte(v), &hb) == nil && hb.Time != ""
	})
	if v, lease := l.Get(prefix + "last_reported_status"); v == "" || lease != 0 {
		t.Errorf("last_reported_status %q lease %d; want a value without lease", v, lease)
	}
	epKey := prefix + "workload/openstack/openstack-region-RegionOne%2f" + g.web.UUID + "/endpoint/" + g.web.Port
	netlab.Eventually(t, "endpoint status up", wait, func() bool { v, _ := l.Get(epKey); return v == `{"status":"up"}` })
	// The tap goes down and up.
	g.r1.Exec("ip", "link", "set", g.web.HostSide, "down")
	netlab.Eventually(t, "endpoint status down", wait, func() bool { v, _ := l.Get(epKey); return v == `{"status":"down"}` })
	g.r1.Exec("ip", "link", "set", g.web.HostSide, "up")
	netlab.Eventually(t, "endpoint status up again", wait, func() bool { v, _ := l.Get(epKey); return v == `{"status":"up"}` })
	// RegionTwo's host writes under its own prefix.
	r2Key := "/calico/felix/v2/region-RegionTwo/host/r2-compute1/workload/openstack/openstack-region-RegionTwo%2f" + g.client.UUID + "/endpoint/" + g.client.Port
	netlab.Eventually(t, "RegionTwo endpoint status", wait, func() bool { v, _ := l.Get(r2Key); return v == `{"status":"up"}` })
	// The VM goes: its key goes.
	g.web.Unplug()
	netlab.Eventually(t, "endpoint status deleted", wait, func() bool { v, _ := l.Get(epKey); return v == "" })
	// The agent stops: its heartbeat expires with the lease (TTL 6s in the lab).
	g.r1.Stop()
	netlab.Eventually(t, "heartbeat expired", 3*wait, func() bool { v, _ := l.Get(prefix + "status"); return v == "" })
}

// TestBadInput: a malformed value, an invalid selector, an unknown field,
// and an endpoint of another region claiming this host: the agent stays
// up, reports each, and fails closed.
func TestBadInput(t *testing.T) {
	g := newGuideLab(t)
	l := g.l
	root := "/calico/resources/v3/projectcalico.org/"

	// Malformed JSON in a policy of RegionOne: reported, nothing else changes.
	l.Put(root+"networkpolicies/openstack-region-RegionOne/garbage", `{"kind": "NetworkPolicy", "spec": [`)
	netlab.Eventually(t, "invalid resource counted", wait, func() bool {
		return g.r1.Metric(`ocelot_datastore_invalid_resources_total{kind="NetworkPolicy"}`) != ""
	})
	if !g.client.Connects(g.web.IP, 80, time.Second) {
		t.Error("a malformed unrelated value disturbed enforcement")
	}

	// An unknown field is ignored: once the agent has handled the write,
	// the policy is neither invalid nor failed closed, and still allows.
	invalid, problems := g.r1.Metric(`ocelot_datastore_invalid_resources_total{kind="NetworkPolicy"}`), g.r1.Metric("ocelot_calc_problems_total")
	l.Put(lab.GuidePolicyKey("RegionOne"), strings.Replace(lab.GuidePolicyJSON("RegionOne", sgWeb, sgClients, true), `"spec":{`, `"spec":{"futureField":{"x":1},`, 1))
	processed(t, g.r1)
	if now := g.r1.Metric(`ocelot_datastore_invalid_resources_total{kind="NetworkPolicy"}`); now != invalid {
		t.Errorf("an unknown field made the policy invalid (invalid resources %s, then %s)", invalid, now)
	}
	if now := g.r1.Metric("ocelot_calc_problems_total"); now != problems {
		t.Errorf("an unknown field made the policy fail closed (problems %q, then %q)", problems, now)
	}
	if !g.client.Connects(g.web.IP, 80, time.Second) {
		t.Error("an unknown field broke the policy")
	}

	// An invalid selector in a rule: the policy is enforced as deny-all on
	// the endpoints its (valid) selector reaches — here, the web VM.
	bad := strings.Replace(lab.GuidePolicyJSON("RegionOne", sgWeb, sgClients, true), `"selector":"has(sg.projectcalico.org/openstack-`+sgClients+`)"`, `"selector":"has(sg.projectcalico.org/openstack-`+sgClients, 1)
	l.Put(lab.GuidePolicyKey("RegionOne"), bad)
	eventuallyBlocked(t, g.client, g.web, 80)
	if !strings.Contains(g.r1.Log(), "allow-tcp-80") {
		t.Error("the invalid policy is not in the log")
	}
	l.Put(lab.GuidePolicyKey("RegionOne"), lab.GuidePolicyJSON("RegionOne", sgWeb, sgClients, true))
	eventuallyConnects(t, g.client, g.web, 80) // fixed: recovered

	// An endpoint in RegionTwo's namespace claiming r1: not programmed, its
	// tap drops, reported. The host has a path back to the VM that the
	// agent does not own, so "blocked" tests the rules; the control is the
	// same VM as a proper RegionOne endpoint, over the same path.
	stray := g.r1.AddVM("stray", 9)
	stray.PathBack()
	other := g.r1.AddVM("legit", 10)
	other.Plug(map[string]string{sgWeb: "web"})
	other.Serve(80)
	eventuallyConnects(t, g.client, other, 80) // a proper VM on the same host works
	// In web's group too: its RegionOne policy gives the egress.
	groups := map[string]string{sgClients: "clients", sgWeb: "web"}
	stray.Plug(groups)
	eventuallyConnects(t, stray, g.web, 80)
	eventuallyConnects(t, stray, other, 80)
	stray.Unplug()
	stray.Region = "RegionTwo"
	stray.Plug(groups)
	eventuallyBlocked(t, stray, g.web, 80)
	blocked(t, stray, other, 80)
	netlab.Eventually(t, "misplaced endpoint reported", wait, func() bool { return strings.Contains(g.r1.Log(), "not this region's") })

	if exited, _ := g.r1.Exited(); exited || !g.r1.Ready() {
		t.Error("the agent did not stay up and ready")
	}
}

// TestConfigReload: SIGHUP applies a live change, rejects an invalid edit
// keeping the running configuration, and exits 129 for a change that needs
// a restart.
func TestConfigReload(t *testing.T) {
	l := newLab(t)
	h := l.AddHost("r1-compute1", "RegionOne")
	ready(t, h)
	h.WriteConfig("LogSeverityScreen = debug")
	h.Signal(syscall.SIGHUP)
	netlab.Eventually(t, "live change applied", wait, func() bool { return strings.Contains(h.Log(), "configuration applied live") })

	h.WriteConfig("OpenstackRegion = Region One")
	h.Signal(syscall.SIGHUP)
	netlab.Eventually(t, "invalid edit rejected", wait, func() bool { return strings.Contains(h.Log(), "configuration edit rejected") })
	if exited, _ := h.Exited(); exited || !h.Ready() {
		t.Fatal("the agent stopped on an invalid edit")
	}

	h.WriteConfig("ChainInsertMode = append") // an edit noticed without a signal
	netlab.Eventually(t, "restart for a non-live change", wait, func() bool { exited, _ := h.Exited(); return exited })
	if _, code := h.Exited(); code != 129 {
		t.Errorf("exit code %d, want 129", code)
	}
}
