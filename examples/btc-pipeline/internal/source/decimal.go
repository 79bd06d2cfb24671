package source

import (
	"errors"
	"math"
	"strconv"
)

// maxPriceLen bounds the length of a price string Binance may send.
const maxPriceLen = 64

// The reasons a price string is refused.
var (
	errPriceSyntax = errors.New("not a plain decimal (digits, an optional fraction)")
	errPriceRange  = errors.New("not finite and > 0")
)

// appendDecimal validates a decimal price string as Binance writes them,
// "99190.48000000": one or more digits, then optionally '.' and one or more
// digits; no sign, exponent, spaces, NaN or Inf. It appends the same number
// as JSON number text, with leading zeros of the whole part and trailing
// zeros of the fraction removed ("99190.48000000" -> 99190.48,
// "100.00000000" -> 100, "0.00001000" -> 0.00001), so the text is exactly
// Binance's decimal. The value must be finite and > 0 as a float64, as the
// pipeline's decoder requires. On error dst is returned unchanged.
func appendDecimal(dst []byte, s string) ([]byte, error) {
	if len(s) == 0 || len(s) > maxPriceLen {
		return dst, errPriceSyntax
	}
	dot := -1
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
		case c == '.' && dot < 0:
			dot = i
		default:
			return dst, errPriceSyntax
		}
	}
	whole, frac := s, ""
	if dot >= 0 {
		whole, frac = s[:dot], s[dot+1:]
		if len(whole) == 0 || len(frac) == 0 {
			return dst, errPriceSyntax
		}
	}
	for len(whole) > 1 && whole[0] == '0' {
		whole = whole[1:]
	}
	for len(frac) > 0 && frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}
	n := len(dst)
	dst = append(dst, whole...)
	if frac != "" {
		dst = append(append(dst, '.'), frac...)
	}
	v, err := strconv.ParseFloat(string(dst[n:]), 64)
	if err != nil || !(v > 0) || math.IsInf(v, 0) {
		return dst[:n], errPriceRange
	}
	return dst, nil
}
