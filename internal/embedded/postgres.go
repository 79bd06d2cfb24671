package embedded

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// PostgresURLEnv names the environment variable that holds the URL of a
// PostgreSQL server for tests and benchmarks of the PostgreSQL backend, as
// printed by scripts/postgres/pg.sh start.
const PostgresURLEnv = "TIDEMARK_POSTGRES_URL"

// MongoPostgres runs FerretDB with its PostgreSQL backend (the "postgresql"
// handler) on the server at url, a PostgreSQL connection string such as
// postgres://user@127.0.0.1:35432/tidemark (see
// https://pkg.go.dev/github.com/jackc/pgx/v5/pgconn#ParseConfig; FerretDB
// adds pool_max_conns=50 unless the URL sets it). The data directory of
// [NewMongo] is then left empty.
//
// FerretDB keeps each MongoDB database as a PostgreSQL schema of url's
// database, with one table per collection; the database needs the UTF8
// encoding and the C or en_US.UTF8 locale. Servers that share a PostgreSQL
// database must not share MongoDB database names: each FerretDB caches the
// collections it knows of.
//
// Unlike SQLite, PostgreSQL writes concurrent transactions at once, so
// concurrent bulk writes (mongoio's FlushConcurrency) help. With them,
// mongoio's load path measured about as fast as on SQLite, not faster, on
// a 2-core machine; see the documentation of package mongoio.
func MongoPostgres(url string) MongoOption {
	return mongoOption(func(c *mongoConfig) { c.pgURL = &url })
}

// redactURL returns u without its password, for messages.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Scheme == "" {
		return "(connection string)"
	}
	return p.Redacted()
}

// pingPostgres sends ping to FerretDB at addr, which makes it connect to
// PostgreSQL, and returns FerretDB's error when it cannot.
func pingPostgres(addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client, err := mongo.Connect(options.Client().
		SetHosts([]string{addr}).SetDirect(true).SetServerSelectionTimeout(timeout))
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		return fmt.Errorf("cannot reach PostgreSQL: %w", err)
	}
	return nil
}
