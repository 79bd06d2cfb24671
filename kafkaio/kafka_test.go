package kafkaio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/internal/embedded"
	"github.com/tidemark-go/tidemark/stream"
)

// tick is the value type of the Kafka tests.
type tick struct {
	N   int    `json:"n"`
	Pad string `json:"pad,omitempty"`
}

// ticks returns n events over keys with times base, base+1ms, ...
func ticks(n, keys int, base stream.Time) []stream.Event[tick] {
	out := make([]stream.Event[tick], n)
	for i := range out {
		out[i] = stream.Event[tick]{Key: fmt.Sprintf("k%02d", i%keys), Time: base + stream.Time(i), Value: tick{N: i}}
	}
	return out
}

// TestRoundTrip: events produced by a Sink come back out of a Source through
// stream.Run into another Sink, unchanged, and every input offset ends up
// committed.
func TestRoundTrip(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 3
		in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
		want := ticks(600, 7, stream.TimeOf(time.Now()))
		produce(t, k, in, JSON[tick]{}, append(want, sentinels(t, in, parts, want[0].Time+3_600_000)...))

		group := name(t, "group")
		src, err := NewSource(k.client(t, nil), group, []string{in}, JSON[tick]{}, WithCommitInterval(0))
		require.NoError(t, err, "NewSource")
		sink, err := NewSink(k.client(t, nil), JSON[tick]{}, WithTopic(out))
		require.NoError(t, err, "NewSink")
		p := startRun(t, src, sink, runOpts()...)

		require.Eventually(t, k.committedIs(t, group, in, parts, nil), 30*time.Second, 100*time.Millisecond,
			"every input offset committed")
		require.NoError(t, p.stop(), "Run")
		require.NoError(t, src.Close(), "close source")
		require.NoError(t, sink.Close(), "close sink")
		assert.Equal(t, uint64(len(want)+parts), src.Stats().Records, "records polled, with the sentinels")
		assert.Equal(t, SinkStats{Written: uint64(len(want)), Acked: uint64(len(want))}, sink.Stats(), "sink stats")
		assert.Equal(t, stream.Stats{Accepted: uint64(len(want) + parts)}, p.stats, "run stats")

		var got []stream.Event[tick]
		lastByKey := map[string]stream.Time{}
		for _, m := range k.readAll(t, out, parts) {
			e, err := JSON[tick]{}.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
			require.NoError(t, err, "decode output %s", m.Value)
			assert.Greater(t, e.Time, lastByKey[e.Key], "per key, output in time order (key %s)", e.Key)
			lastByKey[e.Key] = e.Time
			got = append(got, e)
		}
		byTime := func(a, b stream.Event[tick]) int { return int(a.Time - b.Time) }
		slices.SortFunc(got, byTime)
		assert.Equal(t, want, got, "output events equal input events")
	})
}

// TestKeyedPartitioning: a key always lands in the same partition, the one
// the Java client's murmur2 partitioner picks.
func TestKeyedPartitioning(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 6
		topic := k.topic(t, parts, nil)
		produce(t, k, topic, JSON[tick]{}, ticks(300, 30, stream.TimeOf(time.Now())))

		java := sarama.NewMurmur2Partitioner(topic)
		seen := map[string]int32{}
		msgs := k.readAll(t, topic, parts)
		require.Len(t, msgs, 300, "records read back")
		for _, m := range msgs {
			key := string(m.Key)
			if p, ok := seen[key]; ok {
				assert.Equal(t, p, m.Partition, "key %s stays in one partition", key)
			}
			seen[key] = m.Partition
			want, err := java.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, parts)
			require.NoError(t, err, "murmur2")
			assert.Equal(t, want, m.Partition, "key %s in the murmur2 partition", key)
		}
		assert.Len(t, seen, 30, "keys")
	})
}

