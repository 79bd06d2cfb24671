package batchtxn

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/kafkatest"
)

// backend is a Kafka for one test: kfake (fake set) or the real broker of
// TIDEMARK_KAFKA_BROKERS.
type backend struct {
	addrs []string
	fake  *kafkatest.Cluster
}

// backends runs f against kfake, always, and against the real broker named
// by TIDEMARK_KAFKA_BROKERS, skipped when it is unset.
func backends(t *testing.T, f func(t *testing.T, k backend)) {
	t.Run("kfake", func(t *testing.T) {
		c := kafkatest.New(t)
		f(t, backend{addrs: c.Addrs(), fake: c})
	})
	t.Run("kafka", func(t *testing.T) {
		v := os.Getenv("TIDEMARK_KAFKA_BROKERS")
		if v == "" {
			t.Skip("TIDEMARK_KAFKA_BROKERS not set: start one with scripts/kafka/broker.sh start")
		}
		f(t, backend{addrs: strings.Split(v, ",")})
	})
}

// clientConfig is the configuration kafkaio.NewConfig gives a Stage's
// clients (this package cannot import kafkaio, which imports it).
func clientConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "tidemark"
	cfg.Metadata.AllowAutoTopicCreation = false
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	return cfg
}

func newClient(t testing.TB, addrs []string) sarama.Client {
	t.Helper()
	cfg := clientConfig()
	client, err := sarama.NewClient(addrs, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// topic creates a topic with a name of its own for t.
func topic(t testing.TB, client sarama.Client, partitions int32) string {
	t.Helper()
	name := fmt.Sprintf("batchtxn-%s-%d", strings.NewReplacer("/", "-", "=", "-").Replace(t.Name()), time.Now().UnixNano())
	adm, err := sarama.NewClusterAdminFromClient(client)
	require.NoError(t, err)
	require.NoError(t, adm.CreateTopic(name, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false))
	t.Cleanup(func() { _ = adm.DeleteTopic(name) }) // before the client closes (cleanups run last first)
	require.Eventually(t, func() bool {
		_ = client.RefreshMetadata(name)
		ps, err := client.Partitions(name)
		return err == nil && len(ps) == int(partitions)
	}, 10*time.Second, 20*time.Millisecond)
	return name
}

type rec struct {
	partition int32
	key, val  string
	ms        int64
}

// eventuallyCommitted waits until topic's read_committed records are want:
// EndTxn returns once the coordinator has logged the decision, and the
// brokers write the transaction's markers after that.
func eventuallyCommitted(t testing.TB, client sarama.Client, topic string, want map[int32][]rec) {
	t.Helper()
	var got map[int32][]rec
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = readCommitted(t, client, topic)
		if equalRecs(got, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, want, got)
}

func equalRecs(a, b map[int32][]rec) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func readCommitted(t testing.TB, client sarama.Client, topic string) map[int32][]rec {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := kafkatest.ReadCommittedWith(ctx, client, topic)
	require.NoError(t, err)
	out := make(map[int32][]rec)
	for _, m := range msgs {
		k := "<nil>"
		if m.Key != nil {
			k = string(m.Key)
		}
		out[m.Partition] = append(out[m.Partition], rec{m.Partition, k, string(m.Value), m.Timestamp.UnixMilli()})
	}
	return out
}

// add adds n records named prefix-i to p and to want, round robin over the
// partitions, the key nil for every seventh.
func add(p *Producer, want map[int32][]rec, topic string, partitions int32, prefix string, n int) {
	base := time.UnixMilli(1_746_677_558_352)
	for i := range n {
		part := int32(i) % partitions
		key := []byte(fmt.Sprintf("%s-key-%d", prefix, i))
		k := string(key)
		if i%7 == 3 {
			key, k = nil, "<nil>"
		}
		// times out of order within a partition, as results can be
		ts := base.Add(time.Duration((i*37)%1000) * time.Millisecond)
		val := fmt.Sprintf("%s-value-%d-%s", prefix, i, strings.Repeat("x", i%50))
		if err := p.Add(&Record{Topic: topic, Partition: part, Key: key, Value: []byte(val), Time: ts}); err != nil {
			panic(err)
		}
		if want != nil {
			want[part] = append(want[part], rec{part, k, val, ts.UnixMilli()})
		}
	}
}

func TestCommitAndAbort(t *testing.T) {
	backends(t, func(t *testing.T, k backend) {
		client := newClient(t, k.addrs)
		const parts = 3
		tp := topic(t, client, parts)
		p, err := New(client, Config{TransactionalID: "batchtxn-" + tp})
		require.NoError(t, err)
		want := make(map[int32][]rec)

		// A transaction in two flushes, committed.
		add(p, want, tp, parts, "one", 500)
		require.Equal(t, 500, p.Buffered())
		require.NoError(t, p.Flush())
		require.Zero(t, p.Buffered())
		add(p, want, tp, parts, "two", 700)
		require.NoError(t, p.Commit())

		// One flushed and aborted, one never flushed and aborted.
		add(p, nil, tp, parts, "aborted", 300)
		require.NoError(t, p.Flush())
		require.NoError(t, p.Abort())
		add(p, nil, tp, parts, "dropped", 10)
		require.NoError(t, p.Abort())

		// Then on with the next epoch; an empty commit is nothing.
		require.NoError(t, p.Commit())
		add(p, want, tp, parts, "three", 40)
		require.NoError(t, p.Commit())

		eventuallyCommitted(t, client, tp, want)
	})
}

func TestFenced(t *testing.T) {
	backends(t, func(t *testing.T, k backend) {
		client := newClient(t, k.addrs)
		tp := topic(t, client, 2)
		id := "batchtxn-" + tp
		old, err := New(client, Config{TransactionalID: id})
		require.NoError(t, err)
		add(old, nil, tp, 2, "zombie", 100)
		require.NoError(t, old.Flush())

		// A new producer with the same id fences the old one and aborts
		// its open transaction.
		cur, err := New(client, Config{TransactionalID: id})
		require.NoError(t, err)
		add(old, nil, tp, 2, "zombie-more", 10)
		// Kafka answers the zombie's produce with PRODUCER_FENCED, kfake
		// with INVALID_TXN_STATE; either way the commit fails, and the
		// abort, which asks for the next epoch with the old one, is
		// refused: a zombie never takes the id back.
		err = old.Commit()
		t.Logf("the old producer's commit: %v", err)
		require.Error(t, err)
		require.ErrorIs(t, old.Abort(), ErrFenced)
		require.ErrorIs(t, ErrFenced, sarama.ErrProducerFenced)
		require.ErrorIs(t, old.Flush(), ErrFenced, "a fenced producer stays fenced")

		want := make(map[int32][]rec)
		add(cur, want, tp, 2, "live", 60)
		require.NoError(t, cur.Commit())
		eventuallyCommitted(t, client, tp, want)
	})
}

// A produce whose acknowledgement is lost (the broker wrote the batch, the
// answer is an error) is sent again with the same sequence numbers: the
// broker writes it once. And a leader that moved is retried.
func TestRetriesWriteOnce(t *testing.T) {
	for _, c := range []struct {
		name string
		err  sarama.KError
	}{{"lost-ack", sarama.ErrRequestTimedOut}, {"not-leader", sarama.ErrNotLeaderForPartition}} {
		t.Run(c.name, func(t *testing.T) {
			k := kafkatest.New(t)
			client := newClient(t, k.Addrs())
			tp := topic(t, client, 2)
			p, err := New(client, Config{TransactionalID: "batchtxn-" + tp, Backoff: 5 * time.Millisecond})
			require.NoError(t, err)
			want := make(map[int32][]rec)
			add(p, want, tp, 2, "before", 50)
			require.NoError(t, p.Flush())
			f, err := k.Fail(kafkatest.Failure{Requests: []kafkatest.APIKey{kafkatest.Produce}, Topic: tp, Err: c.err, Count: 2})
			require.NoError(t, err)
			add(p, want, tp, 2, "during", 50)
			require.NoError(t, p.Commit())
			require.Equal(t, 2, f.Hits(), "the produce requests the fault answered")
			f.Remove()
			add(p, want, tp, 2, "after", 50)
			require.NoError(t, p.Commit())
			eventuallyCommitted(t, client, tp, want)
		})
	}
}

// committedOffset returns group's committed offset of topic's partition.
func committedOffset(t testing.TB, client sarama.Client, group, topic string, partition int32) int64 {
	t.Helper()
	adm, err := sarama.NewClusterAdminFromClient(client)
	require.NoError(t, err)
	resp, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {partition}})
	require.NoError(t, err)
	blk := resp.GetBlock(topic, partition)
	require.NotNil(t, blk)
	require.Equal(t, sarama.ErrNoError, blk.Err)
	return blk.Offset
}

