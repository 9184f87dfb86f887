package main

import (
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"

	"ocelot/config"
)

// The Go runtime's settings. Felix's GoGCThreshold, GoMemoryLimitMB and
// GoMaxProcs set them, and the environment's GOGC, GOMEMLIMIT and GOMAXPROCS
// win over those, as in Felix. Left unset, the agent chooses for its two
// phases:
//
//   - Loading a snapshot (start-up) is bulk work: every CPU, so decoding,
//     the calculation and the garbage collector run side by side, and a
//     tight heap goal (GC at 25 %), which keeps the peak RSS low.
//   - In sync, work comes as one short burst per datastore change. A second
//     processor does not shorten a burst; it spreads it over more threads,
//     and every hand-off between goroutines then wakes a thread that finds
//     little to do. One processor halves the context switches per change.
//     The heap goal keeps at least gcHeadroom of room, so a small heap is
//     not collected after every few hundred changes; the live heap after
//     loading is well below the loading peak, so this does not raise the
//     peak RSS.
const (
	loadingGCPercent = 25
	gcHeadroom       = 16 << 20
	maxGCPercent     = 100
)

// goRuntime applies the settings. Its hooks are the runtime's own functions;
// tests replace them.
type goRuntime struct {
	log    *slog.Logger
	getenv func(string) string

	setGCPercent   func(int) int
	setMemoryLimit func(int64) int64
	setMaxProcs    func(int) int
	defaultProcs   func() // the runtime's own GOMAXPROCS
	liveHeap       func() uint64

	inSync    bool
	gcFixed   bool // GOGC or GoGCThreshold decides
	procsSet  bool // GOMAXPROCS or GoMaxProcs decides
	gcPercent int  // the percentage in force when the agent chooses it
}

func newGoRuntime(log *slog.Logger, getenv func(string) string) *goRuntime {
	return &goRuntime{log: log, getenv: getenv,
		setGCPercent: debug.SetGCPercent, setMemoryLimit: debug.SetMemoryLimit,
		setMaxProcs: runtime.GOMAXPROCS, defaultProcs: runtime.SetDefaultGOMAXPROCS, liveHeap: liveHeapBytes}
}

// configure applies a configuration: at start and on each live change.
func (g *goRuntime) configure(cfg *config.Config) {
	origin, _ := cfg.Origin("GoGCThreshold")
	gcSet := origin.Source != config.SourceDefault
	switch {
	case g.getenv("GOGC") != "":
		g.gcFixed = true
	case gcSet:
		g.gcFixed = true
		g.setGCPercent(cfg.GoGCThreshold) // -1 turns the collector off, as in Felix
	default:
		g.gcFixed = false
		g.gcPercent = 0
		g.tuneGC()
	}
	if g.getenv("GOMEMLIMIT") == "" {
		limit := int64(math.MaxInt64)
		if cfg.GoMemoryLimitMB > 0 {
			limit = int64(cfg.GoMemoryLimitMB) << 20
		}
		g.setMemoryLimit(limit)
	}
	switch {
	case g.getenv("GOMAXPROCS") != "":
		g.procsSet = true
	case cfg.GoMaxProcs > 0:
		g.procsSet = true
		g.setMaxProcs(cfg.GoMaxProcs)
	default:
		wasSet := g.procsSet
		g.procsSet = false
		if wasSet {
			g.defaultProcs()
		}
		g.chooseProcs()
	}
}

// synced moves to the in-sync phase.
func (g *goRuntime) synced() {
	g.inSync = true
	g.chooseProcs()
	g.tuneGC()
}

// tick re-tunes the heap goal to the live heap; the agent calls it every
// few seconds.
func (g *goRuntime) tick() { g.tuneGC() }

func (g *goRuntime) chooseProcs() {
	if g.procsSet || !g.inSync {
		return
	}
	if prev := g.setMaxProcs(1); prev != 1 {
		g.log.Info("in sync: Go code now runs on one processor (GoMaxProcs = -1)", "before", prev)
	}
}

func (g *goRuntime) tuneGC() {
	if g.gcFixed {
		return
	}
	pct := loadingGCPercent
	if g.inSync {
		pct = headroomPercent(g.liveHeap())
	}
	if d := pct - g.gcPercent; d >= 5 || d <= -5 || (d != 0 && (pct == loadingGCPercent || pct == maxGCPercent)) {
		g.setGCPercent(pct)
		g.gcPercent = pct
	}
}

// headroomPercent is the GC percentage that leaves at least gcHeadroom of
// room over a live heap, between loadingGCPercent and maxGCPercent.
func headroomPercent(live uint64) int {
	if live == 0 {
		return maxGCPercent
	}
	pct := int((uint64(gcHeadroom)*100 + live - 1) / live)
	return min(max(pct, loadingGCPercent), maxGCPercent)
}

// liveHeapBytes is the heap the last garbage collection found live.
func liveHeapBytes() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
