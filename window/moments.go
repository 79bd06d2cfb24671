package window

import (
	"math"
	"math/bits"

	"github.com/tidemark-go/tidemark/internal/ring"
)

// Moments accumulates count, sum, mean and variance of float64 values, with
// removal, exactly.
//
// Each value x is a multiple of 2^-s for some s (its granularity); Moments keeps
// the integer X = x * 2^s of every value relative to a reference R (the first
// value added after the accumulator was empty), and the exact sums S1 = Σ(X-R)
// and S2 = Σ(X-R)^2 in 192-bit integers. Adding and removing are exact integer
// operations, so nothing drifts however long a sliding window runs, a window
// whose values are all equal has variance exactly 0, and the results come from
// the exact S1 and n*S2 - S1^2, each rounded once, through a few floating-point
// operations: the mean and variance are within a few ulps of the true ones,
// with no sum-of-squares cancellation.
//
// Exactness holds while every value held is below 2^62 in units of the finest
// granularity held (for prices around 1e5 with any decimals, the values may
// range over a factor of about 500). A value outside that range (a 0.01 tick
// among 1e5 prices, 1e-300 next to 1e300) switches the accumulator to Welford's
// streaming update in float64, stable but not exact, for as long as that value
// is held: Moments keeps the values it holds, and once the value leaves it
// rebuilds its exact sums from them (O(n), once per such value). Exact reports
// which mode is in force. NaN and infinite values also select the float mode,
// and poison its results while they are held.
//
// The zero value is empty and ready. A Moments is not safe for concurrent use.
type Moments struct {
	n int64
	fixed
	s1    u192    // Σ(X-R), two's complement
	s2    u192    // Σ(X-R)^2
	float bool    // Welford mode
	mean  float64 // Welford mean (float mode)
	m2    float64 // Welford M2 (float mode)

	// The values held, oldest first, for rebuilding after float mode; Add and
	// Remove maintain them (TrailingStatistics' shared mode bypasses both).
	vals    ring.Deque[float64]
	added   int64 // values added since the accumulator was last empty
	removed int64 // values removed since then
	unfit   int64 // float mode lasts at least until value number unfit has left
}

// fixed is a fixed-point scale and reference: values are the integers
// X = x * 2^scale, kept as X - ref. Moments and TrailingStatistics' shared buffer
// both use it.
type fixed struct {
	scale int     // s: values are integers in units of 2^-s
	mul   float64 // 2^s
	inv   float64 // 2^-s
	limit float64 // 2^62 / 2^s: |x| must stay below it
	ref   int64   // R, in units of 2^-s
	base  float64 // R * 2^-s, the reference as a value (exact)
}

func (f *fixed) setScale(s int) {
	f.scale = s
	f.mul = math.Ldexp(1, s)
	f.inv = math.Ldexp(1, -s)
	f.limit = math.Ldexp(1, 62-s)
	f.base = float64(f.ref) * f.inv
}

func (f *fixed) setRef(ref int64) {
	f.ref = ref
	f.base = float64(ref) * f.inv
}

// delta returns d = X - R for x at the current scale and reference; ok is
// false if x does not fit.
func (f *fixed) delta(x float64) (d int64, ok bool) {
	if !(math.Abs(x) < f.limit) || granularity(x) > f.scale {
		return 0, false
	}
	return int64(x*f.mul) - f.ref, true
}

// termOf converts x at the current scale and reference; the term is not
// scaled if x does not fit.
func (f *fixed) termOf(x float64) term {
	d, ok := f.delta(x)
	if !ok {
		return term{}
	}
	hi, lo := square(d)
	return term{d: d, sq1: hi, sq0: lo, scaled: true}
}

// square returns d^2 as a 128-bit integer.
func square(d int64) (hi, lo uint64) {
	a := uint64(d)
	if d < 0 {
		a = uint64(-d)
	}
	return bits.Mul64(a, a)
}

// term is a value prepared for the exact sums: d = X - R and d^2.
type term struct {
	d      int64
	sq1    uint64 // high 64 bits of d^2
	sq0    uint64 // low 64 bits of d^2
	scaled bool   // false: not representable at the current scale
}

