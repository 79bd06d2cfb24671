package window_test

import (
	"cmp"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
)

// Compile-time checks: an add-only aggregate is an Accumulator, and every
// built-in Aggregator is one too.
var (
	_ window.Accumulator[Trade, Bar]       = (*OHLC)(nil)
	_ window.Accumulator[float64, int64]   = (*window.Count[float64])(nil)
	_ window.Accumulator[float64, float64] = (*window.Sum)(nil)
	_ window.Accumulator[float64, float64] = (*window.Mean)(nil)
	_ window.Accumulator[float64, float64] = (*window.Variance)(nil)
	_ window.Accumulator[float64, float64] = (*window.Std)(nil)
	_ window.Accumulator[float64, float64] = (*window.Min)(nil)
	_ window.Accumulator[float64, float64] = (*window.Max)(nil)
	_ window.Accumulator[string, string]   = (*window.First[string])(nil)
	_ window.Accumulator[string, string]   = (*window.Last[string])(nil)
)

// accSeeds returns fixed seeds and one more, from TIDEMARK_SEED or the
// clock, which it logs.
func accSeeds(t *testing.T) []uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TIDEMARK_SEED"); s != "" {
		_, err := fmt.Sscan(s, &seed)
		require.NoError(t, err, "TIDEMARK_SEED")
	}
	t.Logf("seeds 1, 2 and %d (TIDEMARK_SEED=%d to repeat)", seed, seed)
	return []uint64{1, 2, seed}
}

// randomTrades returns trades of nKeys symbols in (Time, Key) order: cent
// prices on a walk, quantities in thousandths, steps around the window size
// and long silences.
func randomTrades(r *rand.Rand, nKeys, n int, size stream.Time) []stream.Event[Trade] {
	last := make([]stream.Time, nKeys)
	cents := make([]int64, nKeys)
	for i := range last {
		last[i] = -3*size - stream.Time(r.IntN(5))
		cents[i] = 9_919_048
	}
	evs := make([]stream.Event[Trade], 0, n)
	for range n {
		k := r.IntN(nKeys)
		switch r.IntN(12) {
		case 0:
			last[k] += size
		case 1:
			last[k] += 10*size + stream.Time(r.IntN(50))
		default:
			last[k] += 1 + stream.Time(r.IntN(int(max(size/3, 2))))
		}
		cents[k] += int64(r.IntN(41)) - 20
		evs = append(evs, stream.Event[Trade]{Key: fmt.Sprintf("SYM%d", k), Time: last[k],
			Value: Trade{Price: float64(cents[k]) / 100, Qty: float64(1+r.IntN(5000)) / 1000}})
	}
	slices.SortFunc(evs, func(a, b stream.Event[Trade]) int {
		return cmp.Or(cmp.Compare(a.Time, b.Time), strings.Compare(a.Key, b.Key))
	})
	return evs
}

// windowID names a window of a key.
type windowID struct {
	key   string
	start stream.Time
}

// bruteWindows assigns every event to every window [s, s+size) that holds it,
// s a multiple of hop, by trying every multiple of hop from the event's time
// down; the values of a window are in time order.
func bruteWindows[V any](evs []stream.Event[V], size, hop stream.Time) map[windowID][]V {
	out := map[windowID][]V{}
	for _, e := range evs {
		s := hop * (e.Time / hop)
		if s > e.Time {
			s -= hop
		}
		for ; s+size > e.Time; s -= hop {
			id := windowID{e.Key, s}
			out[id] = append(out[id], e.Value)
		}
	}
	return out
}

// emission is a window result with the watermark in force when it came out.
type emission[R any] struct {
	ev stream.Event[window.Result[R]]
	wm stream.Time
}

type emissions[R any] struct {
	wm  stream.Time
	got []emission[R]
}

func (r *emissions[R]) Emit(e stream.Event[window.Result[R]]) {
	r.got = append(r.got, emission[R]{ev: e, wm: r.wm})
}

// drive feeds evs, in (Time, Key) order, to op as a Sequencer without
// lateness would: the events of each time, then Advance(time + 1), and
// Advance(MaxTime) at the end.
func drive[V, R any](op stream.Operator[V, window.Result[R]], evs []stream.Event[V]) []emission[R] {
	var rec emissions[R]
	for i := 0; i < len(evs); {
		now := evs[i].Time
		rec.wm = now + 1
		for ; i < len(evs) && evs[i].Time == now; i++ {
			op.Process(evs[i], &rec)
		}
		op.Advance(now+1, &rec)
	}
	rec.wm = stream.MaxTime
	op.Advance(stream.MaxTime, &rec)
	return rec.got
}

