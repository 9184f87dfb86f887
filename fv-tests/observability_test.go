package fvtests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"ocelot/explain"
	"ocelot/fv-tests/lab"
	"ocelot/internal/netlab"
)

// obsLab is the guide's two regions with more to decide: a deny rule, a
// Pass in an earlier tier, a cross-region allow in a security group, a
// VM on the web VM's own host, and drop logging on RegionOne's host.
type obsLab struct {
	l                         *lab.Lab
	r1, r2                    *lab.Host
	web, local, client, other *lab.VM
}

const (
	denyKey  = lab.ResourceRoot + "globalnetworkpolicies/deny-81"
	passKey  = lab.ResourceRoot + "globalnetworkpolicies/kube-admin.admin-8443"
	dropRate = 5 // DropLogRateLimit per second, and its burst
)

func newObsLab(t *testing.T) *obsLab {
	o := &obsLab{l: newLab(t)}
	l := o.l
	o.r1 = l.AddHost("r1-compute1", "RegionOne", "DropActionOverride = LogAndDrop",
		fmt.Sprintf("DropLogRateLimit = %d/second", dropRate), fmt.Sprintf("DropLogRateLimitBurst = %d", dropRate))
	o.r2 = l.AddHost("r2-compute1", "RegionTwo")
	o.web = o.r1.AddVM("web", 5)
	o.local = o.r1.AddVM("local", 6)
	o.client = o.r2.AddVM("client", 5)
	o.other = o.r2.AddVM("other", 6)
	o.web.Serve(80, 81, 8443, 22)
	o.client.Serve(5555)
	o.other.Serve(80)
	clientsAnywhere := map[string]any{"selector": "has(sg.projectcalico.org/openstack-" + sgClients + ")", "namespaceSelector": "all()"}
	l.PutSG("RegionOne", sgWeb, lab.SGRule{"action": "Allow", "protocol": "TCP", "source": clientsAnywhere, "destination": map[string]any{"ports": []int{8443}}})
	l.PutSG("RegionOne", sgClients)
	l.PutSG("RegionTwo", sgClients)
	l.PutSG("RegionTwo", sgOther)
	web := "has(sg.projectcalico.org/openstack-" + sgWeb + ")"
	l.Put(denyKey, gnp("deny-81", "default", 10, web, `{"action":"Deny","protocol":"TCP","destination":{"ports":[81]}}`))
	l.Put(passKey, gnp("kube-admin.admin-8443", "kube-admin", 1, web,
		`{"action":"Pass","protocol":"TCP","source":{"selector":"has(sg.projectcalico.org/openstack-`+sgClients+`)"},"destination":{"ports":[8443]}}`,
		`{"action":"Deny","protocol":"TCP","destination":{"ports":[8443]}}`))
	l.Put(lab.GuidePolicyKey("RegionOne"), lab.GuidePolicyJSON("RegionOne", sgWeb, sgClients, true))
	o.web.Plug(map[string]string{sgWeb: "web"})
	o.local.Plug(map[string]string{sgClients: "clients"})
	o.client.Plug(map[string]string{sgClients: "clients"})
	o.other.Plug(map[string]string{sgOther: "other"})
	// An invalid resource, so that every metric the dashboard shows has a
	// series.
	l.Put(lab.ResourceRoot+"networkpolicies/openstack-region-RegionOne/garbage", `{"kind": "NetworkPolicy", "spec": [`)
	ready(t, o.r1, o.r2)
	eventuallyConnects(t, o.client, o.web, 80)
	return o
}

// gnp is a GlobalNetworkPolicy with ingress rules.
func gnp(name, tier string, order int, selector string, ingress ...string) string {
	return fmt.Sprintf(`{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":%q},`+
		`"spec":{"tier":%q,"order":%d,"selector":%q,"types":["Ingress"],"ingress":[%s]}}`, name, tier, order, selector, strings.Join(ingress, ","))
}

// TestObservability shares one lab (they take a while to build) between
// explain, the drop log, the counters and the dashboard.
func TestObservability(t *testing.T) {
	o := newObsLab(t)
	t.Run("ExplainAgreesWithTraffic", o.explainAgreesWithTraffic)
	t.Run("ExplainEndpoint", o.explainEndpoint)
	t.Run("DropLog", o.dropLog)
	t.Run("Counters", o.counters)
	t.Run("DashboardAndAlerts", o.dashboardAndAlerts)
}

