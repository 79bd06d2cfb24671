package mongoiotest_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/mongoio"
)

// TestUpsertIdempotent writes the same documents twice, the second time
// with new prices: each _id has one document, with the latest content.
func TestUpsertIdempotent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []mongoio.Option
		n    int // events; documents are n per window
	}{
		{name: "batches of 7", n: 5, opts: []mongoio.Option{mongoio.WithBatchSize(7)}},
		{name: "one batch", n: 5},
		{name: "explicit command cap", n: 10, opts: []mongoio.Option{mongoio.WithMaxWritesPerCommand(4)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, db := startDB(t)
			s := newSink(t, db, tt.opts...)

			first, second := zscores(tt.n, 99190.48), zscores(tt.n, 99013.2)
			writeAll(t, s, first)
			require.NoError(t, s.Flush(t.Context()), "first flush")
			writeAll(t, s, second)
			require.NoError(t, s.Flush(t.Context()), "second flush")
			writeAll(t, s, second)
			require.NoError(t, s.Flush(t.Context()), "replay of the second flush")

			for _, w := range windows {
				got := readAll(t, db, "btc-price-zscore-"+w)
				require.Len(t, got, tt.n, "one document per _id in %s", w)
				for i, d := range got {
					assert.Equal(t, second[i*len(windows)].ID, d.ID, "_id of document %d in %s", i, w)
					assert.InDelta(t, 99013.2, d.Price, 0, "latest price of %s in %s", d.ID, w)
					assert.Equal(t, w, d.Window, "window field of %s", d.ID)
				}
				assert.True(t, t0.Equal(got[0].Time), "timestamp is a BSON date: %v", got[0].Time)
			}
			st := s.Stats()
			total := uint64(tt.n * len(windows))
			assert.Equal(t, 3*total, st.Written, "every write acknowledged")
			assert.Equal(t, total, st.Upserted, "only the first flush creates documents")
			assert.Zero(t, st.Retries, "no retries")
			assert.Zero(t, st.Buffered, "nothing left buffered")
		})
	}
}

// TestFerretDBCommandCap replaces 120 documents of one collection in one
// flush, which hangs FerretDB v1 when sent as one update command.
func TestFerretDBCommandCap(t *testing.T) {
	t.Parallel()
	_, db := startDB(t)
	s, err := mongoio.NewSink(db, func(d zscore) (mongoio.Route, error) {
		d.ID = d.Window + "|" + d.ID
		return mongoio.Route{Collection: "one", Doc: d}, nil
	}, mongoio.WithLogger(quietLogger(t)))
	require.NoError(t, err, "NewSink")
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for _, p := range []float64{1, 2} {
		for _, d := range zscores(20, p) {
			require.NoError(t, s.Write(ctx, d), "write")
		}
		require.NoError(t, s.Flush(ctx), "flush of price %v", p)
	}
	n, err := db.Collection("one").CountDocuments(ctx, bson.D{{Key: "price", Value: 2.0}})
	require.NoError(t, err, "count")
	assert.Equal(t, int64(120), n, "every document replaced")
	assert.Zero(t, s.Stats().Retries, "no timeouts, no retries")
}

// TestBufferDeduplicates writes one _id several times between flushes:
// only the last write is sent.
func TestBufferDeduplicates(t *testing.T) {
	t.Parallel()
	_, db := startDB(t)
	s := newSink(t, db)
	for _, p := range []float64{1, 2, 3} {
		d := zscores(1, p)[0]
		require.NoError(t, s.Write(t.Context(), d), "write price %v", p)
	}
	assert.Equal(t, uint64(1), s.Stats().Buffered, "one buffered write per _id")
	require.NoError(t, s.Flush(t.Context()), "flush")
	got := readAll(t, db, "btc-price-zscore-30s")
	require.Len(t, got, 1, "one document")
	assert.InDelta(t, 3.0, got[0].Price, 0, "last write wins")
	assert.Equal(t, uint64(2), s.Stats().Deduplicated, "two writes replaced in the buffer")
}