// The consumed offsets commit with the records, or neither does.
func TestCommitOffsets(t *testing.T) {
	backends(t, func(t *testing.T, k backend) {
		client := newClient(t, k.addrs)
		out := topic(t, client, 2)
		in := topic(t, client, 1)
		group := "batchtxn-group-" + out
		meta := sarama.NewConsumerGroupMetadata(group)
		p, err := New(client, Config{TransactionalID: "batchtxn-" + out})
		require.NoError(t, err)
		offsets := func(o int64) map[string][]*sarama.PartitionOffsetMetadata {
			return map[string][]*sarama.PartitionOffsetMetadata{in: {{Partition: 0, Offset: o, LeaderEpoch: -1}}}
		}

		want := make(map[int32][]rec)
		add(p, want, out, 2, "first", 30)
		require.NoError(t, p.CommitOffsets(offsets(30), meta))
		require.Eventually(t, func() bool { return committedOffset(t, client, group, in, 0) == 30 }, 10*time.Second, 20*time.Millisecond)

		// Aborted: neither the records nor the offsets.
		add(p, nil, out, 2, "aborted", 20)
		require.NoError(t, p.sendOffsets(offsets(50), meta))
		require.NoError(t, p.Flush())
		require.NoError(t, p.Abort())
		// (the markers are written after EndTxn: give them time to land)
		time.Sleep(300 * time.Millisecond)
		require.Equal(t, int64(30), committedOffset(t, client, group, in, 0), "an aborted transaction's offsets")

		// Offsets alone commit too.
		require.NoError(t, p.CommitOffsets(offsets(60), meta))
		require.Eventually(t, func() bool { return committedOffset(t, client, group, in, 0) == 60 }, 10*time.Second, 20*time.Millisecond)
		eventuallyCommitted(t, client, out, want)
	})
}