// flowCase is one flow of the lab and what decides it.
type flowCase struct {
	from, to *lab.VM
	port     int
	allowed  bool
	kind     string // the deciding hop's decision
	policy   string
}

// Every flow of the lab: what the agents explain agrees with what the
// traffic does, and names the decision the case expects. A flow is
// allowed when every host that decides allows it.
func (o *obsLab) explainAgreesWithTraffic(t *testing.T) {
	ns1 := "np/openstack-region-RegionOne/"
	cases := []flowCase{
		{o.client, o.web, 80, true, "rule", ns1 + "allow-tcp-80"},            // cross-region, by namespaceSelector all()
		{o.other, o.web, 80, false, "end of tier", ""},                       // not in the group: the default drop
		{o.client, o.web, 81, false, "rule", "gnp/deny-81"},                  // a Deny rule before the allow
		{o.client, o.web, 8443, true, "rule", ns1 + "ossg.default." + sgWeb}, // Pass in kube-admin, allowed in default
		{o.other, o.web, 8443, false, "rule", "gnp/kube-admin.admin-8443"},   // no Pass for other: denied in kube-admin
		{o.client, o.web, 22, false, "end of tier", ""},
		{o.local, o.web, 80, true, "rule", ns1 + "allow-tcp-80"}, // both ends on r1: egress, then ingress
		{o.local, o.web, 81, false, "rule", "gnp/deny-81"},
		{o.web, o.client, 5555, false, "end of tier", ""}, // allowed out of r1, denied into client on r2
		{o.client, o.other, 80, false, "end of tier", ""}, // both on r2
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s -> %s:%d", c.from.Name, c.to.Name, c.port)
		var last string
		ok := netlab.Within(wait, func() bool {
			verdict, decider, text := o.explainFlow(t, c)
			traffic := c.from.Connects(c.to.IP, c.port, 700*time.Millisecond)
			last = fmt.Sprintf("explain: %s (decided by %+v), traffic connects: %v\n%s", verdict, decider, traffic, text)
			return (verdict == "allowed") == c.allowed && traffic == c.allowed &&
				decider != nil && decider.Kind == c.kind && decider.Policy == c.policy
		})
		if !ok {
			t.Errorf("%s: want allowed=%v by %s %q; got %s", name, c.allowed, c.kind, c.policy, last)
		}
	}
}

// explainFlow asks the flow's hosts about it. The verdict is "allowed"
// when every host that decides allows it; decider is the hop that denied
// it, or else the last that allowed it (the destination's ingress).
func (o *obsLab) explainFlow(t *testing.T, c flowCase) (string, *explain.Decision, string) {
	verdict := "allowed"
	var decider *explain.Decision
	var text strings.Builder
	hosts := []*lab.Host{c.from.Host, c.to.Host} // the destination's ingress last
	if c.from.Host == c.to.Host {
		hosts = hosts[:1]
	}
	for _, h := range hosts {
		out, err := h.Explain("--json", c.from.IP, c.to.IP, "tcp/"+strconv.Itoa(c.port))
		var a explain.Answer
		if err != nil || json.Unmarshal([]byte(out), &a) != nil || a.Flow == nil {
			return "error", nil, fmt.Sprintf("%s: %v %s", h.Name, err, out)
		}
		txt, _ := h.Explain(c.from.IP, c.to.IP, "tcp/"+strconv.Itoa(c.port))
		fmt.Fprintf(&text, "--- %s\n%s", h.Name, txt)
		if a.Flow.Verdict == "not decided here" {
			continue
		}
		for _, hop := range a.Flow.Hops {
			if verdict == "allowed" {
				decider = hop.DecidedBy
			}
		}
		if a.Flow.Verdict != "allowed" {
			verdict = a.Flow.Verdict
		}
	}
	return verdict, decider, text.String()
}

