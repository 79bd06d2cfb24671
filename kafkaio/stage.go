package kafkaio

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/stream"
)

// Input is a topic a Stage reads, with its codec and allowed lateness.
type Input[T any] struct {
	Topic string
	Codec Codec[T]
	// Lateness is the input's allowed lateness (stream.Input). A topic written
	// by a Tidemark stage is in event-time order in every partition and can
	// use 0; a topic of raw events uses stream.DefaultLateness or what its
	// producers need.
	Lateness time.Duration
	// SkipDeadLetter keeps this input's records that the codec rejects out
	// of the stage's dead-letter topic (WithDeadLetter): they are counted
	// and logged only. For an input that another stage reads and
	// dead-letters already, so that each rejected record is forwarded once.
	SkipDeadLetter bool
}

// Output says where a Stage writes its results: to Kafka topics, exactly
// once (ToTopic, ToTopics), or to a sink outside Kafka, at least once
// (ToSink).
type Output[T any] struct {
	topic string
	route func(stream.Event[T]) string
	codec Codec[T]
	sink  stream.Sink[T]
}

// ToTopic writes every result to topic, encoded by codec, in the stage's
// transactions: exactly once.
func ToTopic[T any](topic string, codec Codec[T]) Output[T] {
	return Output[T]{topic: topic, codec: codec}
}

// ToTopics writes each result to the topic route returns, encoded by codec,
// in the stage's transactions: exactly once.
func ToTopics[T any](codec Codec[T], route func(stream.Event[T]) string) Output[T] {
	return Output[T]{route: route, codec: codec}
}

// ToSink writes the results to sink, outside Kafka: at least once. Before
// it commits offsets, the stage calls Flush when the sink implements
// stream.Flusher, and commits only when it succeeded; after a crash the
// results since the last commit are written again, so the sink should be
// idempotent (mongoio's upserts are). The sink is used by the stage's one
// processing goroutine.
func ToSink[T any](sink stream.Sink[T]) Output[T] { return Output[T]{sink: sink} }

func (o Output[T]) check() error {
	switch {
	case o.sink != nil:
		return nil
	case o.codec == nil:
		return fmt.Errorf("%w: output without a codec or a sink", ErrInvalidOption)
	case o.topic == "" && o.route == nil:
		return fmt.Errorf("%w: output without a topic or a router", ErrInvalidOption)
	}
	return nil
}

// Default stage settings.
const (
	DefaultCommitInterval     = 100 * time.Millisecond
	DefaultTransactionTimeout = 10 * time.Second
)

// StageStats counts what a Stage did since it started.
type StageStats struct {
	Records      uint64 // records processed (not counting replays)
	Replayed     uint64 // records read again to rebuild task state
	Accepted     uint64 // events accepted by the tasks' sequencers
	Late         uint64 // events dropped as late
	Duplicates   uint64 // events dropped as duplicates
	Rejected     uint64 // records the codec rejected
	DeadLettered uint64 // rejected records written to the dead-letter topic
	Emitted      uint64 // results written
	Commits      uint64 // commits (transactions, or offset commits)
	Aborts       uint64 // transactions aborted, or failed commits
	Rebuilds     uint64 // tasks rebuilt after an abort
	Tasks        int64  // tasks running now
	// Lag is the sum, over the partitions the stage consumes, of the offsets
	// between the last record it received and the partition's end, as of the
	// latest fetch. The end counts transaction markers, which a
	// read_committed consumer never receives: a caught-up stage reading a
	// transactional topic shows up to one per partition.
	Lag int64
	// Watermark is the smallest watermark of the running tasks that are not
	// replaying (stream.MinTime when there is none): every result at or
	// before it is emitted. The wall clock less Watermark is the stage's
	// watermark delay.
	Watermark stream.Time
}

// Stage is a streaming stage: a member of a Kafka consumer group that runs
// one task (stream.Task or stream.TwoInputTask) per partition it is
// assigned, and writes the results exactly once to Kafka or at least once
// to a sink. See the package documentation for what is guaranteed and how.
// Run runs it; Stats may be called from any goroutine.
type Stage struct {
	group     string
	inputs    []stageInput
	newTask   func(out *outputs) (taskCtl, []inputRunner, error)
	newOutput func(rt *runtime) *outputs
	exactly   bool // results go to Kafka in transactions
	cfg       stageConfig
	log       *slog.Logger
	bounds    stream.Bounds
	started   atomic.Bool

	stats struct {
		records, replayed, accepted, late, dups, rejected, deadLettered, emitted,
		commits, aborts, rebuilds atomic.Uint64
		tasks, watermark atomic.Int64
	}

	// test hooks, set before Run
	hooks stageHooks
	rt    atomic.Pointer[runtime]
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
	beforeCommit func() bool // called by the loop before each commit; true: crash there
	afterBatch   func()      // called by the loop after each batch of records
}

