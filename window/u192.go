package window

import (
	"math"
	"math/bits"
)

// u192 is a 192-bit integer, little-endian limbs; signed values use two's complement.
type u192 [3]uint64

func (a *u192) addSigned(d int64) {
	var c uint64
	a[0], c = bits.Add64(a[0], uint64(d), 0)
	ext := uint64(d >> 63) // 0 or all ones
	a[1], c = bits.Add64(a[1], ext, c)
	a[2], _ = bits.Add64(a[2], ext, c)
}

func (a *u192) add128(hi, lo uint64) {
	var c uint64
	a[0], c = bits.Add64(a[0], lo, 0)
	a[1], c = bits.Add64(a[1], hi, c)
	a[2] += c
}

func (a *u192) add192(b u192) {
	var c uint64
	a[0], c = bits.Add64(a[0], b[0], 0)
	a[1], c = bits.Add64(a[1], b[1], c)
	a[2], _ = bits.Add64(a[2], b[2], c)
}

func (a *u192) sub128(hi, lo uint64) {
	var b uint64
	a[0], b = bits.Sub64(a[0], lo, 0)
	a[1], b = bits.Sub64(a[1], hi, b)
	a[2] -= b
}

func (a *u192) sub(b u192) {
	var c uint64
	a[0], c = bits.Sub64(a[0], b[0], 0)
	a[1], c = bits.Sub64(a[1], b[1], c)
	a[2], _ = bits.Sub64(a[2], b[2], c)
}

// int64 returns a signed value as an int64 if it fits.
func (a *u192) int64() (int64, bool) {
	v := int64(a[0])
	ext := uint64(v >> 63)
	return v, a[1] == ext && a[2] == ext
}

// toFloat is float with a fast path for values that fit 64 bits.
func (a *u192) toFloat() float64 {
	if v, ok := a.int64(); ok {
		return float64(v)
	}
	return a.float()
}

func (a u192) neg() bool { return int64(a[2]) < 0 }

func (a u192) negate() u192 {
	var c uint64
	var r u192
	r[0], c = bits.Add64(^a[0], 1, 0)
	r[1], c = bits.Add64(^a[1], 0, c)
	r[2], _ = bits.Add64(^a[2], 0, c)
	return r
}

// shl shifts a signed value left by k bits (any k); ok is false on overflow.
func (a u192) shl(k uint) (u192, bool) {
	for k > 0 {
		step := min(k, 62)
		top := int64(a[2]) >> (63 - step) // sign-extended top step+1 bits
		if top != 0 && top != -1 {
			return a, false // bits, or the sign, would be lost
		}
		a = u192{a[0] << step, a[1]<<step | a[0]>>(64-step), a[2]<<step | a[1]>>(64-step)}
		k -= step
	}
	return a, true
}

// mul64 multiplies a non-negative a (which must be below 2^192 / b) by b.
func (a u192) mul64(b uint64) u192 {
	h0, l0 := bits.Mul64(a[0], b)
	h1, l1 := bits.Mul64(a[1], b)
	_, l2 := bits.Mul64(a[2], b)
	var r u192
	var c uint64
	r[0] = l0
	r[1], c = bits.Add64(l1, h0, 0)
	r[2], _ = bits.Add64(l2, h1, c)
	return r
}

// square returns a*a for a non-negative a below 2^96.
func (a u192) square() u192 {
	if a[1] == 0 && a[2] == 0 {
		hi, lo := bits.Mul64(a[0], a[0])
		return u192{lo, hi, 0}
	}
	// (a1*2^64 + a0)^2 = a1^2*2^128 + 2*a0*a1*2^64 + a0^2
	h00, l00 := bits.Mul64(a[0], a[0])
	h01, l01 := bits.Mul64(a[0], a[1])
	_, l11 := bits.Mul64(a[1], a[1])
	var r u192
	var c uint64
	r[0] = l00
	r[1], c = bits.Add64(h00, l01, 0)
	r[2], _ = bits.Add64(l11, h01, c)
	r[1], c = bits.Add64(r[1], l01, 0)
	r[2], _ = bits.Add64(r[2], h01, c)
	return r
}

// float converts a signed value to float64, within one ulp.
func (a u192) float() float64 {
	if a.neg() {
		n := a.negate()
		return -n.ufloat()
	}
	return a.ufloat()
}

// ufloat converts a non-negative value to float64, within one ulp. It goes
// through int64 conversions, which are one instruction on common hardware,
// where uint64 ones are not.
func (a *u192) ufloat() float64 {
	var top uint64 // the 64 leading bits, with a sticky bit for the rest
	var exp int    // value ~= top * 2^exp
	switch {
	case a[2] == 0 && a[1] == 0:
		top, exp = a[0], 0
	case a[2] == 0:
		lz := uint(bits.LeadingZeros64(a[1]))
		top = a[1]<<lz | a[0]>>(64-lz) // a shift by 64 gives 0
		if a[0]<<lz != 0 {
			top |= 1
		}
		exp = 64 - int(lz)
	default:
		lz := uint(bits.LeadingZeros64(a[2]))
		top = a[2]<<lz | a[1]>>(64-lz)
		if a[1]<<lz != 0 || a[0] != 0 {
			top |= 1
		}
		exp = 128 - int(lz)
	}
	if int64(top) >= 0 {
		return float64(int64(top)) * pow2(exp) // exact below 2^53, rounded once above
	}
	// Keep 63 bits and a sticky bit, so that the int64 conversion applies; the
	// dropped bit is 10 places below the rounding position.
	return float64(int64(top>>1|top&1)) * pow2(exp+1)
}

// pow2 returns 2^k for 0 <= k <= 1023.
func pow2(k int) float64 { return math.Float64frombits(uint64(k+1023) << 52) }
