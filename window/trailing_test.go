package window

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
)

type statsOut struct {
	keys  []string
	times []stream.Time
	stats [][]Statistics
}

func (o *statsOut) Emit(e stream.Event[[]Statistics]) {
	o.keys = append(o.keys, e.Key)
	o.times = append(o.times, e.Time)
	o.stats = append(o.stats, append([]Statistics(nil), e.Value...)) // the slice is reused
}

// bruteWindow returns the values of key's events with time in (t-w, t].
func bruteWindow(evs []stream.Event[float64], key string, t, w stream.Time) []float64 {
	var xs []float64
	for _, e := range evs {
		if e.Key == key && e.Time > t-w && e.Time <= t {
			xs = append(xs, e.Value)
		}
	}
	return xs
}

func checkTrailing(t *testing.T, lengths []time.Duration, evs []stream.Event[float64]) {
	t.Helper()
	tr, err := NewTrailingStatistics(lengths)
	require.NoError(t, err, "NewTrailingStatistics")
	var out statsOut
	for _, e := range evs {
		tr.Process(e, &out)
	}
	tr.Advance(stream.MaxTime, &out)
	require.Len(t, out.stats, len(evs), "one result per event")
	for i, e := range evs {
		require.Equal(t, e.Key, out.keys[i], "key of result %d", i)
		require.Equal(t, e.Time, out.times[i], "time of result %d", i)
		for w, l := range lengths {
			xs := bruteWindow(evs, e.Key, e.Time, stream.DurationOf(l))
			got := out.stats[i][w]
			msg := fmt.Sprintf("event %d (%s@%d) window %v", i, e.Key, e.Time, l)
			require.Equal(t, int64(len(xs)), got.Count, "%s: count", msg)
			checkAccuracy(t, xs, got.Mean, got.Variance, msg)
			if len(xs) < 2 {
				assert.True(t, math.IsNaN(got.Std), "%s: std undefined with one event", msg)
			} else {
				assert.Equal(t, math.Sqrt(got.Variance), got.Std, "%s: std is the root of the variance", msg)
			}
		}
	}
}

func TestTrailingStatsEdges(t *testing.T) {
	ms := func(key string, t stream.Time, v float64) stream.Event[float64] {
		return stream.Event[float64]{Key: key, Time: t, Value: v}
	}
	lengths := []time.Duration{30 * time.Millisecond, time.Second}
	tests := []struct {
		name string
		evs  []stream.Event[float64]
	}{
		{"empty", nil},
		{"single", []stream.Event[float64]{ms("a", 100, 99190.48)}},
		{"equal prices give std exactly 0", []stream.Event[float64]{ms("a", 1, 5.5), ms("a", 2, 5.5), ms("a", 3, 5.5)}},
		{"event exactly at t-W leaves, just after stays", []stream.Event[float64]{
			ms("a", 100, 1), ms("a", 101, 2), ms("a", 130, 4), ms("a", 131, 8)}},
		{"quiet spell empties the window", []stream.Event[float64]{
			ms("a", 0, 99190.48), ms("a", 10, 99190.49), ms("a", 5000, 99000.01), ms("a", 5001, 99000.02)}},
		{"keys interleaved at equal times", []stream.Event[float64]{
			ms("a", 1, 10), ms("b", 1, 20), ms("a", 2, 11), ms("b", 2, 19), ms("c", 2, 1), ms("a", 40, 12)}},
		{"price crosses a power of two (scale change)", []stream.Event[float64]{
			ms("a", 1, 65535.99), ms("a", 2, 65536.01), ms("a", 3, 65535.995), ms("a", 4, 131072.5), ms("a", 5, 32767.75)}},
		{"values that cannot be exact fall back", []stream.Event[float64]{
			ms("a", 1, 1e300), ms("a", 2, 1e-300), ms("a", 3, 7), ms("a", 2000, 3), ms("a", 2001, 4)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "values that cannot be exact fall back" {
				// Only the exact part can be held to the exact reference: once
				// the huge values have left, results are exact again.
				tr, err := NewTrailingStatistics(lengths)
				require.NoError(t, err, "NewTrailingStatistics")
				var out statsOut
				for _, e := range tt.evs {
					tr.Process(e, &out)
				}
				last := out.stats[len(out.stats)-1]
				assert.Equal(t, int64(2), last[1].Count, "1s window after the spell")
				assert.Equal(t, 3.5, last[1].Mean, "mean")
				assert.Equal(t, 0.5, last[1].Variance, "variance")
				return
			}
			checkTrailing(t, lengths, tt.evs)
		})
	}
}

