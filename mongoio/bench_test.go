package mongoio_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/mongoio"
)

// BenchmarkWrite measures the sink's own cost per record, without I/O:
// routing, marshalling and buffering (every round after the first replaces
// the buffered writes of the same _ids).
func BenchmarkWrite(b *testing.B) {
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	s, err := mongoio.NewSink(client.Database("btc"), routeZ, mongoio.WithBatchSize(1_000_000))
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
