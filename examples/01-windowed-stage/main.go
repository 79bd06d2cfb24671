// Command 01-windowed-stage runs a Kafka stage that turns a topic of prices
// (JSON, key = symbol) into one-minute average prices per symbol, written
// exactly once to another topic. It produces some prices first, runs the
// stage until it has caught up with them, and prints the averages it wrote.
//
//	go run ./examples/01-windowed-stage                        # an in-process Kafka
//	go run ./examples/01-windowed-stage --brokers 127.0.0.1:9092
package main

import (
	"cmp"
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

	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
)

// Price is a record of the prices topic; its key is the symbol.
type Price struct {
	Symbol string    `json:"symbol"`
	Price  float64   `json:"price"`
	Time   time.Time `json:"time"`
}

// Average is a record of the averages topic: the mean price of a symbol over
// the minute [Start, End).
type Average struct {
	Symbol string    `json:"symbol"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Mean   float64   `json:"mean"`
	Count  int64     `json:"count"`
}

// The event key is the record key (the symbol), the event time the price's.
var priceCodec = kafkaio.JSON[Price]{Time: func(p *Price) (stream.Time, error) { return stream.TimeOf(p.Time), nil }}

// lateness is how far out of order prices may arrive: a minute's average is
// final, and written, once a price 5 s past its end has been read.
const lateness = 5 * time.Second

// newAverages returns the stage's operator; the stage runs one per partition.
func newAverages() (stream.Operator[Price, Average], error) {
	means, err := window.NewTumbling(time.Minute, window.NewMean)
	if err != nil {
		return nil, err
	}
	prices := stream.Map(func(e stream.Event[Price]) float64 { return e.Value.Price })
	averages := stream.Map(func(e stream.Event[window.Result[float64]]) Average {
		r := e.Value
		return Average{Symbol: e.Key, Start: r.Start.UTC(), End: r.End.UTC(), Mean: r.Value, Count: r.Count}
	})
	return stream.Chain(stream.Chain(prices, means), averages), nil
}

// topics names a run's topics and consumer group: each run has its own, so
// that a run against your own Kafka starts from nothing.
type topics struct{ prices, averages, group string }

func newTopics() topics {
	id := fmt.Sprintf("%x", rand.Uint32())
	return topics{prices: "01-prices-" + id, averages: "01-averages-" + id, group: "01-averages-" + id}
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
	// Results carry their event times as record timestamps: keep them
	// whatever their age (retention.ms -1), or the broker deletes old ones.
	keep := map[string]string{"retention.ms": "-1"}
	if err := kafkaio.EnsureTopics(ctx, admin, []kafkaio.TopicSpec{
		{Name: tp.prices, Partitions: 3, Config: keep}, {Name: tp.averages, Partitions: 3, Config: keep},
	}); err != nil {
		return err
	}

	// Some prices, written with an idempotent producer.
	sink, err := kafkaio.NewSink(nil, priceCodec, kafkaio.WithBrokers(addrs, nil), kafkaio.WithTopic(tp.prices))
	if err != nil {
		return err
	}
	ps := prices()
	for _, p := range ps {
		if err := sink.Write(ctx, stream.Event[Price]{Key: p.Symbol, Time: stream.TimeOf(p.Time), Value: p}); err != nil {
			return err
		}
	}
	if err := sink.Close(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "produced %d prices to %s\n", len(ps), tp.prices)

	// The stage: until it has read and committed every price.
	stage, err := kafkaio.NewStage(tp.group, kafkaio.Input[Price]{Topic: tp.prices, Decoder: priceCodec, Lateness: lateness},
		newAverages, kafkaio.ToTopic(tp.averages, kafkaio.JSON[Average]{}), kafkaio.WithBrokers(addrs, nil))
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
	fmt.Fprintf(w, "stage caught up: %d prices read, %d averages written to %s\n", st.Records, st.Emitted, tp.averages)

	// Read them back as any consumer would: read_committed.
	avgs, err := readBack(ctx, addrs, tp.averages, int(st.Emitted))
	if err != nil {
		return err
	}
	slices.SortFunc(avgs, func(a, b Average) int { return cmp.Or(strings.Compare(a.Symbol, b.Symbol), a.Start.Compare(b.Start)) })
	for _, a := range avgs {
		fmt.Fprintf(w, "%s %s-%s mean %.4f of %d prices\n", a.Symbol, a.Start.Format("15:04"), a.End.Format("15:04"), a.Mean, a.Count)
	}
	fmt.Fprintln(w, "each symbol's last minute is still open: no price 5 s past its end has come")
	return nil
}

// readBack reads n records of topic, read_committed, from its start.
func readBack(ctx context.Context, addrs []string, topic string, n int) ([]Average, error) {
	f, err := kafkaio.NewFollower(nil, []string{topic}, kafkaio.FromOldest(), kafkaio.WithBrokers(addrs, nil))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out []Average
	buf := make([]*sarama.ConsumerMessage, 64)
	for len(out) < n {
		k, err := f.Poll(ctx, buf)
		if err != nil {
			return nil, err
		}
		for _, m := range buf[:k] {
			e, err := kafkaio.JSON[Average]{}.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
			if err != nil {
				return nil, err
			}
			out = append(out, e.Value)
		}
	}
	return out, nil
}

// prices returns a random walk of three symbols over five minutes, a price
// of each every 0.5 to 1.5 s, in cents.
func prices() []Price {
	r := rand.New(rand.NewPCG(1, 1))
	start := time.Date(2025, 5, 8, 4, 12, 0, 0, time.UTC)
	var out []Price
	for i, sym := range []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"} {
		cents := []int64{9_919_048, 181_250, 14_420}[i]
		for t := start; t.Before(start.Add(5 * time.Minute)); t = t.Add(time.Duration(500+r.IntN(1000)) * time.Millisecond) {
			cents += r.Int64N(21) - 10
			out = append(out, Price{Symbol: sym, Price: float64(cents) / 100, Time: t})
		}
	}
	slices.SortStableFunc(out, func(a, b Price) int { return a.Time.Compare(b.Time) })
	return out
}
