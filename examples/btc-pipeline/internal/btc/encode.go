package btc

import (
	"math"
	"strconv"
	"time"

	"github.com/tidemark-go/tidemark/lookahead"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
	"github.com/tidemark-go/tidemark/zscore"
)

// Label names a window length as the topics and collections do: 30s, 1m, 1h,
// or 250ms for lengths that are not whole seconds.
func Label(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
}

// appendFloat appends f as the shortest JSON number that reads back as f, or
// null when f is not finite.
func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

const twoDigits = "00010203040506070809" + "10111213141516171819" + "20212223242526272829" +
	"30313233343536373839" + "40414243444546474849" + "50515253545556575859" + "60616263646566676869" +
	"70717273747576777879" + "80818283848586878889" + "90919293949596979899"

// fixedLimit bounds the values appendFixed writes with integer arithmetic:
// |f| * 1e12 must stay below 2^63.
const fixedLimit = 9e6

// appendFixed appends f rounded to 12 decimals, trailing zeros trimmed: an
// absolute error of at most 5e-13 (plus the rounding of f * 1e12, below 1e-12
// for |f| < 9e6), several times cheaper than the shortest representation. The
// statistics use it where that error is far inside SPEC section 3's bounds:
// for |f| >= 1 (relative error <= 1e-12) and for z-scores, whose accuracy is
// absolute. Other values, and NaN or infinities (null), go to appendFloat.
func appendFixed(dst []byte, f float64, minAbs float64) []byte {
	a := math.Abs(f)
	if !(a >= minAbs && a < fixedLimit) {
		return appendFloat(dst, f)
	}
	n := uint64(math.Round(a * 1e12))
	var buf [40]byte // [sign][whole digits] '.' [12 decimals], the whole part built right to left
	const point = 24
	frac, whole := n%1_000_000_000_000, n/1_000_000_000_000
	end := point
	if frac != 0 {
		// The twelve decimals as two halves of six, each as three pairs
		// of digits: two short chains of divisions by constants rather
		// than one long one (written out twice: a function would not be
		// inlined), and no second half when it is zero.
		buf[point] = '.'
		hi, lo := uint32(frac/1_000_000), uint32(frac%1_000_000)
		h1 := hi / 10000
		h2 := (hi - h1*10000) / 100
		h3 := hi - h1*10000 - h2*100
		b := buf[point+1 : point+7]
		b[0], b[1], b[2], b[3], b[4], b[5] = twoDigits[2*h1], twoDigits[2*h1+1], twoDigits[2*h2], twoDigits[2*h2+1], twoDigits[2*h3], twoDigits[2*h3+1]
		end = point + 7
		if lo != 0 {
			l1 := lo / 10000
			l2 := (lo - l1*10000) / 100
			l3 := lo - l1*10000 - l2*100
			b := buf[point+7 : point+13]
			b[0], b[1], b[2], b[3], b[4], b[5] = twoDigits[2*l1], twoDigits[2*l1+1], twoDigits[2*l2], twoDigits[2*l2+1], twoDigits[2*l3], twoDigits[2*l3+1]
			end = point + 13
		}
		for buf[end-1] == '0' {
			end--
		}
	}
	start := putUint(&buf, point, whole)
	if f < 0 && n != 0 {
		start--
		buf[start] = '-'
	}
	return append(dst, buf[start:end]...)
}

// Standard deviations below 1 (down to stdSigLow) are written with 12
// significant digits: a relative error of at most 5e-12, far inside SPEC
// section 3's 1e-9 for std, and several times cheaper than the shortest
// representation (strconv's), which took an eighth of offline's CPU on
// traces of small prices. Means keep 12 decimals or the shortest text: their
// bound, 1e-12 relative, is tighter than 12 significant digits.
const stdSigLow = 1e-6

// pow10f and pow10u hold 10^(12+d) for d = stdDecimals(a), as float64
// multipliers and as integers.
var (
	pow10f = [...]float64{1e12, 1e13, 1e14, 1e15, 1e16, 1e17}
	pow10u = [...]uint64{1e12, 1e13, 1e14, 1e15, 1e16, 1e17}
)

