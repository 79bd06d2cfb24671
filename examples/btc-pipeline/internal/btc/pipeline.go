// Package btc is the BTC/USDT pipeline assembled from Tidemark's packages: the
// btc-price codec, the JSON encoders of the derived topics, the composite
// operator that computes every derived record from the price stream, and the
// offline mode that runs it over a file.
package btc

import (
	"fmt"
	"math"
	"time"

	"github.com/tidemark-go/tidemark/lookahead"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
	"github.com/tidemark-go/tidemark/zscore"
)

// Config holds the pipeline's parameters.
type Config struct {
	Windows  []time.Duration // trailing window lengths, in output order
	Horizon  time.Duration   // lookahead horizon
	Lateness time.Duration   // allowed lateness
	// Partitions is the number of partitions of the pipeline's topics. Each
	// partition has its own watermark (one task per partition), so the
	// offline mode, to write exactly what the streaming stages write,
	// partitions its input by symbol the way the Kafka producers do
	// (murmur2) and runs one pipeline per partition. 0 means 1.
	Partitions int
	// MaxAhead refuses btc-price events from the future (0: no bound): an
	// event more than MaxAhead ahead of its record's timestamp (the time
	// the broker appended it: btc-price is a LogAppendTime topic, and
	// extract stamps its records with its wall clock, for a broker that
	// ignores the topic setting) is dead-lettered and never moves the
	// watermark. Offline, whose lines have no record timestamps, measures it
	// from the largest event time of the partition instead (see package
	// stream, Events from the future). DefaultConfig's is 1 h, the bound
	// Apache Kafka 4 itself puts on record timestamps
	// (log.message.timestamp.after.max.ms): a replay of an old trace is
	// always behind, live prices are ahead by the clocks' skew at most.
	MaxAhead time.Duration
	// IdleTimeout makes a stage's quiet input flush (0: off): when a task
	// has had no record for IdleTimeout, its watermark advances by the wall
	// time since its last record (kafkaio.WithIdleAdvance), so that the
	// last results come out within the lateness, the horizon and
	// IdleTimeout after the input stopped. DefaultConfig's is 0; the
	// commands' --idle-timeout is 5 s.
	IdleTimeout time.Duration
}

// DefaultConfig returns the lab's parameters: windows 30s, 1m, 5m, 15m, 30m,
// 1h; horizon 20 s; lateness 10 s; events at most 1 h ahead; no idle
// advance.
func DefaultConfig() Config {
	return Config{
		Windows:  []time.Duration{30 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour},
		Horizon:  20 * time.Second,
		Lateness: stream.DefaultLateness,
		MaxAhead: time.Hour,
	}
}

// Kind names the derived topics.
type Kind uint8

// The derived topics.
const (
	Moving Kind = iota // btc-price-moving
	ZScore             // btc-price-zscore
	Higher             // btc-price-higher
	Lower              // btc-price-lower
	numKinds
)

// Topic returns the Kafka topic of k's records.
func (k Kind) Topic() string {
	return [...]string{"btc-price-moving", "btc-price-zscore", "btc-price-higher", "btc-price-lower"}[k]
}

// Pipeline is the composite operator of the whole lab, for offline and for
// a stage that runs every computation at once: price events in, the moving
// statistics of each on its main output, and its z-scores, higher and
// lower answers on the emitters it was given (side outputs). The moving
// statistics and the z-scores of an event are emitted when it is released
// (the watermark is above its time); its higher and lower answers once both
// are final. The z-scores come from the timestamp-keyed join of the price
// with its moving statistics, as the streaming zscore stage computes them:
// against the mean and standard deviation as btc-price-moving prints them
// (AsPrinted), which is what that stage reads, so that both write the same
// z-scores.
type Pipeline struct {
	moving *window.TrailingStatistics
	join   *stream.Join[float64, []window.Statistics]
	z      *zscore.Operator
	both   *lookahead.HigherLower[float64] // the higher and lower answers together

	out           stream.Emitter[[]window.Statistics]
	zs            stream.Emitter[zscore.Scored]
	higher, lower stream.Emitter[lookahead.Match[float64]]
	asRead        []window.Statistics // the statistics as the moving record prints them
	movingEm      movingEmitter
	pairEm        pairEmitter
	bothEm        bothEmitter
}

