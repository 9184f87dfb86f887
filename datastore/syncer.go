package datastore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"ocelot/datastore/resource"
	"ocelot/internal/backoff"
)

// Batch is a group of updates in order. InSync is set, once, on the batch
// that completes the first full snapshot of the datastore (and only once
// clusterinformations/default says datastoreReady: true).
type Batch struct {
	Updates []resource.Update
	InSync  bool
}

// SyncerConfig says what to watch.
type SyncerConfig struct {
	Hostname  string // FelixHostname: endpoints of other hosts are reduced
	Namespace string // the local region's namespace: the only one whose NetworkPolicies and LiveMigrations are read
	PageSize  int    // keys per list request; 0 means 2000
	Log       *slog.Logger
	Metrics   *Metrics // nil: counted into instruments nobody registered

	// Client, when it lists endpoints, gives each watch a connection of
	// its own to one member, taken in turn, so that a watch that fails
	// moves to the next member. Without it the watch shares the client
	// passed to NewSyncer and gRPC chooses the member.
	Client ClientConfig
}

type watchedPrefix struct {
	kind   resource.Kind
	prefix string
}

// Syncer streams the resources of the datastore. Create with NewSyncer and
// call Run once.
type Syncer struct {
	cli      *clientv3.Client
	cfg      SyncerConfig
	log      *slog.Logger
	prefixes []watchedPrefix

	state      map[string]int64 // path -> mod revision of the value last emitted (present keys only)
	listed     bool             // the first snapshot is complete
	ready      bool             // clusterinformations/default datastoreReady
	inSyncSent bool
	rev        int64  // everything up to this revision has been emitted; a watch resumes after it
	attempt    uint64 // watches started
	next       int    // index of the endpoint the next watch connects to

	checkEvery time.Duration // how often the watch's freshness is checked
	staleAfter time.Duration // how long a watch may show no progress while behind the cluster

	mu            sync.Mutex
	status        Status
	everConnected bool
}

// Status is the syncer's connection to the datastore, as readiness reports
// it. It never affects liveness: while etcd is away the dataplane keeps
// enforcing what it has.
type Status struct {
	Connected bool      // the last listing, watch response or probe succeeded
	Since     time.Time // when Connected last changed
	Err       error     // why not, when not connected
}

// Status reports the connection state; safe to call from any goroutine.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// NewSyncer prepares a syncer for the given client.
func NewSyncer(cli *clientv3.Client, cfg SyncerConfig) *Syncer {
	if cfg.PageSize <= 0 {
		cfg.PageSize = 2000
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.Metrics = cfg.Metrics.orNew()
	s := &Syncer{cli: cli, cfg: cfg, log: cfg.Log, state: map[string]int64{},
		checkEvery: 3 * time.Second, staleAfter: 5 * time.Second,
		status: Status{Since: time.Now(), Err: errors.New("not connected yet")}}
	// Cluster-scoped kinds first, so that tiers, profiles and config are
	// known before the (many) endpoints that refer to them.
	for _, k := range []resource.Kind{
		resource.KindClusterInformation, resource.KindFelixConfiguration, resource.KindTier,
		resource.KindProfile, resource.KindGlobalNetworkPolicy, resource.KindGlobalNetworkSet,
		resource.KindHostEndpoint, resource.KindNetworkSet, resource.KindWorkloadEndpoint,
	} {
		s.prefixes = append(s.prefixes, watchedPrefix{k, resource.KindPrefix(k, "")})
	}
	// Region-scoped kinds: only the local region's driver writes what
	// this host enforces.
	s.prefixes = append(s.prefixes, watchedPrefix{resource.KindNetworkPolicy, resource.KindPrefix(resource.KindNetworkPolicy, cfg.Namespace)},
		watchedPrefix{resource.KindLiveMigration, resource.KindPrefix(resource.KindLiveMigration, cfg.Namespace)})
	return s
}

// Run lists and watches until ctx ends, sending batches to out. It never
// returns on datastore errors: it backs off and carries on, and while etcd
// is away it sends nothing. A watch that ends is resumed after the last
// revision emitted; only a compaction past that revision costs a re-list.
func (s *Syncer) Run(ctx context.Context, out chan<- Batch) error {
	bo := backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}
	s.cfg.Metrics.resyncState.Set(resyncStateWaiting)
	needList := true
	for ctx.Err() == nil {
		if needList {
			rev, err := s.resync(ctx, out)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				s.setDisconnected(err)
				s.log.Warn("listing the datastore failed; retrying", "err", err, "retry_in", bo.Peek())
				_ = bo.Wait(ctx)
				continue
			}
			s.setConnected()
			s.rev, needList = rev, false
		}
		created, err := s.watch(ctx, out, &bo)
		if ctx.Err() != nil {
			break
		}
		// While etcd is unreachable (reported once) watches fail one
		// after another: say so quietly.
		level := slog.LevelWarn
		if !s.Status().Connected {
			level = slog.LevelDebug
		}
		switch {
		case errors.Is(err, rpctypes.ErrCompacted):
			s.log.Info("watch fell behind a compaction; re-listing", "revision", s.rev)
			needList = true
		case errors.Is(err, errWatchStale):
			s.log.Log(ctx, level, "watch stopped following the cluster; moving to another member", "err", err, "revision", s.rev)
			continue // the attempt has waited long enough already
		default:
			// A watch that ends after it ran is a member's failure, and
			// the next one goes to another member: readiness does not
			// flap for it (the probe says whether etcd is reachable).
			// One that cannot even start is the datastore's.
			if !created {
				s.setDisconnected(err)
			}
			s.log.Log(ctx, level, "watch failed; resuming", "err", err, "revision", s.rev)
		}
		_ = bo.Wait(ctx)
	}
	return ctx.Err()
}

