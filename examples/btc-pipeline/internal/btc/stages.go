package btc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/lookahead"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
	"github.com/tidemark-go/tidemark/zscore"
)

// The topics of the pipeline.
const (
	PriceTopic      = "btc-price"
	DeadLetterTopic = "btc-price-dlq"
)

// Topics returns every topic of the pipeline, inputs and outputs.
func Topics() []string {
	return []string{PriceTopic, Moving.Topic(), ZScore.Topic(), Higher.Topic(), Lower.Topic(), DeadLetterTopic}
}

// PriceCodec is the kafkaio codec of btc-price records: Decode validates a
// value as the offline mode does (the event key is the symbol, the event time
// the timestamp; the record key and timestamp are not trusted), AppendValue
// writes one. It is not safe for concurrent use (it interns symbols); a stage
// uses its codecs from one goroutine.
type PriceCodec struct{ dec *Decoder }

var _ kafkaio.Codec[float64] = (*PriceCodec)(nil)

// NewPriceCodec returns a PriceCodec.
func NewPriceCodec() *PriceCodec { return &PriceCodec{dec: NewDecoder()} }

// Decode implements kafkaio.Codec; its errors are *kafkaio.DecodeError whose
// Kind names the reason (ReasonKind). A value of MaxLineBytes or more is
// invalid (ErrLineTooLong), as a line that long is in offline.
func (c *PriceCodec) Decode(_, value []byte, _ stream.Time) (stream.Event[float64], error) {
	if len(value) >= MaxLineBytes {
		return stream.Event[float64]{}, &kafkaio.DecodeError{Kind: ReasonKind(ErrLineTooLong), Err: ErrLineTooLong}
	}
	p, err := c.dec.Decode(value)
	if err != nil {
		return stream.Event[float64]{}, &kafkaio.DecodeError{Kind: ReasonKind(err), Err: err}
	}
	return stream.Event[float64]{Key: p.Symbol, Time: p.Time, Value: p.Price}, nil
}

// AppendValue implements kafkaio.Codec: a btc-price record for the event.
func (c *PriceCodec) AppendValue(dst []byte, e stream.Event[float64]) ([]byte, error) {
	return AppendPrice(dst, Price{Symbol: e.Key, Price: e.Value, Time: e.Time}), nil
}

// reasonKinds are the short names of the btc-price decode errors.
var reasonKinds = map[error]string{
	ErrNotJSON: "not-json", ErrNotObject: "not-object", ErrNoSymbol: "no-symbol", ErrSymbolType: "symbol-type",
	ErrSymbolUTF8: "symbol-utf8", ErrNoPrice: "no-price", ErrPriceType: "price-type", ErrBadPrice: "bad-price", ErrNoTimestamp: "no-timestamp",
	ErrTimeType: "timestamp-type", ErrBadTimestamp: "bad-timestamp", ErrLineTooLong: "too-long",
	ErrNotUTF8: "not-utf8", ErrTooDeep: "too-deep",
}

// ReasonKind is the short name of a btc-price decode error, for logs and the
// dead-letter header tidemark-error-kind: "not-json", "bad-price" and so on.
func ReasonKind(err error) string {
	if k, ok := reasonKinds[err]; ok {
		return k
	}
	return "invalid"
}

// MovingEncoder writes btc-price-moving values: the statistics of each
// window of cfg, in order.
type MovingEncoder struct{ enc *Encoder }

var _ kafkaio.Encoder[[]window.Statistics] = MovingEncoder{}

// NewMovingEncoder returns a MovingEncoder for cfg's windows.
func NewMovingEncoder(cfg Config) MovingEncoder {
	return MovingEncoder{NewEncoder(cfg.Windows, cfg.Horizon)}
}

// AppendValue implements kafkaio.Encoder.
func (m MovingEncoder) AppendValue(dst []byte, e stream.Event[[]window.Statistics]) ([]byte, error) {
	return m.enc.AppendMoving(dst, e.Key, e.Time, e.Value), nil
}

// ZScoreEncoder writes btc-price-zscore values.
type ZScoreEncoder struct{ enc *Encoder }

var _ kafkaio.Encoder[zscore.Scored] = ZScoreEncoder{}

// NewZScoreEncoder returns a ZScoreEncoder for cfg's windows.
func NewZScoreEncoder(cfg Config) ZScoreEncoder {
	return ZScoreEncoder{NewEncoder(cfg.Windows, cfg.Horizon)}
}

// AppendValue implements kafkaio.Encoder.
func (z ZScoreEncoder) AppendValue(dst []byte, e stream.Event[zscore.Scored]) ([]byte, error) {
	return z.enc.AppendZScore(dst, e.Key, e.Time, e.Value.Value, e.Value.Scores), nil
}

// LookaheadEncoder writes btc-price-higher or btc-price-lower values.
type LookaheadEncoder struct {
	enc   *Encoder
	field string
}

