// Command 03-ohlc computes one-minute OHLC bars and the VWAP of each symbol
// from a topic of trades, with an aggregator of its own over tumbling
// windows, writes them exactly once to a topic of bars, and loads that topic
// into MongoDB. It produces some trades first, runs both stages until they
// have caught up, and prints the bars stored in MongoDB.
//
//	go run ./examples/03-ohlc                       # an in-process Kafka and MongoDB
//	go run ./examples/03-ohlc --brokers 127.0.0.1:9092 --mongo-uri mongodb://127.0.0.1:27017
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
	"github.com/tidemark-go/tidemark/window"
)

// Trade is a record of the trades topic; its key is the symbol. Several
// trades of a symbol may share a millisecond: the trade id tells them apart.
type Trade struct {
	Symbol string    `json:"symbol"`
	ID     uint64    `json:"id"`
	Price  float64   `json:"price"`
	Qty    float64   `json:"qty"`
	Time   time.Time `json:"time"`
}

// Bar is a record of the bars topic and a document of the bars collection:
// the trades of a symbol in the minute from Start.
type Bar struct {
	ID     string    `json:"-" bson:"_id"` // symbol|start, so that a replay replaces
	Symbol string    `json:"symbol"`
	Start  time.Time `json:"start"`
	Open   float64   `json:"open"`
	High   float64   `json:"high"`
	Low    float64   `json:"low"`
	Close  float64   `json:"close"`
	Volume float64   `json:"volume"`
	VWAP   float64   `json:"vwap"` // Σ price×qty / Σ qty
	Trades int64     `json:"trades"`
}

// ohlc aggregates the trades of a window into a Bar. A high or a low cannot
// be undone when a trade leaves, but tumbling windows only add: it is a
// window.Accumulator. Trades come in (time, id) order: the first is the open.
type ohlc struct {
	bar      Bar
	notional float64
}

func (a *ohlc) Add(t Trade) {
	if a.bar.Volume == 0 {
		a.bar = Bar{Open: t.Price, High: t.Price, Low: t.Price}
	}
	a.bar.High, a.bar.Low, a.bar.Close = max(a.bar.High, t.Price), min(a.bar.Low, t.Price), t.Price
	a.bar.Volume += t.Qty
	a.notional += t.Price * t.Qty
}

func (a *ohlc) Result() Bar { b := a.bar; b.VWAP = a.notional / b.Volume; return b }
func (a *ohlc) Reset()      { *a = ohlc{} }

// newBars returns the bars stage's operator, one per partition.
func newBars() (stream.Operator[Trade, Bar], error) {
	bars, err := window.NewTumbling(time.Minute, func() *ohlc { return &ohlc{} })
	if err != nil {
		return nil, err
	}
	return stream.Chain(bars, stream.Map(func(e stream.Event[window.Result[Bar]]) Bar {
		b := e.Value.Value
		b.Symbol, b.Start, b.Trades = e.Key, e.Value.Start.UTC(), e.Value.Count
		return b
	})), nil
}

// lateness is how far out of order trades may arrive.
const lateness = 2 * time.Second

var tradeCodec = kafkaio.JSON[Trade]{Time: func(t *Trade) (stream.Time, error) { return stream.TimeOf(t.Time), nil }}

// names are a run's topics, groups and database: each run has its own.
type names struct{ trades, bars, barsGroup, loadGroup, db string }

func newNames() names {
	id := fmt.Sprintf("%x", rand.Uint32())
	return names{"03-trades-" + id, "03-bars-" + id, "03-bars-" + id, "03-load-" + id, "ohlc-" + id}
}

// newBarsStage returns the stage trades -> bars, exactly once. Trades are
// told apart by (symbol, time, id): a trade sent twice is dropped once.
func newBarsStage(addrs []string, n names, opts ...kafkaio.StageOption) (*kafkaio.Stage, error) {
	in := kafkaio.Input[Trade]{Topic: n.trades, Decoder: tradeCodec, Lateness: lateness,
		Dedup: stream.ByID(func(e stream.Event[Trade]) uint64 { return e.Value.ID })}
	return kafkaio.NewStage(n.barsGroup, in, newBars, kafkaio.ToTopic(n.bars, kafkaio.JSON[Bar]{}),
		append([]kafkaio.StageOption{kafkaio.WithBrokers(addrs, nil)}, opts...)...)
}

// newBarSink returns the MongoDB sink of the load stage: a document per bar,
// upserted by _id in the collection bars, so that writing a bar again (a
// replay after a crash) changes nothing.
func newBarSink(db *mongo.Database, opts ...mongoio.Option) (*mongoio.EventSink[Bar], error) {
	return mongoio.NewEventSink(db, func(dst []mongoio.Route, e stream.Event[Bar]) ([]mongoio.Route, error) {
		b := e.Value
		b.ID = b.Symbol + "|" + b.Start.Format(time.RFC3339)
		return append(dst, mongoio.Route{Collection: "bars", Doc: b}), nil
	}, opts...)
}

