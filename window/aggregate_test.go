package window_test

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/window"
)

// Compile-time checks: every aggregator implements Aggregator.
var (
	_ window.Aggregator[float64, int64]   = (*window.Count[float64])(nil)
	_ window.Aggregator[float64, float64] = (*window.Sum)(nil)
	_ window.Aggregator[float64, float64] = (*window.Mean)(nil)
	_ window.Aggregator[float64, float64] = (*window.Variance)(nil)
	_ window.Aggregator[float64, float64] = (*window.Std)(nil)
	_ window.Aggregator[float64, float64] = (*window.Min)(nil)
	_ window.Aggregator[float64, float64] = (*window.Max)(nil)
	_ window.Aggregator[string, string]   = (*window.First[string])(nil)
	_ window.Aggregator[string, string]   = (*window.Last[string])(nil)
)

// floatAggs is every float64 aggregator, fresh.
func floatAggs() map[string]window.Aggregator[float64, float64] {
	return map[string]window.Aggregator[float64, float64]{
		"sum":          window.NewSum(),
		"mean":         window.NewMean(),
		"variance":     window.NewVariance(),
		"pop variance": window.NewPopVariance(),
		"std":          window.NewStd(),
		"pop std":      window.NewPopStd(),
		"min":          window.NewMin(),
		"max":          window.NewMax(),
		"first":        window.NewFirst[float64](),
		"last":         window.NewLast[float64](),
	}
}

// undefinedBelow is the number of values each aggregator needs for a defined
// (non-NaN) result; Sum, First and Last are 0 (the zero value) when empty.
var undefinedBelow = map[string]int{
	"sum": 0, "mean": 1, "variance": 2, "pop variance": 1, "std": 2, "pop std": 1,
	"min": 1, "max": 1, "first": 0, "last": 0,
}

func TestAggregatorsOnFewValues(t *testing.T) {
	const x = 99_190.48
	for name, agg := range floatAggs() {
		t.Run(name, func(t *testing.T) {
			need := undefinedBelow[name]
			check := func(n int, got float64) {
				t.Helper()
				if n < need {
					assert.Truef(t, math.IsNaN(got), "%s of %d values is undefined (NaN), got %v", name, n, got)
				} else {
					assert.Falsef(t, math.IsNaN(got), "%s of %d values is defined", name, n)
				}
			}
			check(0, agg.Result())
			if need == 0 {
				assert.Zerof(t, agg.Result(), "%s of nothing is 0", name)
			}
			agg.Add(x)
			check(1, agg.Result())
			switch name {
			case "sum", "mean", "min", "max", "first", "last":
				assert.Equalf(t, x, agg.Result(), "%s of one value is that value", name)
			case "pop variance", "pop std":
				assert.Zerof(t, agg.Result(), "%s of one value is 0", name)
			}
			agg.Add(x)
			check(2, agg.Result())
			agg.Remove(x)
			agg.Remove(x)
			check(0, agg.Result())
			agg.Add(1)
			agg.Add(2)
			agg.Reset()
			check(0, agg.Result())
			agg.Add(x)
			check(1, agg.Result())
		})
	}
	t.Run("count", func(t *testing.T) {
		c := window.NewCount[string]()
		assert.Zero(t, c.Result(), "count of nothing")
		c.Add("a")
		c.Add("b")
		assert.Equal(t, int64(2), c.Result(), "count of two values")
		c.Remove("a")
		assert.Equal(t, int64(1), c.Result(), "count after a removal")
		c.Reset()
		assert.Zero(t, c.Result(), "count after Reset")
	})
	t.Run("first and last of strings", func(t *testing.T) {
		f, l := window.NewFirst[string](), window.NewLast[string]()
		assert.Empty(t, f.Result(), "first of nothing is the zero value")
		assert.Empty(t, l.Result(), "last of nothing is the zero value")
		for _, v := range []string{"a", "b", "c"} {
			f.Add(v)
			l.Add(v)
		}
		assert.Equal(t, "a", f.Result(), "first")
		assert.Equal(t, "c", l.Result(), "last")
		f.Remove("a")
		l.Remove("a")
		assert.Equal(t, "b", f.Result(), "first after removing the oldest")
		assert.Equal(t, "c", l.Result(), "last after removing the oldest")
	})
	t.Run("func adapter", func(t *testing.T) {
		newMean := window.FactoryOf(window.NewMean)
		a, b := newMean(), newMean()
		a.Add(1)
		a.Add(2)
		assert.Equal(t, 1.5, a.Result(), "an aggregator from Func works")
		assert.True(t, math.IsNaN(b.Result()), "each call makes a fresh aggregator")
	})
}

