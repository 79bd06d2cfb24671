package main

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/mongoio"
	"github.com/tidemark-go/tidemark/mongotest"
)

// TestKafkaToMongo runs the program against an in-process Kafka ("kfake")
// and, when TIDEMARK_KAFKA_BROKERS names one, a real broker ("kafka"), with
// an in-process MongoDB-compatible store: every document is written but
// the one the unique index refuses, whose event is in the dead-letter topic
// once, with the store's reason.
func TestKafkaToMongo(t *testing.T) {
	for _, backend := range []string{"kfake", "kafka"} {
		t.Run(backend, func(t *testing.T) {
			brokers := brokersFor(t, backend)
			store := mongotest.New(t)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			n := newNames()
			var out bytes.Buffer
			require.NoError(t, run(ctx, brokers, store.URI(), n, &out), "run")
			t.Logf("the program printed:\n%s", &out)
			deadLetters := check(t, brokers, connect(t, store.URI()).Database(n.db), n)
			assert.Len(t, deadLetters, 1, "one dead letter")
		})
	}
}

// TestKafkaToMongoCrash crashes the loader after it has upserted documents
// whose offsets it has not committed, and starts it again: the documents
// are still exact (written twice, stored once), and the refused event is in
// the dead-letter topic at least once: a stage that writes to a sink
// commits its offsets after flushing the sink and its dead letters, so what
// it did since its last commit is done again.
func TestKafkaToMongoCrash(t *testing.T) {
	for _, backend := range []string{"kfake", "kafka"} {
		t.Run(backend, func(t *testing.T) {
			brokers := brokersFor(t, backend)
			addrs := strings.Split(brokers, ",")
			db := connect(t, mongotest.New(t).URI()).Database("shop")
			n := newNames()
			require.NoError(t, produce(t.Context(), addrs, n, events()), "produce")
			// A batch of 1: each document is upserted as its event comes,
			// before the commit that would flush the sink.
			loader := func(opts ...kafkaio.StageOption) *kafkaio.Stage {
				sink, err := newSink(t.Context(), db, mongoio.WithBatchSize(1))
				require.NoError(t, err, "sink")
				s, err := newLoader(addrs, n, sink, append(opts, kafkaio.WithInstanceID("one"))...)
				require.NoError(t, err, "loader")
				return s
			}
			faults := &kafkaio.Faults{}
			faults.CrashAtCommit(2)
			s := loader(kafkaio.WithFaults(faults), kafkaio.WithCommitRecords(50), kafkaio.WithCommitInterval(5*time.Second))
			require.NoError(t, s.Start(t.Context()), "start")
			crashedC := make(chan error, 1)
			go func() { crashedC <- s.Wait() }()
			select {
			case err := <-crashedC:
				require.ErrorIs(t, err, kafkaio.ErrCrashed, "crashed")
			case <-time.After(time.Minute):
				t.Fatal("the loader did not crash: it made fewer commits than the crash waits for")
			}
			crashed := s.Stats()
			written, err := db.Collection("orders").CountDocuments(t.Context(), bson.D{})
			require.NoError(t, err, "count")
			t.Logf("crashed after %d events, %d orders in MongoDB", crashed.Records, written)
			require.Positive(t, written, "documents written before the crash")

			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			s = loader()
			require.NoError(t, runToEnd(ctx, s), "again, to the end")
			t.Logf("then %d events", s.Stats().Records)
			require.Positive(t, s.Stats().Records, "events written again")
			check(t, brokers, db, n)
		})
	}
}