// checkWindows compares the emissions with the brute-force windows: each
// non-empty window once, at End - 1, with its count, once the watermark has
// reached its end, and a value check accepts ("" means accepted).
func checkWindows[V, R any](t *testing.T, want map[windowID][]V, size stream.Time, got []emission[R], check func(vals []V, got R) string) {
	t.Helper()
	seen := map[windowID]bool{}
	for _, em := range got {
		r := em.ev.Value
		id := windowID{em.ev.Key, r.Start}
		vals, ok := want[id]
		if !assert.Truef(t, ok, "%v: a result for a window without events", id) ||
			!assert.Falsef(t, seen[id], "%v: emitted once", id) {
			return
		}
		seen[id] = true
		require.Equalf(t, r.Start+size, r.End, "%v: End", id)
		require.Equalf(t, r.End-1, em.ev.Time, "%v: carried at End - 1", id)
		require.Equalf(t, int64(len(vals)), r.Count, "%v: Count", id)
		require.GreaterOrEqualf(t, em.wm, r.End, "%v: emitted once the watermark reached its end", id)
		if msg := check(vals, r.Value); msg != "" {
			require.Failf(t, "wrong window value", "%v, %d values: %s", id, len(vals), msg)
		}
	}
	assert.Lenf(t, seen, len(want), "every non-empty window is emitted")
}

// relErr returns |got - exact| / |exact|, 0 when both are 0, +Inf for a
// non-finite got.
func relErr(got float64, exact *big.Float) float64 {
	if math.IsNaN(got) || math.IsInf(got, 0) {
		return math.Inf(1)
	}
	g := new(big.Float).SetPrec(exactPrec).SetFloat64(got)
	if exact.Sign() == 0 {
		if g.Sign() == 0 {
			return 0
		}
		return math.Inf(1)
	}
	g.Sub(g, exact).Quo(g, exact).Abs(g)
	f, _ := g.Float64()
	return f
}

// checkBar compares an OHLC bar with the trades of its window: open, high,
// low and close exactly; volume and VWAP within 1e-12 of the exact values
// (products and sums of float64 at 256 bits are exact here).
func checkBar(trades []Trade, got Bar) string {
	open, closing := trades[0].Price, trades[len(trades)-1].Price
	high, low := math.Inf(-1), math.Inf(1)
	volume := new(big.Float).SetPrec(exactPrec)
	notional := new(big.Float).SetPrec(exactPrec)
	for _, tr := range trades {
		high, low = math.Max(high, tr.Price), math.Min(low, tr.Price)
		p := new(big.Float).SetPrec(exactPrec).SetFloat64(tr.Price)
		q := new(big.Float).SetPrec(exactPrec).SetFloat64(tr.Qty)
		volume.Add(volume, q)
		notional.Add(notional, p.Mul(p, q))
	}
	vwap := new(big.Float).SetPrec(exactPrec).Quo(notional, volume)
	switch {
	case got.Open != open || got.High != high || got.Low != low || got.Close != closing:
		return fmt.Sprintf("OHLC %v %v %v %v, want %v %v %v %v", got.Open, got.High, got.Low, got.Close, open, high, low, closing)
	case !(relErr(got.Volume, volume) <= 1e-12):
		return fmt.Sprintf("volume %v, exact %v", got.Volume, volume)
	case !(relErr(got.VWAP, vwap) <= 1e-12):
		return fmt.Sprintf("VWAP %v, exact %v", got.VWAP, vwap)
	}
	return ""
}