// TestRouting sends each window's documents to its own collection.
func TestRouting(t *testing.T) {
	t.Parallel()
	_, db := startDB(t)
	s := newSink(t, db)
	writeAll(t, s, zscores(3, 100))
	require.NoError(t, s.Flush(t.Context()), "flush")

	names, err := db.ListCollectionNames(t.Context(), bson.D{})
	require.NoError(t, err, "list collections")
	want := make([]string, len(windows))
	for i, w := range windows {
		want[i] = "btc-price-zscore-" + w
	}
	assert.ElementsMatch(t, want, names, "one collection per window")
	for _, w := range windows {
		got := readAll(t, db, "btc-price-zscore-"+w)
		require.Len(t, got, 3, "documents in %s", w)
		for _, d := range got {
			assert.Equal(t, w, d.Window, "document %s routed to its window", d.ID)
		}
	}
	assert.Equal(t, uint64(len(windows)), s.Stats().Batches, "one bulk write per collection")
}

// TestBatchSize flushes from Write when the buffer is full.
func TestBatchSize(t *testing.T) {
	t.Parallel()
	_, db := startDB(t)
	s := newSink(t, db, mongoio.WithBatchSize(10))
	writeAll(t, s, zscores(4, 100)) // 24 writes: two automatic flushes
	st := s.Stats()
	assert.Equal(t, uint64(20), st.Written, "two full batches written by Write")
	assert.Equal(t, uint64(4), st.Buffered, "the rest stays buffered")
	require.NoError(t, s.Flush(t.Context()), "flush")
	assert.Equal(t, uint64(24), s.Stats().Written, "everything written after Flush")
}

// TestServerRestart stops the server around a flush and starts it again
// on the same port and data: the flush retries until the server is back,
// and every document is there exactly once.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		during bool // stop the server while the flush runs
	}{
		{name: "down when the flush starts"},
		{name: "goes down during the flush", during: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, db := startDB(t)
			// Bulk writes of 8: the 300 documents take about 50 bulk
			// writes (inserts are fast), so the server stops in the middle.
			s := newSink(t, db, mongoio.WithMaxRetries(-1), mongoio.WithBatchSize(1_000_000), mongoio.WithMaxWritesPerCommand(8))

			// A first flush opens connections, which the outage breaks.
			// Its documents are replaced by the next flush, the others
			// inserted.
			writeAll(t, s, zscores(10, 1))
			require.NoError(t, s.Flush(t.Context()), "flush before the outage")

			const events = 50
			writeAll(t, s, zscores(events, 2))

			restarted := make(chan error, 1)
			if tt.during {
				// Stop the server once the flush has written 2 bulk writes.
				before := s.Stats().Written
				go func() {
					for s.Stats().Written < before+64 {
						time.Sleep(time.Millisecond)
					}
					if err := m.Stop(); err != nil {
						restarted <- err
						return
					}
					time.Sleep(1500 * time.Millisecond)
					restarted <- m.Start()
				}()
			} else {
				require.NoError(t, m.Stop(), "stop the server")
				go func() {
					time.Sleep(1500 * time.Millisecond)
					restarted <- m.Start()
				}()
			}

			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			start := time.Now()
			require.NoError(t, s.Flush(ctx), "flush completes once the server is back")
			require.NoError(t, <-restarted, "restart the server")
			t.Logf("flush took %v with %d retries", time.Since(start), s.Stats().Retries)

			assert.Positive(t, s.Stats().Retries, "the outage caused retries")
			assert.Zero(t, s.Stats().Buffered, "nothing left buffered")
			for _, w := range windows {
				got := readAll(t, db, "btc-price-zscore-"+w)
				require.Len(t, got, events, "every document of %s, once", w)
				for _, d := range got {
					assert.InDelta(t, 2.0, d.Price, 0, "latest content of %s in %s", d.ID, w)
				}
			}
		})
	}
}

