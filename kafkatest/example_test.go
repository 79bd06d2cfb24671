package kafkatest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/IBM/sarama"

	"github.com/tidemark-go/tidemark/kafkatest"
)

// Example starts a cluster, creates a topic, writes records with sarama
// and reads them back as a read_committed consumer would. In a test,
// kafkatest.New(t) starts the cluster and closes it when the test ends.
func Example() {
	k, err := kafkatest.NewCluster()
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()
	ctx := context.Background()
	if err := k.CreateTopic(ctx, "btc-price", 3, map[string]string{"retention.ms": "-1"}); err != nil {
		log.Fatal(err)
	}

	// Any sarama client works against k.Addrs().
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	producer, err := sarama.NewSyncProducer(k.Addrs(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer producer.Close()
	for i, price := range []string{"99190.48", "99191.02"} {
		_, _, err := producer.SendMessage(&sarama.ProducerMessage{
			Topic: "btc-price", Partition: int32(i), Key: sarama.StringEncoder("BTCUSDT"), Value: sarama.StringEncoder(price),
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	// Or the cluster's own helper.
	err = k.Produce(ctx, &sarama.ProducerMessage{Topic: "btc-price", Partition: 2, Value: sarama.StringEncoder("99189.75")})
	if err != nil {
		log.Fatal(err)
	}

	recs, err := k.ReadCommitted(ctx, "btc-price")
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		fmt.Printf("%s/%d@%d %s\n", r.Topic, r.Partition, r.Offset, r.Value)
	}
	// Output:
	// btc-price/0@0 99190.48
	// btc-price/1@0 99191.02
	// btc-price/2@0 99189.75
}

// ExampleCluster_Fail makes the group coordinator refuse the next two
// offset commits of a group, as a coordinator in the middle of a rebalance
// would.
func ExampleCluster_Fail() {
	k, err := kafkatest.NewCluster(kafkatest.WithTopic("in", 1))
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()
	fault, err := k.Fail(kafkatest.Failure{
		Requests: []kafkatest.APIKey{kafkatest.OffsetCommit},
		Group:    "stage",
		Err:      sarama.ErrRebalanceInProgress,
		Count:    2,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer fault.Remove()

	admin, err := sarama.NewClusterAdmin(k.Addrs(), sarama.NewConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close()
	for offset := range int64(3) {
		resp, err := admin.AlterConsumerGroupOffsets("stage",
			map[string]map[int32]sarama.OffsetAndMetadata{"in": {0: {Offset: offset}}}, nil)
		if err != nil {
			log.Fatal(err)
		}
		kerr := resp.Errors["in"][0]
		fmt.Printf("commit of offset %d refused: %v\n", offset, errors.Is(kerr, sarama.ErrRebalanceInProgress))
	}
	fmt.Println("failed:", fault.Hits())
	// Output:
	// commit of offset 0 refused: true
	// commit of offset 1 refused: true
	// commit of offset 2 refused: false
	// failed: 2
}

// ExampleCluster_Restart restarts a cluster that keeps its data in a
// directory: the records written before are there after, on the same
// address.
func ExampleCluster_Restart() {
	dir, err := os.MkdirTemp("", "kafkatest-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	k, err := kafkatest.NewCluster(kafkatest.WithTopic("btc-price", 1), kafkatest.WithDataDir(dir))
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()
	ctx := context.Background()
	addr := k.Addrs()[0]
	if err := k.Produce(ctx, &sarama.ProducerMessage{Topic: "btc-price", Value: sarama.StringEncoder("kept")}); err != nil {
		log.Fatal(err)
	}

	// The cluster goes away for 200 ms; clients see their connections drop.
	if err := k.Restart(ctx, 200*time.Millisecond); err != nil {
		log.Fatal(err)
	}
	recs, err := k.ReadCommitted(ctx, "btc-price")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(k.Addrs()[0] == addr, len(recs), string(recs[0].Value))

	// Without a data directory there is nothing to come back with.
	mem, err := kafkatest.NewCluster()
	if err != nil {
		log.Fatal(err)
	}
	defer mem.Close()
	fmt.Println(errors.Is(mem.Stop(), kafkatest.ErrNotPersistent))
	// Output:
	// true 1 kept
	// true
}
