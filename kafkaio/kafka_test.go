package kafkaio

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

// headers returns a record's headers by name.
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
				assert.ErrorIs(t, sink.Close(context.Background()), want, "Close reports it too")
				assert.ErrorIs(t, sink.Write(ctx, big), want, "Write after Close")
			})
		}
	})
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
		res, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: a, ConfigNames: []string{"retention.ms"}}},
			sarama.DescribeConfigsOptions{})
		require.NoError(t, err, "describe config")
		require.Len(t, res, 1, "one resource")
		require.Zero(t, res[0].ErrorCode, "describe config: %s", res[0].ErrorMsg)
		require.NotEmpty(t, res[0].Configs, "configs")
		assert.Equal(t, "3600000", res[0].Configs[0].Value, "topic config applied")

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
func TestNewSinkKafka(t *testing.T) {
	k := fakeCluster(t)
	topic := k.topic(t, 1, nil)

	t.Run("WithBrokers builds and closes its client", func(t *testing.T) {
		sink, err := NewSink(nil, JSON[tick]{}, WithBrokers(k.addrs, nil), WithTopic(topic))
		require.NoError(t, err, "NewSink with default config")
		require.NoError(t, sink.Write(context.Background(), stream.Event[tick]{Key: "a", Time: 1}), "Write")
		require.NoError(t, sink.Flush(context.Background()), "Flush")
		require.NoError(t, sink.Close(context.Background()), "Close")
		assert.True(t, sink.client.Closed(), "own client closed")
	})
	t.Run("an injected client stays open", func(t *testing.T) {
		c := k.client(t, nil)
		sink, err := NewSink(c, JSON[tick]{}, WithTopic(topic))
		require.NoError(t, err, "NewSink")
		require.NoError(t, sink.Close(context.Background()), "Close")
		assert.False(t, c.Closed(), "injected client open")
	})
	t.Run("a sink needs an idempotent producer", func(t *testing.T) {
		cfg := sarama.NewConfig()
		cfg.Producer.Return.Successes = true
		_, err := NewSink(k.client(t, cfg), JSON[tick]{}, WithTopic(topic))
		assert.ErrorIs(t, err, ErrInvalidConfig, "sarama's defaults are refused")
	})
}

// TestStageRunFailures: what a stage cannot go on without is reported by
// Run, not retried forever: a missing input topic, or a stage run twice.
func TestStageRunFailures(t *testing.T) {
	k := fakeCluster(t)
	s, err := NewStage(name(t, "g"), Input[px]{Topic: name(t, "missing"), Decoder: pxCodec}, newMoving,
		ToTopic(k.topic(t, 1, nil), mstatCodec), k.stageOpts(t)...)
	require.NoError(t, err, "NewStage")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = s.Run(ctx)
	assert.ErrorIs(t, err, sarama.ErrUnknownTopicOrPartition, "Run reports the missing topic")
	assert.ErrorIs(t, s.Run(ctx), ErrStageRunning, "a stage runs once")
}

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
		require.NoError(t, sink.Close(context.Background()), "Close")
		for topic, want := range map[string]string{up: "k00", down: "k01"} {
			msgs := k.readAll(t, topic, 1)
			assert.Len(t, msgs, 5, "records in %s", topic)
			for _, m := range msgs {
				assert.Equal(t, want, string(m.Key), "key routed to %s", topic)
			}
		}

		empty, err := NewSink(k.client(t, nil), JSON[tick]{}, WithRouter(func(stream.Event[tick]) string { return "" }))
		require.NoError(t, err, "NewSink")
		defer empty.Close(context.Background())
		assert.ErrorContains(t, empty.Write(ctx, stream.Event[tick]{Key: "a"}), "no topic", "an empty route is an error")
	})
}

// TestSinkWallClockTimestamps: records carry the event time by default and
// the Sink's clock with WithWallClockTimestamps, whatever the event time
// (an event of 2099 included, which a real broker would refuse as a
// stamp), so that a stage's Input.MaxAhead has a stamp to measure events
// against.
func TestSinkWallClockTimestamps(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		ctx := context.Background()
		future := stream.TimeOf(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))
		for _, wall := range []bool{false, true} {
			events := []stream.Event[tick]{{Key: "a", Time: 1_000}, {Key: "a", Time: 2_000}}
			if wall {
				events = append(events, stream.Event[tick]{Key: "a", Time: future})
			}
			topic := k.topic(t, 1, nil)
			opts := []SinkOption{WithTopic(topic)}
			if wall {
				opts = append(opts, WithWallClockTimestamps())
			}
			sink, err := NewSink(k.client(t, nil), JSON[tick]{}, opts...)
			require.NoError(t, err, "NewSink")
			before := time.Now().Truncate(time.Millisecond)
			for _, e := range events {
				require.NoError(t, sink.Write(ctx, e), "Write")
			}
			require.NoError(t, sink.Flush(ctx), "Flush")
			after := time.Now()
			require.NoError(t, sink.Close(ctx), "Close")
			msgs := k.readAll(t, topic, 1)
			require.Len(t, msgs, len(events), "records")
			for i, m := range msgs {
				if wall {
					assert.False(t, m.Timestamp.Before(before) || m.Timestamp.After(after),
						"record %d: stamped %v, written between %v and %v", i, m.Timestamp, before, after)
				} else {
					assert.Equal(t, events[i].Time, stream.TimeOf(m.Timestamp), "record %d: the event time", i)
				}
			}
		}
	})
}
