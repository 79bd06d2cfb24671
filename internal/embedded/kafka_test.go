package embedded_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/internal/embedded"
	"github.com/tidemark-go/tidemark/internal/embedded/embeddedtest"
)

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "tidemark-embedded-test"
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
	return cfg
}

func TestKafkaRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		brokers int
	}{
		{name: "one broker", brokers: 1},
		{name: "three brokers", brokers: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k := embeddedtest.StartKafka(t, embedded.Brokers(tt.brokers), embedded.Topic("btc-price", 3))
			require.Len(t, k.Addrs(), tt.brokers, "one address per broker")

			client, err := sarama.NewClient(k.Addrs(), saramaConfig())
			require.NoError(t, err, "connect sarama client")
			t.Cleanup(func() { _ = client.Close() })

			parts, err := client.Partitions("btc-price")
			require.NoError(t, err, "seeded topic exists")
			assert.Equal(t, []int32{0, 1, 2}, parts, "seeded partition count")

			producer, err := sarama.NewSyncProducerFromClient(client)
			require.NoError(t, err, "create producer")
			t.Cleanup(func() { _ = producer.Close() })

			want := `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`
			part, off, err := producer.SendMessage(&sarama.ProducerMessage{
				Topic:     "btc-price",
				Partition: 2,
				Key:       sarama.StringEncoder("BTCUSDT"),
				Value:     sarama.StringEncoder(want),
				Headers:   []sarama.RecordHeader{{Key: []byte("h"), Value: []byte("v")}},
			})
			require.NoError(t, err, "produce")
			assert.Equal(t, int32(2), part, "manual partition honoured")
			assert.Equal(t, int64(0), off, "first offset")

			consumer, err := sarama.NewConsumerFromClient(client)
			require.NoError(t, err, "create consumer")
			t.Cleanup(func() { _ = consumer.Close() })
			pc, err := consumer.ConsumePartition("btc-price", 2, sarama.OffsetOldest)
			require.NoError(t, err, "consume partition")
			t.Cleanup(func() { _ = pc.Close() })

			select {
			case msg := <-pc.Messages():
				assert.Equal(t, "BTCUSDT", string(msg.Key), "key")
				assert.Equal(t, want, string(msg.Value), "value")
				require.Len(t, msg.Headers, 1, "headers")
				assert.Equal(t, "v", string(msg.Headers[0].Value), "header value")
			case err := <-pc.Errors():
				t.Fatalf("consume: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("no record within 10s")
			}
		})
	}
}

// TestKafkaTransactions checks that kfake supports what kafkaio's
// exactly-once stages need from sarama: a transactional producer that
// commits and aborts, offsets committed inside a transaction, and
// read_committed consumers that never see aborted records.
func TestKafkaTransactions(t *testing.T) {
	t.Parallel()
	k := embeddedtest.StartKafka(t, embedded.Topic("in", 1), embedded.Topic("out", 1))

	pcfg := saramaConfig()
	pcfg.Producer.Idempotent = true
	pcfg.Producer.Transaction.ID = "tidemark-test-txn"
	pcfg.Net.MaxOpenRequests = 1
	producer, err := sarama.NewSyncProducer(k.Addrs(), pcfg)
	require.NoError(t, err, "create transactional producer")
	t.Cleanup(func() { _ = producer.Close() })
	require.True(t, producer.IsTransactional(), "producer is transactional")

	send := func(vals ...string) {
		t.Helper()
		for _, v := range vals {
			_, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: "out", Value: sarama.StringEncoder(v)})
			require.NoError(t, err, "send %q", v)
		}
	}

	require.NoError(t, producer.BeginTxn(), "begin txn 1")
	send("a", "b", "c")
	require.NoError(t, producer.CommitTxn(), "commit txn 1")

	require.NoError(t, producer.BeginTxn(), "begin txn 2")
	send("x", "y")
	require.NoError(t, producer.AbortTxn(), "abort txn 2")

	require.NoError(t, producer.BeginTxn(), "begin txn 3")
	send("d")
	meta := "progress"
	require.NoError(t, producer.AddOffsetsToTxn(map[string][]*sarama.PartitionOffsetMetadata{
		"in": {{Partition: 0, Offset: 42, Metadata: &meta}},
	}, "tidemark-group"), "offsets inside txn 3")
	require.NoError(t, producer.CommitTxn(), "commit txn 3")

	ccfg := saramaConfig()
	ccfg.Consumer.IsolationLevel = sarama.ReadCommitted
	consumer, err := sarama.NewConsumer(k.Addrs(), ccfg)
	require.NoError(t, err, "create read_committed consumer")
	t.Cleanup(func() { _ = consumer.Close() })
	pc, err := consumer.ConsumePartition("out", 0, sarama.OffsetOldest)
	require.NoError(t, err, "consume out/0")
	t.Cleanup(func() { _ = pc.Close() })

	var got []string
	for len(got) < 4 {
		select {
		case msg := <-pc.Messages():
			got = append(got, string(msg.Value))
		case err := <-pc.Errors():
			t.Fatalf("consume: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %q within 10s", got)
		}
	}
	assert.Equal(t, []string{"a", "b", "c", "d"}, got, "read_committed skips the aborted transaction")

	admin, err := sarama.NewClusterAdmin(k.Addrs(), saramaConfig())
	require.NoError(t, err, "create admin")
	t.Cleanup(func() { _ = admin.Close() })
	offs, err := admin.ListConsumerGroupOffsets("tidemark-group", map[string][]int32{"in": {0}})
	require.NoError(t, err, "list group offsets")
	block := offs.GetBlock("in", 0)
	require.NotNil(t, block, "offset committed inside the transaction")
	assert.Equal(t, int64(42), block.Offset, "transactional offset")
	assert.Equal(t, "progress", block.Metadata, "offset metadata")
}

