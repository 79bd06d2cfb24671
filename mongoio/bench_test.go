package mongoio_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/internal/embedded/embeddedtest"
	"github.com/tidemark-go/tidemark/mongoio"
)

// BenchmarkBulkUpsert writes the pipeline's z-score documents (SPEC
// section 5) to an embedded FerretDB: each iteration buffers 100 events x 6
// windows and flushes them. "insert" creates new documents; "replay"
// writes the same documents again, as a restarted loader does. FerretDB
// runs in the benchmark's process, so the allocations reported are mostly
// the server's; BenchmarkWrite measures the sink's own.
func BenchmarkBulkUpsert(b *testing.B) {
	for _, mode := range []string{"insert", "replay"} {
		b.Run(mode, func(b *testing.B) {
			m := embeddedtest.StartMongo(b)
			client, err := mongo.Connect(options.Client().ApplyURI(m.URI()))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = client.Disconnect(context.Background()) })
			s, err := mongoio.NewSink(client.Database("btc"), routeZ,
				mongoio.BatchSize(1_000_000), mongoio.Logger(slog.New(slog.DiscardHandler)))
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

// BenchmarkWrite measures the sink's own cost per record, without I/O:
// routing, marshalling and buffering (every round after the first replaces
// the buffered writes of the same _ids).
func BenchmarkWrite(b *testing.B) {
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	s, err := mongoio.NewSink(client.Database("btc"), routeZ, mongoio.BatchSize(1_000_000))
	if err != nil {
		b.Fatal(err)
	}
	docs := zscores(100, 99190.48)
	ctx := b.Context()
	var n int
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Write(ctx, docs[n%len(docs)]); err != nil {
			b.Fatal(err)
		}
		n++
	}
}