// fifo is the brute-force window the aggregators are checked against: the
// values held, oldest first.
type fifo struct{ vals []float64 }

func (f *fifo) min() float64 {
	if len(f.vals) == 0 {
		return math.NaN()
	}
	m := f.vals[0]
	for _, v := range f.vals {
		m = math.Min(m, v)
	}
	return m
}

func (f *fifo) max() float64 {
	if len(f.vals) == 0 {
		return math.NaN()
	}
	m := f.vals[0]
	for _, v := range f.vals {
		m = math.Max(m, v)
	}
	return m
}

// sameFloat is equality where NaN equals NaN.
func sameFloat(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

func TestMinMaxFirstLastAgainstBruteForce(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("seed %d", seed)
			r := rand.New(rand.NewPCG(seed, 1234))
			values := 1 + r.IntN(6) // few distinct values: many ties
			maxLen := 1 + r.IntN(40)
			mn, mx := window.NewMin(), window.NewMax()
			first, last, count := window.NewFirst[float64](), window.NewLast[float64](), window.NewCount[float64]()
			var ref fifo
			for op := range 20_000 {
				if len(ref.vals) > 0 && (len(ref.vals) == maxLen || r.IntN(2) == 0) {
					v := ref.vals[0]
					ref.vals = ref.vals[1:]
					mn.Remove(v)
					mx.Remove(v)
					first.Remove(v)
					last.Remove(v)
					count.Remove(v)
				} else {
					v := float64(r.IntN(values)-values/2) * 0.25
					ref.vals = append(ref.vals, v)
					mn.Add(v)
					mx.Add(v)
					first.Add(v)
					last.Add(v)
					count.Add(v)
				}
				wantFirst, wantLast := 0.0, 0.0
				if n := len(ref.vals); n > 0 {
					wantFirst, wantLast = ref.vals[0], ref.vals[n-1]
				}
				if !sameFloat(mn.Result(), ref.min()) || !sameFloat(mx.Result(), ref.max()) ||
					first.Result() != wantFirst || last.Result() != wantLast || count.Result() != int64(len(ref.vals)) {
					assert.Failf(t, "aggregate differs from brute force", "after op %d on %v: min %v max %v first %v last %v count %d; want %v %v %v %v %d",
						op, ref.vals, mn.Result(), mx.Result(), first.Result(), last.Result(), count.Result(),
						ref.min(), ref.max(), wantFirst, wantLast, len(ref.vals))
					return
				}
			}
			assert.Equal(t, int64(len(ref.vals)), count.Result(), "count at the end")
		})
	}
}

// exactScale is the binary scale of the exact reference: a float64 value x is
// held as the integer x * 2^exactScale, exact for every |x| >= 2^-11.
const exactScale = 64

// exactPrec is the precision of the reference's final divisions and square
// roots: 256 bits, so their rounding (2^-256) is negligible.
const exactPrec = 256

// exactSums is the exact reference for Sum, Mean and the variances: the sums
// of X and X^2 where X = x * 2^exactScale, as big integers, updated exactly on
// every Add and Remove.
type exactSums struct {
	n      int64
	s1, s2 big.Int
}

func (m *exactSums) scaled(t *testing.T, x float64) *big.Int {
	t.Helper()
	f := new(big.Float).SetFloat64(x)
	f.SetMantExp(f, exactScale)
	i, acc := f.Int(nil)
	require.Equalf(t, big.Exact, acc, "%v is a multiple of 2^-%d", x, exactScale)
	return i
}

