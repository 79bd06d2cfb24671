package window

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exact computes the mean and the sample and population variances of xs with
// rational arithmetic over the exact values of the float64s.
func exact(xs []float64) (mean, sampleVar, popVar float64) {
	n := int64(len(xs))
	if n == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	sum := new(big.Rat)
	for _, x := range xs {
		sum.Add(sum, new(big.Rat).SetFloat64(x))
	}
	m := new(big.Rat).Quo(sum, big.NewRat(n, 1))
	ss := new(big.Rat)
	for _, x := range xs {
		d := new(big.Rat).Sub(new(big.Rat).SetFloat64(x), m)
		ss.Add(ss, d.Mul(d, d))
	}
	mean, _ = m.Float64()
	popVar, _ = new(big.Rat).Quo(ss, big.NewRat(n, 1)).Float64()
	sampleVar = math.NaN()
	if n > 1 {
		sampleVar, _ = new(big.Rat).Quo(ss, big.NewRat(n-1, 1)).Float64()
	}
	return mean, sampleVar, popVar
}

// checkAccuracy asserts SPEC section 3's bounds: relative error of the mean <=
// 1e-12, of the std <= 1e-9 whenever the exact std >= 1e-6 x |mean|, and an
// exact zero variance is reported as exactly zero.
func checkAccuracy(t *testing.T, xs []float64, gotMean, gotVar float64, msg string) {
	t.Helper()
	mean, v, _ := exact(xs)
	if len(xs) == 0 {
		assert.True(t, math.IsNaN(gotMean), "%s: mean of nothing is NaN", msg)
		return
	}
	assert.LessOrEqual(t, math.Abs(gotMean-mean), 1e-12*math.Abs(mean), "%s: mean %v vs exact %v", msg, gotMean, mean)
	if len(xs) < 2 {
		assert.True(t, math.IsNaN(gotVar), "%s: variance of one value is NaN", msg)
		return
	}
	if v == 0 {
		assert.Zero(t, gotVar, "%s: all-equal values have variance exactly 0", msg)
		return
	}
	std, gotStd := math.Sqrt(v), math.Sqrt(gotVar)
	if std >= 1e-6*math.Abs(mean) {
		assert.LessOrEqual(t, math.Abs(gotStd-std), 1e-9*std, "%s: std %v vs exact %v", msg, gotStd, std)
	}
}

func TestMomentsEdges(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
	}{
		{"empty", nil},
		{"single", []float64{99190.48}},
		{"two", []float64{99190.48, 99190.49}},
		{"all equal", []float64{99190.48, 99190.48, 99190.48, 99190.48}},
		{"zero", []float64{0, 0}},
		{"negative and positive", []float64{-1.5, 2.25, -0.125, 3}},
		{"cancellation trap: tiny spread at 1e5", []float64{100000.01, 100000.02, 100000.01, 100000.03}},
		{"mixed granularity and exponents", []float64{99190.48, 99190.485, 99190.4875, 61556.045, 131072.5}},
		{"large integers", []float64{1e30, 2e30, 3e30}},
		{"integers", []float64{1, 2, 3, 4, 5}},
		{"huge and tiny: float fallback", []float64{1e300, 1e-300, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Moments
			for _, x := range tt.xs {
				m.Add(x)
			}
			assert.Equal(t, int64(len(tt.xs)), m.Count(), "count")
			if tt.name == "huge and tiny: float fallback" {
				assert.False(t, m.Exact(), "values spanning 600 orders of magnitude cannot be exact")
				return
			}
			assert.True(t, m.Exact(), "exact mode")
			checkAccuracy(t, tt.xs, m.Mean(), m.Variance(), "after adds")
			_, _, pv := exact(tt.xs)
			if len(tt.xs) > 0 && pv > 0 {
				assert.InEpsilon(t, pv, m.PopVariance(), 1e-12, "population variance")
			}
		})
	}
}

// TestMomentsSlidingRandom slides a FIFO window over long random walks in
// cents around 1e5 and checks every result against exact arithmetic: removal is
// exact, so nothing drifts however long the stream.
func TestMomentsSlidingRandom(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Logf("seed %d", seed)
		r := rand.New(rand.NewPCG(seed, seed))
		var m Moments
		var win []float64
		cents := int64(9_919_048)
		for i := range 20_000 {
			switch r.IntN(10) {
			case 0: // a quiet spell: the price does not move
			default:
				cents += int64(r.IntN(7)) - 3
			}
			x := float64(cents) / 100
			if r.IntN(50) == 0 {
				x = float64(cents)/100 + 0.005 // a half-cent mid price
			}
			m.Add(x)
			win = append(win, x)
			for len(win) > 1+r.IntN(200) {
				m.Remove(win[0])
				win = win[1:]
			}
			if i%97 == 0 {
				checkAccuracy(t, win, m.Mean(), m.Variance(), "sliding")
				require.True(t, m.Exact(), "stays exact")
			}
		}
		for len(win) > 0 {
			m.Remove(win[0])
			win = win[1:]
		}
		assert.Zero(t, m.Count(), "empty again")
	}
}