// groupHandler collects every record and marks it consumed.
type groupHandler struct {
	mu   sync.Mutex
	got  map[string]bool
	want int
	done chan struct{}
	once sync.Once
}

func (*groupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (*groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		h.mu.Lock()
		h.got[string(msg.Value)] = true
		n := len(h.got)
		h.mu.Unlock()
		sess.MarkMessage(msg, "")
		if n == h.want {
			h.once.Do(func() { close(h.done) })
		}
	}
	return nil
}

// TestKafkaConsumerGroup checks that a sarama consumer group joins, is
// assigned every partition, and commits its offsets to kfake.
func TestKafkaConsumerGroup(t *testing.T) {
	t.Parallel()
	const n = 20
	k := embeddedtest.StartKafka(t, embedded.Topic("btc-price", 2))

	pcfg := saramaConfig()
	pcfg.Producer.Partitioner = sarama.NewRoundRobinPartitioner
	producer, err := sarama.NewSyncProducer(k.Addrs(), pcfg)
	require.NoError(t, err, "create producer")
	t.Cleanup(func() { _ = producer.Close() })
	for i := range n {
		_, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: "btc-price", Value: sarama.StringEncoder(fmt.Sprint(i))})
		require.NoError(t, err, "produce %d", i)
	}

	gcfg := saramaConfig()
	gcfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	group, err := sarama.NewConsumerGroup(k.Addrs(), "tidemark-group", gcfg)
	require.NoError(t, err, "create consumer group")

	h := &groupHandler{got: map[string]bool{}, want: n, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	consumed := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := group.Consume(ctx, []string{"btc-price"}, h); err != nil {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("consumed %d of %d records within 30s", len(h.got), n)
	}
	cancel()
	require.NoError(t, <-consumed, "consume loop")
	require.NoError(t, group.Close(), "close group (commits marked offsets)")

	admin, err := sarama.NewClusterAdmin(k.Addrs(), saramaConfig())
	require.NoError(t, err, "create admin")
	t.Cleanup(func() { _ = admin.Close() })
	offs, err := admin.ListConsumerGroupOffsets("tidemark-group", map[string][]int32{"btc-price": {0, 1}})
	require.NoError(t, err, "list group offsets")
	for p := range int32(2) {
		block := offs.GetBlock("btc-price", p)
		require.NotNil(t, block, "partition %d committed", p)
		assert.Equal(t, int64(n/2), block.Offset, "partition %d committed past its last record", p)
	}
}

func TestKafkaOptionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []embedded.KafkaOption
	}{
		{name: "negative brokers", opts: []embedded.KafkaOption{embedded.Brokers(-1)}},
		{name: "ports and brokers disagree", opts: []embedded.KafkaOption{embedded.Brokers(2), embedded.KafkaPorts(0)}},
		{name: "port out of range", opts: []embedded.KafkaOption{embedded.KafkaPorts(70000)}},
		{name: "empty topic name", opts: []embedded.KafkaOption{embedded.Topic("", 1)}},
		{name: "zero partitions", opts: []embedded.KafkaOption{embedded.Topic("t", 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := embedded.NewKafka(tt.opts...)
			if !assert.Error(t, err, "invalid options are rejected") {
				_ = k.Close()
			}
		})
	}
}

// TestKafkaRestart closes a persistent cluster and starts a new one on the
// same port and data directory: clients find the same address and records.
func TestKafkaRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k, err := embedded.NewKafka(embedded.Topic("btc-price", 1), embedded.KafkaDataDir(dir))
	require.NoError(t, err, "start persistent cluster")
	addrs := k.Addrs()

	producer, err := sarama.NewSyncProducer(addrs, saramaConfig())
	require.NoError(t, err, "create producer")
	_, _, err = producer.SendMessage(&sarama.ProducerMessage{Topic: "btc-price", Value: sarama.StringEncoder("kept")})
	require.NoError(t, err, "produce")
	require.NoError(t, producer.Close(), "close producer")
	require.NoError(t, k.Close(), "close cluster")
	require.NoError(t, k.Close(), "Close is idempotent")

	_, port, err := net.SplitHostPort(addrs[0])
	require.NoError(t, err, "address is host:port")
	p, err := strconv.Atoi(port)
	require.NoError(t, err, "numeric port")
	k2 := embeddedtest.StartKafka(t, embedded.KafkaPorts(p), embedded.KafkaDataDir(dir))
	assert.Equal(t, addrs, k2.Addrs(), "same address after restart")

	consumer, err := sarama.NewConsumer(k2.Addrs(), saramaConfig())
	require.NoError(t, err, "create consumer")
	t.Cleanup(func() { _ = consumer.Close() })
	pc, err := consumer.ConsumePartition("btc-price", 0, sarama.OffsetOldest)
	require.NoError(t, err, "persisted topic exists")
	t.Cleanup(func() { _ = pc.Close() })
	select {
	case msg := <-pc.Messages():
		assert.Equal(t, "kept", string(msg.Value), "persisted record")
	case <-time.After(10 * time.Second):
		t.Fatal("no persisted record within 10s")
	}
}
