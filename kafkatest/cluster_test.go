package kafkatest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/stream"
)

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "kafkatest-test"
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
	cfg.Producer.Retry.Backoff = 50 * time.Millisecond
	return cfg
}

// TestRoundTrip produces a record with sarama and consumes it back, on one
// broker and on three.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, brokers := range []int{1, 3} {
		t.Run(fmt.Sprintf("brokers=%d", brokers), func(t *testing.T) {
			t.Parallel()
			k := kafkatest.New(t, kafkatest.WithBrokers(brokers), kafkatest.WithTopic("btc-price", 3))
			require.Len(t, k.Addrs(), brokers, "one address per broker")
			for _, a := range k.Addrs() {
				host, _, err := net.SplitHostPort(a)
				require.NoError(t, err, "address %q is host:port", a)
				assert.Equal(t, "127.0.0.1", host, "listens on loopback")
			}

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
				Topic: "btc-price", Partition: 2, Key: sarama.StringEncoder("BTCUSDT"), Value: sarama.StringEncoder(want),
				Headers: []sarama.RecordHeader{{Key: []byte("h"), Value: []byte("v")}},
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

// TestTransactions checks that the cluster supports what exactly-once
// stages need from sarama: a transactional producer that commits and
// aborts, offsets committed inside a transaction, and read_committed
// consumers that never see aborted records.
func TestTransactions(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, kafkatest.WithTopic("in", 1), kafkatest.WithTopic("out", 1))

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
	assert.Equal(t, []string{"a", "b", "c", "d"}, got, "sarama's read_committed consumer skips the aborted transaction")
	recs, err := k.ReadCommitted(t.Context(), "out")
	require.NoError(t, err, "ReadCommitted")
	assert.Equal(t, got, values(recs), "ReadCommitted agrees with sarama's consumer")

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

// TestConsumerGroup checks that a sarama consumer group joins, is assigned
// every partition, and commits its offsets.
func TestConsumerGroup(t *testing.T) {
	t.Parallel()
	const n = 20
	k := kafkatest.New(t, kafkatest.WithTopic("btc-price", 2))
	msgs := make([]*sarama.ProducerMessage, n)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{Topic: "btc-price", Partition: int32(i % 2), Value: sarama.StringEncoder(fmt.Sprint(i))}
	}
	require.NoError(t, k.Produce(t.Context(), msgs...), "produce")

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
		h.mu.Lock()
		defer h.mu.Unlock()
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

func TestOptionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []kafkatest.Option
		msg  string
	}{
		{name: "negative brokers", opts: []kafkatest.Option{kafkatest.WithBrokers(-1)}, msg: "WithBrokers -1"},
		{name: "ports and brokers disagree", opts: []kafkatest.Option{kafkatest.WithBrokers(2), kafkatest.WithPorts(0)}, msg: "1 ports for 2 brokers"},
		{name: "port out of range", opts: []kafkatest.Option{kafkatest.WithPorts(70000)}, msg: "port 70000"},
		{name: "empty topic name", opts: []kafkatest.Option{kafkatest.WithTopic("", 1)}, msg: "empty name"},
		{name: "zero partitions", opts: []kafkatest.Option{kafkatest.WithTopic("t", 0)}, msg: `"t": 0 partitions`},
		{name: "nil option", opts: []kafkatest.Option{nil}, msg: "nil option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := kafkatest.NewCluster(tt.opts...)
			if !assert.Error(t, err, "invalid options are rejected") {
				_ = k.Close()
				return
			}
			assert.Nil(t, k, "no cluster")
			assert.ErrorIs(t, err, kafkatest.ErrInvalidOption, "the package's sentinel")
			assert.ErrorIs(t, err, stream.ErrInvalidOption, "which matches stream's")
			assert.ErrorContains(t, err, "kafkatest: invalid option: ", "the package's prefix")
			assert.ErrorContains(t, err, tt.msg, "the message names the problem")
		})
	}
}

// TestFixedPorts starts a cluster on ports chosen by the test.
func TestFixedPorts(t *testing.T) {
	t.Parallel()
	ports := freePorts(t, 2)
	k := kafkatest.New(t, kafkatest.WithPorts(ports...))
	assert.Equal(t, []string{fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])}, k.Addrs(),
		"two brokers, on the ports given, in node order")
	require.NoError(t, k.CreateTopic(t.Context(), "t", 4, nil), "the cluster answers")

	_, err := kafkatest.NewCluster(kafkatest.WithPorts(ports[0]))
	require.Error(t, err, "a port in use")
	assert.NotErrorIs(t, err, kafkatest.ErrInvalidOption, "is not an invalid option")
}

// freePorts returns n ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err, "free port")
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		defer ln.Close()
	}
	return ports
}

// TestStopStart takes a persistent cluster down and brings it back: the
// addresses, the records and the committed offsets are the same, a client
// made before the outage fails while the cluster is down and works again
// once it is back.
func TestStopStart(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, kafkatest.WithTopic("btc-price", 2), kafkatest.WithDataDir(t.TempDir()), kafkatest.WithBrokers(2))
	addrs := k.Addrs()
	require.NoError(t, k.Produce(t.Context(), &sarama.ProducerMessage{Topic: "btc-price", Partition: 1, Value: sarama.StringEncoder("before")}), "produce")
	cfg := saramaConfig()
	cfg.Producer.Retry.Max = 0
	cfg.Metadata.Retry.Max = 0
	client, err := sarama.NewClient(addrs, cfg)
	require.NoError(t, err, "client")
	t.Cleanup(func() { _ = client.Close() })
	admin, err := sarama.NewClusterAdminFromClient(client)
	require.NoError(t, err, "admin")
	_, err = admin.AlterConsumerGroupOffsets("g", map[string]map[int32]sarama.OffsetAndMetadata{"btc-price": {1: {Offset: 1}}}, nil)
	require.NoError(t, err, "commit an offset")

	require.NoError(t, k.Stop(), "stop")
	require.ErrorIs(t, k.Stop(), kafkatest.ErrStopped, "a second Stop")
	assert.Equal(t, addrs, k.Addrs(), "the addresses stay while stopped")
	_, err = net.DialTimeout("tcp", addrs[0], time.Second)
	require.Error(t, err, "nothing listens while stopped")
	producer, err := sarama.NewSyncProducerFromClient(client)
	require.NoError(t, err, "producer")
	t.Cleanup(func() { _ = producer.Close() })
	_, _, err = producer.SendMessage(&sarama.ProducerMessage{Topic: "btc-price", Partition: 1, Value: sarama.StringEncoder("lost")})
	require.Error(t, err, "a produce fails while the cluster is down")
	_, err = k.ReadCommitted(t.Context(), "btc-price")
	require.Error(t, err, "so does ReadCommitted")

	require.NoError(t, k.Start(), "start")
	require.NoError(t, k.Start(), "Start while running does nothing")
	assert.Equal(t, addrs, k.Addrs(), "same addresses after the restart")
	var sendErr error
	require.Eventually(t, func() bool {
		_, _, sendErr = producer.SendMessage(&sarama.ProducerMessage{Topic: "btc-price", Partition: 1, Value: sarama.StringEncoder("after")})
		return sendErr == nil
	}, 20*time.Second, 100*time.Millisecond, "the client made before the outage produces again: %v", sendErr)
	recs, err := k.ReadCommitted(t.Context(), "btc-price")
	require.NoError(t, err, "ReadCommitted")
	assert.Equal(t, []string{"before", "after"}, values(recs), "the record from before the outage is kept")
	offs, err := admin.ListConsumerGroupOffsets("g", map[string][]int32{"btc-price": {1}})
	require.NoError(t, err, "committed offsets")
	require.NotNil(t, offs.GetBlock("btc-price", 1), "committed offset kept")
	assert.Equal(t, int64(1), offs.GetBlock("btc-price", 1).Offset, "committed offset kept")

	require.NoError(t, k.Restart(t.Context(), 100*time.Millisecond), "Restart")
	recs, err = k.ReadCommitted(t.Context(), "btc-price")
	require.NoError(t, err, "ReadCommitted after Restart")
	assert.Equal(t, []string{"before", "after"}, values(recs), "records kept by Restart")

	require.NoError(t, k.Stop(), "stop")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, k.Start(), "start")
	err = k.Restart(ctx, time.Hour)
	require.ErrorIs(t, err, context.Canceled, "Restart gives up with its context")
	require.ErrorIs(t, k.Stop(), kafkatest.ErrStopped, "and leaves the cluster stopped")
	require.NoError(t, k.Start(), "start")
}

// TestNotPersistent: without a data directory the cluster cannot stop
// and come back with its records, and says so.
func TestNotPersistent(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, kafkatest.WithTopic("t", 1))
	require.ErrorIs(t, k.Stop(), kafkatest.ErrNotPersistent, "Stop")
	require.ErrorIs(t, k.Restart(t.Context(), 0), kafkatest.ErrNotPersistent, "Restart")
	require.NoError(t, k.CreateTopic(t.Context(), "u", 1, nil), "the cluster still runs")
}

// TestClose: a closed cluster refuses to start again, and a new cluster on
// its data directory and ports has its records.
func TestClose(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k, err := kafkatest.NewCluster(kafkatest.WithTopic("btc-price", 1), kafkatest.WithDataDir(dir))
	require.NoError(t, err, "start persistent cluster")
	addrs := k.Addrs()
	require.NoError(t, k.Produce(t.Context(), &sarama.ProducerMessage{Topic: "btc-price", Value: sarama.StringEncoder("kept")}), "produce")
	require.NoError(t, k.Close(), "close")
	require.NoError(t, k.Close(), "Close is idempotent")
	require.ErrorIs(t, k.Start(), kafkatest.ErrClosed, "Start after Close")
	require.ErrorIs(t, k.Stop(), kafkatest.ErrClosed, "Stop after Close")
	_, err = k.Fail(kafkatest.Failure{})
	require.ErrorIs(t, err, kafkatest.ErrClosed, "Fail after Close")

	_, port, err := net.SplitHostPort(addrs[0])
	require.NoError(t, err, "address is host:port")
	var p int
	_, err = fmt.Sscan(port, &p)
	require.NoError(t, err, "numeric port")
	k2 := kafkatest.New(t, kafkatest.WithPorts(p), kafkatest.WithDataDir(dir), kafkatest.WithTopic("other", 1))
	assert.Equal(t, addrs, k2.Addrs(), "same address")
	recs, err := k2.ReadCommitted(t.Context(), "btc-price")
	require.NoError(t, err, "persisted topic")
	assert.Equal(t, []string{"kept"}, values(recs), "persisted record")
	_, err = k2.ReadCommitted(t.Context(), "other")
	assert.ErrorIs(t, err, sarama.ErrUnknownTopicOrPartition, "a reloaded cluster creates no topic of WithTopic")
}

// TestAutoCreateTopics: a producer's metadata request creates the topic
// with the default partitions, and only with the option.
func TestAutoCreateTopics(t *testing.T) {
	t.Parallel()
	for _, auto := range []bool{false, true} {
		t.Run(fmt.Sprintf("auto=%v", auto), func(t *testing.T) {
			t.Parallel()
			var opts []kafkatest.Option
			if auto {
				opts = append(opts, kafkatest.WithAutoCreateTopics())
			}
			k := kafkatest.New(t, opts...)
			cfg := saramaConfig()
			cfg.Metadata.AllowAutoTopicCreation = true
			cfg.Metadata.Retry.Max = 1
			client, err := sarama.NewClient(k.Addrs(), cfg)
			require.NoError(t, err, "client")
			t.Cleanup(func() { _ = client.Close() })
			parts, err := client.Partitions("auto")
			if !auto {
				require.ErrorIs(t, err, sarama.ErrUnknownTopicOrPartition, "no topic without the option")
				return
			}
			require.NoError(t, err, "the topic is created")
			assert.Len(t, parts, kafkatest.DefaultAutoCreatePartitions, "with the default partitions")
		})
	}
}

// TestLogger: kfake's log lines go to the logger; here its debug line for
// a request it cannot parse, which a logger at warn does not get.
func TestLogger(t *testing.T) {
	t.Parallel()
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelWarn} {
		t.Run(level.String(), func(t *testing.T) {
			t.Parallel()
			var buf syncBuffer
			k := kafkatest.New(t, kafkatest.WithLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))))
			conn, err := net.Dial("tcp", k.Addrs()[0])
			require.NoError(t, err, "dial")
			// A Metadata request (key 3) of version 99, correlation ID 1,
			// no client ID and no body: no broker can parse it.
			_, err = conn.Write([]byte{0, 0, 0, 10, 0, 3, 0, 99, 0, 0, 0, 1, 0xff, 0xff})
			require.NoError(t, err, "write")
			_, _ = conn.Read(make([]byte, 1)) // the broker closes the connection
			_ = conn.Close()
			require.NoError(t, k.Close(), "close")
			if level == slog.LevelWarn {
				assert.Empty(t, buf.String(), "a logger at warn gets no debug line")
				return
			}
			assert.Contains(t, buf.String(), "level=DEBUG", "the line is at debug")
			assert.Contains(t, buf.String(), "unable to parse request", "kfake's message")
			assert.Contains(t, buf.String(), "component=kfake", "tagged with its component")
		})
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNew: New closes the cluster when the test ends, and fails the test
// when the cluster cannot start.
func TestNew(t *testing.T) {
	t.Parallel()
	var addrs []string
	t.Run("cleanup", func(t *testing.T) {
		addrs = kafkatest.New(t).Addrs()
		conn, err := net.DialTimeout("tcp", addrs[0], time.Second)
		require.NoError(t, err, "listening during the test")
		_ = conn.Close()
	})
	_, err := net.DialTimeout("tcp", addrs[0], time.Second)
	assert.Error(t, err, "closed after the test")

	ft := &fakeTB{TB: t}
	func() {
		defer func() { _ = recover() }() // Fatalf ends the goroutine's work with a panic here
		kafkatest.New(ft, kafkatest.WithBrokers(-1))
	}()
	assert.True(t, ft.failed, "New fails the test")
	assert.Contains(t, ft.msg, "kafkatest: start a cluster: kafkatest: invalid option", "with the error")
}

// fakeTB records a fatal failure instead of ending the test.
type fakeTB struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	panic(errors.New(f.msg))
}

// values returns the values of records, as strings.
func values(recs []*sarama.ConsumerMessage) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}