// pollN polls src until it has n records.
func pollN[T any](t *testing.T, src *Source[T], n int) []stream.Record[T] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []stream.Record[T]
	buf := make([]stream.Record[T], 4)
	for len(out) < n {
		m, err := src.Poll(ctx, buf)
		require.NoError(t, err, "Poll after %d of %d records", len(out), n)
		out = append(out, buf[:m]...)
	}
	return out
}

// TestCommitRule drives Poll and Checkpoint by hand: a partition's committed
// offset is just past the longest prefix of records whose event time plus the
// horizon is below the checkpoint watermark.
func TestCommitRule(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		topic := k.topic(t, 1, nil)
		times := []stream.Time{1000, 5000, 2000, 7000}
		evs := make([]stream.Event[tick], len(times))
		for i, tm := range times {
			evs[i] = stream.Event[tick]{Key: "a", Time: tm, Value: tick{N: i}}
		}
		produce(t, k, topic, JSON[tick]{}, evs)

		group := name(t, "group")
		src, err := NewSource(k.client(t, nil), group, []string{topic}, JSON[tick]{},
			WithHorizon(500*time.Millisecond), WithCommitInterval(0))
		require.NoError(t, err, "NewSource")
		t.Cleanup(func() { _ = src.Close() })
		recs := pollN(t, src, len(times))
		for i, r := range recs {
			assert.Equal(t, evs[i], r.Event, "record %d", i)
			assert.Equal(t, 0, r.Partition, "partition id")
		}
		assert.Equal(t, []stream.PartitionChange{{Partition: 0}}, src.PartitionChanges(nil), "the assignment is reported")
		tp, p, ok := src.TopicPartition(0)
		assert.True(t, ok && tp == topic && p == 0, "TopicPartition(0) = %s/%d", tp, p)

		ctx := context.Background()
		for _, step := range []struct {
			wm   stream.Time
			want int64
		}{
			{1500, -1}, // 1000 + 500 is not below 1500
			{1501, 1},
			{5500, 1}, // 5000 blocks the prefix
			{5501, 3}, // 5000 and 2000 are done
			{7400, 3},
			{7501, 4},
		} {
			require.NoError(t, src.Checkpoint(ctx, step.wm), "Checkpoint(%d)", step.wm)
			assert.Equal(t, []int64{step.want}, k.committed(t, group, topic, 1), "committed after Checkpoint(%d)", step.wm)
		}
		require.NoError(t, src.Close(), "Close")
		resp, err := k.admin(t).ListConsumerGroupOffsets(group, map[string][]int32{topic: {0}})
		require.NoError(t, err, "offsets")
		assert.Equal(t, "tidemark:v1:wm=7501", resp.GetBlock(topic, 0).Metadata, "commit metadata carries the watermark")
		_, err = src.Poll(ctx, make([]stream.Record[tick], 1))
		assert.ErrorIs(t, err, ErrClosed, "Poll after Close")
	})
}

// TestCommitAfterAck: a consumer stopped before its sink acknowledged a
// record commits nothing, and the next member of the group sees the record.
func TestCommitAfterAck(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		topic := k.topic(t, 1, nil)
		want := ticks(3, 3, stream.TimeOf(time.Now()))
		produce(t, k, topic, JSON[tick]{}, append(want, sentinels(t, topic, 1, want[0].Time+3_600_000)...))
		group := name(t, "group")

		srcA, err := NewSource(k.client(t, nil), group, []string{topic}, JSON[tick]{}, WithCommitInterval(0))
		require.NoError(t, err, "NewSource A")
		unacked := &collector[tick]{flushErr: errors.New("not acknowledged")}
		pA := startRun(t, srcA, unacked, runOpts()...)
		select {
		case <-pA.done:
		case <-time.After(20 * time.Second):
			t.Fatal("Run with a failing sink did not stop")
		}
		require.ErrorContains(t, pA.err, "not acknowledged", "Run reports the sink's failure")
		assert.Len(t, unacked.snapshot(), 3, "the records reached the failing sink")
		require.NoError(t, srcA.Close(), "close A")
		assert.Equal(t, []int64{-1}, k.committed(t, group, topic, 1), "nothing committed without acknowledgement")

		srcB, err := NewSource(k.client(t, nil), group, []string{topic}, JSON[tick]{}, WithCommitInterval(0))
		require.NoError(t, err, "NewSource B")
		acked := &collector[tick]{}
		pB := startRun(t, srcB, acked, runOpts()...)
		require.Eventually(t, func() bool { return acked.len() == 3 }, 20*time.Second, 50*time.Millisecond, "B sees the records again")
		require.Eventually(t, k.committedIs(t, group, topic, 1, nil), 20*time.Second, 50*time.Millisecond,
			"B commits them once acknowledged")
		require.NoError(t, pB.stop(), "Run B")
		require.NoError(t, srcB.Close(), "close B")
		assert.Equal(t, want, acked.snapshot(), "B's output")
	})
}

