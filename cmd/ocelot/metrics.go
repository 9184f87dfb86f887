package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"ocelot/calc"
	"ocelot/config"
	"ocelot/datastore"
)

// Metrics owned by the agent: the calculation graph's, by Felix's names.
var (
	calcUpdateTime = prometheus.NewSummary(prometheus.SummaryOpts{Name: "felix_calc_graph_update_time_seconds",
		Help: "Time to process a datastore batch in the calculation graph.", Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}})
	calcUpdates = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "felix_calc_graph_updates_processed",
		Help: "Datastore updates processed by the calculation graph, by kind."}, []string{"type"})
	calcOutput = prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_calc_graph_output_events",
		Help: "Messages the calculation graph sent to the dataplane."})
	calcProblems = prometheus.NewCounter(prometheus.CounterOpts{Name: "ocelot_calc_problems_total",
		Help: "Resources enforced fail-closed or not programmed (see the log for which and why)."})
	configRejected = prometheus.NewCounter(prometheus.CounterOpts{Name: "ocelot_config_rejected_total",
		Help: "Configuration edits rejected as invalid; the running configuration was kept."})
	gauges = map[string]prometheus.Gauge{}
)

var statGauges = []struct {
	name, help string
	get        func(calc.Stats) int
}{
	{"felix_active_local_endpoints", "Local endpoints programmed.", func(s calc.Stats) int { return s.LocalEndpoints }},
	{"felix_active_local_policies", "Policies that apply to local endpoints.", func(s calc.Stats) int { return s.ActivePolicies }},
	{"felix_active_local_selectors", "IP sets (selectors) that active rules use.", func(s calc.Stats) int { return s.ActiveSelectors }},
	{"felix_cluster_num_hosts", "Hosts with workload endpoints, all regions.", func(s calc.Stats) int { return s.Hosts }},
	{"felix_cluster_num_workload_endpoints", "Workload endpoints, all regions.", func(s calc.Stats) int { return s.WorkloadEndpoints }},
	{"felix_cluster_num_policies", "Policies known (global and this region's).", func(s calc.Stats) int { return s.Policies }},
	{"felix_cluster_num_profiles", "Profiles known.", func(s calc.Stats) int { return s.Profiles }},
	{"felix_cluster_num_tiers", "Tiers known.", func(s calc.Stats) int { return s.Tiers }},
}

// newRegistry registers every metric the agent exports.
func newRegistry(cfg *config.Config) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(calcUpdateTime, calcUpdates, calcOutput, calcProblems, configRejected)
	for _, g := range statGauges {
		gauges[g.name] = prometheus.NewGauge(prometheus.GaugeOpts{Name: g.name, Help: g.help})
		r.MustRegister(gauges[g.name])
	}
	host := prometheus.NewGauge(prometheus.GaugeOpts{Name: "felix_host", Help: "Always 1; labelled with the host name.",
		ConstLabels: prometheus.Labels{"host": cfg.FelixHostname}})
	host.Set(1)
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "ocelot_build_info", Help: "Always 1; labelled with the build.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit, "region": cfg.OpenstackRegion}})
	build.Set(1)
	r.MustRegister(host, build)
	r.MustRegister(datastore.Collectors()...)
	if cfg.PrometheusGoMetricsEnabled {
		r.MustRegister(collectors.NewGoCollector())
	}
	if cfg.PrometheusProcessMetricsEnabled {
		r.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return r
}

func publishStats(s calc.Stats) {
	for _, g := range statGauges {
		if m := gauges[g.name]; m != nil {
			m.Set(float64(g.get(s)))
		}
	}
}
