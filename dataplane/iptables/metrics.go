package iptables

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the table driver's instruments, by Felix's names. One set
// serves both families (the ip_version label tells them apart).
type Metrics struct {
	saveCalls, saveErrors, restoreCalls, restoreErrors prometheus.Counter
	linesExecuted                                      *prometheus.CounterVec
	chains, rules                                      *prometheus.GaugeVec
	refused                                            *prometheus.GaugeVec
	isolations                                         *prometheus.CounterVec
}

// NewMetrics creates the driver's instruments and registers them on reg
// (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		saveCalls:     prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_iptables_save_calls", Help: "iptables-save executions."}),
		saveErrors:    prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_iptables_save_errors", Help: "Failed iptables-save executions."}),
		restoreCalls:  prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_iptables_restore_calls", Help: "iptables-restore executions."}),
		restoreErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_iptables_restore_errors", Help: "Failed iptables-restore executions."}),
		linesExecuted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "felix_iptables_lines_executed",
			Help: "Lines written to iptables-restore."}, []string{"ip_version", "table"}),
		chains: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "felix_iptables_chains", Help: "Chains programmed."}, []string{"ip_version", "table"}),
		rules:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "felix_iptables_rules", Help: "Rules programmed."}, []string{"ip_version", "table"}),
		refused: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ocelot_iptables_refused_chains",
			Help: "Changes the kernel refused and that are held back (a chain enforced as a drop, a previous version kept, a stale chain left)."},
			[]string{"ip_version"}),
		isolations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ocelot_iptables_restore_isolations_total",
			Help: "Restores that failed twice and were written table by table to isolate what the kernel refuses."},
			[]string{"ip_version"}),
	}
	if reg != nil {
		reg.MustRegister(m.saveCalls, m.saveErrors, m.restoreCalls, m.restoreErrors, m.linesExecuted, m.chains, m.rules, m.refused, m.isolations)
	}
	return m
}
