package main

import (
	"bytes"
	"cmp"
	"context"
	"math/big"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/mongoio"
	"github.com/tidemark-go/tidemark/mongotest"
)

// TestOHLC runs the program against an in-process Kafka ("kfake") and,
// when TIDEMARK_KAFKA_BROKERS names one, a real broker ("kafka"), with an
// in-process MongoDB-compatible store, and checks the bars topic and the
// bars collection against bars computed here from the trades.
func TestOHLC(t *testing.T) {
	for _, backend := range []string{"kfake", "kafka"} {
		t.Run(backend, func(t *testing.T) {
			brokers := brokersFor(t, backend)
			store := mongotest.New(t)
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			n := newNames()
			var out bytes.Buffer
			require.NoError(t, run(ctx, brokers, store.URI(), n, &out), "run")
			t.Logf("the program printed:\n%s", &out)
			checkBars(t, brokers, connect(t, store.URI()).Database(n.db), n)
		})
	}
}

// TestOHLCCrash crashes each stage in the middle of its input, at its
// worst moment, and starts it again as a restarted process would: the bars
// stage just before a commit, with bars in its open transaction; the load
// stage with bars upserted into MongoDB whose offsets are not committed.
// The bars topic and the documents are still exact: none lost, none twice.
func TestOHLCCrash(t *testing.T) {
	for _, backend := range []string{"kfake", "kafka"} {
		t.Run(backend, func(t *testing.T) {
			brokers := brokersFor(t, backend)
			addrs := strings.Split(brokers, ",")
			db := connect(t, mongotest.New(t).URI()).Database("ohlc")
			n := newNames()
			require.NoError(t, createTopics(t.Context(), addrs, n), "topics")
			require.NoError(t, produce(t.Context(), addrs, n.trades, trades()), "produce")
			want := wantBars(trades(), 3)

			// A commit every 3,000 trades: between the first and the
			// second one every partition crosses a minute, so bars are in
			// the open transaction when the stage crashes.
			bars := func(opts ...kafkaio.StageOption) (*kafkaio.Stage, error) { return newBarsStage(addrs, n, opts...) }
			crashed := crash(t, bars, 2, kafkaio.WithCommitRecords(3000))
			finished := finish(t, bars)
			assert.Greater(t, crashed.Emitted+finished.Emitted, uint64(len(want)), "bars of the aborted transaction written again")

			// Each bar upserted as it comes (a batch of 1), before the
			// commit that flushes the sink and commits its offset.
			load := func(opts ...kafkaio.StageOption) (*kafkaio.Stage, error) {
				sink, err := newBarSink(db, mongoio.WithBatchSize(1))
				require.NoError(t, err, "sink")
				return newLoadStage(addrs, n, sink, opts...)
			}
			crashed = crash(t, load, 2, kafkaio.WithCommitRecords(4))
			docs, err := db.Collection("bars").CountDocuments(t.Context(), bson.D{})
			require.NoError(t, err, "count")
			assert.Equal(t, int64(crashed.Emitted), docs, "the bars written before the crash are in MongoDB")
			finished = finish(t, load)
			assert.Positive(t, finished.Records, "bars read, and written, again")
			checkBars(t, brokers, db, n)
		})
	}
}

// crash runs a stage that crashes just before its commit-th commit, with
// opts, and returns its counts then.
func crash(t *testing.T, newStage func(...kafkaio.StageOption) (*kafkaio.Stage, error), commit int, opts ...kafkaio.StageOption) kafkaio.StageStats {
	faults := &kafkaio.Faults{}
	faults.CrashAtCommit(commit)
	// A static member: its next incarnation takes its partitions back at
	// once and fences the open transaction the crashed one left. Commits by
	// records, not by time (at most every 5 s).
	s, err := newStage(append(opts, kafkaio.WithFaults(faults), kafkaio.WithInstanceID("one"), kafkaio.WithCommitInterval(5*time.Second))...)
	require.NoError(t, err, "stage")
	require.NoError(t, s.Start(t.Context()), "start")
	waitCrash(t, s)
	st := s.Stats()
	t.Logf("crashed after %d records and %d results", st.Records, st.Emitted)
	return st
}

// waitCrash waits until the stage has crashed.
func waitCrash(t *testing.T, s *kafkaio.Stage) {
	crashed := make(chan error, 1)
	go func() { crashed <- s.Wait() }()
	select {
	case err := <-crashed:
		require.ErrorIs(t, err, kafkaio.ErrCrashed, "crashed")
	case <-time.After(time.Minute):
		t.Fatal("the stage did not crash: it made fewer commits than the crash waits for")
	}
}

