package mongoio_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/tidemark-go/tidemark/mongoio"
)

// windowColls are the collections of routeZ, in the order zscores writes
// to them.
func windowColls() []string {
	c := make([]string, len(windows))
	for i, w := range windows {
		c[i] = "btc-price-zscore-" + w
	}
	return c
}

// TestFlushConcurrency counts the bulk writes that run at once: up to
// FlushConcurrency, one per collection.
func TestFlushConcurrency(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		ferretDB bool
		opts     []mongoio.Option
		want     int
	}{
		{name: "default", want: min(mongoio.DefaultFlushConcurrency, len(windows))},
		{name: "FerretDB default", ferretDB: true, want: 1},
		{name: "FerretDB set", ferretDB: true, opts: []mongoio.Option{mongoio.WithFlushConcurrency(6)}, want: 6},
		{name: "one at a time", opts: []mongoio.Option{mongoio.WithFlushConcurrency(1)}, want: 1},
		{name: "three", opts: []mongoio.Option{mongoio.WithFlushConcurrency(3)}, want: 3},
		{name: "more than collections", opts: []mongoio.Option{mongoio.WithFlushConcurrency(100)}, want: len(windows)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeServer{ferretDB: tt.ferretDB, delay: 50 * time.Millisecond}
			s := newSink(t, startFakeServer(t, f), tt.opts...)
			warmUp(t, s, f)
			writeAll(t, s, zscores(2, 1))
			require.NoError(t, s.Flush(t.Context()), "flush")
			cmd := "update"
			if tt.ferretDB {
				cmd = "insert"
			}
			assert.Equal(t, tt.want, f.MaxInFlight(cmd), "bulk writes at once")
			_, docs := callCounts(f.Calls())
			for _, c := range windowColls() {
				assert.Equal(t, 2+1, docs[cmd+" "+c], "documents sent to %s", c)
			}
			assert.Equal(t, uint64(12+6), s.Stats().Written, "every write acknowledged")
		})
	}
}

// warmUp flushes one event, so that the client has opened the connections
// a flush needs (it opens at most 2 at a time) before the test counts
// concurrent commands.
func warmUp(t *testing.T, s *mongoio.Sink[zscore], f *fakeServer) {
	t.Helper()
	for _, d := range zscores(1, 0) {
		d.ID = "warm-up|" + d.ID
		require.NoError(t, s.Write(t.Context(), d), "write")
	}
	require.NoError(t, s.Flush(t.Context()), "warm-up flush")
	f.ResetMaxInFlight()
}

// TestFailedCollectionRetriedAlone fails the first bulk write of one
// collection transiently: the retry sends that collection's writes again,
// and only those.
func TestFailedCollectionRetriedAlone(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		reply bson.D
	}{
		{name: "server error", reply: errShutdown},
		{name: "connection dropped", reply: dropConnection},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeServer{reply: func(cmd, coll string, attempt int, _ []bson.Raw) bson.D {
				if coll == "btc-price-zscore-5m" && attempt == 1 {
					return tt.reply
				}
				return nil
			}}
			s := newSink(t, startFakeServer(t, f), mongoio.WithFlushConcurrency(6))
			writeAll(t, s, zscores(3, 1))
			require.NoError(t, s.Flush(t.Context()), "flush recovers")
			commands, docs := callCounts(f.Calls())
			for _, c := range windowColls() {
				want := 1
				if c == "btc-price-zscore-5m" {
					want = 2
				}
				assert.Equal(t, want, commands["update "+c], "bulk writes to %s", c)
				assert.Equal(t, 3*want, docs["update "+c], "documents sent to %s", c)
			}
			st := s.Stats()
			assert.Equal(t, uint64(1), st.Retries, "one retry")
			assert.Equal(t, uint64(18), st.Written, "every write acknowledged once")
			assert.Zero(t, st.Buffered, "nothing left buffered")
		})
	}
}

