// Command 05-testing-a-stage is a small exactly-once stage, the subject of
// its test (main_test.go), which shows how to test a stage of your own end to
// end: an in-process Kafka, the stage crashed at random points and
// restarted, and its output compared record by record with an uninterrupted
// run computed in the test.
//
// The stage reads prices (JSON, key = symbol) and writes, for each price, the
// count and mean of its symbol's prices over the last minute.
//
//	go run ./examples/05-testing-a-stage                        # an in-process Kafka
//	go run ./examples/05-testing-a-stage --brokers 127.0.0.1:9092
//	go test ./examples/05-testing-a-stage/                      # the point
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
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
)

// Price is a record of the input topic; its key is the symbol.
type Price struct {
	Price float64   `json:"price"`
	Time  time.Time `json:"time"`
}

// Moving is a record of the output topic: the prices of the symbol (the
// key) in the minute up to the time of one of them (the record timestamp).
type Moving struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
}

var priceCodec = kafkaio.JSON[Price]{Time: func(p *Price) (stream.Time, error) { return stream.TimeOf(p.Time), nil }}

// input is the stage's input: prices up to 2 s out of order.
func input(topic string) kafkaio.Input[Price] {
	return kafkaio.Input[Price]{Topic: topic, Decoder: priceCodec, Lateness: 2 * time.Second}
}

// newMoving returns the stage's operator, one per partition: a trailing
// window of one minute.
func newMoving() (stream.Operator[Price, Moving], error) {
	stats, err := window.NewTrailingStatistics([]time.Duration{time.Minute})
	if err != nil {
		return nil, err
	}
	prices := stream.Map(func(e stream.Event[Price]) float64 { return e.Value.Price })
	moving := stream.Map(func(e stream.Event[[]window.Statistics]) Moving { return Moving{e.Value[0].Count, e.Value[0].Mean} })
	return stream.Chain(stream.Chain(prices, stats), moving), nil
}

// newStage returns the stage, reading in and writing out as a member of group.
func newStage(addrs []string, group, in, out string, opts ...kafkaio.StageOption) (*kafkaio.Stage, error) {
	return kafkaio.NewStage(group, input(in), newMoving, kafkaio.ToTopic(out, kafkaio.JSON[Moving]{}),
		append([]kafkaio.StageOption{kafkaio.WithBrokers(addrs, nil)}, opts...)...)
}

func main() {
	brokers := flag.String("brokers", "", "Kafka brokers, comma-separated (empty: start an in-process cluster)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *brokers, fmt.Sprintf("05-%x", rand.Uint32()), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run writes a few prices to the topic <name>-prices and runs the stage
// until it has caught up with them.
func run(ctx context.Context, brokers, name string, w io.Writer) error {
	addrs := strings.Split(brokers, ",")
	if brokers == "" {
		k, err := kafkatest.NewCluster()
		if err != nil {
			return err
		}
		defer k.Close()
		addrs = k.Addrs()
	}
	in, out := name+"-prices", name+"-moving"
	admin, err := sarama.NewClusterAdmin(addrs, nil)
	if err != nil {
		return err
	}
	defer admin.Close()
	keep := map[string]string{"retention.ms": "-1"} // results carry their event times
	if err := kafkaio.EnsureTopics(ctx, admin, []kafkaio.TopicSpec{{Name: in, Partitions: 3, Config: keep}, {Name: out, Partitions: 3, Config: keep}}); err != nil {
		return err
	}
	sink, err := kafkaio.NewSink(nil, priceCodec, kafkaio.WithBrokers(addrs, nil), kafkaio.WithTopic(in))
	if err != nil {
		return err
	}
	start := time.Date(2025, 5, 8, 4, 12, 0, 0, time.UTC)
	for i := range 600 {
		p := Price{Price: 100 + float64(i%17), Time: start.Add(time.Duration(i) * 500 * time.Millisecond)}
		if err := sink.Write(ctx, stream.Event[Price]{Key: []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}[i%3], Time: stream.TimeOf(p.Time), Value: p}); err != nil {
			return err
		}
	}
	if err := sink.Close(ctx); err != nil {
		return err
	}

	stage, err := newStage(addrs, name+"-moving", in, out)
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
	fmt.Fprintf(w, "%s: %d prices read; %s: %d moving averages written (the last 2 s wait for later prices)\n", in, st.Records, out, st.Emitted)
	return nil
}
