package main

import (
	"bytes"
	"context"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
)

// TestWindowedStage runs the program against an in-process Kafka ("kfake")
// and, when TIDEMARK_KAFKA_BROKERS names one, a real broker ("kafka"), and
// compares the averages it wrote, read back read_committed, with averages
// computed here by brute force over the prices.
func TestWindowedStage(t *testing.T) {
	for _, backend := range []string{"kfake", "kafka"} {
		t.Run(backend, func(t *testing.T) {
			brokers := brokersFor(t, backend)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			tp := newTopics()
			var out bytes.Buffer
			require.NoError(t, run(ctx, brokers, tp, &out), "run")
			t.Logf("the program printed:\n%s", &out)

			want := wantAverages(prices(), 3)
			recs := readCommitted(t, brokers, tp.averages, len(want))
			for _, m := range recs {
				e, err := kafkaio.JSON[Average]{}.Decode(m.Key, m.Value, 0)
				require.NoError(t, err, "decode %s", m.Value)
				a := e.Value
				w, ok := want[minute{a.Symbol, a.Start}]
				require.True(t, ok, "an average that should not be there (or twice): %s", m.Value)
				delete(want, minute{a.Symbol, a.Start})
				assert.Equal(t, a.Symbol, string(m.Key), "the record key is the symbol")
				assert.Equal(t, a.Start.Add(time.Minute), a.End, "one minute")
				assert.Equal(t, w.n, a.Count, "%s %s: count", a.Symbol, a.Start)
				assert.InEpsilon(t, w.mean, a.Mean, 1e-12, "%s %s: mean", a.Symbol, a.Start)
				assert.Contains(t, out.String(), a.Symbol+" "+a.Start.Format("15:04"), "printed")
			}
			assert.Empty(t, want, "averages missing")
			t.Logf("%d averages exact", len(recs))
		})
	}
}

type minute struct {
	symbol string
	start  time.Time
}

type average struct {
	n    int64
	mean float64
}

// wantAverages computes the averages the stage must write: the exact mean
// (math/big) of each symbol's prices in each minute, for the minutes that
// are final, those that end at or before their partition's watermark: the
// partition's latest price time less the lateness.
func wantAverages(ps []Price, partitions int32) map[minute]average {
	latest := map[int32]time.Time{}
	for _, p := range ps {
		part := kafkaio.Partition([]byte(p.Symbol), partitions)
		if p.Time.After(latest[part]) {
			latest[part] = p.Time
		}
	}
	sums := map[minute]*big.Rat{}
	counts := map[minute]int64{}
	for _, p := range ps {
		m := minute{p.Symbol, p.Time.Truncate(time.Minute)}
		if sums[m] == nil {
			sums[m] = new(big.Rat)
		}
		sums[m].Add(sums[m], new(big.Rat).SetFloat64(p.Price))
		counts[m]++
	}
	out := map[minute]average{}
	for m, sum := range sums {
		watermark := latest[kafkaio.Partition([]byte(m.symbol), partitions)].Add(-lateness)
		if !m.start.Add(time.Minute).After(watermark) {
			mean, _ := new(big.Rat).Quo(sum, new(big.Rat).SetInt64(counts[m])).Float64()
			out[m] = average{counts[m], mean}
		}
	}
	return out
}

// brokersFor returns the brokers of a subtest: an in-process cluster
// (kafkatest) for "kfake", the broker of TIDEMARK_KAFKA_BROKERS for "kafka".
func brokersFor(t *testing.T, backend string) string {
	if backend == "kfake" {
		return strings.Join(kafkatest.New(t).Addrs(), ",")
	}
	brokers := os.Getenv("TIDEMARK_KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("TIDEMARK_KAFKA_BROKERS is not set: start a broker with scripts/kafka/broker.sh start")
	}
	return brokers
}

// readCommitted reads topic from its start as a read_committed consumer:
// n records, and then none for two seconds.
func readCommitted(t *testing.T, brokers, topic string, n int) []*sarama.ConsumerMessage {
	f, err := kafkaio.NewFollower(nil, []string{topic}, kafkaio.FromOldest(), kafkaio.WithBrokers(strings.Split(brokers, ","), nil))
	require.NoError(t, err, "follower")
	defer f.Close()
	var out []*sarama.ConsumerMessage
	buf := make([]*sarama.ConsumerMessage, 100)
	for len(out) < n {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		k, err := f.Poll(ctx, buf)
		cancel()
		require.NoError(t, err, "%s: %d records of %d", topic, len(out), n)
		out = append(out, buf[:k]...)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	k, err := f.Poll(ctx, buf)
	require.ErrorIs(t, err, context.DeadlineExceeded, "%s: more than %d records: %d more", topic, n, k)
	return out
}
