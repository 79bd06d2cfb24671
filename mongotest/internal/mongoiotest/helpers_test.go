package mongoiotest_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/mongoio"
	"github.com/tidemark-go/tidemark/mongotest"
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

// windowColls are the collections of routeZ, in the order zscores writes
// to them.
func windowColls() []string {
	c := make([]string, len(windows))
	for i, w := range windows {
		c[i] = "btc-price-zscore-" + w
	}
	return c
}

// startDB starts an embedded FerretDB (package mongotest) and returns it
// with a connected database "btc". Server selection gives up after 300 ms,
// so that an outage surfaces to the sink as a transient error quickly.
func startDB(t *testing.T) (*mongotest.Server, *mongo.Database) {
	t.Helper()
	m := mongotest.New(t)
	client, err := mongo.Connect(options.Client().ApplyURI(m.URI()).SetServerSelectionTimeout(300 * time.Millisecond))
	require.NoError(t, err, "connect")
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return m, client.Database("btc")
}

// readAll returns the documents of a collection, sorted by _id.
func readAll(t *testing.T, db *mongo.Database, coll string) []zscore {
	t.Helper()
	cur, err := db.Collection(coll).Find(t.Context(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	require.NoError(t, err, "find in %s", coll)
	var docs []zscore
	require.NoError(t, cur.All(t.Context(), &docs), "decode %s", coll)
	return docs
}

// postgresURLEnv names the environment variable that holds the URL of a
// PostgreSQL server for the tests and benchmarks of FerretDB's PostgreSQL
// backend, as printed by scripts/postgres/pg.sh start.
const postgresURLEnv = "TIDEMARK_POSTGRES_URL"