// TestAccumulatorInTumblingAndHoppingWindows runs the example's add-only
// OHLC over tumbling, hopping and gapped windows of random trades, against
// bars computed by brute force from each window's trades.
func TestAccumulatorInTumblingAndHoppingWindows(t *testing.T) {
	configs := []struct{ size, hop stream.Time }{
		{60_000, 60_000}, {10, 10}, {1, 1}, {60_000, 20_000}, {10, 3}, {7, 3}, {5, 10}, {3, 7},
	}
	for _, seed := range accSeeds(t) {
		r := rand.New(rand.NewPCG(seed, 41))
		for _, cfg := range configs {
			t.Run(fmt.Sprintf("seed=%d/size=%d/hop=%d", seed, cfg.size, cfg.hop), func(t *testing.T) {
				evs := randomTrades(r, 1+r.IntN(4), 1500, cfg.size)
				var h *window.Hopping[Trade, Bar]
				var err error
				if cfg.size == cfg.hop {
					h, err = window.NewTumbling(time.Duration(cfg.size)*time.Millisecond, NewOHLC)
				} else {
					h, err = window.NewHopping(time.Duration(cfg.size)*time.Millisecond, time.Duration(cfg.hop)*time.Millisecond, NewOHLC)
				}
				require.NoError(t, err, "constructor")
				want := bruteWindows(evs, cfg.size, cfg.hop)
				got := drive[Trade, Bar](h, evs)
				checkWindows(t, want, cfg.size, got, checkBar)
				t.Logf("%d trades, %d windows", len(evs), len(want))
			})
		}
	}
}

// builtin is a built-in aggregator with its brute-force reference.
type builtin struct {
	name string
	new  window.Factory[float64, float64]
	ref  func(vals []float64, got float64) string
}

// exactRef checks a result against an exact value computed at 256 bits from
// the values (nil when undefined, where the result must be NaN), within tol.
func exactRef(tol float64, exact func(vals []float64) *big.Float) func([]float64, float64) string {
	return func(vals []float64, got float64) string {
		want := exact(vals)
		if want == nil {
			if !math.IsNaN(got) {
				return fmt.Sprintf("%v, want NaN", got)
			}
			return ""
		}
		if e := relErr(got, want); !(e <= tol) {
			return fmt.Sprintf("%v, exact %v: relative error %g > %g", got, want, e, tol)
		}
		return ""
	}
}

func bigSum(vals []float64) *big.Float {
	s := new(big.Float).SetPrec(exactPrec)
	for _, v := range vals {
		s.Add(s, new(big.Float).SetPrec(exactPrec).SetFloat64(v))
	}
	return s
}

func bigMean(vals []float64) *big.Float {
	if len(vals) == 0 {
		return nil
	}
	s := bigSum(vals)
	return s.Quo(s, new(big.Float).SetInt64(int64(len(vals))))
}

// bigVariance is Σ(x - mean)² / (n - ddof), or nil when n <= ddof.
func bigVariance(ddof int) func([]float64) *big.Float {
	return func(vals []float64) *big.Float {
		if len(vals) <= ddof {
			return nil
		}
		m := bigMean(vals)
		ss := new(big.Float).SetPrec(exactPrec)
		for _, v := range vals {
			d := new(big.Float).SetPrec(exactPrec).SetFloat64(v)
			d.Sub(d, m)
			ss.Add(ss, d.Mul(d, d))
		}
		return ss.Quo(ss, new(big.Float).SetInt64(int64(len(vals)-ddof)))
	}
}

func bigStd(ddof int) func([]float64) *big.Float {
	return func(vals []float64) *big.Float {
		v := bigVariance(ddof)(vals)
		if v == nil {
			return nil
		}
		return floatSqrt(v)
	}
}

func pick(f func(vals []float64) float64) func([]float64, float64) string {
	return func(vals []float64, got float64) string {
		if want := f(vals); got != want {
			return fmt.Sprintf("%v, want %v", got, want)
		}
		return ""
	}
}

func builtins() []builtin {
	return []builtin{
		{"sum", window.FactoryOf(window.NewSum), exactRef(1e-15, bigSum)},
		{"mean", window.FactoryOf(window.NewMean), exactRef(1e-12, bigMean)},
		{"variance", window.FactoryOf(window.NewVariance), exactRef(2e-9, bigVariance(1))},
		{"pop variance", window.FactoryOf(window.NewPopVariance), exactRef(2e-9, bigVariance(0))},
		{"std", window.FactoryOf(window.NewStd), exactRef(1e-9, bigStd(1))},
		{"pop std", window.FactoryOf(window.NewPopStd), exactRef(1e-9, bigStd(0))},
		{"min", window.FactoryOf(window.NewMin), pick(func(v []float64) float64 { return slices.Min(v) })},
		{"max", window.FactoryOf(window.NewMax), pick(func(v []float64) float64 { return slices.Max(v) })},
		{"first", window.FactoryOf(window.NewFirst[float64]), pick(func(v []float64) float64 { return v[0] })},
		{"last", window.FactoryOf(window.NewLast[float64]), pick(func(v []float64) float64 { return v[len(v)-1] })},
		{"count", func() window.Aggregator[float64, float64] { return countAsFloat{window.NewCount[float64]()} },
			pick(func(v []float64) float64 { return float64(len(v)) })},
	}
}

