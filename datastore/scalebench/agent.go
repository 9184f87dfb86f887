package scalebench

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"ocelot/datastore"
)

// agent is one simulated compute host: the etcd half of a real agent. It
// waits for datastoreReady, streams the datastore with the project's
// Syncer, writes the heartbeat under a lease with the StatusWriter and,
// once in sync, reports its local endpoints up. Calc and the dataplane are
// left out: they cost the host, not etcd.
type agent struct {
	host   string
	cancel context.CancelFunc
	done   chan struct{}
	inSync chan struct{} // closed at the first InSync batch

	began    time.Time
	listTime time.Duration          // start to InSync; set before inSync closes
	syncer   chan *datastore.Syncer // receives the syncer once it exists

	mu       sync.Mutex
	receipts []receipt // updates received after InSync, with when
}

// receipt is an update's revision and when the agent received it.
type receipt struct {
	rev int64
	at  time.Time
}

// heartbeat is the status writer's timing (ReportingIntervalSecs, ReportingTTLSecs).
type heartbeat struct{ interval, ttl time.Duration }

// startAgent starts the agent of compute host h of the cloud, talking to
// the given etcd endpoints; metrics may be shared by all agents (nil: none).
func startAgent(endpoints []string, cloud Cloud, h int, hb heartbeat, metrics *datastore.Metrics, log *slog.Logger) *agent {
	host, region := cloud.host(h)
	ctx, cancel := context.WithCancel(context.Background())
	a := &agent{host: host, cancel: cancel, done: make(chan struct{}), inSync: make(chan struct{}), began: time.Now(),
		syncer: make(chan *datastore.Syncer, 1)}
	var local []endpoint
	for i := h * cloud.PerHost; i < min((h+1)*cloud.PerHost, cloud.Endpoints); i++ {
		local = append(local, cloud.endpoint(i))
	}
	log = log.With("host", host)
	go func() {
		defer close(a.done)
		a.run(ctx, endpoints, region, local, hb, metrics, log)
	}()
	return a
}

func (a *agent) run(ctx context.Context, endpoints []string, region string, local []endpoint, hb heartbeat, metrics *datastore.Metrics, log *slog.Logger) {
	cli, err := datastore.Connect(datastore.ClientConfig{Endpoints: endpoints}, log)
	if err != nil {
		log.Error("connecting to etcd", "err", err)
		return
	}
	defer cli.Close()
	// Start-up as the agent does it: wait until the datastore is ready.
	for {
		st, err := datastore.ReadStartupState(ctx, cli, a.host, log, metrics)
		if err == nil && st.Ready() {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	status := datastore.NewStatusWriter(cli, datastore.StatusConfig{Hostname: a.host, RegionString: "region-" + region,
		Interval: hb.interval, TTL: hb.ttl, EndpointReporting: true, EndpointDelay: time.Second}, log, metrics)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() { defer wg.Done(); status.Run(ctx) }()
	out := make(chan datastore.Batch, 16) // as cmd/ocelot
	// As cmd/ocelot: the watch gets a connection of its own (Client).
	syncer := datastore.NewSyncer(cli, datastore.SyncerConfig{Hostname: a.host, Namespace: namespace(region), Log: log,
		Client: datastore.ClientConfig{Endpoints: endpoints}, Metrics: metrics})
	a.syncer <- syncer
	go func() {
		defer wg.Done()
		syncer.Run(ctx, out)
	}()
	synced := false
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-out:
			if synced {
				now := time.Now()
				a.mu.Lock()
				for _, u := range b.Updates {
					a.receipts = append(a.receipts, receipt{u.Revision, now})
				}
				a.mu.Unlock()
				continue
			}
			if b.InSync {
				synced = true
				a.listTime = time.Since(a.began)
				close(a.inSync)
				for _, e := range local {
					status.SetEndpointStatus(e.statusID(), datastore.StatusUp)
				}
				status.SetInSync()
			}
		}
	}
}

// takeReceipts returns the receipts so far and starts a new list.
func (a *agent) takeReceipts() []receipt {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.receipts
	a.receipts = nil
	return r
}

// stop ends the agent and waits for it.
func (a *agent) stop() {
	a.cancel()
	<-a.done
}