// Headers, null values and keys come back as written, with both encodings
// of the records (records.go): the producer's own, and sarama's from
// sarama.Records (the fallback, and the reference). The records cover
// what changes the encoding's lengths: null and empty keys, values and
// header values, timestamps before the batch's first (a negative delta),
// a value and an offset delta of more than one varint byte.
func TestHeadersAndNulls(t *testing.T) {
	backends(t, func(t *testing.T, k backend) {
		for _, raw := range []bool{true, false} {
			name := map[bool]string{true: "own-encoding", false: "sarama-encoding"}[raw]
			t.Run(name, func(t *testing.T) {
				require.True(t, rawRecords.ok, "sarama.RecordBatch has no compressedRecords field: the producer falls back to sarama's encoding")
				rawRecords.ok = raw
				t.Cleanup(func() { rawRecords.ok = true })
				testHeadersAndNulls(t, k)
			})
		}
	})
}

func testHeadersAndNulls(t *testing.T, k backend) {
	client := newClient(t, k.addrs)
	tp := topic(t, client, 1)
	p, err := New(client, Config{TransactionalID: "batchtxn-" + tp})
	require.NoError(t, err)
	ts := time.UnixMilli(1_746_677_558_352)
	recs := []Record{
		{Topic: tp, Key: []byte("k1"), Value: []byte("v1"), Time: ts,
			Headers: []sarama.RecordHeader{{Key: []byte("tidemark-error"), Value: []byte("why")}, {Key: []byte("empty"), Value: []byte{}}, {Key: []byte("null")}}},
		{Topic: tp, Key: []byte("k2"), Value: nil, Time: ts.Add(time.Second)},
		{Topic: tp, Key: nil, Value: []byte{}, Time: ts.Add(-2 * time.Second), Headers: []sarama.RecordHeader{{Key: []byte("h"), Value: []byte("x")}}},
		{Topic: tp, Key: []byte{}, Value: bytes.Repeat([]byte("long value "), 40), Time: ts.Add(-time.Hour)},
	}
	for i := range 100 {
		recs = append(recs, Record{Topic: tp, Key: fmt.Appendf(nil, "n%d", i), Value: fmt.Appendf(nil, "value %d", i), Time: ts.Add(time.Duration(i%7-3) * time.Second)})
	}
	for i := range recs {
		require.NoError(t, p.Add(&recs[i]))
	}
	require.NoError(t, p.Commit())
	var msgs []*sarama.ConsumerMessage
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		msgs, err = kafkatest.ReadCommittedWith(ctx, client, tp)
		return err == nil && len(msgs) == len(recs)
	}, 30*time.Second, 50*time.Millisecond)
	for i, m := range msgs {
		r := recs[i]
		require.Equal(t, r.Key == nil, m.Key == nil, "record %d: null key", i)
		require.Equal(t, string(r.Key), string(m.Key), "record %d", i)
		require.Equal(t, r.Value == nil, m.Value == nil, "record %d: null value", i)
		require.Equal(t, string(r.Value), string(m.Value), "record %d", i)
		require.Equal(t, r.Time.UnixMilli(), m.Timestamp.UnixMilli(), "record %d", i)
		require.Len(t, m.Headers, len(r.Headers), "record %d", i)
		for j, h := range m.Headers {
			require.Equal(t, string(r.Headers[j].Key), string(h.Key))
			require.Equal(t, r.Headers[j].Value == nil, h.Value == nil, "record %d header %d: null value", i, j)
			require.Equal(t, string(r.Headers[j].Value), string(h.Value))
		}
	}
}

