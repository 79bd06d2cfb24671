package kafkaio

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/stream"
)

// dlKeys are the keys of the dead-letter tests' records.
var dlKeys = []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "TRXUSDT"}

// mixed returns n records keyed over dlKeys, each value starting with
// "<key> <number> ", of about 100 bytes, except those bad says are bad,
// whose values are badSize bytes.
func mixed(n int, t0 stream.Time, bad func(i int) bool, badSize int) []stream.Event[[]byte] {
	out := make([]stream.Event[[]byte], n)
	for i := range out {
		k := dlKeys[i%len(dlKeys)]
		v := fmt.Appendf(nil, "%s %d ", k, i)
		size := 100
		if bad(i) {
			size = badSize
		}
		for len(v) < size {
			v = append(v, byte('a'+len(v)%26))
		}
		out[i] = stream.Event[[]byte]{Key: k, Time: t0 + stream.Time(i), Value: v}
	}
	return out
}

// number returns the record number a value of mixed starts with.
func number(t *testing.T, v []byte) int {
	f := strings.Fields(string(v[:min(len(v), 40)]))
	require.GreaterOrEqual(t, len(f), 2, "value %.40q", v)
	n, err := strconv.Atoi(f[1])
	require.NoError(t, err, "value %.40q", v)
	return n
}

// writeAll writes events through sink, flushing after the records numbered in
// flushAfter, then flushes.
func writeAll(t *testing.T, sink *Sink[[]byte], events []stream.Event[[]byte], flushAfter func(i int) bool) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, e := range events {
		if err := sink.Write(ctx, e); err != nil {
			return err
		}
		if flushAfter != nil && flushAfter(i) {
			if err := sink.Flush(ctx); err != nil {
				return err
			}
		}
	}
	err := sink.Flush(ctx)
	require.NoError(t, ctx.Err(), "Flush did not time out")
	return err
}

// checkArrived checks that topic holds the records want says, each once and
// in the order they were written per key, and nothing else.
func checkArrived(t *testing.T, k *cluster, topic string, parts int32, events []stream.Event[[]byte], want func(i int) bool) {
	t.Helper()
	got := map[string][]int{}
	seen := map[int]int{}
	for _, m := range k.readAll(t, topic, parts) {
		n := number(t, m.Value)
		seen[n]++
		got[string(m.Key)] = append(got[string(m.Key)], n)
		require.True(t, want(n), "record %d is in %s: it should not be", n, topic)
		assert.Equal(t, events[n].Value, m.Value, "record %d: the value as written", n)
	}
	perKey := map[string][]int{}
	missing := 0
	for i, e := range events {
		if !want(i) {
			continue
		}
		perKey[e.Key] = append(perKey[e.Key], i)
		if seen[i] != 1 {
			missing++
			if missing < 5 {
				t.Errorf("record %d is in %s %d times, want once", i, topic, seen[i])
			}
		}
	}
	require.Zero(t, missing, "records not in %s once", topic)
	for key, w := range perKey {
		assert.Equal(t, w, got[key], "key %s: the records in write order", key)
	}
}

// checkDeadLetters checks that dlq holds a dead letter for each record bad
// says is bad, once, with its headers, and returns them by record number.
func checkDeadLetters(t *testing.T, k *cluster, dlq, topic string, events []stream.Event[[]byte], bad func(i int) bool, kind string, limit int) map[int]*sarama.ConsumerMessage {
	t.Helper()
	out := map[int]*sarama.ConsumerMessage{}
	for _, m := range k.readAll(t, dlq, 1) {
		n := number(t, m.Value)
		require.True(t, bad(n), "record %d is in the dead-letter topic: it should not be", n)
		require.NotContains(t, out, n, "record %d is in the dead-letter topic twice", n)
		out[n] = m
		e := events[n]
		h := headers(m)
		assert.Equal(t, e.Key, string(m.Key), "record %d: the key as given", n)
		assert.NotEmpty(t, h[HeaderError], "record %d: the reason", n)
		assert.Equal(t, kind, h[HeaderErrorKind], "record %d: the kind; reason %s", n, h[HeaderError])
		assert.Equal(t, topic, h[HeaderOutputTopic], "record %d: where it was meant to go", n)
		assert.Equal(t, strconv.Itoa(recordSize(e)), h[HeaderSize], "record %d: its size as the producer counts it", n)
		if cut, ok := h[HeaderTruncated]; ok {
			assert.Equal(t, strconv.Itoa(len(e.Value)), cut, "record %d: the cut value's length", n)
			assert.True(t, strings.HasPrefix(string(e.Value), string(m.Value)), "record %d: the cut value is the start of the record's", n)
			assert.Less(t, len(m.Value), len(e.Value), "record %d: cut", n)
			assert.Greater(t, len(m.Value), limit-1024, "record %d: cut to fit %d, not much shorter", n, limit)
		} else {
			assert.Equal(t, e.Value, m.Value, "record %d: the value as given", n)
		}
	}
	for i := range events {
		if bad(i) && out[i] == nil {
			t.Errorf("record %d is not in the dead-letter topic", i)
		}
	}
	return out
}

