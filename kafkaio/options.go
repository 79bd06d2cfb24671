package kafkaio

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/stream"
)

// Errors callers can test for with errors.Is.
var (
	// ErrBadOption is wrapped by the errors constructors return for invalid
	// arguments or options.
	ErrBadOption = errors.New("kafkaio: invalid option")
	// ErrBadConfig is wrapped when a client's *sarama.Config lacks a setting
	// the Source or Sink needs (NewConfig has them all), or fails sarama's
	// validation.
	ErrBadConfig = errors.New("kafkaio: unsuitable sarama config")
	// ErrClosed is returned by the methods of a closed Source or Sink.
	ErrClosed = errors.New("kafkaio: closed")
	// ErrTopicMismatch is wrapped by EnsureTopics when an existing topic does
	// not have the partitions its TopicSpec asks for.
	ErrTopicMismatch = errors.New("kafkaio: existing topic does not match its spec")
)

// ProduceError is a record the broker did not acknowledge (or that sarama
// rejected before sending it). Sink.Write and Sink.Flush return it, possibly
// wrapped; Err is sarama's error, such as sarama.ErrMessageSizeTooLarge.
type ProduceError struct {
	Topic     string
	Partition int32 // -1 when the record failed before a partition was chosen
	Err       error
}

func (e *ProduceError) Error() string {
	return fmt.Sprintf("kafkaio: produce %s/%d: %v", e.Topic, e.Partition, e.Err)
}

// Unwrap returns sarama's error.
func (e *ProduceError) Unwrap() error { return e.Err }

// SourceOption configures NewSource.
type SourceOption interface{ applySource(*sourceConfig) }

// SinkOption configures NewSink.
type SinkOption interface{ applySink(*sinkConfig) }

// Option configures a Source, a Sink and a Stage.
type Option interface {
	SourceOption
	SinkOption
	StageOption
}

// ConsumerOption configures a Source as well as a Stage.
type ConsumerOption interface {
	SourceOption
	StageOption
}

// common holds what Sources and Sinks share.
type common struct {
	logger  *slog.Logger
	brokers []string
	config  *sarama.Config
	dial    bool // WithBrokers was given
	errs    []error
}

type sourceConfig struct {
	common
	horizon        time.Duration
	deadLetter     string
	commitInterval time.Duration
	batch          int
}

type sinkConfig struct {
	common
	topic  string
	router any // func(stream.Event[T]) string, checked against T by NewSink
}

type commonOption func(*common)

func (f commonOption) applySource(c *sourceConfig) { f(&c.common) }
func (f commonOption) applySink(c *sinkConfig)     { f(&c.common) }
func (f commonOption) applyStage(c *stageConfig)   { f(&c.common) }

type sourceOption func(*sourceConfig)

func (f sourceOption) applySource(c *sourceConfig) { f(c) }
func (f sourceOption) applyStage(c *stageConfig)   { f(&c.sourceConfig) }

type sinkOption func(*sinkConfig)

func (f sinkOption) applySink(c *sinkConfig) { f(c) }

func optionError(format string, args ...any) commonOption {
	err := fmt.Errorf("%w: "+format, append([]any{ErrBadOption}, args...)...)
	return func(c *common) { c.errs = append(c.errs, err) }
}

// WithLogger sets the logger for rebalances, undecodable records and broker
// trouble. Nil, the default, means slog.Default().
func WithLogger(l *slog.Logger) Option {
	return commonOption(func(c *common) { c.logger = l })
}

// WithBrokers makes the Source or Sink build its own client from the broker
// addresses and cfg (nil means NewConfig()), instead of the client passed to
// its constructor, which must then be nil. Close closes that client. A consumer
// group needs a client of its own: one client serves at most one Source.
func WithBrokers(addrs []string, cfg *sarama.Config) Option {
	if len(addrs) == 0 {
		return optionError("WithBrokers without addresses")
	}
	addrs = slices.Clone(addrs)
	return commonOption(func(c *common) { c.brokers, c.config, c.dial = addrs, cfg, true })
}