// TestRetriesExhausted keeps the server down: the flush gives up after
// MaxRetries, keeps its writes, and a later flush writes them.
func TestRetriesExhausted(t *testing.T) {
	t.Parallel()
	m, db := startDB(t)
	s := newSink(t, db, mongoio.WithMaxRetries(2), mongoio.WithBackoff(10*time.Millisecond, 10*time.Millisecond))
	writeAll(t, s, zscores(2, 1))
	require.NoError(t, m.Stop(), "stop the server")

	err := s.Flush(t.Context())
	require.ErrorIs(t, err, mongoio.ErrRetriesExhausted, "flush gives up")
	// Depending on timing the driver reports the down server as a server
	// selection timeout or as a refused connection during the handshake.
	assert.Regexp(t, `server selection|connection refused`, err.Error(), "the last error is in the message")
	st := s.Stats()
	assert.Equal(t, uint64(2), st.Retries, "MaxRetries retries")
	assert.Equal(t, uint64(12), st.Buffered, "the writes stay buffered")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = s.Flush(ctx)
	require.ErrorIs(t, err, context.Canceled, "a canceled flush reports its context")
	assert.Equal(t, uint64(12), s.Stats().Buffered, "the writes stay buffered")

	require.NoError(t, m.Start(), "start the server")
	require.NoError(t, s.Flush(t.Context()), "a later flush writes them")
	assert.Len(t, readAll(t, db, "btc-price-zscore-1h"), 2, "documents written after the outage")
}

// TestWriteWaitsUnderContext blocks Write and Flush behind a background
// flush that retries without end: they give up when their context is done.
func TestWriteWaitsUnderContext(t *testing.T) {
	t.Parallel()
	m, db := startDB(t)
	s := newSink(t, db, mongoio.WithMaxRetries(-1), mongoio.WithFlushInterval(time.Millisecond))
	require.NoError(t, m.Stop(), "stop the server")
	writeAll(t, s, zscores(1, 1)[:1])
	require.Eventually(t, func() bool { return s.Stats().Retries > 0 }, 10*time.Second, time.Millisecond,
		"the background flush retries")

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err := s.Write(ctx, zscores(2, 1)[6])
	require.ErrorIs(t, err, context.DeadlineExceeded, "Write gives up when its context is done")
	require.ErrorIs(t, s.Flush(ctx), context.DeadlineExceeded, "so does Flush")

	require.NoError(t, m.Start(), "start the server")
	require.Eventually(t, func() bool { return s.Stats().Written == 1 }, 10*time.Second, time.Millisecond,
		"the background flush recovers")
}