// TestNonTransientErrorInOneCollection fails one collection for good: the
// flush returns its error at once and keeps its writes; the collections
// written concurrently are done, and with WithFlushConcurrency(1) the
// collections after it are not started.
func TestNonTransientErrorInOneCollection(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		concurrency int
		written     []string // collections written by the failed flush
	}{
		{name: "concurrent", concurrency: 6, written: []string{"30s", "5m", "15m", "30m", "1h"}},
		{name: "one at a time", concurrency: 1, written: []string{"30s"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeServer{reply: func(cmd, coll string, attempt int, _ []bson.Raw) bson.D {
				if coll == "btc-price-zscore-1m" && attempt == 1 {
					return errUnauthorized
				}
				return nil
			}}
			s := newSink(t, startFakeServer(t, f), mongoio.WithFlushConcurrency(tt.concurrency))
			writeAll(t, s, zscores(2, 1))
			err := s.Flush(t.Context())
			require.Error(t, err, "flush fails")
			var ce mongo.CommandError
			require.ErrorAs(t, err, &ce, "the server's error")
			assert.Equal(t, int32(13), ce.Code, "Unauthorized")
			assert.ErrorContains(t, err, "btc.btc-price-zscore-1m", "the collection is named")
			st := s.Stats()
			assert.Zero(t, st.Retries, "not retried")
			assert.Equal(t, uint64(2*len(tt.written)), st.Written, "writes acknowledged")
			assert.Equal(t, uint64(12-2*len(tt.written)), st.Buffered, "writes kept")
			_, docs := callCounts(f.Calls())
			for _, w := range tt.written {
				assert.Equal(t, 2, docs["update btc-price-zscore-"+w], "documents sent to %s", w)
			}

			require.NoError(t, s.Flush(t.Context()), "the next flush writes the rest")
			_, docs = callCounts(f.Calls())
			for _, c := range windowColls() {
				want := 2
				if c == "btc-price-zscore-1m" {
					want = 4
				}
				assert.Equal(t, want, docs["update "+c], "documents sent to %s in all", c)
			}
			assert.Equal(t, uint64(12), s.Stats().Written, "every write acknowledged once")
		})
	}
}

// TestInsertFirstStrategy checks which commands each strategy sends, and
// that on FerretDB the replacements run one bulk write at a time while the
// inserts run concurrently.
func TestInsertFirstStrategy(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		ferretDB bool
		opts     []mongoio.Option
		insert   bool
	}{
		{name: "MongoDB default: upserts", insert: false},
		{name: "MongoDB forced", opts: []mongoio.Option{mongoio.WithInsertFirst()}, insert: true},
		{name: "FerretDB default: insert first", ferretDB: true, insert: true},
		{name: "FerretDB forced off", ferretDB: true, opts: []mongoio.Option{mongoio.WithUpsertOnly()}, insert: false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeServer{ferretDB: tt.ferretDB, delay: 20 * time.Millisecond,
				reply: func(cmd, _ string, _ int, docs []bson.Raw) bson.D {
					if cmd == "insert" {
						return duplicates(docs) // every _id exists: replace them all
					}
					return nil
				}}
			s := newSink(t, startFakeServer(t, f), append([]mongoio.Option{mongoio.WithFlushConcurrency(6)}, tt.opts...)...)
			warmUp(t, s, f)
			calls := len(f.Calls())
			writeAll(t, s, zscores(40, 1)) // 40 writes per collection
			require.NoError(t, s.Flush(t.Context()), "flush")
			commands, docs := callCounts(f.Calls()[calls:])
			for _, c := range windowColls() {
				if tt.insert {
					assert.Equal(t, 1, commands["insert "+c], "one insert for all of %s", c)
					assert.Equal(t, 40, docs["insert "+c], "documents inserted into %s", c)
				} else {
					assert.Zero(t, commands["insert "+c], "no insert into %s", c)
				}
				assert.Equal(t, 40, docs["update "+c], "documents replaced in %s", c)
				if tt.insert {
					assert.Equal(t, 1, commands["find "+c], "the duplicates of %s read back", c)
					assert.Equal(t, 40, docs["find "+c], "_ids read back from %s", c)
				} else {
					assert.Zero(t, commands["find "+c], "no find in %s", c)
				}
				if tt.ferretDB {
					assert.Equal(t, 2, commands["update "+c], "replacements in bulk writes of 32 at most in %s", c)
				}
			}
			if tt.insert {
				assert.Greater(t, f.MaxInFlight("insert"), 1, "inserts run concurrently")
			}
			if tt.ferretDB {
				assert.Equal(t, 1, f.MaxInFlight("update"), "replacements on FerretDB run one at a time")
			} else {
				assert.Greater(t, f.MaxInFlight("update"), 1, "replacements run concurrently")
			}
			st := s.Stats()
			assert.Equal(t, uint64(240+6), st.Written, "every write acknowledged once")
			assert.Zero(t, st.Retries, "no retries")
		})
	}
}

