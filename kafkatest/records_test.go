package kafkatest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/stream"
)

func TestCreateTopic(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t)
	ctx := t.Context()
	require.NoError(t, k.CreateTopic(ctx, "kept", 3, map[string]string{"retention.ms": "-1", "cleanup.policy": "compact"}), "create with configs")
	require.NoError(t, k.CreateTopic(ctx, "plain", 1, nil), "create with the defaults")
	err := k.CreateTopic(ctx, "kept", 3, nil)
	assert.ErrorIs(t, err, sarama.ErrTopicAlreadyExists, "an existing topic")
	assert.ErrorContains(t, err, "kafkatest: create topic kept: ", "the message names the topic")
	for _, bad := range []struct {
		name string
		n    int32
	}{{"", 1}, {"t", 0}} {
		err := k.CreateTopic(ctx, bad.name, bad.n, nil)
		assert.ErrorIs(t, err, kafkatest.ErrInvalidOption, "%q with %d partitions", bad.name, bad.n)
		assert.ErrorIs(t, err, stream.ErrInvalidOption, "as stream's invalid option")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, k.CreateTopic(canceled, "late", 1, nil), context.Canceled, "a done context")

	admin, err := sarama.NewClusterAdmin(k.Addrs(), saramaConfig())
	require.NoError(t, err, "admin")
	t.Cleanup(func() { _ = admin.Close() })
	meta, err := admin.DescribeTopics([]string{"kept", "plain"})
	require.NoError(t, err, "describe")
	require.Len(t, meta, 2, "both topics")
	for _, m := range meta {
		want := map[string]int{"kept": 3, "plain": 1}[m.Name]
		assert.Len(t, m.Partitions, want, "partitions of %s", m.Name)
	}
	res, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: "kept"}}, sarama.DescribeConfigsOptions{})
	require.NoError(t, err, "describe configs")
	require.Len(t, res, 1, "one resource")
	got := map[string]string{}
	for _, e := range res[0].Configs {
		got[e.Name] = e.Value
	}
	assert.Equal(t, "-1", got["retention.ms"], "retention.ms set")
	assert.Equal(t, "compact", got["cleanup.policy"], "cleanup.policy set")
}

func TestProduce(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, kafkatest.WithTopic("t", 2))
	ts := time.Date(2025, 5, 8, 4, 12, 38, 352e6, time.UTC)
	msgs := []*sarama.ProducerMessage{
		{Topic: "t", Partition: 1, Key: sarama.StringEncoder("k1"), Value: sarama.StringEncoder("v1"), Timestamp: ts,
			Headers: []sarama.RecordHeader{{Key: []byte("h"), Value: []byte("x")}}},
		{Topic: "t", Value: sarama.StringEncoder("v2")},
		{Topic: "t", Partition: 1, Value: sarama.StringEncoder("v3")},
	}
	require.NoError(t, k.Produce(t.Context(), msgs...), "Produce")
	require.NoError(t, k.Produce(t.Context()), "no messages")
	assert.Equal(t, []int32{1, 0, 1}, []int32{msgs[0].Partition, msgs[1].Partition, msgs[2].Partition}, "partitions as given")
	assert.Equal(t, []int64{0, 0, 1}, []int64{msgs[0].Offset, msgs[1].Offset, msgs[2].Offset}, "offsets set")

	recs, err := k.ReadCommitted(t.Context(), "t")
	require.NoError(t, err, "ReadCommitted")
	require.Len(t, recs, 3, "every record")
	assert.Equal(t, []string{"v2", "v1", "v3"}, values(recs), "in partition order, then offset order")
	r := recs[1]
	assert.Equal(t, "t", r.Topic, "topic")
	assert.Equal(t, int32(1), r.Partition, "partition")
	assert.Equal(t, int64(0), r.Offset, "offset")
	assert.Equal(t, "k1", string(r.Key), "key")
	assert.True(t, ts.Equal(r.Timestamp), "timestamp %v", r.Timestamp)
	require.Len(t, r.Headers, 1, "headers")
	assert.Equal(t, "h", string(r.Headers[0].Key), "header key")
	assert.Equal(t, "x", string(r.Headers[0].Value), "header value")
	assert.Nil(t, recs[0].Key, "no key")

	err = k.Produce(t.Context(), &sarama.ProducerMessage{Topic: "t", Partition: 5, Value: sarama.StringEncoder("nowhere")})
	assert.ErrorContains(t, err, "kafkatest: produce: t/5", "a partition that does not exist")
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	assert.ErrorIs(t, k.Produce(canceled, msgs[0]), context.Canceled, "a done context")
}

func TestReadCommittedErrors(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, kafkatest.WithTopic("empty", 3))
	recs, err := k.ReadCommitted(t.Context(), "empty")
	require.NoError(t, err, "an empty topic")
	assert.Empty(t, recs, "has no records")
	_, err = k.ReadCommitted(t.Context(), "missing")
	assert.ErrorIs(t, err, sarama.ErrUnknownTopicOrPartition, "a topic that does not exist")
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = k.ReadCommitted(canceled, "empty")
	assert.ErrorIs(t, err, context.Canceled, "a done context")
}

