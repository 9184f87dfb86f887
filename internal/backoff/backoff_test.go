package backoff

import (
	"context"
	"testing"
	"time"
)

func TestGrowsToMaxAndResets(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("delay %d = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Peek(); got != 100*time.Millisecond {
		t.Errorf("after Reset: %v, want the minimum", got)
	}
}

func TestFactorAndDefaults(t *testing.T) {
	b := Backoff{Min: 10 * time.Millisecond, Max: time.Second, Factor: 3}
	for _, w := range []time.Duration{10, 30, 90, 270, 810, 1000} {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("got %v, want %v", got, w*time.Millisecond)
		}
	}
	var zero Backoff // 100 ms, and a Max below Min is raised to it
	if a, c := zero.Next(), zero.Next(); a != defaultMin || c != defaultMin {
		t.Errorf("zero value: %v then %v, want %v twice", a, c, defaultMin)
	}
}

func TestJitterStaysInBounds(t *testing.T) {
	seen := map[time.Duration]bool{}
	for i := 0; i < 200; i++ {
		b := Backoff{Min: time.Second, Max: time.Second, Jitter: 0.2}
		d := b.Next()
		if d < 800*time.Millisecond || d > 1200*time.Millisecond {
			t.Fatalf("jittered delay %v outside ±20%% of 1s", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct delays in 200: no jitter?", len(seen))
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := Backoff{Min: time.Hour}
	if err := b.Wait(ctx); err != context.Canceled {
		t.Errorf("Wait on a cancelled context: %v", err)
	}
	b = Backoff{Min: time.Millisecond}
	if err := b.Wait(context.Background()); err != nil {
		t.Errorf("Wait: %v", err)
	}
}
