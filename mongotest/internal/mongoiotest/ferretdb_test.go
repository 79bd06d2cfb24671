package mongoiotest_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/mongoio"
	"github.com/tidemark-go/tidemark/mongotest"
)

// TestInsertFirstMixed writes, in one flush, documents that exist and
// documents that do not, to FerretDB, with each strategy: the result is the
// same.
func TestInsertFirstMixed(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		opt         mongoio.Option
		insertFirst bool
	}{
		{name: "insert first", opt: mongoio.WithInsertFirst(), insertFirst: true},
		{name: "upserts only", opt: mongoio.WithUpsertOnly()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, db := startDB(t)
			s := newSink(t, db, tt.opt)
			writeAll(t, s, zscores(3, 1))
			require.NoError(t, s.Flush(t.Context()), "first flush")
			writeAll(t, s, zscores(6, 2)) // events 0-2 exist, 3-5 are new
			require.NoError(t, s.Flush(t.Context()), "second flush")
			for _, c := range windowColls() {
				got := readAll(t, db, c)
				require.Len(t, got, 6, "documents in %s", c)
				for _, d := range got {
					assert.InDelta(t, 2.0, d.Price, 0, "latest content of %s in %s", d.ID, c)
				}
			}
			st := s.Stats()
			assert.Equal(t, uint64(18+36), st.Written, "every write acknowledged")
			assert.Equal(t, uint64(36), st.Upserted, "documents created")
			assert.Zero(t, st.Retries, "no retries")
			if tt.insertFirst {
				assert.Equal(t, uint64(6+12), st.Batches, "first flush: inserts; second: inserts and replacements")
			} else {
				assert.Equal(t, uint64(12), st.Batches, "one bulk write per collection per flush")
			}

			// A replay of the second flush in which one document changed:
			// with inserts first, only its collection gets a replacement.
			replay := zscores(6, 2)
			replay[4*len(windows)+2].Price = 3 // event 4 in 5m
			writeAll(t, s, replay)
			require.NoError(t, s.Flush(t.Context()), "replay")
			for _, c := range windowColls() {
				got := readAll(t, db, c)
				require.Len(t, got, 6, "documents in %s", c)
				for _, d := range got {
					want := 2.0
					if c == "btc-price-zscore-5m" && d.ID == replay[4*len(windows)].ID {
						want = 3
					}
					assert.InDelta(t, want, d.Price, 0, "latest content of %s in %s", d.ID, c)
				}
			}
			st2 := s.Stats()
			assert.Equal(t, uint64(36), st2.Written-st.Written, "every write of the replay counts as written")
			assert.Zero(t, st2.Upserted-st.Upserted, "no document created")
			if tt.insertFirst {
				assert.Equal(t, uint64(6+1), st2.Batches-st.Batches, "inserts, and one replacement for the changed document")
			} else {
				assert.Equal(t, uint64(6), st2.Batches-st.Batches, "one bulk write per collection")
			}
		})
	}
}

// TestOneCollectionFailsOnFerretDB routes one record to a collection that
// FerretDB refuses: the other collections, written concurrently, are
// written by the same flush.
func TestOneCollectionFailsOnFerretDB(t *testing.T) {
	t.Parallel()
	_, db := startDB(t)
	s, err := mongoio.NewSink(db, func(d zscore) (mongoio.Route, error) {
		if d.Window == "15m" {
			return mongoio.Route{Collection: "_ferretdb_reserved", Doc: d}, nil
		}
		return routeZ(d)
	}, mongoio.WithLogger(quietLogger(t)), mongoio.WithFlushConcurrency(6))
	require.NoError(t, err, "NewSink")
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	writeAll(t, s, zscores(2, 1))
	err = s.Flush(t.Context())
	require.Error(t, err, "flush fails")
	assert.ErrorContains(t, err, "btc._ferretdb_reserved", "the failing collection is named")
	st := s.Stats()
	assert.Equal(t, uint64(10), st.Written, "the other collections are written")
	assert.Equal(t, uint64(2), st.Buffered, "the failing collection's writes stay buffered")
	assert.Zero(t, st.Retries, "not retried")
	for _, w := range []string{"30s", "1m", "5m", "30m", "1h"} {
		assert.Len(t, readAll(t, db, "btc-price-zscore-"+w), 2, "documents in %s", w)
	}
}

// TestPostgresBackend runs the load path on FerretDB with its PostgreSQL
// backend, when TIDEMARK_POSTGRES_URL names a server
// (scripts/postgres/pg.sh start): new documents, then a flush that
// replaces some and creates others, with the collections written
// concurrently.
func TestPostgresBackend(t *testing.T) {
	t.Parallel()
	u := os.Getenv(postgresURLEnv)
	if u == "" {
		t.Skipf("%s is not set; start a server with `eval \"export $(scripts/postgres/pg.sh start)\"` to run this test",
			postgresURLEnv)
	}
	m := mongotest.New(t, mongotest.WithPostgreSQL(u))
	client, err := mongo.Connect(options.Client().ApplyURI(m.URI()))
	require.NoError(t, err, "connect")
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	// Tests share the PostgreSQL database: a database of our own.
	db := client.Database(fmt.Sprintf("mongoio_%d", time.Now().UnixNano()))
	t.Cleanup(func() { _ = db.Drop(context.Background()) })

	s := newSink(t, db, mongoio.WithFlushConcurrency(6))
	writeAll(t, s, zscores(40, 1))
	require.NoError(t, s.Flush(t.Context()), "first flush")
	writeAll(t, s, zscores(80, 2)) // 40 replaced, 40 new per collection
	require.NoError(t, s.Flush(t.Context()), "second flush")
	for _, c := range windowColls() {
		got := readAll(t, db, c)
		require.Len(t, got, 80, "documents in %s", c)
		for _, d := range got {
			assert.InDelta(t, 2.0, d.Price, 0, "latest content of %s in %s", d.ID, c)
		}
	}
	st := s.Stats()
	assert.Equal(t, uint64(6*(40+80)), st.Written, "every write acknowledged")
	assert.Equal(t, uint64(6*80), st.Upserted, "documents created")
	assert.Zero(t, st.Retries, "no retries")
}