// stdDecimals returns, for a in [stdSigLow, 1), the decimals that give a 12
// significant digits, less 12: 0 for a >= 0.1, 1 for a >= 0.01, ... 5 for
// a >= 1e-6 (each bound the float64 nearest the power of ten).
func stdDecimals(a float64) int {
	switch {
	case a >= 0.1:
		return 0
	case a >= 0.01:
		return 1
	case a >= 0.001:
		return 2
	case a >= 1e-4:
		return 3
	case a >= 1e-5:
		return 4
	}
	return 5
}

// stdScaled returns, for a in [stdSigLow, 1), d = stdDecimals(a) and a
// rounded to 12 + d decimals as an integer: at most 10^(12+d), as a rounds
// up to 1 at most. appendStd writes it and printedStd reads it back, so the
// two cannot disagree on the digits.
func stdScaled(a float64) (d int, n uint64) {
	d = stdDecimals(a)
	return d, uint64(math.Round(a * pow10f[d]))
}

// appendStd appends a standard deviation: as appendFixed(dst, f, 1) does
// for f >= 1, and for f in [stdSigLow, 1) with 12 significant digits
// (12 + stdDecimals(f) decimals), trailing zeros trimmed.
func appendStd(dst []byte, f float64) []byte {
	a := math.Abs(f)
	if !(a >= stdSigLow && a < 1) {
		return appendFixed(dst, f, 1)
	}
	d, n := stdScaled(a)
	var buf [40]byte
	const point = 2 // buf[0:2] is "0.", or "1" alone when a rounds up to 1
	whole, frac := n/pow10u[d], n%pow10u[d]
	end := point + 12 + d
	start := putUint(&buf, end, frac)
	for i := point; i < start; i++ {
		buf[i] = '0'
	}
	for end > point && buf[end-1] == '0' {
		end--
	}
	buf[1] = '.'
	if end == point {
		end = 1 // no decimals: no point
	}
	buf[0] = byte('0' + whole)
	if f < 0 {
		dst = append(dst, '-') // not from the windows; written for completeness
	}
	return append(dst, buf[:end]...)
}

// putUint writes n in decimal into buf ending just before end and returns
// where it starts.
func putUint(buf *[40]byte, end int, n uint64) int {
	j := end
	for n >= 100 {
		d := n % 100
		n /= 100
		j -= 2
		buf[j], buf[j+1] = twoDigits[2*d], twoDigits[2*d+1]
	}
	if n >= 10 {
		j -= 2
		buf[j], buf[j+1] = twoDigits[2*n], twoDigits[2*n+1]
	} else {
		j--
		buf[j] = byte('0' + n)
	}
	return j
}

// appendInt appends n in decimal.
func appendInt(dst []byte, n int64) []byte {
	var buf [40]byte
	u := uint64(n)
	if n < 0 {
		u = uint64(-n)
	}
	start := putUint(&buf, len(buf), u)
	if n < 0 {
		start--
		buf[start] = '-'
	}
	return append(dst, buf[start:]...)
}

// appendSeconds appends a millisecond count as seconds with at least one
// decimal: 20000 -> 20.0, 960 -> 0.96, 1001 -> 1.001.
func appendSeconds(dst []byte, ms stream.Time) []byte {
	if ms < 0 {
		dst = append(dst, '-')
		ms = -ms
	}
	dst = strconv.AppendInt(dst, int64(ms/1000), 10)
	frac := int(ms % 1000)
	dst = append(dst, '.', byte('0'+frac/100))
	if frac%100 != 0 {
		dst = append(dst, byte('0'+frac/10%10))
		if frac%10 != 0 {
			dst = append(dst, byte('0'+frac%10))
		}
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	// Symbols are plain ASCII in practice; anything else goes through strconv's
	// JSON-compatible quoting of control characters and quotes.
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return appendJSONString(dst, s)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			dst = append(dst, c) // UTF-8 passes through unchanged
		}
	}
	return append(dst, '"')
}

func (e *Encoder) appendHead(dst []byte, key string, t stream.Time) []byte {
	dst = append(dst, `{"timestamp":"`...)
	dst = append(dst, e.timestamp(t)...)
	dst = append(dst, `","symbol":`...)
	return appendString(dst, key)
}

