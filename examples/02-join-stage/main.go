// Command 02-join-stage runs a two-input Kafka stage that joins two
// co-partitioned topics on (key, time): the best bids and the best asks of an
// exchange's order books, published as two feeds stamped with the time of the
// book update they come from, become one topic of quotes with their mid price
// and spread, exactly once. It produces both feeds first, runs the stage until
// it has caught up with them, and prints what it wrote.
//
//	go run ./examples/02-join-stage                        # an in-process Kafka
//	go run ./examples/02-join-stage --brokers 127.0.0.1:9092
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/stream"
)

// Level is a record of the bids and asks topics: the best price of one side
// of a symbol's book at a book update. The key is the symbol.
type Level struct {
	Symbol string    `json:"symbol"`
	Price  float64   `json:"price"`
	Time   time.Time `json:"time"`
}

// Quote is a record of the quotes topic: a bid and an ask of one update.
type Quote struct {
	Symbol string    `json:"symbol"`
	Time   time.Time `json:"time"`
	Bid    float64   `json:"bid"`
	Ask    float64   `json:"ask"`
	Mid    float64   `json:"mid"`
	Spread float64   `json:"spread"`
}

var levelCodec = kafkaio.JSON[Level]{Time: func(l *Level) (stream.Time, error) { return stream.TimeOf(l.Time), nil }}

// lateness is how far out of order each feed may arrive.
const lateness = 2 * time.Second

// newQuotes returns the stage's operator, one per partition number: the join
// of partition p of bids with partition p of asks, then the quote.
func newQuotes() (stream.TwoInput[Level, Level, Quote], error) {
	// The join keeps the values that wait for their partner; these are
	// decoded afresh for each record and never changed, so kept as they are.
	join, err := stream.NewJoin(stream.JoinConfig[Level, Level]{CopyLeft: stream.Assign[Level], CopyRight: stream.Assign[Level]})
	if err != nil {
		return nil, err
	}
	quote := stream.Map(func(e stream.Event[stream.Pair[Level, Level]]) Quote {
		bid, ask := e.Value.Left.Price, e.Value.Right.Price
		return Quote{Symbol: e.Key, Time: e.Time.UTC(), Bid: bid, Ask: ask, Mid: (bid + ask) / 2, Spread: ask - bid}
	})
	return stream.ChainTwoInput(join, quote), nil
}

// topics names a run's topics and consumer group: each run has its own.
type topics struct{ bids, asks, quotes, group string }

func newTopics() topics {
	id := fmt.Sprintf("%x", rand.Uint32())
	return topics{bids: "02-bids-" + id, asks: "02-asks-" + id, quotes: "02-quotes-" + id, group: "02-quotes-" + id}
}