// TestDeadLetter: undecodable records land in the dead-letter topic untouched,
// with the reason in a header; the stream goes on and commits past them.
func TestDeadLetter(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		in, dlq := k.topic(t, 1, nil), k.topic(t, 1, nil)
		now := time.Now().Truncate(time.Millisecond)
		msg := func(key, value string, d time.Duration, hs ...sarama.RecordHeader) *sarama.ProducerMessage {
			m := &sarama.ProducerMessage{Topic: in, Timestamp: now.Add(d), Headers: hs}
			if key != "" {
				m.Key = sarama.StringEncoder(key)
			}
			if value != "" {
				m.Value = sarama.StringEncoder(value)
			}
			return m
		}
		trace := sarama.RecordHeader{Key: []byte("x-trace"), Value: []byte("42")}
		produceRaw(t, k,
			msg("a", `{"n":1}`, 0),
			msg("b", `not json`, time.Millisecond, trace),
			msg("a", `{"n":2}`, 2*time.Millisecond),
			msg("c", `{"n":"three"}`, 3*time.Millisecond),
			msg("d", "", 4*time.Millisecond), // a tombstone
			msg("a", `{"n":3}`, 5*time.Millisecond),
			msg("a", `{"n":-1}`, time.Hour), // a sentinel
		)

		var logs bytes.Buffer
		var logMu sync.Mutex
		logger := slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelWarn}))
		group := name(t, "group")
		src, err := NewSource(k.client(t, nil), group, []string{in}, JSON[tick]{},
			WithDeadLetter(dlq), WithCommitInterval(0), WithLogger(logger))
		require.NoError(t, err, "NewSource")
		out := &collector[tick]{}
		p := startRun(t, src, out, runOpts()...)
		require.Eventually(t, k.committedIs(t, group, in, 1, []int64{6}), 20*time.Second, 50*time.Millisecond,
			"the stream commits past the bad records")
		require.NoError(t, p.stop(), "Run")
		require.NoError(t, src.Close(), "Close")

		var ns []int
		for _, e := range out.snapshot() {
			ns = append(ns, e.Value.N)
		}
		assert.Equal(t, []int{1, 2, 3}, ns, "the good records went through")
		assert.Equal(t, SourceStats{Records: 4, Rejected: 3, DeadLettered: 3, Commits: src.Stats().Commits, Assigned: 1, Revoked: 1},
			src.Stats(), "source stats")

		dead := k.readAll(t, dlq, 1)
		require.Len(t, dead, 3, "dead letters")
		for i, want := range []struct {
			key, value, kind string
			offset           string
			extra            bool
		}{
			{"b", "not json", "syntax", "1", true},
			{"c", `{"n":"three"}`, "type", "3", false},
			{"d", "", "syntax", "4", false},
		} {
			m := dead[i]
			assert.Equal(t, want.key, string(m.Key), "dead letter %d key", i)
			assert.Equal(t, want.value, string(m.Value), "dead letter %d value", i)
			if want.value == "" {
				assert.Nil(t, m.Value, "a tombstone stays a tombstone")
			}
			assert.True(t, now.Add(time.Duration(want.offset[0]-'0')*time.Millisecond).Equal(m.Timestamp), "dead letter %d keeps its timestamp: %v", i, m.Timestamp)
			h := headers(m)
			assert.NotEmpty(t, h[HeaderError], "dead letter %d has a reason", i)
			assert.Equal(t, want.kind, h[HeaderErrorKind], "dead letter %d kind", i)
			assert.Equal(t, in, h[HeaderTopic], "dead letter %d topic", i)
			assert.Equal(t, "0", h[HeaderPartition], "dead letter %d partition", i)
			assert.Equal(t, want.offset, h[HeaderOffset], "dead letter %d offset", i)
			if want.extra {
				assert.Equal(t, "42", h["x-trace"], "dead letter %d keeps its headers", i)
			}
		}
		logMu.Lock()
		defer logMu.Unlock()
		assert.Equal(t, 2, strings.Count(logs.String(), "undecodable record"), "logged once per kind:\n%s", logs.String())
	})
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func headers(m *sarama.ConsumerMessage) map[string]string {
	h := map[string]string{}
	for _, r := range m.Headers {
		h[string(r.Key)] = string(r.Value)
	}
	return h
}