// TestInsertFirstPartialFailure makes a FerretDB insert fail for some
// documents: only those are sent as replacements; the flush succeeds.
func TestInsertFirstPartialFailure(t *testing.T) {
	t.Parallel()
	f := &fakeServer{ferretDB: true, reply: func(cmd, _ string, _ int, docs []bson.Raw) bson.D {
		if cmd != "insert" {
			return nil
		}
		// Documents 1 and 3 exist.
		errs := bson.A{
			bson.D{{Key: "index", Value: int32(3)}, {Key: "code", Value: int32(11000)}, {Key: "errmsg", Value: "E11000 duplicate key"}},
			bson.D{{Key: "index", Value: int32(1)}, {Key: "code", Value: int32(11000)}, {Key: "errmsg", Value: "E11000 duplicate key"}},
		}
		return bson.D{{Key: "n", Value: int32(len(docs) - 2)}, {Key: "writeErrors", Value: errs}, {Key: "ok", Value: 1.0}}
	}}
	s := newSink(t, startFakeServer(t, f))
	writeAll(t, s, zscores(5, 1))
	require.NoError(t, s.Flush(t.Context()), "flush")
	_, docs := callCounts(f.Calls())
	for _, c := range windowColls() {
		assert.Equal(t, 5, docs["insert "+c], "documents inserted into %s", c)
		assert.Equal(t, 2, docs["find "+c], "the duplicates of %s read back", c)
		assert.Equal(t, 2, docs["update "+c], "documents replaced in %s", c)
	}
	st := s.Stats()
	assert.Equal(t, uint64(30), st.Written, "every write acknowledged once")
	assert.Equal(t, uint64(30), st.Upserted, "18 inserted, 12 upserted by the fake")
	assert.Equal(t, uint64(12), st.Batches, "an insert and a replacement per collection")

	// An insert reply whose counts do not add up: everything is replaced.
	f.reply = func(cmd, _ string, _ int, docs []bson.Raw) bson.D {
		if cmd != "insert" {
			return nil
		}
		errs := bson.A{bson.D{{Key: "index", Value: int32(0)}, {Key: "code", Value: int32(2)}, {Key: "errmsg", Value: "bad value"}}}
		return bson.D{{Key: "n", Value: int32(0)}, {Key: "writeErrors", Value: errs}, {Key: "ok", Value: 1.0}}
	}
	writeAll(t, s, zscores(5, 2))
	require.NoError(t, s.Flush(t.Context()), "flush")
	_, docs = callCounts(f.Calls())
	for _, c := range windowColls() {
		assert.Equal(t, 2+5, docs["update "+c], "every document of the second flush replaced in %s", c)
		assert.Equal(t, 2, docs["find "+c], "no duplicates reported by the second flush: no find in %s", c)
	}
}

// TestInsertFirstSkipsUnchanged writes documents whose inserts all fail on
// duplicate keys: the sink reads them back with one find per collection
// and replaces only those whose stored content differs; when the find
// fails, it replaces them all.
func TestInsertFirstSkipsUnchanged(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		findErr  bool
		replaced int // per collection
	}{
		{name: "two of five changed", replaced: 2},
		{name: "find refused", findErr: true, replaced: 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			docs := zscores(5, 1)
			stored := map[string]bson.Raw{} // by collection and _id
			for i, d := range docs {
				if event := i / len(windows); event == 1 || event == 3 {
					d.Price = 2 // stored before, with other content
				}
				raw, err := bson.Marshal(d)
				require.NoError(t, err, "marshal")
				stored["btc-price-zscore-"+d.Window+" "+d.ID] = raw
			}
			f := &fakeServer{ferretDB: true,
				reply: func(cmd, _ string, _ int, docs []bson.Raw) bson.D {
					if cmd == "insert" {
						return duplicates(docs)
					}
					return nil
				},
				find: func(coll string, ids []bson.RawValue) ([]bson.Raw, bson.D) {
					if tt.findErr {
						return nil, errUnauthorized
					}
					var found []bson.Raw
					for _, id := range ids {
						if d, ok := stored[coll+" "+id.StringValue()]; ok {
							found = append(found, d)
						}
					}
					return found, nil
				},
			}
			s := newSink(t, startFakeServer(t, f))
			writeAll(t, s, docs)
			require.NoError(t, s.Flush(t.Context()), "flush")
			commands, n := callCounts(f.Calls())
			for _, c := range windowColls() {
				assert.Equal(t, 1, commands["find "+c], "one find in %s", c)
				assert.Equal(t, 5, n["find "+c], "_ids read back from %s", c)
				assert.Equal(t, tt.replaced, n["update "+c], "documents replaced in %s", c)
			}
			st := s.Stats()
			assert.Equal(t, uint64(30), st.Written, "every write counts as written")
			assert.Zero(t, st.Buffered, "nothing left buffered")
			assert.Zero(t, st.Retries, "no retries")
		})
	}
}
