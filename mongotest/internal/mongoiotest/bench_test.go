package mongoiotest_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/mongoio"
	"github.com/tidemark-go/tidemark/mongotest"
)

// BenchmarkBulkUpsert writes the pipeline's z-score documents (SPEC
// section 5) to an embedded FerretDB: each iteration buffers 100 events x 6
// windows and flushes them. "insert" creates new documents; "replay"
// writes the same documents again, as a restarted loader does. FerretDB
// runs in the benchmark's process, so the allocations reported are mostly
// the server's; BenchmarkWrite, in package mongoio, measures the sink's
// own.
func BenchmarkBulkUpsert(b *testing.B) {
	for _, mode := range []string{"insert", "replay"} {
		b.Run(mode, func(b *testing.B) {
			m := mongotest.New(b)
			client, err := mongo.Connect(options.Client().ApplyURI(m.URI()))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = client.Disconnect(context.Background()) })
			s, err := mongoio.NewSink(client.Database("btc"), routeZ,
				mongoio.WithBatchSize(1_000_000), mongoio.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				b.Fatal(err)
			}
			ctx := b.Context()
			const events = 100
			docs := zscores(events, 99190.48)
			var n, iter int
			b.ReportAllocs()
			for b.Loop() {
				if mode == "insert" && iter > 0 {
					// The next 100 events: new _ids.
					for i := range docs {
						docs[i].Time = docs[i].Time.Add(events * 100 * time.Millisecond)
						docs[i].ID = "BTCUSDT|" + docs[i].Time.Format("2006-01-02T15:04:05.000Z07:00")
					}
				}
				for _, d := range docs {
					if err := s.Write(ctx, d); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				n += len(docs)
				iter++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "docs/s")
		})
	}
}

// BenchmarkLoad measures the load path as the pipeline's load stage
// drives it: every price event makes 6 documents, one per window
// collection, written one by one, and the stage flushes the sink before
// each offset commit. One op is one flush of docs documents (docs/6 per
// collection); docs/s counts the documents acknowledged per second of
// flushing. Package mongoio's documentation quotes its results.
//
// The sub-benchmarks are named store=S/sink=K/write=W/docs=D/coll=C:
//
//   - S is the embedded FerretDB's backend: sqlite-full (SQLite as FerretDB
//     sets it up, synchronous=FULL), sqlite-normal (with the pragma
//     synchronous(normal)), or postgresql when TIDEMARK_POSTGRES_URL names a
//     server (scripts/postgres/pg.sh start);
//   - K is the sink's settings: old (upserts only, one collection at a
//     time: the behaviour before WithInsertFirst and WithFlushConcurrency), new
//     (the defaults: on FerretDB, insert first, one collection at a time),
//     new-conc6 (the defaults with WithFlushConcurrency(6)) or, on PostgreSQL
//     only, upsert-conc6 (upserts only, WithFlushConcurrency(6));
//   - W is fresh (every document is new) or replay (every document exists
//     with the same content, as after a restart from the last commit);
//   - C is the number of documents in each collection when a flush starts:
//     FerretDB v1 finds the document of an upsert by reading the whole
//     collection, so the cost of a replacement grows with it. A fresh
//     flush's documents are deleted after it, with the timer stopped.
func BenchmarkLoad(b *testing.B) {
	type store struct {
		name string
		opts []mongotest.Option
	}
	stores := []store{
		{name: "sqlite-full"},
		{name: "sqlite-normal", opts: []mongotest.Option{mongotest.WithSQLitePragmas("synchronous(normal)")}},
	}
	if u := os.Getenv(postgresURLEnv); u != "" {
		stores = append(stores, store{name: "postgresql", opts: []mongotest.Option{mongotest.WithPostgreSQL(u)}})
	}
	sinks := []struct {
		name string
		opts []mongoio.Option
	}{
		{name: "old", opts: []mongoio.Option{mongoio.WithUpsertOnly(), mongoio.WithFlushConcurrency(1)}},
		{name: "new"},
		{name: "new-conc6", opts: []mongoio.Option{mongoio.WithFlushConcurrency(6)}},
		{name: "upsert-conc6", opts: []mongoio.Option{mongoio.WithUpsertOnly(), mongoio.WithFlushConcurrency(6)}},
	}
	type shape struct {
		write      string
		docs, coll int
	}
	shapes := []shape{
		{"fresh", 600, 0}, {"fresh", 3000, 0}, {"fresh", 600, 2000},
		{"replay", 600, 100}, {"replay", 3000, 500}, {"replay", 600, 2000},
	}
	for _, st := range stores {
		for _, sk := range sinks {
			if sk.name == "upsert-conc6" && st.name != "postgresql" {
				continue // as slow as old on SQLite
			}
			for _, sh := range shapes {
				name := fmt.Sprintf("store=%s/sink=%s/write=%s/docs=%d/coll=%d", st.name, sk.name, sh.write, sh.docs, sh.coll)
				b.Run(name, func(b *testing.B) {
					m := mongotest.New(b, st.opts...)
					benchLoad(b, m.URI(), sh.write == "replay", sh.docs/len(windows), sh.coll, sk.opts...)
				})
			}
		}
	}
}

