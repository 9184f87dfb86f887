package datastore

import "github.com/prometheus/client_golang/prometheus"

// Values of felix_resync_state, as Felix reports its syncer status.
const (
	resyncStateWaiting   = 1
	resyncStateResyncing = 2
	resyncStateInSync    = 3
)

var (
	resyncState = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "felix_resync_state",
		Help: "Datastore sync state: 1 waiting for the datastore, 2 resync in progress, 3 in sync.",
	})
	resyncsStarted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "felix_resyncs_started",
		Help: "Full listings of the datastore started (start-up, compaction, reconnects).",
	})
	invalidResources = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ocelot_datastore_invalid_resources_total",
		Help: "Stored values that failed to decode or validate, by kind; each is enforced fail-closed.",
	}, []string{"kind"})
	statusWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ocelot_status_writes_total",
		Help: "Status keys written to the datastore, by kind (heartbeat, endpoint) and result.",
	}, []string{"kind", "result"})
)

// Collectors returns the package's metrics for registration.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{resyncState, resyncsStarted, invalidResources, statusWrites}
}