// TestReadCommitted writes a random mix of records to a topic: outside
// transactions, in transactions that commit, that abort and that stay
// open, from three transactional producers at once, some compressed, in
// batches of one or several records. ReadCommitted returns exactly what a
// model of read_committed says: per partition, the records of committed
// transactions and those outside transactions, in write order, up to the
// first record of a transaction still open. It returns at once with an
// open transaction, and once it commits, returns what it held back.
// TIDEMARK_SEED repeats a run.
func TestReadCommitted(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TIDEMARK_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "TIDEMARK_SEED")
	}
	t.Logf("seed %d (TIDEMARK_SEED=%d to repeat)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 1))
	const parts = 3
	k := kafkatest.New(t, kafkatest.WithTopic("mixed", parts), kafkatest.WithBrokers(2))

	type rec struct {
		txn   int // 0: outside transactions
		value string
	}
	written := make([][]rec, parts) // per partition, in write order
	status := map[int]string{}      // txn -> "open", "committed", "aborted"

	type txnProducer struct {
		p   sarama.SyncProducer
		txn int // the open transaction, 0 if none
	}
	producers := make([]*txnProducer, 3)
	for i := range producers {
		cfg := saramaConfig()
		cfg.Producer.Idempotent = true
		cfg.Producer.Transaction.ID = fmt.Sprintf("txn-%d", i)
		cfg.Net.MaxOpenRequests = 1
		if i == 1 {
			cfg.Producer.Compression = sarama.CompressionLZ4
		}
		p, err := sarama.NewSyncProducer(k.Addrs(), cfg)
		require.NoError(t, err, "transactional producer %d", i)
		t.Cleanup(func() { _ = p.Close() })
		producers[i] = &txnProducer{p: p}
	}
	plain, err := sarama.NewSyncProducer(k.Addrs(), saramaConfig())
	require.NoError(t, err, "plain producer")
	t.Cleanup(func() { _ = plain.Close() })

	nextTxn, n := 1, 0
	send := func(p sarama.SyncProducer, txn, count int) {
		t.Helper()
		msgs := make([]*sarama.ProducerMessage, count)
		part := int32(r.IntN(parts))
		for i := range msgs {
			n++
			v := fmt.Sprintf("r%d-t%d", n, txn)
			msgs[i] = &sarama.ProducerMessage{Topic: "mixed", Partition: part, Value: sarama.StringEncoder(v), Key: sarama.StringEncoder(v)}
			written[part] = append(written[part], rec{txn: txn, value: v})
		}
		require.NoError(t, p.SendMessages(msgs), "send %d records of transaction %d", count, txn)
	}
	end := func(tp *txnProducer, commit bool) {
		t.Helper()
		if commit {
			require.NoError(t, tp.p.CommitTxn(), "commit %d", tp.txn)
			status[tp.txn] = "committed"
		} else {
			require.NoError(t, tp.p.AbortTxn(), "abort %d", tp.txn)
			status[tp.txn] = "aborted"
		}
		tp.txn = 0
	}
	for range 150 {
		switch i := r.IntN(5); {
		case i == 0:
			send(plain, 0, 1+r.IntN(3))
		default:
			tp := producers[r.IntN(len(producers))]
			if tp.txn == 0 {
				require.NoError(t, tp.p.BeginTxn(), "begin")
				tp.txn = nextTxn
				status[tp.txn] = "open"
				nextTxn++
			}
			send(tp.p, tp.txn, 1+r.IntN(4))
			if r.IntN(3) == 0 {
				end(tp, r.IntN(2) == 0)
			}
		}
	}
	// One transaction stays open, with records in a partition of its own
	// choosing; the others end.
	var open *txnProducer
	for _, tp := range producers {
		if tp.txn != 0 && open == nil {
			open = tp
			continue
		}
		if tp.txn != 0 {
			end(tp, r.IntN(2) == 0)
		}
	}
	if open == nil {
		open = producers[0]
		require.NoError(t, open.p.BeginTxn(), "begin")
		open.txn, status[nextTxn] = nextTxn, "open"
		send(open.p, open.txn, 2)
	}
	send(plain, 0, 2) // after the open transaction, in some partition

	model := func() []string {
		var out []string
		for p := range parts {
			for _, rc := range written[p] {
				if status[rc.txn] == "open" {
					break // the last stable offset
				}
				if rc.txn == 0 || status[rc.txn] == "committed" {
					out = append(out, rc.value)
				}
			}
		}
		return out
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	began := time.Now()
	recs, err := k.ReadCommitted(ctx, "mixed")
	require.NoError(t, err, "ReadCommitted with a transaction open")
	assert.Less(t, time.Since(began), 5*time.Second, "returns without waiting for the open transaction")
	assert.Equal(t, model(), values(recs), "what read_committed sees with a transaction open")
	for i := 1; i < len(recs); i++ {
		if recs[i].Partition == recs[i-1].Partition {
			assert.Greater(t, recs[i].Offset, recs[i-1].Offset, "offsets grow in partition %d", recs[i].Partition)
		}
	}

	end(open, true)
	recs, err = k.ReadCommitted(ctx, "mixed")
	require.NoError(t, err, "ReadCommitted once every transaction ended")
	want := model()
	assert.Equal(t, want, values(recs), "what read_committed sees once every transaction ended")
	counts := map[string]int{}
	for _, s := range status {
		counts[s]++
	}
	t.Logf("%d records written in %d transactions (%v) and outside; %d visible", n, len(status), counts, len(want))

	// ReadCommittedWith, through a client of the caller's, sees the same.
	client, err := sarama.NewClient(k.Addrs(), saramaConfig())
	require.NoError(t, err, "client")
	t.Cleanup(func() { _ = client.Close() })
	with, err := kafkatest.ReadCommittedWith(ctx, client, "mixed")
	require.NoError(t, err, "ReadCommittedWith")
	assert.Equal(t, want, values(with), "ReadCommittedWith")

	// sarama's own read_committed consumer agrees, partition by partition.
	ccfg := saramaConfig()
	ccfg.Consumer.IsolationLevel = sarama.ReadCommitted
	consumer, err := sarama.NewConsumer(k.Addrs(), ccfg)
	require.NoError(t, err, "consumer")
	t.Cleanup(func() { _ = consumer.Close() })
	byPart := map[int32][]string{}
	for _, rc := range recs {
		byPart[rc.Partition] = append(byPart[rc.Partition], string(rc.Value))
	}
	for p := range int32(parts) {
		pc, err := consumer.ConsumePartition("mixed", p, sarama.OffsetOldest)
		require.NoError(t, err, "consume %d", p)
		var got []string
		for len(got) < len(byPart[p]) {
			select {
			case m := <-pc.Messages():
				got = append(got, string(m.Value))
			case <-time.After(10 * time.Second):
				t.Fatalf("partition %d: %d of %d records within 10s", p, len(got), len(byPart[p]))
			}
		}
		_ = pc.Close()
		assert.Equal(t, byPart[p], got, "sarama's consumer reads partition %d the same", p)
	}
}

// TestWithRealBroker: ProduceWith and ReadCommittedWith on Apache Kafka
// (TIDEMARK_KAFKA_BROKERS, as .ci/run's real-broker tier sets it; start one
// with scripts/kafka/broker.sh start): the records written to chosen
// partitions, a transaction aborted in between, read back in partition and
// offset order without the aborted ones.
func TestWithRealBroker(t *testing.T) {
	brokers := os.Getenv("TIDEMARK_KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("TIDEMARK_KAFKA_BROKERS is not set: start a broker with scripts/kafka/broker.sh start")
	}
	addrs := strings.Split(brokers, ",")
	cfg := saramaConfig()
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	client, err := sarama.NewClient(addrs, cfg)
	require.NoError(t, err, "client")
	t.Cleanup(func() { _ = client.Close() })
	admin, err := sarama.NewClusterAdminFromClient(client)
	require.NoError(t, err, "admin")
	topic := fmt.Sprintf("kafkatest-with-%d", time.Now().UnixNano())
	require.NoError(t, admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false), "create")
	t.Cleanup(func() { _ = admin.DeleteTopic(topic) })

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var msgs []*sarama.ProducerMessage
	want := map[int32][]string{}
	for i := range 20 {
		p := int32(i % 2)
		v := fmt.Sprintf("v%d", i)
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: p, Value: sarama.StringEncoder(v)})
		want[p] = append(want[p], v)
	}
	require.NoError(t, kafkatest.ProduceWith(ctx, client, msgs[:10]...), "produce")
	// An aborted transaction between the two halves.
	tcfg := saramaConfig()
	tcfg.Producer.Idempotent = true
	tcfg.Producer.Transaction.ID = topic
	tcfg.Net.MaxOpenRequests = 1
	tp, err := sarama.NewSyncProducer(addrs, tcfg)
	require.NoError(t, err, "transactional producer")
	t.Cleanup(func() { _ = tp.Close() })
	require.NoError(t, tp.BeginTxn(), "begin")
	_, _, err = tp.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 1, Value: sarama.StringEncoder("aborted")})
	require.NoError(t, err, "send")
	require.NoError(t, tp.AbortTxn(), "abort")
	require.NoError(t, kafkatest.ProduceWith(ctx, client, msgs[10:]...), "produce")
	recs, err := kafkatest.ReadCommittedWith(ctx, client, topic)
	require.NoError(t, err, "ReadCommittedWith")
	got := map[int32][]string{}
	for _, r := range recs {
		got[r.Partition] = append(got[r.Partition], string(r.Value))
	}
	assert.Equal(t, want, got, "what was produced, by partition, without the aborted record")
}