func main() {
	brokers := flag.String("brokers", "", "Kafka brokers, comma-separated (empty: start an in-process cluster)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *brokers, newTopics(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, brokers string, tp topics, w io.Writer) error {
	addrs := strings.Split(brokers, ",")
	if brokers == "" {
		k, err := kafkatest.NewCluster()
		if err != nil {
			return err
		}
		defer k.Close()
		addrs = k.Addrs()
	}
	admin, err := sarama.NewClusterAdmin(addrs, nil)
	if err != nil {
		return err
	}
	defer admin.Close()
	// Co-partitioned: the same number of partitions, and keys placed by
	// the same partitioner (kafkaio's Sink uses the Java client's).
	keep := map[string]string{"retention.ms": "-1"}
	if err := kafkaio.EnsureTopics(ctx, admin, []kafkaio.TopicSpec{{Name: tp.bids, Partitions: 3, Config: keep},
		{Name: tp.asks, Partitions: 3, Config: keep}, {Name: tp.quotes, Partitions: 3, Config: keep}}); err != nil {
		return err
	}
	bids, asks := book()
	if err := produce(ctx, addrs, tp.bids, bids); err != nil {
		return err
	}
	if err := produce(ctx, addrs, tp.asks, asks); err != nil {
		return err
	}
	fmt.Fprintf(w, "produced %d bids to %s and %d asks to %s\n", len(bids), tp.bids, len(asks), tp.asks)

	stage, err := kafkaio.NewTwoInputStage(tp.group,
		kafkaio.Input[Level]{Topic: tp.bids, Decoder: levelCodec, Lateness: lateness},
		kafkaio.Input[Level]{Topic: tp.asks, Decoder: levelCodec, Lateness: lateness},
		newQuotes, kafkaio.ToTopic(tp.quotes, kafkaio.JSON[Quote]{}), kafkaio.WithBrokers(addrs, nil))
	if err != nil {
		return err
	}
	if err := stage.Start(ctx); err != nil {
		return err
	}
	if err := stage.WaitCaughtUp(ctx); err != nil {
		return err
	}
	if err := stage.Stop(); err != nil {
		return err
	}
	st := stage.Stats()
	fmt.Fprintf(w, "stage caught up: %d levels read, %d quotes written to %s\n", st.Records, st.Emitted, tp.quotes)

	quotes, err := readBack(ctx, addrs, tp.quotes, int(st.Emitted))
	if err != nil {
		return err
	}
	count := map[string]int{}
	for _, q := range quotes { // each partition's quotes in time order
		if count[q.Symbol]++; count[q.Symbol] <= 2 {
			fmt.Fprintf(w, "%s %s bid %.2f ask %.2f mid %.3f spread %.2f\n", q.Symbol, q.Time.Format("15:04:05.000"), q.Bid, q.Ask, q.Mid, q.Spread)
		}
	}
	for _, sym := range slices.Sorted(maps.Keys(count)) {
		fmt.Fprintf(w, "%s: %d quotes\n", sym, count[sym])
	}
	fmt.Fprintln(w, "an update with one side missing makes no quote; the last 2 s of each partition wait for later updates")
	return nil
}

// produce writes levels to topic with an idempotent producer.
func produce(ctx context.Context, addrs []string, topic string, levels []Level) error {
	sink, err := kafkaio.NewSink(nil, levelCodec, kafkaio.WithBrokers(addrs, nil), kafkaio.WithTopic(topic))
	if err != nil {
		return err
	}
	for _, l := range levels {
		if err := sink.Write(ctx, stream.Event[Level]{Key: l.Symbol, Time: stream.TimeOf(l.Time), Value: l}); err != nil {
			return err
		}
	}
	return sink.Close(ctx)
}

// readBack reads n quotes of topic, read_committed, from its start.
func readBack(ctx context.Context, addrs []string, topic string, n int) ([]Quote, error) {
	f, err := kafkaio.NewFollower(nil, []string{topic}, kafkaio.FromOldest(), kafkaio.WithBrokers(addrs, nil))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out []Quote
	buf := make([]*sarama.ConsumerMessage, 64)
	for len(out) < n {
		k, err := f.Poll(ctx, buf)
		if err != nil {
			return nil, err
		}
		for _, m := range buf[:k] {
			e, err := kafkaio.JSON[Quote]{}.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
			if err != nil {
				return nil, err
			}
			out = append(out, e.Value)
		}
	}
	return out, nil
}

// book returns two minutes of book updates of three symbols, one every 0.2
// to 0.8 s, as the two feeds publish them: a bid and an ask stamped with the
// update's time, but for the 2 % of updates whose bid or ask got lost.
func book() (bids, asks []Level) {
	r := rand.New(rand.NewPCG(2, 2))
	start := time.Date(2025, 5, 8, 4, 12, 0, 0, time.UTC)
	for i, sym := range []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"} {
		cents := []int64{9_919_048, 181_250, 14_420}[i]
		for t := start; t.Before(start.Add(2 * time.Minute)); t = t.Add(time.Duration(200+r.IntN(600)) * time.Millisecond) {
			cents += r.Int64N(11) - 5
			spread := 1 + r.Int64N(3)
			if lost := r.IntN(100); lost != 0 {
				bids = append(bids, Level{Symbol: sym, Price: float64(cents) / 100, Time: t})
			}
			if lost := r.IntN(100); lost != 0 {
				asks = append(asks, Level{Symbol: sym, Price: float64(cents+spread) / 100, Time: t})
			}
		}
	}
	byTime := func(a, b Level) int { return a.Time.Compare(b.Time) }
	slices.SortStableFunc(bids, byTime)
	slices.SortStableFunc(asks, byTime)
	return bids, asks
}