// recordSize is the size of e's record as sarama counts it.
func recordSize(e stream.Event[[]byte]) int {
	m := sarama.ProducerMessage{Value: sarama.ByteEncoder(e.Value)}
	if e.Key != "" {
		m.Key = sarama.StringEncoder(e.Key)
	}
	return m.ByteSize(2)
}

func testSeed(t *testing.T) uint64 {
	seed := rand.Uint64()
	if v := os.Getenv("TIDEMARK_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "TIDEMARK_SEED")
	}
	t.Logf("seed %d (TIDEMARK_SEED repeats it)", seed)
	return seed
}

// TestSinkDeadLetter: records the brokers will refuse whatever happens,
// mixed at random among valid ones, go to the dead-letter topic with their
// headers, each once; every valid record arrives once and in order per key;
// the Sink does not fail. Without a dead-letter topic the first refused
// record fails the Sink, as it always did.
func TestSinkDeadLetter(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts, n = 3, 3000
		r := rand.New(rand.NewPCG(testSeed(t), 1))
		badSet := map[int]bool{}
		for range 40 {
			badSet[r.IntN(n)] = true
		}
		bad := func(i int) bool { return badSet[i] }
		good := func(i int) bool { return !badSet[i] }
		t0 := stream.TimeOf(time.Now())

		t.Run("larger than the client's limit", func(t *testing.T) {
			const limit = 4096
			events := mixed(n, t0, bad, 6000)
			topic, dlq := k.topic(t, parts, nil), k.topic(t, 1, nil)
			cfg := k.config(t, WithConfig(func(c *sarama.Config) { c.Producer.MaxMessageBytes = limit }))
			sink, err := NewSink(k.client(t, cfg), Raw{}, WithTopic(topic), WithDeadLetter(dlq), WithLogger(testLogger(t)))
			require.NoError(t, err, "NewSink")
			require.NoError(t, writeAll(t, sink, events, nil), "Write and Flush: the sink does not fail")
			require.NoError(t, sink.Close(context.Background()), "Close")
			st := sink.Stats()
			t.Logf("stats %+v", st)
			assert.Equal(t, SinkStats{Written: n, Acked: uint64(n - len(badSet)), DeadLettered: uint64(len(badSet))}, st, "stats")
			checkArrived(t, k, topic, parts, events, good)
			dls := checkDeadLetters(t, k, dlq, topic, events, bad, "too-large", limit)
			for i, m := range dls {
				h := headers(m)
				assert.Contains(t, h[HeaderError], "Producer.MaxMessageBytes (4096)", "record %d: the reason", i)
				assert.Equal(t, "6000", h[HeaderTruncated], "record %d: cut to fit the client's limit", i)
				assert.Equal(t, events[i].Time, stream.TimeOf(m.Timestamp), "record %d: the record's timestamp", i)
				assert.NotContains(t, h, HeaderTimestamp, "record %d", i)
			}
		})

		t.Run("larger than the topic's limit", func(t *testing.T) {
			events := mixed(n, t0, bad, 3000)
			topic := k.topic(t, parts, map[string]string{"max.message.bytes": "2000"})
			dlq := k.topic(t, 1, nil)
			sink, err := NewSink(k.client(t, nil), Raw{}, WithTopic(topic), WithDeadLetter(dlq), WithLogger(testLogger(t)))
			require.NoError(t, err, "NewSink")
			require.NoError(t, writeAll(t, sink, events, nil), "Write and Flush: the sink does not fail")
			require.NoError(t, sink.Close(context.Background()), "Close")
			st := sink.Stats()
			t.Logf("stats %+v", st)
			assert.Equal(t, SinkStats{Written: n, Acked: uint64(n - len(badSet)), DeadLettered: uint64(len(badSet))}, st, "stats")
			checkArrived(t, k, topic, parts, events, good)
			for i, m := range checkDeadLetters(t, k, dlq, topic, events, bad, "too-large", 0) {
				assert.Contains(t, headers(m)[HeaderError], "max.message.bytes 2000", "record %d: the reason", i)
			}
		})

		t.Run("without a dead-letter topic", func(t *testing.T) {
			events := mixed(n, t0, bad, 3000)
			topic := k.topic(t, parts, map[string]string{"max.message.bytes": "2000"})
			sink, err := NewSink(k.client(t, nil), Raw{}, WithTopic(topic), WithLogger(testLogger(t)))
			require.NoError(t, err, "NewSink")
			err = writeAll(t, sink, events, nil)
			var pe *ProduceError
			require.ErrorAs(t, err, &pe, "the first refused record fails the sink: %v", err)
			assert.ErrorIs(t, err, sarama.ErrMessageSizeTooLarge, "the broker's reason")
			assert.ErrorIs(t, sink.Write(context.Background(), events[0]), sarama.ErrMessageSizeTooLarge, "sticky")
			assert.ErrorIs(t, sink.Close(context.Background()), sarama.ErrMessageSizeTooLarge, "Close reports it")
			st := sink.Stats()
			t.Logf("stats %+v", st)
			assert.NotZero(t, st.Failed, "failed")
			assert.Zero(t, st.DeadLettered, "nothing dead-lettered")
			// What arrived did so once, in order per key.
			seen := map[int]bool{}
			last := map[string]int{}
			for _, m := range k.readAll(t, topic, parts) {
				i := number(t, m.Value)
				require.False(t, seen[i], "record %d twice", i)
				seen[i] = true
				require.False(t, bad(i), "record %d is too large and in the topic", i)
				if l, ok := last[string(m.Key)]; ok {
					require.Greater(t, i, l, "key %s in order", m.Key)
				}
				last[string(m.Key)] = i
			}
		})

		t.Run("a timestamp the topic refuses", func(t *testing.T) {
			// Kafka 4 refuses CreateTime timestamps more than an hour ahead
			// of its clock (message.timestamp.after.max.ms); kfake takes
			// them.
			ahead := func(i int) bool { return i%100 == 7 }
			events := mixed(1000, t0, func(int) bool { return false }, 0)
			for i := range events {
				if ahead(i) {
					events[i].Time = stream.TimeOf(time.Now().Add(2 * time.Hour))
				}
			}
			topic, dlq := k.topic(t, parts, nil), k.topic(t, 1, nil)
			sink, err := NewSink(k.client(t, nil), Raw{}, WithTopic(topic), WithDeadLetter(dlq), WithLogger(testLogger(t)))
			require.NoError(t, err, "NewSink")
			began := time.Now()
			require.NoError(t, writeAll(t, sink, events, nil), "Write and Flush: the sink does not fail")
			require.NoError(t, sink.Close(context.Background()), "Close")
			st := sink.Stats()
			t.Logf("stats %+v", st)
			if k.fake != nil {
				assert.Equal(t, SinkStats{Written: 1000, Acked: 1000}, st, "kfake takes every timestamp")
				checkArrived(t, k, topic, parts, events, func(int) bool { return true })
				return
			}
			assert.Equal(t, SinkStats{Written: 1000, Acked: 990, DeadLettered: 10}, st, "stats")
			checkArrived(t, k, topic, parts, events, func(i int) bool { return !ahead(i) })
			for i, m := range checkDeadLetters(t, k, dlq, topic, events, ahead, "timestamp", 0) {
				h := headers(m)
				assert.Contains(t, h[HeaderError], "ahead of the clock", "record %d: the reason", i)
				assert.Equal(t, strconv.FormatInt(int64(events[i].Time), 10), h[HeaderTimestamp], "record %d: its timestamp in a header", i)
				assert.WithinRange(t, m.Timestamp, began.Add(-time.Second), time.Now(), "record %d: the dead letter carries the wall clock", i)
			}
		})

		t.Run("the dead-letter topic is missing", func(t *testing.T) {
			events := mixed(500, t0, bad, 3000)
			topic := k.topic(t, parts, map[string]string{"max.message.bytes": "2000"})
			sink, err := NewSink(k.client(t, nil), Raw{}, WithTopic(topic), WithDeadLetter(name(t, "missing")), WithLogger(testLogger(t)))
			require.NoError(t, err, "NewSink")
			require.NoError(t, writeAll(t, sink, events, nil), "Write and Flush: the sink goes on")
			require.NoError(t, sink.Close(context.Background()), "Close")
			st := sink.Stats()
			t.Logf("stats %+v", st)
			nbad := 0
			for i := range events {
				if bad(i) {
					nbad++
				}
			}
			assert.Equal(t, uint64(500), st.Written, "written")
			assert.Equal(t, uint64(500-nbad), st.Acked, "acked")
			assert.Equal(t, uint64(nbad), st.DeadLetterFailed, "counted, not lost silently")
			assert.Zero(t, st.Failed+st.DeadLettered+st.Outages, "no failure, no outage: the sink's Writes went on")
			checkArrived(t, k, topic, parts, events, func(i int) bool { return !bad(i) })
		})

		t.Run("refused by the broker", func(t *testing.T) {
			// The topic's limit shrinks after the Sink learned it: the
			// broker refuses what the Sink let through.
			events := mixed(60, t0, func(i int) bool { return i%10 == 5 }, 5000)
			big := func(i int) bool { return i%10 == 5 }
			topic, dlq := k.topic(t, 1, map[string]string{"max.message.bytes": "100000"}), k.topic(t, 1, nil)
			sink, err := NewSink(k.client(t, nil), Raw{}, WithTopic(topic), WithDeadLetter(dlq), WithLogger(testLogger(t)))
			require.NoError(t, err, "NewSink")
			require.NoError(t, writeAll(t, sink, events[:1], nil), "the first record: the sink learns the limit")
			limit := "2000"
			require.NoError(t, k.admin(t).AlterConfig(sarama.TopicResource, topic, map[string]*string{"max.message.bytes": &limit}, false), "shrink the limit")
			probes := 0
			require.Eventually(t, func() bool { // until the broker applies it
				probes++
				return sendAlone(k, topic, fmt.Appendf(nil, "probe %d %s", probes, strings.Repeat("p", 5000))) != nil
			}, 30*time.Second, 200*time.Millisecond, "the broker refuses large records")
			// Each large record alone in its batch: only it is refused.
			err = writeAll(t, sink, events[1:], func(i int) bool { i++; return big(i) || big(i+1) })
			require.NoError(t, err, "Write and Flush: the sink does not fail")
			require.NoError(t, sink.Close(context.Background()), "Close")
			st := sink.Stats()
			t.Logf("stats %+v after %d probes", st, probes)
			assert.Equal(t, SinkStats{Written: 60, Acked: 54, DeadLettered: 6}, st, "stats")
			var arrived []stream.Event[[]byte]
			for _, m := range k.readAll(t, topic, 1) {
				if !strings.HasPrefix(string(m.Value), "probe ") {
					arrived = append(arrived, stream.Event[[]byte]{Key: string(m.Key), Value: m.Value})
				}
			}
			require.Len(t, arrived, 54, "the small records")
			for i, m := range checkDeadLetters(t, k, dlq, topic, events, big, "too-large", 0) {
				assert.Contains(t, headers(m)[HeaderError], topic+"/0 refused the record", "record %d: the broker's refusal", i)
				assert.Contains(t, headers(m)[HeaderError], "Message was too large", "record %d: sarama's error", i)
			}
		})
	})
}

