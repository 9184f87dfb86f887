package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"ocelot/config"
	"ocelot/datastore"
)

// registered records the names of every metric registered through it.
type registered struct {
	prometheus.Registerer
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *registered) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return r.Registerer.Register(c)
}

func (r *registered) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// readmeMetrics returns the metric names README's table lists in a row.
func readmeMetrics(t *testing.T, row string) []string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "| "+row+" |") {
			var out []string
			for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(line, -1) {
				out = append(out, m[1])
			}
			return out
		}
	}
	t.Fatalf("README has no metrics row %q", row)
	return nil
}

// The agent and the datastore register, on the registry they are given,
// every metric README lists for them (dashboards built for Felix rely on
// the names).
func TestAgentRegistersTheMetricsREADMEPromises(t *testing.T) {
	reg := &registered{Registerer: prometheus.NewRegistry(), names: map[string]bool{}}
	newAgentMetrics(reg)
	datastore.NewMetrics(reg)
	cfg := defaultConfig(t)
	cfg.PrometheusGoMetricsEnabled, cfg.PrometheusProcessMetricsEnabled = true, true
	registerAgentInfo(reg, cfg)
	for _, row := range []string{"calculation", "datastore", "agent"} {
		names := readmeMetrics(t, row)
		if len(names) < 2 {
			t.Fatalf("row %s lists %v", row, names)
		}
		for _, n := range names {
			if !reg.names[n] {
				t.Errorf("README's %s row lists %s, which is not registered", row, n)
			}
		}
	}
	for _, prefix := range []string{"go_", "process_"} {
		found := false
		for n := range reg.names {
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
