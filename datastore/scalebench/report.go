package scalebench

import (
	"fmt"
	"strings"
	"time"
)

func (r *Result) topology() string {
	if r.Proxy {
		return "through one grpc-proxy"
	}
	return "direct to the members"
}

// members sums a per-member quantity over a window.
func (w Window) members(f func(Proc) float64) float64 {
	var s float64
	for _, p := range w.Members {
		s += f(p)
	}
	return s
}

func (w Window) leader() Proc {
	for _, p := range w.Members {
		if p.Leader {
			return p
		}
	}
	return Proc{}
}

func (w Window) proxy(format string, f func(Proc) float64) string {
	if w.Proxy == nil {
		return "–"
	}
	return fmt.Sprintf(format, f(*w.Proxy))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

func perSec(b float64) string { return fmt.Sprintf("%.0f", b/1024) }

// Markdown renders one run as the tables of docs/design/datastore-scale.md.
func (r *Result) Markdown() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n### Agents %s\n\n", r.topology())
	fmt.Fprintf(&sb, "Cloud: %d keys, %.1f MiB of values, loaded in %v.\n\n", r.Keys, float64(r.ValueBytes)/(1<<20), r.LoadTime.Round(time.Millisecond))

	sb.WriteString("Standing cost (no churn: heartbeats, keepalives and the agents' freshness probes). Members summed; streams and watchers are gauges at the end; " +
		"\"watch reqs/s\" are messages on watch streams from clients (creates, progress requests); \"watches opened\" counts new watch streams in the window.\n\n")
	sb.WriteString("| agents | watch streams | watchers (m1/m2/m3) | leases | member CPU (cores) | member RSS (MiB) | member sent (KiB/s) | member ranges/s | member watch reqs/s | watches opened at members | proxy CPU | proxy RSS (MiB) | proxy ranges/s | proxy watch reqs/s | watches opened at proxy | host busy (cores) |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, l := range r.Levels {
		w := l.Idle
		var split []string
		for _, p := range w.Members {
			split = append(split, fmt.Sprintf("%.0f", p.Watchers))
		}
		fmt.Fprintf(&sb, "| %d | %.0f | %.0f (%s) | %d | %.3f | %.0f | %s | %.1f | %.1f | %.0f | %s | %s | %s | %s | %s | %.2f |\n", l.Agents,
			w.members(func(p Proc) float64 { return p.Streams }), w.members(func(p Proc) float64 { return p.Watchers }), strings.Join(split, "/"), w.Leases,
			w.members(func(p Proc) float64 { return p.CPU }), w.members(func(p Proc) float64 { return p.RSSMiB }),
			perSec(w.members(func(p Proc) float64 { return p.SentBytesPerSec })),
			w.members(func(p Proc) float64 { return p.RangesPerSec }), w.members(func(p Proc) float64 { return p.WatchReqsPerSec }),
			w.members(func(p Proc) float64 { return p.WatchStarts }),
			w.proxy("%.3f", func(p Proc) float64 { return p.CPU }), w.proxy("%.0f", func(p Proc) float64 { return p.RSSMiB }),
			w.proxy("%.1f", func(p Proc) float64 { return p.RangesPerSec }), w.proxy("%.1f", func(p Proc) float64 { return p.WatchReqsPerSec }),
			w.proxy("%.0f", func(p Proc) float64 { return p.WatchStarts }), w.HostBusy)
	}

	fmt.Fprintf(&sb, "\nChurn: endpoint updates at a fixed rate (an update is one watch event per agent). Member CPU, sent bytes and messages are the three members together. "+
		"\"µs per extra msg\" is the CPU per watch message beyond the first level's (the fan-out's own cost). Latency: etcd write → the update leaves an agent's Syncer; "+
		"\"last\" is the slowest agent per write. The event an agent receives is %.0f bytes (%.0f without the previous value).\n\n", r.EventBytes, r.EventBytesNoPrev)
	sb.WriteString("| agents | writes/s (dropped) | member CPU (cores) | leader CPU | member sent (KiB/s) | member watch msgs/s | member µs per extra msg | proxy CPU | proxy sent (KiB/s) | proxy µs per extra msg | watches opened (members / proxy) | agents' CPU | host busy (cores) | latency p50 / p99 (ms) | last agent p50 / p99 (ms) | delivered | re-lists |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	var first Window
	for i, l := range r.Levels {
		w := l.Churn
		if i == 0 {
			first = w
		}
		cpu := func(p Proc) float64 { return p.CPU }
		msgs := func(p Proc) float64 { return p.WatchMsgsPerSec }
		perMsg := func(cpu, cpu0, msgs, msgs0 float64) string {
			if i == 0 || msgs-msgs0 < max(50, msgs0/5) { // too few extra messages to divide by
				return "–"
			}
			return fmt.Sprintf("%.0f", 1e6*(cpu-cpu0)/(msgs-msgs0))
		}
		proxyPerMsg := "–"
		if w.Proxy != nil && first.Proxy != nil {
			proxyPerMsg = perMsg(w.Proxy.CPU, first.Proxy.CPU, w.Proxy.WatchMsgsPerSec, first.Proxy.WatchMsgsPerSec)
		}
		fmt.Fprintf(&sb, "| %d | %.0f (%d) | %.3f | %.3f | %s | %.0f | %s | %s | %s | %s | %.0f / %s | %.2f | %.2f | %s / %s | %s / %s | %d/%d | %.0f |\n", l.Agents,
			float64(w.Writes)/w.Duration.Seconds(), w.WriteFailures,
			w.members(cpu), w.leader().CPU, perSec(w.members(func(p Proc) float64 { return p.SentBytesPerSec })), w.members(msgs),
			perMsg(w.members(cpu), first.members(cpu), w.members(msgs), first.members(msgs)),
			w.proxy("%.3f", cpu), w.proxy("%.0f", func(p Proc) float64 { return p.SentBytesPerSec / 1024 }), proxyPerMsg,
			w.members(func(p Proc) float64 { return p.WatchStarts }), w.proxy("%.0f", func(p Proc) float64 { return p.WatchStarts }),
			w.SelfCPU, w.HostBusy, ms(w.LatP50), ms(w.LatP99), ms(w.AllP50), ms(w.AllP99), w.Received, w.Expected, w.Resyncs)
	}

	sb.WriteString("\nStart-up. The herd is the agents a level adds, started at once; the probe is one more agent started alone.\n\n")
	sb.WriteString("| agents | herd | herd all in sync | list p50 / max | member CPU per agent | members sent per agent (MiB) | member RSS after (MiB) | proxy CPU per agent | proxy sent per agent (MiB) | proxy RSS after (MiB) | proxy cache entries | probe list | probe: members sent (MiB) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, l := range r.Levels {
		h, n := l.Herd, float64(max(l.Herd.Started, 1))
		proxyCPU, proxySent, proxyRSS, cache := "–", "–", "–", "–"
		if r.Proxy && l.Idle.Proxy != nil {
			proxyCPU = (h.ProxyCPU / time.Duration(n)).Round(time.Millisecond).String()
			proxySent, proxyRSS = fmt.Sprintf("%.1f", h.ProxySent/n/(1<<20)), fmt.Sprintf("%.0f", h.ProxyRSSMiB)
			cache = fmt.Sprintf("%.0f", l.Idle.Proxy.ProxyCacheKeys)
		}
		fmt.Fprintf(&sb, "| %d | %d | %v | %v / %v | %v | %.1f | %.0f | %s | %s | %s | %s | %v | %.1f |\n", l.Agents, h.Started,
			h.Duration.Round(time.Millisecond), h.ListP50.Round(time.Millisecond), h.ListMax.Round(time.Millisecond),
			(h.MemberCPU / time.Duration(n)).Round(time.Millisecond), h.MemberSent/n/(1<<20), h.MemberRSSMiBAfter, proxyCPU, proxySent, proxyRSS, cache,
			l.Probe.List.Round(time.Millisecond), l.Probe.MemberSent/(1<<20))
	}
	return sb.String()
}

// slope is the least-squares slope of y over the levels' agent counts.
func slope(levels []Level, y func(Level) float64) float64 {
	n := float64(len(levels))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, l := range levels {
		x := float64(l.Agents)
		v := y(l)
		sx += x
		sy += v
		sxx += x * x
		sxy += x * v
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// MarginalMarkdown renders what one more agent costs in each run: the
// least-squares slope over the levels.
func MarginalMarkdown(runs ...*Result) string {
	var sb strings.Builder
	sb.WriteString("\n### What one more agent costs (least-squares slope over the levels)\n\n| per agent |")
	for _, r := range runs {
		sb.WriteString(" " + r.topology() + " |")
	}
	sb.WriteString("\n|---|" + strings.Repeat("---|", len(runs)) + "\n")
	row := func(label string, f func(r *Result) string) {
		sb.WriteString("| " + label + " |")
		for _, r := range runs {
			sb.WriteString(" " + f(r) + " |")
		}
		sb.WriteString("\n")
	}
	memberSlope := func(w func(Level) Window, f func(Proc) float64) func(*Result) float64 {
		return func(r *Result) float64 {
			return slope(r.Levels, func(l Level) float64 { return w(l).members(f) })
		}
	}
	idle := func(l Level) Window { return l.Idle }
	churn := func(l Level) Window { return l.Churn }
	cpu := func(p Proc) float64 { return p.CPU }
	row("member watchers", func(r *Result) string {
		return fmt.Sprintf("%.2f", memberSlope(idle, func(p Proc) float64 { return p.Watchers })(r))
	})
	row("member CPU, idle (millicores)", func(r *Result) string { return fmt.Sprintf("%.2f", 1000*memberSlope(idle, cpu)(r)) })
	row("member CPU, churn (millicores)", func(r *Result) string { return fmt.Sprintf("%.2f", 1000*memberSlope(churn, cpu)(r)) })
	row("member sent, churn (KiB/s)", func(r *Result) string {
		return fmt.Sprintf("%.1f", memberSlope(churn, func(p Proc) float64 { return p.SentBytesPerSec })(r)/1024)
	})
	row("member RSS (MiB)", func(r *Result) string {
		return fmt.Sprintf("%.2f", memberSlope(idle, func(p Proc) float64 { return p.RSSMiB })(r))
	})
	proxy := func(w func(Level) Window, f func(Proc) float64, scale float64, format string) func(*Result) string {
		return func(r *Result) string {
			if !r.Proxy {
				return "–"
			}
			return fmt.Sprintf(format, scale*slope(r.Levels, func(l Level) float64 { return f(*w(l).Proxy) }))
		}
	}
	row("proxy CPU, churn (millicores)", proxy(churn, cpu, 1000, "%.2f"))
	row("proxy sent, churn (KiB/s)", proxy(churn, func(p Proc) float64 { return p.SentBytesPerSec }, 1.0/1024, "%.1f"))
	row("proxy RSS (MiB)", proxy(idle, func(p Proc) float64 { return p.RSSMiB }, 1, "%.2f"))
	row("latency p99 (ms)", func(r *Result) string {
		return fmt.Sprintf("%.3f", slope(r.Levels, func(l Level) float64 { return float64(l.Churn.LatP99) / float64(time.Millisecond) }))
	})
	return sb.String()
}
