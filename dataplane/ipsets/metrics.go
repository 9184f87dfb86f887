package ipsets

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the set driver's instruments, by Felix's names where Felix
// has them. One set serves both families.
type Metrics struct {
	calls, errors, lines          prometheus.Counter
	netlinkChanges, netlinkErrors prometheus.Counter
	sets                          *prometheus.GaugeVec
}

// NewMetrics creates the driver's instruments and registers them on reg
// (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls:          prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_ipset_calls", Help: "ipset command executions."}),
		errors:         prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_ipset_errors", Help: "Failed ipset executions."}),
		lines:          prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_ipset_lines_executed", Help: "Lines written to ipset restore."}),
		netlinkChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocelot_ipset_netlink_changes_total", Help: "IP set member changes written over netlink."}),
		netlinkErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocelot_ipset_netlink_errors_total",
			Help: "Netlink IP set writes that failed and fell back to ipset restore."}),
		sets: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "felix_ipsets_calico", Help: "IP sets owned by the agent."}, []string{"ip_version"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.errors, m.lines, m.netlinkChanges, m.netlinkErrors, m.sets)
	}
	return m
}
