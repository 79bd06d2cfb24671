package lookahead

import (
	"fmt"
	"time"

	"github.com/tidemark-go/tidemark/internal/keyed"
	"github.com/tidemark-go/tidemark/internal/millis"
	"github.com/tidemark-go/tidemark/internal/ring"
	"github.com/tidemark-go/tidemark/stream"
)

// Match is the answer for one event.
type Match[V any] struct {
	Found bool        // a matching event was found within the horizon
	Time  stream.Time // its time, when Found
	Value V           // its value, when Found
}

// Delay returns the time from t to the match, or the horizon when there is none.
func (m Match[V]) Delay(t, horizon stream.Time) stream.Time {
	if m.Found {
		return m.Time - t
	}
	return horizon
}

var (
	// ErrInvalidHorizon is wrapped by the errors the constructors return for a
	// horizon that is not a positive whole number of milliseconds. Test for
	// it with errors.Is.
	ErrInvalidHorizon error = invalidArgument("lookahead: invalid horizon")
	// ErrInvalidPredicate is wrapped by the error New returns for a nil
	// predicate.
	ErrInvalidPredicate error = invalidArgument("lookahead: invalid predicate")
)

// invalidArgument is the type of ErrInvalidHorizon and ErrInvalidPredicate:
// their own message, and stream.ErrInvalidOption beneath it, so that
// errors.Is recognises an invalid argument of any Tidemark package by
// stream's sentinel.
type invalidArgument string

func (e invalidArgument) Error() string { return string(e) }
func (invalidArgument) Unwrap() error   { return stream.ErrInvalidOption }

type waiting[V any] struct {
	t     stream.Time
	v     V
	done  bool
	match Match[V]
}

type keyState[V any] struct {
	pend ring.Deque[waiting[V]] // not yet emitted, in time order
}

// Lookahead is the general lookahead operator, for any predicate: a
// stream.Operator from V to Match[V] that scans the waiting events for each
// new event. NewHigher, NewLower and NewHigherLower return faster operators
// for their predicates. It is not safe for concurrent use.
type Lookahead[V any] struct {
	horizon stream.Time
	pred    func(e, f V) bool // does the later f answer e?
	keys    keyed.Table[keyState[V]]
}

// checkHorizon returns horizon in milliseconds, or an error wrapping
// ErrInvalidHorizon if it is not a positive whole number of milliseconds.
func checkHorizon(horizon time.Duration) (stream.Time, error) {
	h, err := millis.Positive(horizon)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidHorizon, err)
	}
	return h, nil
}

// New returns a lookahead with predicate pred(e, f): does the later event f
// answer e? It scans the waiting events for each new event.
func New[V any](horizon time.Duration, pred func(e, f V) bool) (*Lookahead[V], error) {
	h, err := checkHorizon(horizon)
	if err != nil {
		return nil, err
	}
	if pred == nil {
		return nil, fmt.Errorf("%w: nil", ErrInvalidPredicate)
	}
	return &Lookahead[V]{horizon: h, pred: pred, keys: keyed.New[keyState[V]]()}, nil
}

// Horizon returns the horizon in milliseconds.
func (l *Lookahead[V]) Horizon() stream.Time { return l.horizon }

// Bounds implements stream.Operator: an answer looks ahead by the horizon.
func (l *Lookahead[V]) Bounds() stream.Bounds {
	return stream.Bounds{Ahead: time.Duration(l.horizon) * time.Millisecond}
}

// Process answers the waiting events that e answers, emits every answer that is
// now final, and makes e wait for its own answer.
func (l *Lookahead[V]) Process(e stream.Event[V], out stream.Emitter[Match[V]]) {
	k := l.keys.Get(e.Key)
	s := &k.State
	l.expire(s, e.Time)
	for i := 0; i < s.pend.Len(); i++ {
		if w := s.pend.At(i); !w.done && l.pred(w.v, e.Value) {
			w.done, w.match = true, Match[V]{Found: true, Time: e.Time, Value: e.Value}
		}
	}
	s.pend.PushBack(waiting[V]{t: e.Time, v: e.Value})
	l.flush(e.Key, s, out)
	l.keys.Schedule(k, s.pend.Front().t.Add(l.horizon))
}

// expire answers "none" for the waiting events whose horizon ends before t.
func (l *Lookahead[V]) expire(s *keyState[V], t stream.Time) {
	for i := 0; i < s.pend.Len(); i++ {
		w := s.pend.At(i)
		if t != stream.MaxTime && w.t.Add(l.horizon) >= t {
			break
		}
		w.done = true
	}
}

// flush emits the answered events at the front, in time order.
func (l *Lookahead[V]) flush(key string, s *keyState[V], out stream.Emitter[Match[V]]) {
	for s.pend.Len() > 0 && s.pend.Front().done {
		w := s.pend.PopFront()
		out.Emit(stream.Event[Match[V]]{Key: key, Time: w.t, Value: w.match})
	}
}

// Advance answers "none" for events whose horizon the watermark has passed
// (t + horizon < wm) and emits what is final, key by key in key order.
func (l *Lookahead[V]) Advance(wm stream.Time, out stream.Emitter[Match[V]]) {
	if !l.keys.AnyDue(wm) {
		return
	}
	for _, k := range l.keys.TakeDue(wm) {
		s := &k.State
		l.expire(s, wm)
		l.flush(k.Key(), s, out)
		if s.pend.Len() == 0 {
			l.keys.Delete(k)
		} else {
			l.keys.Schedule(k, s.pend.Front().t.Add(l.horizon))
		}
	}
}