// sendAlone produces one record with a producer of its own.
func sendAlone(k *cluster, topic string, value []byte) error {
	c, err := sarama.NewClient(k.addrs, k.config(k.owner))
	if err != nil {
		return err
	}
	defer c.Close()
	p, err := sarama.NewSyncProducerFromClient(c)
	if err != nil {
		return err
	}
	defer p.Close()
	_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(value)})
	return err
}

// TestSinkDeadLetterAcrossRestart: the broker restarts while valid and
// too-large records stream into a Sink of its own client with a dead-letter
// topic: no valid record is lost, none lands twice or out of order, and each
// too-large one is in the dead-letter topic once.
func TestSinkDeadLetterAcrossRestart(t *testing.T) {
	restartableBackends(t, func(t *testing.T, k *restartable) {
		const parts, n = 3, 6000
		bad := func(i int) bool { return i%97 == 13 }
		events := mixed(n, stream.TimeOf(time.Now()), bad, 5000)
		topic := k.topic(t, parts, map[string]string{"max.message.bytes": "3000"})
		dlq := k.topic(t, 1, nil)
		sink, err := NewSink(nil, Raw{}, WithTopic(topic), WithDeadLetter(dlq), WithBrokers(k.addrs, k.config(t)), WithLogger(testLogger(t)))
		require.NoError(t, err, "NewSink")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		var written atomic.Int64
		done := make(chan error, 1)
		go func() {
			for i, e := range events {
				if err := sink.Write(ctx, e); err != nil {
					done <- err
					return
				}
				written.Store(int64(i + 1))
				if i%20 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			done <- sink.Flush(ctx)
		}()
		require.Eventually(t, func() bool { return written.Load() >= n/5 }, time.Minute, time.Millisecond, "writing")
		k.restart(t, 3*time.Second)
		require.NoError(t, <-done, "Write and Flush across the restart")
		require.NoError(t, sink.Close(context.Background()), "Close")
		st := sink.Stats()
		t.Logf("stats %+v", st)
		nbad := 0
		for i := range n {
			if bad(i) {
				nbad++
			}
		}
		assert.Equal(t, uint64(n-nbad), st.Acked, "acked")
		assert.Equal(t, uint64(nbad), st.DeadLettered, "dead-lettered")
		assert.Zero(t, st.Failed+st.DeadLetterFailed, "nothing failed")
		checkArrived(t, k.cluster, topic, parts, events, func(i int) bool { return !bad(i) })
		checkDeadLetters(t, k.cluster, dlq, topic, events, bad, "too-large", 0)
	})
}

// BenchmarkSinkWrite writes records of about 100 bytes through a Sink on
// kfake, with and without a dead-letter topic (which checks each record's
// size and its topic's limits before sending): one iteration is one Write;
// the final Flush is in the records/s metric. The checks add no allocation:
// the one allocation per record both report is sarama's and kfake's, which
// run in the same process.
func BenchmarkSinkWrite(b *testing.B) {
	k := fakeCluster(b)
	vals := payloads(4096)
	for _, dl := range []bool{false, true} {
		b.Run(fmt.Sprintf("deadletter=%v", dl), func(b *testing.B) {
			topic := k.topic(b, 6, nil)
			opts := []SinkOption{WithTopic(topic)}
			if dl {
				opts = append(opts, WithDeadLetter(k.topic(b, 1, nil)))
			}
			sink, err := NewSink(k.client(b, nil), Raw{}, opts...)
			require.NoError(b, err, "NewSink")
			defer sink.Close(context.Background())
			ctx := context.Background()
			require.NoError(b, sink.Write(ctx, stream.Event[[]byte]{Key: "warm", Value: vals[0]}), "learn the topic")
			var n int
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				if err := sink.Write(ctx, stream.Event[[]byte]{Key: dlKeys[n%len(dlKeys)], Time: stream.Time(n), Value: vals[n%len(vals)]}); err != nil {
					b.Fatal(err)
				}
				n++
			}
			require.NoError(b, sink.Flush(ctx), "Flush")
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
		})
	}
}
