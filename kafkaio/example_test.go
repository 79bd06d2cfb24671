package kafkaio_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
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

// startKafka starts an in-process Kafka-protocol broker (package kafkatest)
// with the topic btc-price; any Kafka does.
func startKafka() (*kafkatest.Cluster, sarama.Client) {
	k, err := kafkatest.NewCluster()
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
		{Name: "btc-price-mean", Partitions: 3},
		{Name: "btc-price-dlq", Partitions: 1},
	})
	if err != nil {
		log.Fatal(err)
	}
	return k, client
}

func ExampleEnsureTopics() {
	k, err := kafkatest.NewCluster() // an in-process Kafka; any Kafka does
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()
	cfg, err := kafkaio.NewConfig()
	if err != nil {
		log.Fatal(err)
	}
	admin, err := sarama.NewClusterAdmin(k.Addrs(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close()

	ctx := context.Background()
	topics := []kafkaio.TopicSpec{
		{Name: "btc-price", Partitions: 3},
		// Results of old events are kept: retention by time would delete
		// them (see the package documentation).
		{Name: "btc-price-moving", Partitions: 3, Config: map[string]string{"retention.ms": "-1"}},
	}
	if err := kafkaio.EnsureTopics(ctx, admin, topics); err != nil {
		log.Fatal(err)
	}
	// At every start: the topics exist, nothing changes.
	fmt.Println(kafkaio.EnsureTopics(ctx, admin, topics))
	// An existing topic with other partitions than its spec is an error.
	err = kafkaio.EnsureTopics(ctx, admin, []kafkaio.TopicSpec{{Name: "btc-price", Partitions: 6}})
	fmt.Println(errors.Is(err, kafkaio.ErrTopicMismatch))

	meta, err := admin.DescribeTopics([]string{"btc-price", "btc-price-moving"})
	if err != nil {
		log.Fatal(err)
	}
	slices.SortFunc(meta, func(a, b *sarama.TopicMetadata) int { return strings.Compare(a.Name, b.Name) })
	for _, m := range meta {
		fmt.Println(m.Name, len(m.Partitions))
	}
	// Output:
	// <nil>
	// true
	// btc-price 3
	// btc-price-moving 3
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
	if err := sink.Close(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: {Written:3 Acked:3 Failed:0 Resent:0 Outages:0 DeadLettered:0 DeadLetterFailed:0}
}

// meanOver1m is the stage's operator: each price with the mean of the last
// minute, as text.
func meanOver1m() (stream.Operator[Price, string], error) {
	tr, err := window.NewTrailingStatistics([]time.Duration{time.Minute})
	if err != nil {
		return nil, err
	}
	return stream.Chain(stream.Chain[Price, float64, []window.Statistics](priceOf{}, tr), stream.Operator[[]window.Statistics, string](describe{})), nil
}

type priceOf struct{}

func (priceOf) Process(e stream.Event[Price], out stream.Emitter[float64]) {
	out.Emit(stream.Event[float64]{Key: e.Key, Time: e.Time, Value: e.Value.Price})
}
func (priceOf) Advance(stream.Time, stream.Emitter[float64]) {}
func (priceOf) Bounds() stream.Bounds                        { return stream.Bounds{} }

type describe struct{}

func (describe) Process(e stream.Event[[]window.Statistics], out stream.Emitter[string]) {
	out.Emit(stream.Event[string]{Key: e.Key, Time: e.Time, Value: fmt.Sprintf("mean %.2f of %d", e.Value[0].Mean, e.Value[0].Count)})
}
func (describe) Advance(stream.Time, stream.Emitter[string]) {}
func (describe) Bounds() stream.Bounds                       { return stream.Bounds{} }

func ExampleNewStage() {
	k, client := startKafka()
	defer k.Close()
	defer client.Close()

	// Four prices, one record that is not JSON.
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

	// A stage makes its own clients from the brokers and the config. With
	// no allowed lateness, a price's result is final once a later price is
	// seen: the last one waits.
	cfg, err := kafkaio.NewConfig(kafkaio.WithClientID("example"))
	if err != nil {
		log.Fatal(err)
	}
	stage, err := kafkaio.NewStage("example", kafkaio.Input[Price]{Topic: "btc-price", Decoder: priceCodec, Lateness: 0},
		meanOver1m, kafkaio.ToTopic("btc-price-mean", kafkaio.JSON[string]{}),
		kafkaio.WithBrokers(k.Addrs(), cfg), kafkaio.WithDeadLetter("btc-price-dlq"))
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- stage.Run(ctx) }()
	for stage.Stats().Emitted < 3 || stage.Stats().Commits == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	stop() // a graceful stop commits what is done
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	st := stage.Stats()
	fmt.Printf("rejected %d, dead-lettered %d\n", st.Rejected, st.DeadLettered)

	// Read the results as a downstream stage would: read_committed.
	rc, _ := kafkaio.NewConfig()
	rc.Consumer.IsolationLevel = sarama.ReadCommitted
	consumer, err := sarama.NewConsumer(k.Addrs(), rc)
	if err != nil {
		log.Fatal(err)
	}
	defer consumer.Close()
	part, err := sarama.NewMurmur2Partitioner("btc-price-mean").Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder("BTCUSDT")}, 3)
	if err != nil {
		log.Fatal(err)
	}
	pc, err := consumer.ConsumePartition("btc-price-mean", part, sarama.OffsetOldest)
	if err != nil {
		log.Fatal(err)
	}
	defer pc.Close()
	for range 3 {
		m := <-pc.Messages()
		fmt.Println(stream.TimeOf(m.Timestamp), string(m.Value))
	}
	// Output:
	// rejected 1, dead-lettered 1
	// 2025-05-08T04:12:38.352Z "mean 99190.48 of 1"
	// 2025-05-08T04:12:39.352Z "mean 99190.75 of 2"
	// 2025-05-08T04:12:40.352Z "mean 99190.42 of 3"
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
