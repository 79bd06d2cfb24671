package kafkaio

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/stream"
)

// Input is a topic a Stage reads, with its decoder and allowed lateness.
type Input[T any] struct {
	Topic   string
	Decoder Decoder[T]
	// Lateness is the input's allowed lateness (stream.Input). A topic written
	// by a Tidemark stage is in event-time order in every partition and can
	// use 0; a topic of raw events uses stream.DefaultLateness or what its
	// producers need.
	Lateness time.Duration
	// MaxAhead refuses events from the future (0, the default: no bound):
	// an event more than MaxAhead ahead of its record's timestamp (of the
	// largest event time of its partition, for a record without one) is
	// refused as a rejected record is: counted (StageStats.Ahead), logged
	// once and dead-lettered with the reason, and it never moves the
	// watermark. The record's timestamp is the reference because it is
	// stored with the record: a replay after a crash takes the same
	// decision. It catches something only when the timestamp comes from a
	// clock of its own, the producer's wall clock (Kafka's default) or the
	// broker's (a topic with message.timestamp.type LogAppendTime), not when
	// producers stamp records with their event time. See package stream,
	// Events from the future.
	MaxAhead time.Duration
	// SkipDeadLetter keeps this input's records that the codec rejects (or
	// that are too far ahead) out of the stage's dead-letter topic
	// (WithDeadLetter): they are counted and logged only. For an input that
	// another stage reads and dead-letters already, so that each rejected
	// record is forwarded once.
	SkipDeadLetter bool
	// Dedup says which events are duplicates (stream.Input.Dedup; default
	// stream.ByKeyTime): stream.ByID for several events per key and
	// millisecond, stream.NoDedup to keep them all.
	Dedup stream.Dedup[T]
	// Final says the input's events are final as they come, the output of
	// an exactly-once stage, in event-time order in each partition
	// (stream.Input.Final): each is processed at once, so that a sink stage
	// writes the last record without waiting for a later one. Lateness and
	// Dedup do not apply.
	Final bool
	// LateTopic, if set, receives the input's late records (those dropped
	// as late, StageStats.Late), untouched, with the headers tidemark-topic,
	// tidemark-partition and tidemark-offset, in the stage's transactions
	// as its results are.
	LateTopic string
}

// task returns the stream input of in.
func (in Input[T]) task() stream.Input[T] {
	return stream.Input[T]{Lateness: in.Lateness, MaxAhead: in.MaxAhead, Dedup: in.Dedup, Final: in.Final}
}

func (in Input[T]) stage() stageInput {
	return stageInput{topic: in.Topic, lateness: in.Lateness, maxAhead: in.MaxAhead, skipDeadLetter: in.SkipDeadLetter, lateTopic: in.LateTopic, final: in.Final}
}

// Default stage settings.
const (
	DefaultCommitInterval     = 100 * time.Millisecond
	DefaultTransactionTimeout = 10 * time.Second
)

// Stage is a streaming stage: a member of a Kafka consumer group that runs
// one task (stream.Task or stream.TwoInputTask) per partition it is
// assigned, and writes the results exactly once to Kafka or at least once
// to a sink. See the package documentation for what is guaranteed and how.
// Run runs it; Stats may be called from any goroutine.
type Stage struct {
	group   string
	inputs  []stageInput
	newTask func() (taskCtl, []inputRunner, error)
	outputs []outputWriter // the main one first, then the sides
	exactly bool           // results go to Kafka in transactions
	cfg     stageConfig
	log     *slog.Logger
	bounds  stream.Bounds
	started atomic.Bool

	stats stageCounters

	// test hooks, set before Run
	hooks stageHooks
	rt    atomic.Pointer[runtime]
	life  lifecycle
}

// crash stops a running stage as a crash would, for tests: nothing is
// committed or aborted, the group is not told.
func (s *Stage) crash() {
	if rt := s.rt.Load(); rt != nil {
		select {
		case <-rt.crashed:
		default:
			close(rt.crashed)
		}
	}
}

type stageHooks struct {
	beforeCommit func() bool  // called by the loop before each commit; true: crash there
	failCommit   func() error // called by the loop before each commit; an error fails it as a refused commit would
	afterBatch   func()       // called by the loop after each batch of records
}

type stageInput struct {
	topic          string
	lateness       time.Duration
	maxAhead       time.Duration
	skipDeadLetter bool
	lateTopic      string
	final          bool
}

