package stream_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/streamtest"
	"github.com/tidemark-go/tidemark/window"
)

// trade is a value with a price and a quantity, as a user's pipeline reads.
type trade struct {
	Price float64
	Qty   float64
}

func ev[V any](key string, t stream.Time, v V) stream.Event[V] {
	return stream.Event[V]{Key: key, Time: t, Value: v}
}

// feed processes evs through op, advances to the end, and returns what op emitted.
func feed[In, Out any](op stream.Operator[In, Out], evs []stream.Event[In]) []stream.Event[Out] {
	var rec streamtest.Recorder[Out]
	for _, e := range evs {
		op.Process(e, &rec)
	}
	op.Advance(stream.MaxTime, &rec)
	return rec.Events()
}

func TestMap(t *testing.T) {
	notional := func(e stream.Event[trade]) float64 { return e.Value.Price * e.Value.Qty }
	tests := []struct {
		name string
		in   []stream.Event[trade]
		want []stream.Event[float64]
	}{
		{name: "nothing"},
		{name: "one", in: []stream.Event[trade]{ev("BTCUSDT", 1000, trade{100.5, 2})},
			want: []stream.Event[float64]{ev("BTCUSDT", 1000, 201.0)}},
		{name: "keys and times kept", in: []stream.Event[trade]{
			ev("BTCUSDT", 1000, trade{100, 0.5}), ev("ETHUSDT", 1000, trade{10, 3}), ev("BTCUSDT", -7, trade{1, 1})},
			want: []stream.Event[float64]{ev("BTCUSDT", 1000, 50.0), ev("ETHUSDT", 1000, 30.0), ev("BTCUSDT", -7, 1.0)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op := stream.Map(notional)
			assert.Equal(t, stream.Bounds{}, op.Bounds(), "zero bounds")
			assert.Equal(t, tc.want, feed(op, tc.in), "one result per event, with its key and time")
		})
	}
}

func TestMapSeesTheWholeEvent(t *testing.T) {
	op := stream.Map(func(e stream.Event[int]) string { return fmt.Sprintf("%s@%d=%d", e.Key, e.Time, e.Value) })
	got := feed(op, []stream.Event[int]{ev("a", 5, 1), ev("b", 6, 2)})
	assert.Equal(t, []stream.Event[string]{ev("a", 5, "a@5=1"), ev("b", 6, "b@6=2")}, got, "key, time and value reach f")
}

func TestFilter(t *testing.T) {
	in := []stream.Event[int]{ev("a", 1, 1), ev("b", 1, 2), ev("a", 2, 3), ev("b", 3, 4), ev("a", 4, 6)}
	tests := []struct {
		name string
		keep func(stream.Event[int]) bool
		want []stream.Event[int]
	}{
		{"all", func(stream.Event[int]) bool { return true }, in},
		{"none", func(stream.Event[int]) bool { return false }, nil},
		{"by value", func(e stream.Event[int]) bool { return e.Value%2 == 0 }, []stream.Event[int]{ev("b", 1, 2), ev("b", 3, 4), ev("a", 4, 6)}},
		{"by key", func(e stream.Event[int]) bool { return e.Key == "a" }, []stream.Event[int]{ev("a", 1, 1), ev("a", 2, 3), ev("a", 4, 6)}},
		{"by time", func(e stream.Event[int]) bool { return e.Time >= 3 }, []stream.Event[int]{ev("b", 3, 4), ev("a", 4, 6)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op := stream.Filter(tc.keep)
			assert.Equal(t, stream.Bounds{}, op.Bounds(), "zero bounds")
			assert.Equal(t, tc.want, feed(op, in), "the events kept, unchanged and in order")
		})
	}
}

