package mongotest

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

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