func (m *exactSums) add(t *testing.T, x float64) {
	t.Helper()
	i := m.scaled(t, x)
	m.n++
	m.s1.Add(&m.s1, i)
	m.s2.Add(&m.s2, i.Mul(i, i))
}

func (m *exactSums) remove(t *testing.T, x float64) {
	t.Helper()
	i := m.scaled(t, x)
	m.n--
	m.s1.Sub(&m.s1, i)
	m.s2.Sub(&m.s2, i.Mul(i, i))
}

func (m *exactSums) sum() *big.Float {
	f := new(big.Float).SetPrec(exactPrec).SetInt(&m.s1)
	return f.SetMantExp(f, -exactScale)
}

func (m *exactSums) mean() *big.Float {
	f := m.sum()
	return f.Quo(f, new(big.Float).SetInt64(m.n))
}

// variance returns Σ(x - mean)^2 / (n - ddof) = (n S2 - S1^2) / (n (n - ddof) 2^(2 scale)),
// and whether it is exactly zero.
func (m *exactSums) variance(ddof int64) (*big.Float, bool) {
	num := new(big.Int).Mul(big.NewInt(m.n), &m.s2)
	num.Sub(num, new(big.Int).Mul(&m.s1, &m.s1))
	f := new(big.Float).SetPrec(exactPrec).SetInt(num)
	f.SetMantExp(f, -2*exactScale)
	return f.Quo(f, new(big.Float).SetInt64(m.n*(m.n-ddof))), num.Sign() == 0
}

