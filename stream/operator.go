package stream

// Emitter receives the events an operator produces. Implementations are usually
// pointers, so that passing one to an operator does not allocate.
type Emitter[T any] interface {
	Emit(e Event[T])
}

// EmitFunc adapts a function to an Emitter. Converting a func value to an
// interface does not allocate when the func is a package-level function or a
// method value stored once; prefer storing the EmitFunc in a variable in hot loops.
type EmitFunc[T any] func(Event[T])

// Emit calls f(e).
func (f EmitFunc[T]) Emit(e Event[T]) { f(e) }

// Operator is a deterministic state machine from a stream of In to a stream of Out.
//
// Contract (what the Sequencer guarantees to the operators it feeds):
//   - Process receives, for each key, events in strictly increasing Time order,
//     each already final: no event of that key with a smaller time will follow.
//   - Advance(wm) promises that no event with Time < wm will follow. Watermarks only
//     grow; MaxTime means end of input and the operator must flush everything.
//
// What the operator promises in return:
//   - Bounds says how far in event time its results reach (see Bounds): a
//     result with time t depends only on input events with times in
//     [t - Back, t + Ahead], and it is emitted by the time Advance raises the
//     watermark above t + Ahead. The runtime commits and recovers by these
//     bounds, so they must not be understated.
//   - A result depends on the events within its bounds, not on the order or
//     the watermarks with which they were delivered, nor on events outside them:
//     an operator restarted on a suffix of its input emits the same results
//     for every time whose bounds the suffix covers.
//
// An operator never reads the wall clock: time enters only through events and
// watermarks. Operators emit synchronously through out; the emitted Event is
// passed by value, and an operator may reuse any slice inside its Value once Emit
// returns, so an Emitter that keeps values must copy what it keeps.
// Operators are not safe for concurrent use.
type Operator[In, Out any] interface {
	Process(e Event[In], out Emitter[Out])
	Advance(wm Time, out Emitter[Out])
	Bounds() Bounds
}

// Chain returns the operator that feeds first's output into second. Its
// bounds are the sum of theirs, and second sees a watermark delayed by how
// far first looks ahead: first's results up to wm - first.Bounds().Ahead are
// final when the watermark is wm.
func Chain[A, B, C any](first Operator[A, B], second Operator[B, C]) Operator[A, C] {
	c := &chain[A, B, C]{first: first, second: second, lag: first.Bounds().ahead()}
	c.mid.c = c
	return c
}

type chain[A, B, C any] struct {
	first  Operator[A, B]
	second Operator[B, C]
	lag    Time // first's reach ahead, in milliseconds
	mid    chainEmitter[A, B, C]
	out    Emitter[C]
}

type chainEmitter[A, B, C any] struct{ c *chain[A, B, C] }

func (m *chainEmitter[A, B, C]) Emit(e Event[B]) { m.c.second.Process(e, m.c.out) }

func (c *chain[A, B, C]) Process(e Event[A], out Emitter[C]) {
	c.out = out
	c.first.Process(e, &c.mid)
}

func (c *chain[A, B, C]) Advance(wm Time, out Emitter[C]) {
	c.out = out
	c.first.Advance(wm, &c.mid)
	c.second.Advance(delay(wm, c.lag), out)
}

func (c *chain[A, B, C]) Bounds() Bounds { return c.first.Bounds().Then(c.second.Bounds()) }