// TestProduceErrors: delivery errors reach Flush (and the following Writes)
// as *ProduceError wrapping sarama's error.
func TestProduceErrors(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		big := stream.Event[tick]{Key: "a", Time: stream.TimeOf(time.Now()), Value: tick{Pad: strings.Repeat("x", 4000)}}
		for _, tc := range []struct {
			name      string
			setup     func(t *testing.T) (sarama.Client, string)
			want      error // sarama's error; nil for a sarama.ConfigurationError
			partition bool  // the error names a partition
		}{{
			name: "larger than the client's max message size",
			setup: func(t *testing.T) (sarama.Client, string) {
				cfg := k.config(t, WithConfig(func(c *sarama.Config) { c.Producer.MaxMessageBytes = 1000 }))
				return k.client(t, cfg), k.topic(t, 1, nil)
			},
			want: nil, // sarama rejects it before sending, as a ConfigurationError
		}, {
			name: "larger than the topic's max message size",
			setup: func(t *testing.T) (sarama.Client, string) {
				return k.client(t, nil), k.topic(t, 1, map[string]string{"max.message.bytes": "1000"})
			},
			want:      sarama.ErrMessageSizeTooLarge,
			partition: true,
		}, {
			name: "topic does not exist",
			setup: func(t *testing.T) (sarama.Client, string) {
				return k.client(t, nil), name(t, "missing")
			},
			want: sarama.ErrUnknownTopicOrPartition,
		}} {
			t.Run(tc.name, func(t *testing.T) {
				client, topic := tc.setup(t)
				sink, err := NewSink(client, JSON[tick]{}, WithTopic(topic))
				require.NoError(t, err, "NewSink")
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				require.NoError(t, sink.Write(ctx, big), "Write hands the record over")
				err = sink.Flush(ctx)
				require.Error(t, err, "Flush reports the failure")
				require.NoError(t, ctx.Err(), "Flush did not time out")
				want := tc.want
				if want == nil {
					var ce sarama.ConfigurationError
					require.ErrorAs(t, err, &ce, "sarama's ConfigurationError is wrapped")
					want = ce
				}
				assert.ErrorIs(t, err, want, "sarama's error is wrapped")
				var pe *ProduceError
				require.ErrorAs(t, err, &pe, "a ProduceError")
				assert.Equal(t, topic, pe.Topic, "the error names the topic")
				if tc.partition {
					assert.Equal(t, int32(0), pe.Partition, "the error names the partition")
				}
				assert.Contains(t, err.Error(), "kafkaio: produce "+topic+"/", "message")
				assert.ErrorIs(t, sink.Write(ctx, big), want, "the failure is sticky")
				assert.Equal(t, uint64(1), sink.Stats().Failed, "failed count")
				assert.ErrorIs(t, sink.Close(), want, "Close reports it too")
				assert.ErrorIs(t, sink.Write(ctx, big), want, "Write after Close")
			})
		}
	})
}

