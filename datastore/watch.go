package datastore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"

	"ocelot/datastore/resource"
	"ocelot/internal/backoff"
)

// errWatchStale ends a watch whose member has stopped following the
// cluster: cut off, paused, overloaded, or never answering.
var errWatchStale = errors.New("watch is stale")

// watch follows the datastore after s.rev until an error. One watch on the
// common root keeps a single revision order across kinds; events outside
// the watched prefixes (other regions' policies, kinds Ocelot does not use)
// are dropped before decoding.
//
// The watch is placed on one member (see watchConn) and requires a leader:
// a member cut off from its peers ends it (etcd cancels such streams after
// three election timeouts), and so does a connection to the member that
// breaks. As a backstop for members that go silent without an error,
// every checkEvery a probe asks the cluster for its revision; a watch that
// is behind it and shows no progress for staleAfter, even when asked for a
// progress report, is abandoned, as is one not created within staleAfter.
// The caller starts the next watch on the next member. created reports
// whether the member created the watch before it ended.
func (s *Syncer) watch(ctx context.Context, out chan<- Batch, bo *backoff.Backoff) (bool, error) {
	conn, err := s.watchConn()
	if err != nil {
		return false, err
	}
	defer conn.close()
	// Each attempt gets a gRPC stream of its own (the client shares one
	// per distinct metadata), never the one that failed.
	s.attempt++
	wctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(clientv3.WithRequireLeader(ctx),
		"ocelot-watch-attempt", strconv.FormatUint(s.attempt, 10)))
	defer cancel()
	s.log.Info("watching the datastore", "endpoint", conn.name(), "revision", s.rev+1)

	// Watch returns only once the member has created the watch, which a
	// silent member never does: wait for that here, with the checks on.
	watching := make(chan clientv3.WatchChan, 1)
	go func() {
		watching <- conn.cli.Watch(wctx, resource.ResourcePrefix, clientv3.WithPrefix(), clientv3.WithRev(s.rev+1),
			clientv3.WithCreatedNotify())
	}()
	var wch clientv3.WatchChan // nil until Watch returns
	created := false           // the member has answered
	began := time.Now()
	notCreated := time.NewTimer(s.staleAfter)
	defer notCreated.Stop()
	lost := conn.lost(wctx)
	// Probes run every checkEvery, and three times as often while etcd
	// is unreachable or the watch not yet created, so that a recovery is
	// noticed soon.
	tick := time.NewTicker(s.checkEvery / 3)
	defer tick.Stop()
	ticks := 0
	probes := make(chan probeResult, 1)
	probing := false
	if s.attempt > 1 {
		// The last watch failed: is it the member or all of etcd?
		probing = true
		go func() { probes <- s.probe(wctx) }()
	}
	f := freshness{confirmed: s.rev}
	for {
		select {
		case <-ctx.Done():
			return created, ctx.Err()
		case wch = <-watching:
		case <-notCreated.C:
			if !created {
				return false, fmt.Errorf("%w: %s did not create the watch within %v", errWatchStale, conn.name(), s.staleAfter)
			}
		case <-lost:
			return created, fmt.Errorf("connection to %s lost", conn.name())
		case <-tick.C:
			ticks++
			if !probing && (ticks%3 == 0 || !created || !s.Status().Connected) {
				probing = true
				go func() { probes <- s.probe(wctx) }()
			}
		case p := <-probes:
			probing = false
			if p.err != nil {
				s.setDisconnected(fmt.Errorf("probing etcd: %w", p.err))
				continue
			}
			if !created && time.Since(began) >= s.checkEvery/3 {
				// The cluster answers; this member does not (or this
				// connection is still backing off after an outage: a
				// new one dials at once).
				return false, fmt.Errorf("%w: %s has not created the watch while the cluster answers", errWatchStale, conn.name())
			}
			switch f.check(p.rev, time.Now(), s.staleAfter) {
			case behind:
				go s.requestProgress(wctx, conn.cli)
			case stale:
				return created, fmt.Errorf("%w: %s sent nothing past revision %d for %v while the cluster is at %d",
					errWatchStale, conn.name(), f.confirmed, s.staleAfter, p.rev)
			}
		case wr, ok := <-wch:
			if !ok {
				return created, errors.New("watch closed")
			}
			if err := wr.Err(); err != nil {
				return created, fmt.Errorf("watch on %s: %w", conn.name(), err)
			}
			if wr.Canceled {
				return created, fmt.Errorf("watch on %s canceled: %s", conn.name(), wr.CancelReason)
			}
			created = true
			s.setConnected()
			bo.Reset()
			if wr.IsProgressNotify() {
				f.progress(wr.Header.Revision)
				continue
			}
			if err := s.handleEvents(ctx, out, wr.Events); err != nil {
				return created, err
			}
			if n := len(wr.Events); n > 0 {
				s.rev = wr.Events[n-1].Kv.ModRevision
				f.progress(s.rev)
			}
		}
	}
}

