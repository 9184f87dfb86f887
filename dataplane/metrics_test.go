package dataplane

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"ocelot/contract"
	"ocelot/dataplane/internal/fakekernel"
	"ocelot/internal/metricstest"
)

// The dataplane and its drivers register, on the Registerer given to the
// dataplane, every metric README lists for them, whichever the backend,
// and README lists every metric they register; two dataplanes on two
// registries do not collide (nothing is package-global).
func TestRegistersTheMetricsREADMEPromises(t *testing.T) {
	reg := metricstest.NewRecorder()
	if _, err := newDataplane(testConfig(t), reg, fakeKernel(fakekernel.New())); err != nil {
		t.Fatal(err)
	}
	if _, err := newDataplane(testConfig(t), prometheus.NewRegistry(), fakeKernel(fakekernel.New())); err != nil {
		t.Fatal(err)
	}
	rows := metricstest.READMERows(t, "../README.md")
	listed := map[string]bool{}
	for _, names := range rows {
		for _, n := range names {
			listed[n] = true
		}
	}
	for _, row := range []string{"dataplane", "conntrack", "iptables", "nftables", "ipset", "policy decisions", "drop log"} {
		if len(rows[row]) < 2 {
			t.Errorf("README's %s row lists %v", row, rows[row])
		}
		for _, n := range rows[row] {
			if !reg.Names[n] {
				t.Errorf("README's %s row lists %s, which the dataplane does not register", row, n)
			}
		}
	}
	for n := range reg.Names {
		if !listed[n] {
			t.Errorf("the dataplane registers %s, and README's metrics table does not list it", n)
		}
	}
}

// felix_int_dataplane_messages counts each message under its type's name,
// as Felix does.
func TestMessagesCountedByType(t *testing.T) {
	d, err := newDataplane(testConfig(t), prometheus.NewRegistry(), fakeKernel(fakekernel.New()))
	if err != nil {
		t.Fatal(err)
	}
	d.onMessages([]contract.Message{contract.PolicyRemove{}, contract.PolicyRemove{}, contract.InSync{}})
	for label, want := range map[string]float64{"PolicyRemove": 2, "InSync": 1, "PolicyUpdate": 0} {
		if got := testutil.ToFloat64(d.metrics.messages.WithLabelValues(label)); got != want {
			t.Errorf("messages{type=%q} = %v, want %v", label, got, want)
		}
	}
}
