package mongoio_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/tidemark-go/tidemark/mongoio"
)

// zscore is the pipeline's MongoDB document (SPEC section 5).
type zscore struct {
	ID     string    `bson:"_id"`
	Symbol string    `bson:"symbol"`
	Time   time.Time `bson:"timestamp"`
	Window string    `bson:"window"`
	Price  float64   `bson:"price"`
	Z      *float64  `bson:"zscore_price"`
}

var windows = []string{"30s", "1m", "5m", "15m", "30m", "1h"}

var t0 = time.Date(2025, 5, 8, 4, 12, 38, 352e6, time.UTC)

// zscores returns n documents per window, for events i*100 ms after t0,
// with the given price.
func zscores(n int, price float64) []zscore {
	docs := make([]zscore, 0, n*len(windows))
	for i := range n {
		ts := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		for j, w := range windows {
			z := float64(j) - 2.5
			docs = append(docs, zscore{
				ID:     "BTCUSDT|" + ts.Format("2006-01-02T15:04:05.000Z07:00"),
				Symbol: "BTCUSDT",
				Time:   ts,
				Window: w,
				Price:  price,
				Z:      &z,
			})
		}
	}
	return docs
}

func routeZ(d zscore) (mongoio.Route, error) {
	return mongoio.Route{Collection: "btc-price-zscore-" + d.Window, Doc: d}, nil
}

// quietLogger discards the sink's logs unless the test runs with -v.
func quietLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newSink(t *testing.T, db *mongo.Database, opts ...mongoio.Option) *mongoio.Sink[zscore] {
	t.Helper()
	opts = append([]mongoio.Option{mongoio.WithLogger(quietLogger(t)), mongoio.WithBackoff(20*time.Millisecond, 200*time.Millisecond)}, opts...)
	s, err := mongoio.NewSink(db, routeZ, opts...)
	require.NoError(t, err, "NewSink")
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func writeAll(t *testing.T, s *mongoio.Sink[zscore], docs []zscore) {
	t.Helper()
	for _, d := range docs {
		require.NoError(t, s.Write(t.Context(), d), "write %s to %s", d.ID, d.Window)
	}
}

// TestHungServer: a server that accepts connections and commands but never
// answers does not block a flush forever: each attempt ends after
// AttemptTimeout, and the retries end after MaxRetryTime, with
// ErrRetriesExhausted and the writes still buffered.
func TestHungServer(t *testing.T) {
	t.Parallel()
	f := &fakeServer{hang: true}
	db := startFakeServer(t, f)
	s := newSink(t, db, mongoio.WithAttemptTimeout(300*time.Millisecond), mongoio.WithMaxRetryTime(2*time.Second),
		mongoio.WithMaxRetries(-1), mongoio.WithBackoff(50*time.Millisecond, 200*time.Millisecond))
	writeAll(t, s, zscores(3, 1))
	began := time.Now()
	err := s.Flush(t.Context())
	took := time.Since(began)
	require.ErrorIs(t, err, mongoio.ErrRetriesExhausted, "the flush gives up")
	assert.ErrorContains(t, err, "no answer within the attempt timeout (300ms)", "the cause is in the message")
	assert.ErrorContains(t, err, "MaxRetryTime 2s", "so is the bound")
	assert.Less(t, took, 2500*time.Millisecond, "within MaxRetryTime and one attempt")
	assert.GreaterOrEqual(t, took, 1500*time.Millisecond, "after retrying for most of MaxRetryTime")
	st := s.Stats()
	assert.Equal(t, uint64(18), st.Buffered, "the writes stay buffered")
	assert.GreaterOrEqual(t, st.Retries, uint64(3), "retried")
	assert.NotEmpty(t, f.Calls(), "the server got the commands")
	t.Logf("gave up after %v and %d retries: %v", took.Round(time.Millisecond), st.Retries, err)
}

func TestOptionValidation(t *testing.T) {
	t.Parallel()
	db := startFakeServer(t, &fakeServer{}) // the sink only needs a handle here
	route := func(zscore) (mongoio.Route, error) { return mongoio.Route{}, nil }
	tests := []struct {
		name  string
		db    *mongo.Database
		route func(zscore) (mongoio.Route, error)
		opts  []mongoio.Option
		ok    bool
	}{
		{name: "defaults", ok: true},
		{name: "everything set", ok: true, opts: []mongoio.Option{
			mongoio.WithBatchSize(1), mongoio.WithFlushInterval(time.Second), mongoio.WithMaxRetries(0),
			mongoio.WithBackoff(time.Millisecond, time.Millisecond), mongoio.WithWriteConcern(writeconcern.W1()),
			mongoio.WithMaxWritesPerCommand(1), mongoio.WithLogger(nil), mongoio.WithFlushConcurrency(1),
			mongoio.WithUpsertOnly(),
		}},
		{name: "unbounded retries", ok: true, opts: []mongoio.Option{mongoio.WithMaxRetries(-1)}},
		{name: "inherited write concern", ok: true, opts: []mongoio.Option{mongoio.WithWriteConcern(nil)}},
		{name: "nil database", db: nil},
		{name: "nil route", route: nil},
		{name: "nil option", opts: []mongoio.Option{nil}},
		{name: "zero batch size", opts: []mongoio.Option{mongoio.WithBatchSize(0)}},
		{name: "negative flush interval", opts: []mongoio.Option{mongoio.WithFlushInterval(-time.Second)}},
		{name: "negative writes per command", opts: []mongoio.Option{mongoio.WithMaxWritesPerCommand(-1)}},
		{name: "zero flush concurrency", opts: []mongoio.Option{mongoio.WithFlushConcurrency(0)}},
		{name: "retries below -1", opts: []mongoio.Option{mongoio.WithMaxRetries(-2)}},
		{name: "zero backoff", opts: []mongoio.Option{mongoio.WithBackoff(0, time.Second)}},
		{name: "backoff max below min", opts: []mongoio.Option{mongoio.WithBackoff(time.Second, time.Millisecond)}},
		{name: "unacknowledged write concern", opts: []mongoio.Option{mongoio.WithWriteConcern(writeconcern.Unacknowledged())}},
		{name: "outage bounds", ok: true, opts: []mongoio.Option{mongoio.WithBatchSize(10), mongoio.WithMaxBuffered(10),
			mongoio.WithAttemptTimeout(time.Second), mongoio.WithMaxRetryTime(-1)}},
		{name: "buffer below the batch", opts: []mongoio.Option{mongoio.WithBatchSize(10), mongoio.WithMaxBuffered(9)}},
		{name: "negative buffer", opts: []mongoio.Option{mongoio.WithMaxBuffered(-1)}},
		{name: "zero attempt timeout", opts: []mongoio.Option{mongoio.WithAttemptTimeout(0)}},
		{name: "zero retry time", opts: []mongoio.Option{mongoio.WithMaxRetryTime(0)}},
		{name: "retry time below -1", opts: []mongoio.Option{mongoio.WithMaxRetryTime(-2)}},
		{name: "invalid write concern", opts: []mongoio.Option{mongoio.WithWriteConcern(&writeconcern.WriteConcern{W: -1})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, r := db, route
			if tt.name == "nil database" {
				d = tt.db
			}
			if tt.name == "nil route" {
				r = tt.route
			}
			s, err := mongoio.NewSink(d, r, tt.opts...)
			if tt.ok {
				require.NoError(t, err, "valid options")
				require.NoError(t, s.Close(t.Context()), "close")
				return
			}
			require.ErrorIs(t, err, mongoio.ErrInvalidOption, "invalid options are an error, not a panic")
			assert.Nil(t, s, "no sink")
		})
	}
}