// TestTrailingStatsRandomized compares every result with a brute-force exact
// recomputation over the raw events, on BTC-like streams (cents around 1e5,
// ties, quiet spells, bursts at one millisecond apart, several keys).
func TestTrailingStatsRandomized(t *testing.T) {
	lengths := []time.Duration{30 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, time.Second}
	for _, seed := range []uint64{11, 12} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Logf("seed %d", seed)
			r := rand.New(rand.NewPCG(seed, seed))
			keys := []string{"BTCUSDT", "ETHUSDT"}
			last := map[string]stream.Time{}
			cents := map[string]int64{"BTCUSDT": 9_919_048, "ETHUSDT": 250_011}
			var evs []stream.Event[float64]
			tm := stream.Time(1_700_000_000_000)
			for range 1500 {
				switch r.IntN(20) {
				case 0:
					tm += 1500 // quiet spell longer than every window
				default:
					tm += stream.Time(r.IntN(12))
				}
				k := keys[r.IntN(2)]
				if last[k] >= tm {
					continue // per key, times strictly increase (the Sequencer's guarantee)
				}
				last[k] = tm
				if r.IntN(4) != 0 {
					cents[k] += int64(r.IntN(5)) - 2
				}
				evs = append(evs, stream.Event[float64]{Key: k, Time: tm, Value: float64(cents[k]) / 100})
			}
			checkTrailing(t, lengths, evs)
		})
	}
}

// TestTrailingStatsWideSums holds values near ±1e9 next to multiples of 2^-30
// near 0: one exact scale fits them all, but the windows' sums outgrow the fast
// path's 64-bit S1 and 128-bit S2, which must then give way to the full width.
func TestTrailingStatsWideSums(t *testing.T) {
	const seed = 41
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	var evs []stream.Event[float64]
	for i := range 600 {
		x := 1e9 + float64(r.IntN(1000))
		switch r.IntN(4) {
		case 0:
			x = float64(r.IntN(1<<20)) / (1 << 30)
		case 1:
			x = -x
		}
		evs = append(evs, stream.Event[float64]{Key: "k", Time: stream.Time(i), Value: x})
	}
	checkTrailing(t, []time.Duration{30 * time.Millisecond, time.Second}, evs)

	tr, err := NewTrailingStatistics([]time.Duration{time.Second})
	require.NoError(t, err, "NewTrailingStatistics")
	var out statsOut
	for _, e := range evs {
		tr.Process(e, &out)
	}
	s := &tr.keys.Lookup("k").State
	require.False(t, s.float, "one shared exact scale holds every value")
	p1, p2 := s.prefix(s.heads[0])
	s1, s2 := s.tot1.minus(p1), s.tot2.minus(p2)
	_, fits := s1.int64()
	assert.False(t, fits && s2.hi == 0, "the sums need the full width")
}

func TestTrailingStatsNoAllocationsInSteadyState(t *testing.T) {
	tr, err := NewTrailingStatistics(pipelineLengths)
	require.NoError(t, err, "NewTrailingStatistics")
	var out sinkStats
	evs := priceWalk(1<<14, 3)
	for _, e := range evs {
		tr.Process(e, &out)
	}
	shift, i := evs[len(evs)-1].Time-evs[0].Time+100, 0
	allocs := testing.AllocsPerRun(5000, func() {
		e := evs[i%len(evs)]
		e.Time += shift * stream.Time(1+i/len(evs))
		tr.Process(e, &out)
		i++
	})
	assert.Zero(t, allocs, "allocations per event")
}