// handleEvents emits the updates of one watch response.
func (s *Syncer) handleEvents(ctx context.Context, out chan<- Batch, events []*clientv3.Event) error {
	var b Batch
	for _, ev := range events {
		path := string(ev.Kv.Key)
		if !s.watched(path) {
			continue
		}
		if r, ok := s.state[path]; ok && ev.Kv.ModRevision <= r {
			continue // already emitted by a re-list
		}
		var u resource.Update
		var ok bool
		if ev.Type == mvccpb.DELETE {
			u, ok = s.deleted(path, ev.Kv.ModRevision)
		} else {
			u, ok = s.convert(path, ev.Kv.Value, ev.Kv.ModRevision)
		}
		if ok {
			b.Updates = append(b.Updates, u)
		}
	}
	return s.send(ctx, out, b)
}

// watchConn is the connection one watch runs on.
type watchConn struct {
	cli      *clientv3.Client
	endpoint string // "" when the watch shares the agent's client
	own      bool   // cli is this watch's own and is closed with it
}

// watchConn connects the next watch. With SyncerConfig.Client, each watch
// gets a connection of its own to one member, starting at a random one
// (so that a cloud's agents spread over the cluster) and moving to the
// next each time; otherwise it shares the agent's client, and gRPC places
// it on any member that answers.
func (s *Syncer) watchConn() (watchConn, error) {
	eps := s.cfg.Client.Endpoints
	if len(eps) == 0 {
		return watchConn{cli: s.cli}, nil
	}
	if s.attempt == 0 {
		s.next = rand.IntN(len(eps))
	}
	ep := eps[s.next%len(eps)]
	s.next++
	cc := s.cfg.Client
	cc.Endpoints = []string{ep}
	cli, err := Connect(cc, s.log)
	if err != nil {
		return watchConn{}, fmt.Errorf("connecting to %s: %w", ep, err)
	}
	return watchConn{cli: cli, endpoint: ep, own: true}, nil
}

func (c watchConn) name() string {
	if c.endpoint == "" {
		return "etcd"
	}
	return c.endpoint
}

// close closes the watch's own client. Off the caller's path: a client on
// a member that has gone silent can take a while to close.
func (c watchConn) close() {
	if c.own {
		go func() { _ = c.cli.Close() }() // closing a connection that failed
	}
}

// lost is closed when the watch's own connection, once up, goes down;
// the shared client's never is (gRPC moves its streams itself).
func (c watchConn) lost(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{})
	if !c.own {
		return ch
	}
	go func() {
		conn := c.cli.ActiveConnection()
		up := false
		for {
			st := conn.GetState()
			switch {
			case st == connectivity.Ready:
				up = true
			case up:
				close(ch)
				return
			}
			if !conn.WaitForStateChange(ctx, st) {
				return
			}
		}
	}()
	return ch
}

type probeResult struct {
	rev int64
	err error
}

// probe reads the cluster's current revision with a linearizable count of
// one key, through the agent's shared client: the member must reach its
// leader to answer, and a grpc-proxy in front of the cluster must forward
// it (the proxy answers serializable reads from its cache, which would hide
// an outage). A member that does not answer costs one attempt; the second
// goes to the next member.
func (s *Syncer) probe(ctx context.Context) probeResult {
	var err error
	for range 2 {
		pctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), s.checkEvery/2)
		var resp *clientv3.GetResponse
		resp, err = s.cli.Get(pctx, resource.Key{Kind: resource.KindClusterInformation, Name: "default"}.Path(),
			clientv3.WithCountOnly())
		cancel()
		if err == nil {
			return probeResult{rev: resp.Header.Revision}
		}
	}
	return probeResult{err: err}
}

// requestProgress asks the watch's member to report the revision it has
// sent everything up to. ctx must be the watch's (it names the stream).
// It blocks while the watch reconnects, hence the timeout.
func (s *Syncer) requestProgress(ctx context.Context, cli *clientv3.Client) {
	pctx, cancel := context.WithTimeout(ctx, s.checkEvery)
	defer cancel()
	if err := cli.RequestProgress(pctx); err != nil && ctx.Err() == nil {
		s.log.Debug("requesting watch progress failed", "err", err)
	}
}

// freshness judges whether a watch keeps up with the cluster: it is fresh
// while its confirmed revision (last event, or last progress report)
// reaches the cluster's; behind until it does; stale when it stays behind
// without any progress for the allowed time.
type freshness struct {
	confirmed   int64     // the watch has delivered everything up to here
	behindSince time.Time // zero while fresh
	behindAt    int64     // confirmed when the watch was last seen progressing while behind
}

type verdict int

const (
	fresh verdict = iota
	behind
	stale
)

func (f *freshness) progress(rev int64) { f.confirmed = max(f.confirmed, rev) }

func (f *freshness) check(clusterRev int64, now time.Time, staleAfter time.Duration) verdict {
	if f.confirmed >= clusterRev {
		f.behindSince = time.Time{}
		return fresh
	}
	if f.behindSince.IsZero() || f.confirmed > f.behindAt {
		// Newly behind, or progressing: give it time from now.
		f.behindSince, f.behindAt = now, f.confirmed
	}
	if now.Sub(f.behindSince) >= staleAfter {
		return stale
	}
	return behind
}
