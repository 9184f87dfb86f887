package nftables

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the driver's instruments, by Felix's nftables names. One
// set serves both families (the ip_version label tells them apart).
type Metrics struct {
	calls, errors, listCalls, listErrors, setCalls, setErrors prometheus.Counter
	chains, rules, sets                                       *prometheus.GaugeVec
}

// NewMetrics creates the driver's instruments and registers them on reg
// (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls:      prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_nft_calls", Help: "nftables write transactions."}),
		errors:     prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_nft_errors", Help: "Failed nftables write transactions."}),
		listCalls:  prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_nft_list_calls", Help: "Reads of the nftables table."}),
		listErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_nft_list_errors", Help: "Failed reads of the nftables table."}),
		setCalls:   prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_nft_set_calls", Help: "nftables transactions that changed set elements."}),
		setErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_nft_set_errors", Help: "Failed nftables transactions that changed set elements."}),
		chains:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "felix_nft_chains", Help: "Chains in the calico table."}, []string{"ip_version"}),
		rules:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "felix_nft_rules", Help: "Rules in the calico table."}, []string{"ip_version"}),
		sets:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "felix_nft_sets", Help: "IP sets in the calico table."}, []string{"ip_version"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.errors, m.listCalls, m.listErrors, m.setCalls, m.setErrors, m.chains, m.rules, m.sets)
	}
	return m
}