// NewStage returns a stage that reads in.Topic as a member of group, runs
// one task per partition with an operator from newOp, and writes the results
// to out (and to the side outputs of WithSides). newOp is called here, to
// check it and learn the operator's bounds (that operator is the first
// task's), and once per further task. WithBrokers is required: the stage
// makes its own clients (a consumer group member, a producer, a reader for
// replays) from its config, which should come from NewConfig.
func NewStage[In, Out any](group string, in Input[In], newOp func() (stream.Operator[In, Out], error), out Output[Out], opts ...StageOption) (*Stage, error) {
	if newOp == nil {
		return nil, fmt.Errorf("%w: nil operator factory", ErrInvalidOption)
	}
	op, err := newOp()
	if err != nil {
		return nil, fmt.Errorf("kafkaio: operator: %w", err)
	}
	if op == nil {
		return nil, fmt.Errorf("%w: the operator factory returned nil", ErrInvalidOption)
	}
	if in.Decoder == nil {
		return nil, fmt.Errorf("%w: input %q without a decoder", ErrInvalidOption, in.Topic)
	}
	main := &writer[Out]{out: out}
	s, err := newStage(group, []stageInput{in.stage()}, op.Bounds(), main, opts)
	if err != nil {
		return nil, err
	}
	first := op
	s.newTask = func() (taskCtl, []inputRunner, error) {
		op := first
		if first != nil {
			first = nil
		} else if op, err = newOp(); err != nil {
			return nil, nil, err
		}
		t, err := stream.NewTask(op, in.task(), main)
		if err != nil {
			return nil, nil, err
		}
		return t, []inputRunner{&typedInput[In]{in: t.Input(), dec: in.Decoder, maxAhead: in.MaxAhead}}, nil
	}
	return s, nil
}

// NewTwoInputStage returns a stage that reads left.Topic and right.Topic,
// which must be co-partitioned (the same number of partitions, keys
// partitioned alike), as a member of group. It runs one task per partition
// number p, fed by partition p of both topics, with an operator from newOp,
// and writes the results to out. See NewStage.
func NewTwoInputStage[L, R, Out any](group string, left Input[L], right Input[R], newOp func() (stream.TwoInput[L, R, Out], error),
	out Output[Out], opts ...StageOption) (*Stage, error) {
	if newOp == nil {
		return nil, fmt.Errorf("%w: nil operator factory", ErrInvalidOption)
	}
	op, err := newOp()
	if err != nil {
		return nil, fmt.Errorf("kafkaio: operator: %w", err)
	}
	if op == nil {
		return nil, fmt.Errorf("%w: the operator factory returned nil", ErrInvalidOption)
	}
	if left.Decoder == nil || right.Decoder == nil {
		return nil, fmt.Errorf("%w: input without a decoder", ErrInvalidOption)
	}
	if left.Topic == right.Topic {
		return nil, fmt.Errorf("%w: both inputs read topic %q", ErrInvalidOption, left.Topic)
	}
	main := &writer[Out]{out: out}
	s, err := newStage(group, []stageInput{left.stage(), right.stage()}, op.Bounds(), main, opts)
	if err != nil {
		return nil, err
	}
	first := op
	s.newTask = func() (taskCtl, []inputRunner, error) {
		op := first
		if first != nil {
			first = nil
		} else if op, err = newOp(); err != nil {
			return nil, nil, err
		}
		t, err := stream.NewTwoInputTask(op, left.task(), right.task(), main)
		if err != nil {
			return nil, nil, err
		}
		return t, []inputRunner{&typedInput[L]{in: t.Left(), dec: left.Decoder, maxAhead: left.MaxAhead},
			&typedInput[R]{in: t.Right(), dec: right.Decoder, maxAhead: right.MaxAhead}}, nil
	}
	return s, nil
}