// TestInvalidRecords checks the records Write refuses before buffering.
func TestInvalidRecords(t *testing.T) {
	t.Parallel()
	_, db := startDB(t)
	errRoute := errors.New("no route for this record")
	tests := []struct {
		name  string
		route mongoio.Route
		err   error
	}{
		{name: "route error", err: errRoute},
		{name: "empty collection", route: mongoio.Route{ID: 1, Doc: bson.D{}}},
		{name: "collection with $", route: mongoio.Route{Collection: "a$b", ID: 1, Doc: bson.D{}}},
		{name: "system collection", route: mongoio.Route{Collection: "system.users", ID: 1, Doc: bson.D{}}},
		{name: "nil doc", route: mongoio.Route{Collection: "c", ID: 1}},
		{name: "doc is not a document", route: mongoio.Route{Collection: "c", ID: 1, Doc: 42}},
		{name: "update operator", route: mongoio.Route{Collection: "c", ID: 1, Doc: bson.D{{Key: "$set", Value: bson.D{{Key: "a", Value: 1}}}}}},
		{name: "no _id", route: mongoio.Route{Collection: "c", Doc: bson.D{{Key: "a", Value: 1}}}},
		{name: "null _id", route: mongoio.Route{Collection: "c", ID: bson.Null{}, Doc: bson.D{{Key: "a", Value: 1}}}},
		{name: "conflicting _id", route: mongoio.Route{Collection: "c", ID: "x", Doc: bson.D{{Key: "_id", Value: "y"}}}},
		{name: "unmarshalable ID", route: mongoio.Route{Collection: "c", ID: make(chan int), Doc: bson.D{}}},
		{name: "document too large", route: mongoio.Route{Collection: "c", ID: 1, Doc: bson.D{{Key: "a", Value: strings.Repeat("x", 16<<20)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := mongoio.NewSink(db, func(mongoio.Route) (mongoio.Route, error) { return tt.route, tt.err })
			require.NoError(t, err, "NewSink")
			err = s.Write(t.Context(), tt.route)
			require.ErrorIs(t, err, mongoio.ErrInvalidRecord, "Write refuses the record")
			if tt.err != nil {
				assert.ErrorIs(t, err, tt.err, "the route error is wrapped")
			}
			assert.Zero(t, s.Stats().Buffered, "nothing buffered")
			require.NoError(t, s.Close(t.Context()), "close")
		})
	}

	t.Run("valid shapes", func(t *testing.T) {
		t.Parallel()
		s, err := mongoio.NewSink(db, func(r mongoio.Route) (mongoio.Route, error) { return r, nil })
		require.NoError(t, err, "NewSink")
		raw, err := bson.Marshal(bson.D{{Key: "a", Value: 3}})
		require.NoError(t, err, "marshal")
		for i, r := range []mongoio.Route{
			{Collection: "shapes", ID: "from-route", Doc: bson.D{{Key: "a", Value: 1}}},
			{Collection: "shapes", Doc: bson.D{{Key: "_id", Value: "from-doc"}}},
			{Collection: "shapes", ID: "both", Doc: bson.M{"_id": "both", "a": 2}},
			{Collection: "shapes", ID: int64(7), Doc: bson.Raw(raw)},
		} {
			require.NoError(t, s.Write(t.Context(), r), "write shape %d", i)
		}
		require.NoError(t, s.Close(t.Context()), "close flushes")
		n, err := db.Collection("shapes").CountDocuments(t.Context(), bson.D{})
		require.NoError(t, err, "count")
		assert.Equal(t, int64(4), n, "every shape written")
	})
}

// TestRejectedWrites mixes writes the server refuses with good ones: the
// flush fails fast, reports exactly the refused records, and writes the
// rest.
func TestRejectedWrites(t *testing.T) {
	t.Parallel()
	type rec struct {
		ID  int
		Doc bson.D
	}
	tests := []struct {
		name   string
		unique bool // a unique index on field u
		recs   []rec
		bad    []int // IDs of the rejected records
		dup    bool  // rejections are duplicate-key errors
	}{
		{
			name: "invalid field name",
			recs: []rec{
				{1, bson.D{{Key: "u", Value: 1}}},
				{2, bson.D{{Key: "v", Value: bson.D{{Key: "$bad", Value: 1}}}}},
				{3, bson.D{{Key: "u", Value: 3}}},
				{4, bson.D{{Key: "v", Value: bson.D{{Key: "$bad", Value: 2}}}}},
				{5, bson.D{{Key: "u", Value: 5}}},
			},
			bad: []int{2, 4},
		},
		{
			name:   "duplicate key on a unique index",
			unique: true,
			recs: []rec{
				{1, bson.D{{Key: "u", Value: 1}}},
				{2, bson.D{{Key: "u", Value: 1}}},
				{3, bson.D{{Key: "u", Value: 3}}},
			},
			bad: []int{2},
			dup: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, db := startDB(t)
			s, err := mongoio.NewSink(db, func(r rec) (mongoio.Route, error) {
				return mongoio.Route{Collection: "rejects", ID: r.ID, Doc: r.Doc}, nil
			}, mongoio.WithLogger(quietLogger(t)))
			require.NoError(t, err, "NewSink")
			t.Cleanup(func() { _ = s.Close(context.Background()) })
			if tt.unique {
				_, err := s.EnsureIndexes(t.Context(), "rejects", mongo.IndexModel{
					Keys: bson.D{{Key: "u", Value: 1}}, Options: options.Index().SetUnique(true),
				})
				require.NoError(t, err, "unique index")
			}
			for _, r := range tt.recs {
				require.NoError(t, s.Write(t.Context(), r), "write %d", r.ID)
			}

			start := time.Now()
			err = s.Flush(t.Context())
			require.ErrorIs(t, err, mongoio.ErrRejected, "flush reports rejections")
			assert.Less(t, time.Since(start), 5*time.Second, "no endless retry")
			var rej *mongoio.RejectedError[rec]
			require.ErrorAs(t, err, &rej, "a *RejectedError of the record type")
			var got []int
			for _, r := range rej.Rejections {
				got = append(got, r.Record.ID)
				assert.Equal(t, "rejects", r.Collection, "collection of %d", r.Record.ID)
				assert.Equal(t, int32(r.Record.ID), r.ID.Int32(), "_id of %d", r.Record.ID)
				if tt.dup {
					assert.True(t, mongo.IsDuplicateKeyError(r.Err), "duplicate key error for %d: %v", r.Record.ID, r.Err)
				}
			}
			slices.Sort(got)
			assert.Equal(t, tt.bad, got, "exactly the bad records are rejected")
			assert.Contains(t, rej.Error(), fmt.Sprintf("mongoio: %d writes rejected; rejects/", len(tt.bad)), "the message counts them")
			if len(tt.bad) > 3 {
				assert.Contains(t, rej.Error(), fmt.Sprintf("; and %d more", len(tt.bad)-3), "and shows the first three")
			}
			for _, r := range rej.Rejections {
				assert.ErrorIs(t, rej, r.Err, "each rejection's error is wrapped")
			}

			st := s.Stats()
			assert.Zero(t, st.Retries, "rejections are not retried")
			assert.Zero(t, st.Buffered, "rejected writes leave the buffer")
			assert.Equal(t, uint64(len(tt.bad)), st.Rejected, "rejection count")
			n, err := db.Collection("rejects").CountDocuments(t.Context(), bson.D{})
			require.NoError(t, err, "count")
			assert.Equal(t, int64(len(tt.recs)-len(tt.bad)), n, "every good record is written")
			require.NoError(t, s.Flush(t.Context()), "the next flush has nothing to report")
		})
	}
}

// TestNonTransientError gets an error that is neither transient nor a
// rejection of single writes: the flush returns it at once and keeps the
// writes.
func TestNonTransientError(t *testing.T) {
	t.Parallel()
	_, db := startDB(t)
	// FerretDB refuses this collection name, which MongoDB accepts.
	s, err := mongoio.NewSink(db, func(i int) (mongoio.Route, error) {
		return mongoio.Route{Collection: "_ferretdb_reserved", ID: i, Doc: bson.D{}}, nil
	}, mongoio.WithLogger(quietLogger(t)))
	require.NoError(t, err, "NewSink")
	require.NoError(t, s.Write(t.Context(), 1), "write")
	err = s.Flush(t.Context())
	require.Error(t, err, "flush fails")
	assert.ErrorContains(t, err, "mongoio: write 1 documents to btc._ferretdb_reserved", "context in the message")
	var ce mongo.CommandError
	assert.ErrorAs(t, err, &ce, "the driver error is wrapped")
	assert.Zero(t, s.Stats().Retries, "not retried")
	assert.Equal(t, uint64(1), s.Stats().Buffered, "the write stays buffered")
	err = s.Close(t.Context())
	assert.ErrorContains(t, err, "1 writes still buffered", "Close reports what it could not write")
	assert.Equal(t, uint64(1), s.Stats().Buffered, "and keeps it")
}

// TestMaxRetryTime keeps the server down with unbounded retry counts: the
// flush gives up once MaxRetryTime has passed.
func TestMaxRetryTime(t *testing.T) {
	t.Parallel()
	m, db := startDB(t)
	s := newSink(t, db, mongoio.WithMaxRetries(-1), mongoio.WithMaxRetryTime(1500*time.Millisecond),
		mongoio.WithBackoff(20*time.Millisecond, 100*time.Millisecond))
	writeAll(t, s, zscores(1, 1))
	require.NoError(t, m.Stop(), "stop the server")
	began := time.Now()
	err := s.Flush(t.Context())
	took := time.Since(began)
	require.ErrorIs(t, err, mongoio.ErrRetriesExhausted, "the flush gives up")
	assert.GreaterOrEqual(t, took, time.Second, "after retrying")
	assert.Less(t, took, 10*time.Second, "not forever")
	assert.Equal(t, uint64(6), s.Stats().Buffered, "the writes stay buffered")
	require.NoError(t, m.Start(), "start the server")
	require.NoError(t, s.Flush(t.Context()), "a later flush writes them")
}

// TestBufferBounded: while the server is down the buffer stops at
// MaxBuffered: Write flushes, fails, and refuses the record with
// ErrBufferFull instead of buffering it; a write of a buffered _id replaces
// it and is accepted. Once the server is back everything buffered is
// written and Write accepts records again.
func TestBufferBounded(t *testing.T) {
	t.Parallel()
	m, db := startDB(t)
	s := newSink(t, db, mongoio.WithBatchSize(2), mongoio.WithMaxBuffered(5), mongoio.WithMaxRetries(0))
	require.NoError(t, m.Stop(), "stop the server")
	docs := zscores(2, 1) // 12 records, one collection per window
	var full, accepted int
	for _, d := range docs {
		err := s.Write(t.Context(), d)
		if errors.Is(err, mongoio.ErrBufferFull) {
			full++
			assert.ErrorIs(t, err, mongoio.ErrRetriesExhausted, "with the flush's error")
			continue
		}
		accepted++
	}
	st := s.Stats()
	assert.Equal(t, uint64(5), st.Buffered, "the buffer stops at MaxBuffered")
	assert.Equal(t, 5, accepted, "records buffered")
	assert.Equal(t, len(docs)-5, full, "records refused")
	require.NoError(t, s.Write(t.Context(), docs[0]), "a write of a buffered _id replaces it")
	assert.Equal(t, uint64(5), s.Stats().Buffered, "still 5")

	require.NoError(t, m.Start(), "start the server")
	require.NoError(t, s.Flush(t.Context()), "the buffered writes are written")
	for _, d := range docs[5:] {
		require.NoError(t, s.Write(t.Context(), d), "Write accepts records again")
	}
	require.NoError(t, s.Flush(t.Context()), "flush")
	n := 0
	for _, w := range windows {
		n += len(readAll(t, db, "btc-price-zscore-"+w))
	}
	assert.Equal(t, len(docs), n, "every document once")
}

// TestCloseDuringOutage: Close while the server is down drops nothing: it
// fails, says how many writes it holds, and stays open with them; once the
// server is back a second Close writes them and closes the sink.
func TestCloseDuringOutage(t *testing.T) {
	t.Parallel()
	m, db := startDB(t)
	s := newSink(t, db, mongoio.WithMaxRetries(1), mongoio.WithBackoff(10*time.Millisecond, 10*time.Millisecond),
		mongoio.WithFlushInterval(10*time.Millisecond))
	writeAll(t, s, zscores(1, 1))
	require.NoError(t, m.Stop(), "stop the server")
	writeAll(t, s, zscores(2, 2)[6:])
	err := s.Close(t.Context())
	require.ErrorIs(t, err, mongoio.ErrRetriesExhausted, "Close reports the outage")
	assert.ErrorContains(t, err, "writes still buffered", "and that it keeps the writes")
	assert.Positive(t, s.Stats().Buffered, "the writes stay buffered")
	require.NoError(t, m.Start(), "start the server")
	require.NoError(t, s.Close(t.Context()), "Close again writes them")
	assert.Zero(t, s.Stats().Buffered, "nothing left")
	assert.ErrorIs(t, s.Write(t.Context(), zscores(1, 1)[0]), mongoio.ErrClosed, "closed now")
	assert.Len(t, readAll(t, db, "btc-price-zscore-1m"), 2, "both documents of the window written")
}

func TestEnsureIndexes(t *testing.T) {
	t.Parallel()
	_, db := startDB(t)
	s := newSink(t, db)
	models := []mongo.IndexModel{
		{Keys: bson.D{{Key: "symbol", Value: 1}, {Key: "timestamp", Value: 1}}},
		{Keys: bson.D{{Key: "price", Value: -1}}, Options: options.Index().SetName("by_price")},
	}
	for range 2 { // the second call finds them in place
		names, err := s.EnsureIndexes(t.Context(), "btc-price-zscore-30s", models...)
		require.NoError(t, err, "create indexes")
		assert.Equal(t, []string{"symbol_1_timestamp_1", "by_price"}, names, "index names")
	}
	specs, err := db.Collection("btc-price-zscore-30s").Indexes().ListSpecifications(t.Context())
	require.NoError(t, err, "list indexes")
	var got []string
	for _, sp := range specs {
		got = append(got, sp.Name)
	}
	assert.ElementsMatch(t, []string{"_id_", "symbol_1_timestamp_1", "by_price"}, got, "indexes in place")

	names, err := s.EnsureIndexes(t.Context(), "btc-price-zscore-30s")
	assert.NoError(t, err, "no models is a no-op")
	assert.Empty(t, names, "no names")
	_, err = s.EnsureIndexes(t.Context(), "", models...)
	assert.Error(t, err, "invalid collection name")
	_, err = s.EnsureIndexes(t.Context(), "btc-price-zscore-30s", mongo.IndexModel{
		Keys: bson.D{{Key: "window", Value: 1}}, Options: options.Index().SetName("by_price"),
	})
	var ce mongo.CommandError
	require.ErrorAs(t, err, &ce, "an index name taken by other keys is an error")
	assert.Equal(t, int32(86), ce.Code, "IndexKeySpecsConflict")
	assert.Zero(t, s.Stats().Retries, "and is not retried")
}

// TestFlushInterval writes without calling Flush: the background flush
// writes the documents, and Close stops it.
func TestFlushInterval(t *testing.T) {
	t.Parallel()
	_, db := startDB(t)
	s := newSink(t, db, mongoio.WithFlushInterval(20*time.Millisecond))
	writeAll(t, s, zscores(2, 1))
	require.Eventually(t, func() bool { return s.Stats().Written == 12 }, 10*time.Second, 10*time.Millisecond,
		"background flush writes the buffer")
	assert.Len(t, readAll(t, db, "btc-price-zscore-5m"), 2, "documents written")
	require.NoError(t, s.Close(t.Context()), "close")
	require.NoError(t, s.Close(t.Context()), "Close is idempotent")
}

func TestClose(t *testing.T) {
	t.Parallel()
	_, db := startDB(t)
	s := newSink(t, db)
	writeAll(t, s, zscores(1, 1))
	require.NoError(t, s.Close(t.Context()), "Close flushes")
	assert.Len(t, readAll(t, db, "btc-price-zscore-1m"), 1, "buffered write flushed by Close")
	assert.ErrorIs(t, s.Write(t.Context(), zscores(1, 1)[0]), mongoio.ErrClosed, "Write after Close")
	assert.ErrorIs(t, s.Flush(t.Context()), mongoio.ErrClosed, "Flush after Close")
	_, err := s.EnsureIndexes(t.Context(), "c", mongo.IndexModel{Keys: bson.D{{Key: "a", Value: 1}}})
	assert.ErrorIs(t, err, mongoio.ErrClosed, "EnsureIndexes after Close")
}

// TestConcurrentWriters writes from several goroutines while a background
// flush runs; run with -race.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	_, db := startDB(t)
	s := newSink(t, db, mongoio.WithBatchSize(50), mongoio.WithFlushInterval(5*time.Millisecond))
	const writers, perWriter = 4, 60
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				d := zscores(1, float64(i))[0]
				d.ID = fmt.Sprintf("w%d|%03d", w, i)
				if err := s.Write(t.Context(), d); err != nil {
					t.Errorf("writer %d, write %d: %v", w, i, err)
					return
				}
				_ = s.Stats()
			}
		})
	}
	wg.Wait()
	require.NoError(t, s.Flush(t.Context()), "flush")
	assert.Len(t, readAll(t, db, "btc-price-zscore-30s"), writers*perWriter, "every write from every goroutine")
	assert.Equal(t, uint64(writers*perWriter), s.Stats().Written, "acknowledged writes")
}

// TestNullZscore stores a null z-score as BSON null.
func TestNullZscore(t *testing.T) {
	t.Parallel()
	_, db := startDB(t)
	s := newSink(t, db)
	d := zscores(1, 1)[0]
	d.Z = nil
	require.NoError(t, s.Write(t.Context(), d), "write")
	require.NoError(t, s.Flush(t.Context()), "flush")
	var raw bson.Raw
	require.NoError(t, db.Collection("btc-price-zscore-30s").FindOne(t.Context(), bson.D{}).Decode(&raw), "find")
	assert.Equal(t, bson.TypeNull, raw.Lookup("zscore_price").Type, "null z-score")
	assert.Equal(t, bson.TypeDateTime, raw.Lookup("timestamp").Type, "timestamp is a BSON date")
	assert.False(t, math.IsNaN(raw.Lookup("price").Double()), "price stored")
}