// timestamp returns stream.AppendTime(nil, t), valid until the next call. Records
// come in about the order of their times: when t is in the minute of the
// last one formatted, only its seconds and milliseconds are written.
func (e *Encoder) timestamp(t stream.Time) []byte {
	switch last := e.lastTS; {
	case last != nil && t == e.lastT:
	case t >= 0 && e.lastT >= 0 && t/60_000 == e.lastT/60_000 &&
		len(last) == len("2006-01-02T15:04:05.000Z") && last[19] == '.' && last[23] == 'Z':
		ms := int(t % 60_000)
		ss, milli := ms/1000, ms%1000
		last[17], last[18] = twoDigits[2*ss], twoDigits[2*ss+1]
		last[20], last[21], last[22] = byte('0'+milli/100), twoDigits[2*(milli%100)], twoDigits[2*(milli%100)+1]
		e.lastT = t
	default:
		e.lastT, e.lastTS = t, stream.AppendTime(e.lastTS[:0], t)
	}
	return e.lastTS
}

// Encoder writes the pipeline's JSON records. Its labels follow the windows'
// order. Numbers: prices as the shortest representation that reads back
// exactly; averages and standard deviations of at least 1, and z-scores,
// rounded to 12 decimals (see appendFixed); standard deviations below 1 with
// 12 significant digits (appendStd); smaller averages in the shortest
// representation. An Encoder caches the last timestamp it formatted, so it is
// not safe for concurrent use.
type Encoder struct {
	labels  []string
	movingW []string // per window: `{"window":"30s","avg_price":`
	zW      []string // per window: `{"window":"30s","zscore_price":`
	horizon stream.Time
	lastT   stream.Time
	lastTS  []byte
}

// NewEncoder returns an Encoder for the given windows and lookahead horizon.
func NewEncoder(windows []time.Duration, horizon time.Duration) *Encoder {
	e := &Encoder{horizon: stream.DurationOf(horizon)}
	for _, w := range windows {
		l := Label(w)
		e.labels = append(e.labels, l)
		e.movingW = append(e.movingW, `{"window":"`+l+`","avg_price":`)
		e.zW = append(e.zW, `{"window":"`+l+`","zscore_price":`)
	}
	return e
}

// Labels returns the window labels in order.
func (e *Encoder) Labels() []string { return e.labels }

// AppendPrice appends a btc-price record.
func AppendPrice(dst []byte, p Price) []byte {
	dst = append(dst, `{"symbol":`...)
	dst = appendString(dst, p.Symbol)
	dst = append(dst, `,"price":`...)
	dst = appendFloat(dst, p.Price)
	dst = append(dst, `,"timestamp":"`...)
	dst = stream.AppendTime(dst, p.Time)
	return append(dst, `"}`...)
}

// AppendMoving appends a btc-price-moving record.
func (e *Encoder) AppendMoving(dst []byte, key string, t stream.Time, stats []window.Statistics) []byte {
	dst = e.appendHead(dst, key, t)
	dst = append(dst, `,"windows":[`...)
	for i, st := range stats {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, e.movingW[i]...)
		dst = appendFixed(dst, st.Mean, 1)
		dst = append(dst, `,"std_price":`...)
		dst = appendStd(dst, st.Std)
		dst = append(dst, `,"count":`...)
		dst = appendInt(dst, st.Count)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// AppendZScore appends a btc-price-zscore record.
func (e *Encoder) AppendZScore(dst []byte, key string, t stream.Time, price float64, scores []zscore.Score) []byte {
	dst = e.appendHead(dst, key, t)
	dst = append(dst, `,"price":`...)
	dst = appendFloat(dst, price)
	dst = append(dst, `,"zscores":[`...)
	for i, sc := range scores {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, e.zW[i]...)
		if sc.OK {
			dst = appendFixed(dst, sc.Z, 0)
		} else {
			dst = append(dst, "null"...)
		}
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// AppendLookahead appends a btc-price-higher (field higher_window) or
// btc-price-lower (lower_window) record: seconds to the match, or the horizon.
func (e *Encoder) AppendLookahead(dst []byte, field string, key string, t stream.Time, m lookahead.Match[float64]) []byte {
	return e.appendLookaheadDelay(dst, field, key, t, m.Delay(t, e.horizon))
}

// appendLookaheadDelay is AppendLookahead given the delay (Match.Delay).
func (e *Encoder) appendLookaheadDelay(dst []byte, field string, key string, t stream.Time, delay stream.Time) []byte {
	dst = e.appendHead(dst, key, t)
	dst = append(dst, ',', '"')
	dst = append(dst, field...)
	dst = append(dst, '"', ':')
	dst = appendSeconds(dst, delay)
	return append(dst, '}')
}
