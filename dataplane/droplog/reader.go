package droplog

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ocelot/contract"
	"ocelot/dataplane/rules"
	"ocelot/internal/backoff"
)

// Source is where logged packets come from: the NFLOG group's netlink
// socket (NFLOG), or a test's fake.
type Source interface {
	// Read waits (a second at most) for logged packets and returns those
	// that arrived, with the number the kernel could not deliver because
	// the reader was behind.
	Read() (pkts []Packet, lost int, err error)
	Close() error
}

// Resolver names what a logged packet hit, from the dataplane's state.
// It is called from the reader's goroutine.
type Resolver interface {
	// Decision is the denial a prefix logs; false for a prefix that is
	// not one of the programmed rules'.
	Decision(prefix string) (rules.DropRef, bool)
	// Endpoint is the local endpoint that owns an interface.
	Endpoint(iface string) (contract.EndpointID, bool)
}

// Reader writes one line per logged denial, within its rate limit.
type Reader struct {
	Open    func() (Source, error)
	Resolve Resolver
	IfName  func(index uint32) string // "" when unknown
	Rate    float64                   // lines per second
	Burst   int
	Accept  bool // the denials are accepted (DropActionOverride LogAndAccept)
	Log     *slog.Logger
	Metrics *Metrics

	now    func() time.Time
	tokens float64
	last   time.Time
}

// Run opens the source, retrying with back-off while it cannot, and
// handles what it reads until ctx ends.
func (r *Reader) Run(ctx context.Context) {
	retry := backoff.Backoff{Min: time.Second, Max: time.Minute}
	for ctx.Err() == nil {
		src, err := r.Open()
		if err != nil {
			r.Metrics.errors.Inc()
			d := retry.Next()
			r.Log.Error("cannot read the drop log; retrying", "err", err, "retry_in", d)
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
			continue
		}
		retry.Reset()
		r.Log.Info("reading the drop log")
		err = r.read(ctx, src)
		_ = src.Close() // the next iteration opens a fresh socket
		if err != nil && ctx.Err() == nil {
			r.Metrics.errors.Inc()
			r.Log.Error("reading the drop log failed; reopening", "err", err)
		}
	}
}

func (r *Reader) read(ctx context.Context, src Source) error {
	for ctx.Err() == nil {
		pkts, lost, err := src.Read()
		r.Metrics.lost.Add(float64(lost))
		if err != nil {
			return err
		}
		for _, p := range pkts {
			r.Handle(p)
		}
	}
	return nil
}

// Handle writes a packet's line, or counts it as suppressed when the rate
// limit is spent.
func (r *Reader) Handle(p Packet) {
	if !r.allow() {
		r.Metrics.suppressed.Inc()
		return
	}
	ref, ok := r.Resolve.Decision(p.Prefix)
	if !ok {
		r.Metrics.unknown.Inc()
		r.Log.Debug("drop log: a packet under a prefix no programmed rule has", "prefix", p.Prefix)
		return
	}
	t, ok := parseTuple(p.Payload)
	if !ok {
		r.Metrics.lost.Inc()
		return
	}
	dev := p.InDev // egress: the packet came from the workload
	if ref.Inbound {
		dev = p.OutDev // ingress: it was going to the workload
	}
	iface := ""
	if r.IfName != nil && dev != 0 {
		iface = r.IfName(dev)
	}
	endpoint := ""
	if id, ok := r.Resolve.Endpoint(iface); ok {
		endpoint = id.String()
	}
	action := "drop"
	if r.Accept {
		action = "accept (DropActionOverride)"
	}
	attrs := []any{"endpoint", endpoint, "iface", iface, "direction", direction(ref.Inbound), "decided_by", ref.String()}
	switch {
	case ref.Policy != (contract.PolicyID{}):
		attrs = append(attrs, "policy", ref.Policy.String(), "rule", ref.Rule)
	case ref.Profile != "":
		attrs = append(attrs, "profile", ref.Profile, "rule", ref.Rule)
	case ref.Tier != "":
		attrs = append(attrs, "tier", ref.Tier)
	}
	attrs = append(attrs, "proto", protoName(t.Proto), "src", t.Src.String(), "dst", t.Dst.String())
	if t.ICMPType >= 0 {
		attrs = append(attrs, "icmp_type", t.ICMPType, "icmp_code", t.ICMPCode)
	} else if t.SrcPort != 0 || t.DstPort != 0 {
		attrs = append(attrs, "sport", t.SrcPort, "dport", t.DstPort)
	}
	attrs = append(attrs, "action", action)
	r.Metrics.lines.Inc()
	r.Log.Info("packet denied by policy", attrs...)
}

// allow takes a token from the bucket: Rate per second, Burst at most.
func (r *Reader) allow() bool {
	now := time.Now()
	if r.now != nil {
		now = r.now()
	}
	if r.last.IsZero() {
		r.tokens = float64(r.Burst)
	} else {
		r.tokens = min(float64(r.Burst), r.tokens+now.Sub(r.last).Seconds()*r.Rate)
	}
	r.last = now
	if r.tokens < 1 {
		return false
	}
	r.tokens--
	return true
}

func direction(inbound bool) string {
	if inbound {
		return "ingress"
	}
	return "egress"
}

func protoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	case 6, 17, 132:
		return contract.ProtoName(p)
	}
	return strconv.Itoa(int(p))
}

// Metrics are the drop log's counters.
type Metrics struct {
	lines, suppressed, lost, unknown, errors prometheus.Counter
}

// NewMetrics creates the counters and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &Metrics{
		lines:      c("ocelot_drop_log_lines_total", "Policy denials written to the log, one line each."),
		suppressed: c("ocelot_drop_log_suppressed_total", "Policy denials the agent read but did not write: over DropLogRateLimit."),
		lost:       c("ocelot_drop_log_lost_total", "Logged packets the kernel could not deliver (the reader was behind) or the agent could not read."),
		unknown:    c("ocelot_drop_log_unknown_total", "Packets in the drop log's NFLOG group under a prefix no programmed rule has."),
		errors:     c("ocelot_drop_log_errors_total", "Failures to open or read the drop log's NFLOG socket."),
	}
	if reg != nil {
		reg.MustRegister(m.lines, m.suppressed, m.lost, m.unknown, m.errors)
	}
	return m
}
