package zscore_test

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
	"github.com/tidemark-go/tidemark/zscore"
)

// exactZ returns (x - mean) / std computed exactly and rounded once.
func exactZ(t *testing.T, x, mean, std float64) float64 {
	t.Helper()
	rx, rm, rs := new(big.Rat), new(big.Rat), new(big.Rat)
	require.NotNil(t, rx.SetFloat64(x), "finite x")
	require.NotNil(t, rm.SetFloat64(mean), "finite mean")
	require.NotNil(t, rs.SetFloat64(std), "finite std")
	require.NotZero(t, rs.Sign(), "non-zero std")
	z, _ := new(big.Rat).Quo(rx.Sub(rx, rm), rs).Float64()
	return z
}

// ulpsApart returns how many float64 steps separate a and b (same sign assumed
// close); it is 0 for equal values.
func ulpsApart(a, b float64) uint64 {
	ia, ib := int64(math.Float64bits(a)), int64(math.Float64bits(b))
	if ia < 0 {
		ia = math.MinInt64 - ia
	}
	if ib < 0 {
		ib = math.MinInt64 - ib
	}
	if ia > ib {
		return uint64(ia - ib)
	}
	return uint64(ib - ia)
}

func TestOf(t *testing.T) {
	inf, nan := math.Inf(1), math.NaN()
	tests := []struct {
		name         string
		x, mean, std float64
		ok           bool
	}{
		{"above the mean", 99_013.2, 99_012.8, 1.458, true},
		{"below the mean", 99_010.0, 99_012.8, 1.458, true},
		{"at the mean", 99_012.8, 99_012.8, 1.458, true},
		{"negative values", -3, -1, 0.5, true},
		{"tiny positive std", 1, 0.5, math.SmallestNonzeroFloat64 * (1 << 60), true},
		{"subnormal std, zero deviation", 7, 7, math.SmallestNonzeroFloat64, true},
		{"std zero", 99_013.2, 99_012.8, 0, false},
		{"std negative zero", 99_013.2, 99_012.8, math.Copysign(0, -1), false},
		{"std negative", 99_013.2, 99_012.8, -1.458, false},
		{"std NaN (one value)", 99_013.2, 99_013.2, nan, false},
		{"std +Inf", 99_013.2, 99_012.8, inf, false},
		{"std -Inf", 99_013.2, 99_012.8, -inf, false},
		{"x NaN", nan, 99_012.8, 1.458, false},
		{"x +Inf", inf, 99_012.8, 1.458, false},
		{"x -Inf", -inf, 99_012.8, 1.458, false},
		{"mean NaN", 99_013.2, nan, 1.458, false},
		{"mean +Inf", 99_013.2, inf, 1.458, false},
		{"mean -Inf", 99_013.2, -inf, 1.458, false},
		{"everything NaN", nan, nan, nan, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			z, ok := zscore.Of(tc.x, tc.mean, tc.std)
			require.Equalf(t, tc.ok, ok, "Of(%v, %v, %v): defined?", tc.x, tc.mean, tc.std)
			if !tc.ok {
				assert.Zerof(t, z, "an undefined score is reported as 0, got %v", z)
				assert.False(t, math.Signbit(z), "an undefined score is +0")
				return
			}
			want := exactZ(t, tc.x, tc.mean, tc.std)
			assert.LessOrEqualf(t, ulpsApart(z, want), uint64(2), "Of(%v, %v, %v) = %v, exact %v", tc.x, tc.mean, tc.std, z, want)
		})
	}
}

func TestOfRandomAgainstExact(t *testing.T) {
	const seed = 20250508
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	worst := uint64(0)
	for range 20_000 {
		x := float64(9_000_000+r.IntN(2_000_000)) / 100
		mean := x + float64(r.IntN(200_001)-100_000)/1000
		std := float64(1+r.IntN(50_000)) / 1000
		z, ok := zscore.Of(x, mean, std)
		require.Truef(t, ok, "Of(%v, %v, %v) is defined", x, mean, std)
		u := ulpsApart(z, exactZ(t, x, mean, std))
		if u > worst {
			worst = u
		}
		if u > 2 {
			assert.Failf(t, "inaccurate z-score", "Of(%v, %v, %v) = %v is %d ulps from exact", x, mean, std, z, u)
			break
		}
	}
	t.Logf("worst error: %d ulps", worst)
}

// scoredSink keeps copies of what it receives: the Scores slice is reused.
type scoredSink struct{ got []stream.Event[zscore.Scored] }

func (s *scoredSink) Emit(e stream.Event[zscore.Scored]) {
	e.Value.Scores = append([]zscore.Score(nil), e.Value.Scores...)
	s.got = append(s.got, e)
}

type pairEvent = stream.Event[stream.Pair[float64, []window.Statistics]]

