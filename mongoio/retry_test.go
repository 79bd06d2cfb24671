package mongoio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

func TestTransient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "nil", err: nil, want: false},
		{name: "plain error", err: errors.New("boom"), want: false},
		{name: "client disconnected", err: mongo.ErrClientDisconnected, want: false},
		{name: "deadline", err: context.DeadlineExceeded, want: true},
		{name: "server selection", err: topology.ServerSelectionError{Wrapped: errors.New("no server")}, want: true},
		{name: "net error", err: &net.OpError{Op: "dial", Err: errors.New("refused")}, want: true},
		{name: "network label", err: mongo.CommandError{Labels: []string{"NetworkError"}}, want: true},
		{name: "retryable write label", err: mongo.CommandError{Code: 1, Labels: []string{"RetryableWriteError"}}, want: true},
		{name: "shutdown in progress", err: mongo.CommandError{Code: 91}, want: true},
		{name: "not writable primary", err: mongo.CommandError{Code: 10107}, want: true},
		{name: "unauthorized", err: mongo.CommandError{Code: 13}, want: false},
		{name: "bad value", err: mongo.CommandError{Code: 2}, want: false},
		{name: "write concern timeout", err: mongo.BulkWriteException{WriteConcernError: &mongo.WriteConcernError{Code: 64}}, want: true},
		{name: "unsatisfiable write concern", err: mongo.BulkWriteException{WriteConcernError: &mongo.WriteConcernError{Code: 100}}, want: false},
		{name: "marked retryable", err: retryableError{errors.New("write conflict")}, want: true},
		{name: "wrapped", err: fmt.Errorf("mongoio: write: %w", mongo.CommandError{Code: 11600}), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, transient(tt.err), "transient(%v)", tt.err)
		})
	}
}

func TestRetryableWriteError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		we   mongo.BulkWriteError
		want bool
	}{
		{name: "write conflict", we: mongo.BulkWriteError{WriteError: mongo.WriteError{Code: 112}}, want: true},
		{
			name: "duplicate _id from a concurrent upsert",
			we:   mongo.BulkWriteError{WriteError: mongo.WriteError{Code: 11000, Message: `E11000 duplicate key error collection: btc.c index: _id_ dup key: { _id: "a" }`}},
			want: true,
		},
		{
			name: "duplicate on another unique index",
			we:   mongo.BulkWriteError{WriteError: mongo.WriteError{Code: 11000, Message: `E11000 duplicate key error collection: btc.c index: u_1 dup key: { u: 1 }`}},
			want: false,
		},
		{name: "validation", we: mongo.BulkWriteError{WriteError: mongo.WriteError{Code: 121}}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, retryableWriteError(tt.we), "retryableWriteError(%v)", tt.we)
		})
	}
}

// TestBackoff checks the invariants of every wait: it lies in [d/2, d]
// where d doubles from the minimum at each retry and stops at the maximum.
func TestBackoff(t *testing.T) {
	t.Parallel()
	const lo, hi = 100 * time.Millisecond, 5 * time.Second
	for retry := range 40 {
		d := min(lo<<min(retry, 30), hi)
		for range 100 {
			got := backoff(retry, lo, hi)
			assert.GreaterOrEqual(t, got, d/2, "retry %d: at least half the nominal wait", retry)
			assert.LessOrEqual(t, got, d, "retry %d: at most the nominal wait", retry)
		}
	}
	got := backoff(3, time.Millisecond, time.Millisecond)
	assert.True(t, got >= 500*time.Microsecond && got <= time.Millisecond, "equal bounds: %v", got)
}

func TestSleep(t *testing.T) {
	t.Parallel()
	assert.NoError(t, sleep(t.Context(), time.Millisecond), "sleep ends")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.ErrorIs(t, sleep(ctx, time.Hour), context.Canceled, "sleep gives up with its context")
}