// TestProduceBrokerGone: a broker that disappears makes Flush fail after
// the producer's retries instead of hanging.
func TestProduceBrokerGone(t *testing.T) {
	k := fakeCluster(t)
	topic := k.topic(t, 1, nil)
	cfg := k.config(t, WithConfig(func(c *sarama.Config) {
		c.Producer.Retry.Max = 3
		c.Metadata.Retry.Max = 1
		c.Net.DialTimeout = time.Second
	}))
	sink, err := NewSink(k.client(t, cfg), JSON[tick]{}, WithTopic(topic))
	require.NoError(t, err, "NewSink")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := stream.Event[tick]{Key: "a", Time: stream.TimeOf(time.Now())}
	require.NoError(t, sink.Write(ctx, e), "Write")
	require.NoError(t, sink.Flush(ctx), "Flush while the broker is up")
	require.NoError(t, k.fake.Close(), "stop the broker")
	require.NoError(t, sink.Write(ctx, e), "Write hands the record over")
	err = sink.Flush(ctx)
	require.Error(t, err, "Flush reports the lost broker")
	require.NoError(t, ctx.Err(), "Flush did not time out")
	var pe *ProduceError
	assert.ErrorAs(t, err, &pe, "a ProduceError: %v", err)
	t.Logf("error with the broker gone: %v", err)
}

// TestRebalance: a second member joins the group in the middle of a stream.
// No record is lost (every record reaches one of the members' sinks), no
// record is handed out after an offset covering it was committed, and at the
// end everything is committed.
func TestRebalance(t *testing.T) {
	for _, strategy := range []struct {
		name string
		new  func() sarama.BalanceStrategy
	}{
		{"range", sarama.NewBalanceStrategyRange},
		{"cooperative-sticky", sarama.NewBalanceStrategyCooperativeSticky},
	} {
		t.Run(strategy.name, func(t *testing.T) {
			backends(t, func(t *testing.T, k *cluster) { testRebalance(t, k, strategy.new) })
		})
	}
}

