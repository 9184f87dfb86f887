package selector

import "testing"

var benchSelectors = map[string]string{
	"sg-has":      "has(" + sgClients + ")",
	"policy":      "(has(" + sgWeb + ")) && projectcalico.org/namespace == 'openstack-region-RegionOne'",
	"cross-rule":  "(has(projectcalico.org/namespace)) && (has(" + sgClients + "))",
	"in-set":      "projectcalico.org/openstack-project-id in {'2f8b6e0c4d9a4b1e8c3f5a7d9e1b3c5d', 'a', 'b', 'c'}",
	"negated-mix": "!has(quarantine) && (role == 'web' || role starts with 'api-')",
}

var benchLabels = map[string]string{
	sgWeb: "web",
	"sg-name.projectcalico.org/openstack-web": "a7734e61-b545-452d-a3cd-0189cbd9747a",
	NamespaceLabel:                             nsOne,
	"projectcalico.org/orchestrator":           "openstack",
	"projectcalico.org/openstack-project-id":   "2f8b6e0c4d9a4b1e8c3f5a7d9e1b3c5d",
	"projectcalico.org/openstack-network-name": "r1-net",
	"role": "api-gateway",
}

func BenchmarkParse(b *testing.B) {
	for name, s := range benchSelectors {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEvaluate(b *testing.B) {
	for name, s := range benchSelectors {
		sel := MustParse(s)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sel.Evaluate(benchLabels)
			}
		})
	}
}