func TestTrailingSweepsIdleKeys(t *testing.T) {
	tr, err := NewTrailingStatistics([]time.Duration{time.Second})
	require.NoError(t, err, "NewTrailingStatistics")
	var out statsOut
	tr.Process(stream.Event[float64]{Key: "a", Time: 0, Value: 1}, &out)
	tr.Process(stream.Event[float64]{Key: "b", Time: 5000, Value: 1}, &out)
	tr.Advance(5001, &out)
	assert.Equal(t, 1, tr.keys.Len(), "key a left the largest window and its state is dropped")
	tr.Process(stream.Event[float64]{Key: "a", Time: 6000, Value: 3}, &out)
	assert.Equal(t, int64(1), out.stats[2][0].Count, "a starts afresh")
}

// TestTrailingSweepsLikeAFullScan drives both trailing operators over many
// keys with random gaps and watermarks, and checks after every Advance that
// the keys kept are those a scan of every key at each sweep would keep: a key
// is dropped at the first sweep (once per span of watermark progress) at
// which its last event is span or more behind the watermark, not earlier.
func TestTrailingSweepsLikeAFullScan(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, uint64(time.Now().UnixNano())} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Logf("seed %d", seed)
			r := rand.New(rand.NewPCG(seed, 5))
			const span = 100
			lengths := []time.Duration{30 * time.Millisecond, span * time.Millisecond}
			stats, err := NewTrailingStatistics(lengths)
			require.NoError(t, err, "NewTrailingStatistics")
			gen, err := NewTrailing(lengths, FactoryOf[float64, int64](NewCount[float64]))
			require.NoError(t, err, "NewTrailing")
			lastT := map[string]stream.Time{} // the reference: every key kept, and its last event
			sweep, wm := stream.MinTime, stream.MinTime
			var out statsOut
			now := stream.Time(0)
			for step := range 5000 {
				now += stream.Time(r.IntN(20))
				if r.IntN(50) == 0 {
					now += 3 * span
				}
				k := fmt.Sprintf("k%d", r.IntN(40))
				if r.IntN(3) > 0 {
					e := stream.Event[float64]{Key: k, Time: now, Value: float64(r.IntN(100))}
					stats.Process(e, &out)
					gen.Process(e, stream.EmitFunc[[]int64](func(stream.Event[[]int64]) {}))
					if t, ok := lastT[k]; !ok || t < now {
						lastT[k] = now
					}
					now++ // each key's events in increasing time order
					continue
				}
				wm = max(wm, now-stream.Time(r.IntN(3*span)))
				if r.IntN(200) == 0 {
					wm = stream.MaxTime
				}
				if wm >= sweep.Add(span) || wm == stream.MaxTime {
					sweep = wm
					for k, t := range lastT {
						if !(t > wm.Add(-span) && wm != stream.MaxTime) {
							delete(lastT, k)
						}
					}
				}
				stats.Advance(wm, &out)
				gen.Advance(wm, nil)
				for name, table := range map[string]func(string) bool{
					"TrailingStatistics": func(k string) bool { return stats.keys.Lookup(k) != nil },
					"Trailing":           func(k string) bool { return gen.keys.Lookup(k) != nil },
				} {
					for i := range 40 {
						k := fmt.Sprintf("k%d", i)
						_, want := lastT[k]
						require.Equalf(t, want, table(k), "step %d, %s, watermark %d: key %s kept", step, name, wm, k)
					}
				}
				if wm == stream.MaxTime {
					return
				}
				now = max(now, wm)
			}
		})
	}
}

func TestTrailingGenericAgainstBruteForce(t *testing.T) {
	const seed = 21
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	lengths := []time.Duration{5 * time.Millisecond, 20 * time.Millisecond}
	tr, err := NewTrailing(lengths, FactoryOf[float64, float64](NewMax))
	require.NoError(t, err, "NewTrailing")
	var evs []stream.Event[float64]
	tm := stream.Time(0)
	for range 2000 {
		tm += stream.Time(1 + r.IntN(4))
		evs = append(evs, stream.Event[float64]{Key: "k", Time: tm, Value: float64(r.IntN(10))})
	}
	var got [][]float64
	out := stream.EmitFunc[[]float64](func(e stream.Event[[]float64]) { got = append(got, append([]float64(nil), e.Value...)) })
	for _, e := range evs {
		tr.Process(e, out)
	}
	require.Len(t, got, len(evs), "one result per event")
	for i, e := range evs {
		for w, l := range lengths {
			want := math.Inf(-1)
			for _, x := range bruteWindow(evs, "k", e.Time, stream.DurationOf(l)) {
				want = max(want, x)
			}
			require.Equal(t, want, got[i][w], "event %d window %v", i, l)
		}
	}
}