// What applies to the web VM, in order, with its sets and chains.
func (o *obsLab) explainEndpoint(t *testing.T) {
	out, err := o.r1.Explain("--json", o.web.HostSide)
	var a explain.Answer
	if err != nil || json.Unmarshal([]byte(out), &a) != nil || a.Endpoint == nil {
		t.Fatalf("explain %s: %v\n%s", o.web.HostSide, err, out)
	}
	e := a.Endpoint
	if e.Namespace != "openstack-region-RegionOne" || e.Region != "RegionOne" || e.Labels["sg.projectcalico.org/openstack-"+sgWeb] != "web" ||
		!slices.Contains(e.Addresses, o.web.IP+"/32") || e.ToChain != "cali-tw-"+o.web.HostSide {
		t.Errorf("identity: %+v", e)
	}
	var order []string
	for _, tier := range e.Ingress {
		for _, p := range tier.Policies {
			order = append(order, tier.Name+" "+p.ID)
		}
	}
	want := []string{"kube-admin gnp/kube-admin.admin-8443", "default gnp/deny-81", "default np/openstack-region-RegionOne/allow-tcp-80",
		"default np/openstack-region-RegionOne/ossg.default." + sgWeb}
	if !slices.Equal(order, want) {
		t.Errorf("ingress policies in order:\n %v\nwant\n %v", order, want)
	}
	// The clients group, across regions: client (RegionTwo) and local.
	found := false
	for _, s := range e.Sets {
		if strings.Contains(s.Selector, sgClients) && !strings.Contains(s.Selector, "openstack-region-RegionOne") && s.Type == "hash:net" {
			found = true
			if s.Members[0] != 2 {
				t.Errorf("the clients set across regions has %d members, want 2 (%+v)", s.Members[0], s)
			}
		}
	}
	if !found {
		t.Errorf("no cross-region clients set in %+v", e.Sets)
	}
	// Same by port ID and by address, in text.
	for _, ref := range []string{o.web.Port, o.web.IP} {
		if out, err := o.r1.Explain(ref); err != nil || !strings.Contains(out, "interface  "+o.web.HostSide) {
			t.Errorf("explain %s: %v\n%s", ref, err, out)
		}
	}
	if out, err := o.r1.Explain("198.18.99.99"); err == nil || !strings.Contains(out, "no local endpoint") {
		t.Errorf("an address no endpoint has: %v %s", err, out)
	}
}

var lineRE = regexp.MustCompile(`msg="packet denied by policy".*`)

