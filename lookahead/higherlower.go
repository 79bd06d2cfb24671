package lookahead

import (
	"cmp"
	"time"

	"github.com/tidemark-go/tidemark/internal/keyed"
	"github.com/tidemark-go/tidemark/stream"
)

// Both is the pair of answers HigherLower gives for one event.
type Both[V any] struct {
	Higher Match[V] // the first strictly higher value, as NewHigher answers
	Lower  Match[V] // the first strictly lower value, as NewLower answers
}

// HigherLower is the higher and the lower lookahead fused into one operator: a
// stream.Operator from V to Both[V]. For each event it emits one Both whose
// Higher is what NewHigher would answer and whose Lower what NewLower would,
// once both are final: when the watermark is above the later of the two
// matches' times, with t + horizon standing for a missing match. Answers of
// one key come out in time order, and Advance goes key by key in key order.
//
// It costs less than the two operators side by side: one key lookup, one
// queue of pending events and one Emit per event, with one monotonic stack per
// direction (see Monotone): amortized O(1) per event, whatever the horizon. It
// is not safe for concurrent use.
type HigherLower[V cmp.Ordered] struct {
	horizon stream.Time
	keys    keyed.Table[monoState[V]]
}

var _ stream.Operator[float64, Both[float64]] = (*HigherLower[float64])(nil)

// NewHigherLower returns the fused lookahead for the first strictly higher and
// the first strictly lower value.
func NewHigherLower[V cmp.Ordered](horizon time.Duration) (*HigherLower[V], error) {
	h, err := checkHorizon(horizon)
	if err != nil {
		return nil, err
	}
	return &HigherLower[V]{horizon: h, keys: keyed.New[monoState[V]]()}, nil
}

// Horizon returns the horizon in milliseconds.
func (l *HigherLower[V]) Horizon() stream.Time { return l.horizon }

// Bounds implements stream.Operator: an answer looks ahead by the horizon.
func (l *HigherLower[V]) Bounds() stream.Bounds {
	return stream.Bounds{Ahead: time.Duration(l.horizon) * time.Millisecond}
}

// Process answers the waiting events that e beats in either direction, emits
// every pair of answers that is now final, and makes e wait for its own.
func (l *HigherLower[V]) Process(e stream.Event[V], out stream.Emitter[Both[V]]) {
	k := l.keys.Get(e.Key)
	s := &k.State
	if k.Due(e.Time) { // some events' horizon has passed
		l.flush(k, e.Time, out) // they leave the stacks before e looks at them
	}
	s.makeRoom()
	last := s.lastLink()
	bh := s.answer(higher, e.Value, last)
	bl := s.answer(lower, e.Value, last)
	s.add(e.Time, e.Value, unanswered, unanswered, bh, bl)
	if s.len() == 1 { // e is the oldest pending event
		l.keys.Schedule(k, e.Time.Add(l.horizon))
	} else if min(bh.n, bl.n) < s.first && s.answered() {
		// The oldest event waits at the bottom of a stack: e can have
		// given it its last answer only by emptying that stack.
		l.flush(k, e.Time, out)
	}
}

// flush emits, in time order, the answers at the front that are final at
// watermark bound, and schedules the key for the oldest event left.
func (l *HigherLower[V]) flush(k *keyed.Entry[monoState[V]], bound stream.Time, out stream.Emitter[Both[V]]) {
	s := &k.State
	r := s.ring() // the ring does not grow while flushing
	// One event, its fields set over: a composite literal per answer would
	// be zeroed on the stack first.
	ev := stream.Event[Both[V]]{Key: k.Key()}
	for s.first < s.next {
		p := r.at(s.first)
		if !p.final(bound, l.horizon) {
			break
		}
		s.first++
		ev.Time = p.t
		ev.Value.Higher = r.match(p.ans[higher])
		ev.Value.Lower = r.match(p.ans[lower])
		out.Emit(ev)
	}
	if s.len() > 0 {
		l.keys.Schedule(k, s.oldestEnd(l.horizon))
	}
}

// Advance answers "none" for events whose horizon the watermark has passed
// (t + horizon < wm) and emits what is final, key by key in key order.
func (l *HigherLower[V]) Advance(wm stream.Time, out stream.Emitter[Both[V]]) {
	if l.keys.AnyDue(wm) { // rarely: the check is small enough to inline
		l.advance(wm, out)
	}
}

// advance is Advance once an answer is due.
func (l *HigherLower[V]) advance(wm stream.Time, out stream.Emitter[Both[V]]) {
	for _, k := range l.keys.TakeDue(wm) {
		l.flush(k, wm, out) // which schedules k again if events are left
		if k.State.len() == 0 {
			l.keys.Delete(k)
		}
	}
}
