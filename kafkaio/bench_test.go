package kafkaio

import (
	"context"
	"fmt"
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
							continue // a linger only delays Run's flushes
						}
						label += fmt.Sprintf("/flush=%d", every)
					}
					b.Run(label, func(b *testing.B) {
						topic := k.topic(b, 6, nil)
						cfg := k.config(b, WithCompression(comp.codec), batch.opt)
						sink, err := NewSink(k.client(b, cfg), Raw{}, WithTopic(topic))
						require.NoError(b, err, "NewSink")
						defer sink.Close()
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

// BenchmarkConsume reads records of about 100 bytes through a Source's Poll
// (decoding with Raw). One iteration is a new consumer group that reads a
// backlog of 200,000 records from the oldest offset; the measured time
// includes joining the group, not creating and closing the Source.
func BenchmarkConsume(b *testing.B) {
	const backlog = 200_000
	vals := payloads(4096)
	benchBackends(b, func(b *testing.B, k *cluster) {
		for _, comp := range benchCompressions {
			b.Run(comp.name, func(b *testing.B) {
				topic := k.topic(b, 6, nil)
				pcfg := k.config(b, WithCompression(comp.codec), WithBatch(1<<20, 0, 5*time.Millisecond))
				sink, err := NewSink(k.client(b, pcfg), Raw{}, WithTopic(topic))
				require.NoError(b, err, "NewSink")
				ctx := context.Background()
				for i := range backlog {
					if err := sink.Write(ctx, stream.Event[[]byte]{Key: fmt.Sprint(i % 64), Time: stream.Time(i), Value: vals[i%len(vals)]}); err != nil {
						b.Fatal(err)
					}
				}
				require.NoError(b, sink.Close(), "produce the backlog")

				buf := make([]stream.Record[[]byte], 512)
				var records, bytes int
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					src, err := NewSource(k.client(b, nil), name(b, "group"), []string{topic}, Raw{})
					require.NoError(b, err, "NewSource")
					b.StartTimer()
					for got := 0; got < backlog; {
						n, err := src.Poll(ctx, buf)
						if err != nil {
							b.Fatal(err)
						}
						for _, r := range buf[:n] {
							bytes += len(r.Event.Value)
						}
						got += n
						clear(buf[:n])
					}
					records += backlog
					b.StopTimer()
					require.NoError(b, src.Close(), "Close")
					b.StartTimer()
				}
				el := b.Elapsed().Seconds()
				b.ReportMetric(float64(records)/el, "records/s")
				b.ReportMetric(float64(bytes)/el/1e6, "MB/s")
			})
		}
	})
}

// BenchmarkPipeline runs a backlog of 200,000 records of about 100 bytes
// through Source -> stream.Run (identity operator, lateness 0) -> Sink, as a
// pipeline stage catching up does. One iteration is a new consumer group; it
// ends when the Sink has every result acknowledged (each partition ends with a
// record far in the future, which moves the watermark past the backlog). Run
// flushes the Sink and checkpoints the Source after every polled batch (512
// records). With several partitions, their records reach the Sequencer
// interleaved by fetch, far out of time order.
func BenchmarkPipeline(b *testing.B) {
	const backlog = 200_000
	vals := payloads(4096)
	benchBackends(b, func(b *testing.B, k *cluster) {
		for _, parts := range []int32{1, 6} {
			b.Run(fmt.Sprintf("partitions=%d", parts), func(b *testing.B) {
				in, out := k.topic(b, parts, nil), k.topic(b, parts, nil)
				sink, err := NewSink(k.client(b, k.config(b, WithBatch(1<<20, 0, 5*time.Millisecond))), Raw{}, WithTopic(in))
				require.NoError(b, err, "NewSink")
				ctx := context.Background()
				for i := range backlog {
					if err := sink.Write(ctx, stream.Event[[]byte]{Key: fmt.Sprint(i % 64), Time: stream.Time(i), Value: vals[i%len(vals)]}); err != nil {
						b.Fatal(err)
					}
				}
				for p := range parts {
					e := stream.Event[[]byte]{Key: keyFor(b, in, p, parts), Time: backlog + 1_000_000, Value: vals[0]}
					require.NoError(b, sink.Write(ctx, e), "sentinel")
				}
				require.NoError(b, sink.Close(), "produce the backlog")

				var records int
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					src, err := NewSource(k.client(b, nil), name(b, "group"), []string{in}, Raw{})
					require.NoError(b, err, "NewSource")
					dst, err := NewSink(k.client(b, nil), Raw{}, WithTopic(out))
					require.NoError(b, err, "NewSink")
					b.StartTimer()
					p := startRun(b, src, dst, stream.WithLateness(0))
					for dst.Stats().Acked < backlog {
						time.Sleep(time.Millisecond)
					}
					records += backlog
					b.StopTimer()
					require.NoError(b, p.stop(), "Run")
					require.NoError(b, src.Close(), "close source")
					require.NoError(b, dst.Close(), "close sink")
					b.StartTimer()
				}
				b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
			})
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
