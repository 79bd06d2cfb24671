// Command 04-kafka-to-mongo loads a topic of a shop's events into MongoDB
// collections, effectively once: customers (with a unique index on their
// email) and orders. A document the store refuses, a second customer with an
// email that is taken, goes to the dead-letter topic with the store's reason,
// and everything else is written. It produces the events first, runs the
// loader until it has written them, and prints the collections and the dead
// letters.
//
//	go run ./examples/04-kafka-to-mongo                # an in-process Kafka and MongoDB
//	go run ./examples/04-kafka-to-mongo --brokers 127.0.0.1:9092 --mongo-uri mongodb://127.0.0.1:27017
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/mongoio"
	"github.com/tidemark-go/tidemark/mongotest"
	"github.com/tidemark-go/tidemark/stream"
)

// Event is a record of the events topic, keyed by customer: a customer's
// sign-up or change of details, or an order (Order set).
type Event struct {
	Customer string    `json:"customer"`
	Time     time.Time `json:"time"`
	Email    string    `json:"email,omitempty"`
	Name     string    `json:"name,omitempty"`
	Order    string    `json:"order,omitempty"`
	Amount   float64   `json:"amount,omitempty"`
}

// Customer and Order are the documents; _id makes writing one again (a
// replay) replace it instead of adding another.
type Customer struct {
	ID    string `bson:"_id"`
	Email string `bson:"email"`
	Name  string `bson:"name"`
}

type Order struct {
	ID       string    `bson:"_id"`
	Customer string    `bson:"customer"`
	Amount   float64   `bson:"amount"`
	Time     time.Time `bson:"time"`
}

// documents routes an event to its collection.
func documents(dst []mongoio.Route, e stream.Event[Event]) ([]mongoio.Route, error) {
	v := e.Value
	if v.Order != "" {
		return append(dst, mongoio.Route{Collection: "orders", Doc: Order{v.Order, v.Customer, v.Amount, v.Time}}), nil
	}
	return append(dst, mongoio.Route{Collection: "customers", Doc: Customer{v.Customer, v.Email, v.Name}}), nil
}

var eventCodec = kafkaio.JSON[Event]{Time: func(v *Event) (stream.Time, error) { return stream.TimeOf(v.Time), nil }}

// names are a run's topics, group and database: each run has its own.
type names struct{ events, deadLetters, group, db string }

func newNames() names {
	id := fmt.Sprintf("%x", rand.Uint32())
	return names{"04-events-" + id, "04-dead-letters-" + id, "04-load-" + id, "shop-" + id}
}

// newLoader returns the loader: a stage writing each event's document to
// sink, which upserts by _id and is flushed before the stage commits its
// offsets; what the store refuses for good goes to the dead-letter topic.
// The producer writes each partition in time order, so each event is written
// as it comes (Final), with nothing held back for events out of order.
func newLoader(addrs []string, n names, sink *mongoio.EventSink[Event], opts ...kafkaio.StageOption) (*kafkaio.Stage, error) {
	in := kafkaio.Input[Event]{Topic: n.events, Decoder: eventCodec, Final: true}
	return kafkaio.NewStage(n.group, in, func() (stream.Operator[Event, Event], error) {
		return stream.Map(func(e stream.Event[Event]) Event { return e.Value }), nil
	}, kafkaio.ToSink[Event](sink), append([]kafkaio.StageOption{kafkaio.WithBrokers(addrs, nil), kafkaio.WithDeadLetter(n.deadLetters)}, opts...)...)
}

// newSink returns the loader's sink, with the unique index on the customers'
// emails in place.
func newSink(ctx context.Context, db *mongo.Database, opts ...mongoio.Option) (*mongoio.EventSink[Event], error) {
	sink, err := mongoio.NewEventSink(db, documents, opts...)
	if err != nil {
		return nil, err
	}
	_, err = sink.EnsureIndexes(ctx, "customers", mongo.IndexModel{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true)})
	return sink, err
}

// runToEnd runs the loader until it has read, written and committed every
// event.
func runToEnd(ctx context.Context, s *kafkaio.Stage) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	if err := s.WaitCaughtUp(ctx); err != nil {
		return err
	}
	return s.Stop()
}