var _ kafkaio.Encoder[lookahead.Match[float64]] = LookaheadEncoder{}

// NewLookaheadEncoder returns the encoder of kind's values (Higher or
// Lower) for cfg's horizon.
func NewLookaheadEncoder(cfg Config, kind Kind) LookaheadEncoder {
	field := "higher_window"
	if kind == Lower {
		field = "lower_window"
	}
	return LookaheadEncoder{NewEncoder(cfg.Windows, cfg.Horizon), field}
}

// AppendValue implements kafkaio.Encoder.
func (l LookaheadEncoder) AppendValue(dst []byte, e stream.Event[lookahead.Match[float64]]) ([]byte, error) {
	return l.enc.AppendLookahead(dst, l.field, e.Key, e.Time, e.Value), nil
}

// movingJSON is a btc-price-moving value as read back.
type movingJSON struct {
	Timestamp string `json:"timestamp"`
	Symbol    string `json:"symbol"`
	Windows   []struct {
		Window string   `json:"window"`
		Avg    *float64 `json:"avg_price"`
		Std    *float64 `json:"std_price"`
		Count  *int64   `json:"count"`
	} `json:"windows"`
}

// MovingCodec decodes btc-price-moving records into the statistics per
// window, as printed (AsPrinted): mean and std as the text reads, the count,
// the variance NaN. The windows must be cfg's, in order. A MovingCodec is
// not safe for concurrent use (a stage uses each decoder from one
// goroutine).
type MovingCodec struct {
	labels []string
	syms   symbols
}

var _ kafkaio.Decoder[[]window.Statistics] = (*MovingCodec)(nil)

// NewMovingCodec returns a MovingCodec for cfg's windows.
func NewMovingCodec(cfg Config) *MovingCodec {
	labels := make([]string, len(cfg.Windows))
	for i, w := range cfg.Windows {
		labels[i] = Label(w)
	}
	return &MovingCodec{labels: labels}
}

// Decode implements kafkaio.Codec. The statistics are a new slice for each
// record: a stage holds decoded events while it waits for the watermark.
func (c *MovingCodec) Decode(_, value []byte, _ stream.Time) (stream.Event[[]window.Statistics], error) {
	if e, ok := c.fastMoving(value); ok {
		return e, nil
	}
	return c.decodeJSON(value)
}

// decodeJSON is Decode with encoding/json.
func (c *MovingCodec) decodeJSON(value []byte) (stream.Event[[]window.Statistics], error) {
	if !utf8.Valid(value) { // encoding/json would replace the bad bytes
		return stream.Event[[]window.Statistics]{}, &kafkaio.DecodeError{Kind: "moving-utf8", Err: errNotUTF8}
	}
	var m movingJSON
	if err := strictJSON(value, &m); err != nil {
		return stream.Event[[]window.Statistics]{}, &kafkaio.DecodeError{Kind: "moving-json", Err: err}
	}
	t, err := stream.ParseTime([]byte(m.Timestamp))
	if err != nil || m.Symbol == "" {
		return stream.Event[[]window.Statistics]{}, &kafkaio.DecodeError{Kind: "moving-head", Err: fmt.Errorf("symbol %q, timestamp %q", m.Symbol, m.Timestamp)}
	}
	if len(m.Windows) != len(c.labels) {
		return stream.Event[[]window.Statistics]{}, &kafkaio.DecodeError{Kind: "moving-windows",
			Err: fmt.Errorf("%d windows, the pipeline has %d (%v)", len(m.Windows), len(c.labels), c.labels)}
	}
	stats := make([]window.Statistics, len(m.Windows))
	for i, w := range m.Windows {
		if w.Window != c.labels[i] || w.Avg == nil || w.Count == nil {
			return stream.Event[[]window.Statistics]{}, &kafkaio.DecodeError{Kind: "moving-windows",
				Err: fmt.Errorf("window %d is %q (want %q) or lacks avg_price or count", i, w.Window, c.labels[i])}
		}
		std := math.NaN()
		if w.Std != nil {
			std = *w.Std
		}
		stats[i] = window.Statistics{Count: *w.Count, Mean: *w.Avg, Variance: math.NaN(), Std: std}
	}
	return stream.Event[[]window.Statistics]{Key: m.Symbol, Time: t, Value: stats}, nil
}

// ScoredRecord is a btc-price-zscore record as read back: the price and a
// z-score per window (OK false for null).
type ScoredRecord struct {
	Price  float64
	Scores []zscore.Score
}

// ZScoreCodec decodes btc-price-zscore records, for the load stage. The
// windows must be cfg's, in order. A ZScoreCodec is not safe for concurrent
// use.
type ZScoreCodec struct {
	labels []string
	syms   symbols
}

var _ kafkaio.Decoder[ScoredRecord] = (*ZScoreCodec)(nil)

