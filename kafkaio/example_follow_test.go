package kafkaio_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/kafkaio"
)

func ExampleNewFollower() {
	k, client := startKafka()
	defer k.Close()
	defer client.Close()

	// Five prices of one symbol, so in one partition of btc-price.
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		log.Fatal(err)
	}
	defer producer.Close()
	send := func(price float64) {
		v := fmt.Sprintf(`{"symbol":"BTCUSDT","price":%.2f}`, price)
		_, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: "btc-price", Key: sarama.StringEncoder("BTCUSDT"), Value: sarama.StringEncoder(v)})
		if err != nil {
			log.Fatal(err)
		}
	}
	for _, p := range []float64{99190.48, 99191.02, 99189.75, 99192.10, 99193.37} {
		send(p)
	}

	// A view of btc-price: the last two records of each partition, then
	// what comes, read_committed, without a consumer group.
	f, err := kafkaio.NewFollower(client, []string{"btc-price"}, kafkaio.FromEnd(2))
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.Start(ctx); err != nil { // where each partition begins is fixed here
		log.Fatal(err)
	}
	send(99194.01)

	enough := errors.New("enough")
	seen := 0
	err = f.Run(ctx, func(m *sarama.ConsumerMessage) error {
		fmt.Printf("%s offset %d: %s\n", m.Key, m.Offset, m.Value)
		if seen++; seen == 3 {
			return enough
		}
		return nil
	})
	st := f.Stats()
	fmt.Println(err == enough, st.Records, st.Partitions, st.Lag)
	// Output:
	// BTCUSDT offset 3: {"symbol":"BTCUSDT","price":99192.10}
	// BTCUSDT offset 4: {"symbol":"BTCUSDT","price":99193.37}
	// BTCUSDT offset 5: {"symbol":"BTCUSDT","price":99194.01}
	// true 3 3 0
}