func main() {
	brokers := flag.String("brokers", "", "Kafka brokers, comma-separated (empty: start an in-process cluster)")
	mongoURI := flag.String("mongo-uri", "", "MongoDB URI (empty: start an in-process MongoDB-compatible store)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *brokers, *mongoURI, newNames(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, brokers, mongoURI string, n names, w io.Writer) error {
	addrs := strings.Split(brokers, ",")
	if brokers == "" {
		k, err := kafkatest.NewCluster()
		if err != nil {
			return err
		}
		defer k.Close()
		addrs = k.Addrs()
	}
	if mongoURI == "" {
		srv, err := mongotest.NewServer()
		if err != nil {
			return err
		}
		defer srv.Close()
		mongoURI = srv.URI()
	}
	client, err := mongo.Connect(options.Client().ApplyURI(mongoURI))
	if err != nil {
		return err
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	if err := produce(ctx, addrs, n, events()); err != nil {
		return err
	}
	sink, err := newSink(ctx, client.Database(n.db))
	if err != nil {
		return err
	}
	defer sink.Close(context.WithoutCancel(ctx))
	loader, err := newLoader(addrs, n, sink)
	if err != nil {
		return err
	}
	if err := runToEnd(ctx, loader); err != nil {
		return err
	}
	st := loader.Stats()
	fmt.Fprintf(w, "loader: %d events read, %d refused and dead-lettered\n", st.Records, st.Refused)
	for _, c := range []string{"customers", "orders"} {
		count, err := client.Database(n.db).Collection(c).CountDocuments(ctx, bson.D{})
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s.%s: %d documents\n", n.db, c, count)
	}

	f, err := kafkaio.NewFollower(nil, []string{n.deadLetters}, kafkaio.FromOldest(), kafkaio.WithBrokers(addrs, nil))
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]*sarama.ConsumerMessage, 8)
	for read := 0; read < int(st.DeadLettered); {
		k, err := f.Poll(ctx, buf)
		if err != nil {
			return err
		}
		for _, m := range buf[:k] {
			fmt.Fprintf(w, "dead letter: %s\n", m.Value)
			for _, h := range m.Headers {
				fmt.Fprintf(w, "  %s: %s\n", h.Key, h.Value)
			}
		}
		read += k
	}
	return nil
}

// produce creates the topics and writes events with an idempotent producer.
func produce(ctx context.Context, addrs []string, n names, events []Event) error {
	admin, err := sarama.NewClusterAdmin(addrs, nil)
	if err != nil {
		return err
	}
	defer admin.Close()
	keep := map[string]string{"retention.ms": "-1"} // events of any age stay
	if err := kafkaio.EnsureTopics(ctx, admin, []kafkaio.TopicSpec{{Name: n.events, Partitions: 3, Config: keep}, {Name: n.deadLetters, Partitions: 1, Config: keep}}); err != nil {
		return err
	}
	sink, err := kafkaio.NewSink(nil, eventCodec, kafkaio.WithBrokers(addrs, nil), kafkaio.WithTopic(n.events))
	if err != nil {
		return err
	}
	for _, e := range events {
		if err := sink.Write(ctx, stream.Event[Event]{Key: e.Customer, Time: stream.TimeOf(e.Time), Value: e}); err != nil {
			return err
		}
	}
	return sink.Close(ctx)
}

// events returns two minutes of a shop: 40 customers sign up and order, some
// change their name, and c30 signs up with the email of c12.
func events() []Event {
	r := rand.New(rand.NewPCG(4, 4))
	start := time.Date(2025, 5, 8, 4, 12, 0, 0, time.UTC)
	var out []Event
	for c := range 40 {
		id, at := fmt.Sprintf("c%02d", c), start.Add(time.Duration(r.IntN(60_000))*time.Millisecond)
		email := id + "@example.com"
		if c == 30 {
			email = "c12@example.com"
		}
		out = append(out, Event{Customer: id, Time: at, Email: email, Name: "Customer " + id})
		for o := range r.IntN(5) {
			at = at.Add(time.Duration(1+r.IntN(15_000)) * time.Millisecond)
			out = append(out, Event{Customer: id, Time: at, Order: fmt.Sprintf("%s-o%d", id, o), Amount: float64(100+r.IntN(100_000)) / 100})
		}
		if c%7 == 3 {
			out = append(out, Event{Customer: id, Time: at.Add(time.Second), Email: email, Name: "Renamed " + id})
		}
	}
	slices.SortStableFunc(out, func(a, b Event) int { return a.Time.Compare(b.Time) })
	return out
}
