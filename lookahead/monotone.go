package lookahead

import (
	"cmp"
	"time"

	"github.com/tidemark-go/tidemark/internal/ring"
	"github.com/tidemark-go/tidemark/stream"
)

// Monotone is the lookahead for the first strictly higher (NewHigher) or
// strictly lower (NewLower) value: a stream.Operator from V to Match[V].
//
// Per key it keeps the events not yet emitted, in time order, and a stack of
// the unanswered ones whose values are monotone (non-increasing from the
// bottom for higher): a new event answers the stack's top while it beats it,
// and events whose horizon has passed leave from the bottom. Every event is
// pushed and popped once, so the cost is amortized O(1) per event, whatever
// the horizon. It is not safe for concurrent use.
type Monotone[V cmp.Ordered] struct {
	horizon stream.Time
	higher  bool
	keys    keyTable[monoKey[V]]
}

type monoKey[V cmp.Ordered] struct {
	pend  ring.Deque[answer[V]] // not yet emitted, in time order
	first int64                 // sequence number of pend's front
	stack ring.Deque[candidate[V]]
}

type answer[V any] struct {
	t     stream.Time
	done  bool
	match Match[V]
}

type candidate[V any] struct {
	v   V
	t   stream.Time
	seq int64 // its answer in pend
}

var _ stream.Operator[float64, Match[float64]] = (*Monotone[float64])(nil)

// NewHigher returns the lookahead for the first strictly higher value.
func NewHigher[V cmp.Ordered](horizon time.Duration) (*Monotone[V], error) {
	return newMonotone[V](horizon, true)
}

// NewLower returns the lookahead for the first strictly lower value.
func NewLower[V cmp.Ordered](horizon time.Duration) (*Monotone[V], error) {
	return newMonotone[V](horizon, false)
}

func newMonotone[V cmp.Ordered](horizon time.Duration, higher bool) (*Monotone[V], error) {
	if _, err := newLookahead[V](horizon); err != nil {
		return nil, err
	}
	return &Monotone[V]{horizon: stream.DurationOf(horizon), higher: higher, keys: newKeyTable[monoKey[V]]()}, nil
}

// Horizon returns the horizon in milliseconds.
func (l *Monotone[V]) Horizon() stream.Time { return l.horizon }

// Process answers the waiting events that e beats, emits every answer that is
// now final, and makes e wait for its own answer.
func (l *Monotone[V]) Process(e stream.Event[V], out stream.Emitter[Match[V]]) {
	s := l.keys.Get(e.Key)
	l.expire(s, e.Time)
	m := Match[V]{Found: true, Time: e.Time, Value: e.Value}
	for s.stack.Len() > 0 {
		top := s.stack.Back()
		if l.higher && !(top.v < e.Value) || !l.higher && !(top.v > e.Value) {
			break
		}
		a := s.pend.At(int(top.seq - s.first))
		a.done, a.match = true, m
		s.stack.PopBack()
	}
	if s.pend.Len() == 0 {
		l.keys.waiting(e.Time.Add(l.horizon))
	}
	seq := s.first + int64(s.pend.Len())
	s.pend.PushBack(answer[V]{t: e.Time})
	s.stack.PushBack(candidate[V]{v: e.Value, t: e.Time, seq: seq})
	l.flush(e.Key, s, out)
}

// expire answers "none" for the unanswered events whose horizon ends before t
// (all of them at t = MaxTime): they are at the bottom of the stack.
func (l *Monotone[V]) expire(s *monoKey[V], t stream.Time) {
	for s.stack.Len() > 0 {
		b := s.stack.Front()
		if t != stream.MaxTime && b.t.Add(l.horizon) >= t {
			return
		}
		s.pend.At(int(b.seq - s.first)).done = true
		s.stack.PopFront()
	}
}

func (l *Monotone[V]) flush(key string, s *monoKey[V], out stream.Emitter[Match[V]]) {
	for s.pend.Len() > 0 && s.pend.Front().done {
		a := s.pend.PopFront()
		s.first++
		out.Emit(stream.Event[Match[V]]{Key: key, Time: a.t, Value: a.match})
	}
}

// Advance answers "none" for events whose horizon the watermark has passed
// (t + horizon < wm) and emits what is final, key by key in key order.
func (l *Monotone[V]) Advance(wm stream.Time, out stream.Emitter[Match[V]]) {
	l.keys.advance(wm, l.oldest, func(k string, s *monoKey[V]) {
		l.expire(s, wm)
		l.flush(k, s, out)
	})
}

func (l *Monotone[V]) oldest(s *monoKey[V]) (stream.Time, bool) {
	if s.pend.Len() == 0 {
		return 0, false
	}
	return s.pend.Front().t.Add(l.horizon), true
}