func (s *Syncer) setConnected() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status.Connected {
		return
	}
	if s.everConnected {
		s.log.Info("datastore connection restored", "down_for", time.Since(s.status.Since).Round(time.Millisecond))
	}
	s.everConnected = true
	s.status = Status{Connected: true, Since: time.Now()}
}

func (s *Syncer) setDisconnected(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status.Connected {
		s.log.Warn("datastore connection lost; enforcing what is programmed", "err", err)
		s.status.Since = time.Now()
	}
	s.status.Connected, s.status.Err = false, err
}

func (s *Syncer) send(ctx context.Context, out chan<- Batch, b Batch) error {
	if len(b.Updates) == 0 && !b.InSync {
		return nil
	}
	if !s.inSyncSent && s.listed && s.ready {
		b.InSync = true
	}
	select {
	case out <- b:
		if b.InSync {
			s.inSyncSent = true
			s.cfg.Metrics.resyncState.Set(resyncStateInSync)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// resync lists every prefix at one revision and emits the difference from
// what was emitted before: updates for new and changed keys, deletes for
// keys that vanished, nothing for unchanged ones. It returns the revision.
func (s *Syncer) resync(ctx context.Context, out chan<- Batch) (int64, error) {
	s.cfg.Metrics.resyncsStarted.Inc()
	if s.inSyncSent {
		s.cfg.Metrics.resyncState.Set(resyncStateResyncing)
	}
	var rev int64
	began := time.Now()
	seen := make(map[string]struct{}, len(s.state))
	for _, p := range s.prefixes {
		err := s.list(ctx, p.prefix, &rev, func(kvs []*mvccpb.KeyValue) error {
			var changed []*mvccpb.KeyValue
			for _, kv := range kvs {
				path := string(kv.Key)
				seen[path] = struct{}{}
				if r, ok := s.state[path]; !ok || r != kv.ModRevision {
					changed = append(changed, kv)
				}
			}
			var b Batch
			for _, d := range s.decodeAll(changed) {
				if u, ok := s.record(d); ok {
					b.Updates = append(b.Updates, u)
				}
			}
			return s.send(ctx, out, b)
		})
		if err != nil {
			return 0, err
		}
	}
	var b Batch
	for path := range s.state {
		if _, ok := seen[path]; !ok {
			if u, ok := s.deleted(path, rev); ok {
				b.Updates = append(b.Updates, u)
			}
		}
	}
	s.listed = true
	s.log.Debug("datastore listed", "keys", len(seen), "revision", rev, "took", time.Since(began))
	if !s.ready {
		s.log.Warn("datastore not ready: waiting for clusterinformations/default with datastoreReady: true before reporting in sync")
	}
	b.InSync = !s.inSyncSent && s.ready
	return rev, s.send(ctx, out, b)
}

// list reads a prefix page by page at revision *rev (set from the first
// response when 0), fetching the next page while the current one is handled.
func (s *Syncer) list(ctx context.Context, prefix string, rev *int64, handle func([]*mvccpb.KeyValue) error) error {
	end := clientv3.GetPrefixRangeEnd(prefix)
	type page struct {
		resp *clientv3.GetResponse
		err  error
	}
	fetch := func(from string) <-chan page {
		ch := make(chan page, 1)
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(s.cfg.PageSize))}
		if *rev != 0 {
			opts = append(opts, clientv3.WithRev(*rev))
		}
		go func() {
			// A member without a leader refuses at once, and the client
			// retries on the next member instead of waiting for a timeout.
			resp, err := s.cli.Get(clientv3.WithRequireLeader(ctx), from, opts...)
			ch <- page{resp, err}
		}()
		return ch
	}
	next := fetch(prefix)
	for {
		pg := <-next
		if pg.err != nil {
			return fmt.Errorf("listing %s: %w", prefix, pg.err)
		}
		if *rev == 0 {
			*rev = pg.resp.Header.Revision
		}
		kvs := pg.resp.Kvs
		more := pg.resp.More && len(kvs) > 0
		if more {
			next = fetch(string(kvs[len(kvs)-1].Key) + "\x00")
		}
		if err := handle(kvs); err != nil {
			if more {
				<-next
			}
			return err
		}
		if !more {
			return nil
		}
	}
}

// decoded is one stored value after decoding, before it is recorded.
type decoded struct {
	path  string
	key   resource.Key
	value any
	err   error
	rev   int64
	skip  bool // not a key Ocelot uses
}

// decodeAll decodes values in parallel (decoding is most of the cost of a
// listing), keeping their order.
func (s *Syncer) decodeAll(kvs []*mvccpb.KeyValue) []decoded {
	out := make([]decoded, len(kvs))
	workers := min(runtime.GOMAXPROCS(0), len(kvs)/64+1)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(kvs); i += workers {
				out[i] = s.decode(string(kvs[i].Key), kvs[i].Value, kvs[i].ModRevision)
			}
		}(w)
	}
	wg.Wait()
	return out
}