func testRebalance(t *testing.T, k *cluster, strategy func() sarama.BalanceStrategy) {
	const (
		parts = 4
		total = 3000
		keys  = 16
	)
	topic := k.topic(t, parts, nil)
	group := name(t, "group")

	var log struct {
		sync.Mutex
		committed map[int32]int64
		handed    map[int32]map[int64]int
		errs      []string
	}
	log.committed = map[int32]int64{}
	log.handed = map[int32]map[int64]int{}
	trace := func(ev traceEvent) {
		log.Lock()
		defer log.Unlock()
		if ev.commit {
			if ev.offset < log.committed[ev.partition] {
				log.errs = append(log.errs, fmt.Sprintf("commit of %d/%d moved back from %d", ev.partition, ev.offset, log.committed[ev.partition]))
			}
			log.committed[ev.partition] = max(log.committed[ev.partition], ev.offset)
			return
		}
		if ev.offset < log.committed[ev.partition] {
			log.errs = append(log.errs, fmt.Sprintf("record %d/%d handed out after commit %d", ev.partition, ev.offset, log.committed[ev.partition]))
		}
		if log.handed[ev.partition] == nil {
			log.handed[ev.partition] = map[int64]int{}
		}
		log.handed[ev.partition][ev.offset]++
	}
	member := func(name string) (*Source[tick], *collector[tick], *pipeline) {
		cfg := k.config(t, WithConfig(func(c *sarama.Config) {
			c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{strategy()}
		}))
		src, err := NewSource(k.client(t, cfg), group, []string{topic}, JSON[tick]{}, WithCommitInterval(50*time.Millisecond))
		require.NoError(t, err, "NewSource %s", name)
		src.trace = trace
		t.Cleanup(func() { _ = src.Close() })
		out := &collector[tick]{}
		return src, out, startRun(t, src, out, runOpts()...)
	}

	// The producer writes the stream over about 3 s, event times following the clock.
	sink, err := NewSink(k.client(t, nil), JSON[tick]{}, WithTopic(topic))
	require.NoError(t, err, "NewSink")
	produced := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for i := range total {
			e := stream.Event[tick]{Key: fmt.Sprintf("k%02d", i%keys), Time: stream.TimeOf(time.Now()) + stream.Time(i%keys), Value: tick{N: i}}
			if err := sink.Write(ctx, e); err != nil {
				produced <- err
				return
			}
			if i%keys == keys-1 {
				if err := sink.Flush(ctx); err != nil {
					produced <- err
					return
				}
				time.Sleep(16 * time.Millisecond)
			}
		}
		for _, e := range sentinels(t, topic, parts, stream.TimeOf(time.Now())+3_600_000) {
			if err := sink.Write(ctx, e); err != nil {
				produced <- err
				return
			}
		}
		produced <- errors.Join(sink.Flush(ctx), sink.Close())
	}()

	srcA, outA, pA := member("A")
	require.Eventually(t, func() bool { return outA.len() > total/5 }, 20*time.Second, 10*time.Millisecond, "A processes part of the stream")
	srcB, outB, pB := member("B")
	require.Eventually(t, func() bool { return outB.len() > 0 }, 20*time.Second, 10*time.Millisecond, "B gets partitions and processes")
	select {
	case err := <-produced:
		require.NoError(t, err, "producer")
	case <-time.After(30 * time.Second):
		t.Fatal("the producer did not finish")
	}
	require.Eventually(t, k.committedIs(t, group, topic, parts, nil), 30*time.Second, 100*time.Millisecond,
		"every offset committed")
	require.NoError(t, pA.stop(), "Run A")
	require.NoError(t, pB.stop(), "Run B")
	require.NoError(t, srcA.Close(), "close A")
	require.NoError(t, srcB.Close(), "close B")

	seen := make([]int, total)
	for _, out := range []*collector[tick]{outA, outB} {
		for _, e := range out.snapshot() {
			if e.Value.N >= 0 {
				seen[e.Value.N]++
			}
		}
	}
	var lost, twice []int
	for n, c := range seen {
		switch {
		case c == 0:
			lost = append(lost, n)
		case c > 1:
			twice = append(twice, n)
		}
	}
	assert.Empty(t, lost, "records lost")
	log.Lock()
	defer log.Unlock()
	assert.Empty(t, log.errs, "commit order violations")
	reread := 0
	for _, offs := range log.handed {
		for _, c := range offs {
			reread += c - 1
		}
	}
	a, b := srcA.Stats(), srcB.Stats()
	assert.Positive(t, b.Assigned, "B was assigned partitions")
	assert.Positive(t, a.Revoked, "A gave partitions up")
	t.Logf("A: %d results, %+v, run %+v; B: %d results, %+v, run %+v; records handed out again: %d; results emitted twice: %d",
		outA.len(), a, pA.stats, outB.len(), b, pB.stats, reread, len(twice))
}

