package window

import (
	"math/bits"
)

// u192 is a 192-bit integer; signed values use two's complement. It is a
// struct of three words rather than an array so that the compiler keeps it in
// registers (Go keeps small structs, not arrays, in registers).
type u192 struct{ lo, mid, hi uint64 }

func (a *u192) addSigned(d int64) {
	var c uint64
	a.lo, c = bits.Add64(a.lo, uint64(d), 0)
	ext := uint64(d >> 63) // 0 or all ones
	a.mid, c = bits.Add64(a.mid, ext, c)
	a.hi, _ = bits.Add64(a.hi, ext, c)
}

func (a *u192) add128(hi, lo uint64) {
	var c uint64
	a.lo, c = bits.Add64(a.lo, lo, 0)
	a.mid, c = bits.Add64(a.mid, hi, c)
	a.hi += c
}

func (a *u192) add192(b u192) {
	var c uint64
	a.lo, c = bits.Add64(a.lo, b.lo, 0)
	a.mid, c = bits.Add64(a.mid, b.mid, c)
	a.hi, _ = bits.Add64(a.hi, b.hi, c)
}

func (a *u192) sub128(hi, lo uint64) {
	var b uint64
	a.lo, b = bits.Sub64(a.lo, lo, 0)
	a.mid, b = bits.Sub64(a.mid, hi, b)
	a.hi -= b
}

// minus returns a - b, modulo 2^192.
func (a u192) minus(b u192) u192 {
	var c uint64
	var r u192
	r.lo, c = bits.Sub64(a.lo, b.lo, 0)
	r.mid, c = bits.Sub64(a.mid, b.mid, c)
	r.hi, _ = bits.Sub64(a.hi, b.hi, c)
	return r
}

// int64 returns a signed value as an int64 if it fits.
func (a u192) int64() (int64, bool) {
	v := int64(a.lo)
	ext := uint64(v >> 63)
	return v, a.mid == ext && a.hi == ext
}

// toFloat is float with a fast path for values that fit 64 bits.
func (a u192) toFloat() float64 {
	if v, ok := a.int64(); ok {
		return float64(v)
	}
	return a.float()
}

func (a u192) neg() bool { return int64(a.hi) < 0 }

// greater reports a > b for non-negative values.
func (a u192) greater(b u192) bool {
	if a.hi != b.hi {
		return a.hi > b.hi
	}
	if a.mid != b.mid {
		return a.mid > b.mid
	}
	return a.lo > b.lo
}

func (a u192) negate() u192 {
	var c uint64
	var r u192
	r.lo, c = bits.Add64(^a.lo, 1, 0)
	r.mid, c = bits.Add64(^a.mid, 0, c)
	r.hi, _ = bits.Add64(^a.hi, 0, c)
	return r
}

// shl shifts a signed value left by k bits (any k); ok is false on overflow.
func (a u192) shl(k uint) (u192, bool) {
	for k > 0 {
		step := min(k, 62)
		top := int64(a.hi) >> (63 - step) // sign-extended top step+1 bits
		if top != 0 && top != -1 {
			return a, false // bits, or the sign, would be lost
		}
		a = u192{a.lo << step, a.mid<<step | a.lo>>(64-step), a.hi<<step | a.mid>>(64-step)}
		k -= step
	}
	return a, true
}

// mul64 multiplies a non-negative a (which must be below 2^192 / b) by b.
func (a u192) mul64(b uint64) u192 {
	h0, l0 := bits.Mul64(a.lo, b)
	h1, l1 := bits.Mul64(a.mid, b)
	_, l2 := bits.Mul64(a.hi, b)
	var r u192
	var c uint64
	r.lo = l0
	r.mid, c = bits.Add64(l1, h0, 0)
	r.hi, _ = bits.Add64(l2, h1, c)
	return r
}

// square returns a*a for a non-negative a below 2^96.
func (a u192) square() u192 {
	if a.mid == 0 && a.hi == 0 {
		hi, lo := bits.Mul64(a.lo, a.lo)
		return u192{lo, hi, 0}
	}
	// (a1*2^64 + a0)^2 = a1^2*2^128 + 2*a0*a1*2^64 + a0^2
	h00, l00 := bits.Mul64(a.lo, a.lo)
	h01, l01 := bits.Mul64(a.lo, a.mid)
	_, l11 := bits.Mul64(a.mid, a.mid)
	var r u192
	var c uint64
	r.lo = l00
	r.mid, c = bits.Add64(h00, l01, 0)
	r.hi, _ = bits.Add64(l11, h01, c)
	r.mid, c = bits.Add64(r.mid, l01, 0)
	r.hi, _ = bits.Add64(r.hi, h01, c)
	return r
}

// float converts a signed value to float64, rounded once.
func (a u192) float() float64 {
	if a.neg() {
		return -a.negate().ufloat()
	}
	return a.ufloat()
}

// ufloat converts a non-negative value to float64, rounded once.
func (a u192) ufloat() float64 {
	hi, lo, scale := a.narrow()
	return float128(hi, lo) * scale
}

// narrow returns a non-negative a as hi*2^64 + lo, times scale (1 or 2^64), with
// any bits dropped folded into the lowest bit of lo, which is below the 64
// leading bits when hi is not 0: float128(hi, lo) * scale rounds as a would.
func (a u192) narrow() (hi, lo uint64, scale float64) {
	if a.hi != 0 {
		return a.hi, a.mid | nonzero(a.lo), 0x1p64
	}
	return a.mid, a.lo, 1
}

// float128 converts hi*2^64 + lo to float64, rounded once: it splits the value
// into two float64s, each exact, so that their sum is the only rounding. It
// inlines, and its one branch, at 2^76, is as predictable as the magnitude of
// the values (a window's n*S2 - S1^2 mostly stays on one side).
func float128(hi, lo uint64) float64 {
	const low53 = 1<<53 - 1
	if hi < 1<<12 {
		// Below 2^76, so below 2^106: a*2^53 + b with a and b below 2^53.
		return float64(int64(hi<<11|lo>>53))*0x1p53 + float64(int64(lo&low53))
	}
	// At 2^76 or above, the bit that decides the rounding is bit 23 or
	// above, and the bits below it only matter by being nonzero: a*2^75 +
	// b*2^22 with a the bits from 75 on (below 2^53), b bits 22 to 74 and
	// bit 0 of b also set if any of bits 0 to 21 is.
	b := (hi<<42|lo>>22)&low53 | nonzero(lo&(1<<22-1))
	return float64(int64(hi>>11))*0x1p75 + float64(int64(b))*0x1p22
}

// nonzero returns 1 if x is not 0, else 0, without a branch (as a sticky bit
// it is random: a branch on it would be mispredicted half the time).
func nonzero(x uint64) uint64 {
	if x != 0 {
		return 1
	}
	return 0
}