// NewZScoreCodec returns a ZScoreCodec for cfg's windows.
func NewZScoreCodec(cfg Config) *ZScoreCodec { return &ZScoreCodec{labels: NewMovingCodec(cfg).labels} }

// Labels returns the window labels in order.
func (c *ZScoreCodec) Labels() []string { return c.labels }

// Decode implements kafkaio.Codec.
func (c *ZScoreCodec) Decode(_, value []byte, _ stream.Time) (stream.Event[ScoredRecord], error) {
	if e, ok := c.fastZScore(value); ok {
		return e, nil
	}
	return c.decodeJSON(value)
}

// decodeJSON is Decode with encoding/json.
func (c *ZScoreCodec) decodeJSON(value []byte) (stream.Event[ScoredRecord], error) {
	if !utf8.Valid(value) { // encoding/json would replace the bad bytes
		return stream.Event[ScoredRecord]{}, &kafkaio.DecodeError{Kind: "zscore-utf8", Err: errNotUTF8}
	}
	var z struct {
		Timestamp string   `json:"timestamp"`
		Symbol    string   `json:"symbol"`
		Price     *float64 `json:"price"`
		ZScores   []struct {
			Window string   `json:"window"`
			Z      *float64 `json:"zscore_price"`
		} `json:"zscores"`
	}
	if err := strictJSON(value, &z); err != nil {
		return stream.Event[ScoredRecord]{}, &kafkaio.DecodeError{Kind: "zscore-json", Err: err}
	}
	t, err := stream.ParseTime([]byte(z.Timestamp))
	if err != nil || z.Symbol == "" || z.Price == nil {
		return stream.Event[ScoredRecord]{}, &kafkaio.DecodeError{Kind: "zscore-head", Err: fmt.Errorf("symbol %q, timestamp %q", z.Symbol, z.Timestamp)}
	}
	if len(z.ZScores) != len(c.labels) {
		return stream.Event[ScoredRecord]{}, &kafkaio.DecodeError{Kind: "zscore-windows",
			Err: fmt.Errorf("%d windows, the pipeline has %d (%v)", len(z.ZScores), len(c.labels), c.labels)}
	}
	rec := ScoredRecord{Price: *z.Price, Scores: make([]zscore.Score, len(z.ZScores))}
	for i, s := range z.ZScores {
		if s.Window != c.labels[i] {
			return stream.Event[ScoredRecord]{}, &kafkaio.DecodeError{Kind: "zscore-windows", Err: fmt.Errorf("window %d is %q, want %q", i, s.Window, c.labels[i])}
		}
		if s.Z != nil {
			rec.Scores[i] = zscore.Score{Z: *s.Z, OK: true}
		}
	}
	return stream.Event[ScoredRecord]{Key: z.Symbol, Time: t, Value: rec}, nil
}

// errNotUTF8 is the reason of a derived record that is not valid UTF-8.
var errNotUTF8 = errors.New("not valid UTF-8")

// strictJSON decodes one JSON object and nothing after it.
func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

// NewZScoreOperator returns the zscore stage's operator: the join of each
// price (left) with its moving record (right), scored.
func NewZScoreOperator() (stream.TwoInput[float64, []window.Statistics, zscore.Scored], error) {
	j, err := stream.NewJoin(stream.JoinConfig[float64, []window.Statistics]{CopyRight: stream.CopySlice[window.Statistics]})
	if err != nil {
		return nil, fmt.Errorf("btc: %w", err)
	}
	return stream.ChainTwoInput[float64, []window.Statistics, stream.Pair[float64, []window.Statistics], zscore.Scored](j, zscore.NewOperator()), nil
}

// NewBonusOperator returns the bonus stage's operator: for each price, the
// time to the next higher price within the horizon on its main output, and
// to the next lower one on lower.
func NewBonusOperator(cfg Config, lower stream.Emitter[lookahead.Match[float64]]) (stream.Operator[float64, lookahead.Match[float64]], error) {
	hl, err := lookahead.NewHigherLower[float64](cfg.Horizon)
	if err != nil {
		return nil, fmt.Errorf("btc: %w", err)
	}
	return stream.Chain(stream.Operator[float64, lookahead.Both[float64]](hl),
		stream.FlatMap(func(e stream.Event[lookahead.Both[float64]], out *stream.Collector[lookahead.Match[float64]]) {
			out.Emit(e.Value.Higher)
			lower.Emit(stream.Event[lookahead.Match[float64]]{Key: e.Key, Time: e.Time, Value: e.Value.Lower})
		})), nil
}

// Partition is the partition of a symbol's records among n, as the
// producers of the pipeline place them (kafkaio.Partition, NewConfig's
// partitioner): offline computes per partition, as the stages do.
func Partition(symbol string, n int) int { return int(kafkaio.Partition([]byte(symbol), int32(n))) }
