package mongotest_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/mongotest"
)

// Example starts a server, writes a document with the driver and reads it
// back. In a test, mongotest.New(t) starts the server and closes it when the
// test ends.
func Example() {
	srv, err := mongotest.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Disconnect(ctx)

	coll := client.Database("btc").Collection("btc-price-zscore-30s")
	_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "BTCUSDT|2025-05-08T04:12:38.352Z"}, {Key: "price", Value: 99013.2}})
	if err != nil {
		log.Fatal(err)
	}
	var doc struct {
		ID    string  `bson:"_id"`
		Price float64 `bson:"price"`
	}
	if err := coll.FindOne(ctx, bson.D{}).Decode(&doc); err != nil {
		log.Fatal(err)
	}
	fmt.Println(doc.ID, doc.Price)
	// Output: BTCUSDT|2025-05-08T04:12:38.352Z 99013.2
}

// ExampleServer_Restart takes the server down for a moment, as an outage
// would: the client's operation during the outage fails, and the same
// client works again once the server is back, with the data.
func ExampleServer_Restart() {
	srv, err := mongotest.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetServerSelectionTimeout(500 * time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Disconnect(ctx)
	coll := client.Database("db").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		log.Fatal(err)
	}

	if err := srv.Stop(); err != nil {
		log.Fatal(err)
	}
	_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 2}})
	fmt.Println("during the outage:", err != nil)
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	var n int64
	for range 3 { // the first operation may meet a connection of before the outage
		if n, err = coll.CountDocuments(ctx, bson.D{}); err == nil {
			break
		}
	}
	fmt.Println("after:", n, err)
	// Output:
	// during the outage: true
	// after: 1 <nil>
}
