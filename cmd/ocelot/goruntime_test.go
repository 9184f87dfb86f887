package main

import (
	"io"
	"log/slog"
	"math"
	"testing"

	"ocelot/config"
)

// fakeRuntime records what goRuntime asks of the Go runtime.
type fakeRuntime struct {
	env    map[string]string
	gc     []int
	limit  []int64
	procs  []int
	resets int
	live   uint64
	cur    int
}

func (f *fakeRuntime) goRuntime() *goRuntime {
	f.cur = 2
	return &goRuntime{log: slog.New(slog.NewTextHandler(io.Discard, nil)), getenv: func(k string) string { return f.env[k] },
		setGCPercent:   func(p int) int { f.gc = append(f.gc, p); return 0 },
		setMemoryLimit: func(l int64) int64 { f.limit = append(f.limit, l); return 0 },
		setMaxProcs: func(n int) int {
			prev := f.cur
			f.procs = append(f.procs, n)
			f.cur = n
			return prev
		},
		defaultProcs: func() { f.resets++; f.cur = 2 },
		liveHeap:     func() uint64 { return f.live },
	}
}

func loadConfig(t *testing.T, kv ...string) *config.Config {
	t.Helper()
	var raw []config.RawValue
	for i := 0; i < len(kv); i += 2 {
		raw = append(raw, config.RawValue{Name: kv[i], Value: kv[i+1], Source: config.SourceFile, Where: "test"})
	}
	cfg, problems := config.Load(raw)
	if problems.Invalid() {
		t.Fatalf("config: %v", problems)
	}
	return cfg
}

func TestGoRuntimeChoosesPerPhase(t *testing.T) {
	f := &fakeRuntime{live: 20 << 20}
	g := f.goRuntime()
	g.configure(loadConfig(t))
	if len(f.gc) != 1 || f.gc[0] != 25 {
		t.Fatalf("loading: GC percentages %v, want [25]", f.gc)
	}
	if len(f.procs) != 0 {
		t.Fatalf("loading: GOMAXPROCS set to %v; the runtime's default should stand", f.procs)
	}
	if len(f.limit) != 1 || f.limit[0] != math.MaxInt64 {
		t.Fatalf("memory limits %v, want none", f.limit)
	}
	g.synced()
	if want := []int{1}; len(f.procs) != 1 || f.procs[0] != 1 {
		t.Fatalf("in sync: GOMAXPROCS %v, want %v", f.procs, want)
	}
	if got := f.gc[len(f.gc)-1]; got != 80 { // 16 MiB over 20 MiB live
		t.Fatalf("in sync with 20 MiB live: GC %d%%, want 80", got)
	}
	// The live heap grows: the percentage follows, within its bounds, and
	// small moves do not reset it.
	n := len(f.gc)
	f.live = 21 << 20
	g.tick()
	if len(f.gc) != n {
		t.Fatalf("a 1 MiB change re-set the GC percentage: %v", f.gc)
	}
	f.live = 400 << 20
	g.tick()
	if got := f.gc[len(f.gc)-1]; got != 25 {
		t.Fatalf("400 MiB live: GC %d%%, want 25", got)
	}
}

func TestGoRuntimeHonoursSettings(t *testing.T) {
	f := &fakeRuntime{live: 20 << 20}
	g := f.goRuntime()
	g.configure(loadConfig(t, "GoGCThreshold", "60", "GoMaxProcs", "2", "GoMemoryLimitMB", "300"))
	g.synced()
	g.tick()
	if len(f.gc) != 1 || f.gc[0] != 60 {
		t.Fatalf("GoGCThreshold = 60: GC percentages %v, want [60] and nothing after", f.gc)
	}
	if len(f.procs) != 1 || f.procs[0] != 2 {
		t.Fatalf("GoMaxProcs = 2: GOMAXPROCS %v, want [2] and nothing after", f.procs)
	}
	if f.limit[0] != 300<<20 {
		t.Fatalf("GoMemoryLimitMB = 300: limit %d", f.limit[0])
	}
	// Taken back live: the agent's own choices return.
	g.configure(loadConfig(t))
	if f.resets != 1 || f.procs[len(f.procs)-1] != 1 {
		t.Fatalf("GoMaxProcs unset in sync: resets %d, GOMAXPROCS %v; want the default restored, then one", f.resets, f.procs)
	}
	if got := f.gc[len(f.gc)-1]; got != 80 {
		t.Fatalf("GoGCThreshold unset in sync: GC %d%%, want 80", got)
	}
	if got := f.limit[len(f.limit)-1]; got != math.MaxInt64 {
		t.Fatalf("GoMemoryLimitMB unset: limit %d, want none", got)
	}
	// GoGCThreshold = -1 turns the collector off, as in Felix.
	g.configure(loadConfig(t, "GoGCThreshold", "-1", "GoMemoryLimitMB", "500"))
	if got := f.gc[len(f.gc)-1]; got != -1 {
		t.Fatalf("GoGCThreshold = -1: GC %d", got)
	}
}

func TestGoRuntimeEnvironmentWins(t *testing.T) {
	f := &fakeRuntime{live: 20 << 20, env: map[string]string{"GOGC": "100", "GOMAXPROCS": "2", "GOMEMLIMIT": "1GiB"}}
	g := f.goRuntime()
	g.configure(loadConfig(t, "GoGCThreshold", "60", "GoMaxProcs", "3", "GoMemoryLimitMB", "300"))
	g.synced()
	g.tick()
	if len(f.gc)+len(f.procs)+len(f.limit) != 0 {
		t.Fatalf("the environment's GOGC, GOMAXPROCS and GOMEMLIMIT were overridden: gc %v procs %v limit %v", f.gc, f.procs, f.limit)
	}
}

func TestHeadroomPercent(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{{0, 100}, {1 << 20, 100}, {16 << 20, 100}, {32 << 20, 50}, {20 << 20, 80}, {64 << 20, 25}, {1 << 30, 25}} {
		if got := headroomPercent(c.live); got != c.want {
			t.Errorf("headroomPercent(%d MiB) = %d, want %d", c.live>>20, got, c.want)
		}
	}
}
