package kafkaio_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/stream"
)

// A stage with a side output, run with its lifecycle: Start, WaitCaughtUp
// once the input is written, Stop. The operator is a FlatMap that writes
// each price in cents to the main output and, for a price of 99,191 or
// more, an alert to the side; both go out in the stage's transactions. A
// FlatMap keeps no state (its Bounds say so, and a task rebuilt after a
// crash replays nothing for it): an alert that depends on earlier prices
// needs an operator with state and Bounds that cover it.
func ExampleWithSides() {
	k, client := startKafka()
	defer k.Close()
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client) // not closed: that would close client
	if err != nil {
		log.Fatal(err)
	}
	err = kafkaio.EnsureTopics(context.Background(), admin, []kafkaio.TopicSpec{
		{Name: "btc-price-cents", Partitions: 3}, {Name: "btc-price-alerts", Partitions: 3},
	})
	if err != nil {
		log.Fatal(err)
	}
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		log.Fatal(err)
	}
	for i, p := range []float64{99190.48, 99191.02, 99189.75, 99192.10} {
		ts := time.Date(2025, 5, 8, 4, 12, 38+i, 352e6, time.UTC)
		v := fmt.Sprintf(`{"symbol":"BTCUSDT","price":%.2f,"timestamp":%q}`, p, ts.Format(time.RFC3339Nano))
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: "btc-price", Key: sarama.StringEncoder("BTCUSDT"), Value: sarama.StringEncoder(v)}); err != nil {
			log.Fatal(err)
		}
	}
	_ = producer.Close()

	alerts := kafkaio.NewSide(kafkaio.ToTopic("btc-price-alerts", kafkaio.JSON[string]{}))
	newOp := func() (stream.Operator[Price, int64], error) {
		side := alerts.Emitter()
		return stream.FlatMap(func(e stream.Event[Price], out *stream.Collector[int64]) {
			out.Emit(int64(e.Value.Price*100 + 0.5))
			if e.Value.Price >= 99191 {
				side.Emit(stream.Event[string]{Key: e.Key, Time: e.Time, Value: fmt.Sprintf("%s at %.2f", e.Key, e.Value.Price)})
			}
		}), nil
	}
	// Final: the prices come in event-time order in each partition, so
	// each is processed at once (no lateness to wait for).
	stage, err := kafkaio.NewStage("cents", kafkaio.Input[Price]{Topic: "btc-price", Decoder: priceCodec, Final: true},
		newOp, kafkaio.ToTopic("btc-price-cents", kafkaio.JSON[int64]{}),
		kafkaio.WithSides(alerts), kafkaio.WithBrokers(k.Addrs(), nil))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := stage.Start(ctx); err != nil {
		log.Fatal(err)
	}
	if err := stage.WaitCaughtUp(ctx); err != nil { // every record read and committed
		log.Fatal(err)
	}
	if err := stage.Stop(); err != nil {
		log.Fatal(err)
	}
	for _, topic := range []string{"btc-price-cents", "btc-price-alerts"} {
		recs, err := k.ReadCommitted(ctx, topic)
		if err != nil {
			log.Fatal(err)
		}
		for _, m := range recs {
			fmt.Println(topic, stream.TimeOf(m.Timestamp), string(m.Value))
		}
	}
	// Output:
	// btc-price-cents 2025-05-08T04:12:38.352Z 9919048
	// btc-price-cents 2025-05-08T04:12:39.352Z 9919102
	// btc-price-cents 2025-05-08T04:12:40.352Z 9918975
	// btc-price-cents 2025-05-08T04:12:41.352Z 9919210
	// btc-price-alerts 2025-05-08T04:12:39.352Z "BTCUSDT at 99191.02"
	// btc-price-alerts 2025-05-08T04:12:41.352Z "BTCUSDT at 99192.10"
}