// granularity returns the s for which x is an integer multiple of 2^-s
// (the smallest such s, which may be negative for large integers).
func granularity(x float64) int {
	b := math.Float64bits(x)
	exp := int(b >> 52 & 0x7ff)
	mant := b & (1<<52 - 1)
	if exp == 0 {
		if mant == 0 {
			return math.MinInt32 // zero fits any scale
		}
		exp = 1
	} else {
		mant |= 1 << 52
	}
	// x = mant * 2^(exp-1075)
	return 1075 - exp - bits.TrailingZeros64(mant)
}

// Count returns the number of values held.
func (m *Moments) Count() int64 { return m.n }

// Exact reports whether the accumulator is in its exact mode.
func (m *Moments) Exact() bool { return !m.float }

// Reset empties the accumulator, keeping its storage.
func (m *Moments) Reset() {
	v := m.vals
	v.Clear()
	*m = Moments{vals: v}
}

// Add adds x.
func (m *Moments) Add(x float64) {
	m.vals.PushBack(x)
	m.added++
	if m.float {
		m.addFloat(x)
		return
	}
	t := m.prepare(x)
	if !t.scaled {
		if !m.rescale(x) {
			m.toFloat()
			m.unfit = m.added
			m.addFloat(x)
			return
		}
		t = m.prepare(x)
	}
	m.addTerm(t)
}

// Remove removes x, which must be the oldest value held (windows slide in
// FIFO order).
func (m *Moments) Remove(x float64) {
	if m.n <= 1 {
		m.Reset()
		return
	}
	if m.vals.Len() > 0 {
		m.vals.PopFront()
	}
	m.removed++
	if m.float {
		n := float64(m.n)
		mean := (n*m.mean - x) / (n - 1)
		m.m2 -= (x - m.mean) * (x - mean)
		if m.m2 < 0 {
			m.m2 = 0
		}
		m.mean = mean
		m.n--
		if m.removed >= m.unfit {
			m.recover()
		}
		return
	}
	m.removeTerm(m.prepare(x))
}

// recover rebuilds the exact sums from the values held, if they now fit one
// scale; otherwise float mode lasts until the newest value held has left.
func (m *Moments) recover() {
	g, ok := fitScale(&m.vals)
	if !ok {
		m.unfit = m.added
		return
	}
	vals, added, removed := m.vals, m.added, m.removed
	*m = Moments{vals: vals, added: added, removed: removed}
	m.setScale(g)
	m.setRef(int64(*vals.At(0) * m.mul))
	for i := 0; i < vals.Len(); i++ {
		m.addTerm(m.termOf(*vals.At(i)))
	}
}

// fitScale returns the scale at which every value in vals is an integer below
// 2^62, if there is one.
func fitScale(vals *ring.Deque[float64]) (g int, ok bool) {
	g = math.MinInt32
	big := 0.0
	for i := 0; i < vals.Len(); i++ {
		v := *vals.At(i)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, false
		}
		g, big = max(g, granularity(v)), max(big, math.Abs(v))
	}
	if g == math.MinInt32 {
		g = 0
	}
	return g, g <= 1000 && big < math.Ldexp(1, 62-g)
}

// prepare converts x to a term at the current scale. A zero-count accumulator
// takes x as its reference.
func (m *Moments) prepare(x float64) term {
	if m.n == 0 {
		g := granularity(x)
		if math.IsNaN(x) || math.IsInf(x, 0) || g > 1000 {
			return term{}
		}
		if g == math.MinInt32 {
			g = 0
		}
		m.setScale(g) // an empty accumulator is free to choose its scale
		if math.Abs(x) >= m.limit {
			return term{}
		}
		m.setRef(int64(x * m.mul))
		return term{scaled: true}
	}
	return m.termOf(x)
}

// rescale moves to a finer scale that represents x, if the held values and the
// sums still fit; it reports whether it could.
func (m *Moments) rescale(x float64) bool {
	g := granularity(x)
	if math.IsNaN(x) || math.IsInf(x, 0) || g > 1000 {
		return false
	}
	if g <= m.scale {
		return false // x is too large at this scale, not too fine
	}
	shift := g - m.scale
	if shift >= 62 {
		return false
	}
	// The reference and the sums scale by 2^shift and 2^(2 shift); every
	// held |value| * 2^g must stay below 2^62, and x too.
	if math.Abs(x) >= math.Ldexp(1, 62-g) || m.maxHeldExceeds(g) {
		return false
	}
	s1, ok1 := m.s1.shl(uint(shift))
	s2, ok2 := m.s2.shl(uint(2 * shift))
	ref := m.ref << uint(shift)
	if !ok1 || !ok2 || ref>>uint(shift) != m.ref {
		return false
	}
	m.s1, m.s2, m.ref = s1, s2, ref
	m.setScale(g) // and the base
	return true
}

