package dashboard

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"unsafe"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
	"github.com/tidemark-go/tidemark/zscore"
)

// decoder reads the derived records back. The stages write them with
// btc.Encoder in one fixed layout, which the fast path below expects field by
// field (no reflection, no allocation); anything else goes to the btc codecs,
// which accept any valid JSON. A decoder is not safe for concurrent use: it
// interns symbols and reuses its slices.
type decoder struct {
	labels  []string
	movingW []string // per window: `{"window":"30s","avg_price":`
	zW      []string // per window: `{"window":"30s","zscore_price":`
	syms    map[string]string
	moving  *btc.MovingCodec
	zs      *btc.ZScoreCodec
	stats   []window.Statistics
	scores  []zscore.Score
}

func newDecoder(cfg btc.Config) *decoder {
	d := &decoder{syms: make(map[string]string), moving: btc.NewMovingCodec(cfg), zs: btc.NewZScoreCodec(cfg)}
	for _, w := range cfg.Windows {
		l := btc.Label(w)
		d.labels = append(d.labels, l)
		d.movingW = append(d.movingW, `{"window":"`+l+`","avg_price":`)
		d.zW = append(d.zW, `{"window":"`+l+`","zscore_price":`)
	}
	d.stats = make([]window.Statistics, len(d.labels))
	d.scores = make([]zscore.Score, len(d.labels))
	return d
}

var errRecord = errors.New("dashboard: not a record of the pipeline")

// lex reads a record in the encoder's layout.
type lex struct {
	b   []byte
	i   int
	bad bool
}

func (l *lex) lit(s string) {
	if !l.bad && len(l.b)-l.i >= len(s) && string(l.b[l.i:l.i+len(s)]) == s {
		l.i += len(s)
		return
	}
	l.bad = true
}

// until returns the bytes up to c (a string's end), refusing escapes.
func (l *lex) until(c byte) []byte {
	if l.bad {
		return nil
	}
	start := l.i
	for ; l.i < len(l.b); l.i++ {
		switch x := l.b[l.i]; {
		case x == c:
			s := l.b[start:l.i]
			l.i++
			return s
		case x == '\\' || x < 0x20:
			l.bad = true
			return nil
		}
	}
	l.bad = true
	return nil
}

// num reads a JSON number, or null as NaN.
func (l *lex) num() float64 {
	if l.bad {
		return 0
	}
	if len(l.b)-l.i >= 4 && string(l.b[l.i:l.i+4]) == "null" {
		l.i += 4
		return math.NaN()
	}
	start := l.i
	for ; l.i < len(l.b); l.i++ {
		if c := l.b[l.i]; !(c >= '0' && c <= '9' || c == '-' || c == '.' || c == 'e' || c == 'E' || c == '+') {
			break
		}
	}
	if l.i == start {
		l.bad = true
		return 0
	}
	v, err := strconv.ParseFloat(unsafe.String(&l.b[start], l.i-start), 64)
	if err != nil {
		l.bad = true
	}
	return v
}

// head reads `{"timestamp":"...","symbol":"...",`.
func (d *decoder) head(l *lex) (string, stream.Time) {
	l.lit(`{"timestamp":"`)
	ts := l.until('"')
	l.lit(`,"symbol":"`)
	sym := l.until('"')
	l.lit(`,`)
	if l.bad || len(sym) == 0 {
		l.bad = true
		return "", 0
	}
	t, err := stream.ParseTime(ts)
	if err != nil {
		l.bad = true
		return "", 0
	}
	return d.intern(sym), t
}

func (d *decoder) intern(b []byte) string {
	if s, ok := d.syms[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.syms) < 1<<12 {
		d.syms[s] = s
	}
	return s
}

// decodeMoving decodes a btc-price-moving record; the statistics are valid
// until the next call.
func (d *decoder) decodeMoving(b []byte) (string, stream.Time, []window.Statistics, error) {
	l := lex{b: b}
	sym, t := d.head(&l)
	l.lit(`"windows":[`)
	for i := range d.labels {
		if i > 0 {
			l.lit(",")
		}
		l.lit(d.movingW[i])
		d.stats[i].Mean = l.num()
		l.lit(`,"std_price":`)
		d.stats[i].Std = l.num()
		l.lit(`,"count":`)
		c := l.num()
		if c != math.Trunc(c) {
			l.bad = true
		}
		d.stats[i].Count, d.stats[i].Variance = int64(c), math.NaN()
		l.lit("}")
	}
	l.lit("]}")
	if !l.bad && l.i == len(b) {
		return sym, t, d.stats, nil
	}
	e, err := d.moving.Decode(nil, b, 0)
	if err != nil {
		return "", 0, nil, err
	}
	return d.internString(e.Key), e.Time, e.Value, nil
}

// decodeZScore decodes a btc-price-zscore record; the scores are valid
// until the next call.
func (d *decoder) decodeZScore(b []byte) (string, stream.Time, float64, []zscore.Score, error) {
	l := lex{b: b}
	sym, t := d.head(&l)
	l.lit(`"price":`)
	price := l.num()
	l.lit(`,"zscores":[`)
	for i := range d.labels {
		if i > 0 {
			l.lit(",")
		}
		l.lit(d.zW[i])
		z := l.num()
		d.scores[i] = zscore.Score{Z: z, OK: !math.IsNaN(z)}
		if !d.scores[i].OK {
			d.scores[i].Z = 0
		}
		l.lit("}")
	}
	l.lit("]}")
	if !l.bad && l.i == len(b) && !math.IsNaN(price) {
		return sym, t, price, d.scores, nil
	}
	e, err := d.zs.Decode(nil, b, 0)
	if err != nil {
		return "", 0, 0, nil, err
	}
	return d.internString(e.Key), e.Time, e.Value.Price, e.Value.Scores, nil
}

// decodeLookahead decodes a btc-price-higher (field "higher_window") or
// btc-price-lower ("lower_window") record.
func (d *decoder) decodeLookahead(b []byte, field string) (string, stream.Time, float64, error) {
	l := lex{b: b}
	sym, t := d.head(&l)
	l.lit(`"`)
	l.lit(field)
	l.lit(`":`)
	secs := l.num()
	l.lit("}")
	if !l.bad && l.i == len(b) && !math.IsNaN(secs) {
		return sym, t, secs, nil
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		return "", 0, 0, err
	}
	s, _ := v["symbol"].(string)
	ts, _ := v["timestamp"].(string)
	secs, ok := v[field].(float64)
	tm, err := stream.ParseTime([]byte(ts))
	if s == "" || !ok || err != nil {
		return "", 0, 0, errRecord
	}
	return d.internString(s), tm, secs, nil
}

func (d *decoder) internString(s string) string {
	if v, ok := d.syms[s]; ok {
		return v
	}
	return s
}
