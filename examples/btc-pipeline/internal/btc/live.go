package btc

import (
	"fmt"

	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/lookahead"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
)

// The consumer groups of the streaming stages. Every instance of a stage
// joins its group, so that instances share the partitions; the
// transactional ids of the exactly-once stages derive from them.
const (
	MovingGroup = "btc-moving"
	ZScoreGroup = "btc-zscore"
	BonusGroup  = "btc-bonus"
	LoadGroup   = "btc-load"
	// ChainedGroup is the group of the chained stage (NewChainedStage),
	// which does the work of the moving, zscore and bonus stages in one.
	ChainedGroup = "btc-chained"
)

// Groups returns the consumer groups of the pipeline's stages.
func Groups() []string {
	return []string{MovingGroup, ZScoreGroup, BonusGroup, LoadGroup, ChainedGroup}
}

// TopicSpecs returns the pipeline's topics, every one with the same number
// of partitions, so that they are co-partitioned: a symbol's records are in
// the same partition number of every topic, which the two-input zscore
// stage needs.
//
// They keep their records regardless of age (retention.ms -1), and up to
// 1 GiB per partition (retention.bytes): a record's timestamp is its event
// time, and Kafka's time-based retention goes by record timestamps, so on a
// topic with the broker's default (7 days, or less) a replay of an older
// trace would be deleted at the next retention check (every 5 minutes by
// default), results included, while the stages' offsets went past it.
// Topics that exist keep their own settings.
func TopicSpecs(partitions int) []kafkaio.TopicSpec {
	var specs []kafkaio.TopicSpec
	for _, t := range Topics() {
		spec := kafkaio.TopicSpec{Name: t, Partitions: int32(max(partitions, 1)),
			Config: map[string]string{"retention.ms": "-1", "retention.bytes": "1073741824"}}
		if t == PriceTopic {
			// The broker stamps each price with its own clock: the
			// reference of MaxAhead, which no producer's clock can move.
			spec.Config["message.timestamp.type"] = "LogAppendTime"
		}
		specs = append(specs, spec)
	}
	return specs
}

// NewMovingStage returns the transform stage: it reads btc-price and writes
// one btc-price-moving record per accepted price (the trailing statistics
// of each window), exactly once. Invalid btc-price records go to
// btc-price-dlq, in the same transactions, untouched and with the reason
// in headers; late and duplicate events are counted (kafkaio.StageStats)
// and dropped.
func NewMovingStage(cfg Config, opts ...kafkaio.StageOption) (*kafkaio.Stage, error) {
	return kafkaio.NewStage(MovingGroup, priceInput(cfg, false),
		func() (stream.Operator[float64, []window.Statistics], error) {
			return window.NewTrailingStatistics(cfg.Windows)
		},
		kafkaio.ToTopic(Moving.Topic(), NewMovingEncoder(cfg)), cfg.stageOptions(opts)...)
}

// priceInput is btc-price as a stage reads it; skip keeps its rejected
// records out of the dead-letter topic (the moving stage puts them there).
func priceInput(cfg Config, skip bool) kafkaio.Input[float64] {
	return kafkaio.Input[float64]{Topic: PriceTopic, Decoder: NewPriceCodec(), Lateness: cfg.Lateness, MaxAhead: cfg.MaxAhead, SkipDeadLetter: skip}
}

// NewZScoreStage returns the z-score stage, the lab's join: each price of
// btc-price (left, with the allowed lateness) is paired with its record of
// btc-price-moving (right: written by the moving stage in event-time order
// within each partition, so Final) on (symbol, timestamp), and scored
// against the mean and standard deviation that record prints. It writes
// btc-price-zscore, exactly once. A price whose moving record never comes
// (the join's watermark passed it) is dropped and counted; invalid
// btc-price records are counted and skipped (the moving stage dead-letters
// them), and invalid btc-price-moving records (another schema, other
// windows than cfg's, not UTF-8) go to btc-price-dlq, in the stage's
// transactions, with the reason in headers.
func NewZScoreStage(cfg Config, opts ...kafkaio.StageOption) (*kafkaio.Stage, error) {
	return kafkaio.NewTwoInputStage(ZScoreGroup, priceInput(cfg, true),
		kafkaio.Input[[]window.Statistics]{Topic: Moving.Topic(), Decoder: NewMovingCodec(cfg), Final: true},
		NewZScoreOperator, kafkaio.ToTopic(ZScore.Topic(), NewZScoreEncoder(cfg)), cfg.stageOptions(opts)...)
}

