package kafkaio

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/stream"
)

// payloads returns n JSON-like values of about 100 bytes, as the pipeline's
// btc-price records.
func payloads(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"symbol":"BTCUSDT","price":%d.%02d,"timestamp":"2025-05-08T04:12:%02d.%03dZ","seq":%07d}`,
			99000+i%1000, i%100, i%60, i%1000, i)
	}
	return out
}

var benchCompressions = []struct {
	name  string
	codec sarama.CompressionCodec
}{
	{"none", sarama.CompressionNone},
	{"lz4", sarama.CompressionLZ4},
	{"zstd", sarama.CompressionZSTD},
}

var benchBatching = []struct {
	name string
	opt  ConfigOption
}{
	{"linger=0", WithBatch(0, 0, 0)},
	{"linger=5ms", WithBatch(1<<20, 0, 5*time.Millisecond)},
}

// benchBackends runs f against kfake and, when TIDEMARK_KAFKA_BROKERS is set,
// against the real broker.
func benchBackends(b *testing.B, f func(b *testing.B, k *cluster)) {
	b.Run("kfake", func(b *testing.B) { f(b, fakeCluster(b)) })
	b.Run("kafka", func(b *testing.B) { f(b, realCluster(b)) })
}

// BenchmarkProduce writes records of about 100 bytes through a Sink; one
// iteration is one Write, and the final Flush is part of the measured time
// of the records/s and MB/s metrics. The flush=512 variants flush after every
// 512 records, as stream.Run does after every polled batch.
func BenchmarkProduce(b *testing.B) {
	vals := payloads(4096)
	benchBackends(b, func(b *testing.B, k *cluster) {
		for _, comp := range benchCompressions {
			for _, batch := range benchBatching {
				for _, every := range []int{0, 512} {
					label := comp.name + "/" + batch.name
					if every > 0 {
						if batch.name != "linger=0" {
							continue // a linger only delays the flushes
						}
						label += fmt.Sprintf("/flush=%d", every)
					}
					b.Run(label, func(b *testing.B) {
						topic := k.topic(b, 6, nil)
						cfg := k.config(b, WithCompression(comp.codec), batch.opt)
						sink, err := NewSink(k.client(b, cfg), Raw{}, WithTopic(topic))
						require.NoError(b, err, "NewSink")
						defer sink.Close(context.Background())
						ctx := context.Background()
						keys := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "TRXUSDT"}
						var n, bytes int
						b.ReportAllocs()
						start := time.Now()
						for b.Loop() {
							v := vals[n%len(vals)]
							if err := sink.Write(ctx, stream.Event[[]byte]{Key: keys[n%len(keys)], Time: stream.Time(n), Value: v}); err != nil {
								b.Fatal(err)
							}
							n++
							bytes += len(v)
							if every > 0 && n%every == 0 {
								if err := sink.Flush(ctx); err != nil {
									b.Fatal(err)
								}
							}
						}
						require.NoError(b, sink.Flush(ctx), "Flush")
						el := time.Since(start).Seconds()
						b.ReportMetric(float64(n)/el, "records/s")
						b.ReportMetric(float64(bytes)/el/1e6, "MB/s")
					})
				}
			}
		}
	})
}

// discard is a sink that drops what it gets.
type discard[T any] struct{}

func (discard[T]) Write(context.Context, stream.Event[T]) error { return nil }

// backlogTopic writes n records of about 100 bytes to a new topic, keyed over
// 64 keys, with record timestamps (the Raw codec's event times) increasing.
func backlogTopic(b *testing.B, k *cluster, parts int32, n int) string {
	b.Helper()
	vals := payloads(4096)
	topic := k.topic(b, parts, nil)
	sink, err := NewSink(k.client(b, k.config(b, WithBatch(1<<20, 0, 5*time.Millisecond))), Raw{}, WithTopic(topic))
	require.NoError(b, err, "NewSink")
	ctx := context.Background()
	for i := range n {
		if err := sink.Write(ctx, stream.Event[[]byte]{Key: fmt.Sprint(i % 64), Time: stream.Time(1_700_000_000_000 + i), Value: vals[i%len(vals)]}); err != nil {
			b.Fatal(err)
		}
	}
	require.NoError(b, sink.Close(context.Background()), "produce the backlog")
	return topic
}

func passRaw() (stream.Operator[[]byte, []byte], error) { return identity[[]byte]{}, nil }

// BenchmarkStage runs a backlog of 200,000 records of about 100 bytes through
// a stage with an operator that passes them on (lateness 0), as a stage
// catching up does: exactly once (results and offsets in transactions, at
// the default commit interval), at least once (results through an
// idempotent Sink flushed before each offset commit), and reading only
// (results dropped). One iteration is a new consumer group, from joining to
// the commit of the last offset; records/s counts input records.
func BenchmarkStage(b *testing.B) {
	const backlog = 200_000
	benchBackends(b, func(b *testing.B, k *cluster) {
		for _, parts := range []int32{1, 6} {
			in := backlogTopic(b, k, parts, backlog)
			ends := k.ends(b, k.client(b, nil), in, parts)
			for _, mode := range []string{"exactly-once", "at-least-once", "read-only"} {
				b.Run(fmt.Sprintf("partitions=%d/%s", parts, mode), func(b *testing.B) {
					out := k.topic(b, parts, nil)
					var records int
					for b.Loop() {
						b.StopTimer()
						group := name(b, "group")
						var output Output[[]byte]
						var sink *Sink[[]byte]
						switch mode {
						case "exactly-once":
							output = ToTopic(out, Raw{})
						case "at-least-once":
							var err error
							sink, err = NewSink(k.client(b, nil), Raw{}, WithTopic(out))
							require.NoError(b, err, "NewSink")
							output = ToSink[[]byte](sink)
						default:
							output = ToSink[[]byte](discard[[]byte]{})
						}
						s, err := NewStage(group, Input[[]byte]{Topic: in, Decoder: Raw{}}, passRaw, output,
							WithBrokers(k.addrs, k.config(b)), WithTransactionTimeout(5*time.Second))
						require.NoError(b, err, "NewStage")
						b.StartTimer()
						run := startStage(b, s)
						done := k.committedIs(b, group, in, parts, ends)
						for !done() {
							time.Sleep(5 * time.Millisecond)
						}
						records += backlog
						b.StopTimer()
						require.NoError(b, run.stop(), "Run")
						if sink != nil {
							require.NoError(b, sink.Close(context.Background()), "close sink")
						}
						b.StartTimer()
					}
					b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
				})
			}
		}
	})
}

// BenchmarkStageLatency measures the time from writing a record to reading
// its result committed, read_committed, through an exactly-once stage at the
// default commit interval (100 ms), with records written at a steady 20,000
// per second for 3 s over 3 partitions. The event time is the write time, so
// that each result is final as soon as the next record of its partition
// arrives (lateness 0). It reports the median and the 99th percentile.
func BenchmarkStageLatency(b *testing.B) {
	benchBackends(b, func(b *testing.B, k *cluster) {
		const parts, rate, seconds = 3, 20_000, 3
		for b.Loop() {
			in, out := k.topic(b, parts, nil), k.topic(b, parts, nil)
			s, err := NewStage(name(b, "group"), Input[px]{Topic: in, Decoder: pxCodec}, func() (stream.Operator[px, px], error) { return identity[px]{}, nil },
				ToTopic(out, pxCodec), WithBrokers(k.addrs, k.config(b)), WithTransactionTimeout(5*time.Second))
			require.NoError(b, err, "NewStage")
			run := startStage(b, s)

			cfg := k.config(b)
			cfg.Consumer.IsolationLevel = sarama.ReadCommitted
			cons, err := sarama.NewConsumerFromClient(k.client(b, cfg))
			require.NoError(b, err, "consumer")
			lat := make(chan time.Duration, rate*seconds)
			for p := range int32(parts) {
				pc := consumePartition(b, cons, out, p)
				go func() {
					for m := range pc.Messages() {
						e, err := pxCodec.Decode(m.Key, m.Value, 0)
						if err == nil {
							lat <- time.Since(time.UnixMilli(e.Value.T))
						}
					}
				}()
				b.Cleanup(func() { pc.AsyncClose() })
			}

			sink, err := NewSink(k.client(b, k.config(b, WithBatch(0, 0, 0))), pxCodec, WithTopic(in))
			require.NoError(b, err, "NewSink")
			tick := time.NewTicker(time.Millisecond)
			sent := 0
			for start := time.Now(); time.Since(start) < seconds*time.Second; {
				<-tick.C
				for range rate / 1000 {
					now := time.Now().UnixMilli()
					e := stream.Event[px]{Key: fmt.Sprint(sent % 64), Time: stream.Time(now), Value: px{T: now, P: 1}}
					require.NoError(b, sink.Write(context.Background(), e), "Write")
					sent++
				}
			}
			tick.Stop()
			require.NoError(b, sink.Close(context.Background()), "close sink")
			// Read until no result came for a second: the records of the
			// last millisecond of each partition wait for a later one.
			var got []time.Duration
		read:
			for {
				select {
				case d := <-lat:
					got = append(got, d)
				case <-time.After(time.Second):
					break read
				}
			}
			require.NoError(b, run.stop(), "Run")
			require.Greater(b, len(got), sent/2, "results read")
			slices.Sort(got)
			b.ReportMetric(float64(got[len(got)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(got[len(got)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(len(got)), "results")
			b.ReportMetric(float64(sent), "sent")
		}
	})
}

// keyFor returns a key that the murmur2 partitioner puts in partition p of n.
func keyFor(tb testing.TB, topic string, p, n int32) string {
	part := sarama.NewMurmur2Partitioner(topic)
	for i := 0; ; i++ {
		k := fmt.Sprintf("sentinel-%d", i)
		got, err := part.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(k)}, n)
		require.NoError(tb, err, "partition")
		if got == p {
			return k
		}
	}
}
