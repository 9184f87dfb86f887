package ipsets

import "github.com/prometheus/client_golang/prometheus"

var (
	ipsetCalls  = prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_ipset_calls", Help: "ipset command executions."})
	ipsetErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_ipset_errors", Help: "Failed ipset executions."})
	ipsetLines  = prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_ipset_lines_executed", Help: "Lines written to ipset restore."})
	// Member changes written over netlink instead of an ipset run.
	netlinkChanges = prometheus.NewCounter(prometheus.CounterOpts{Name: "ocelot_ipset_netlink_changes_total", Help: "IP set member changes written over netlink."})
	netlinkErrors  = prometheus.NewCounter(prometheus.CounterOpts{Name: "ocelot_ipset_netlink_errors_total", Help: "Netlink IP set writes that failed and fell back to ipset restore."})
	// Calico is set by the owner of the drivers after each apply.
	Calico = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "felix_ipsets_calico", Help: "IP sets owned by the agent."}, []string{"ip_version"})
)

// Collectors returns the package's metrics for registration.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{ipsetCalls, ipsetErrors, ipsetLines, netlinkChanges, netlinkErrors, Calico}
}