// TestEnsureTopics: missing topics are created, existing ones left alone, a
// partition-count mismatch is reported.
func TestEnsureTopics(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin := k.admin(t)
		a, b := name(t, "a"), name(t, "b")
		require.NoError(t, EnsureTopics(ctx, admin, []TopicSpec{
			{Name: a, Partitions: 3, Config: map[string]string{"retention.ms": "3600000"}},
			{Name: b, Partitions: 2, ReplicationFactor: 1},
		}), "create")
		md, err := admin.DescribeTopics([]string{a, b})
		require.NoError(t, err, "describe")
		require.Len(t, md, 2, "topics")
		assert.Len(t, md[0].Partitions, 3, "partitions of %s", a)
		assert.Len(t, md[1].Partitions, 2, "partitions of %s", b)
		cfgs, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: a, ConfigNames: []string{"retention.ms"}})
		require.NoError(t, err, "describe config")
		require.NotEmpty(t, cfgs, "configs")
		assert.Equal(t, "3600000", cfgs[0].Value, "topic config applied")

		require.NoError(t, EnsureTopics(ctx, admin, []TopicSpec{{Name: a, Partitions: 3}, {Name: b}}), "existing topics are fine")
		err = EnsureTopics(ctx, admin, []TopicSpec{{Name: a, Partitions: 5}})
		assert.ErrorIs(t, err, ErrTopicMismatch, "partition mismatch")
		assert.ErrorContains(t, err, a, "the error names the topic")
		md, err = admin.DescribeTopics([]string{a})
		require.NoError(t, err, "describe")
		assert.Len(t, md[0].Partitions, 3, "a mismatching topic is left alone")

		if k.fake == nil { // kfake accepts any topic name
			err = EnsureTopics(ctx, admin, []TopicSpec{{Name: "bad name!"}})
			assert.ErrorContains(t, err, "bad name!", "an invalid name is reported with the topic")
		}

		// Several callers at once: every one succeeds.
		c := name(t, "c")
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Go(func() { errs[i] = EnsureTopics(ctx, k.admin(t), []TopicSpec{{Name: c, Partitions: 2}}) })
		}
		wg.Wait()
		for i, err := range errs {
			assert.NoError(t, err, "concurrent caller %d", i)
		}
	})
}

// TestNewSourceSinkKafka covers the constructors that need a broker.
func TestNewSourceSinkKafka(t *testing.T) {
	k := fakeCluster(t)
	topic := k.topic(t, 1, nil)

	t.Run("WithBrokers builds and closes its client", func(t *testing.T) {
		src, err := NewSource(nil, name(t, "g"), []string{topic}, JSON[tick]{}, WithBrokers(k.addrs, k.config(t)))
		require.NoError(t, err, "NewSource")
		require.NoError(t, src.Close(), "Close")
		assert.True(t, src.client.Closed(), "own client closed")

		sink, err := NewSink(nil, JSON[tick]{}, WithBrokers(k.addrs, nil), WithTopic(topic))
		require.NoError(t, err, "NewSink with default config")
		require.NoError(t, sink.Write(context.Background(), stream.Event[tick]{Key: "a", Time: 1}), "Write")
		require.NoError(t, sink.Flush(context.Background()), "Flush")
		require.NoError(t, sink.Close(), "Close")
		assert.True(t, sink.client.Closed(), "own client closed")
	})
	t.Run("an injected client stays open", func(t *testing.T) {
		c := k.client(t, nil)
		src, err := NewSource(c, name(t, "g"), []string{topic}, JSON[tick]{})
		require.NoError(t, err, "NewSource")
		require.NoError(t, src.Close(), "Close")
		assert.False(t, c.Closed(), "injected client open")
	})
	t.Run("a sink needs an idempotent producer", func(t *testing.T) {
		cfg := sarama.NewConfig()
		cfg.Producer.Return.Successes = true
		_, err := NewSink(k.client(t, cfg), JSON[tick]{}, WithTopic(topic))
		assert.ErrorIs(t, err, ErrBadConfig, "sarama's defaults are refused")
	})
	t.Run("a dead-letter topic needs Return.Successes", func(t *testing.T) {
		cfg := sarama.NewConfig()
		_, err := NewSource(k.client(t, cfg), name(t, "g"), []string{topic}, JSON[tick]{}, WithDeadLetter("dlq"))
		assert.ErrorIs(t, err, ErrBadConfig, "refused")
	})
	t.Run("unknown topic fails Poll", func(t *testing.T) {
		src, err := NewSource(k.client(t, nil), name(t, "g"), []string{name(t, "missing")}, JSON[tick]{})
		require.NoError(t, err, "NewSource")
		defer src.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err = src.Poll(ctx, make([]stream.Record[tick], 1))
		assert.ErrorIs(t, err, sarama.ErrUnknownTopicOrPartition, "Poll reports the missing topic")
	})
	t.Run("Close unblocks Poll", func(t *testing.T) {
		src, err := NewSource(k.client(t, nil), name(t, "g"), []string{k.topic(t, 1, nil)}, JSON[tick]{})
		require.NoError(t, err, "NewSource")
		go func() {
			time.Sleep(200 * time.Millisecond)
			_ = src.Close()
		}()
		for err == nil { // Poll returns (0, nil) for the assignment
			_, err = src.Poll(context.Background(), make([]stream.Record[tick], 1))
		}
		assert.ErrorIs(t, err, ErrClosed, "Poll returns ErrClosed")
	})
}

