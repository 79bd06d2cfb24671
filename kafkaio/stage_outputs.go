package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/stream"
)

// Output says where a Stage writes results of type T: to Kafka topics,
// exactly once (ToTopic, ToTopics), or to a sink outside Kafka, at least
// once (ToSink). A stage has a main output, whose results its operator
// emits, and may have side outputs (NewSide) of other types.
type Output[T any] struct {
	topic string
	route func(stream.Event[T]) string
	enc   Encoder[T]
	sink  stream.Sink[T]
}

// ToTopic writes every result to topic, encoded by enc, in the stage's
// transactions: exactly once.
func ToTopic[T any](topic string, enc Encoder[T]) Output[T] {
	return Output[T]{topic: topic, enc: enc}
}

// ToTopics writes each result to the topic route returns, encoded by enc,
// in the stage's transactions: exactly once. The topics must exist; a
// stage checks each the first time route names it.
func ToTopics[T any](enc Encoder[T], route func(stream.Event[T]) string) Output[T] {
	return Output[T]{route: route, enc: enc}
}

// ToSink writes the results to sink, outside Kafka: at least once. Before
// it commits offsets, the stage calls Flush when the sink implements
// stream.Flusher, and commits only when it succeeded; after a crash the
// results since the last commit are written again, so the sink should be
// idempotent (mongoio's upserts are). A result the sink refuses for good
// (stream.ErrRejected) has its input dead-lettered (see Results that
// cannot be written). The sink is used by the stage's one processing
// goroutine.
func ToSink[T any](sink stream.Sink[T]) Output[T] { return Output[T]{sink: sink} }

func (o Output[T]) check() error {
	switch {
	case o.sink != nil:
		return nil
	case o.enc == nil:
		return fmt.Errorf("%w: output without an encoder or a sink", ErrInvalidOption)
	case o.topic == "" && o.route == nil:
		return fmt.Errorf("%w: output without a topic or a router", ErrInvalidOption)
	}
	return nil
}

// Side is a side output of a stage, as Flink's OutputTag: results of type
// T, besides the main output's, that the stage's operator emits to
// Emitter, each to its own Output (a topic or a sink). A Side belongs to
// the one stage it is given to (WithSides); its results are written as the
// main output's are, in the same transactions, and not while a task
// replays.
//
//	higher := kafkaio.NewSide(kafkaio.ToTopic("btc-price-higher", higherEnc))
//	lower := kafkaio.NewSide(kafkaio.ToTopic("btc-price-lower", lowerEnc))
//	stage, err := kafkaio.NewStage(group, prices,
//		func() (stream.Operator[float64, lookahead.Both[float64]], error) {
//			return newBonus(higher.Emitter(), lower.Emitter()) // emits to both, nothing on its main output
//		}, kafkaio.ToSink(stream.Discard[lookahead.Both[float64]]()), kafkaio.WithSides(higher, lower))
type Side[T any] struct{ w *writer[T] }

// NewSide returns a side output writing to out.
func NewSide[T any](out Output[T]) *Side[T] { return &Side[T]{w: &writer[T]{out: out}} }

// Emitter returns the emitter of the side output, for the operators of the
// stage it belongs to. It is the same for every task of the stage: what a
// task emits to it is written as its task's results are. Outside a running
// stage's tasks it drops what it is given.
func (s *Side[T]) Emitter() stream.Emitter[T] { return s.w }

func (s *Side[T]) sideWriter() outputWriter { return s.w }

// SideOutput is a *Side of any type, for WithSides.
type SideOutput interface{ sideWriter() outputWriter }

// WithSides gives a stage side outputs besides its main one (see Side).
func WithSides(sides ...SideOutput) StageOption {
	var ws []outputWriter
	for _, s := range sides {
		if s == nil {
			return optionError("nil side output")
		}
		ws = append(ws, s.sideWriter())
	}
	return stageOption(func(c *stageConfig) { c.sides = append(c.sides, ws...) })
}

// outputWriter is what the runtime needs of each output of a stage,
// whatever its type: writer[T] implements it.
type outputWriter interface {
	check() error
	claim() bool                 // marks it as a stage's; false if it was already
	bind(rt *runtime)            // the running stage, or nil
	topics() []string            // the topics it names, checked at start
	err() error                  // the first error since the last reset
	reset()                      // after an abort
	flush(context.Context) error // a sink's Flush; nil for topics
	toKafka() bool
}

// writer writes an output's results: encoded into the stage's producer, or
// into its sink. It is the main output's emitter and a side's.
type writer[T any] struct {
	out     Output[T]
	rt      *runtime
	ot      *outTopic // out.topic's, once known
	first   error
	claimed atomic.Bool
}

var _ stream.Emitter[int] = (*writer[int])(nil)

func (w *writer[T]) check() error     { return w.out.check() }
func (w *writer[T]) claim() bool      { return w.claimed.CompareAndSwap(false, true) }
func (w *writer[T]) bind(rt *runtime) { w.rt, w.ot, w.first = rt, nil, nil }
func (w *writer[T]) err() error       { return w.first }
func (w *writer[T]) reset()           { w.first = nil }
func (w *writer[T]) toKafka() bool    { return w.out.sink == nil }
func (w *writer[T]) topics() []string {
	if w.out.topic != "" {
		return []string{w.out.topic}
	}
	return nil
}

func (w *writer[T]) flush(ctx context.Context) error {
	if f, ok := w.out.sink.(stream.Flusher); ok {
		return f.Flush(ctx)
	}
	return nil
}

// Emit writes e, unless the task emitting it replays or the transaction
// failed already.
func (w *writer[T]) Emit(e stream.Event[T]) {
	rt := w.rt
	if rt == nil || w.first != nil || rt.replaying() {
		return
	}
	if w.out.sink != nil {
		w.toSink(e)
		return
	}
	p := rt.tx
	if err := p.err(); err != nil {
		// A record of the transaction failed: it will abort, and recovery
		// writes this result again. Sending more would only fail more.
		w.first = err
		return
	}
	topic, ot := w.out.topic, w.ot
	if w.out.route != nil {
		if topic = w.out.route(e); topic == "" {
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
		if w.out.route == nil {
			w.ot = ot
		}
	}
	m := p.message()
	var err error
	if m.val.b, err = w.out.enc.AppendValue(m.val.b, e); err != nil {
		p.recycle(m)
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
		p.recycle(m)
		return
	}
	if len(rt.suspects) > 0 || len(rt.poison) > 0 {
		id := outputID{topic: topic, key: e.Key, t: int64(e.Time)}
		if reason, ok := rt.poison[id]; ok {
			w.first = rt.refuse(refusedOutput{topic: topic, key: e.Key, t: e.Time, value: m.val.b, kind: "refused", err: reason}, rt.originOf(e.Key, e.Time))
			p.recycle(m)
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

// toSink writes e to the output's sink.
func (w *writer[T]) toSink(e stream.Event[T]) {
	rt := w.rt
	err := w.out.sink.Write(rt.writes, e)
	switch {
	case err == nil:
		rt.st.stats.emitted.add(1)
		rt.written = append(rt.written, writtenResult{key: e.Key, t: e.Time, from: rt.originOf(e.Key, e.Time)})
	case errors.Is(err, stream.ErrRejected):
		w.first = rt.refuse(refusedOutput{key: e.Key, t: e.Time, kind: "sink", err: err}, rt.originOf(e.Key, e.Time))
	default:
		w.first = fmt.Errorf("kafkaio: sink: %w", err)
	}
}
