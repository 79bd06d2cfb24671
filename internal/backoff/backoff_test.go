package backoff

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBackoffDoublesToTheCap(t *testing.T) {
	b := New(100*time.Millisecond, time.Second, 0)
	var got []time.Duration
	for range 6 {
		got = append(got, b.Next())
	}
	assert.Equal(t, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		time.Second, time.Second}, got, "waits")
	assert.Equal(t, 6, b.Attempts(), "attempts")
	b.Reset()
	assert.Equal(t, 100*time.Millisecond, b.Next(), "after Reset")
	assert.Equal(t, 1, b.Attempts(), "attempts after Reset")
}

func TestBackoffJitter(t *testing.T) {
	b := New(time.Second, time.Second, 0.5)
	for range 100 {
		d := b.Next()
		require.GreaterOrEqual(t, d, 500*time.Millisecond, "not below wait*(1-jitter)")
		require.LessOrEqual(t, d, time.Second, "not above the wait")
	}
}

func TestBackoffWait(t *testing.T) {
	b := New(time.Millisecond, time.Millisecond, 0)
	require.NoError(t, b.Wait(context.Background()), "a short wait")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	long := New(time.Hour, time.Hour, 0)
	start := time.Now()
	assert.ErrorIs(t, long.Wait(ctx), context.Canceled, "ctx ends the wait")
	assert.Less(t, time.Since(start), time.Second, "at once")
}

func TestBackoffBounds(t *testing.T) {
	b := New(0, -1, 0)
	assert.Equal(t, time.Millisecond, b.Next(), "min at least 1 ms, max at least min")
	assert.LessOrEqual(t, New(time.Second, time.Second, 2).Next(), time.Second, "jitter below 1")
}