// maxHeldExceeds reports whether the held values might not fit at scale g: it
// bounds them through the reference and the largest possible deviation.
func (m *Moments) maxHeldExceeds(g int) bool {
	// Every held value satisfies |X - R| <= sqrt(S2) and |X| < 2^62 at the old
	// scale; at scale g each grows by 2^(g-scale). Be conservative: require the
	// old |R| + sqrt(S2) to fit 62-(g-scale) bits.
	bound := math.Abs(float64(m.ref)) + math.Sqrt(m.s2.float())
	return bound >= math.Ldexp(1, 62-(g-m.scale))
}

func (m *Moments) addTerm(t term) {
	m.n++
	m.s1.addSigned(t.d)
	m.s2.add128(t.sq1, t.sq0)
}

func (m *Moments) removeTerm(t term) {
	m.n--
	m.s1.addSigned(-t.d)
	m.s2.sub128(t.sq1, t.sq0)
}

// toFloat switches to Welford's update, starting from the exact state.
func (m *Moments) toFloat() {
	mean, m2 := 0.0, 0.0
	if m.n > 0 {
		// Called from Add, which holds the new value without summing it:
		// take the mean relative to the oldest value, which is summed.
		front := *m.vals.Front()
		mean = m.finish(m.n, m.meanTerms(front), numerator(m.n, m.s1, m.s2), front).Mean
		m2 = m.PopVariance() * float64(m.n)
	}
	*m = Moments{n: m.n, float: true, mean: mean, m2: m2, vals: m.vals, added: m.added, removed: m.removed}
}

func (m *Moments) addFloat(x float64) {
	m.n++
	delta := x - m.mean
	m.mean += delta / float64(m.n)
	m.m2 += delta * (x - m.mean)
}

// Mean returns the mean, or NaN when empty.
func (m *Moments) Mean() float64 {
	if m.n == 0 {
		return math.NaN()
	}
	if m.float {
		return m.mean
	}
	return m.stats().Mean // exact mode: the canonical mean, see finish
}

// Sum returns the sum, or 0 when empty.
func (m *Moments) Sum() float64 {
	if m.n == 0 {
		return 0
	}
	if m.float {
		return m.mean * float64(m.n)
	}
	// n*R + S1, exactly, then one rounding.
	var total u192
	total.addSigned(m.ref)
	neg := total.neg()
	if neg {
		total = total.negate()
	}
	total = total.mul64(uint64(m.n))
	if neg {
		total = total.negate()
	}
	total.add192(m.s1)
	return total.float() * m.inv
}

// numerator returns n*S2 - S1^2 = n * Σ(X - mean)^2 (scaled), rounded once.
// It requires n*S2 < 2^192 (n below 2^33 values suffices).
func numerator(n int64, s1, s2 u192) float64 {
	if v, ok := s1.int64(); ok && s2.hi == 0 {
		// The common case: S1 fits 64 bits and S2 128.
		sqH, sqL := square(v)
		return numerator128(n, s2, sqH, sqL).ufloat()
	}
	return numeratorWide(n, s1, s2)
}

// numerator128 returns n*S2 - S1^2 for an S2 that fits 128 bits and an S1^2
// given as sqH*2^64 + sqL. It inlines.
func numerator128(n int64, s2 u192, sqH, sqL uint64) u192 {
	h0, l0 := bits.Mul64(s2.lo, uint64(n))
	h1, l1 := bits.Mul64(s2.mid, uint64(n))
	r1, c := bits.Add64(l1, h0, 0)
	r0, b := bits.Sub64(l0, sqL, 0)
	r1, b = bits.Sub64(r1, sqH, b)
	return u192{r0, r1, h1 + c - b}
}

func numeratorWide(n int64, s1, s2 u192) float64 {
	if s1.neg() {
		s1 = s1.negate()
	}
	return s2.mul64(uint64(n)).minus(s1.square()).ufloat()
}

// Variance returns the sample variance (divisor n-1), or NaN with fewer than
// two values.
func (m *Moments) Variance() float64 {
	if m.n < 2 {
		return math.NaN()
	}
	if m.float {
		return m.m2 / float64(m.n-1)
	}
	n := float64(m.n)
	return numerator(m.n, m.s1, m.s2) / (n * (n - 1)) * m.inv * m.inv
}