// floatRelErr returns |got - exact| / |exact| (+Inf for a non-finite got, or a
// zero exact and a non-zero got).
func floatRelErr(got float64, exact *big.Float) float64 {
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

// floatSqrt returns the square root of a non-negative v at the reference's precision.
func floatSqrt(v *big.Float) *big.Float { return new(big.Float).SetPrec(exactPrec).Sqrt(v) }

// momentsAggs are the aggregators checked against exactSums.
type momentsAggs struct {
	sum, mean, variance, popVariance, std, popStd window.Aggregator[float64, float64]
}

func newMomentsAggs() *momentsAggs {
	return &momentsAggs{window.NewSum(), window.NewMean(), window.NewVariance(), window.NewPopVariance(), window.NewStd(), window.NewPopStd()}
}

func (a *momentsAggs) all() []window.Aggregator[float64, float64] {
	return []window.Aggregator[float64, float64]{a.sum, a.mean, a.variance, a.popVariance, a.std, a.popStd}
}

func (a *momentsAggs) add(x float64) {
	for _, agg := range a.all() {
		agg.Add(x)
	}
}

func (a *momentsAggs) remove(x float64) {
	for _, agg := range a.all() {
		agg.Remove(x)
	}
}

// accuracy tracks the checks made and the worst errors seen.
type accuracy struct {
	checks, stdChecks       int
	worstMean, worstStd     float64
	worstVariance, worstSum float64
}

// checkMoments compares the aggregators with the exact reference under the
// SPEC's accuracy: relative error of the mean (and the sum) <= 1e-12, of the
// std <= 1e-9 (and of the variance <= 2e-9) whenever the exact std >= 1e-6 x
// the mean; an exact variance of 0 must come out exactly 0; undefined results
// are NaN. It returns a description of the first violation, or "".
func checkMoments(ref *exactSums, a *momentsAggs, acc *accuracy) string {
	acc.checks++
	n := ref.n
	e := floatRelErr(a.sum.Result(), ref.sum())
	if !(e <= 1e-12) {
		return fmt.Sprintf("sum %v: relative error %g", a.sum.Result(), e)
	}
	acc.worstSum = max(acc.worstSum, e)
	if n == 0 {
		for i, agg := range a.all()[1:] {
			if !math.IsNaN(agg.Result()) {
				return fmt.Sprintf("aggregate #%d of nothing is %v, want NaN", i+1, agg.Result())
			}
		}
		return ""
	}
	exactMean := ref.mean()
	e = floatRelErr(a.mean.Result(), exactMean)
	if !(e <= 1e-12) {
		return fmt.Sprintf("mean %v: relative error %g", a.mean.Result(), e)
	}
	acc.worstMean = max(acc.worstMean, e)
	mean, _ := exactMean.Float64()
	for _, v := range []struct {
		name          string
		ddof          int64
		variance, std float64
	}{
		{"sample", 1, a.variance.Result(), a.std.Result()},
		{"population", 0, a.popVariance.Result(), a.popStd.Result()},
	} {
		if n <= v.ddof {
			if !math.IsNaN(v.variance) || !math.IsNaN(v.std) {
				return fmt.Sprintf("%s variance %v, std %v of %d values, want NaN", v.name, v.variance, v.std, n)
			}
			continue
		}
		exact, zero := ref.variance(v.ddof)
		if zero {
			if v.variance != 0 || v.std != 0 {
				return fmt.Sprintf("%s variance %v, std %v of %d equal values, want exactly 0", v.name, v.variance, v.std, n)
			}
			continue
		}
		if !(v.variance >= 0) || !(v.std >= 0) {
			return fmt.Sprintf("%s variance %v, std %v: want >= 0", v.name, v.variance, v.std)
		}
		// The exact variance rounded to float64, then its square root: within
		// 2.3e-16 of the exact std, negligible against the 1e-9 bound.
		vf, _ := exact.Float64()
		sd := math.Sqrt(vf)
		if sd < 1e-6*math.Abs(mean) {
			continue // below the SPEC's bound: no accuracy promised
		}
		acc.stdChecks++
		if e := floatRelErr(v.variance, exact); !(e <= 2e-9) {
			return fmt.Sprintf("%s variance %v: relative error %g", v.name, v.variance, e)
		} else {
			acc.worstVariance = max(acc.worstVariance, e)
		}
		if e := math.Abs(v.std-sd) / sd; !(e <= 1e-9) {
			return fmt.Sprintf("%s std %v: relative error %g", v.name, v.std, e)
		} else {
			acc.worstStd = max(acc.worstStd, e)
		}
	}
	return ""
}

func TestMomentsAggregatorsAgainstExactOnBTCPrices(t *testing.T) {
	tests := []struct {
		name   string
		seed   uint64
		maxLen int
		step   int64 // largest price move, in cents
		ops    int
	}{
		{"small windows, cent moves", 1, 8, 3, 20_000},
		{"medium windows", 2, 300, 10, 10_000},
		{"large window, long run", 3, 3_000, 10, 30_000},
		{"flat prices", 4, 50, 0, 5_000},
		{"big moves", 5, 500, 100_000, 10_000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Logf("seed %d", tc.seed)
			r := rand.New(rand.NewPCG(tc.seed, 99))
			a := newMomentsAggs()
			var ref exactSums
			var held []float64
			var acc accuracy
			cents := int64(9_919_048)
			for op := range tc.ops {
				if len(held) > 0 && (len(held) == tc.maxLen || r.IntN(2) == 0) {
					x := held[0]
					held = held[1:]
					ref.remove(t, x)
					a.remove(x)
				} else {
					if tc.step > 0 {
						cents += r.Int64N(2*tc.step+1) - tc.step
					}
					x := float64(cents) / 100
					held = append(held, x)
					ref.add(t, x)
					a.add(x)
				}
				if msg := checkMoments(&ref, a, &acc); msg != "" {
					assert.Failf(t, "inaccurate moments", "op %d, %d values: %s", op, len(held), msg)
					return
				}
			}
			t.Logf("%d checks (%d of the std under the SPEC bound); worst relative errors: sum %.2g, mean %.2g, variance %.2g, std %.2g",
				acc.checks, acc.stdChecks, acc.worstSum, acc.worstMean, acc.worstVariance, acc.worstStd)
			if tc.step >= 10 {
				assert.Positive(t, acc.stdChecks, "the stream must exercise the std accuracy bound")
			}
		})
	}
}