func TestTrailingValidates(t *testing.T) {
	for _, ls := range [][]time.Duration{nil, {0}, {-time.Second}, {1500 * time.Microsecond}} {
		_, err := NewTrailingStatistics(ls)
		assert.ErrorIs(t, err, ErrInvalidWindow, "lengths %v", ls)
		_, err = NewTrailing(ls, FactoryOf[float64, float64](NewMean))
		assert.ErrorIs(t, err, ErrInvalidWindow, "generic, lengths %v", ls)
	}
	_, err := NewTrailing([]time.Duration{time.Second}, Factory[float64, float64](nil))
	assert.ErrorIs(t, err, ErrInvalidWindow, "nil factory")
}

// TestTrailingStatsRecoversAfterAnOutlier puts a 0.01 tick among 1e5 prices:
// no exact scale holds both, so the windows holding it fall back to float64;
// every window that does not hold it must meet the exact bounds, and once the
// largest window drops it the key returns to the shared exact scale.
func TestTrailingStatsRecoversAfterAnOutlier(t *testing.T) {
	const seed = 31
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	lengths := []time.Duration{50 * time.Millisecond, 200 * time.Millisecond}
	tr, err := NewTrailingStatistics(lengths)
	require.NoError(t, err, "NewTrailingStatistics")
	var evs []stream.Event[float64]
	cents := int64(9_919_048)
	outlierAt := stream.Time(-1)
	for i := range 600 {
		cents += int64(r.IntN(5)) - 2
		x := float64(cents) / 100
		if i == 300 {
			x, outlierAt = 0.01, stream.Time(i*7)
		}
		evs = append(evs, stream.Event[float64]{Key: "k", Time: stream.Time(i * 7), Value: x})
	}
	var out statsOut
	for _, e := range evs {
		tr.Process(e, &out)
	}
	for i, e := range evs {
		for w, l := range lengths {
			holds := outlierAt > e.Time-stream.DurationOf(l) && outlierAt <= e.Time
			if holds {
				continue // float64 fallback: no exactness promised
			}
			xs := bruteWindow(evs, "k", e.Time, stream.DurationOf(l))
			checkAccuracy(t, xs, out.stats[i][w].Mean, out.stats[i][w].Variance, fmt.Sprintf("event %d window %v", i, l))
		}
	}
	assert.False(t, tr.keys.Lookup("k").State.float, "back on the shared exact scale once the outlier left the largest window")
}

// TestWindowBounds: each window operator reports how far back its results
// reach, which the runtime's commits and recovery rely on.
func TestWindowBounds(t *testing.T) {
	lengths := []time.Duration{30 * time.Second, time.Hour, time.Minute}
	tr, err := NewTrailing(lengths, FactoryOf[float64, float64](NewMean))
	require.NoError(t, err, "NewTrailing")
	assert.Equal(t, stream.Bounds{Back: time.Hour}, tr.Bounds(), "Trailing: the largest length")
	ts, err := NewTrailingStatistics(lengths)
	require.NoError(t, err, "NewTrailingStatistics")
	assert.Equal(t, stream.Bounds{Back: time.Hour}, ts.Bounds(), "TrailingStatistics: the largest length")
	h, err := NewHopping(5*time.Minute, time.Minute, FactoryOf[float64, float64](NewMax))
	require.NoError(t, err, "NewHopping")
	assert.Equal(t, stream.Bounds{Back: 5*time.Minute - time.Millisecond}, h.Bounds(),
		"Hopping: the result at End-1 covers [End-size, End)")
}