// dropLines are the agent's drop-log lines that contain every fragment.
func dropLines(h *lab.Host, fragments ...string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(h.Log()))
	for sc.Scan() {
		line := sc.Text()
		if !lineRE.MatchString(line) {
			continue
		}
		all := true
		for _, f := range fragments {
			all = all && strings.Contains(line, f)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// A blocked connection writes one line naming the rule that denied it;
// a flood is cut to the rate limit, and what is not written is counted.
func (o *obsLab) dropLog(t *testing.T) {
	// One SYN from a known port, which the connection gives up on before
	// it would be sent again.
	syn := func(port int) {
		o.client.NS.Do(func() error {
			d := net.Dialer{LocalAddr: &net.TCPAddr{Port: port}, Timeout: 700 * time.Millisecond}
			if c, err := d.Dial("tcp", o.web.IP+":81"); err == nil {
				c.Close()
				t.Errorf("client reached web:81, which gnp/deny-81 denies")
			}
			return nil
		})
	}
	syn(40081)
	want := []string{"policy=gnp/deny-81", "rule=0", "direction=ingress", "iface=" + o.web.HostSide, "proto=tcp",
		"src=" + o.client.IP, "dst=" + o.web.IP, "sport=40081", "dport=81", "action=drop", "endpoint=openstack/openstack-region-RegionOne/" + o.web.UUID}
	netlab.Eventually(t, "the drop-log line of the blocked connection", wait, func() bool { return len(dropLines(o.r1, "sport=40081")) > 0 })
	time.Sleep(1500 * time.Millisecond) // a retransmitted SYN would have come by now
	lines := dropLines(o.r1, "sport=40081")
	if len(lines) != 1 || len(dropLines(o.r1, want...)) != 1 {
		t.Errorf("the blocked connection wrote %d lines, want one with %v:\n%s", len(lines), want, strings.Join(lines, "\n"))
	}
	// Control over the same path: an allowed connection writes nothing.
	allowed := []string{"src=" + o.client.IP, "dport=80 "}
	before := len(dropLines(o.r1, allowed...))
	if !o.client.Connects(o.web.IP, 80, time.Second) {
		t.Error("control: client cannot reach web:80")
	}
	if n := len(dropLines(o.r1, allowed...)) - before; n != 0 {
		t.Errorf("allowed traffic wrote %d drop lines", n)
	}

	// A flood of 300 datagrams denied by default: a few lines at most,
	// the rest counted as suppressed.
	suppressed0 := metric(o.r1, "ocelot_drop_log_suppressed_total")
	defaults0 := metric(o.r1, "ocelot_endpoint_default_drop_packets_total", "iface", o.web.HostSide, "direction", "ingress")
	start := time.Now()
	o.client.NS.Do(func() error {
		c, err := net.Dial("udp", o.web.IP+":5353")
		if err != nil {
			return err
		}
		defer c.Close()
		for range 300 {
			c.Write([]byte("flood"))
			time.Sleep(time.Millisecond)
		}
		return nil
	})
	netlab.Eventually(t, "suppressed drop-log lines counted", wait, func() bool {
		return metric(o.r1, "ocelot_drop_log_suppressed_total") > suppressed0
	})
	elapsed := time.Since(start).Seconds()
	lines = dropLines(o.r1, "dport=5353")
	if max := float64(dropRate) + dropRate*elapsed + 1; len(lines) == 0 || float64(len(lines)) > max {
		t.Errorf("the flood wrote %d lines in %.1fs; want between 1 and %.0f (burst %d, %d/s)", len(lines), elapsed, max, dropRate, dropRate)
	} else if !strings.Contains(lines[0], "end of tier default") || !strings.Contains(lines[0], "tier=default") {
		t.Errorf("a default drop's line does not name the end of the tier: %s", lines[0])
	}
	netlab.Eventually(t, "the default drops counted", wait, func() bool {
		return metric(o.r1, "ocelot_endpoint_default_drop_packets_total", "iface", o.web.HostSide, "direction", "ingress")-defaults0 >= 300
	})
}

// An allowed transfer of N connections moves the allowing policy's
// counter by at least N (each connection's first packet meets policy).
func (o *obsLab) counters(t *testing.T) {
	labels := []string{"policy", "np/openstack-region-RegionOne/allow-tcp-80", "direction", "ingress", "action", "allow"}
	before := metric(o.r1, "ocelot_policy_packets_total", labels...)
	bytesBefore := metric(o.r1, "ocelot_policy_bytes_total", labels...)
	const n = 20
	for i := range n {
		if !o.client.Connects(o.web.IP, 80, time.Second) {
			t.Fatalf("connection %d to web:80 failed", i)
		}
	}
	netlab.Eventually(t, fmt.Sprintf("allow-tcp-80 counted %d more packets", n), wait, func() bool {
		return metric(o.r1, "ocelot_policy_packets_total", labels...)-before >= n
	})
	if b := metric(o.r1, "ocelot_policy_bytes_total", labels...) - bytesBefore; b < n*40 {
		t.Errorf("allow-tcp-80 counted %v bytes for %d SYNs", b, n)
	}
	// The Deny rule counted the blocked attempts; the allow rule of
	// another policy did not move.
	if v := metric(o.r1, "ocelot_policy_packets_total", "policy", "gnp/deny-81", "direction", "ingress", "action", "deny"); v < 1 {
		t.Errorf("gnp/deny-81 denied %v packets, want at least one", v)
	}
}

// metric reads the sum of a metric's series on a host that carry every
// label given (name, value pairs).
func metric(h *lab.Host, name string, labels ...string) float64 {
	_, body := h.HTTP(9091, "/metrics")
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		all := true
		for i := 0; i+1 < len(labels); i += 2 {
			all = all && strings.Contains(series, labels[i]+"="+strconv.Quote(labels[i+1]))
		}
		if v, err := strconv.ParseFloat(value, 64); all && err == nil {
			sum += v
		}
	}
	return sum
}
