package window

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
)

// sameBits reports whether a and b are the same float64, NaN included.
func sameBits(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || (math.IsNaN(a) && math.IsNaN(b))
}

func sameStats(a, b Statistics) bool {
	return a.Count == b.Count && sameBits(a.Mean, b.Mean) && sameBits(a.Variance, b.Variance) && sameBits(a.Std, b.Std)
}

// pricePath returns n events of one key: prices in cent steps from start,
// times 1..400 ms apart, with finer decimals now and then (a rebuild of the
// fixed-point scale) when fine is set.
func pricePath(r *rand.Rand, n int, start float64, fine bool) []stream.Event[float64] {
	cents := math.Round(start * 100)
	t := stream.Time(1_746_677_558_352)
	out := make([]stream.Event[float64], n)
	for i := range out {
		t += stream.Time(1 + r.IntN(400))
		cents += float64(r.IntN(9) - 4)
		v := cents / 100
		if fine && r.IntN(300) == 0 {
			v += float64(r.IntN(99)+1) / 1e4
		}
		out[i] = stream.Event[float64]{Key: "k", Time: t, Value: v}
	}
	return out
}

// TestTrailingStatsDependOnlyOnTheWindow: the statistics of a window are a
// function of the events it holds, bit for bit, whatever the operator saw
// before: an operator restarted on a suffix of the stream (as a task
// recovered from a checkpoint is) emits the same results for every window
// the suffix covers. (They were within a few ulps but not identical: the
// mean was taken relative to the key's first value.)
func TestTrailingStatsDependOnlyOnTheWindow(t *testing.T) {
	lengths := []time.Duration{3 * time.Second, 10 * time.Second, time.Minute}
	for _, tc := range []struct {
		name  string
		start float64
		fine  bool
	}{{"btc", 99190.48, false}, {"xrp", 0.52, false}, {"xrp with finer decimals", 0.52, true}, {"sol", 144.2, true}} {
		for _, seed := range []uint64{1, 2, 3} {
			t.Run(fmt.Sprintf("%s/seed=%d", tc.name, seed), func(t *testing.T) {
				t.Logf("seed %d", seed)
				r := rand.New(rand.NewPCG(seed, 5))
				evs := pricePath(r, 3000, tc.start, tc.fine)
				full := runStats(t, lengths, evs)
				for _, k := range []int{1, 37, 500, 1200, 2500} {
					part := runStats(t, lengths, evs[k:])
					for i := k; i < len(evs); i++ {
						for w, l := range lengths {
							if evs[i].Time-stream.DurationOf(l) < evs[k].Time {
								continue // the window reaches before the suffix
							}
							require.Truef(t, sameStats(full[i][w], part[i-k][w]),
								"event %d, window %v, restarted at %d: %+v, uninterrupted %+v", i, l, k, part[i-k][w], full[i][w])
						}
					}
				}
			})
		}
	}
}

func runStats(t *testing.T, lengths []time.Duration, evs []stream.Event[float64]) [][]Statistics {
	t.Helper()
	tr, err := NewTrailingStatistics(lengths)
	require.NoError(t, err, "NewTrailingStatistics")
	var out [][]Statistics
	em := stream.EmitFunc[[]Statistics](func(e stream.Event[[]Statistics]) { out = append(out, append([]Statistics(nil), e.Value...)) })
	for _, e := range evs {
		tr.Process(e, em)
	}
	return out
}

// TestMomentsDependOnlyOnTheValuesHeld: two accumulators that hold the same
// values, reached through different histories, give the same results, bit
// for bit.
func TestMomentsDependOnlyOnTheValuesHeld(t *testing.T) {
	const seed = 9
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 5))
	for _, start := range []float64{99190.48, 0.52, 144.2} {
		evs := pricePath(r, 400, start, true)
		var a Moments
		for i, e := range evs {
			a.Add(e.Value)
			if i >= 100 {
				a.Remove(evs[i-100].Value)
				var b Moments
				for _, f := range evs[i-99 : i+1] {
					b.Add(f.Value)
				}
				require.Truef(t, sameStats(a.stats(), b.stats()), "start %v, event %d: %+v vs %+v", start, i, a.stats(), b.stats())
				require.Truef(t, sameBits(a.Mean(), b.Mean()), "Mean, start %v, event %d", start, i)
				require.Truef(t, sameBits(a.Mean(), a.stats().Mean), "Mean and stats agree, start %v, event %d", start, i)
			}
		}
	}
}