// PopVariance returns the population variance (divisor n), or NaN when empty.
func (m *Moments) PopVariance() float64 {
	if m.n == 0 {
		return math.NaN()
	}
	if m.float {
		return m.m2 / float64(m.n)
	}
	n := float64(m.n)
	return numerator(m.n, m.s1, m.s2) / (n * n) * m.inv * m.inv
}

// stats returns count, mean, sample variance and std with a single division.
func (m *Moments) stats() Statistics {
	if m.float || m.n == 0 {
		v := m.Variance()
		return Statistics{Count: m.n, Mean: m.Mean(), Variance: v, Std: math.Sqrt(v)}
	}
	x := *m.vals.Back()
	return m.finish(m.n, m.meanTerms(x), numerator(m.n, m.s1, m.s2), x)
}

// meanTerms returns the terms of the mean of the values held, x the newest.
func (m *Moments) meanTerms(x float64) meanTerms {
	dx := int64(x*m.mul) - m.ref
	return termsOf(m.s1, m.n, m.ref, dx)
}

// meanTerms are what every path computes a mean from, functions of the
// values held only: rel = Σ(X - x), x the newest value, exactly, rounded
// once; or, when the values are far from x (|Σ(X - x)| > n |x| / 2, an
// exact test), the exact total ΣX rounded once instead.
type meanTerms struct {
	v   float64 // Σ(X - x), or ΣX when far
	far bool
}

// termsOf computes the mean terms from S1 = Σ(X - R), n, R and dx = x - R,
// all at one scale: Σ(X - x) = S1 - n dx and ΣX = S1 + n R, exactly.
func termsOf(s1 u192, n, ref, dx int64) meanTerms {
	rel := offsetSum(s1, n, dx)
	ar := rel
	if ar.neg() {
		ar = ar.negate()
	}
	ar, _ = ar.shl(1)
	var bound u192
	bound.add128(bits.Mul64(uint64(n), abs(ref+dx)))
	if ar.greater(bound) {
		return meanTerms{far: true, v: offsetSum(s1, n, -ref).toFloat()}
	}
	return meanTerms{v: rel.toFloat()}
}

// offsetSum returns S1 - n*d: Σ(X - (R + d)) for S1 = Σ(X - R), exactly.
func offsetSum(s1 u192, n, d int64) u192 {
	var nd u192
	nd.add128(bits.Mul64(uint64(n), abs(d)))
	if d < 0 {
		nd = nd.negate()
	}
	return s1.minus(nd)
}

// finish returns count, mean, sample variance and std of n >= 1 values at this
// scale from their mean terms and n*S2 - S1^2 (rounded once), with a single
// division; x is the newest value.
//
// Every path of Moments and TrailingStatistics computes the mean as meanOf does:
// so the mean, like the variance (n*S2 - S1^2 does not depend on the
// reference), is a function of the values held, bit for bit, whatever came
// before them, the key's reference and the scale (rounding commutes with
// scaling by powers of two). A task rebuilt from a checkpoint relies on it.
func (f *fixed) finish(n int64, mt meanTerms, num, x float64) Statistics {
	if n < 2 {
		return Statistics{Count: n, Mean: x, Variance: math.NaN(), Std: math.NaN()}
	}
	nf := float64(n)
	r := 1 / (nf * (nf - 1)) // 1/n = (n-1) r
	v := num * r * f.inv * f.inv
	return Statistics{Count: n, Mean: meanOf(mt, (nf-1)*r, f.inv, x), Variance: v, Std: math.Sqrt(v)}
}

// meanOf returns the mean from its terms, for recipN = 1/n and a scale of
// inv: x + Σ(X - x)/n, within a few ulps of the exact mean since |Σ(X - x)/n|
// <= |x|/2 (and exactly x when every value is x), or, for values far from
// x, ΣX/n from the exact total. The conversions keep the compiler from
// fusing operations, so that every architecture rounds alike.
func meanOf(mt meanTerms, recipN, inv, x float64) float64 {
	if mt.far {
		return float64(mt.v*recipN) * inv
	}
	return x + float64(mt.v*recipN*inv)
}

// Std returns the sample standard deviation (n-1), or NaN with fewer than two values.
func (m *Moments) Std() float64 { return math.Sqrt(m.Variance()) }

// PopStd returns the population standard deviation, or NaN when empty.
func (m *Moments) PopStd() float64 { return math.Sqrt(m.PopVariance()) }