// WithHorizon sets the operator's dependency delay (default 0): how far beyond
// an event's time the results of that event may wait for later events, such
// as the lookahead's horizon (20 s in the example pipeline) or the length of
// a tumbling window. A record with event time t is committed once the
// checkpoint watermark is above t + horizon: then every result it contributes
// to has been emitted and flushed.
func WithHorizon(d time.Duration) SourceOption {
	if d < 0 {
		return optionError("negative horizon %v", d)
	}
	return sourceOption(func(c *sourceConfig) { c.horizon = d })
}

// WithDeadLetter forwards undecodable records to topic, untouched (same key,
// value, timestamp and headers) plus the headers tidemark-error (the reason),
// tidemark-error-kind, tidemark-topic, tidemark-partition and tidemark-offset.
// The records are produced with a sarama.SyncProducer built on the Source's
// client, so its config must have Producer.Return.Successes (NewConfig does).
// A record is committed only once the dead-letter topic has acknowledged it;
// while the dead-letter topic is unavailable its partition waits, retrying
// with backoff. Without this option undecodable records are counted, logged
// once per kind and skipped.
func WithDeadLetter(topic string) ConsumerOption {
	if topic == "" {
		return optionError("empty dead-letter topic")
	}
	return sourceOption(func(c *sourceConfig) { c.deadLetter = topic })
}

// WithCommitInterval sets the least time between two offset commits made by
// Checkpoint (default 1 s); 0 commits at every checkpoint that has progress.
// Marks that wait for the interval are committed when it has passed, even if
// no Checkpoint follows; revoked partitions and Close commit at once.
func WithCommitInterval(d time.Duration) ConsumerOption {
	if d < 0 {
		return optionError("negative commit interval %v", d)
	}
	return sourceOption(func(c *sourceConfig) { c.commitInterval = d })
}

// WithMaxBatch sets how many records a partition decodes at a time before
// handing them to Poll (default 512).
func WithMaxBatch(n int) ConsumerOption {
	if n < 1 {
		return optionError("batch size %d, want at least 1", n)
	}
	return sourceOption(func(c *sourceConfig) { c.batch = n })
}

// WithTopic makes the Sink produce every event to topic.
func WithTopic(topic string) SinkOption {
	if topic == "" {
		return optionError("empty topic")
	}
	return sinkOption(func(c *sinkConfig) { c.topic, c.router = topic, nil })
}

// WithRouter makes the Sink produce each event to the topic route returns. T
// must be the Sink's event type, or NewSink returns an error. route is called
// from Write's goroutine; an empty topic makes Write fail.
func WithRouter[T any](route func(stream.Event[T]) string) SinkOption {
	if route == nil {
		return optionError("nil router")
	}
	return sinkOption(func(c *sinkConfig) { c.topic, c.router = "", route })
}

// resolve fills in defaults, reports option errors and returns the client to
// use: the given one, or a new one from WithBrokers (own is then true).
func (c *common) resolve(client sarama.Client) (cl sarama.Client, own bool, err error) {
	if len(c.errs) > 0 {
		return nil, false, c.errs[0]
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	switch {
	case c.dial && client != nil:
		return nil, false, fmt.Errorf("%w: both a client and WithBrokers", ErrBadOption)
	case !c.dial && client == nil:
		return nil, false, fmt.Errorf("%w: nil client and no WithBrokers", ErrBadOption)
	case client != nil:
		if client.Closed() {
			return nil, false, fmt.Errorf("%w: the client is closed", ErrBadOption)
		}
		return client, false, nil
	}
	cfg := c.config
	if cfg == nil {
		if cfg, err = NewConfig(); err != nil {
			return nil, false, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	cl, err = sarama.NewClient(c.brokers, cfg)
	if err != nil {
		return nil, false, fmt.Errorf("kafkaio: connect to %v: %w", c.brokers, err)
	}
	return cl, true, nil
}