func TestMomentsRecoverExactnessWhenEmptied(t *testing.T) {
	var m Moments
	m.Add(1e300)
	m.Add(1e-300)
	require.False(t, m.Exact(), "float mode")
	m.Remove(1e300)
	m.Remove(1e-300)
	m.Add(5)
	m.Add(7)
	assert.True(t, m.Exact(), "an emptied accumulator is exact again")
	assert.Equal(t, 6.0, m.Mean(), "mean")
	assert.Equal(t, 2.0, m.Variance(), "variance")
}

func TestMomentsFloatModeIsClose(t *testing.T) {
	var m Moments
	xs := []float64{1e30, 1e-30, 3, 4, 5}
	for _, x := range xs {
		m.Add(x)
	}
	mean, v, _ := exact(xs)
	assert.InEpsilon(t, mean, m.Mean(), 1e-12, "mean in float mode")
	assert.InEpsilon(t, v, m.Variance(), 1e-9, "variance in float mode")
}

func TestU192Float(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	toU192 := func(b *big.Int) u192 {
		w := b.FillBytes(make([]byte, 24))
		be := func(i int) uint64 {
			var v uint64
			for _, c := range w[i : i+8] {
				v = v<<8 | uint64(c)
			}
			return v
		}
		return u192{be(16), be(8), be(0)}
	}
	// Ties and their neighbours: 54-bit odd mantissas at every shift.
	for s := range 191 - 54 {
		m := new(big.Int).SetUint64(1<<53 | r.Uint64()>>11 | 1)
		for _, d := range []int64{-1, 0, 1} {
			v := new(big.Int).Add(new(big.Int).Lsh(m, uint(s)), big.NewInt(d))
			want, _ := new(big.Float).SetInt(v).Float64()
			a := toU192(v)
			assert.Equal(t, want, a.float(), "%v = %x: rounded once, ties to even", v, a)
		}
	}
	for i := range 3000 {
		a := u192{r.Uint64(), r.Uint64() >> r.UintN(64), r.Uint64() >> (1 + r.UintN(63))}
		switch i % 3 { // also values of 128 and of 64 bits
		case 1:
			a.hi = 0
		case 2:
			a.hi, a.mid = 0, 0
			a.lo >>= r.UintN(64)
		}
		want := new(big.Float).SetInt(new(big.Int).Or(new(big.Int).Lsh(new(big.Int).SetUint64(a.hi), 128),
			new(big.Int).Or(new(big.Int).Lsh(new(big.Int).SetUint64(a.mid), 64), new(big.Int).SetUint64(a.lo))))
		w, _ := want.Float64() // rounded to nearest, ties to even
		assert.Equal(t, w, a.float(), "u192 %x: rounded once", a)
		neg := a.negate()
		assert.Equal(t, -w, neg.float(), "negated u192 %x: rounded once", a)
	}
}

// TestFloat128 checks the conversion of 128-bit values on both sides of its
// branch at 2^76: ties and their neighbours at every shift, with bits set
// only below the rounding bit, and random values of every length.
func TestFloat128(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	check := func(v *big.Int) {
		t.Helper()
		want, _ := new(big.Float).SetInt(v).Float64() // rounded to nearest, ties to even
		hi := new(big.Int).Rsh(v, 64).Uint64()
		lo := new(big.Int).And(v, new(big.Int).SetUint64(^uint64(0))).Uint64()
		assert.Equal(t, want, float128(hi, lo), "%v = %#x*2^64 + %#x: rounded once", v, hi, lo)
	}
	for s := range 128 - 54 {
		for range 4 {
			m := new(big.Int).SetUint64(1<<53 | r.Uint64()>>11 | 1) // 54 bits: a tie at shift s
			for _, d := range []int64{-1, 0, 1} {
				check(new(big.Int).Add(new(big.Int).Lsh(m, uint(s)), big.NewInt(d)))
			}
			// 53 bits and one more far below: the sticky bit alone decides.
			for _, b := range []uint{0, 21, 22, 23} {
				if b < uint(s) {
					check(new(big.Int).SetBit(new(big.Int).Lsh(m, uint(s)), int(b), 1))
				}
			}
		}
	}
	for k := range 128 {
		check(new(big.Int).Lsh(big.NewInt(1), uint(k)))
		check(new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(k+1)), big.NewInt(1)))
	}
	for range 20000 {
		v := new(big.Int).Or(new(big.Int).Lsh(new(big.Int).SetUint64(r.Uint64()), 64), new(big.Int).SetUint64(r.Uint64()))
		check(v.Rsh(v, r.UintN(128)))
	}
}

func BenchmarkMomentsAddRemove(b *testing.B) {
	var m Moments
	xs := make([]float64, 1024)
	for i := range xs {
		xs[i] = 99190.48 + float64(i%37)/100
	}
	for _, x := range xs {
		m.Add(x)
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		m.Remove(xs[i&1023])
		m.Add(xs[i&1023])
		i++
	}
}
