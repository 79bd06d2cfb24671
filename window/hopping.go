package window

import (
	"fmt"
	"time"

	"github.com/tidemark-go/tidemark/internal/keyed"
	"github.com/tidemark-go/tidemark/internal/millis"
	"github.com/tidemark-go/tidemark/internal/ring"
	"github.com/tidemark-go/tidemark/stream"
)

// Result is the output of a Tumbling or Hopping window: the aggregate of the
// events of one key with time in [Start, End). The event that carries it has
// Time = End - 1, the last instant the window covers (as in Flink).
type Result[R any] struct {
	Start, End stream.Time
	Count      int64
	Value      R
}

// Hopping computes an aggregate over epoch-aligned windows [start, start+size)
// whose starts are the multiples of hop (the slide). Tumbling windows are
// hopping windows whose hop equals their size. A window's result is emitted once
// the watermark passes its end (watermark >= end); windows without events emit
// nothing. Windows closed by the same watermark are emitted in (End, Key) order.
//
// An event is added to each of the ceil(size/hop) windows that hold it: O(1)
// per event per window. Each key with open windows has a timer at the end of
// its oldest one (less 1 ms: the result's time) in one heap on (time, key), so
// Advance costs O(1) when no window ends and otherwise O(log K) per window it
// emits (K keys with open windows), taken from the heap in (End, Key) order:
// no key without a window ending is visited, and nothing is sorted.
// Each open window has its own Accumulator, which only ever adds (no
// Remove): accumulators are Reset and recycled when their window is
// emitted, so there is no heap allocation per event in steady state.
type Hopping[V, R any] struct {
	size, hop stream.Time
	newAcc    func() Accumulator[V, R]
	// Per key its open windows, and a timer at the oldest one's End - 1; a
	// key in a gap between windows (hop > size) has none open and a timer at
	// the end of the window after the gap, when it is dropped if still empty.
	keys keyed.Table[hopKey[V, R]]
	free []Accumulator[V, R]
}

type hopKey[V, R any] struct {
	open ring.Deque[openWindow[V, R]] // sorted by start
}

type openWindow[V, R any] struct {
	start stream.Time
	count int64
	agg   Accumulator[V, R]
}

// NewTumbling returns Hopping windows whose hop is their size, a positive
// whole number of milliseconds. newAcc makes the accumulator of each window,
// as NewHopping's.
func NewTumbling[V, R any, A Accumulator[V, R]](size time.Duration, newAcc func() A) (*Hopping[V, R], error) {
	return NewHopping(size, size, newAcc)
}

// NewHopping returns hopping windows of the given size and hop (both positive
// whole numbers of milliseconds; a hop larger than the size leaves gaps).
// newAcc returns a new, empty accumulator each time it is called: the
// constructor of any Accumulator (an add-only aggregate such as an OHLC bar,
// or any Aggregator: window.NewMean), or a Factory. The windows call it when
// they open a window and have no accumulator to recycle, and own what it
// returns. A nil newAcc is an error wrapping ErrInvalidWindow.
func NewHopping[V, R any, A Accumulator[V, R]](size, hop time.Duration, newAcc func() A) (*Hopping[V, R], error) {
	sizeMs, err := millis.Positive(size)
	if err != nil {
		return nil, fmt.Errorf("%w: size %w", ErrInvalidWindow, err)
	}
	hopMs, err := millis.Positive(hop)
	if err != nil {
		return nil, fmt.Errorf("%w: hop %w", ErrInvalidWindow, err)
	}
	if newAcc == nil {
		return nil, fmt.Errorf("%w: nil accumulator factory", ErrInvalidWindow)
	}
	return &Hopping[V, R]{size: sizeMs, hop: hopMs, newAcc: func() Accumulator[V, R] { return newAcc() },
		keys: keyed.New[hopKey[V, R]]()}, nil
}

func floorTo(t, step stream.Time) stream.Time {
	r := t % step
	if r < 0 {
		r += step
	}
	return t - r
}

// Process adds e to the windows that hold it, first closing (and emitting)
// that key's windows that end at or before e.
func (h *Hopping[V, R]) Process(e stream.Event[V], out stream.Emitter[Result[R]]) {
	ke := h.keys.Get(e.Key)
	k := &ke.State
	for k.open.Len() > 0 && k.open.Front().start+h.size <= e.Time {
		h.emit(e.Key, k.open.PopFront(), out)
	}
	last := floorTo(e.Time, h.hop)
	if last+h.size <= e.Time { // a gap between windows (hop > size)
		if k.open.Len() == 0 {
			h.keys.Schedule(ke, last+h.hop+h.size-1)
		} else {
			h.keys.Schedule(ke, k.open.Front().start+h.size-1)
		}
		return
	}
	first := last
	for first-h.hop+h.size > e.Time {
		first -= h.hop
	}
	if k.open.Len() > 0 {
		first = max(first, k.open.Back().start+h.hop)
	}
	for s := first; s <= last; s += h.hop {
		k.open.PushBack(openWindow[V, R]{start: s, agg: h.agg()})
	}
	for i := 0; i < k.open.Len(); i++ {
		w := k.open.At(i)
		w.agg.Add(e.Value)
		w.count++
	}
	h.keys.Schedule(ke, k.open.Front().start+h.size-1)
}

func (h *Hopping[V, R]) agg() Accumulator[V, R] {
	if n := len(h.free); n > 0 {
		a := h.free[n-1]
		h.free = h.free[:n-1]
		return a
	}
	return h.newAcc()
}

func (h *Hopping[V, R]) emit(key string, w openWindow[V, R], out stream.Emitter[Result[R]]) {
	end := w.start + h.size
	out.Emit(stream.Event[Result[R]]{Key: key, Time: end - 1,
		Value: Result[R]{Start: w.start, End: end, Count: w.count, Value: w.agg.Result()}})
	w.agg.Reset()
	h.free = append(h.free, w.agg)
}

// Bounds implements stream.Operator: the result at End - 1 covers the events
// of [Start, End), which reach back size - 1 ms.
func (h *Hopping[V, R]) Bounds() stream.Bounds {
	return stream.Bounds{Back: time.Duration(h.size-1) * time.Millisecond}
}

// Advance emits every window that ends at or before wm, in (End, Key) order.
func (h *Hopping[V, R]) Advance(wm stream.Time, out stream.Emitter[Result[R]]) {
	if h.keys.AnyDue(wm) { // rarely: the check is small enough to inline
		h.advance(wm, out)
	}
}

// advance is Advance once a timer is due: it takes the keys from the heap in
// (End - 1, Key) order, one window at a time, so a key with several windows
// ending comes back at each of their ends.
func (h *Hopping[V, R]) advance(wm stream.Time, out stream.Emitter[Result[R]]) {
	for ke := h.keys.PopDue(wm); ke != nil; ke = h.keys.PopDue(wm) {
		k := &ke.State
		if k.open.Len() > 0 { // else a key idle since a gap: dropped below
			h.emit(ke.Key(), k.open.PopFront(), out)
		}
		if k.open.Len() == 0 {
			h.keys.Delete(ke)
		} else {
			h.keys.Schedule(ke, k.open.Front().start+h.size-1)
		}
	}
}