func TestMomentsAggregatorsAgainstExactOnMixedDecimals(t *testing.T) {
	// Prices with 0 to 8 decimals, as tick sizes change: the exact accumulator
	// must rescale and stay exact.
	const seed = 21
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	a := newMomentsAggs()
	var ref exactSums
	var held []float64
	var acc accuracy
	for op := range 20_000 {
		if len(held) > 0 && (len(held) == 200 || r.IntN(2) == 0) {
			x := held[0]
			held = held[1:]
			ref.remove(t, x)
			a.remove(x)
		} else {
			decimals := r.IntN(9)
			x := math.Round((99_000+r.Float64()*2_000)*math.Pow10(decimals)) / math.Pow10(decimals)
			held = append(held, x)
			ref.add(t, x)
			a.add(x)
		}
		if msg := checkMoments(&ref, a, &acc); msg != "" {
			assert.Failf(t, "inaccurate moments", "op %d, %d values: %s", op, len(held), msg)
			return
		}
	}
	t.Logf("%d checks (%d under the std bound); worst relative errors: mean %.2g, std %.2g", acc.checks, acc.stdChecks, acc.worstMean, acc.worstStd)
	assert.Positive(t, acc.stdChecks, "the stream must exercise the std accuracy bound")
}

func TestAllEqualValuesHaveZeroVariance(t *testing.T) {
	tests := []struct {
		name   string
		before []float64 // added first, then removed: the window ends with equal values only
		value  float64
	}{
		{"BTC price", nil, 99_190.48},
		{"BTC price after other prices", []float64{99_190.47, 99_191.00, 98_000.01}, 99_190.48},
		{"a tenth", []float64{0.3, 0.7}, 0.1},
		{"negative", []float64{5}, -3.75},
		{"zero", []float64{1, -1}, 0},
		{"large integer", []float64{1}, 1e15},
		// 0.01 and 1e5 do not fit one exact scale: the accumulator leaves its exact mode.
		{"BTC price after an outlier tick", []float64{0.01, 99_190.47}, 99_190.48},
		{"after values of a wide range", []float64{0.01, 100_000}, 7.5},
	}
	for _, tc := range tests {
		for _, n := range []int{1, 2, 3, 10} {
			t.Run(fmt.Sprintf("%s/%d values", tc.name, n), func(t *testing.T) {
				a := newMomentsAggs()
				var ref exactSums
				for _, x := range tc.before {
					a.add(x)
				}
				for range n {
					a.add(tc.value)
					ref.add(t, tc.value)
				}
				for _, x := range tc.before {
					a.remove(x)
				}
				assert.Equalf(t, tc.value, a.mean.Result(), "the mean of %d copies of %v is that value, exactly", n, tc.value)
				e := floatRelErr(a.sum.Result(), ref.sum())
				assert.LessOrEqualf(t, e, 1e-12, "the sum of %d copies of %v: %v, relative error %g", n, tc.value, a.sum.Result(), e)
				assert.Zerof(t, a.popVariance.Result(), "population variance of %d equal values is exactly 0", n)
				assert.Zerof(t, a.popStd.Result(), "population std of %d equal values is exactly 0", n)
				if n < 2 {
					assert.Truef(t, math.IsNaN(a.variance.Result()), "sample variance of one value is undefined, got %v", a.variance.Result())
					assert.Truef(t, math.IsNaN(a.std.Result()), "sample std of one value is undefined, got %v", a.std.Result())
					return
				}
				assert.Zerof(t, a.variance.Result(), "sample variance of %d equal values is exactly 0", n)
				assert.Zerof(t, a.std.Result(), "sample std of %d equal values is exactly 0", n)
			})
		}
	}
}

