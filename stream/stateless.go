package stream

// Stateless operators: Map, Filter and FlatMap turn each event into zero or
// more results at its own time, with a function of that event alone. They
// hold no state, so their Bounds are zero and Advance does nothing; they do
// not allocate per event (the function aside) and compose with Chain and
// ChainTwoInput like any operator.

// Map returns the operator that emits, for each event e, f(e) with e's Key
// and Time. f sees the whole event (key, time and value) and must be a
// function of it alone: deterministic, without state kept between calls
// (the runtime replays events after a crash, see Task, and a result must not
// depend on what came before). The operator's Bounds are zero, it emits
// nothing on Advance, and it does not allocate per event (f aside).
//
// f receives an event whose Value is only valid during the call, and the
// value it returns is emitted as is: a result that shares memory with e.Value
// (a slice of it, say) is then only valid during Emit, as every emitted value
// is. f must not be nil. Like every operator, the result is not safe for
// concurrent use; f is called from the goroutine that runs it.
func Map[In, Out any](f func(Event[In]) Out) Operator[In, Out] {
	return statelessMap[In, Out]{f: f}
}

type statelessMap[In, Out any] struct{ f func(Event[In]) Out }

func (m statelessMap[In, Out]) Process(e Event[In], out Emitter[Out]) {
	out.Emit(Event[Out]{Key: e.Key, Time: e.Time, Value: m.f(e)})
}

func (statelessMap[In, Out]) Advance(Time, Emitter[Out]) {}

// Bounds implements Operator: a result depends on the event of its time only.
func (statelessMap[In, Out]) Bounds() Bounds { return Bounds{} }

// Filter returns the operator that emits the events for which keep returns
// true, unchanged, and drops the others. keep must be a function of the event
// alone, as Map's f. The operator's Bounds are zero, it emits nothing on
// Advance, and it does not allocate per event (keep aside). The event keep
// sees is only valid during the call. keep must not be nil.
func Filter[T any](keep func(Event[T]) bool) Operator[T, T] {
	return statelessFilter[T]{keep: keep}
}

type statelessFilter[T any] struct{ keep func(Event[T]) bool }

func (f statelessFilter[T]) Process(e Event[T], out Emitter[T]) {
	if f.keep(e) {
		out.Emit(e)
	}
}

func (statelessFilter[T]) Advance(Time, Emitter[T]) {}

// Bounds implements Operator: a result is an input event.
func (statelessFilter[T]) Bounds() Bounds { return Bounds{} }

// FlatMap returns the operator that calls f for each event e, and emits the
// values f hands to the Collector, zero or more, in that order. Every value
// has e's Time: the operator's Bounds are zero, which promises that a result
// at time t depends only on inputs at t, and the runtime commits and replays
// by that promise (see Bounds and Task), so a FlatMap cannot move a result in
// time. A value has e's Key (Collector.Emit) or another one
// (Collector.EmitKey).
//
// The next operator expects each key's events in strictly increasing time
// order, one per time (Operator's contract). FlatMap keeps it when every
// output key is fed by one input key only, at most once per input event:
// emit at most one value per key for each event, and derive another key
// from the input's one-to-one ("BTCUSDT" to "BTCUSDT/volume" and
// "BTCUSDT/count"). Several values of one key per event, or keys merged,
// need a stage of their own: write the results out and read them back
// through a Sequencer, which orders them and drops duplicates.
//
// f must be a function of the event alone, as Map's, and must not be nil.
// The operator does not allocate per event (f aside). The event f sees, and
// the Collector, are only valid during the call.
func FlatMap[In, Out any](f func(e Event[In], out *Collector[Out])) Operator[In, Out] {
	return &statelessFlatMap[In, Out]{f: f}
}

// Collector receives the values of one call of a FlatMap's function and
// emits them at the time of the event the call is for. It is only valid
// during that call: one kept and used afterwards panics. Its values are
// emitted at once, and only valid during Emit, as every emitted value is.
type Collector[Out any] struct {
	key  string
	time Time
	out  Emitter[Out]
}

// Emit emits v with the key and time of the event being mapped.
func (c *Collector[Out]) Emit(v Out) { c.EmitKey(c.key, v) }

// EmitKey emits v under key, at the time of the event being mapped. See
// FlatMap for the keys the next operator can take.
func (c *Collector[Out]) EmitKey(key string, v Out) {
	if c.out == nil {
		panic("stream: FlatMap's Collector used after its call returned")
	}
	c.out.Emit(Event[Out]{Key: key, Time: c.time, Value: v})
}

type statelessFlatMap[In, Out any] struct {
	f func(Event[In], *Collector[Out])
	c Collector[Out]
}

func (m *statelessFlatMap[In, Out]) Process(e Event[In], out Emitter[Out]) {
	m.c = Collector[Out]{key: e.Key, time: e.Time, out: out}
	m.f(e, &m.c)
	m.c.out = nil
}

func (*statelessFlatMap[In, Out]) Advance(Time, Emitter[Out]) {}

// Bounds implements Operator: a result has the time of the event it comes
// from, and depends on it only.
func (*statelessFlatMap[In, Out]) Bounds() Bounds { return Bounds{} }