func TestFlatMap(t *testing.T) {
	in := []stream.Event[trade]{ev("BTCUSDT", 1000, trade{100, 2}), ev("ETHUSDT", 1000, trade{10, 0}), ev("BTCUSDT", 2000, trade{101, 1})}
	tests := []struct {
		name string
		f    func(stream.Event[trade], *stream.Collector[float64])
		want []stream.Event[float64]
	}{
		{"nothing", func(stream.Event[trade], *stream.Collector[float64]) {}, nil},
		{"one per event, its key", func(e stream.Event[trade], c *stream.Collector[float64]) { c.Emit(e.Value.Price) },
			[]stream.Event[float64]{ev("BTCUSDT", 1000, 100.0), ev("ETHUSDT", 1000, 10.0), ev("BTCUSDT", 2000, 101.0)}},
		{"zero or one: trades with a quantity", func(e stream.Event[trade], c *stream.Collector[float64]) {
			if e.Value.Qty > 0 {
				c.Emit(e.Value.Qty)
			}
		}, []stream.Event[float64]{ev("BTCUSDT", 1000, 2.0), ev("BTCUSDT", 2000, 1.0)}},
		{"two per event, under derived keys, in order", func(e stream.Event[trade], c *stream.Collector[float64]) {
			c.EmitKey(e.Key+"/price", e.Value.Price)
			c.EmitKey(e.Key+"/qty", e.Value.Qty)
		}, []stream.Event[float64]{
			ev("BTCUSDT/price", 1000, 100.0), ev("BTCUSDT/qty", 1000, 2.0),
			ev("ETHUSDT/price", 1000, 10.0), ev("ETHUSDT/qty", 1000, 0.0),
			ev("BTCUSDT/price", 2000, 101.0), ev("BTCUSDT/qty", 2000, 1.0)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op := stream.FlatMap(tc.f)
			assert.Equal(t, stream.Bounds{}, op.Bounds(), "zero bounds")
			assert.Equal(t, tc.want, feed(op, in), "the values collected, at their event's time")
		})
	}
}

func TestFlatMapCollectorOnlyDuringTheCall(t *testing.T) {
	var kept *stream.Collector[int]
	op := stream.FlatMap(func(e stream.Event[int], c *stream.Collector[int]) { kept = c; c.Emit(e.Value) })
	got := feed(op, []stream.Event[int]{ev("a", 1, 1)})
	assert.Equal(t, []stream.Event[int]{ev("a", 1, 1)}, got, "emitted during the call")
	require.NotNil(t, kept, "the collector was kept")
	assert.PanicsWithValue(t, "stream: FlatMap's Collector used after its call returned", func() { kept.Emit(2) },
		"a collector used after its call cannot emit at a time that is not its event's")
}

// testSeeds returns fixed seeds and one more, from TIDEMARK_SEED or the clock,
// which it logs.
func testSeeds(t *testing.T) []uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TIDEMARK_SEED"); s != "" {
		_, err := fmt.Sscan(s, &seed)
		require.NoError(t, err, "TIDEMARK_SEED")
	}
	t.Logf("seeds 1, 2 and %d (TIDEMARK_SEED=%d to repeat)", seed, seed)
	return []uint64{1, 2, seed}
}

// randomTrades returns trades of a few keys in (Time, Key) order, with
// distinct identities and repeated times across keys.
func randomTrades(r *rand.Rand, n int) []stream.Event[trade] {
	keys := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}
	seen := map[string]bool{}
	var evs []stream.Event[trade]
	tm := stream.Time(1_746_677_520_000)
	for len(evs) < n {
		tm += stream.Time(r.IntN(40))
		k := keys[r.IntN(len(keys))]
		if id := fmt.Sprint(k, tm); !seen[id] {
			seen[id] = true
			evs = append(evs, ev(k, tm, trade{Price: float64(9_900_000+r.IntN(2000)) / 100, Qty: float64(r.IntN(9)) / 4}))
		}
	}
	slices.SortFunc(evs, func(a, b stream.Event[trade]) int {
		return cmp.Or(cmp.Compare(a.Time, b.Time), strings.Compare(a.Key, b.Key))
	})
	return evs
}

