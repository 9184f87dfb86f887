package datastore

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"ocelot/datastore/resource"
	"ocelot/internal/backoff"
)

// StatusConfig configures the StatusWriter; every field may change live.
type StatusConfig struct {
	Hostname     string
	RegionString string        // region-<region> or no-region
	Interval     time.Duration // heartbeat period (ReportingIntervalSecs); 0 turns it off
	TTL          time.Duration // heartbeat lease (ReportingTTLSecs)

	EndpointReporting bool          // EndpointReportingEnabled
	EndpointDelay     time.Duration // EndpointReportingDelaySecs: one batch of writes per delay
}

// EndpointStatusID identifies a local endpoint by Felix's v1 identity.
type EndpointStatusID struct {
	Orchestrator string
	WorkloadID   string // "<namespace>/<workload>"
	EndpointID   string
}

// Endpoint statuses.
const (
	StatusUp   = "up"
	StatusDown = "down"
)

// sweepEvery is how many endpoint-report periods pass between full checks
// of the endpoint status keys against what the agent believes (as Felix).
const sweepEvery = 180

// StatusWriter writes what the Neutron driver reads: the agent heartbeat
// (status with a lease, last_reported_status without) and, when enabled,
// one {"status": "up"|"down"} key per local endpoint and one
// {"status": "up"|"down"|"error"} key per local host endpoint.
type StatusWriter struct {
	cli     *clientv3.Client
	log     *slog.Logger
	metrics *Metrics
	start   time.Time

	mu          sync.Mutex
	cfg         StatusConfig
	firstUpdate bool
	prevLease   clientv3.LeaseID
	desired     map[string]string   // endpoint key -> status
	dirty       map[string]struct{} // endpoint keys to write or delete
	inSync      bool
	changed     chan struct{} // config changed
}

// NewStatusWriter returns a writer that counts its writes on m (nil: on
// instruments nobody registered); call Run to start it.
func NewStatusWriter(cli *clientv3.Client, cfg StatusConfig, log *slog.Logger, m *Metrics) *StatusWriter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &StatusWriter{cli: cli, log: log, metrics: m.orNew(), start: time.Now(), cfg: cfg, firstUpdate: true,
		desired: map[string]string{}, dirty: map[string]struct{}{}, changed: make(chan struct{}, 1)}
}

// HostPrefix is /calico/felix/v2/<region-string>/host/<hostname>/.
func (c StatusConfig) HostPrefix() string {
	return "/calico/felix/v2/" + c.RegionString + "/host/" + c.Hostname + "/"
}

// EndpointKey is the status key of one workload endpoint.
func (c StatusConfig) EndpointKey(id EndpointStatusID) string {
	return c.HostPrefix() + "workload/" + resource.EscapeSegment(id.Orchestrator) + "/" + resource.EscapeSegment(id.WorkloadID) +
		"/endpoint/" + resource.EscapeSegment(id.EndpointID)
}

// HostEndpointPrefix is where this host's host endpoint statuses go, as
// Felix writes them: /calico/felix/v1/host/<hostname>/endpoint/ (no
// region: host endpoints have none).
func (c StatusConfig) HostEndpointPrefix() string {
	return "/calico/felix/v1/host/" + c.Hostname + "/endpoint/"
}

// HostEndpointKey is the status key of one host endpoint.
func (c StatusConfig) HostEndpointKey(id string) string {
	return c.HostEndpointPrefix() + resource.EscapeSegment(id)
}

