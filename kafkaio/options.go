package kafkaio

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/stream"
)

// SinkOption configures NewSink.
type SinkOption interface{ applySink(*sinkConfig) }

// StageOption configures NewStage and NewTwoInputStage.
type StageOption interface{ applyStage(*stageConfig) }

// Option configures a Sink as well as a Stage.
type Option interface {
	SinkOption
	StageOption
	FollowerOption
}

// FollowerOption configures NewFollower: the Options (WithLogger,
// WithBrokers).
type FollowerOption interface{ applyFollower(*common) }

// SinkStageOption configures a Sink as well as a Stage, not a Follower:
// WithDeadLetter.
type SinkStageOption interface {
	SinkOption
	StageOption
}

// common holds what Sinks and Stages share.
type common struct {
	logger  *slog.Logger
	brokers []string
	config  *sarama.Config
	dial    bool // WithBrokers was given
	errs    []error
}

type sinkConfig struct {
	common
	topic      string
	router     any // func(stream.Event[T]) string, checked against T by NewSink
	delivery   time.Duration
	deadLetter string
	wallClock  bool
}

type stageConfig struct {
	common
	deadLetter     string
	commitInterval time.Duration
	commitRecords  int
	batch          int
	instanceID     string
	txnTimeout     time.Duration
	latency        func(d time.Duration, records int)
	onRecordError  OnRecordError
	sides          []outputWriter
	newClient      func(addrs []string, cfg *sarama.Config) (sarama.Client, error)
	faults         *Faults
	ensure         []TopicSpec
	idle           time.Duration
}

type commonOption func(*common)

func (f commonOption) applySink(c *sinkConfig)   { f(&c.common) }
func (f commonOption) applyStage(c *stageConfig) { f(&c.common) }
func (f commonOption) applyFollower(c *common)   { f(c) }

type sinkOption func(*sinkConfig)

func (f sinkOption) applySink(c *sinkConfig) { f(c) }

type stageOption func(*stageConfig)

func (f stageOption) applyStage(c *stageConfig) { f(c) }

func optionError(format string, args ...any) commonOption {
	err := fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...)
	return func(c *common) { c.errs = append(c.errs, err) }
}

// WithLogger sets the logger for rebalances, task rebuilds, undecodable
// records and broker trouble. Nil, the default, means slog.Default().
func WithLogger(l *slog.Logger) Option {
	return commonOption(func(c *common) { c.logger = l })
}

// WithBrokers gives the broker addresses and the client config (nil means
// NewConfig()). A Stage needs it: it makes its own clients from them (a
// consumer group member, a producer and a reader for replays), adjusting
// what each needs (read_committed, the co-partitioned assignor, the
// transactional id). A Sink given it builds its own client instead of the
// one passed to its constructor, which must then be nil, and closes it.
func WithBrokers(addrs []string, cfg *sarama.Config) Option {
	if len(addrs) == 0 {
		return optionError("WithBrokers without addresses")
	}
	addrs = slices.Clone(addrs)
	return commonOption(func(c *common) { c.brokers, c.config, c.dial = addrs, cfg, true })
}

// WithDeadLetter names the dead-letter topic of a Stage or a Sink.
//
// A stage forwards the records its codecs reject to topic, untouched (same
// key, value, timestamp and headers) plus the headers tidemark-error (the
// reason), tidemark-error-kind, tidemark-topic, tidemark-partition,
// tidemark-offset and tidemark-stage (the stage's group; and, for a result
// that could not be written, tidemark-output-topic and tidemark-size). A
// value too large to forward within the producer's Producer.MaxMessageBytes
// is cut to fit, and the header tidemark-truncated gives its length. They
// are written like the stage's results: in its transactions, exactly once,
// for a stage writing to topics; for a stage writing to a sink (ToSink),
// flushed before its offsets are committed, which makes them at least once,
// as the sink's writes are: a crash between that flush and the commit
// writes them again (the same records, which a reader of the dead-letter
// topic can tell apart by tidemark-topic, tidemark-partition and
// tidemark-offset). Without this option rejected records are counted,
// logged and skipped.
//
// A Sink writes to topic, instead of failing, the records that the brokers
// will refuse whenever they are sent (too large, an invalid timestamp, an
// invalid record, a policy): see Sink, "Dead letters". Without this option
// the first such record fails the Sink.
func WithDeadLetter(topic string) SinkStageOption {
	if topic == "" {
		return optionError("empty dead-letter topic")
	}
	return deadLetterOption(topic)
}

type deadLetterOption string

func (t deadLetterOption) applySink(c *sinkConfig)   { c.deadLetter = string(t) }
func (t deadLetterOption) applyStage(c *stageConfig) { c.deadLetter = string(t) }