func TestOperator(t *testing.T) {
	nan := math.NaN()
	stats := []window.Statistics{
		{Count: 150, Mean: 99_012.80, Variance: 1.458 * 1.458, Std: 1.458},
		{Count: 1, Mean: 99_013.20, Variance: nan, Std: nan}, // one event: std undefined
		{Count: 3, Mean: 99_013.20, Variance: 0, Std: 0},     // all equal: std 0
		{Count: 900, Mean: 99_100.00, Variance: 25, Std: 5},
	}
	tests := []struct {
		name string
		in   []pairEvent
	}{
		{name: "no events"},
		{name: "no windows", in: []pairEvent{{Key: "BTCUSDT", Time: 1, Value: stream.Pair[float64, []window.Statistics]{Left: 99_013.2}}}},
		{
			name: "several windows, keys and times",
			in: []pairEvent{
				{Key: "BTCUSDT", Time: 1_000, Value: stream.Pair[float64, []window.Statistics]{Left: 99_013.2, Right: stats}},
				{Key: "ETHUSDT", Time: 1_000, Value: stream.Pair[float64, []window.Statistics]{Left: 99_090.0, Right: stats[2:]}},
				{Key: "BTCUSDT", Time: 1_100, Value: stream.Pair[float64, []window.Statistics]{Left: 99_012.8, Right: stats[:1]}},
				{Key: "BTCUSDT", Time: 900, Value: stream.Pair[float64, []window.Statistics]{Left: 1, Right: stats[3:]}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op := zscore.NewOperator()
			var _ stream.Operator[stream.Pair[float64, []window.Statistics], zscore.Scored] = op
			out := &scoredSink{}
			for i, e := range tc.in {
				op.Process(e, out)
				require.Lenf(t, out.got, i+1, "Process emits exactly one result per pair, at once (#%d)", i)
			}
			op.Advance(stream.MaxTime, out)
			require.Len(t, out.got, len(tc.in), "Advance emits nothing: every score is final on arrival")
			for i, e := range tc.in {
				g := out.got[i]
				assert.Equalf(t, e.Key, g.Key, "#%d: key kept, in input order", i)
				assert.Equalf(t, e.Time, g.Time, "#%d: time kept, in input order", i)
				assert.Equalf(t, e.Value.Left, g.Value.Value, "#%d: the value scored", i)
				require.Lenf(t, g.Value.Scores, len(e.Value.Right), "#%d: one score per window", i)
				for w, st := range e.Value.Right {
					s := g.Value.Scores[w]
					defined := !math.IsNaN(st.Std) && st.Std > 0
					if !assert.Equalf(t, defined, s.OK, "#%d window %d (std %v): OK", i, w, st.Std) {
						continue
					}
					if defined {
						want := exactZ(t, e.Value.Left, st.Mean, st.Std)
						assert.LessOrEqualf(t, ulpsApart(s.Z, want), uint64(2), "#%d window %d: z = %v, exact %v", i, w, s.Z, want)
					} else {
						assert.Zerof(t, s.Z, "#%d window %d: an undefined score is 0", i, w)
					}
				}
			}
		})
	}
}

// exactScale is the binary scale of the exact sums: a float64 value x is held
// as the integer x * 2^exactScale, exact for every |x| >= 2^-11.
const exactScale = 64

// exactWindow returns the exact mean and sample std (as 200-bit floats) of
// vals, at least two values, and whether the std is exactly zero. It sums the
// values as big integers at a fixed binary scale: exact, and fast enough to
// recompute every window from scratch.
func exactWindow(t *testing.T, vals []float64) (mean, std *big.Float, zero bool) {
	t.Helper()
	s1, s2, x := new(big.Int), new(big.Int), new(big.Int)
	for _, v := range vals {
		f := new(big.Float).SetFloat64(v)
		f.SetMantExp(f, exactScale)
		_, acc := f.Int(x)
		require.Equalf(t, big.Exact, acc, "%v is a multiple of 2^-%d", v, exactScale)
		s1.Add(s1, x)
		s2.Add(s2, x.Mul(x, x))
	}
	n := big.NewInt(int64(len(vals)))
	m := new(big.Rat).SetFrac(s1, new(big.Int).Lsh(n, exactScale))
	// variance = (n S2 - S1^2) / (n (n-1) 2^(2 scale))
	num := new(big.Int).Mul(n, s2)
	num.Sub(num, new(big.Int).Mul(s1, s1))
	den := new(big.Int).Mul(n, big.NewInt(int64(len(vals)-1)))
	variance := new(big.Rat).SetFrac(num, den.Lsh(den, 2*exactScale))
	mean = new(big.Float).SetPrec(200).SetRat(m)
	std = new(big.Float).SetPrec(200).SetRat(variance)
	std.Sqrt(std)
	return mean, std, variance.Sign() == 0
}

// pipeline is the zscore stage in miniature: each price is joined on (key,
// time) with its trailing statistics, and the pair is scored.
type pipeline struct {
	tr   *window.TrailingStatistics
	join *stream.Join[float64, []window.Statistics]
	z    *zscore.Operator
	out  *scoredSink
}

// Emit receives the trailing statistics of a price and joins them with it.
func (p *pipeline) Emit(e stream.Event[[]window.Statistics]) { p.join.ProcessRight(e, pairs{p}) }

// pairs receives the joined pairs and scores them.
type pairs struct{ p *pipeline }

func (p pairs) Emit(e stream.Event[stream.Pair[float64, []window.Statistics]]) {
	p.p.z.Process(e, p.p.out)
}

func (p *pipeline) process(e stream.Event[float64]) {
	p.join.ProcessLeft(e, pairs{p})
	p.tr.Process(e, p)
}

func (p *pipeline) advance(wm stream.Time) {
	p.join.Advance(wm, pairs{p})
	p.tr.Advance(wm, p)
}

func newPipeline(t *testing.T, lengths []time.Duration, out *scoredSink) *pipeline {
	t.Helper()
	tr, err := window.NewTrailingStatistics(lengths)
	require.NoError(t, err, "trailing stats")
	join, err := stream.NewJoin(stream.JoinConfig[float64, []window.Statistics]{CopyRight: stream.CopySlice[window.Statistics]})
	require.NoError(t, err, "join")
	return &pipeline{tr: tr, join: join, z: zscore.NewOperator(), out: out}
}

func TestOperatorBehindTrailingStatsAgainstExact(t *testing.T) {
	lengths := []time.Duration{500 * time.Millisecond, 2 * time.Second, 8 * time.Second}
	for _, seed := range []uint64{3, 17} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("seed %d", seed)
			r := rand.New(rand.NewPCG(seed, seed))
			keys := []string{"BTCUSDT", "ETHUSDT"}
			cents := []int64{9_919_048, 9_919_048}
			last := []stream.Time{1_746_677_558_352, 1_746_677_558_352}
			var evs []stream.Event[float64]
			for range 1_200 {
				k := r.IntN(2)
				if r.IntN(4) > 0 { // flat stretches: windows whose values are all equal
					cents[k] += int64(r.IntN(21)) - 10
				}
				last[k] += 50 + stream.Time(r.IntN(101))
				evs = append(evs, stream.Event[float64]{Key: keys[k], Time: last[k], Value: float64(cents[k]) / 100})
			}
			// The Sequencer's release order: (Time, Key).
			slices.SortFunc(evs, func(a, b stream.Event[float64]) int {
				if a.Before(&b) {
					return -1
				}
				return 1
			})
			out := &scoredSink{}
			p := newPipeline(t, lengths, out)
			for i, e := range evs {
				p.process(e)
				if i+1 == len(evs) || evs[i+1].Time != e.Time {
					p.advance(e.Time + 1) // as the Sequencer: once every event of this time is out
				}
			}
			p.advance(stream.MaxTime)
			require.Equal(t, len(evs), len(out.got), "one scored record per price")
			st := p.join.Stats()
			require.Equal(t, stream.JoinStats{Pairs: uint64(len(evs))}, st, "every price meets its statistics")
			undefined, zeroStd := 0, 0
			for i, e := range evs {
				g := out.got[i]
				require.Equalf(t, e.Key, g.Key, "#%d: in input order", i)
				require.Equalf(t, e.Time, g.Time, "#%d: in input order", i)
				require.Lenf(t, g.Value.Scores, len(lengths), "#%d: one score per window", i)
				for w, d := range lengths {
					var vals []float64
					for _, f := range evs[:i+1] {
						if f.Key == e.Key && f.Time > e.Time-stream.DurationOf(d) {
							vals = append(vals, f.Value)
						}
					}
					s := g.Value.Scores[w]
					if len(vals) < 2 {
						undefined++
						if !assert.Falsef(t, s.OK, "#%d window %v: one event, no std, no score", i, d) {
							return
						}
						continue
					}
					mean, std, zero := exactWindow(t, vals)
					if zero {
						zeroStd++
						if !assert.Falsef(t, s.OK, "#%d window %v: all values equal, std exactly 0, no score", i, d) {
							return
						}
						continue
					}
					if !assert.Truef(t, s.OK, "#%d window %v: %d values, std %v: a score", i, d, len(vals), std) {
						return
					}
					// |dz| <= |d mean| / std + |z| |d std| / std, with the SPEC's bounds
					// (relative 1e-12 on the mean, 1e-9 on the std) and a little slack.
					exact := new(big.Float).SetPrec(200).SetFloat64(e.Value)
					exact.Sub(exact, mean).Quo(exact, std)
					zf, _ := exact.Float64()
					m, _ := mean.Float64()
					sd, _ := std.Float64()
					tol := 2e-12*math.Abs(m)/sd + 2e-9*math.Abs(zf) + 1e-15
					if math.Abs(s.Z-zf) > tol {
						assert.Failf(t, "inaccurate z-score", "#%d window %v: z = %v, exact %v (tolerance %v)", i, d, s.Z, zf, tol)
						return
					}
				}
			}
			t.Logf("%d scores undefined for lack of values, %d for a zero std", undefined, zeroStd)
			assert.Positive(t, zeroStd, "the stream has flat windows, which the test must cover")
		})
	}
}