// TestVarianceWhenFinerDecimalsArrive adds, to a window holding distinct
// coarse values (whole dollars), a value with many more binary digits (cents):
// the exact accumulator must move to a finer scale without corrupting its sums.
func TestVarianceWhenFinerDecimalsArrive(t *testing.T) {
	tests := []struct {
		name string
		ops  []float64 // a negative entry removes the oldest value, which must equal its opposite
	}{
		{"whole dollars then cents", []float64{99_190, 99_191, 99_190.48}},
		{"round numbers then cents", []float64{100_000, 100_001, 100_001.37}},
		{"half dollars then cents", []float64{99_190.5, 99_191, 99_190.48}},
		{"after a removal", []float64{100_922, 100_074, -100_922, 100_997.5061}},
		{"quarters then eighths", []float64{99_190.25, 99_191, 99_190.125}},
		{"small integers then a fine fraction", []float64{3, 5, 7.5061}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newMomentsAggs()
			var ref exactSums
			var held []float64
			var acc accuracy
			for i, x := range tc.ops {
				if x < 0 {
					require.NotEmpty(t, held, "op %d removes from an empty window", i)
					require.Equalf(t, -x, held[0], "op %d removes the oldest value", i)
					held = held[1:]
					ref.remove(t, -x)
					a.remove(-x)
				} else {
					held = append(held, x)
					ref.add(t, x)
					a.add(x)
				}
				if msg := checkMoments(&ref, a, &acc); msg != "" {
					exact, _ := ref.variance(1)
					assert.Failf(t, "wrong moments", "after op %d (%v), window %v: %s (exact sample variance %.6g)", i, x, held, msg, exact)
					return
				}
			}
			assert.Equal(t, len(tc.ops), acc.checks, "every step was checked")
		})
	}
}

// TestSumIsTheExactSumRoundedOnce checks Sum's documented promise: the exact
// sum of the values, rounded once (the float64 nearest to it).
func TestSumIsTheExactSumRoundedOnce(t *testing.T) {
	tests := []struct {
		name    string
		removed []float64 // added first and removed at the end
		vals    []float64
	}{
		{"three tenths", nil, []float64{0.1, 0.1, 0.1}},
		{"ten tenths", nil, []float64{0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1}},
		{"BTC prices", nil, []float64{99_190.48, 99_190.49, 99_190.47, 99_191.01}},
		{"integers", nil, []float64{1, 2, 3, 4}},
		{"three tenths after a removal", []float64{0.3, 0.7}, []float64{0.1, 0.1, 0.1}},
		{"ten tenths after a removal", []float64{0.3, 0.7}, []float64{0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1}},
		{"BTC prices after a removal", []float64{99_000.01}, []float64{99_190.48, 99_190.49, 99_190.47, 99_191.01}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := window.NewSum()
			exact := new(big.Rat)
			for _, v := range tc.removed {
				s.Add(v)
			}
			for _, v := range tc.vals {
				s.Add(v)
				exact.Add(exact, new(big.Rat).SetFloat64(v))
			}
			for _, v := range tc.removed {
				s.Remove(v)
			}
			want, _ := exact.Float64() // the nearest float64
			assert.Equalf(t, want, s.Result(), "Sum(%v): the exact sum %s rounded once", tc.vals, exact.FloatString(20))
		})
	}
}

// TestAccuracyAfterAnOutlierLeavesTheWindow slides a window over BTC-like
// prices in which one bad tick (0.01, a valid positive price) appears: once it
// has left the window, the window holds BTC-like prices only and the SPEC's
// accuracy applies again, whatever the window held before.
func TestAccuracyAfterAnOutlierLeavesTheWindow(t *testing.T) {
	const seed = 8
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	const size = 100
	a := newMomentsAggs()
	var ref exactSums
	var held []float64
	var acc accuracy
	cents := int64(9_919_048)
	for op := range 3_000 {
		x := 0.01
		if op != size/2 {
			cents += r.Int64N(21) - 10
			x = float64(cents) / 100
		}
		held = append(held, x)
		ref.add(t, x)
		a.add(x)
		if len(held) > size {
			ref.remove(t, held[0])
			a.remove(held[0])
			held = held[1:]
		}
		if op < size/2+size+1 {
			continue // the outlier is in the window: no accuracy promised
		}
		if msg := checkMoments(&ref, a, &acc); msg != "" {
			assert.Failf(t, "inaccurate moments after the outlier left", "op %d (%d ops after it left): %s", op, op-size/2-size, msg)
			return
		}
	}
	t.Logf("%d checks (%d under the std bound); worst relative errors: mean %.2g, std %.2g", acc.checks, acc.stdChecks, acc.worstMean, acc.worstStd)
	assert.Positive(t, acc.stdChecks, "the stream must exercise the std accuracy bound")
}