var _ stream.Operator[float64, []window.Statistics] = (*Pipeline)(nil)

// NewPipeline builds the operators for cfg, writing the z-scores, higher and
// lower answers to zs, higher and lower (nil: discarded).
func NewPipeline(cfg Config, zs stream.Emitter[zscore.Scored], higher, lower stream.Emitter[lookahead.Match[float64]]) (*Pipeline, error) {
	moving, err := window.NewTrailingStatistics(cfg.Windows)
	if err != nil {
		return nil, fmt.Errorf("btc: %w", err)
	}
	both, err := lookahead.NewHigherLower[float64](cfg.Horizon)
	if err != nil {
		return nil, fmt.Errorf("btc: %w", err)
	}
	join, err := stream.NewJoin(stream.JoinConfig[float64, []window.Statistics]{CopyRight: stream.CopySlice[window.Statistics]})
	if err != nil {
		return nil, fmt.Errorf("btc: %w", err)
	}
	p := &Pipeline{moving: moving, join: join, z: zscore.NewOperator(), both: both,
		zs: orDiscard(zs), higher: orDiscard(higher), lower: orDiscard(lower)}
	p.movingEm.p, p.pairEm.p, p.bothEm.p = p, p, p
	return p, nil
}

func orDiscard[T any](e stream.Emitter[T]) stream.Emitter[T] {
	if e == nil {
		return stream.EmitFunc[T](func(stream.Event[T]) {})
	}
	return e
}

// Bounds implements stream.Operator: the moving statistics look back by the
// largest window, the higher and lower answers ahead by the horizon, and the
// z-scores pair records of one time.
func (p *Pipeline) Bounds() stream.Bounds { return p.moving.Bounds().Max(p.both.Bounds()) }

// Process computes everything e contributes to.
func (p *Pipeline) Process(e stream.Event[float64], out stream.Emitter[[]window.Statistics]) {
	p.out = out
	p.join.ProcessLeft(e, &p.pairEm)
	p.moving.Process(e, &p.movingEm)
	p.both.Process(e, &p.bothEm)
}

// Advance lets the operators emit what the watermark makes final.
func (p *Pipeline) Advance(wm stream.Time, out stream.Emitter[[]window.Statistics]) {
	p.out = out
	p.moving.Advance(wm, &p.movingEm)
	p.join.Advance(wm, &p.pairEm)
	p.both.Advance(wm, &p.bothEm)
}

type movingEmitter struct{ p *Pipeline }

func (m *movingEmitter) Emit(e stream.Event[[]window.Statistics]) {
	m.p.out.Emit(e)
	m.p.asRead = AsPrinted(m.p.asRead[:0], e.Value)
	e.Value = m.p.asRead
	m.p.join.ProcessRight(e, &m.p.pairEm)
}

// AsPrinted appends to dst the statistics as a btc-price-moving record
// prints them, and as a reader of the topic parses them back: mean and std
// rounded as the text is (printed), the count exact; the variance is not
// printed and is left NaN.
func AsPrinted(dst, stats []window.Statistics) []window.Statistics {
	for _, st := range stats {
		dst = append(dst, window.Statistics{Count: st.Count, Mean: printed(st.Mean, 1), Variance: math.NaN(), Std: printedStd(st.Std)})
	}
	return dst
}

type pairEmitter struct{ p *Pipeline }

func (m *pairEmitter) Emit(e stream.Event[stream.Pair[float64, []window.Statistics]]) {
	m.p.z.Process(e, m.p.zs)
}

// bothEmitter emits an event's higher answer, then its lower answer.
type bothEmitter struct{ p *Pipeline }

func (m *bothEmitter) Emit(e stream.Event[lookahead.Both[float64]]) {
	m.p.higher.Emit(stream.Event[lookahead.Match[float64]]{Key: e.Key, Time: e.Time, Value: e.Value.Higher})
	m.p.lower.Emit(stream.Event[lookahead.Match[float64]]{Key: e.Key, Time: e.Time, Value: e.Value.Lower})
}
