package dataplane

import "github.com/prometheus/client_golang/prometheus"

// metrics are the dataplane's own instruments, by Felix's names where
// Felix has the same quantity. The drivers have theirs (iptables.Metrics,
// ipsets.Metrics, conntrack.Metrics), registered on the same Registerer.
type metrics struct {
	applyTime      prometheus.Summary
	initialResync  prometheus.Gauge
	applyFailures  prometheus.Counter
	messages       *prometheus.CounterVec
	batchSize      prometheus.Summary
	ifaceBatchSize prometheus.Summary
	routes         prometheus.Gauge
	inSync         prometheus.Gauge
	refusals       *prometheus.CounterVec
}

var objectives = map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}

// newMetrics creates the instruments and registers them on reg (nil: not
// registered).
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		applyTime: prometheus.NewSummary(prometheus.SummaryOpts{Name: "felix_int_dataplane_apply_time_seconds",
			Help: "Time of each incremental dataplane apply.", Objectives: objectives}),
		initialResync: prometheus.NewGauge(prometheus.GaugeOpts{Name: "felix_int_dataplane_initial_resync_time_seconds",
			Help: "Time of the first complete dataplane apply."}),
		applyFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_int_dataplane_failures",
			Help: "Applies that left work to retry."}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "felix_int_dataplane_messages",
			Help: "Calc messages received, by type."}, []string{"type"}),
		batchSize: prometheus.NewSummary(prometheus.SummaryOpts{Name: "felix_int_dataplane_msg_batch_size",
			Help: "Calc messages per batch.", Objectives: objectives}),
		ifaceBatchSize: prometheus.NewSummary(prometheus.SummaryOpts{Name: "felix_int_dataplane_iface_msg_batch_size",
			Help: "Interface states per batch.", Objectives: objectives}),
		routes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "felix_route_table_num_routes",
			Help: "Endpoint routes programmed."}),
		inSync: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ocelot_dataplane_in_sync",
			Help: "1 once the first complete apply is done and while applies succeed; 0 before, and while the last apply failed."}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ocelot_dataplane_refusals_total",
			Help: "Things the dataplane refused to program, by reason: foreign_interface (an endpoint naming an interface that is not a workload interface), host_address (an endpoint address the host itself uses)."},
			[]string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.applyTime, m.initialResync, m.applyFailures, m.messages, m.batchSize, m.ifaceBatchSize, m.routes, m.inSync, m.refusals)
	}
	return m
}
