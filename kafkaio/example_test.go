package kafkaio_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/internal/embedded"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/stream"
)

// Price is a btc-price value.
type Price struct {
	Symbol    string    `json:"symbol"`
	Price     float64   `json:"price"`
	Timestamp time.Time `json:"timestamp"`
}

// priceCodec reads the event key and time from the value.
var priceCodec = kafkaio.JSON[Price]{
	Key:  func(p *Price) (string, error) { return p.Symbol, nil },
	Time: func(p *Price) (stream.Time, error) { return stream.TimeOf(p.Timestamp), nil },
}

// startKafka starts an in-process Kafka-protocol broker with the topic btc-price.
func startKafka() (*embedded.Kafka, sarama.Client) {
	k, err := embedded.NewKafka()
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := kafkaio.NewConfig()
	if err != nil {
		log.Fatal(err)
	}
	client, err := sarama.NewClient(k.Addrs(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client) // not closed: that would close client
	if err != nil {
		log.Fatal(err)
	}
	err = kafkaio.EnsureTopics(context.Background(), admin, []kafkaio.TopicSpec{
		{Name: "btc-price", Partitions: 3},
		{Name: "btc-price-dlq", Partitions: 1},
	})
	if err != nil {
		log.Fatal(err)
	}
	return k, client
}

func ExampleNewSink() {
	k, client := startKafka()
	defer k.Close()
	defer client.Close()

	sink, err := kafkaio.NewSink(client, priceCodec, kafkaio.WithTopic("btc-price"))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Date(2025, 5, 8, 4, 12, 38, 352e6, time.UTC)
	for i, p := range []float64{99190.48, 99191.02, 99189.75} {
		ts := t0.Add(time.Duration(i) * time.Second)
		e := stream.Event[Price]{Key: "BTCUSDT", Time: stream.TimeOf(ts), Value: Price{"BTCUSDT", p, ts}}
		if err := sink.Write(ctx, e); err != nil {
			log.Fatal(err)
		}
	}
	if err := sink.Flush(ctx); err != nil { // every record is acknowledged
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", sink.Stats())
	if err := sink.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: {Written:3 Acked:3 Failed:0}
}

// printer is a stream.Sink that prints events and stops the run after n.
type printer struct {
	n    int
	stop context.CancelFunc
}

func (p *printer) Write(_ context.Context, e stream.Event[Price]) error {
	fmt.Println(e.Key, e.Time, e.Value.Price)
	if p.n--; p.n == 0 {
		p.stop()
	}
	return nil
}

// pass is the operator that forwards events unchanged.
type pass struct{}

func (pass) Process(e stream.Event[Price], out stream.Emitter[Price]) { out.Emit(e) }
func (pass) Advance(stream.Time, stream.Emitter[Price])               {}
func (pass) Bounds() stream.Bounds                                    { return stream.Bounds{} }

func ExampleNewSource() {
	k, client := startKafka()
	defer k.Close()
	defer client.Close()

	// Four prices and a record that is not JSON.
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range []string{
		`{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`,
		`{"symbol":"BTCUSDT","price":99191.02,"timestamp":"2025-05-08T06:12:39.352+02:00"}`,
		`not json`,
		`{"symbol":"BTCUSDT","price":99189.75,"timestamp":"2025-05-08T04:12:40.352Z"}`,
		`{"symbol":"BTCUSDT","price":99192.10,"timestamp":"2025-05-08T04:12:41.352Z"}`,
	} {
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: "btc-price", Key: sarama.StringEncoder("BTCUSDT"), Value: sarama.StringEncoder(v)}); err != nil {
			log.Fatal(err)
		}
	}
	_ = producer.Close()

	// The Source builds its own client (a consumer group needs one of its own).
	cfg, err := kafkaio.NewConfig(kafkaio.WithClientID("example"))
	if err != nil {
		log.Fatal(err)
	}
	src, err := kafkaio.NewSource(nil, "example", []string{"btc-price"}, priceCodec,
		kafkaio.WithBrokers(k.Addrs(), cfg), kafkaio.WithDeadLetter("btc-price-dlq"))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// With no allowed lateness, an event is final once a later one is seen;
	// once the partitions are idle, the watermark rises to the latest time
	// seen, which releases all but the last price.
	stats, err := stream.Run(ctx, src, stream.Operator[Price, Price](pass{}), &printer{n: 3, stop: cancel},
		stream.WithLateness(0), stream.WithIdleTimeout(100*time.Millisecond, false))
	fmt.Println(err, stats.Accepted)
	if err := src.Close(); err != nil { // commits what is done
		log.Fatal(err)
	}
	fmt.Printf("rejected %d, dead-lettered %d\n", src.Stats().Rejected, src.Stats().DeadLettered)
	// Output:
	// BTCUSDT 2025-05-08T04:12:38.352Z 99190.48
	// BTCUSDT 2025-05-08T04:12:39.352Z 99191.02
	// BTCUSDT 2025-05-08T04:12:40.352Z 99189.75
	// context canceled 4
	// rejected 1, dead-lettered 1
}

func ExampleNewConfig() {
	cfg, err := kafkaio.NewConfig(
		kafkaio.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12}),
		kafkaio.WithSASL(kafkaio.SASLScramSHA512, "pipeline", "secret"),
		kafkaio.WithCompression(sarama.CompressionZSTD),
		kafkaio.WithBatch(1<<20, 0, 2*time.Millisecond),
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Net.TLS.Enable, cfg.Net.SASL.Mechanism, cfg.Producer.Compression, cfg.Producer.Idempotent)
	_, err = kafkaio.NewConfig(kafkaio.WithSASL("SCRAM-SHA-1", "u", "p"))
	fmt.Println(err)
	// Output:
	// true SCRAM-SHA-512 zstd true
	// kafkaio: invalid option: SASL mechanism "SCRAM-SHA-1" (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)
}
