package embedded_test

import (
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/internal/embedded"
	"github.com/tidemark-go/tidemark/internal/embedded/embeddedtest"
)

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	require.NoError(t, err, "connect to %s", uri)
	t.Cleanup(func() { _ = client.Disconnect(t.Context()) })
	return client
}

func TestMongoRoundTrip(t *testing.T) {
	t.Parallel()
	m := embeddedtest.StartMongo(t)
	u, err := url.Parse(m.URI())
	require.NoError(t, err, "URI parses")
	assert.Equal(t, "mongodb", u.Scheme, "URI scheme")
	assert.Equal(t, m.Addr(), u.Host, "URI host is Addr")
	assert.Equal(t, "127.0.0.1", u.Hostname(), "listens on loopback")

	coll := connect(t, m.URI()).Database("btc").Collection("btc-price-zscore-30s")
	ts := time.Date(2025, 5, 8, 4, 12, 38, 352e6, time.UTC)
	_, err = coll.InsertOne(t.Context(), bson.D{
		{Key: "_id", Value: "BTCUSDT|2025-05-08T04:12:38.352Z"},
		{Key: "symbol", Value: "BTCUSDT"},
		{Key: "timestamp", Value: ts},
		{Key: "window", Value: "30s"},
		{Key: "price", Value: 99013.2},
		{Key: "zscore_price", Value: 0.27},
	})
	require.NoError(t, err, "insert")

	var got struct {
		ID     string    `bson:"_id"`
		Symbol string    `bson:"symbol"`
		Time   time.Time `bson:"timestamp"`
		Price  float64   `bson:"price"`
		Z      *float64  `bson:"zscore_price"`
	}
	require.NoError(t, coll.FindOne(t.Context(), bson.D{{Key: "symbol", Value: "BTCUSDT"}}).Decode(&got), "find")
	assert.Equal(t, "BTCUSDT|2025-05-08T04:12:38.352Z", got.ID, "_id")
	assert.True(t, ts.Equal(got.Time), "timestamp round-trips as a BSON date: got %v", got.Time)
	assert.InDelta(t, 99013.2, got.Price, 0, "price")
	require.NotNil(t, got.Z, "zscore_price")
	assert.InDelta(t, 0.27, *got.Z, 0, "zscore_price")
}

// TestMongoRestart stops the server and starts it again: the port, the URI
// and the data survive, and a client created before the outage recovers.
func TestMongoRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := embeddedtest.StartMongoDir(t, dir)
	uri, addr := m.URI(), m.Addr()
	assert.Equal(t, dir, m.Dir(), "data directory")

	coll := connect(t, uri).Database("db").Collection("c")
	_, err := coll.InsertOne(t.Context(), bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: "before"}})
	require.NoError(t, err, "insert before restart")

	require.NoError(t, m.Stop(), "stop")
	require.ErrorIs(t, m.Stop(), embedded.ErrStopped, "second stop")
	require.NoError(t, m.Start(), "restart")
	require.NoError(t, m.Start(), "start while running is a no-op")
	assert.Equal(t, uri, m.URI(), "URI survives a restart")
	assert.Equal(t, addr, m.Addr(), "port survives a restart")

	// The server closed the client's pooled connections: the first write
	// on one fails with a network error (FerretDB is a standalone server,
	// so the driver does not retry writes) and clears the pool.
	for attempt := 1; ; attempt++ {
		_, err = coll.InsertOne(t.Context(), bson.D{{Key: "_id", Value: 2}, {Key: "v", Value: "after"}})
		if err == nil || attempt == 3 || !mongo.IsNetworkError(err) {
			break
		}
		t.Logf("attempt %d after restart: %v", attempt, err)
	}
	require.NoError(t, err, "insert after restart with the same client")
	n, err := coll.CountDocuments(t.Context(), bson.D{})
	require.NoError(t, err, "count")
	assert.Equal(t, int64(2), n, "documents from before and after the restart")

	// A second server on the same directory, after the first is closed,
	// sees the same data.
	require.NoError(t, m.Close(), "close")
	m2 := embeddedtest.StartMongoDir(t, dir)
	n, err = connect(t, m2.URI()).Database("db").Collection("c").CountDocuments(t.Context(), bson.D{})
	require.NoError(t, err, "count on a new server")
	assert.Equal(t, int64(2), n, "data survives Close")
	require.Error(t, m.Start(), "a closed server does not start")
}

func TestMongoFixedPort(t *testing.T) {
	t.Parallel()
	m := embeddedtest.StartMongo(t)
	_, port, err := net.SplitHostPort(m.Addr())
	require.NoError(t, err, "Addr is host:port")
	p, err := strconv.Atoi(port)
	require.NoError(t, err, "numeric port")
	require.NoError(t, m.Close(), "free the port")

	m2 := embeddedtest.StartMongo(t, embedded.MongoPort(p))
	assert.Equal(t, "mongodb://127.0.0.1:"+port+"/", m2.URI(), "fixed port in the URI")
	require.NoError(t, connect(t, m2.URI()).Ping(t.Context(), nil), "ping")

	_, err = embedded.NewMongo(t.TempDir(), embedded.MongoPort(-1))
	assert.Error(t, err, "negative port rejected")
}

func TestMongoTempDir(t *testing.T) {
	t.Parallel()
	m, err := embedded.NewMongo("")
	require.NoError(t, err, "start with a temporary directory")
	dir := m.Dir()
	assert.DirExists(t, dir, "temporary data directory")
	require.NoError(t, m.Close(), "close")
	assert.NoDirExists(t, dir, "Close removes the temporary directory")
	require.NoError(t, m.Close(), "Close is idempotent")
}

// TestMongoSQLitePragmas passes pragmas to SQLite: a server with
// synchronous(normal) works, and one with query_only(1) refuses writes,
// which shows that the pragmas reach SQLite.
func TestMongoSQLitePragmas(t *testing.T) {
	t.Parallel()
	m := embeddedtest.StartMongo(t, embedded.MongoSQLitePragmas("synchronous(normal)"))
	coll := connect(t, m.URI()).Database("db").Collection("c")
	_, err := coll.InsertOne(t.Context(), bson.D{{Key: "_id", Value: 1}})
	require.NoError(t, err, "insert with synchronous(normal)")
	n, err := coll.CountDocuments(t.Context(), bson.D{})
	require.NoError(t, err, "count")
	assert.Equal(t, int64(1), n, "document written")

	ro := embeddedtest.StartMongo(t, embedded.MongoSQLitePragmas("query_only(1)"))
	_, err = connect(t, ro.URI()).Database("db").Collection("c").InsertOne(t.Context(), bson.D{{Key: "_id", Value: 1}})
	assert.Error(t, err, "a read-only SQLite refuses the insert")

	for _, p := range []string{"", "a&b", "a#b"} {
		_, err = embedded.NewMongo(t.TempDir(), embedded.MongoSQLitePragmas(p))
		assert.Error(t, err, "pragma %q refused", p)
	}
}
