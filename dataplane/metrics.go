package dataplane

import "github.com/prometheus/client_golang/prometheus"

var (
	applyTime = prometheus.NewSummary(prometheus.SummaryOpts{Name: "felix_int_dataplane_apply_time_seconds",
		Help: "Time of each incremental dataplane apply.", Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}})
	initialResync = prometheus.NewGauge(prometheus.GaugeOpts{Name: "felix_int_dataplane_initial_resync_time_seconds",
		Help: "Time of the first complete dataplane apply."})
	applyFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_int_dataplane_failures",
		Help: "Applies that left work to retry."})
	messages = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "felix_int_dataplane_messages",
		Help: "Calc messages received, by type."}, []string{"type"})
	batchSize = prometheus.NewSummary(prometheus.SummaryOpts{Name: "felix_int_dataplane_msg_batch_size",
		Help: "Calc messages per batch.", Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}})
	ifaceBatchSize = prometheus.NewSummary(prometheus.SummaryOpts{Name: "felix_int_dataplane_iface_msg_batch_size",
		Help: "Interface states per batch.", Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}})
	routesGauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "felix_route_table_num_routes",
		Help: "Endpoint routes programmed."})
	conntrackFlushed = prometheus.NewCounter(prometheus.CounterOpts{Name: "ocelot_conntrack_entries_forgotten_total",
		Help: "Conntrack entries deleted because a rule that allowed their flow changed or went away."})
)

// Collectors returns the package's metrics for registration.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{applyTime, initialResync, applyFailures, messages, batchSize, ifaceBatchSize, routesGauge, conntrackFlushed}
}
