package batchtxn

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/kafkatest"
)

// benchBackends runs f against kfake and, when TIDEMARK_KAFKA_BROKERS is
// set, the real broker.
func benchBackends(b *testing.B, f func(b *testing.B, addrs []string)) {
	b.Run("kfake", func(b *testing.B) { f(b, kafkatest.New(b).Addrs()) })
	b.Run("kafka", func(b *testing.B) {
		v := os.Getenv("TIDEMARK_KAFKA_BROKERS")
		if v == "" {
			b.Skip("TIDEMARK_KAFKA_BROKERS not set: start one with scripts/kafka/broker.sh start")
		}
		f(b, strings.Split(v, ","))
	})
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTxnProduce writes records of 480 bytes (a btc-price-moving
// record's size) with 16-byte keys to four partitions, in transactions of
// 5,000 records, through sarama's transactional AsyncProducer as the Stage
// uses it (kafkaio.NewConfig's settings: idempotent, acks from all,
// successes returned) and through this package's Producer (flushed every 1,000
// records). One op is one record. cpu-µs/record is this process's CPU:
// on the real broker (TIDEMARK_KAFKA_BROKERS) the client's alone, on kfake
// the in-process broker's too.
//
//	TIDEMARK_KAFKA_BROKERS=127.0.0.1:29092 go test -run '^$' -bench TxnProduce -benchtime 200000x ./kafkaio/internal/batchtxn/
func BenchmarkTxnProduce(b *testing.B) {
	const (
		partitions = 4
		perTxn     = 5000
		perFlush   = 1000
	)
	value := make([]byte, 480)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	key := []byte("BTCUSDT-00000000")
	base := time.UnixMilli(1_746_677_558_352)

	report := func(b *testing.B, start time.Time, cpu0 time.Duration) {
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/record")
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
	}

	for _, which := range []string{"sarama", "batchtxn"} {
		b.Run(which, func(b *testing.B) {
			benchBackends(b, func(b *testing.B, addrs []string) {
				client := newClient(b, addrs)
				tp := topic(b, client, partitions)
				id := fmt.Sprintf("bench-%s-%d", which, time.Now().UnixNano())
				b.ResetTimer()
				start, cpu0 := time.Now(), cpuTime()
				switch which {
				case "sarama":
					cfg := clientConfig()
					cfg.Producer.Transaction.ID = id
					cfg.Producer.Partitioner = sarama.NewManualPartitioner
					c, err := sarama.NewClient(addrs, cfg)
					require.NoError(b, err)
					defer c.Close()
					ap, err := sarama.NewAsyncProducerFromClient(c)
					require.NoError(b, err)
					done := make(chan struct{})
					go func() {
						defer close(done)
						succ, errs := ap.Successes(), ap.Errors()
						for succ != nil || errs != nil {
							select {
							case _, ok := <-succ:
								if !ok {
									succ = nil
								}
							case e, ok := <-errs:
								if !ok {
									errs = nil
								} else {
									b.Error(e)
								}
							}
						}
					}()
					require.NoError(b, ap.BeginTxn())
					for i := range b.N {
						ap.Input() <- &sarama.ProducerMessage{Topic: tp, Partition: int32(i % partitions), Key: sarama.ByteEncoder(key),
							Value: sarama.ByteEncoder(value), Timestamp: base.Add(time.Duration(i) * time.Millisecond)}
						if (i+1)%perTxn == 0 || i == b.N-1 {
							require.NoError(b, ap.CommitTxn())
							require.NoError(b, ap.BeginTxn())
						}
					}
					report(b, start, cpu0)
					ap.AsyncClose()
					<-done
				case "batchtxn":
					p, err := New(client, Config{TransactionalID: id})
					require.NoError(b, err)
					r := Record{Topic: tp, Key: key, Value: value}
					for i := range b.N {
						r.Partition, r.Time = int32(i%partitions), base.Add(time.Duration(i)*time.Millisecond)
						require.NoError(b, p.Add(&r))
						switch {
						case (i+1)%perTxn == 0 || i == b.N-1:
							require.NoError(b, p.Commit())
						case (i+1)%perFlush == 0:
							require.NoError(b, p.Send())
						}
					}
					report(b, start, cpu0)
				}
			})
		})
	}
}
