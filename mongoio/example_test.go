package mongoio_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/mongoio"
)

// Example loads z-scores into one collection per window, the load stage of
// the BTC pipeline. Writing a record again replaces its document: a replay
// never duplicates.
//
// It needs a MongoDB-compatible server, so go test compiles it without
// running it; the module github.com/tidemark-go/tidemark/mongotest runs a
// copy against an embedded FerretDB and checks that it prints what is shown
// at its end.
func Example() {
	ctx := context.Background()

	// Any MongoDB-compatible server (in tests, mongotest.New(t).URI()).
	uri := "mongodb://127.0.0.1:27017/"
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Disconnect(ctx)
	db := client.Database("btc")

	type ZScore struct {
		ID     string    `bson:"_id"` // "<symbol>|<timestamp>"
		Symbol string    `bson:"symbol"`
		Time   time.Time `bson:"timestamp"`
		Window string    `bson:"window"`
		Price  float64   `bson:"price"`
		Z      *float64  `bson:"zscore_price"` // nil: null
	}
	sink, err := mongoio.NewSink(db, func(z ZScore) (mongoio.Route, error) {
		// The _id comes from the document itself.
		return mongoio.Route{Collection: "btc-price-zscore-" + z.Window, Doc: z}, nil
	}, mongoio.WithBatchSize(1000))
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close(ctx)

	ts := time.Date(2025, 5, 8, 4, 12, 38, 352e6, time.UTC)
	id := "BTCUSDT|" + ts.Format("2006-01-02T15:04:05.000Z07:00")
	z := 0.27
	for range 2 { // the second round is a replay
		for _, w := range []string{"30s", "1m"} {
			err := sink.Write(ctx, ZScore{ID: id, Symbol: "BTCUSDT", Time: ts, Window: w, Price: 99013.2, Z: &z})
			if err != nil {
				log.Fatal(err)
			}
		}
		// Commit the source's offsets only after Flush returns nil.
		if err := sink.Flush(ctx); err != nil {
			log.Fatal(err)
		}
	}

	for _, w := range []string{"30s", "1m"} {
		n, err := db.Collection("btc-price-zscore-"+w).CountDocuments(ctx, bson.D{})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("btc-price-zscore-%s: %d document\n", w, n)
	}
	st := sink.Stats()
	fmt.Printf("written %d, created %d\n", st.Written, st.Upserted)
	// Prints, on an empty database:
	// btc-price-zscore-30s: 1 document
	// btc-price-zscore-1m: 1 document
	// written 4, created 2
}

// ExampleNewSink shows the errors a loader branches on: a record that
// cannot be routed is refused by Write, and a write the server refuses for
// good (here a duplicate on a unique index) is reported by Flush with its
// record, for a dead-letter queue, while the other writes are made.
//
// Like Example, it is compiled, not run; its copy in the mongotest module
// runs.
func ExampleNewSink() {
	ctx := context.Background()
	uri := "mongodb://127.0.0.1:27017/" // any MongoDB-compatible server
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Disconnect(ctx)

	type User struct {
		ID    int    `bson:"_id"`
		Email string `bson:"email"`
	}
	sink, err := mongoio.NewSink(client.Database("app"), func(u User) (mongoio.Route, error) {
		if u.Email == "" {
			return mongoio.Route{}, errors.New("no email")
		}
		return mongoio.Route{Collection: "users", Doc: u}, nil
	}, mongoio.WithBatchSize(100), mongoio.WithMaxRetries(3))
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close(ctx)
	_, err = sink.EnsureIndexes(ctx, "users", mongo.IndexModel{
		Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true),
	})
	if err != nil {
		log.Fatal(err)
	}

	for _, u := range []User{{1, "ada@example.com"}, {2, "ada@example.com"}, {3, ""}, {4, "bob@example.com"}} {
		if err := sink.Write(ctx, u); errors.Is(err, mongoio.ErrInvalidRecord) {
			fmt.Println("not written:", u.ID, err)
		} else if err != nil {
			log.Fatal(err)
		}
	}
	err = sink.Flush(ctx)
	var rejected *mongoio.RejectedError[User]
	if errors.As(err, &rejected) {
		for _, r := range rejected.Rejections {
			// The record as given to Write, for a dead-letter queue.
			fmt.Println("rejected:", r.Record.ID, r.Record.Email, mongo.IsDuplicateKeyError(r.Err))
		}
	} else if err != nil {
		log.Fatal(err)
	}
	n, err := client.Database("app").Collection("users").CountDocuments(ctx, bson.D{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("documents:", n)
	// Prints, on an empty database:
	// not written: 3 mongoio: invalid record: route: no email
	// rejected: 2 ada@example.com true
	// documents: 2
}