// newLoadStage returns the stage bars -> MongoDB, effectively once: the sink
// is flushed before the offsets are committed. The bars topic is the output
// of an exactly-once stage, in time order: Final, nothing to hold back.
func newLoadStage(addrs []string, n names, sink *mongoio.EventSink[Bar], opts ...kafkaio.StageOption) (*kafkaio.Stage, error) {
	in := kafkaio.Input[Bar]{Topic: n.bars, Decoder: kafkaio.JSON[Bar]{}, Final: true}
	return kafkaio.NewStage(n.loadGroup, in, func() (stream.Operator[Bar, Bar], error) {
		return stream.Map(func(e stream.Event[Bar]) Bar { return e.Value }), nil
	}, kafkaio.ToSink[Bar](sink), append([]kafkaio.StageOption{kafkaio.WithBrokers(addrs, nil)}, opts...)...)
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
	if err := createTopics(ctx, addrs, n); err != nil {
		return err
	}
	ts := trades()
	if err := produce(ctx, addrs, n.trades, ts); err != nil {
		return err
	}
	fmt.Fprintf(w, "produced %d trades to %s\n", len(ts), n.trades)

	barsStage, err := newBarsStage(addrs, n)
	if err != nil {
		return err
	}
	if err := runToEnd(ctx, barsStage, w); err != nil {
		return err
	}
	sink, err := newBarSink(client.Database(n.db))
	if err != nil {
		return err
	}
	defer sink.Close(context.WithoutCancel(ctx))
	load, err := newLoadStage(addrs, n, sink)
	if err != nil {
		return err
	}
	if err := runToEnd(ctx, load, w); err != nil {
		return err
	}

	cur, err := client.Database(n.db).Collection("bars").Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return err
	}
	var bars []Bar
	if err := cur.All(ctx, &bars); err != nil {
		return err
	}
	fmt.Fprintf(w, "MongoDB %s.bars:\n", n.db)
	for _, b := range bars {
		fmt.Fprintf(w, "%s %s open %.2f high %.2f low %.2f close %.2f volume %.4f vwap %.4f trades %d\n",
			b.Symbol, b.Start.UTC().Format("15:04"), b.Open, b.High, b.Low, b.Close, b.Volume, b.VWAP, b.Trades)
	}
	return nil
}

// runToEnd runs a stage until it has read and committed all its input.
func runToEnd(ctx context.Context, stage *kafkaio.Stage, w io.Writer) error {
	if err := stage.Start(ctx); err != nil {
		return err
	}
	if err := stage.WaitCaughtUp(ctx); err != nil {
		return err
	}
	if err := stage.Stop(); err != nil {
		return err
	}
	fmt.Fprintf(w, "stage caught up: %d records read, %d results written\n", stage.Stats().Records, stage.Stats().Emitted)
	return nil
}

// createTopics creates the topics, with retention.ms -1: results carry their
// event time as record timestamp, and old ones must not be deleted.
func createTopics(ctx context.Context, addrs []string, n names) error {
	admin, err := sarama.NewClusterAdmin(addrs, nil)
	if err != nil {
		return err
	}
	defer admin.Close()
	keep := map[string]string{"retention.ms": "-1"}
	return kafkaio.EnsureTopics(ctx, admin, []kafkaio.TopicSpec{{Name: n.trades, Partitions: 3, Config: keep}, {Name: n.bars, Partitions: 3, Config: keep}})
}

// produce writes trades to topic with an idempotent producer.
func produce(ctx context.Context, addrs []string, topic string, trades []Trade) error {
	sink, err := kafkaio.NewSink(nil, tradeCodec, kafkaio.WithBrokers(addrs, nil), kafkaio.WithTopic(topic))
	if err != nil {
		return err
	}
	for _, t := range trades {
		if err := sink.Write(ctx, stream.Event[Trade]{Key: t.Symbol, Time: stream.TimeOf(t.Time), Value: t}); err != nil {
			return err
		}
	}
	return sink.Close(ctx)
}

// trades returns five minutes of trades of three symbols: bursts of one to
// four trades in one millisecond, every 0 to 400 ms, and 1 % of the trades
// sent a second time, as a feed does after a reconnection.
func trades() []Trade {
	r := rand.New(rand.NewPCG(3, 3))
	start := time.Date(2025, 5, 8, 4, 12, 0, 0, time.UTC)
	var out []Trade
	for i, sym := range []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"} {
		cents, id := []int64{9_919_048, 181_250, 14_420}[i], uint64(0)
		for t := start; t.Before(start.Add(5 * time.Minute)); t = t.Add(time.Duration(r.IntN(400)) * time.Millisecond) {
			for range 1 + r.IntN(4) {
				cents += r.Int64N(11) - 5
				id++
				out = append(out, Trade{Symbol: sym, ID: id, Price: float64(cents) / 100, Qty: float64(1+r.IntN(5000)) / 1000, Time: t})
				if r.IntN(100) == 0 {
					out = append(out, out[len(out)-1])
				}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Trade) int { return a.Time.Compare(b.Time) })
	return out
}
