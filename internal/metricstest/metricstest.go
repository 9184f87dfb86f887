package metricstest

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Recorder is a Registerer that records the names of the metrics
// registered through it.
type Recorder struct {
	prometheus.Registerer
	Names map[string]bool
}

// NewRecorder records what is registered on a fresh registry.
func NewRecorder() *Recorder {
	return &Recorder{Registerer: prometheus.NewRegistry(), Names: map[string]bool{}}
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// Register records the collector's metric names and registers it.
func (r *Recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.Names[m[1]] = true
		}
	}
	return r.Registerer.Register(c)
}

// MustRegister registers the collectors, panicking on an error.
func (r *Recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// READMERows returns the metric names README's metrics table lists, by
// row title ("calculation", "datastore", ...). readme is the path to
// README.md.
func READMERows(t testing.TB, readme string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "\n## Metrics\n")
	if !ok {
		t.Fatalf("%s has no Metrics section", readme)
	}
	table, _, _ = strings.Cut(table, "\n## ")
	row := regexp.MustCompile(`^\| ([a-z ]+) \| (.*)\|$`)
	name := regexp.MustCompile("`([a-z_]+)`")
	out := map[string][]string{}
	for line := range strings.SplitSeq(table, "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, n := range name.FindAllStringSubmatch(m[2], -1) {
			out[m[1]] = append(out[m[1]], n[1])
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s's Metrics section has no table rows", readme)
	}
	return out
}
