package iptables

import "github.com/prometheus/client_golang/prometheus"

var (
	saveCalls     = prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_iptables_save_calls", Help: "iptables-save executions."})
	saveErrors    = prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_iptables_save_errors", Help: "Failed iptables-save executions."})
	restoreCalls  = prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_iptables_restore_calls", Help: "iptables-restore executions."})
	restoreErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_iptables_restore_errors", Help: "Failed iptables-restore executions."})
	linesExecuted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "felix_iptables_lines_executed",
		Help: "Lines written to iptables-restore."}, []string{"ip_version", "table"})
	// Chains and Rules are set by the owner of the tables after each apply.
	Chains = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "felix_iptables_chains", Help: "Chains programmed."}, []string{"ip_version", "table"})
	Rules  = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "felix_iptables_rules", Help: "Rules programmed."}, []string{"ip_version", "table"})
)

// Collectors returns the package's metrics for registration.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{saveCalls, saveErrors, restoreCalls, restoreErrors, linesExecuted, Chains, Rules}
}
