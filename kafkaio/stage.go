package kafkaio

import (
	"context"
	"errors"
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

// topics returns the topics the output names, which a stage checks at start.
func (o Output[T]) topics() []string {
	if o.topic != "" {
		return []string{o.topic}
	}
	return nil
}

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

// Stage is a streaming stage: a member of a Kafka consumer group that runs
// one task (stream.Task or stream.TwoInputTask) per partition it is
// assigned, and writes the results exactly once to Kafka or at least once
// to a sink. See the package documentation for what is guaranteed and how.
// Run runs it; Stats may be called from any goroutine.
type Stage struct {
	group     string
	inputs    []stageInput
	newTask   func(out *outputs) (taskCtl, []inputRunner, error)
	outTopics []string // the topics its outputs name (a router's are learnt as it names them)
	newOutput func(rt *runtime) *outputs
	exactly   bool // results go to Kafka in transactions
	cfg       stageConfig
	log       *slog.Logger
	bounds    stream.Bounds
	started   atomic.Bool

	stats stageCounters

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
	beforeCommit func() bool  // called by the loop before each commit; true: crash there
	failCommit   func() error // called by the loop before each commit; an error fails it as a refused commit would
	afterBatch   func()       // called by the loop after each batch of records
}

type stageInput struct {
	topic          string
	lateness       time.Duration
	maxAhead       time.Duration
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
	s, err := newStage(group, []stageInput{{in.Topic, in.Lateness, in.MaxAhead, in.SkipDeadLetter}}, op.Bounds(), out.sink == nil, out.check(), opts)
	if err != nil {
		return nil, err
	}
	s.outTopics = out.topics()
	s.newOutput = func(rt *runtime) *outputs { return newOutputs(rt, out) }
	s.newTask = func(o *outputs) (taskCtl, []inputRunner, error) {
		op, err := newOp()
		if err != nil {
			return nil, nil, err
		}
		t, err := stream.NewTask(op, stream.Input[In]{Lateness: in.Lateness, MaxAhead: in.MaxAhead}, o.emitter.(stream.Emitter[Out]))
		if err != nil {
			return nil, nil, err
		}
		return t, []inputRunner{&typedInput[In]{in: t.Input(), codec: in.Codec, maxAhead: in.MaxAhead}}, nil
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
	s, err := newStage(group, []stageInput{{left.Topic, left.Lateness, left.MaxAhead, left.SkipDeadLetter}, {right.Topic, right.Lateness, right.MaxAhead, right.SkipDeadLetter}},
		op.Bounds(), out.sink == nil, out.check(), opts)
	if err != nil {
		return nil, err
	}
	s.outTopics = out.topics()
	s.newOutput = func(rt *runtime) *outputs { return newOutputs(rt, out) }
	s.newTask = func(o *outputs) (taskCtl, []inputRunner, error) {
		op, err := newOp()
		if err != nil {
			return nil, nil, err
		}
		t, err := stream.NewTwoInputTask(op, stream.Input[L]{Lateness: left.Lateness, MaxAhead: left.MaxAhead},
			stream.Input[R]{Lateness: right.Lateness, MaxAhead: right.MaxAhead},
			o.emitter.(stream.Emitter[Out]))
		if err != nil {
			return nil, nil, err
		}
		return t, []inputRunner{&typedInput[L]{in: t.Left(), codec: left.Codec, maxAhead: left.MaxAhead},
			&typedInput[R]{in: t.Right(), codec: right.Codec, maxAhead: right.MaxAhead}}, nil
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
	return &Stage{group: group, inputs: inputs, exactly: exactly, cfg: cfg, log: cfg.logger, bounds: bounds}, nil
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
	push(m *sarama.ConsumerMessage) (v stream.Verdict, rejected, err error)
	next() (int64, bool)
	idle(elapsed time.Duration)
}

type typedInput[V any] struct {
	in       *stream.TaskInput[V]
	codec    Codec[V]
	maxAhead time.Duration
}

func (t *typedInput[V]) restore(cp stream.Checkpoint) (int64, error) { return t.in.Restore(cp) }
func (t *typedInput[V]) next() (int64, bool)                         { return t.in.Next() }
func (t *typedInput[V]) idle(elapsed time.Duration)                  { t.in.Idle(elapsed) }

func (t *typedInput[V]) push(m *sarama.ConsumerMessage) (stream.Verdict, error, error) {
	ts := recordTime(m)
	e, derr := t.codec.Decode(m.Key, m.Value, ts)
	if derr != nil {
		return 0, derr, t.in.Skip(m.Offset)
	}
	v, err := t.in.PushStamped(m.Offset, e, ts)
	if v == stream.TooFarAhead {
		ref := "the largest event time of its partition"
		if ts != stream.MinTime {
			ref = "its record's timestamp " + ts.String()
		}
		return v, &refusal{kind: "too-far-ahead", err: fmt.Errorf("event time %v is more than %v ahead of %s", e.Time, t.maxAhead, ref)}, err
	}
	return v, nil, err
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
	ot    *outTopic // o.topic's, once known
	first error
}

func (w *topicWriter[T]) Emit(e stream.Event[T]) {
	if w.first != nil {
		return
	}
	rt := w.rt
	p := rt.prod
	if err := p.err(); err != nil {
		// A record of the transaction failed: it will abort, and recovery
		// writes this result again. Sending more would only fail more.
		w.first = err
		return
	}
	topic, ot := w.o.topic, w.ot
	if w.o.route != nil {
		if topic = w.o.route(e); topic == "" {
			w.first = rt.refuse(refusedOutput{key: e.Key, t: e.Time, kind: "no-topic", err: errors.New("the router gave no topic")}, rt.originOf(e.Key, e.Time))
			return
		}
		ot = nil
	}
	if ot == nil {
		var err error
		if ot, err = rt.outputTopic(topic); err != nil {
			w.first = err
			return
		}
		if w.o.route == nil {
			w.ot = ot
		}
	}
	m := p.message()
	var err error
	if m.val.b, err = w.o.codec.AppendValue(m.val.b, e); err != nil {
		p.pool.Put(m)
		w.first = rt.refuse(refusedOutput{topic: topic, key: e.Key, t: e.Time, kind: "encode", err: fmt.Errorf("encode: %w", err)}, rt.originOf(e.Key, e.Time))
		return
	}
	m.msg = sarama.ProducerMessage{Topic: topic, Value: &m.val, Timestamp: e.Time.UTC(), Partition: -1}
	if e.Key != "" {
		m.key.b = append(m.key.b, e.Key...)
		m.msg.Key = &m.key
	}
	if size := m.msg.ByteSize(2); size > ot.maxBytes {
		w.first = rt.refuse(refusedOutput{topic: topic, key: e.Key, t: e.Time, value: m.val.b, size: size, kind: "too-large",
			err: fmt.Errorf("%d bytes, more than the %d that %q takes", size, ot.maxBytes, topic)}, rt.originOf(e.Key, e.Time))
		p.pool.Put(m)
		return
	}
	if len(rt.suspects) > 0 || len(rt.poison) > 0 {
		id := outputID{topic: topic, key: e.Key, t: int64(e.Time)}
		if reason, ok := rt.poison[id]; ok {
			w.first = rt.refuse(refusedOutput{topic: topic, key: e.Key, t: e.Time, value: m.val.b, kind: "refused", err: reason}, rt.originOf(e.Key, e.Time))
			p.pool.Put(m)
			return
		}
		if _, ok := rt.suspects[id]; ok {
			w.first = rt.sendAlone(m, id)
			return
		}
	}
	if err := p.send(rt.writes, m); err != nil {
		w.first = err
		return
	}
	rt.st.stats.emitted.add(1)
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
	err := w.sink.Write(w.rt.writes, e)
	switch {
	case err == nil:
		w.rt.st.stats.emitted.add(1)
		w.rt.written = append(w.rt.written, writtenResult{key: e.Key, t: e.Time, from: w.rt.originOf(e.Key, e.Time)})
	case errors.Is(err, stream.ErrRejected):
		w.first = w.rt.refuse(refusedOutput{key: e.Key, t: e.Time, kind: "sink", err: err}, w.rt.originOf(e.Key, e.Time))
	default:
		w.first = fmt.Errorf("kafkaio: sink: %w", err)
	}
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
