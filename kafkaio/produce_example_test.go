package kafkaio_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/streamtest"
)

// A source written into btc-price to its end; the record too large for the
// producer goes to the dead-letter topic instead of failing the Sink.
func ExampleProduce() {
	k, client := startKafka()
	defer k.Close()
	defer client.Close()

	sink, err := kafkaio.NewSink[[]byte](client, kafkaio.Raw{}, kafkaio.WithTopic("btc-price"),
		kafkaio.WithDeadLetter("btc-price-dlq"))
	if err != nil {
		log.Fatal(err)
	}
	t0 := stream.TimeOf(time.Date(2025, 5, 8, 4, 12, 38, 352e6, time.UTC))
	src := &streamtest.SliceSource[[]byte]{}
	for i, v := range []string{`{"price":99190.48}`, `{"price":99191.02}`, `{"pad":"` + strings.Repeat("x", 2<<20) + `"}`, `{"price":99189.75}`} {
		src.Records = append(src.Records, stream.Record[[]byte]{Event: stream.Event[[]byte]{Key: "BTCUSDT", Time: t0 + stream.Time(i), Value: []byte(v)}})
	}
	st, err := kafkaio.Produce(context.Background(), src, sink, kafkaio.WithFinalFlush(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("produced %d, in flight %d\n", st.Records, st.InFlight)
	ss := sink.Stats()
	fmt.Printf("acknowledged %d, dead-lettered %d\n", ss.Acked, ss.DeadLettered)
	if err := sink.Close(context.Background()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// produced 4, in flight 0
	// acknowledged 3, dead-lettered 1
}

// The partition of a key, as NewConfig's partitioner (the Java client's)
// chooses it.
func ExamplePartition() {
	for _, key := range []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"} {
		fmt.Println(key, kafkaio.Partition([]byte(key), 3))
	}
	p := sarama.NewMurmur2Partitioner("btc-price")
	n, _ := p.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder("BTCUSDT")}, 3)
	fmt.Println("sarama agrees:", n == kafkaio.Partition([]byte("BTCUSDT"), 3))
	// Output:
	// BTCUSDT 2
	// ETHUSDT 2
	// SOLUSDT 0
	// sarama agrees: true
}
