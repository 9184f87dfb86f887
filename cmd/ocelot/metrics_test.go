package main

import (
	"strings"
	"testing"

	"ocelot/config"
	"ocelot/datastore"
	"ocelot/internal/metricstest"
)

// The agent and the datastore register, on the registry they are given,
// every metric README lists for them (dashboards built for Felix rely on
// the names), and README lists every metric they register.
func TestAgentRegistersTheMetricsREADMEPromises(t *testing.T) {
	reg := metricstest.NewRecorder()
	newAgentMetrics(reg)
	datastore.NewMetrics(reg)
	cfg := defaultConfig(t)
	cfg.PrometheusGoMetricsEnabled, cfg.PrometheusProcessMetricsEnabled = true, true
	registerAgentInfo(reg, cfg)
	rows := metricstest.READMERows(t, "../../README.md")
	listed := map[string]bool{}
	for _, names := range rows {
		for _, n := range names {
			listed[n] = true
		}
	}
	for _, row := range []string{"calculation", "datastore", "agent"} {
		names := rows[row]
		if len(names) < 2 {
			t.Fatalf("row %s lists %v", row, names)
		}
		for _, n := range names {
			if !reg.Names[n] {
				t.Errorf("README's %s row lists %s, which is not registered", row, n)
			}
		}
	}
	for n := range reg.Names {
		if !listed[n] && !strings.HasPrefix(n, "go_") && !strings.HasPrefix(n, "process_") {
			t.Errorf("%s is registered, and README's metrics table does not list it", n)
		}
	}
	for _, prefix := range []string{"go_", "process_"} {
		found := false
		for n := range reg.Names {
			found = found || strings.HasPrefix(n, prefix)
		}
		if !found {
			t.Errorf("no %s* metrics registered", prefix)
		}
	}
}

func defaultConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, problems := config.ReadLocal(cfgFile(t, "[global]\nFelixHostname = h1\n"), nil).Resolve()
	if problems.Fatal() {
		t.Fatal(problems)
	}
	return cfg
}
