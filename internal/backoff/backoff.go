// Package backoff is the one capped exponential backoff of Tidemark's
// retry loops: a broker or a store that is away is waited for, first
// briefly, then longer, up to a cap, with optional jitter so that many
// clients do not retry in step.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff hands out the waits between attempts: Min first, then twice the
// previous one, up to Max. The zero value is not usable; make one with New.
// It is not safe for concurrent use.
type Backoff struct {
	min, max time.Duration
	jitter   float64
	next     time.Duration
	attempts int
}

// New returns a Backoff from min to max. jitter, in [0, 1), spreads each
// wait at random over [wait*(1-jitter), wait]; 0 keeps the waits exact.
func New(first, most time.Duration, jitter float64) *Backoff {
	first = max(first, time.Millisecond)
	return &Backoff{min: first, max: max(most, first), jitter: min(max(jitter, 0), 0.99), next: first}
}

// Next returns the wait before the next attempt and counts the attempt.
func (b *Backoff) Next() time.Duration {
	d := b.next
	b.next = min(2*b.next, b.max)
	b.attempts++
	if b.jitter > 0 {
		d -= time.Duration(rand.Float64() * b.jitter * float64(d))
	}
	return d
}

// Attempts returns how many waits Next has handed out since the last Reset.
func (b *Backoff) Attempts() int { return b.attempts }

// Reset starts again from Min: call it after a success.
func (b *Backoff) Reset() { b.next, b.attempts = b.min, 0 }

// Wait sleeps for Next, or until ctx is done, when it returns ctx's error.
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
