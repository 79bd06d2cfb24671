package mongotest_test

import (
	"context"
	"fmt"
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

	"github.com/tidemark-go/tidemark/mongotest"
	"github.com/tidemark-go/tidemark/stream"
)

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	require.NoError(t, err, "connect to %s", uri)
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	m := mongotest.New(t)
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

// TestRestart stops the server and starts it again: the port, the URI and
// the data survive, and a client created before the outage recovers.
func TestRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := mongotest.New(t, mongotest.WithDataDir(dir))
	uri, addr := m.URI(), m.Addr()
	assert.Equal(t, dir, m.Dir(), "data directory")

	coll := connect(t, uri).Database("db").Collection("c")
	_, err := coll.InsertOne(t.Context(), bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: "before"}})
	require.NoError(t, err, "insert before restart")

	require.NoError(t, m.Stop(), "stop")
	require.ErrorIs(t, m.Stop(), mongotest.ErrStopped, "second stop")
	_, err = net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err, "nothing listens while stopped")
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

	require.NoError(t, m.Restart(t.Context(), 100*time.Millisecond), "Restart")
	require.Eventually(t, func() bool {
		n, err = coll.CountDocuments(t.Context(), bson.D{})
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "the client works again after Restart: %v", err)
	assert.Equal(t, int64(2), n, "documents kept by Restart")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, m.Restart(ctx, time.Hour), context.Canceled, "Restart gives up with its context")
	require.ErrorIs(t, m.Stop(), mongotest.ErrStopped, "and leaves the server stopped")
	require.NoError(t, m.Start(), "start")

	// A second server on the same directory, after the first is closed,
	// sees the same data.
	require.NoError(t, m.Close(), "close")
	require.NoError(t, m.Close(), "Close is idempotent")
	assert.DirExists(t, dir, "Close leaves a given data directory")
	m2 := mongotest.New(t, mongotest.WithDataDir(dir))
	n, err = connect(t, m2.URI()).Database("db").Collection("c").CountDocuments(t.Context(), bson.D{})
	require.NoError(t, err, "count on a new server")
	assert.Equal(t, int64(2), n, "data survives Close")
	require.ErrorIs(t, m.Start(), mongotest.ErrClosed, "a closed server does not start")
	require.ErrorIs(t, m.Stop(), mongotest.ErrClosed, "nor stop")
}

func TestFixedPort(t *testing.T) {
	t.Parallel()
	m := mongotest.New(t)
	_, port, err := net.SplitHostPort(m.Addr())
	require.NoError(t, err, "Addr is host:port")
	p, err := strconv.Atoi(port)
	require.NoError(t, err, "numeric port")
	require.NoError(t, m.Close(), "free the port")

	m2 := mongotest.New(t, mongotest.WithPort(p))
	assert.Equal(t, "mongodb://127.0.0.1:"+port+"/", m2.URI(), "fixed port in the URI")
	require.NoError(t, connect(t, m2.URI()).Ping(t.Context(), nil), "ping")
	_, err = mongotest.NewServer(mongotest.WithPort(p))
	assert.Error(t, err, "the port is taken")
}

// TestTempDir: without WithDataDir, NewServer makes a directory that Close
// removes; New puts it under the test's TempDir.
func TestTempDir(t *testing.T) {
	t.Parallel()
	m, err := mongotest.NewServer()
	require.NoError(t, err, "start with a temporary directory")
	dir := m.Dir()
	assert.DirExists(t, dir, "temporary data directory")
	require.NoError(t, m.Close(), "close")
	assert.NoDirExists(t, dir, "Close removes the temporary directory")
	require.NoError(t, m.Close(), "Close is idempotent")

	var inTest string
	t.Run("New", func(t *testing.T) {
		inTest = mongotest.New(t).Dir()
		assert.DirExists(t, inTest, "a directory during the test")
	})
	assert.NoDirExists(t, inTest, "removed with the test's TempDir")
}

func TestOptionErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		opts []mongotest.Option
		msg  string
	}{
		{name: "negative port", opts: []mongotest.Option{mongotest.WithPort(-1)}, msg: "WithPort -1"},
		{name: "port out of range", opts: []mongotest.Option{mongotest.WithPort(65536)}, msg: "WithPort 65536"},
		{name: "empty pragma", opts: []mongotest.Option{mongotest.WithSQLitePragmas("")}, msg: `pragma ""`},
		{name: "pragma with &", opts: []mongotest.Option{mongotest.WithSQLitePragmas("a&b")}, msg: `pragma "a&b"`},
		{name: "pragma with #", opts: []mongotest.Option{mongotest.WithSQLitePragmas("a#b")}, msg: `pragma "a#b"`},
		{name: "empty PostgreSQL URL", opts: []mongotest.Option{mongotest.WithPostgreSQL("")}, msg: "empty URL"},
		{name: "pragmas for PostgreSQL", opts: []mongotest.Option{mongotest.WithPostgreSQL("postgres://127.0.0.1:1/x"),
			mongotest.WithSQLitePragmas("synchronous(normal)")}, msg: "for the PostgreSQL backend"},
		{name: "data directory for PostgreSQL", opts: []mongotest.Option{mongotest.WithPostgreSQL("postgres://127.0.0.1:1/x"),
			mongotest.WithDataDir(t.TempDir())}, msg: "WithDataDir for the PostgreSQL backend"},
		{name: "nil option", opts: []mongotest.Option{nil}, msg: "nil option"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := mongotest.NewServer(tt.opts...)
			if !assert.Error(t, err, "invalid options are rejected") {
				_ = m.Close()
				return
			}
			assert.Nil(t, m, "no server")
			assert.ErrorIs(t, err, mongotest.ErrInvalidOption, "the package's sentinel")
			assert.ErrorIs(t, err, stream.ErrInvalidOption, "which matches stream's")
			assert.ErrorContains(t, err, "mongotest: invalid option: ", "the package's prefix")
			assert.ErrorContains(t, err, tt.msg, "the message names the problem")
		})
	}
}

// TestSQLitePragmas passes pragmas to SQLite: a server with
// synchronous(normal) works, and one with query_only(1) refuses writes,
// which shows that the pragmas reach SQLite.
func TestSQLitePragmas(t *testing.T) {
	t.Parallel()
	m := mongotest.New(t, mongotest.WithSQLitePragmas("synchronous(normal)"))
	coll := connect(t, m.URI()).Database("db").Collection("c")
	_, err := coll.InsertOne(t.Context(), bson.D{{Key: "_id", Value: 1}})
	require.NoError(t, err, "insert with synchronous(normal)")
	n, err := coll.CountDocuments(t.Context(), bson.D{})
	require.NoError(t, err, "count")
	assert.Equal(t, int64(1), n, "document written")

	ro := mongotest.New(t, mongotest.WithSQLitePragmas("query_only(1)"))
	_, err = connect(t, ro.URI()).Database("db").Collection("c").InsertOne(t.Context(), bson.D{{Key: "_id", Value: 1}})
	assert.Error(t, err, "a read-only SQLite refuses the insert")
}

// TestLogger: FerretDB's lines go to the logger given, and nowhere by
// default.
func TestLogger(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	m := mongotest.New(t, mongotest.WithLogger(slogTo(&buf)))
	require.NoError(t, connect(t, m.URI()).Ping(t.Context(), nil), "ping")
	require.NoError(t, m.Close(), "close")
	assert.NotEmpty(t, buf.String(), "FerretDB logged to the logger")
}

// TestNew: New fails the test when the server cannot start.
func TestNew(t *testing.T) {
	t.Parallel()
	ft := &fakeTB{TB: t}
	func() {
		defer func() { _ = recover() }()
		mongotest.New(ft, mongotest.WithPort(-1))
	}()
	assert.True(t, ft.failed, "New fails the test")
	assert.Contains(t, ft.msg, "mongotest: start a server: mongotest: invalid option", "with the error")
}

// fakeTB records a fatal failure instead of ending the test.
type fakeTB struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	panic(f.msg)
}
