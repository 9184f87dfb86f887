package dataplane

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	ipt "ocelot/dataplane/iptables"
	"ocelot/dataplane/rules"
)

// counterCollector reports what policy decided, from the kernel's own
// rule counters: packets and bytes each active local policy (and profile)
// allowed, denied and passed, per direction, and what each local
// endpoint's chains denied by default. It reads the filter table's
// counters (iptables-save -c, which leaves them as they are) when
// Prometheus scrapes, at most once per minInterval, and keeps running
// totals: a rule's counters start again at zero when its chain is
// rewritten, and the totals only ever grow. Series exist for the chains
// programmed now; a policy's go when its chains go.
//
// Counters count the packets policy sees: the first packet of each
// connection (the rest are accepted as established before any policy).
type counterCollector struct {
	obs         *observer
	families    []*family
	log         *slog.Logger
	minInterval time.Duration

	policyPackets, policyBytes, defaultPackets, defaultBytes *prometheus.Desc
	readErrors                                               prometheus.Counter

	mu     sync.Mutex // one collection at a time
	last   time.Time
	prev   map[ruleKey][2]uint64     // each counted rule's counters at the last read
	totals map[seriesKey]*[2]float64 // packets and bytes since the agent started
}

type ruleKey struct {
	family      int
	chain, hash string
}

type seriesKey struct {
	owner  counterOwner
	action string // allow, deny, pass; "" for an endpoint's default denials
}

func newCounterCollector(obs *observer, families []*family, log *slog.Logger) *counterCollector {
	pol := []string{"policy", "direction", "action"}
	ep := []string{"endpoint", "iface", "direction"}
	return &counterCollector{obs: obs, families: families, log: log, minInterval: time.Second,
		policyPackets: prometheus.NewDesc("ocelot_policy_packets_total",
			"Packets a local policy's rules decided (the first of each connection), by direction and action (allow, deny, pass). Policies of another kind are named profile/<name>.", pol, nil),
		policyBytes: prometheus.NewDesc("ocelot_policy_bytes_total",
			"Bytes of the packets counted by ocelot_policy_packets_total.", pol, nil),
		defaultPackets: prometheus.NewDesc("ocelot_endpoint_default_drop_packets_total",
			"Packets a local endpoint's chain denied because no policy or profile allowed them (end of tier, end of profiles).", ep, nil),
		defaultBytes: prometheus.NewDesc("ocelot_endpoint_default_drop_bytes_total",
			"Bytes of the packets counted by ocelot_endpoint_default_drop_packets_total.", ep, nil),
		readErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocelot_rule_counters_read_errors_total",
			Help: "Failures to read the kernel's rule counters."}),
		prev: map[ruleKey][2]uint64{}, totals: map[seriesKey]*[2]float64{}}
}

// Describe and Collect make the collector a prometheus.Collector.
func (c *counterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.policyPackets
	ch <- c.policyBytes
	ch <- c.defaultPackets
	ch <- c.defaultBytes
	c.readErrors.Describe(ch)
}

func (c *counterCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.last) >= c.minInterval {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c.refresh(ctx)
		cancel()
		c.last = time.Now()
	}
	for k, v := range c.totals {
		if k.owner.policy != "" {
			ch <- prometheus.MustNewConstMetric(c.policyPackets, prometheus.CounterValue, v[0], k.owner.policy, k.owner.direction, k.action)
			ch <- prometheus.MustNewConstMetric(c.policyBytes, prometheus.CounterValue, v[1], k.owner.policy, k.owner.direction, k.action)
		} else {
			ch <- prometheus.MustNewConstMetric(c.defaultPackets, prometheus.CounterValue, v[0], k.owner.endpoint, k.owner.iface, k.owner.direction)
			ch <- prometheus.MustNewConstMetric(c.defaultBytes, prometheus.CounterValue, v[1], k.owner.endpoint, k.owner.iface, k.owner.direction)
		}
	}
	c.readErrors.Collect(ch)
}

// refresh reads each family's counters and adds what each counted rule
// counted since the last read to its series' total.
func (c *counterCollector) refresh(ctx context.Context) {
	active := map[seriesKey]bool{}
	seen := map[ruleKey]bool{}
	failed := map[int]bool{}
	for _, f := range c.families {
		chains := c.obs.countedSnapshot(f.v)
		if len(chains) == 0 {
			continue
		}
		for _, cc := range chains {
			for _, k := range cc.counts {
				if k != rules.NotCounted {
					active[seriesKey{cc.owner, actionOf(k)}] = true
				}
			}
		}
		kernel, err := f.readCounters(ctx)
		if err != nil {
			failed[f.v] = true
			c.readErrors.Inc()
			c.log.Warn("cannot read the rule counters", "ip_version", f.v, "err", err)
			continue
		}
		for name, cc := range chains {
			have := kernel[name]
			if !sameRuleHashes(have, cc.hashes) {
				continue // not (yet) as rendered: read it next time
			}
			for i, k := range cc.counts {
				if k == rules.NotCounted {
					continue
				}
				rk := ruleKey{f.v, name, cc.hashes[i]}
				seen[rk] = true
				cur := [2]uint64{have[i].Packets, have[i].Bytes}
				delta := cur
				if last, ok := c.prev[rk]; ok && cur[0] >= last[0] && cur[1] >= last[1] {
					delta = [2]uint64{cur[0] - last[0], cur[1] - last[1]}
				}
				c.prev[rk] = cur
				sk := seriesKey{cc.owner, actionOf(k)}
				t := c.totals[sk]
				if t == nil {
					t = &[2]float64{}
					c.totals[sk] = t
				}
				t[0] += float64(delta[0])
				t[1] += float64(delta[1])
			}
		}
	}
	for rk := range c.prev {
		if !seen[rk] && !failed[rk.family] {
			delete(c.prev, rk)
		}
	}
	for sk := range c.totals {
		if !active[sk] {
			delete(c.totals, sk)
		}
	}
	for sk := range active {
		if c.totals[sk] == nil {
			c.totals[sk] = &[2]float64{}
		}
	}
}

func sameRuleHashes(have []ipt.RuleCounter, want []string) bool {
	if len(have) != len(want) {
		return false
	}
	for i := range want {
		if have[i].Hash != want[i] {
			return false
		}
	}
	return true
}

func actionOf(k rules.Counted) string {
	switch k {
	case rules.CountAllow:
		return "allow"
	case rules.CountDeny:
		return "deny"
	case rules.CountPass:
		return "pass"
	}
	return ""
}