// SetConfig applies a configuration change. Hostname and region cannot
// change while the agent runs (they restart it), so the keys stay put.
func (w *StatusWriter) SetConfig(cfg StatusConfig) {
	w.mu.Lock()
	w.cfg = cfg
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// SetEndpointStatus records a local endpoint's status; "" means the
// endpoint is gone and its key must be deleted.
func (w *StatusWriter) SetEndpointStatus(id EndpointStatusID, status string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setStatus(w.cfg.EndpointKey(id), status)
}

// SetHostEndpointStatus records a local host endpoint's status ("up",
// "down" or "error"); "" means it is gone and its key must be deleted.
func (w *StatusWriter) SetHostEndpointStatus(id, status string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setStatus(w.cfg.HostEndpointKey(id), status)
}

// setStatus records the status of a key; the caller holds mu.
func (w *StatusWriter) setStatus(key, status string) {
	if status == "" {
		if _, ok := w.desired[key]; ok {
			delete(w.desired, key)
			w.dirty[key] = struct{}{}
		}
		return
	}
	if w.desired[key] != status {
		w.desired[key] = status
		w.dirty[key] = struct{}{}
	}
}

// SetInSync tells the writer the dataplane has applied a full snapshot, so
// that its periodic sweep may delete keys of endpoints that no longer exist.
func (w *StatusWriter) SetInSync() {
	w.mu.Lock()
	w.inSync = true
	w.mu.Unlock()
}

// Run writes the heartbeat and endpoint statuses until ctx ends.
func (w *StatusWriter) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.runHeartbeat(ctx) }()
	go func() { defer wg.Done(); w.runEndpoints(ctx) }()
	wg.Wait()
}

type heartbeat struct {
	Time        string  `json:"time"`
	Uptime      float64 `json:"uptime"`
	FirstUpdate bool    `json:"first_update"`
}

