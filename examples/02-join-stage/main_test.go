package main

import (
	"bytes"
	"context"
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

// TestJoinStage runs the program against an in-process Kafka ("kfake") and,
// when TIDEMARK_KAFKA_BROKERS names one, a real broker ("kafka"), and
// compares the quotes it wrote, read back read_committed, with the join
// computed here over the two feeds: a quote for every update that has a bid
// and an ask, once final.
func TestJoinStage(t *testing.T) {
	for _, backend := range []string{"kfake", "kafka"} {
		t.Run(backend, func(t *testing.T) {
			brokers := brokersFor(t, backend)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			tp := newTopics()
			var out bytes.Buffer
			require.NoError(t, run(ctx, brokers, tp, &out), "run")
			t.Logf("the program printed:\n%s", &out)

			want := wantQuotes(book())
			recs := readCommitted(t, brokers, tp.quotes, len(want))
			for _, m := range recs {
				e, err := kafkaio.JSON[Quote]{}.Decode(m.Key, m.Value, 0)
				require.NoError(t, err, "decode %s", m.Value)
				q := e.Value
				id := update{q.Symbol, q.Time}
				w, ok := want[id]
				require.True(t, ok, "a quote that should not be there (or twice): %s", m.Value)
				delete(want, id)
				assert.Equal(t, q.Symbol, string(m.Key), "the record key is the symbol")
				assert.Equal(t, w, q, "quote of %s at %s", q.Symbol, q.Time)
			}
			assert.Empty(t, want, "quotes missing")
			t.Logf("%d quotes exact", len(recs))
		})
	}
}

type update struct {
	symbol string
	time   time.Time
}

// wantQuotes joins the feeds by brute force: a quote for each (symbol,
// time) with both a bid and an ask, if it is final: below the watermark of
// the bids and of the asks of its partition (each one's latest time there
// less the lateness).
func wantQuotes(bids, asks []Level) map[update]Quote {
	const partitions = 3
	watermarks := func(levels []Level) map[int32]time.Time {
		wm := map[int32]time.Time{}
		for _, l := range levels {
			p := kafkaio.Partition([]byte(l.Symbol), partitions)
			if l.Time.Add(-lateness).After(wm[p]) {
				wm[p] = l.Time.Add(-lateness)
			}
		}
		return wm
	}
	bidWM, askWM := watermarks(bids), watermarks(asks)
	out := map[update]Quote{}
	for _, b := range bids {
		for _, a := range asks {
			p := kafkaio.Partition([]byte(b.Symbol), partitions)
			if a.Symbol == b.Symbol && a.Time.Equal(b.Time) && b.Time.Before(bidWM[p]) && b.Time.Before(askWM[p]) {
				out[update{b.Symbol, b.Time}] = Quote{Symbol: b.Symbol, Time: b.Time, Bid: b.Price, Ask: a.Price,
					Mid: (b.Price + a.Price) / 2, Spread: a.Price - b.Price}
			}
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
