package window

import (
	"math"

	"github.com/tidemark-go/tidemark/internal/ring"
)

// Accumulator is an incremental aggregate of values that are only ever
// added: Add adds a value; Result returns the aggregate of the values added
// since the accumulator was made or last Reset, may be called at any time,
// and must not change the state; Reset empties the accumulator for reuse.
//
// Tumbling and hopping windows need no more: each open window has its own
// accumulator, which is Reset and reused once the window is emitted. So an
// aggregate that cannot be undone, such as the high and low of an OHLC bar,
// or a volume-weighted average price, is an Accumulator and fits NewTumbling
// and NewHopping (see the example). Every Aggregator is an Accumulator.
// Accumulators are not safe for concurrent use.
type Accumulator[V, R any] interface {
	Add(v V)
	Result() R
	Reset()
}

// Aggregator is an Accumulator over a window that slides in FIFO order, as
// trailing windows do: Add appends the newest value and Remove removes the
// oldest one still held (its value is passed back for invertible
// aggregates). Result and Reset are as for Accumulator.
//
// Implement it for your own aggregates. Invertible ones (sums, moments) are O(1);
// the monotonic-deque ones here (Min, Max) are amortized O(1) per value. An
// undefined result (the mean of nothing) is NaN for the float64 aggregators.
// Aggregators are not safe for concurrent use.
type Aggregator[V, R any] interface {
	Accumulator[V, R]
	Remove(v V)
}

// Factory is a function that makes aggregators, one type for the
// constructors of several kinds (a table of them, say). NewTrailing,
// NewTumbling and NewHopping take a Factory as they take any function that
// returns a new, empty aggregator (or, for NewTumbling and NewHopping,
// accumulator) of a concrete type, such as NewMean.
type Factory[V, R any] func() Aggregator[V, R]

// FactoryOf turns the constructor of a concrete aggregator into a Factory:
// window.FactoryOf(window.NewMean). (A func() *Mean is not a Factory: Go does
// not convert the result type of a function value.)
func FactoryOf[V, R any, A Aggregator[V, R]](newAgg func() A) Factory[V, R] {
	return func() Aggregator[V, R] { return newAgg() }
}

// Count counts values.
type Count[V any] struct{ n int64 }

// NewCount returns a Count.
func NewCount[V any]() *Count[V] { return &Count[V]{} }

func (c *Count[V]) Add(V)         { c.n++ }
func (c *Count[V]) Remove(V)      { c.n-- }
func (c *Count[V]) Result() int64 { return c.n }
func (c *Count[V]) Reset()        { c.n = 0 }

// Sum is the exact sum of float64 values (see Moments), rounded once.
type Sum struct{ m Moments }

// NewSum returns a Sum.
func NewSum() *Sum { return &Sum{} }

func (s *Sum) Add(x float64)    { s.m.Add(x) }
func (s *Sum) Remove(x float64) { s.m.Remove(x) }
func (s *Sum) Result() float64  { return s.m.Sum() }
func (s *Sum) Reset()           { s.m.Reset() }

// Mean is the mean of float64 values; NaN when empty.
type Mean struct{ m Moments }

// NewMean returns a Mean.
func NewMean() *Mean { return &Mean{} }

func (a *Mean) Add(x float64)    { a.m.Add(x) }
func (a *Mean) Remove(x float64) { a.m.Remove(x) }
func (a *Mean) Result() float64  { return a.m.Mean() }
func (a *Mean) Reset()           { a.m.Reset() }

// Variance is the variance of float64 values: the sample variance (divisor
// n-1, NaN below two values) or, with population set, the population variance
// (divisor n, NaN when empty).
type Variance struct {
	m          Moments
	population bool
}

// NewVariance returns a sample Variance; NewPopVariance a population one.
func NewVariance() *Variance { return &Variance{} }

// NewPopVariance returns a population Variance.
func NewPopVariance() *Variance { return &Variance{population: true} }

func (a *Variance) Add(x float64)    { a.m.Add(x) }
func (a *Variance) Remove(x float64) { a.m.Remove(x) }
func (a *Variance) Reset()           { a.m.Reset() }
func (a *Variance) Result() float64 {
	if a.population {
		return a.m.PopVariance()
	}
	return a.m.Variance()
}

// Std is the standard deviation of float64 values, sample (n-1, as Spark's
// stddev) or population (n), with the conventions of Variance.
type Std struct{ v Variance }

// NewStd returns a sample Std.
func NewStd() *Std { return &Std{} }

// NewPopStd returns a population Std.
func NewPopStd() *Std { return &Std{v: Variance{population: true}} }

func (a *Std) Add(x float64)    { a.v.Add(x) }
func (a *Std) Remove(x float64) { a.v.Remove(x) }
func (a *Std) Result() float64  { return math.Sqrt(a.v.Result()) }
func (a *Std) Reset()           { a.v.Reset() }

// extreme keeps a monotonic deque of the values that can still become the
// window's extreme: each value enters and leaves once, so O(1) amortized.
type extreme struct {
	q    ring.Deque[float64]
	less func(a, b float64) bool // a is beaten by b
}

func (e *extreme) add(x float64) {
	for e.q.Len() > 0 && e.less(*e.q.Back(), x) {
		e.q.PopBack()
	}
	e.q.PushBack(x)
}

func (e *extreme) remove(x float64) {
	// The oldest value is in the deque iff no later value beat it; then it is
	// the front (equal values are kept, so the copy at the front is the oldest).
	if e.q.Len() > 0 && *e.q.Front() == x {
		e.q.PopFront()
	}
}

func (e *extreme) result() float64 {
	if e.q.Len() == 0 {
		return math.NaN()
	}
	return *e.q.Front()
}

// Min is the minimum of float64 values; NaN when empty. Values must not be NaN.
type Min struct{ e extreme }

// NewMin returns a Min.
func NewMin() *Min { return &Min{e: extreme{less: func(a, b float64) bool { return a > b }}} }

func (a *Min) Add(x float64)    { a.e.add(x) }
func (a *Min) Remove(x float64) { a.e.remove(x) }
func (a *Min) Result() float64  { return a.e.result() }
func (a *Min) Reset()           { a.e.q.Clear() }

// Max is the maximum of float64 values; NaN when empty. Values must not be NaN.
type Max struct{ e extreme }

// NewMax returns a Max.
func NewMax() *Max { return &Max{e: extreme{less: func(a, b float64) bool { return a < b }}} }

func (a *Max) Add(x float64)    { a.e.add(x) }
func (a *Max) Remove(x float64) { a.e.remove(x) }
func (a *Max) Result() float64  { return a.e.result() }
func (a *Max) Reset()           { a.e.q.Clear() }

// First is the oldest value held; the zero V when empty.
type First[V any] struct{ q ring.Deque[V] }

// NewFirst returns a First.
func NewFirst[V any]() *First[V] { return &First[V]{} }

func (a *First[V]) Add(v V)  { a.q.PushBack(v) }
func (a *First[V]) Remove(V) { a.q.PopFront() }
func (a *First[V]) Reset()   { a.q.Clear() }
func (a *First[V]) Result() V {
	var zero V
	if a.q.Len() == 0 {
		return zero
	}
	return *a.q.Front()
}

// Last is the newest value held; the zero V when empty.
type Last[V any] struct{ First[V] }

// NewLast returns a Last.
func NewLast[V any]() *Last[V] { return &Last[V]{} }

func (a *Last[V]) Result() V {
	var zero V
	if a.q.Len() == 0 {
		return zero
	}
	return *a.q.Back()
}
