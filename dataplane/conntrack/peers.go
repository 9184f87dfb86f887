package conntrack

import (
	"context"
	"net/netip"
	"time"
)

// Peers is the seam to the kernel's record of the addresses at the far end
// of workloads' flows: the kernel adds the far end of each new flow a
// workload interface sends or receives, so an address that is not in the
// record has had no flow with a workload since the record began. A pass
// whose every selection is a pair with such an address has nothing to
// delete, and is skipped.
type Peers interface {
	// Reset replaces the record with an empty one that records from now on.
	Reset(ctx context.Context) error
	// Add records addresses (the ends of flows tracked before Reset).
	Add(ctx context.Context, addrs []netip.Addr) error
	// Seen reports whether any of the addresses is recorded.
	Seen(ctx context.Context, addrs []netip.Addr) (bool, error)
	// Complete reports whether the kernel recorded every far end it was
	// given since Reset (false: the record overflowed).
	Complete(ctx context.Context) (bool, error)
}

// RebuildEvery is how often the record is rebuilt from the table's
// current flows, so it forgets the addresses whose flows ended (and
// repairs it if something else changed it).
const RebuildEvery = 10 * time.Minute

// maxProbe bounds the addresses one pass looks up in the record; a batch
// with more makes its pass.
const maxProbe = 256

// rebuild starts the record again: an empty one that records from now on,
// then every address of every flow the table holds now. Flows that begin
// in between are recorded by the kernel; flows that began before are in
// the table. No pass decides in between (both run on the Forgetter's
// goroutine), so afterwards the record holds the far end of every flow.
func (f *Forgetter) rebuild(ctx context.Context) {
	f.rebuilt = time.Now()
	f.recorded = false
	f.metrics.recorded.Set(0)
	if err := f.peers.Reset(ctx); err != nil {
		f.unusable("cannot keep the record of workloads' peers; every conntrack pass walks the table", "err", err)
		return
	}
	seen := map[netip.Addr]struct{}{}
	over := false
	_, err := f.table.Forget(ctx, func(t Tuple) bool {
		for _, a := range []netip.Addr{t.OrigSrc, t.OrigDst, t.ReplySrc, t.ReplyDst} {
			if a.IsValid() && len(seen) <= PeersSize {
				seen[a] = struct{}{}
			}
		}
		over = over || len(seen) > PeersSize
		return false // nothing is deleted
	})
	if err == nil && over {
		f.unusable("more flows' addresses than the record of workloads' peers holds; every conntrack pass walks the table", "limit", PeersSize)
		return
	}
	addrs := make([]netip.Addr, 0, len(seen))
	for a := range seen {
		addrs = append(addrs, a)
	}
	if err == nil {
		err = f.peers.Add(ctx, addrs)
	}
	if err != nil {
		f.unusable("cannot fill the record of workloads' peers; every conntrack pass walks the table", "err", err)
		return
	}
	f.warned = false
	f.recorded = true
	f.metrics.recorded.Set(1)
	f.log.Debug("rebuilt the record of workloads' peers", "addresses", len(addrs), "took", time.Since(f.rebuilt))
}

// unusable logs why the record cannot be used: a warning the first time,
// then (as the rebuild is tried every minute) at debug level.
func (f *Forgetter) unusable(msg string, args ...any) {
	if f.warned {
		f.log.Debug(msg, args...)
		return
	}
	f.warned = true
	f.log.Warn(msg, args...)
}

// unneeded reports whether a pass over b can be skipped: every selection
// is a pair whose network is one address, and the record says none of
// those addresses had a flow with a workload. Anything else (every flow of
// an address, a network, a floating IP, a record that is incomplete or
// cannot be read) makes the pass.
func (f *Forgetter) unneeded(ctx context.Context, b *Batch) bool {
	if f.peers == nil || !f.recorded || len(b.All) > 0 || len(b.Through) > 0 {
		return false
	}
	far := map[netip.Addr]struct{}{}
	for _, nets := range b.Pairs {
		for _, n := range nets {
			if !n.IsSingleIP() {
				return false
			}
			far[n.Addr()] = struct{}{}
		}
	}
	if len(far) == 0 || len(far) > maxProbe {
		return false
	}
	addrs := make([]netip.Addr, 0, len(far))
	for a := range far {
		addrs = append(addrs, a)
	}
	seen, err := f.peers.Seen(ctx, addrs)
	if err != nil {
		f.distrust("cannot read the record of workloads' peers; making the conntrack pass", "err", err)
	}
	if err != nil || seen {
		return false
	}
	// Checked after the look-ups: a record that went away meanwhile
	// would have answered "not seen".
	complete, err := f.peers.Complete(ctx)
	switch {
	case err != nil:
		f.distrust("cannot read the record of workloads' peers; making the conntrack pass", "err", err)
	case !complete:
		f.distrust("the record of workloads' peers overflowed; every conntrack pass walks the table until it is rebuilt")
	}
	return err == nil && complete
}

// distrust stops using the record until it is rebuilt, and says why.
func (f *Forgetter) distrust(msg string, args ...any) {
	f.recorded = false
	f.metrics.recorded.Set(0)
	f.log.Warn(msg, args...)
}