type stageInput struct {
	topic          string
	lateness       time.Duration
	skipDeadLetter bool
}

// NewStage returns a stage that reads in.Topic as a member of group, runs
// one task per partition with an operator from newOp, and writes the results
// to out. newOp is called once here, to check it and learn the operator's
// bounds, and once per task. WithBrokers is required: the stage makes its
// own clients (a consumer group member, a producer, a reader for replays)
// from its config, which should come from NewConfig.
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
	if in.Codec == nil {
		return nil, fmt.Errorf("%w: input %q without a codec", ErrInvalidOption, in.Topic)
	}
	s, err := newStage(group, []stageInput{{in.Topic, in.Lateness, in.SkipDeadLetter}}, op.Bounds(), out.sink == nil, out.check(), opts)
	if err != nil {
		return nil, err
	}
	s.newOutput = func(rt *runtime) *outputs { return newOutputs(rt, out) }
	s.newTask = func(o *outputs) (taskCtl, []inputRunner, error) {
		op, err := newOp()
		if err != nil {
			return nil, nil, err
		}
		t, err := stream.NewTask(op, stream.Input[In]{Lateness: in.Lateness}, o.emitter.(stream.Emitter[Out]))
		if err != nil {
			return nil, nil, err
		}
		return t, []inputRunner{&typedInput[In]{in: t.Input(), codec: in.Codec}}, nil
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
	if left.Codec == nil || right.Codec == nil {
		return nil, fmt.Errorf("%w: input without a codec", ErrInvalidOption)
	}
	if left.Topic == right.Topic {
		return nil, fmt.Errorf("%w: both inputs read topic %q", ErrInvalidOption, left.Topic)
	}
	s, err := newStage(group, []stageInput{{left.Topic, left.Lateness, left.SkipDeadLetter}, {right.Topic, right.Lateness, right.SkipDeadLetter}},
		op.Bounds(), out.sink == nil, out.check(), opts)
	if err != nil {
		return nil, err
	}
	s.newOutput = func(rt *runtime) *outputs { return newOutputs(rt, out) }
	s.newTask = func(o *outputs) (taskCtl, []inputRunner, error) {
		op, err := newOp()
		if err != nil {
			return nil, nil, err
		}
		t, err := stream.NewTwoInputTask(op, stream.Input[L]{Lateness: left.Lateness}, stream.Input[R]{Lateness: right.Lateness},
			o.emitter.(stream.Emitter[Out]))
		if err != nil {
			return nil, nil, err
		}
		return t, []inputRunner{&typedInput[L]{in: t.Left(), codec: left.Codec}, &typedInput[R]{in: t.Right(), codec: right.Codec}}, nil
	}
	return s, nil
}

