package dataplane

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"ocelot/dataplane/internal/fakekernel"
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

// The dataplane and its drivers register, on the Registerer given to the
// dataplane, every metric README lists for them; two dataplanes on two
// registries do not collide (nothing is package-global).
func TestRegistersTheMetricsREADMEPromises(t *testing.T) {
	reg := &registered{Registerer: prometheus.NewRegistry(), names: map[string]bool{}}
	if _, err := newDataplane(testConfig(t), reg, fakeKernel(fakekernel.New())); err != nil {
		t.Fatal(err)
	}
	if _, err := newDataplane(testConfig(t), prometheus.NewRegistry(), fakeKernel(fakekernel.New())); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, line := range strings.Split(string(readme), "\n") {
		if !slices.ContainsFunc([]string{"dataplane", "iptables", "ipset", "policy decisions", "drop log"}, func(row string) bool {
			return strings.HasPrefix(line, "| "+row+" |")
		}) {
			continue
		}
		rows++
		for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(line, -1) {
			if !reg.names[m[1]] {
				t.Errorf("README lists %s, which the dataplane does not register", m[1])
			}
		}
	}
	if rows != 5 {
		t.Errorf("found %d of README's dataplane, iptables, ipset, policy decisions and drop log rows", rows)
	}
}
