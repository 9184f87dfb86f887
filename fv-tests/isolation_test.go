package fvtests

import (
	"strings"
	"testing"

	"ocelot/fv-tests/lab"
	"ocelot/internal/netlab"
)

// TestRefusalIsIsolated: another tool's chain jumps to a stale chain of
// Ocelot's, so the kernel refuses to delete it. The real agent holds just
// that back (the chain is flushed), says so in /readiness, stays ready,
// and keeps applying everything else; when the other tool lets go, the
// retry deletes the chain and the report clears.
func TestRefusalIsIsolated(t *testing.T) {
	l := newLab(t)
	h := l.AddHost("r1-compute1", "RegionOne")
	web, cli := h.AddVM("web", 5), h.AddVM("client", 6)
	web.Serve(80, 81)
	l.PutSG("RegionOne", sgWeb, lab.AllowTCPFromGroup(80, sgClients))
	l.PutSG("RegionOne", sgClients)
	web.Plug(map[string]string{sgWeb: "web"})
	cli.Plug(map[string]string{sgClients: "clients"})
	ready(t, h)
	eventuallyConnects(t, cli, web, 80)
	ipt := h.Iptables()
	if ipt == "" {
		t.Fatal("no iptables backend holds the agent's chains")
	}

	h.NS.MustExec(t, ipt, "-N", "cali-stale")
	h.NS.MustExec(t, ipt, "-A", "cali-stale", "-j", "ACCEPT")
	h.NS.MustExec(t, ipt, "-N", "operator")
	h.NS.MustExec(t, ipt, "-A", "operator", "-j", "cali-stale")
	readiness := func() (int, string) { return h.HTTP(9099, "/readiness") }
	netlab.Eventually(t, "/readiness names the chain held back", wait, func() bool {
		code, body := readiness()
		return code == 200 && strings.Contains(body, "cali-stale") && strings.Contains(body, "flushed")
	})
	if got := h.Metric(`ocelot_iptables_refused_chains{ip_version="4"}`); got != "1" {
		t.Errorf("ocelot_iptables_refused_chains = %q, want 1", got)
	}
	if strings.Contains(h.IptablesSave(t), "-A cali-stale -j ACCEPT") {
		t.Error("the chain that could not be deleted was not flushed")
	}

	// Everything else converges: a policy change takes effect, both ways.
	l.PutSG("RegionOne", sgWeb, lab.AllowTCPFromGroup(81, sgClients))
	eventuallyConnects(t, cli, web, 81)
	eventuallyBlocked(t, cli, web, 80)

	// The other tool lets go; the retry deletes the chain.
	h.NS.MustExec(t, ipt, "-F", "operator")
	h.NS.MustExec(t, ipt, "-X", "operator")
	netlab.Eventually(t, "the stale chain deleted and the report cleared", wait, func() bool {
		code, body := readiness()
		return code == 200 && !strings.Contains(body, "degraded") && !strings.Contains(h.IptablesSave(t), "cali-stale")
	})
}
