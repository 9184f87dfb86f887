package datastore

import "github.com/prometheus/client_golang/prometheus"

// Values of felix_resync_state, as Felix reports its syncer status.
const (
	resyncStateWaiting   = 1
	resyncStateResyncing = 2
	resyncStateInSync    = 3
)

// Metrics are the datastore's instruments. One value serves an agent's
// start-up read, syncer and status writer.
type Metrics struct {
	resyncState      prometheus.Gauge
	resyncsStarted   prometheus.Counter
	invalidResources *prometheus.CounterVec
	statusWrites     *prometheus.CounterVec
}

// NewMetrics creates the instruments and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		resyncState: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "felix_resync_state",
			Help: "Datastore sync state: 1 waiting for the datastore, 2 resync in progress, 3 in sync.",
		}),
		resyncsStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "felix_resyncs_started",
			Help: "Full listings of the datastore started (start-up, compaction, reconnects).",
		}),
		invalidResources: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ocelot_datastore_invalid_resources_total",
			Help: "Stored values that failed to decode or validate, by kind; each is enforced fail-closed.",
		}, []string{"kind"}),
		statusWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ocelot_status_writes_total",
			Help: "Status keys written to the datastore, by kind (heartbeat, endpoint) and result.",
		}, []string{"kind", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.resyncState, m.resyncsStarted, m.invalidResources, m.statusWrites)
	}
	return m
}

// orNew is m, or unregistered instruments when m is nil.
func (m *Metrics) orNew() *Metrics {
	if m == nil {
		return NewMetrics(nil)
	}
	return m
}