func newStage(group string, inputs []stageInput, bounds stream.Bounds, main outputWriter, opts []StageOption) (*Stage, error) {
	cfg := stageConfig{commitInterval: DefaultCommitInterval, batch: 512, txnTimeout: DefaultTransactionTimeout}
	for _, o := range opts {
		if o != nil {
			o.applyStage(&cfg)
		}
	}
	outputs := append([]outputWriter{main}, cfg.sides...)
	exactly := false
	for _, o := range outputs {
		if err := o.check(); err != nil {
			return nil, err
		}
		exactly = exactly || o.toKafka()
	}
	switch {
	case len(cfg.errs) > 0:
		return nil, cfg.errs[0]
	case group == "":
		return nil, fmt.Errorf("%w: empty consumer group", ErrInvalidOption)
	case !cfg.dial:
		return nil, fmt.Errorf("%w: a stage needs WithBrokers", ErrInvalidOption)
	case bounds.Back < 0 || bounds.Ahead < 0:
		return nil, fmt.Errorf("%w: negative operator bounds %+v", ErrInvalidOption, bounds)
	}
	for _, in := range inputs {
		switch {
		case in.topic == "":
			return nil, fmt.Errorf("%w: empty input topic", ErrInvalidOption)
		case in.topic == cfg.deadLetter:
			return nil, fmt.Errorf("%w: dead-letter topic %q is also an input", ErrInvalidOption, in.topic)
		case in.lateness < 0:
			return nil, fmt.Errorf("%w: negative lateness %v for %q", ErrInvalidOption, in.lateness, in.topic)
		case in.maxAhead < 0:
			return nil, fmt.Errorf("%w: negative MaxAhead %v for %q", ErrInvalidOption, in.maxAhead, in.topic)
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.config == nil {
		c, err := NewConfig()
		if err != nil {
			return nil, err
		}
		cfg.config = c
	}
	if exactly && cfg.txnTimeout >= cfg.config.Consumer.Group.Session.Timeout {
		return nil, fmt.Errorf("%w: transaction timeout %v must be below the session timeout %v",
			ErrInvalidOption, cfg.txnTimeout, cfg.config.Consumer.Group.Session.Timeout)
	}
	if exactly && cfg.commitInterval >= cfg.txnTimeout {
		// A transaction opens with the first result after a commit and
		// closes at the next: with a longer interval, the broker would abort
		// every transaction of a busy stage before the stage commits it.
		return nil, fmt.Errorf("%w: commit interval %v must be below the transaction timeout %v",
			ErrInvalidOption, cfg.commitInterval, cfg.txnTimeout)
	}
	for _, o := range outputs {
		if !o.claim() {
			return nil, fmt.Errorf("%w: a side output given to two stages", ErrInvalidOption)
		}
	}
	s := &Stage{group: group, inputs: inputs, outputs: outputs, exactly: exactly, cfg: cfg, log: cfg.logger, bounds: bounds}
	if f := cfg.faults; f != nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.stage != nil {
			return nil, fmt.Errorf("%w: a Faults given to two stages", ErrInvalidOption)
		}
		f.stage = s
	}
	return s, nil
}

// Stats returns the counts so far, and the stage's lag and watermark now.
func (s *Stage) Stats() StageStats {
	st := s.stats.snapshot()
	if rt := s.rt.Load(); rt != nil {
		st.Lag = rt.lag()
		st.Watermark = stream.Time(s.stats.watermark.Load())
	}
	return st
}

// lateTopics reports whether an input forwards its late records.
func (s *Stage) lateTopics() bool {
	for _, in := range s.inputs {
		if in.lateTopic != "" {
			return true
		}
	}
	return false
}

// Bounds returns the bounds of the stage's operator.
func (s *Stage) Bounds() stream.Bounds { return s.bounds }

// taskCtl is what the stage needs of a task beyond its inputs; stream.Task
// and stream.TwoInputTask implement it.
type taskCtl interface {
	EndReplay() error
	Replaying() bool
	Checkpoints([]stream.InputCheckpoint) []stream.InputCheckpoint
	Watermark() stream.Time
	Origin(key string, t stream.Time) (stream.Origin, bool)
	Trigger() (stream.Origin, bool)
}

// inputRunner is one input of a task, behind its codec.
type inputRunner interface {
	restore(stream.Checkpoint) (int64, error)
	push(m *sarama.ConsumerMessage) (pushed, error)
	next() (int64, bool)
	idle(elapsed time.Duration)
}

type typedInput[V any] struct {
	in       *stream.TaskInput[V]
	dec      Decoder[V]
	maxAhead time.Duration
}

func (t *typedInput[V]) restore(cp stream.Checkpoint) (int64, error) { return t.in.Restore(cp) }
func (t *typedInput[V]) next() (int64, bool)                         { return t.in.Next() }
func (t *typedInput[V]) idle(elapsed time.Duration)                  { t.in.Idle(elapsed) }

// pushed is what became of a record pushed to an input: the task's
// verdict, and why the record is refused (the decoder rejected it, or it
// is too far ahead), if it is.
type pushed struct {
	verdict stream.Verdict
	refused error
}

// push decodes m and pushes it to the task; the error is the task's (a
// record out of offset order), which stops the stage.
func (t *typedInput[V]) push(m *sarama.ConsumerMessage) (pushed, error) {
	ts := recordTime(m)
	e, derr := t.dec.Decode(m.Key, m.Value, ts)
	if derr != nil {
		return pushed{refused: derr}, t.in.Skip(m.Offset)
	}
	v, err := t.in.PushStamped(m.Offset, e, ts)
	if v == stream.TooFarAhead {
		ref := "the largest event time of its partition"
		if ts != stream.MinTime {
			ref = "its record's timestamp " + ts.String()
		}
		return pushed{verdict: v, refused: &refusal{kind: "too-far-ahead", err: fmt.Errorf("event time %v is more than %v ahead of %s", e.Time, t.maxAhead, ref)}}, err
	}
	return pushed{verdict: v}, err
}

// recordTime is a record's timestamp, stream.MinTime when it has none.
func recordTime(m *sarama.ConsumerMessage) stream.Time {
	if m.Timestamp.IsZero() || m.Timestamp.Before(time.Unix(0, 0)) {
		return stream.MinTime
	}
	return stream.TimeOf(m.Timestamp)
}

// refusal is why the stage refused an input record that decoded: its kind
// goes to the dead-letter header tidemark-error-kind.
type refusal struct {
	kind string
	err  error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }
