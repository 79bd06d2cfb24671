package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestMain(m *testing.M) {
	// Rebalances are logged at INFO; keep test output to warnings.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: testLogLevel()})))
	os.Exit(m.Run())
}

// The Kafka tests run twice: against an in-process kfake cluster, always, and
// against the real broker named by TIDEMARK_KAFKA_BROKERS (the integration
// tier), which they skip when the variable is unset.
const brokersEnv = "TIDEMARK_KAFKA_BROKERS"

// cluster is a Kafka for one test.
type cluster struct {
	addrs []string
	fake  *fakeKafka // nil for the real broker
	owner testing.TB // the test the cluster belongs to

	adminOnce sync.Once
	adm       sarama.ClusterAdmin
	admErr    error
}

// backends runs f as the subtests "kfake" and "kafka".
func backends(t *testing.T, f func(t *testing.T, k *cluster)) {
	t.Helper()
	t.Run("kfake", func(t *testing.T) { f(t, fakeCluster(t)) })
	t.Run("kafka", func(t *testing.T) { f(t, realCluster(t)) })
}

func fakeCluster(tb testing.TB, opts ...kafkatest.Option) *cluster {
	tb.Helper()
	k := kafkatest.New(tb, opts...)
	return &cluster{addrs: k.Addrs(), fake: &fakeKafka{k: k, tb: tb}, owner: tb}
}

// fakeKafka is the in-process cluster of a test (kafkatest's).
type fakeKafka struct {
	k  *kafkatest.Cluster
	tb testing.TB
}

// Close takes the cluster away for good.
func (f *fakeKafka) Close() error { return f.k.Close() }

// Cluster returns the cluster's fault injection for the tests that
// describe their faults in kfake's terms (Fault, ControlKey, KeepControl).
func (f *fakeKafka) Cluster() kfakeFaults { return kfakeFaults{f} }

// kfakeFaults installs faults described in kfake's terms on a kafkatest
// cluster, through kafkatest's Fail and Control.
type kfakeFaults struct{ f *fakeKafka }

// ControlKey runs fn on the requests of API key key, as kfake's ControlKey,
// through kafkatest.Cluster.Control, and fails the test if it cannot.
// kafkatest keeps a control function until it is removed, as kfake does
// when the function calls KeepControl, which these tests' functions do.
func (k kfakeFaults) ControlKey(key int16, fn func(kmsg.Request) (kmsg.Response, error, bool)) {
	k.f.tb.Helper()
	_, err := k.f.k.Control(kafkatest.APIKey(key), fn)
	require.NoError(k.f.tb, err, "install the control function of key %d", key)
}

// KeepControl does nothing: kafkatest keeps control functions (see
// ControlKey).
func (kfakeFaults) KeepControl() {}

// Fault installs f (its Keys, Topic, Partitions, Group, TxnID, Err and
// Count) with kafkatest.Cluster.Fail, and fails the test if it cannot.
func (k kfakeFaults) Fault(f kfake.Fault) *kafkatest.Fault {
	k.f.tb.Helper()
	keys := make([]kafkatest.APIKey, len(f.Keys))
	for i, key := range f.Keys {
		keys[i] = kafkatest.APIKey(key)
	}
	var code sarama.KError
	if f.Err != nil {
		code = sarama.KError(f.Err.Code)
	}
	fault, err := k.f.k.Fail(kafkatest.Failure{Requests: keys, Topic: f.Topic, Partitions: f.Partitions, Group: f.Group,
		TransactionalID: f.TxnID, Err: code, Count: f.Count})
	require.NoError(k.f.tb, err, "install the fault %+v", f)
	return fault
}

func realCluster(tb testing.TB) *cluster {
	tb.Helper()
	v := os.Getenv(brokersEnv)
	if v == "" {
		tb.Skip(brokersEnv + " not set: start one with scripts/kafka/broker.sh start")
	}
	return &cluster{addrs: strings.Split(v, ","), owner: tb}
}

// fastGroups shortens sarama's group timings so that tests rebalance in
// fractions of a second.
func fastGroups(c *sarama.Config) {
	c.Consumer.Group.Heartbeat.Interval = 100 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 6 * time.Second
	c.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	c.Consumer.Group.Rebalance.Retry.Backoff = 100 * time.Millisecond
	c.Consumer.MaxWaitTime = 100 * time.Millisecond
	c.Consumer.Retry.Backoff = 100 * time.Millisecond
	c.Metadata.Retry.Backoff = 50 * time.Millisecond
	c.Producer.Retry.Backoff = 50 * time.Millisecond
}