// countAsFloat is Count with a float64 result, to share the table.
type countAsFloat struct{ *window.Count[float64] }

func (c countAsFloat) Result() float64 { return float64(c.Count.Result()) }

// TestBuiltinsFitEveryWindow runs every built-in aggregator in tumbling,
// hopping and trailing windows over random prices and checks each result
// against a brute-force reference computed from the window's values.
func TestBuiltinsFitEveryWindow(t *testing.T) {
	for _, seed := range accSeeds(t) {
		r := rand.New(rand.NewPCG(seed, 42))
		trades := randomTrades(r, 3, 1200, 50)
		prices := make([]stream.Event[float64], len(trades))
		for i, e := range trades {
			prices[i] = stream.Event[float64]{Key: e.Key, Time: e.Time, Value: e.Value.Price}
		}
		for _, agg := range builtins() {
			for _, cfg := range []struct{ size, hop stream.Time }{{50, 50}, {50, 20}, {20, 50}} {
				t.Run(fmt.Sprintf("seed=%d/%s/size=%d/hop=%d", seed, agg.name, cfg.size, cfg.hop), func(t *testing.T) {
					h, err := window.NewHopping(time.Duration(cfg.size)*time.Millisecond, time.Duration(cfg.hop)*time.Millisecond, agg.new)
					require.NoError(t, err, "NewHopping")
					checkWindows(t, bruteWindows(prices, cfg.size, cfg.hop), cfg.size, drive[float64, float64](h, prices), agg.ref)
				})
			}
			t.Run(fmt.Sprintf("seed=%d/%s/trailing", seed, agg.name), func(t *testing.T) {
				lengths := []time.Duration{7 * time.Millisecond, 60 * time.Millisecond}
				tr, err := window.NewTrailing(lengths, agg.new)
				require.NoError(t, err, "NewTrailing")
				i := 0
				out := stream.EmitFunc[[]float64](func(e stream.Event[[]float64]) {
					for w, l := range lengths {
						var vals []float64 // (t - l, t], oldest first
						for j := i; j >= 0 && prices[j].Time > e.Time-stream.DurationOf(l); j-- {
							if prices[j].Key == e.Key {
								vals = append(vals, prices[j].Value)
							}
						}
						slices.Reverse(vals)
						if msg := agg.ref(vals, e.Value[w]); msg != "" {
							require.Failf(t, "wrong trailing value", "event %d (%s@%d), window %v: %s", i, e.Key, e.Time, l, msg)
						}
					}
				})
				for ; i < len(prices); i++ {
					tr.Process(prices[i], out)
				}
			})
		}
	}
}

// barSink counts the bars it receives, so that they are used.
type barSink struct{ n int64 }

func (s *barSink) Emit(e stream.Event[window.Result[Bar]]) { s.n += e.Value.Count }

// BenchmarkTumblingOHLC measures one-minute OHLC bars of the example's
// add-only accumulator over six symbols with a trade each millisecond (round
// robin), every trade followed by the watermark a sequencer would announce
// (its time + 1).
func BenchmarkTumblingOHLC(b *testing.B) {
	bars, err := window.NewTumbling(time.Minute, NewOHLC)
	if err != nil {
		b.Fatal(err)
	}
	keys := [...]string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT"}
	const seed = 1
	b.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	cents := int64(9_919_048)
	tm := stream.Time(1_746_677_558_352)
	var out barSink
	step := func() {
		cents += int64(r.IntN(21)) - 10
		tm++
		bars.Process(stream.Event[Trade]{Key: keys[int(tm)%len(keys)], Time: tm, Value: Trade{Price: float64(cents) / 100, Qty: 0.001 * float64(1+r.IntN(100))}}, &out)
		bars.Advance(tm+1, &out)
	}
	for range 3 * 60_000 { // warm up: every key has had windows, the free list is full
		step()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		step()
	}
	if out.n == 0 {
		b.Fatal("no bars")
	}
}
