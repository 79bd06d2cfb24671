package window

import (
	"fmt"
	"slices"
	"time"

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
// per event per window. Aggregators are recycled, so there is no heap
// allocation per event in steady state.
type Hopping[V, R any] struct {
	size, hop stream.Time
	newAgg    func() Aggregator[V, R]
	keys      map[string]*hopKey[V, R]
	free      []Aggregator[V, R]
	nextEnd   stream.Time // smallest End of any open window
	closing   []closed[R]
}

type hopKey[V, R any] struct {
	open ring.Deque[openWindow[V, R]] // sorted by start
}

type openWindow[V, R any] struct {
	start stream.Time
	count int64
	agg   Aggregator[V, R]
}

type closed[R any] struct {
	key string
	res Result[R]
}

// NewTumbling returns Hopping windows whose hop is their size.
func NewTumbling[V, R any](size time.Duration, newAgg func() Aggregator[V, R]) (*Hopping[V, R], error) {
	return NewHopping(size, size, newAgg)
}

// NewHopping returns hopping windows of the given size and hop (both positive
// whole numbers of milliseconds; a hop larger than the size leaves gaps).
func NewHopping[V, R any](size, hop time.Duration, newAgg func() Aggregator[V, R]) (*Hopping[V, R], error) {
	for _, d := range []time.Duration{size, hop} {
		if d < time.Millisecond || d%time.Millisecond != 0 {
			return nil, fmt.Errorf("%w: %v is not a positive whole number of milliseconds", ErrBadWindow, d)
		}
	}
	if newAgg == nil {
		return nil, fmt.Errorf("%w: nil aggregator factory", ErrBadWindow)
	}
	return &Hopping[V, R]{size: stream.DurationOf(size), hop: stream.DurationOf(hop), newAgg: newAgg,
		keys: make(map[string]*hopKey[V, R]), nextEnd: stream.MaxTime}, nil
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
	k, ok := h.keys[e.Key]
	if !ok {
		k = &hopKey[V, R]{}
		h.keys[e.Key] = k
	}
	for k.open.Len() > 0 && k.open.Front().start+h.size <= e.Time {
		h.emit(e.Key, k.open.PopFront(), out)
	}
	last := floorTo(e.Time, h.hop)
	if last+h.size <= e.Time {
		return // a gap between windows (hop > size)
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
		h.nextEnd = min(h.nextEnd, s+h.size)
	}
	for i := 0; i < k.open.Len(); i++ {
		w := k.open.At(i)
		w.agg.Add(e.Value)
		w.count++
	}
}

func (h *Hopping[V, R]) agg() Aggregator[V, R] {
	if n := len(h.free); n > 0 {
		a := h.free[n-1]
		h.free = h.free[:n-1]
		return a
	}
	return h.newAgg()
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
	if wm < h.nextEnd {
		return
	}
	h.nextEnd = stream.MaxTime
	h.closing = h.closing[:0]
	for key, k := range h.keys {
		for k.open.Len() > 0 && k.open.Front().start+h.size <= wm {
			w := k.open.PopFront()
			end := w.start + h.size
			h.closing = append(h.closing, closed[R]{key: key,
				res: Result[R]{Start: w.start, End: end, Count: w.count, Value: w.agg.Result()}})
			w.agg.Reset()
			h.free = append(h.free, w.agg)
		}
		if k.open.Len() == 0 {
			delete(h.keys, key)
		} else {
			h.nextEnd = min(h.nextEnd, k.open.Front().start+h.size)
		}
	}
	slices.SortFunc(h.closing, func(a, b closed[R]) int {
		if a.res.End != b.res.End {
			return int(min(max(a.res.End-b.res.End, -1), 1))
		}
		if a.key < b.key {
			return -1
		}
		if a.key > b.key {
			return 1
		}
		return 0
	})
	for _, c := range h.closing {
		out.Emit(stream.Event[Result[R]]{Key: c.key, Time: c.res.End - 1, Value: c.res})
	}
	clear(h.closing)
}