// config returns NewConfig with fast group timings and opts.
func (k *cluster) config(tb testing.TB, opts ...ConfigOption) *sarama.Config {
	tb.Helper()
	cfg, err := NewConfig(append([]ConfigOption{WithConfig(fastGroups)}, opts...)...)
	require.NoError(tb, err, "test config")
	return cfg
}

// client returns a client closed at the end of the test.
func (k *cluster) client(tb testing.TB, cfg *sarama.Config) sarama.Client {
	tb.Helper()
	if cfg == nil {
		cfg = k.config(tb)
	}
	c, err := sarama.NewClient(k.addrs, cfg)
	require.NoError(tb, err, "connect to %v", k.addrs)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// admin returns the test's admin, made once; it is closed with its client.
func (k *cluster) admin(tb testing.TB) sarama.ClusterAdmin {
	tb.Helper()
	k.adminOnce.Do(func() {
		var c sarama.Client
		if c, k.admErr = sarama.NewClient(k.addrs, k.config(tb)); k.admErr == nil {
			k.owner.Cleanup(func() { _ = c.Close() })
			k.adm, k.admErr = sarama.NewClusterAdminFromClient(c)
		}
	})
	require.NoError(tb, k.admErr, "admin")
	return k.adm
}

var nameSeq struct {
	sync.Mutex
	n int
}

// name returns a topic or group name unique to the test and the run.
func name(tb testing.TB, what string) string {
	nameSeq.Lock()
	nameSeq.n++
	n := nameSeq.n
	nameSeq.Unlock()
	base := strings.Map(func(r rune) rune {
		switch {
		case r == '/':
			return '.'
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, tb.Name())
	return fmt.Sprintf("%s.%s.%d.%x", base, what, n, rand.Uint32())
}

// topic creates a topic with a unique name through EnsureTopics. It keeps
// its records whatever their timestamps (retention.ms -1) unless config
// says otherwise: stages write results with their event times as
// timestamps, and the traces' event times can be days old, which the
// broker's time-based retention would delete at its next check (the real
// broker's retention is 24 hours).
func (k *cluster) topic(tb testing.TB, partitions int32, config map[string]string) string {
	tb.Helper()
	config = maps.Clone(config)
	if config == nil {
		config = map[string]string{}
	}
	if _, ok := config["retention.ms"]; !ok {
		config["retention.ms"] = "-1"
	}
	t := name(tb, "topic")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := k.admin(tb)
	require.NoError(tb, EnsureTopics(ctx, adm, []TopicSpec{{Name: t, Partitions: partitions, Config: config}}), "create topic %s", t)
	if k.fake == nil {
		// A broker that keeps every test's topics slows down (the
		// README's benchmark notes); the topic goes when the test ends,
		// after the stages that the test started have stopped.
		tb.Cleanup(func() { _ = adm.DeleteTopic(t) })
	}
	return t
}

// committed returns the group's committed offset of each partition of topic
// (-1 when none).
func (k *cluster) committed(tb testing.TB, group, topic string, partitions int32) []int64 {
	tb.Helper()
	out, err := k.committedE(tb, group, topic, partitions)
	require.NoError(tb, err, "committed offsets of %s", group)
	return out
}

// committedE is committed for conditions polled in other goroutines.
func (k *cluster) committedE(tb testing.TB, group, topic string, partitions int32) ([]int64, error) {
	ps := make([]int32, partitions)
	out := make([]int64, partitions)
	for i := range ps {
		ps[i], out[i] = int32(i), -1
	}
	resp, err := k.admin(tb).ListConsumerGroupOffsets(group, map[string][]int32{topic: ps})
	if errors.Is(err, sarama.ErrGroupIDNotFound) { // kfake, before the group's first commit
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for i := range out {
		if b := resp.GetBlock(topic, int32(i)); b != nil {
			out[i] = b.Offset
		}
	}
	return out, nil
}

// committedIs returns a condition for require.Eventually: the group's
// committed offsets of topic are want or, when want is nil, the end offsets
// minus one: everything but the sentinel that ends each partition.
func (k *cluster) committedIs(tb testing.TB, group, topic string, partitions int32, want []int64) func() bool {
	var c sarama.Client
	if want == nil {
		c = k.client(tb, nil)
	}
	return func() bool {
		got, err := k.committedE(tb, group, topic, partitions)
		if err != nil {
			return false
		}
		w := want
		if w == nil {
			if w, err = k.endsE(c, topic, partitions); err != nil {
				return false
			}
			for i := range w {
				w[i]--
			}
		}
		return slices.Equal(got, w)
	}
}

// ends returns the end offset of each partition of topic.
func (k *cluster) ends(tb testing.TB, c sarama.Client, topic string, partitions int32) []int64 {
	tb.Helper()
	out, err := k.endsE(c, topic, partitions)
	require.NoError(tb, err, "end offsets of %s", topic)
	return out
}

func (k *cluster) endsE(c sarama.Client, topic string, partitions int32) ([]int64, error) {
	out := make([]int64, partitions)
	for i := range out {
		o, err := c.GetOffset(topic, int32(i), sarama.OffsetNewest)
		if err != nil {
			return nil, err
		}
		out[i] = o
	}
	return out, nil
}

// readAll consumes every record of topic up to its end offsets.
//
// A partition consumer can stall or stop on a transient error (a real broker
// still settling a new topic's leadership answers fetches with retriable
// errors, and sarama backs off between them): readAll logs the errors it
// sees and, when a partition makes no progress for a few seconds, consumes it
// again from the next offset through a fresh client, until an overall deadline.
func (k *cluster) readAll(tb testing.TB, topic string, partitions int32) []*sarama.ConsumerMessage {
	tb.Helper()
	ends := k.ends(tb, k.client(tb, nil), topic, partitions)
	var out []*sarama.ConsumerMessage
	deadline := time.Now().Add(60 * time.Second)
	for p := range partitions {
		next := sarama.OffsetOldest
		for attempt := 1; ends[p] > 0 && (next == sarama.OffsetOldest || next < ends[p]); attempt++ {
			require.True(tb, time.Now().Before(deadline), "timed out reading %s/%d: have %d records, end offset %d, after %d attempts",
				topic, p, len(out), ends[p], attempt-1)
			msgs, err := k.readPartition(tb, topic, p, next, ends[p], 5*time.Second)
			out = append(out, msgs...)
			if len(msgs) > 0 {
				next = msgs[len(msgs)-1].Offset + 1
			}
			if err != nil {
				tb.Logf("reading %s/%d, attempt %d: %v; consuming again from offset %d", topic, p, attempt, err, next)
			}
		}
	}
	return out
}

// readPartition consumes partition p of topic from offset next until end,
// through a client of its own, and returns what it read when it reaches end,
// when the partition consumer stops, or when stall passes without a record.
func (k *cluster) readPartition(tb testing.TB, topic string, p int32, next, end int64, stall time.Duration) ([]*sarama.ConsumerMessage, error) {
	c, err := sarama.NewClient(k.addrs, k.config(tb))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cons, err := sarama.NewConsumerFromClient(c)
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition(topic, p, next)
	if err != nil {
		return nil, err
	}
	defer pc.AsyncClose()
	var out []*sarama.ConsumerMessage
	var errs []error
	errc := pc.Errors()
	timer := time.NewTimer(stall)
	defer timer.Stop()
	for next == sarama.OffsetOldest || next < end {
		select {
		case m, ok := <-pc.Messages():
			if !ok {
				return out, fmt.Errorf("partition consumer stopped (errors: %v)", errs)
			}
			out = append(out, m)
			next = m.Offset + 1
			timer.Reset(stall)
		case e, ok := <-errc:
			if !ok {
				errc = nil // closed with Messages, which ends the loop
				continue
			}
			errs = append(errs, e)
		case <-timer.C:
			return out, fmt.Errorf("no record for %v at offset %d, high watermark %d (errors: %v)", stall, next, pc.HighWaterMarkOffset(), errs)
		}
	}
	return out, nil
}

// identity is the operator that passes events through.
type identity[T any] struct{}

func (identity[T]) Process(e stream.Event[T], out stream.Emitter[T]) { out.Emit(e) }
func (identity[T]) Advance(stream.Time, stream.Emitter[T])           {}
func (identity[T]) Bounds() stream.Bounds                            { return stream.Bounds{} }

// produce writes events with a Sink and flushes.
func produce[T any](tb testing.TB, k *cluster, topic string, codec Codec[T], events []stream.Event[T]) {
	tb.Helper()
	sink, err := NewSink(k.client(tb, nil), codec, WithTopic(topic))
	require.NoError(tb, err, "NewSink")
	ctx := context.Background()
	for _, e := range events {
		require.NoError(tb, sink.Write(ctx, e), "Write %v", e)
	}
	require.NoError(tb, sink.Flush(ctx), "Flush")
	require.NoError(tb, sink.Close(context.Background()), "Close sink")
}

// testLogLevel is warnings, or TIDEMARK_TEST_LOG (debug, info) when set.
func testLogLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("TIDEMARK_TEST_LOG"))); err != nil || os.Getenv("TIDEMARK_TEST_LOG") == "" {
		return slog.LevelWarn
	}
	return l
}