// benchLoad runs one sub-benchmark of BenchmarkLoad on the server at uri:
// it fills each collection with coll documents, then, in each op, writes
// events events (the last events of those documents for a replay, new
// ones otherwise) and flushes.
func benchLoad(b *testing.B, uri string, replay bool, events, coll int, opts ...mongoio.Option) {
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	// A database of its own: PostgreSQL's is shared.
	db := client.Database(fmt.Sprintf("bench_%d", time.Now().UnixNano()))
	b.Cleanup(func() { _ = db.Drop(context.Background()) })
	ctx := b.Context()
	quiet := mongoio.WithLogger(slog.New(slog.DiscardHandler))

	// The existing documents, inserted fast. They also create the
	// collections (FerretDB creates a table and an index for each).
	old := zscores(coll, 99190.48)
	if coll == 0 {
		old = zscores(1, 99190.48)
		for i := range old {
			old[i].ID = "warm-up|" + old[i].ID
		}
	}
	fill, err := mongoio.NewSink(db, routeZ, mongoio.WithBatchSize(1_000_000), mongoio.WithInsertFirst(), quiet)
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range old {
		if err := fill.Write(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
	if err := fill.Close(ctx); err != nil {
		b.Fatal(err)
	}

	var docs []zscore
	if replay {
		docs = old[len(old)-events*len(windows):]
	} else {
		docs = zscores(events, 99013.2)
		for i := range docs {
			docs[i].ID = "new|" + docs[i].ID
		}
	}
	s, err := mongoio.NewSink(db, routeZ, append([]mongoio.Option{mongoio.WithBatchSize(1_000_000), quiet}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	// Let the sink detect the server and open its connections: flush a
	// replay of one document.
	if err := s.Write(ctx, old[0]); err != nil {
		b.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	before := s.Stats()
	var n int
	b.ReportAllocs()
	for b.Loop() {
		for _, d := range docs {
			if err := s.Write(ctx, d); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		n += len(docs)
		if !replay {
			b.StopTimer()
			for _, w := range windows {
				if _, err := db.Collection("btc-price-zscore-"+w).DeleteMany(ctx, bson.D{{Key: "price", Value: 99013.2}}); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "docs/s")

	st := s.Stats()
	created := uint64(n)
	if replay {
		created = 0
	}
	if st.Written-before.Written != uint64(n) || st.Upserted-before.Upserted != created || st.Retries != 0 || st.Rejected != 0 {
		b.Fatalf("stats %+v after %d documents (replay %v); before: %+v", st, n, replay, before)
	}
	for _, w := range windows {
		got, err := db.Collection("btc-price-zscore-"+w).CountDocuments(ctx, bson.D{})
		if err != nil {
			b.Fatal(err)
		}
		if want := int64(len(old) / len(windows)); got != want {
			b.Fatalf("%d documents in %s, want %d", got, w, want)
		}
	}
}