func newStage(group string, inputs []stageInput, bounds stream.Bounds, exactly bool, outErr error, opts []StageOption) (*Stage, error) {
	cfg := stageConfig{commitInterval: DefaultCommitInterval, batch: 512, txnTimeout: DefaultTransactionTimeout}
	for _, o := range opts {
		if o != nil {
			o.applyStage(&cfg)
		}
	}
	switch {
	case len(cfg.errs) > 0:
		return nil, cfg.errs[0]
	case outErr != nil:
		return nil, outErr
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
	return &Stage{group: group, inputs: inputs, exactly: exactly, cfg: cfg, log: cfg.logger, bounds: bounds}, nil
}

// Stats returns the counts so far, and the stage's lag and watermark now.
func (s *Stage) Stats() StageStats {
	st := StageStats{
		Records: s.stats.records.Load(), Replayed: s.stats.replayed.Load(), Accepted: s.stats.accepted.Load(),
		Late: s.stats.late.Load(), Duplicates: s.stats.dups.Load(), Rejected: s.stats.rejected.Load(),
		DeadLettered: s.stats.deadLettered.Load(), Emitted: s.stats.emitted.Load(), Commits: s.stats.commits.Load(),
		Aborts: s.stats.aborts.Load(), Rebuilds: s.stats.rebuilds.Load(), Tasks: s.stats.tasks.Load(),
		Watermark: stream.MinTime,
	}
	if rt := s.rt.Load(); rt != nil {
		st.Lag = rt.lag()
		st.Watermark = stream.Time(s.stats.watermark.Load())
	}
	return st
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
}

// inputRunner is one input of a task, behind its codec.
type inputRunner interface {
	restore(stream.Checkpoint) (int64, error)
	push(m *sarama.ConsumerMessage) (v stream.Verdict, rejected, err error)
	next() (int64, bool)
}

type typedInput[V any] struct {
	in    *stream.TaskInput[V]
	codec Codec[V]
}

func (t *typedInput[V]) restore(cp stream.Checkpoint) (int64, error) { return t.in.Restore(cp) }
func (t *typedInput[V]) next() (int64, bool)                         { return t.in.Next() }

func (t *typedInput[V]) push(m *sarama.ConsumerMessage) (stream.Verdict, error, error) {
	ts := stream.MinTime
	if !m.Timestamp.IsZero() {
		ts = stream.TimeOf(m.Timestamp)
	}
	e, derr := t.codec.Decode(m.Key, m.Value, ts)
	if derr != nil {
		return 0, derr, t.in.Skip(m.Offset)
	}
	v, err := t.in.Push(m.Offset, e)
	return v, nil, err
}

// outputs is where the tasks of a running stage emit: an emitter of the
// stage's output type, with the first error it met, and the sink's Flush
// for a sink that buffers.
type outputs struct {
	emitter any // stream.Emitter[Out]
	err     func() error
	reset   func()
	flush   func(context.Context) error
}

// topicWriter encodes results into the stage's producer.
type topicWriter[T any] struct {
	rt    *runtime
	o     Output[T]
	first error
}

func (w *topicWriter[T]) Emit(e stream.Event[T]) {
	if w.first != nil {
		return
	}
	p := w.rt.prod
	if err := p.err(); err != nil {
		// A record of the transaction failed: it will abort, and recovery
		// writes this result again. Sending more would only fail more.
		w.first = err
		return
	}
	m := p.message()
	var err error
	if m.val.b, err = w.o.codec.AppendValue(m.val.b, e); err != nil {
		p.pool.Put(m)
		w.first = fmt.Errorf("kafkaio: encode %q at %v: %w", e.Key, e.Time, err)
		return
	}
	topic := w.o.topic
	if w.o.route != nil {
		if topic = w.o.route(e); topic == "" {
			p.pool.Put(m)
			w.first = fmt.Errorf("kafkaio: the router gave no topic for %q at %v", e.Key, e.Time)
			return
		}
	}
	m.msg = sarama.ProducerMessage{Topic: topic, Value: &m.val, Timestamp: e.Time.UTC(), Partition: -1}
	if e.Key != "" {
		m.key.b = append(m.key.b, e.Key...)
		m.msg.Key = &m.key
	}
	if err := p.send(w.rt.writes, m); err != nil {
		w.first = err
		return
	}
	w.rt.st.stats.emitted.Add(1)
}

// sinkWriter writes results to a sink outside Kafka.
type sinkWriter[T any] struct {
	rt    *runtime
	sink  stream.Sink[T]
	first error
}

func (w *sinkWriter[T]) Emit(e stream.Event[T]) {
	if w.first != nil {
		return
	}
	if err := w.sink.Write(w.rt.writes, e); err != nil {
		w.first = fmt.Errorf("kafkaio: sink: %w", err)
		return
	}
	w.rt.st.stats.emitted.Add(1)
}

func newOutputs[T any](rt *runtime, o Output[T]) *outputs {
	if o.sink != nil {
		w := &sinkWriter[T]{rt: rt, sink: o.sink}
		out := &outputs{emitter: stream.Emitter[T](w), err: func() error { return w.first }, reset: func() { w.first = nil }}
		if f, ok := o.sink.(stream.Flusher); ok {
			out.flush = f.Flush
		}
		return out
	}
	w := &topicWriter[T]{rt: rt, o: o}
	return &outputs{emitter: stream.Emitter[T](w), err: func() error { return w.first }, reset: func() { w.first = nil }}
}