// TestSourceBrokerRestart: a Source waits for a broker that goes away and
// comes back (same address, same data), and goes on where it committed.
func TestSourceBrokerRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err, "free port")
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close(), "free port")
	dir := t.TempDir()
	opts := []embedded.KafkaOption{embedded.KafkaPorts(port), embedded.KafkaDataDir(dir)}

	k := fakeCluster(t, opts...)
	topic := k.topic(t, 2, nil)
	base := stream.TimeOf(time.Now())
	produce(t, k, topic, JSON[tick]{}, append(ticks(10, 4, base), sentinels(t, topic, 2, base+10_000)...))
	group := name(t, "group")
	src, err := NewSource(k.client(t, nil), group, []string{topic}, JSON[tick]{}, WithCommitInterval(0))
	require.NoError(t, err, "NewSource")
	t.Cleanup(func() { _ = src.Close() })
	out := &collector[tick]{}
	p := startRun(t, src, out, runOpts()...)
	require.Eventually(t, func() bool { return out.len() == 10 }, 20*time.Second, 20*time.Millisecond, "before the restart")
	require.Eventually(t, k.committedIs(t, group, topic, 2, nil), 20*time.Second, 50*time.Millisecond, "committed before the restart")

	require.NoError(t, k.fake.Close(), "stop the broker")
	time.Sleep(time.Second) // the Source notices and retries
	k2 := fakeCluster(t, opts...)
	produce(t, k2, topic, JSON[tick]{}, append(ticks(10, 4, base+20_000), sentinels(t, topic, 2, base+30_000)...))
	require.Eventually(t, func() bool { return out.len() >= 22 }, 30*time.Second, 50*time.Millisecond, "after the restart (with the first sentinels)")
	require.Eventually(t, k2.committedIs(t, group, topic, 2, nil), 20*time.Second, 50*time.Millisecond, "committed after the restart")
	require.NoError(t, p.stop(), "Run")
	assert.Equal(t, 22, out.len(), "nothing read twice: the offsets survived the restart")
}

// TestRouter: WithRouter picks each event's topic.
func TestRouter(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		up, down := k.topic(t, 1, nil), k.topic(t, 1, nil)
		sink, err := NewSink(k.client(t, nil), JSON[tick]{}, WithRouter(func(e stream.Event[tick]) string {
			if e.Value.N%2 == 0 {
				return up
			}
			return down
		}))
		require.NoError(t, err, "NewSink")
		ctx := context.Background()
		for _, e := range ticks(10, 2, 1000) {
			require.NoError(t, sink.Write(ctx, e), "Write")
		}
		require.NoError(t, sink.Flush(ctx), "Flush")
		require.NoError(t, sink.Close(), "Close")
		for topic, want := range map[string]string{up: "k00", down: "k01"} {
			msgs := k.readAll(t, topic, 1)
			assert.Len(t, msgs, 5, "records in %s", topic)
			for _, m := range msgs {
				assert.Equal(t, want, string(m.Key), "key routed to %s", topic)
			}
		}

		empty, err := NewSink(k.client(t, nil), JSON[tick]{}, WithRouter(func(stream.Event[tick]) string { return "" }))
		require.NoError(t, err, "NewSink")
		defer empty.Close()
		assert.ErrorContains(t, empty.Write(ctx, stream.Event[tick]{Key: "a"}), "no topic", "an empty route is an error")
	})
}