// finish runs a stage until it has caught up and returns its counts.
func finish(t *testing.T, newStage func(...kafkaio.StageOption) (*kafkaio.Stage, error)) kafkaio.StageStats {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	s, err := newStage(kafkaio.WithInstanceID("one"))
	require.NoError(t, err, "stage")
	require.NoError(t, s.Start(ctx), "start")
	require.NoError(t, s.WaitCaughtUp(ctx), "caught up")
	require.NoError(t, s.Stop(), "stop")
	st := s.Stats()
	t.Logf("then %d records (%d replayed to rebuild the state) and %d results", st.Records, st.Replayed, st.Emitted)
	return st
}

// checkBars compares the bars topic, read back read_committed, and the bars
// collection with the bars computed from the trades.
func checkBars(t *testing.T, brokers string, db *mongo.Database, n names) {
	want := wantBars(trades(), 3)
	var topic []Bar
	for _, m := range readCommitted(t, brokers, n.bars, len(want)) {
		e, err := kafkaio.JSON[Bar]{}.Decode(m.Key, m.Value, 0)
		require.NoError(t, err, "decode %s", m.Value)
		topic = append(topic, e.Value)
	}
	sameBars(t, want, topic, "topic "+n.bars)

	cur, err := db.Collection("bars").Find(t.Context(), bson.D{})
	require.NoError(t, err, "find")
	var docs []Bar
	require.NoError(t, cur.All(t.Context(), &docs), "documents")
	for _, d := range docs {
		assert.Equal(t, d.Symbol+"|"+d.Start.UTC().Format(time.RFC3339), d.ID, "_id")
	}
	sameBars(t, want, docs, "collection bars")
}

// sameBars checks got against want, bar by bar.
func sameBars(t *testing.T, want, got []Bar, what string) {
	order := func(a, b Bar) int { return cmp.Or(strings.Compare(a.Symbol, b.Symbol), a.Start.Compare(b.Start)) }
	slices.SortFunc(got, order)
	require.Len(t, got, len(want), "%s: bars", what)
	for i, g := range got {
		w := want[i]
		require.Equal(t, w.Symbol, g.Symbol, "%s: bar %d", what, i)
		require.True(t, w.Start.Equal(g.Start), "%s: bar %d starts at %s, want %s", what, i, g.Start, w.Start)
		assert.Equal(t, []any{w.Open, w.High, w.Low, w.Close, w.Trades}, []any{g.Open, g.High, g.Low, g.Close, g.Trades}, "%s: %s %s", what, g.Symbol, g.Start)
		assert.InEpsilon(t, w.Volume, g.Volume, 1e-12, "%s: %s %s volume", what, g.Symbol, g.Start)
		assert.InEpsilon(t, w.VWAP, g.VWAP, 1e-12, "%s: %s %s VWAP", what, g.Symbol, g.Start)
	}
	t.Logf("%s: %d bars exact", what, len(got))
}

// wantBars computes the bars by brute force: the trades, each id once,
// grouped by symbol and minute and ordered by (time, id), with exact sums
// (math/big), for the minutes that are final: those that end at or before
// their partition's watermark, its latest trade time less the lateness.
func wantBars(trades []Trade, partitions int32) []Bar {
	type minute struct {
		symbol string
		start  time.Time
	}
	latest := map[int32]time.Time{}
	seen := map[Trade]bool{}
	byMinute := map[minute][]Trade{}
	for _, tr := range trades {
		if p := kafkaio.Partition([]byte(tr.Symbol), partitions); tr.Time.After(latest[p]) {
			latest[p] = tr.Time
		}
		if !seen[tr] {
			seen[tr] = true
			m := minute{tr.Symbol, tr.Time.Truncate(time.Minute)}
			byMinute[m] = append(byMinute[m], tr)
		}
	}
	var out []Bar
	for m, ts := range byMinute {
		if m.start.Add(time.Minute).After(latest[kafkaio.Partition([]byte(m.symbol), partitions)].Add(-lateness)) {
			continue // not final
		}
		slices.SortFunc(ts, func(a, b Trade) int { return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.ID, b.ID)) })
		b := Bar{Symbol: m.symbol, Start: m.start, Open: ts[0].Price, High: ts[0].Price, Low: ts[0].Price, Close: ts[len(ts)-1].Price, Trades: int64(len(ts))}
		volume, notional := new(big.Rat), new(big.Rat)
		for _, tr := range ts {
			b.High, b.Low = max(b.High, tr.Price), min(b.Low, tr.Price)
			q := new(big.Rat).SetFloat64(tr.Qty)
			volume.Add(volume, q)
			notional.Add(notional, q.Mul(q, new(big.Rat).SetFloat64(tr.Price)))
		}
		b.Volume, _ = volume.Float64()
		b.VWAP, _ = notional.Quo(notional, volume).Float64()
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Bar) int { return cmp.Or(strings.Compare(a.Symbol, b.Symbol), a.Start.Compare(b.Start)) })
	return out
}

func connect(t *testing.T, uri string) *mongo.Client {
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	require.NoError(t, err, "connect to %s", uri)
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client
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