// TestStatelessWithRun runs Filter, Map and FlatMap, chained, with Run over
// two partitions that arrive shuffled within the lateness, and compares the
// results with the functions applied one by one to the events in (Time, Key)
// order.
func TestStatelessWithRun(t *testing.T) {
	keep := func(e stream.Event[trade]) bool { return e.Value.Qty > 0 }
	notional := func(e stream.Event[trade]) trade {
		return trade{Price: e.Value.Price, Qty: e.Value.Price * e.Value.Qty}
	}
	split := func(e stream.Event[trade], c *stream.Collector[float64]) {
		c.EmitKey(e.Key+"/price", e.Value.Price)
		c.EmitKey(e.Key+"/notional", e.Value.Qty)
	}
	for _, seed := range testSeeds(t) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 11))
			evs := randomTrades(r, 3000)
			var want []stream.Event[float64]
			for _, e := range evs {
				if keep(e) {
					v := notional(e)
					want = append(want, ev(e.Key+"/price", e.Time, v.Price), ev(e.Key+"/notional", e.Time, v.Qty))
				}
			}
			const lateness = 500 * time.Millisecond
			src := &streamtest.SliceSource[trade]{Batch: 1 + r.IntN(64)}
			for _, e := range streamtest.Shuffle(r, evs, lateness) {
				src.Records = append(src.Records, stream.Record[trade]{Partition: int(e.Key[0]) % 2, Event: e})
			}
			op := stream.Chain(stream.Chain(stream.Filter(keep), stream.Map(notional)), stream.FlatMap(split))
			assert.Equal(t, stream.Bounds{}, op.Bounds(), "a chain of stateless operators has zero bounds")
			var sink streamtest.Recorder[float64]
			st, err := stream.Run(context.Background(), src, op, &sink, stream.WithLateness(lateness))
			require.NoError(t, err, "Run")
			assert.Equal(t, stream.Stats{Accepted: uint64(len(evs))}, st, "every event accepted")
			assert.Equal(t, want, sink.Events(), "the functions applied to each event, in (Time, Key) order")
			require.NotEmpty(t, src.Checkpoints, "checkpoints")
			assert.Equal(t, stream.MaxTime, src.Checkpoints[len(src.Checkpoints)-1], "done up to the end")
		})
	}
}

// TestStatelessWithDriverAndWindow feeds a Driver with Map chained into
// one-minute tumbling windows, and compares each window's sum of notionals
// with a brute-force sum over the events of its minute.
func TestStatelessWithDriverAndWindow(t *testing.T) {
	for _, seed := range testSeeds(t) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 12))
			evs := randomTrades(r, 4000)
			type minute struct {
				key   string
				start stream.Time
			}
			sums := map[minute]float64{}
			counts := map[minute]int64{}
			for _, e := range evs {
				m := minute{e.Key, e.Time - e.Time%60_000}
				sums[m] += e.Value.Price * e.Value.Qty
				counts[m]++
			}
			sum, err := window.NewTumbling(time.Minute, window.FactoryOf(window.NewSum))
			require.NoError(t, err, "NewTumbling")
			op := stream.Chain(stream.Map(func(e stream.Event[trade]) float64 { return e.Value.Price * e.Value.Qty }), stream.Operator[float64, window.Result[float64]](sum))
			assert.Equal(t, sum.Bounds(), op.Bounds(), "Map adds nothing to the window's bounds")
			var rec streamtest.Recorder[window.Result[float64]]
			d, err := stream.NewDriver(op, &rec, stream.WithLateness(time.Second))
			require.NoError(t, err, "NewDriver")
			for _, e := range streamtest.Shuffle(r, evs, time.Second) {
				require.Equal(t, stream.Accepted, d.Push(0, e, time.Time{}), "push %v", e)
			}
			d.Finish()
			got := rec.Events()
			require.Len(t, got, len(sums), "one result per key and minute with trades")
			for _, g := range got {
				m := minute{g.Key, g.Value.Start}
				assert.Equal(t, counts[m], g.Value.Count, "%v: count", m)
				assert.InDelta(t, sums[m], g.Value.Value, 1e-9*max(1, sums[m]), "%v: sum of price*qty", m)
			}
		})
	}
}