// check compares the collections with the documents computed here from the
// events, and the dead letters with the refused event, and returns them.
// Two customers have one email: the first written is stored, the other
// refused and dead-lettered, whichever that is (they are in different
// partitions, which the loader processes in no particular order).
func check(t *testing.T, brokers string, db *mongo.Database, n names) []*sarama.ConsumerMessage {
	customers, orders := map[string]Customer{}, map[string]Order{}
	for _, e := range events() { // in time order: the latest details of a customer win
		if e.Order != "" {
			orders[e.Order] = Order{e.Order, e.Customer, e.Amount, e.Time}
		} else {
			customers[e.Customer] = Customer{e.Customer, e.Email, e.Name}
		}
	}
	got := map[string]Customer{}
	for _, c := range find[Customer](t, db.Collection("customers")) {
		got[c.ID] = c
	}
	stored, refused := "c12", "c30"
	if _, ok := got["c30"]; ok {
		stored, refused = "c30", "c12"
	}
	delete(customers, refused)
	assert.Equal(t, customers, got, "customers: all but %s, refused: %s has its email", refused, stored)
	gotOrders := map[string]Order{}
	for _, o := range find[Order](t, db.Collection("orders")) {
		o.Time = o.Time.UTC()
		gotOrders[o.ID] = o
	}
	assert.Equal(t, orders, gotOrders, "orders: all of them")

	deadLetters := readCommitted(t, brokers, n.deadLetters, 1)
	for _, m := range deadLetters {
		e, err := eventCodec.Decode(m.Key, m.Value, 0)
		require.NoError(t, err, "the dead letter is the event, untouched: %s", m.Value)
		assert.Equal(t, refused, e.Value.Customer, "the refused customer's event")
		h := map[string]string{}
		for _, r := range m.Headers {
			h[string(r.Key)] = string(r.Value)
		}
		assert.Equal(t, "refused-sink", h[kafkaio.HeaderErrorKind], "refused by the sink")
		assert.Contains(t, h[kafkaio.HeaderError], "duplicate key", "the store's reason")
		assert.Equal(t, n.events, h[kafkaio.HeaderTopic], "where it comes from")
		assert.Equal(t, n.group, h[kafkaio.HeaderStage], "the stage that refused it")
	}
	t.Logf("%d customers, %d orders exact; %s refused, %d dead letter(s)", len(got), len(gotOrders), refused, len(deadLetters))
	return deadLetters
}

func find[T any](t *testing.T, c *mongo.Collection) []T {
	cur, err := c.Find(t.Context(), bson.D{})
	require.NoError(t, err, "find in %s", c.Name())
	var docs []T
	require.NoError(t, cur.All(t.Context(), &docs), "read %s", c.Name())
	return docs
}

func connect(t *testing.T, uri string) *mongo.Client {
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	require.NoError(t, err, "connect to %s", uri)
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client
}

// brokersFor returns the brokers of a subtest: an in-process cluster
// (kafkatest) for "kfake", the broker of TIDEMARK_KAFKA_BROKERS for "kafka".
func brokersFor(t *testing.T, backend string) string {
	if backend == "kfake" {
		return strings.Join(kafkatest.New(t).Addrs(), ",")
	}
	brokers := os.Getenv("TIDEMARK_KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("TIDEMARK_KAFKA_BROKERS is not set: start a broker with scripts/kafka/broker.sh start")
	}
	return brokers
}

// readCommitted reads topic from its start as a read_committed consumer:
// at least n records, then until none comes for two seconds.
func readCommitted(t *testing.T, brokers, topic string, n int) []*sarama.ConsumerMessage {
	f, err := kafkaio.NewFollower(nil, []string{topic}, kafkaio.FromOldest(), kafkaio.WithBrokers(strings.Split(brokers, ","), nil))
	require.NoError(t, err, "follower")
	defer f.Close()
	var out []*sarama.ConsumerMessage
	buf := make([]*sarama.ConsumerMessage, 100)
	for {
		wait := 2 * time.Second
		if len(out) < n {
			wait = 30 * time.Second
		}
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		k, err := f.Poll(ctx, buf)
		cancel()
		if len(out) >= n && err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded, "%s", topic)
			return slices.Clip(out)
		}
		require.NoError(t, err, "%s: %d records of %d", topic, len(out), n)
		out = append(out, buf[:k]...)
	}
}