// A batch the broker refuses for good fails the flush with a *BatchError
// and its records come back from TakeRefused, tags and all; the
// transaction aborts and the next one writes.
func TestRefusedBatch(t *testing.T) {
	k := kafkatest.New(t)
	client := newClient(t, k.Addrs())
	tp := topic(t, client, 2)
	p, err := New(client, Config{TransactionalID: "batchtxn-" + tp})
	require.NoError(t, err)
	f, err := k.Fail(kafkatest.Failure{Requests: []kafkatest.APIKey{kafkatest.Produce}, Topic: tp, Partitions: []int32{1}, Err: sarama.ErrInvalidTimestamp})
	require.NoError(t, err)
	ts := time.UnixMilli(1_746_677_558_352)
	for i := range 6 {
		require.NoError(t, p.Add(&Record{Topic: tp, Partition: int32(i % 2), Key: []byte(fmt.Sprint("k", i)), Value: []byte("v"), Time: ts.Add(time.Duration(i) * time.Second), Tag: uint8(i)}))
	}
	err = p.Flush()
	t.Logf("flush: %v; the fault's hits: %d", err, f.Hits())
	var be *BatchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, sarama.ErrInvalidTimestamp, be.Err)
	require.Equal(t, int32(1), be.Partition)
	require.ErrorIs(t, p.Commit(), sarama.ErrInvalidTimestamp, "a failed transaction does not commit")
	refused := p.TakeRefused()
	require.Len(t, refused, 3)
	for j, r := range refused {
		i := 2*j + 1
		require.Equal(t, Refused{Topic: tp, Partition: 1, Key: []byte(fmt.Sprint("k", i)), Time: ts.Add(time.Duration(i) * time.Second), Tag: uint8(i), Err: sarama.ErrInvalidTimestamp}, r)
	}
	require.Empty(t, p.TakeRefused())
	require.Equal(t, 1, f.Hits())
	require.NoError(t, p.Abort())
	want := make(map[int32][]rec)
	add(p, want, tp, 2, "after", 10)
	require.NoError(t, p.Commit())
	eventuallyCommitted(t, client, tp, want)
}

// Batches stay within a topic's limit: the real broker refuses a batch
// larger than the topic's max.message.bytes.
func TestTopicLimit(t *testing.T) {
	backends(t, func(t *testing.T, k backend) {
		client := newClient(t, k.addrs)
		name := fmt.Sprintf("batchtxn-limit-%d", time.Now().UnixNano())
		adm, err := sarama.NewClusterAdminFromClient(client)
		require.NoError(t, err)
		limit := "4096"
		require.NoError(t, adm.CreateTopic(name, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1,
			ConfigEntries: map[string]*string{"max.message.bytes": &limit}}, false))
		require.Eventually(t, func() bool { _ = client.RefreshMetadata(name); _, err := client.Partitions(name); return err == nil }, 10*time.Second, 20*time.Millisecond)
		p, err := New(client, Config{TransactionalID: "batchtxn-" + name, TopicLimits: map[string]int{name: 4096}})
		require.NoError(t, err)
		want := make(map[int32][]rec)
		add(p, want, name, 1, "limited", 300) // values of 20-70 bytes: about 30 KB
		require.NoError(t, p.Commit())
		eventuallyCommitted(t, client, name, want)

		if k.fake == nil {
			// Without the limit the same records make one batch, which
			// Kafka refuses: the test above tests something.
			q, err := New(client, Config{TransactionalID: "batchtxn-nolimit-" + name})
			require.NoError(t, err)
			add(q, nil, name, 1, "unlimited", 300)
			require.ErrorIs(t, q.Commit(), sarama.ErrMessageSizeTooLarge)
		}
	})
}

// CONCURRENT_TRANSACTIONS, the usual answer to the first AddPartitionsToTxn
// after an EndTxn while the markers are written, is asked again within
// milliseconds, not after the full backoff: a stage commits ten times a
// second.
func TestConcurrentTransactionsRetriedSoon(t *testing.T) {
	k := kafkatest.New(t)
	client := newClient(t, k.Addrs())
	tp := topic(t, client, 1)
	p, err := New(client, Config{TransactionalID: "batchtxn-" + tp, Backoff: 250 * time.Millisecond})
	require.NoError(t, err)
	f, err := k.Fail(kafkatest.Failure{Requests: []kafkatest.APIKey{kafkatest.AddPartitionsToTxn}, Err: sarama.ErrConcurrentTransactions, Count: 3})
	require.NoError(t, err)
	want := make(map[int32][]rec)
	add(p, want, tp, 1, "soon", 10)
	start := time.Now()
	require.NoError(t, p.Commit())
	took := time.Since(start)
	require.Equal(t, 3, f.Hits())
	require.Equal(t, int64(3), p.Stats().Retries.Load())
	// 2 + 4 + 8 ms of waits; a 250 ms backoff doubling would take 1.75 s.
	require.Less(t, took, 500*time.Millisecond)
	eventuallyCommitted(t, client, tp, want)
}
