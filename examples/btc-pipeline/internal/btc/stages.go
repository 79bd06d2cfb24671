package btc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/IBM/sarama"
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

// OutputCodec writes the derived records (Output) of the pipeline's stages
// with an Encoder: a moving, z-score, higher or lower record according to
// the Output's Kind. It only encodes: the stages that read derived topics
// use MovingCodec and ZScoreCodec.
type OutputCodec struct{ enc *Encoder }

var _ kafkaio.Codec[Output] = (*OutputCodec)(nil)

// NewOutputCodec returns an OutputCodec for cfg's windows and horizon.
func NewOutputCodec(cfg Config) *OutputCodec {
	return &OutputCodec{enc: NewEncoder(cfg.Windows, cfg.Horizon)}
}

// Decode implements kafkaio.Codec; it refuses every record.
func (c *OutputCodec) Decode([]byte, []byte, stream.Time) (stream.Event[Output], error) {
	return stream.Event[Output]{}, errors.New("btc: OutputCodec only encodes")
}

// AppendValue implements kafkaio.Codec.
func (c *OutputCodec) AppendValue(dst []byte, e stream.Event[Output]) ([]byte, error) {
	switch e.Value.Kind {
	case Moving:
		return c.enc.AppendMoving(dst, e.Key, e.Time, e.Value.Stats), nil
	case ZScore:
		return c.enc.AppendZScore(dst, e.Key, e.Time, e.Value.Price, e.Value.Scores), nil
	case Higher:
		return c.enc.AppendLookahead(dst, "higher_window", e.Key, e.Time, e.Value.Match), nil
	case Lower:
		return c.enc.AppendLookahead(dst, "lower_window", e.Key, e.Time, e.Value.Match), nil
	}
	return dst, fmt.Errorf("btc: unknown output kind %d", e.Value.Kind)
}

// Route is the router of the stages' outputs: each Kind to its topic.
func Route(e stream.Event[Output]) string { return e.Value.Kind.Topic() }

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
// the variance NaN. The windows must be cfg's, in order. It only decodes. A
// MovingCodec is not safe for concurrent use (a stage uses each codec from
// one goroutine).
type MovingCodec struct {
	labels []string
	syms   symbols
}

var _ kafkaio.Codec[[]window.Statistics] = (*MovingCodec)(nil)

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
	t, err := ParseTime([]byte(m.Timestamp))
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

// AppendValue implements kafkaio.Codec; it refuses (see OutputCodec).
func (c *MovingCodec) AppendValue(dst []byte, _ stream.Event[[]window.Statistics]) ([]byte, error) {
	return dst, errors.New("btc: MovingCodec only decodes")
}

// ScoredRecord is a btc-price-zscore record as read back: the price and a
// z-score per window (OK false for null).
type ScoredRecord struct {
	Price  float64
	Scores []zscore.Score
}

// ZScoreCodec decodes btc-price-zscore records, for the load stage. The
// windows must be cfg's, in order. It only decodes. A ZScoreCodec is not
// safe for concurrent use.
type ZScoreCodec struct {
	labels []string
	syms   symbols
}

var _ kafkaio.Codec[ScoredRecord] = (*ZScoreCodec)(nil)

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
	t, err := ParseTime([]byte(z.Timestamp))
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