// decode is the pure part of converting a stored value.
func (s *Syncer) decode(path string, value []byte, rev int64) decoded {
	d := decoded{path: path, rev: rev}
	key, ok := resource.ParseKey(path)
	if !ok || !s.wanted(key) {
		d.skip = true
		return d
	}
	d.key = key
	d.value, d.err = resource.Decode(key.Kind, key.Namespace, key.Name, value, resource.Options{Hostname: s.cfg.Hostname})
	return d
}

// watched reports whether a path is under one of the listed prefixes.
func (s *Syncer) watched(path string) bool {
	for _, p := range s.prefixes {
		if strings.HasPrefix(path, p.prefix) {
			return true
		}
	}
	return false
}

// wanted filters keys within watched prefixes that Ocelot does not use.
func (s *Syncer) wanted(k resource.Key) bool {
	return !otherHostsConfig(k, s.cfg.Hostname)
}

// convert decodes one stored value into an update, recording it in state.
func (s *Syncer) convert(path string, value []byte, rev int64) (resource.Update, bool) {
	return s.record(s.decode(path, value, rev))
}

// record turns a decoded value into an update and records it in state;
// invalid values are reported here, once per write.
func (s *Syncer) record(d decoded) (resource.Update, bool) {
	if d.skip {
		return resource.Update{}, false
	}
	if d.err != nil {
		inv, _ := d.value.(*resource.Invalid)
		if inv == nil {
			inv = &resource.Invalid{Kind: d.key.Kind}
		}
		inv.Reason = d.err
		s.log.Warn("invalid resource in the datastore; failing closed", "key", d.path, "reason", d.err.Error(), "revision", d.rev)
		s.cfg.Metrics.invalidResources.WithLabelValues(string(d.key.Kind)).Inc()
		s.state[d.path] = d.rev
		return resource.Update{Key: d.key, Value: inv, Revision: d.rev}, true
	}
	if d.value == nil {
		return s.deleted(d.path, d.rev)
	}
	if ci, ok := d.value.(*resource.ClusterInformation); ok {
		s.setReady(ci.DatastoreReady != nil && *ci.DatastoreReady)
	}
	s.state[d.path] = d.rev
	return resource.Update{Key: d.key, Value: d.value, Revision: d.rev}, true
}

// deleted emits a delete for a key that was emitted as present.
func (s *Syncer) deleted(path string, rev int64) (resource.Update, bool) {
	if _, ok := s.state[path]; !ok {
		return resource.Update{}, false
	}
	delete(s.state, path)
	key, _ := resource.ParseKey(path)
	if key.Kind == resource.KindClusterInformation {
		s.setReady(false)
	}
	return resource.Update{Key: key, Revision: rev}, true
}

func (s *Syncer) setReady(ready bool) {
	if ready == s.ready {
		return
	}
	s.ready = ready
	if !ready && s.inSyncSent {
		s.log.Warn("clusterinformations/default no longer says datastoreReady: true; enforcing what is programmed")
	} else if ready {
		s.log.Info("datastore ready")
	}
}