// NewBonusStage returns the bonus stage: for each price of btc-price, the
// time to the first strictly higher and the first strictly lower price of
// the symbol within the horizon, written to btc-price-higher (its main
// output) and btc-price-lower (a side output), exactly once.
func NewBonusStage(cfg Config, opts ...kafkaio.StageOption) (*kafkaio.Stage, error) {
	lower := kafkaio.NewSide(kafkaio.ToTopic(Lower.Topic(), NewLookaheadEncoder(cfg, Lower)))
	return kafkaio.NewStage(BonusGroup, priceInput(cfg, true),
		func() (stream.Operator[float64, lookahead.Match[float64]], error) {
			return NewBonusOperator(cfg, lower.Emitter())
		},
		kafkaio.ToTopic(Higher.Topic(), NewLookaheadEncoder(cfg, Higher)), cfg.stageOptions(append(opts, kafkaio.WithSides(lower)))...)
}

// NewChainedStage returns the moving, zscore and bonus stages chained into
// one, as Flink chains operators and a Kafka Streams sub-topology runs a
// processor graph in one task: one task per partition reads btc-price once,
// runs the Pipeline (the trailing statistics, the join of each price with
// its statistics in process, the z-scores, the higher and lower answers) and
// writes btc-price-moving (its main output) and btc-price-zscore,
// btc-price-higher and btc-price-lower (side outputs) in one transaction.
// The topics' records are byte for byte those of the three stages (and of
// offline): the z-scores are computed against the statistics as
// btc-price-moving prints them (AsPrinted), which is what the zscore stage
// reads back. Invalid and too-far-ahead records go to btc-price-dlq once.
func NewChainedStage(cfg Config, opts ...kafkaio.StageOption) (*kafkaio.Stage, error) {
	zs := kafkaio.NewSide(kafkaio.ToTopic(ZScore.Topic(), NewZScoreEncoder(cfg)))
	higher := kafkaio.NewSide(kafkaio.ToTopic(Higher.Topic(), NewLookaheadEncoder(cfg, Higher)))
	lower := kafkaio.NewSide(kafkaio.ToTopic(Lower.Topic(), NewLookaheadEncoder(cfg, Lower)))
	return kafkaio.NewStage(ChainedGroup, priceInput(cfg, false),
		func() (stream.Operator[float64, []window.Statistics], error) {
			return NewPipeline(cfg, zs.Emitter(), higher.Emitter(), lower.Emitter())
		},
		kafkaio.ToTopic(Moving.Topic(), NewMovingEncoder(cfg)), cfg.stageOptions(append(opts, kafkaio.WithSides(zs, higher, lower)))...)
}

// stageOptions are the options every stage of the lab has: the
// dead-letter topic, the idle advance, and then opts.
func (cfg Config) stageOptions(opts []kafkaio.StageOption) []kafkaio.StageOption {
	own := []kafkaio.StageOption{kafkaio.WithDeadLetter(DeadLetterTopic)}
	if cfg.IdleTimeout > 0 {
		own = append(own, kafkaio.WithIdleAdvance(cfg.IdleTimeout))
	}
	return append(own, opts...)
}

// Validate checks cfg the way the operators do: windows and horizon
// positive, lateness not negative, partitions not negative.
func (cfg Config) Validate() error {
	if _, err := NewPipeline(cfg, nil, nil, nil); err != nil {
		return err
	}
	if cfg.Lateness < 0 {
		return fmt.Errorf("btc: negative lateness %v", cfg.Lateness)
	}
	if cfg.Partitions < 0 {
		return fmt.Errorf("btc: negative partition count %d", cfg.Partitions)
	}
	if cfg.MaxAhead < 0 || cfg.IdleTimeout < 0 {
		return fmt.Errorf("btc: negative MaxAhead %v or IdleTimeout %v", cfg.MaxAhead, cfg.IdleTimeout)
	}
	return nil
}