// WithCommitInterval sets how often a stage commits (default
// DefaultCommitInterval, 100 ms, as Kafka Streams under exactly-once): the
// transaction that holds the results and the consumed offsets, or, for a
// stage writing to a sink, the sink's flush and the offsets. A longer
// interval costs latency and recovery work, a shorter one throughput.
// Revoked partitions and a graceful stop commit at once. An exactly-once
// stage's interval must be below its transaction timeout.
func WithCommitInterval(d time.Duration) StageOption {
	if d <= 0 {
		return optionError("commit interval %v, want more than 0", d)
	}
	return stageOption(func(c *stageConfig) { c.commitInterval = d })
}

// WithCommitRecords makes a stage commit also as soon as n records were read
// since the last commit (default 0: by interval only).
func WithCommitRecords(n int) StageOption {
	if n < 0 {
		return optionError("negative commit record count %d", n)
	}
	return stageOption(func(c *stageConfig) { c.commitRecords = n })
}

// WithMaxBatch sets how many records a partition hands the stage's loop at a
// time (default 512).
func WithMaxBatch(n int) StageOption {
	if n < 1 {
		return optionError("batch size %d, want at least 1", n)
	}
	return stageOption(func(c *stageConfig) { c.batch = n })
}

// WithInstanceID gives a stage member a stable identity: it joins its group
// as the static member id (KIP-345), and its transactional id is
// "<group>-<id>". A member restarted with the same id takes its partitions
// back at once instead of after the session timeout, and its first
// transaction fences the previous incarnation's, aborting what that one left
// open. Two running members must never share an id. Without this option the
// member is dynamic and its transactional id is "<group>-" and a random
// suffix.
func WithInstanceID(id string) StageOption {
	if id == "" {
		return optionError("empty instance id")
	}
	return stageOption(func(c *stageConfig) { c.instanceID = id })
}

// WithTransactionTimeout sets how long the broker lets a stage's transaction
// stay open before it aborts it (default DefaultTransactionTimeout, 10 s):
// the longest that an output partition can be held up by a member that died
// mid-transaction. It must be below the group's session timeout (the
// client config's Consumer.Group.Session.Timeout), so that a member expelled
// from the group has lost its open transaction by the time its partitions
// move.
func WithTransactionTimeout(d time.Duration) StageOption {
	if d < time.Second {
		return optionError("transaction timeout %v, want at least 1s", d)
	}
	return stageOption(func(c *stageConfig) { c.txnTimeout = d })
}

// WithLatency makes a stage report its processing latency: after each
// successful commit, observe is called once per batch of records fetched
// since the previous successful commit, with the time from the batch's
// arrival at the stage to the end of that commit (the moment its results
// and offsets became durable) and the number of records in it. A record's
// results may be emitted later than the commit of its offset (an operator
// holds an event until the watermark passes it); that wait is event time,
// not processing, and shows in StageStats.Watermark instead. observe runs on
// the stage's processing goroutine and must be quick (a histogram's
// Observe).
func WithLatency(observe func(d time.Duration, records int)) StageOption {
	if observe == nil {
		return optionError("nil latency observer")
	}
	return stageOption(func(c *stageConfig) { c.latency = observe })
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

// WithWallClockTimestamps stamps each record the Sink writes with the
// Sink's clock when Write is called, instead of the event time: the stamp
// that an input's MaxAhead measures events against (see Input.MaxAhead),
// which an event time cannot check. It is what a LogAppendTime topic does
// on the broker; use it where that is not possible (an existing topic, a
// test broker such as kfake, which keeps the producer's stamps). Records of
// a replay then carry the time of the replay, not of the events.
func WithWallClockTimestamps() SinkOption {
	return sinkOption(func(c *sinkConfig) { c.wallClock = true })
}

// DefaultDeliveryTimeout is how long a Sink keeps resending records that
// failed because brokers were unreachable, as Kafka's Java producer does with
// delivery.timeout.ms (whose default this is).
const DefaultDeliveryTimeout = 2 * time.Minute

// WithDeliveryTimeout bounds how long a Sink rides out an outage (a broker
// that went away, a leader election, a timeout): sarama's own retries, in
// order, for half of it when the Sink makes its client (WithBrokers), then
// the Sink's holding and resending; an outage shorter than d costs no
// record, a longer one fails the Sink. The default is DefaultDeliveryTimeout.
func WithDeliveryTimeout(d time.Duration) SinkOption {
	if d <= 0 {
		return optionError("delivery timeout %v is not positive", d)
	}
	return sinkOption(func(c *sinkConfig) { c.delivery = d })
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
		return nil, false, fmt.Errorf("%w: both a client and WithBrokers", ErrInvalidOption)
	case !c.dial && client == nil:
		return nil, false, fmt.Errorf("%w: nil client and no WithBrokers", ErrInvalidOption)
	case client != nil:
		if client.Closed() {
			return nil, false, fmt.Errorf("%w: the client is closed", ErrInvalidOption)
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
		return nil, false, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	cl, err = sarama.NewClient(c.brokers, cfg)
	if err != nil {
		return nil, false, fmt.Errorf("kafkaio: connect to %v: %w", c.brokers, err)
	}
	return cl, true, nil
}
