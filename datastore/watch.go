package datastore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

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
//
// The watch is a gRPC stream of its own (see watchStream): one goroutine
// receives, decodes and emits, and this one only supervises it, reading
// what the receiver has seen from atomics, so that an event crosses no
// goroutine between the connection and the batches channel.
func (s *Syncer) watch(ctx context.Context, out chan<- Batch, bo *backoff.Backoff) (created bool, err error) {
	conn, err := s.watchConn()
	if err != nil {
		return false, err
	}
	defer conn.close()
	s.attempt++
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	s.log.Info("watching the datastore", "endpoint", conn.name(), "revision", s.rev+1)

	// Opening the stream waits for the connection, which a member that is
	// down or silent may never give: wait for that here, with the checks on.
	type opening struct {
		ws  *watchStream
		err error
	}
	opened := make(chan opening, 1)
	from := s.rev + 1
	go func() {
		ws, err := openWatch(wctx, conn.cli, from)
		opened <- opening{ws, err}
	}()
	var ws *watchStream    // nil until opened
	var ended chan error   // the receiver's end; nil until it runs
	var seen receiverState // what the receiver has seen
	defer func() {
		// The receiver owns s.rev and s.state while it runs.
		cancel()
		if ended != nil {
			if err := <-ended; err != nil {
				s.log.Debug("watch receiver ended", "err", err) // the watch's end, already reported
			}
		}
		created = seen.created.Load()
		if created {
			bo.Reset() // the member answered
		}
	}()
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
			return false, ctx.Err()
		case o := <-opened:
			if o.err != nil {
				return false, fmt.Errorf("opening a watch on %s: %w", conn.name(), rpctypes.Error(o.err))
			}
			ws, ended = o.ws, make(chan error, 1)
			go func() { ended <- s.receive(ctx, conn.name(), ws, out, &seen) }()
		case <-notCreated.C:
			if !seen.created.Load() {
				return false, fmt.Errorf("%w: %s did not create the watch within %v", errWatchStale, conn.name(), s.staleAfter)
			}
		case <-lost:
			return false, fmt.Errorf("connection to %s lost", conn.name())
		case err := <-ended:
			ended = nil // the receiver has returned
			return false, err
		case <-tick.C:
			ticks++
			if !probing && (ticks%3 == 0 || !seen.created.Load() || !s.Status().Connected) {
				probing = true
				go func() { probes <- s.probe(wctx) }()
			}
		case p := <-probes:
			probing = false
			if p.err != nil {
				s.setDisconnected(fmt.Errorf("probing etcd: %w", p.err))
				continue
			}
			if !seen.created.Load() {
				if time.Since(began) >= s.checkEvery/3 {
					// The cluster answers; this member does not (or this
					// connection is still backing off after an outage: a
					// new one dials at once).
					return false, fmt.Errorf("%w: %s has not created the watch while the cluster answers", errWatchStale, conn.name())
				}
				continue
			}
			if seen.delivering.Load() {
				// Blocked handing a batch on: the agent is behind, not
				// the member. That time does not count against it.
				f.behindSince = time.Time{}
				continue
			}
			f.progress(seen.confirmed.Load())
			switch f.check(p.rev, time.Now(), s.staleAfter) {
			case behind:
				go ws.requestProgress()
			case stale:
				return false, fmt.Errorf("%w: %s sent nothing past revision %d for %v while the cluster is at %d",
					errWatchStale, conn.name(), f.confirmed, s.staleAfter, p.rev)
			}
		}
	}
}

// receiverState is what a watch's receiver tells its supervisor.
type receiverState struct {
	created    atomic.Bool  // the member has answered
	confirmed  atomic.Int64 // the member has sent everything up to this revision
	delivering atomic.Bool  // blocked handing a batch to the agent
}

// receive reads the watch's responses and emits their updates until the
// stream ends. It owns s.rev and s.state while it runs. A batch it has
// started to emit is emitted unless ctx (the syncer's) ends: the state
// records it as emitted.
func (s *Syncer) receive(ctx context.Context, name string, ws *watchStream, out chan<- Batch, seen *receiverState) error {
	for {
		resp, err := ws.stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("watch on %s: %w", name, rpctypes.Error(err))
		}
		switch {
		case resp.CompactRevision != 0:
			return fmt.Errorf("watch on %s: %w (compacted at %d)", name, rpctypes.ErrCompacted, resp.CompactRevision)
		case resp.Canceled:
			return fmt.Errorf("watch on %s canceled: %s", name, resp.CancelReason)
		}
		seen.created.Store(true)
		s.setConnected()
		if len(resp.Events) == 0 {
			// The creation, or a progress report: everything up to the
			// header's revision has been sent.
			if !resp.Created && resp.Header != nil {
				confirm(&seen.confirmed, resp.Header.Revision)
			}
			continue
		}
		seen.delivering.Store(true)
		err = s.handleEvents(ctx, out, resp.Events)
		seen.delivering.Store(false)
		if err != nil {
			return err
		}
		s.rev = resp.Events[len(resp.Events)-1].Kv.ModRevision
		confirm(&seen.confirmed, s.rev)
	}
}

// confirm raises a confirmed revision.
func confirm(c *atomic.Int64, rev int64) {
	for {
		old := c.Load()
		if rev <= old || c.CompareAndSwap(old, rev) {
			return
		}
	}
}

// watchStream is one watch on a gRPC stream of its own, used directly
// rather than through the etcd client's watcher, which hands every
// response across three goroutines of its own and would resume a broken
// stream itself (the syncer moves to another member instead).
type watchStream struct {
	stream pb.Watch_WatchClient
	sendMu sync.Mutex // one Send at a time
}

// openWatch opens a stream on the client's connection and asks for the
// watched root from revision rev. ctx carries the require-leader metadata
// and ends the stream. Like the etcd client's own calls, it waits for the
// connection, and takes responses of any size.
func openWatch(ctx context.Context, cli *clientv3.Client, rev int64) (*watchStream, error) {
	stream, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(ctx, grpc.WaitForReady(true), grpc.MaxCallRecvMsgSize(math.MaxInt32))
	if err != nil {
		return nil, err
	}
	req := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte(resource.ResourcePrefix), RangeEnd: []byte(clientv3.GetPrefixRangeEnd(resource.ResourcePrefix)),
		StartRevision: rev,
	}}}
	if err := stream.Send(req); err != nil {
		return nil, err
	}
	return &watchStream{stream: stream}, nil
}

// requestProgress asks the watch's member to report the revision it has
// sent everything up to; the answer arrives as a response without events.
// One request at a time: a Send that blocks (the member stopped reading)
// ends with the stream.
func (w *watchStream) requestProgress() {
	if !w.sendMu.TryLock() {
		return
	}
	defer w.sendMu.Unlock()
	_ = w.stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}})
}

// handleEvents emits the updates of one watch response.
func (s *Syncer) handleEvents(ctx context.Context, out chan<- Batch, events []*mvccpb.Event) error {
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