// AppendValue implements kafkaio.Codec; it refuses (see OutputCodec).
func (c *ZScoreCodec) AppendValue(dst []byte, _ stream.Event[ScoredRecord]) ([]byte, error) {
	return dst, errors.New("btc: ZScoreCodec only decodes")
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

// NewMovingOperator returns the moving stage's operator: the trailing
// statistics of each price, as Output records of Kind Moving.
func NewMovingOperator(cfg Config) (stream.Operator[float64, Output], error) {
	tr, err := window.NewTrailingStatistics(cfg.Windows)
	if err != nil {
		return nil, fmt.Errorf("btc: %w", err)
	}
	return stream.Chain(stream.Operator[float64, []window.Statistics](tr), stream.Operator[[]window.Statistics, Output](asOutput[[]window.Statistics]{
		wrap: func(s []window.Statistics) Output { return Output{Kind: Moving, Stats: s} }})), nil
}

// NewZScoreOperator returns the zscore stage's operator: the join of each
// price (left) with its moving record (right), scored, as Output records of
// Kind ZScore.
func NewZScoreOperator() (stream.TwoInput[float64, []window.Statistics, Output], error) {
	j, err := stream.NewJoin(stream.JoinConfig[float64, []window.Statistics]{CopyRight: stream.CopySlice[window.Statistics]})
	if err != nil {
		return nil, fmt.Errorf("btc: %w", err)
	}
	scored := stream.ChainTwoInput[float64, []window.Statistics, stream.Pair[float64, []window.Statistics], zscore.Scored](j, zscore.NewOperator())
	return stream.ChainTwoInput(scored, stream.Operator[zscore.Scored, Output](asOutput[zscore.Scored]{
		wrap: func(s zscore.Scored) Output { return Output{Kind: ZScore, Price: s.Value, Scores: s.Scores} }})), nil
}

// NewBonusOperator returns the bonus stage's operator: for each price, the
// time to the next higher and the next lower price within the horizon, as
// two Output records, Higher then Lower.
func NewBonusOperator(cfg Config) (stream.Operator[float64, Output], error) {
	hl, err := lookahead.NewHigherLower[float64](cfg.Horizon)
	if err != nil {
		return nil, fmt.Errorf("btc: %w", err)
	}
	return stream.Chain(stream.Operator[float64, lookahead.Both[float64]](hl), stream.Operator[lookahead.Both[float64], Output](splitBoth{})), nil
}

// asOutput wraps each event's value in an Output.
type asOutput[T any] struct{ wrap func(T) Output }

func (a asOutput[T]) Process(e stream.Event[T], out stream.Emitter[Output]) {
	out.Emit(stream.Event[Output]{Key: e.Key, Time: e.Time, Value: a.wrap(e.Value)})
}
func (asOutput[T]) Advance(stream.Time, stream.Emitter[Output]) {}
func (asOutput[T]) Bounds() stream.Bounds                       { return stream.Bounds{} }

// splitBoth emits an event's higher answer, then its lower answer.
type splitBoth struct{}

func (splitBoth) Process(e stream.Event[lookahead.Both[float64]], out stream.Emitter[Output]) {
	out.Emit(stream.Event[Output]{Key: e.Key, Time: e.Time, Value: Output{Kind: Higher, Match: e.Value.Higher}})
	out.Emit(stream.Event[Output]{Key: e.Key, Time: e.Time, Value: Output{Kind: Lower, Match: e.Value.Lower}})
}
func (splitBoth) Advance(stream.Time, stream.Emitter[Output]) {}
func (splitBoth) Bounds() stream.Bounds                       { return stream.Bounds{} }

// Partitioner gives the partition of a symbol's records among n, as the
// producers of the pipeline place them: the Java client's murmur2 of the
// key (kafkaio.NewConfig's partitioner). It caches each symbol's partition.
// It is not safe for concurrent use.
type Partitioner struct {
	n     int32
	p     sarama.Partitioner
	cache map[string]int
}

// NewPartitioner returns a Partitioner over n partitions.
func NewPartitioner(n int) *Partitioner {
	return &Partitioner{n: int32(n), p: sarama.NewMurmur2Partitioner(""), cache: make(map[string]int)}
}

// Of returns the partition of symbol.
func (p *Partitioner) Of(symbol string) int {
	if p.n <= 1 {
		return 0
	}
	if i, ok := p.cache[symbol]; ok {
		return i
	}
	i, err := p.p.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(symbol)}, p.n)
	if err != nil {
		panic(fmt.Sprintf("btc: murmur2 partitioner: %v", err)) // it fails only without a key
	}
	p.cache[symbol] = int(i)
	return int(i)
}
