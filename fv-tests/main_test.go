package fvtests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"ocelot/fv-tests/lab"
	"ocelot/internal/netlab"
)

// TestMain builds the ocelot binary unless OCELOT_BIN names one (the
// Makefile builds it), then runs the tests in a namespace of their own.
// The test binary also serves as the lab's etcd members (lab.Cluster).
func TestMain(m *testing.M) {
	lab.RunEtcdMember()
	if os.Getenv("OCELOT_BIN") == "" && os.Getenv("OCELOT_TEST_NETNS") == "" {
		dir, err := os.MkdirTemp("", "ocelot-fv-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		bin := filepath.Join(dir, "ocelot")
		cmd := exec.Command("go", "build", "-o", bin, "../cmd/ocelot")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building ocelot:", err)
			os.Exit(1)
		}
		os.Setenv("OCELOT_BIN", bin)
		defer os.RemoveAll(dir)
	}
	netlab.Main(m)
}

const wait = 20 * time.Second

// newLab starts a lab with an embedded etcd and the bootstrap resources.
func newLab(t *testing.T) *lab.Lab { return newLabWithEtcd(t, "") }

// newLabWithEtcd starts a lab on an etcd already running at etcdURL
// ("": an embedded one). With OCELOT_FV_NFTABLES=1 its hosts run in
// nftables mode (make test runs the scenarios that way too).
func newLabWithEtcd(t *testing.T, etcdURL string) *lab.Lab {
	netlab.Require(t)
	l := lab.New(t, t.TempDir(), os.Getenv("OCELOT_BIN"), etcdURL)
	if os.Getenv("OCELOT_FV_NFTABLES") != "" {
		l.NFTablesMode = "Enabled"
	}
	l.Bootstrap()
	return l
}

// ready waits until every host reports ready.
func ready(t *testing.T, hosts ...*lab.Host) {
	t.Helper()
	for _, h := range hosts {
		netlab.Eventually(t, h.Name+" ready", wait, h.Ready)
	}
}

// eventuallyConnects and eventuallyBlocked poll a TCP connection until it
// succeeds or fails.
func eventuallyConnects(t *testing.T, from *lab.VM, to *lab.VM, port int) {
	t.Helper()
	netlab.Eventually(t, fmt.Sprintf("%s -> %s:%d connects", from.Name, to.Name, port), wait,
		func() bool { return from.Connects(to.IP, port, time.Second) })
}

func eventuallyBlocked(t *testing.T, from *lab.VM, to *lab.VM, port int) {
	t.Helper()
	netlab.Eventually(t, fmt.Sprintf("%s -> %s:%d blocked", from.Name, to.Name, port), wait,
		func() bool { return !from.Connects(to.IP, port, 500*time.Millisecond) })
}

// processed waits until h's agent has handled every datastore write made
// before the call: it writes a marker policy after them and waits until
// the agent counts it (etcd delivers writes in order, and the agent
// handles each batch whole before it publishes its counts), then removes
// the marker again. A check made after it cannot pass by running before
// the agent saw the change.
func processed(t *testing.T, h *lab.Host) {
	t.Helper()
	policies := func() string { return h.Metric("felix_cluster_num_policies") }
	before := policies()
	if before == "" {
		t.Fatalf("%s exports no felix_cluster_num_policies", h.Name)
	}
	h.Lab.Put(gnpKey("fv-barrier"), gnpJSON("fv-barrier", map[string]any{"selector": "has(fv-barrier-selects-nothing)"}))
	netlab.Eventually(t, h.Name+" handled the writes before the marker", wait, func() bool { return policies() != before })
	h.Lab.Delete(gnpKey("fv-barrier"))
	netlab.Eventually(t, h.Name+" handled the marker's removal", wait, func() bool { return policies() == before })
}

// blocked checks, once the state is settled, that a connection fails.
func blocked(t *testing.T, from *lab.VM, to *lab.VM, port int) {
	t.Helper()
	if from.Connects(to.IP, port, 700*time.Millisecond) {
		t.Errorf("%s -> %s:%d connected; must be blocked", from.Name, to.Name, port)
	}
}