// runHeartbeat writes the heartbeat every interval; after a failure it
// retries sooner, backing off from a second (or the interval, if
// shorter) up to 5 seconds.
func (w *StatusWriter) runHeartbeat(ctx context.Context) {
	next := time.Now()
	var retry backoff.Backoff
	for {
		w.mu.Lock()
		interval := w.cfg.Interval
		w.mu.Unlock()
		var tick <-chan time.Time
		var t *time.Timer
		if interval > 0 {
			t = time.NewTimer(time.Until(next))
			tick = t.C
		}
		select {
		case <-ctx.Done():
		case <-w.changed:
		case <-tick:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		if tick == nil || time.Now().Before(next) {
			continue // woken by a configuration change
		}
		if err := w.ReportNow(ctx); err != nil {
			retry.Min, retry.Max, retry.Jitter = min(interval, time.Second), min(interval, 5*time.Second), 0.2
			delay := retry.Next()
			w.log.Warn("writing the agent heartbeat failed", "err", err, "retry_in", delay)
			next = time.Now().Add(delay)
			continue
		}
		retry.Reset()
		next = time.Now().Add(interval)
	}
}

// ReportNow writes the heartbeat once: status under a fresh lease of TTL,
// then last_reported_status without one. The previous lease is revoked
// once nothing is attached to it.
func (w *StatusWriter) ReportNow(ctx context.Context) error {
	w.mu.Lock()
	cfg, first, prev := w.cfg, w.firstUpdate, w.prevLease
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ttl := int64(cfg.TTL / time.Second)
	if ttl < 1 {
		ttl = 1
	}
	lease, err := w.cli.Grant(ctx, ttl)
	if err != nil {
		w.metrics.statusWrites.WithLabelValues("heartbeat", "error").Inc()
		return fmt.Errorf("granting a %ds lease: %w", ttl, err)
	}
	value, _ := json.Marshal(heartbeat{
		Time:        time.Now().UTC().Format(time.RFC3339),
		Uptime:      time.Since(w.start).Seconds(),
		FirstUpdate: first,
	})
	_, err = w.cli.Txn(ctx).Then(
		clientv3.OpPut(cfg.HostPrefix()+"status", string(value), clientv3.WithLease(lease.ID)),
		clientv3.OpPut(cfg.HostPrefix()+"last_reported_status", string(value)),
	).Commit()
	if err != nil {
		w.metrics.statusWrites.WithLabelValues("heartbeat", "error").Inc()
		_, _ = w.cli.Revoke(context.WithoutCancel(ctx), lease.ID) // best effort: it expires anyway
		return fmt.Errorf("writing %sstatus: %w", cfg.HostPrefix(), err)
	}
	w.metrics.statusWrites.WithLabelValues("heartbeat", "ok").Inc()
	w.mu.Lock()
	w.firstUpdate = false
	w.prevLease = lease.ID
	w.mu.Unlock()
	if prev != 0 {
		_, _ = w.cli.Revoke(ctx, prev) // best effort: it expires anyway
	}
	return nil
}

func (w *StatusWriter) runEndpoints(ctx context.Context) {
	ticks := 0
	for {
		w.mu.Lock()
		delay, enabled := w.cfg.EndpointDelay, w.cfg.EndpointReporting
		w.mu.Unlock()
		if delay <= 0 {
			delay = time.Second
		}
		t := time.NewTimer(time.Duration(float64(delay) * (1 + 0.1*rand.Float64())))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !enabled {
			continue
		}
		ticks++
		if ticks%sweepEvery == 0 {
			if err := w.sweep(ctx); err != nil {
				w.log.Warn("checking endpoint status keys failed", "err", err)
			}
		}
		if err := w.FlushEndpoints(ctx); err != nil {
			w.log.Warn("writing endpoint status failed; will retry", "err", err)
		}
	}
}

// maxTxnOps stays below etcd's default --max-txn-ops (128).
const maxTxnOps = 100

// FlushEndpoints writes every pending endpoint status change now, in
// transactions of up to maxTxnOps keys. Failed keys stay pending.
func (w *StatusWriter) FlushEndpoints(ctx context.Context) error {
	type pending struct{ key, status string } // status "" deletes
	w.mu.Lock()
	work := make([]pending, 0, len(w.dirty))
	for k := range w.dirty {
		work = append(work, pending{k, w.desired[k]})
	}
	w.mu.Unlock()
	sort.Slice(work, func(i, j int) bool { return work[i].key < work[j].key })
	for start := 0; start < len(work); start += maxTxnOps {
		chunk := work[start:min(start+maxTxnOps, len(work))]
		ops := make([]clientv3.Op, len(chunk))
		for i, p := range chunk {
			if p.status == "" {
				ops[i] = clientv3.OpDelete(p.key)
			} else {
				ops[i] = clientv3.OpPut(p.key, `{"status":"`+p.status+`"}`)
			}
		}
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := w.cli.Txn(tctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			w.metrics.statusWrites.WithLabelValues("endpoint", "error").Add(float64(len(chunk)))
			return fmt.Errorf("writing %d endpoint status keys: %w", len(chunk), err)
		}
		w.metrics.statusWrites.WithLabelValues("endpoint", "ok").Add(float64(len(chunk)))
		w.mu.Lock()
		for _, p := range chunk {
			if w.desired[p.key] == p.status { // unchanged since we wrote it
				delete(w.dirty, p.key)
			}
		}
		w.mu.Unlock()
	}
	return nil
}

// sweep compares this host's endpoint status keys in etcd with the desired
// statuses, queuing fixes: stale keys are deleted, wrong ones rewritten.
func (w *StatusWriter) sweep(ctx context.Context) error {
	w.mu.Lock()
	if !w.inSync {
		w.mu.Unlock()
		return nil
	}
	prefixes := []string{w.cfg.HostPrefix() + "workload/", w.cfg.HostEndpointPrefix()}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	actual := map[string]string{}
	for _, prefix := range prefixes {
		resp, err := w.cli.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			actual[string(kv.Key)] = string(kv.Value)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, v := range actual {
		if st, ok := w.desired[k]; !ok || v != `{"status":"`+st+`"}` {
			w.dirty[k] = struct{}{}
		}
	}
	for k := range w.desired {
		if _, ok := actual[k]; !ok {
			w.dirty[k] = struct{}{}
		}
	}
	return nil
}

// Sweep runs one check of the endpoint status keys now (see sweep).
func (w *StatusWriter) Sweep(ctx context.Context) error { return w.sweep(ctx) }
