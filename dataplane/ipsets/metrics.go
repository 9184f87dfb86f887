package ipsets

import "github.com/prometheus/client_golang/prometheus"

var (
	ipsetCalls  = prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_ipset_calls", Help: "ipset command executions."})
	ipsetErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_ipset_errors", Help: "Failed ipset executions."})
	ipsetLines  = prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_ipset_lines_executed", Help: "Lines written to ipset restore."})
	// Calico is set by the owner of the drivers after each apply.
	Calico = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "felix_ipsets_calico", Help: "IP sets owned by the agent."}, []string{"ip_version"})
)

// Collectors returns the package's metrics for registration.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{ipsetCalls, ipsetErrors, ipsetLines, Calico}
}
