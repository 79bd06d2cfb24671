package stream

// TwoInput is a deterministic state machine from two streams, left (L) and
// right (R), to a stream of Out; the timestamp-keyed Join is one.
//
// Contract: each side's events arrive as an Operator's do, per key in strictly
// increasing time order and final for that side (no earlier event of that key
// follows on that side). Advance(wm) promises that no event with Time < wm
// follows on either side: wm is the smaller of the two sides' watermarks.
// Bounds are as for Operator.
//
// On top of Operator's promises, a TwoInput is confluent: the results it has
// emitted after it was given two sequences (each side's events in order, and
// the watermarks those sequences allow) do not depend on how the two
// sequences were interleaved. A task feeds its two sides from two partitions
// whose records arrive in no fixed interleaving, and a task rebuilt after a
// crash replays them in another one; confluence is what makes the replay
// emit exactly what the original run had emitted.
type TwoInput[L, R, Out any] interface {
	ProcessLeft(e Event[L], out Emitter[Out])
	ProcessRight(e Event[R], out Emitter[Out])
	Advance(wm Time, out Emitter[Out])
	Bounds() Bounds
}

// ChainTwoInput returns the two-input operator that feeds first's output
// into second, as Chain does for one input.
func ChainTwoInput[L, R, M, Out any](first TwoInput[L, R, M], second Operator[M, Out]) TwoInput[L, R, Out] {
	c := &chainTwo[L, R, M, Out]{first: first, second: second, lag: first.Bounds().ahead()}
	c.mid.c = c
	return c
}

type chainTwo[L, R, M, Out any] struct {
	first  TwoInput[L, R, M]
	second Operator[M, Out]
	lag    Time
	mid    chainTwoEmitter[L, R, M, Out]
	out    Emitter[Out]
}

type chainTwoEmitter[L, R, M, Out any] struct{ c *chainTwo[L, R, M, Out] }

func (m *chainTwoEmitter[L, R, M, Out]) Emit(e Event[M]) { m.c.second.Process(e, m.c.out) }

func (c *chainTwo[L, R, M, Out]) ProcessLeft(e Event[L], out Emitter[Out]) {
	c.out = out
	c.first.ProcessLeft(e, &c.mid)
}

func (c *chainTwo[L, R, M, Out]) ProcessRight(e Event[R], out Emitter[Out]) {
	c.out = out
	c.first.ProcessRight(e, &c.mid)
}

func (c *chainTwo[L, R, M, Out]) Advance(wm Time, out Emitter[Out]) {
	c.out = out
	c.first.Advance(wm, &c.mid)
	c.second.Advance(delay(wm, c.lag), out)
}

func (c *chainTwo[L, R, M, Out]) Bounds() Bounds { return c.first.Bounds().Then(c.second.Bounds()) }
