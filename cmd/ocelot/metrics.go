package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"ocelot/calc"
	"ocelot/config"
)

// agentMetrics are the agent's own instruments: the calculation graph's,
// by Felix's names, and the agent's decisions. The components register
// theirs on the same registry (datastore.NewMetrics, dataplane.New).
type agentMetrics struct {
	calcUpdateTime prometheus.Summary
	calcUpdates    *prometheus.CounterVec
	calcOutput     prometheus.Counter
	calcProblems   prometheus.Counter
	configRejected prometheus.Counter
	stats          []statGauge
}

// statGauge publishes one of calc's counts.
type statGauge struct {
	gauge prometheus.Gauge
	get   func(calc.Stats) int
}

// newAgentMetrics creates the agent's instruments and registers them on
// reg.
func newAgentMetrics(reg prometheus.Registerer) *agentMetrics {
	m := &agentMetrics{
		calcUpdateTime: prometheus.NewSummary(prometheus.SummaryOpts{Name: "felix_calc_graph_update_time_seconds",
			Help: "Time to process a datastore batch in the calculation graph.", Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}}),
		calcUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "felix_calc_graph_updates_processed",
			Help: "Datastore updates processed by the calculation graph, by kind."}, []string{"type"}),
		calcOutput: prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_calc_graph_output_events",
			Help: "Messages the calculation graph sent to the dataplane."}),
		calcProblems: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocelot_calc_problems_total",
			Help: "Resources enforced fail-closed or not programmed (see the log for which and why)."}),
		configRejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocelot_config_rejected_total",
			Help: "Configuration edits rejected as invalid; the running configuration was kept."}),
	}
	reg.MustRegister(m.calcUpdateTime, m.calcUpdates, m.calcOutput, m.calcProblems, m.configRejected)
	for _, s := range []struct {
		name, help string
		get        func(calc.Stats) int
	}{
		{"felix_active_local_endpoints", "Local endpoints programmed.", func(s calc.Stats) int { return s.LocalEndpoints }},
		{"felix_active_local_policies", "Policies that apply to local endpoints.", func(s calc.Stats) int { return s.ActivePolicies }},
		{"felix_active_local_selectors", "IP sets (selectors) that active rules use.", func(s calc.Stats) int { return s.ActiveSelectors }},
		{"felix_cluster_num_hosts", "Hosts with workload endpoints, all regions.", func(s calc.Stats) int { return s.Hosts }},
		{"felix_cluster_num_workload_endpoints", "Workload endpoints, all regions.", func(s calc.Stats) int { return s.WorkloadEndpoints }},
		{"felix_cluster_num_host_endpoints", "Host endpoints, all hosts.", func(s calc.Stats) int { return s.HostEndpoints }},
		{"felix_cluster_num_policies", "Policies known (global and this region's).", func(s calc.Stats) int { return s.Policies }},
		{"felix_cluster_num_profiles", "Profiles known.", func(s calc.Stats) int { return s.Profiles }},
		{"felix_cluster_num_tiers", "Tiers known.", func(s calc.Stats) int { return s.Tiers }},
	} {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: s.name, Help: s.help})
		reg.MustRegister(g)
		m.stats = append(m.stats, statGauge{g, s.get})
	}
	return m
}

// publishStats sets the gauges from calc's counts.
func (m *agentMetrics) publishStats(s calc.Stats) {
	for _, g := range m.stats {
		g.gauge.Set(float64(g.get(s)))
	}
}

// registerAgentInfo registers what describes the agent: its host and
// build, and the Go and process collectors when enabled.
func registerAgentInfo(reg prometheus.Registerer, cfg *config.Config) {
	host := prometheus.NewGauge(prometheus.GaugeOpts{Name: "felix_host", Help: "Always 1; labelled with the host name.",
		ConstLabels: prometheus.Labels{"host": cfg.FelixHostname}})
	host.Set(1)
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "ocelot_build_info", Help: "Always 1; labelled with the build.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit, "region": cfg.OpenstackRegion}})
	build.Set(1)
	reg.MustRegister(host, build)
	if cfg.PrometheusGoMetricsEnabled {
		reg.MustRegister(collectors.NewGoCollector())
	}
	if cfg.PrometheusProcessMetricsEnabled {
		reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
}
