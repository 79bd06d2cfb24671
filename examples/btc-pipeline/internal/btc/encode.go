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

func appendHead(dst []byte, key string, t stream.Time) []byte {
	dst = append(dst, `{"timestamp":"`...)
	dst = AppendTime(dst, t)
	dst = append(dst, `","symbol":`...)
	return appendString(dst, key)
}

// Encoder writes the pipeline's JSON records. Its labels follow the windows'
// order. It is safe for concurrent use once built (it is read-only).
type Encoder struct {
	labels  []string
	horizon stream.Time
}

// NewEncoder returns an Encoder for the given windows and lookahead horizon.
func NewEncoder(windows []time.Duration, horizon time.Duration) *Encoder {
	e := &Encoder{horizon: stream.DurationOf(horizon)}
	for _, w := range windows {
		e.labels = append(e.labels, Label(w))
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
	dst = AppendTime(dst, p.Time)
	return append(dst, `"}`...)
}

// AppendMoving appends a btc-price-moving record.
func (e *Encoder) AppendMoving(dst []byte, key string, t stream.Time, stats []window.Stats) []byte {
	dst = appendHead(dst, key, t)
	dst = append(dst, `,"windows":[`...)
	for i, st := range stats {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"window":"`...)
		dst = append(dst, e.labels[i]...)
		dst = append(dst, `","avg_price":`...)
		dst = appendFloat(dst, st.Mean)
		dst = append(dst, `,"std_price":`...)
		dst = appendFloat(dst, st.Std)
		dst = append(dst, `,"count":`...)
		dst = strconv.AppendInt(dst, st.Count, 10)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// AppendZScore appends a btc-price-zscore record.
func (e *Encoder) AppendZScore(dst []byte, key string, t stream.Time, price float64, scores []zscore.Score) []byte {
	dst = appendHead(dst, key, t)
	dst = append(dst, `,"price":`...)
	dst = appendFloat(dst, price)
	dst = append(dst, `,"zscores":[`...)
	for i, sc := range scores {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"window":"`...)
		dst = append(dst, e.labels[i]...)
		dst = append(dst, `","zscore_price":`...)
		if sc.OK {
			dst = appendFloat(dst, sc.Z)
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
	dst = appendHead(dst, key, t)
	dst = append(dst, ',', '"')
	dst = append(dst, field...)
	dst = append(dst, '"', ':')
	dst = appendSeconds(dst, m.Delay(t, e.horizon))
	return append(dst, '}')
}
