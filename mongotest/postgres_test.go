package mongotest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/tidemark-go/tidemark/mongotest"
)

// postgresURLEnv names the environment variable that holds the URL of a
// PostgreSQL server for the tests of the PostgreSQL backend, as printed by
// scripts/postgres/pg.sh start.
const postgresURLEnv = "TIDEMARK_POSTGRES_URL"

// postgresURL returns the PostgreSQL server of the integration tier, or
// skips the test.
func postgresURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv(postgresURLEnv)
	if u == "" {
		t.Skipf("%s is not set; start a server with `eval \"export $(scripts/postgres/pg.sh start)\"` to run this test",
			postgresURLEnv)
	}
	return u
}

// uniqueDB returns a database of client with a name no other test uses,
// and drops it when the test ends: tests share the PostgreSQL database.
func uniqueDB(t *testing.T, client *mongo.Client) *mongo.Database {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	db := client.Database("mongotest_" + hex.EncodeToString(b))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Logf("drop %s: %v", db.Name(), err)
		}
	})
	return db
}

// TestPostgres runs the round trip and a restart on the PostgreSQL
// backend: the data lives in PostgreSQL and survives the restart.
func TestPostgres(t *testing.T) {
	t.Parallel()
	u := postgresURL(t)
	m := mongotest.New(t, mongotest.WithPostgreSQL(u))
	assert.Empty(t, m.Dir(), "no data directory")
	client := connect(t, m.URI())
	db := uniqueDB(t, client)
	coll := db.Collection("btc-price-zscore-30s")
	ts := time.Date(2025, 5, 8, 4, 12, 38, 352e6, time.UTC)
	_, err := coll.InsertOne(t.Context(), bson.D{
		{Key: "_id", Value: "BTCUSDT|2025-05-08T04:12:38.352Z"},
		{Key: "timestamp", Value: ts},
		{Key: "price", Value: 99013.2},
		{Key: "zscore_price", Value: nil},
	})
	require.NoError(t, err, "insert")
	_, err = coll.InsertOne(t.Context(), bson.D{{Key: "_id", Value: "BTCUSDT|2025-05-08T04:12:38.352Z"}})
	assert.True(t, mongo.IsDuplicateKeyError(err), "the _id index is unique: %v", err)

	require.NoError(t, m.Stop(), "stop")
	require.NoError(t, m.Start(), "restart")
	var got bson.Raw
	for attempt := 1; ; attempt++ { // the first operation after a restart may meet a closed connection
		err = coll.FindOne(t.Context(), bson.D{}).Decode(&got)
		if err == nil || attempt == 3 || !mongo.IsNetworkError(err) {
			break
		}
	}
	require.NoError(t, err, "find after the restart")
	assert.True(t, ts.Equal(got.Lookup("timestamp").Time()), "timestamp round-trips as a BSON date")
	assert.Equal(t, bson.TypeNull, got.Lookup("zscore_price").Type, "null z-score")
	assert.InDelta(t, 99013.2, got.Lookup("price").Double(), 0, "price")
}

// TestPostgresUnreachable starts FerretDB on a PostgreSQL server that is
// not there: NewServer fails, and says so.
func TestPostgresUnreachable(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := mongotest.NewServer(mongotest.WithPostgreSQL("postgres://tidemark:secret@127.0.0.1:1/tidemark?connect_timeout=2"))
	require.Error(t, err, "no PostgreSQL server on port 1")
	assert.ErrorContains(t, err, "PostgreSQL", "the message names the backend")
	assert.NotContains(t, err.Error(), "secret", "the password is not in the message")
	assert.Less(t, time.Since(start), 15*time.Second, "NewServer gives up")
}
