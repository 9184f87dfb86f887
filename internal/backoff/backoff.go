package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the state of one retry sequence. The zero value retries
// every 100 ms; set Min and Max for anything else. Not safe for
// concurrent use.
type Backoff struct {
	Min, Max time.Duration // first delay; cap (raised to Min if lower)
	Factor   float64       // growth per failure; 0 means 2
	Jitter   float64       // each delay is spread by ±Jitter of itself (0.2 = ±20 %)

	cur time.Duration // the next delay before jitter; 0 means Min
}

const defaultMin = 100 * time.Millisecond

// Peek returns the next delay before jitter, without advancing.
func (b *Backoff) Peek() time.Duration {
	if b.cur == 0 {
		return b.min()
	}
	return b.cur
}

// Next returns the delay to wait before the next attempt and grows the
// one after it.
func (b *Backoff) Next() time.Duration {
	d := b.Peek()
	f := b.Factor
	if f <= 0 {
		f = 2
	}
	b.cur = min(time.Duration(float64(d)*f), max(b.Max, b.min()))
	if b.Jitter > 0 {
		d = time.Duration(float64(d) * (1 - b.Jitter + 2*b.Jitter*rand.Float64()))
	}
	return d
}

// Reset starts the sequence again from Min, after a success.
func (b *Backoff) Reset() { b.cur = 0 }

// Wait sleeps for Next(), or until ctx ends, whose error it then returns.
func (b *Backoff) Wait(ctx context.Context) error {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Backoff) min() time.Duration {
	if b.Min <= 0 {
		return defaultMin
	}
	return b.Min
}
