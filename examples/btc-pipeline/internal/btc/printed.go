package btc

import (
	"math"
	"math/bits"
)

// printed returns the value a reader of the topics parses back from what
// appendFixed(dst, f, minAbs) writes: the nearest float64 to the decimal
// printed, bit for bit as strconv.ParseFloat would give it. The z-score
// stage reads the moving records' statistics from btc-price-moving, so the
// offline pipeline scores prices against printed(mean) and printed(std): the
// two compute from the same values and write the same z-scores.
func printed(f, minAbs float64) float64 {
	a := math.Abs(f)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return math.NaN() // written as null
	}
	if !(a >= minAbs && a < fixedLimit) {
		return f // written by appendFloat: the shortest text that reads back as f
	}
	n := uint64(math.Round(a * 1e12))
	v := fixed12(n)
	if f < 0 && n != 0 {
		v = -v
	}
	return v
}

// printedStd returns the value a reader parses back from what appendStd(dst,
// f) writes, as printed does for appendFixed.
func printedStd(f float64) float64 {
	a := math.Abs(f)
	if !(a >= stdSigLow && a < 1) {
		return printed(f, 1)
	}
	d, n := stdScaled(a)
	v := fixedDiv(n, pow10u[d])
	if f < 0 {
		v = -v
	}
	return v
}

// fixed12 returns n * 10^-12 rounded to the nearest float64 (ties to even).
// The quotient by 10^12 is computed as a 128-bit fixed-point number with a
// sticky bit for what is left, and rounded once: the integer part and 64
// bits of fraction when the value is at least 1 (65 significant bits or
// more), or 128 bits of fraction when it is below 1 (the value is at least
// 10^-12, so 88 significant bits or more).
func fixed12(n uint64) float64 { return fixedDiv(n, 1_000_000_000_000) }

// fixedDiv returns n / c rounded to the nearest float64 (ties to even), for
// c a power of ten from 10^12 to 10^17 and n / c at least 10^-12, as
// fixed12 says.
func fixedDiv(n, c uint64) float64 {
	if n <= 1<<53 && c <= 1<<53 {
		// Both are float64s exactly, and IEEE 754 division rounds the
		// exact quotient once, to nearest, ties to even: the same value,
		// in a fraction of the time (values up to 9007 with 12 decimals,
		// and standard deviations below 1 down to 1e-3).
		return float64(n) / float64(c)
	}
	q, r := n/c, n%c
	f1, r1 := bits.Div64(r, 0, c) // r < c: the fraction r/c, its first 64 bits
	if q > 0 {
		return round128(q, f1, r1 != 0, -64)
	}
	f2, r2 := bits.Div64(r1, 0, c) // the next 64 bits
	return round128(f1, f2, r2 != 0, -128)
}

// round128 returns (hi*2^64 + lo + epsilon) * 2^exp rounded to the nearest
// float64, ties to even, where epsilon is a positive amount below one unit
// of lo when sticky is set. It assumes the result is a normal float64.
func round128(hi, lo uint64, sticky bool, exp int) float64 {
	if hi == 0 && lo == 0 {
		return 0
	}
	// Shift so that the top bit is bit 127.
	lz := bits.LeadingZeros64(hi)
	if hi == 0 {
		lz = 64 + bits.LeadingZeros64(lo)
	}
	switch {
	case lz >= 64:
		hi, lo = lo<<(lz-64), 0
	case lz > 0:
		hi, lo = hi<<lz|lo>>(64-lz), lo<<lz
	}
	mant := hi >> 11     // 53 bits, the top one set
	half := hi >> 10 & 1 // the first bit below the mantissa
	below := hi&(1<<10-1) != 0 || lo != 0 || sticky
	if half == 1 && (below || mant&1 == 1) {
		mant++
	}
	// The value is mant * 2^(127 - lz - 52 + exp); a carry out of 53 bits
	// is exact in Ldexp.
	return math.Ldexp(float64(mant), 127-lz-52+exp)
}