// TestStatelessRecovery checks with streamtest.CheckRecovery that a task
// running stateless operators chained into a trailing window, rebuilt by
// replay after crashes, emits what the uninterrupted task does: their zero
// bounds are right.
func TestStatelessRecovery(t *testing.T) {
	for _, seed := range testSeeds(t) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 13))
			log := streamtest.NewLog[trade]()
			for _, e := range streamtest.Shuffle(r, randomTrades(r, 3000), time.Second) {
				log.Append(e)
			}
			newOp := func() stream.Operator[trade, []window.Statistics] {
				stats, err := window.NewTrailingStatistics([]time.Duration{2 * time.Second, 10 * time.Second})
				require.NoError(t, err, "NewTrailingStatistics")
				pre := stream.Chain(stream.Filter(func(e stream.Event[trade]) bool { return e.Value.Qty > 0 }),
					stream.FlatMap(func(e stream.Event[trade], c *stream.Collector[float64]) {
						c.EmitKey(e.Key+"/price", e.Value.Price)
						c.EmitKey(e.Key+"/qty", e.Value.Qty)
					}))
				return stream.Chain(pre, stream.Operator[float64, []window.Statistics](stats))
			}
			n, crashes := streamtest.CheckRecovery(t, seed, stream.Input[trade]{Lateness: time.Second}, log, newOp)
			assert.Positive(t, n, "results")
			assert.Positive(t, crashes, "crashes")
		})
	}
}

// countSink counts the events it receives.
type countSink[T any] struct{ n int }

func (s *countSink[T]) Emit(stream.Event[T]) { s.n++ }

// benchStateless runs op over trades of six keys one millisecond apart.
func benchStateless[Out any](b *testing.B, op stream.Operator[trade, Out]) {
	keys := [...]string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT"}
	var out countSink[Out]
	tm := stream.Time(1_746_677_558_352)
	b.ReportAllocs()
	for b.Loop() {
		tm++
		op.Process(stream.Event[trade]{Key: keys[tm%6], Time: tm, Value: trade{Price: 99190.48, Qty: float64(tm % 4)}}, &out)
	}
	if out.n == 0 {
		b.Fatal("nothing emitted")
	}
}

func BenchmarkMap(b *testing.B) {
	benchStateless(b, stream.Map(func(e stream.Event[trade]) float64 { return e.Value.Price * e.Value.Qty }))
}

// BenchmarkFilter keeps three trades out of four.
func BenchmarkFilter(b *testing.B) {
	benchStateless(b, stream.Filter(func(e stream.Event[trade]) bool { return e.Value.Qty > 0 }))
}

// BenchmarkFlatMap emits two values per event, under keys of their own (a
// table of them: building a key per event would allocate in the function,
// not in the operator).
func BenchmarkFlatMap(b *testing.B) {
	derived := derivedKeys()
	benchStateless(b, stream.FlatMap(func(e stream.Event[trade], c *stream.Collector[float64]) {
		ks := derived[e.Key]
		c.EmitKey(ks[0], e.Value.Price)
		c.EmitKey(ks[1], e.Value.Qty)
	}))
}

// derivedKeys maps each benchmark key to two keys derived from it.
func derivedKeys() map[string][2]string {
	derived := map[string][2]string{}
	for _, k := range []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT"} {
		derived[k] = [2]string{k + "/price", k + "/qty"}
	}
	return derived
}

// BenchmarkStatelessChain is Filter, Map and FlatMap chained, as one operator.
func BenchmarkStatelessChain(b *testing.B) {
	derived := derivedKeys()
	op := stream.Chain(stream.Chain(
		stream.Filter(func(e stream.Event[trade]) bool { return e.Value.Qty > 0 }),
		stream.Map(func(e stream.Event[trade]) float64 { return e.Value.Price * e.Value.Qty })),
		stream.FlatMap(func(e stream.Event[float64], c *stream.Collector[float64]) {
			c.Emit(e.Value)
			if e.Value > 100_000 {
				c.EmitKey(derived[e.Key][1], e.Value)
			}
		}))
	benchStateless(b, op)
}
