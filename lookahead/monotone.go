package lookahead

import (
	"cmp"
	"time"

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
	dir     direction
	keys    keyTable[monoState[V]]
}

var _ stream.Operator[float64, Match[float64]] = (*Monotone[float64])(nil)

// NewHigher returns the lookahead for the first strictly higher value.
func NewHigher[V cmp.Ordered](horizon time.Duration) (*Monotone[V], error) {
	return newMonotone[V](horizon, higher)
}

// NewLower returns the lookahead for the first strictly lower value.
func NewLower[V cmp.Ordered](horizon time.Duration) (*Monotone[V], error) {
	return newMonotone[V](horizon, lower)
}

func newMonotone[V cmp.Ordered](horizon time.Duration, d direction) (*Monotone[V], error) {
	h, err := checkHorizon(horizon)
	if err != nil {
		return nil, err
	}
	return &Monotone[V]{horizon: h, dir: d, keys: newKeyTable[monoState[V]]()}, nil
}

// Horizon returns the horizon in milliseconds.
func (l *Monotone[V]) Horizon() stream.Time { return l.horizon }

// Process answers the waiting events that e beats, emits every answer that is
// now final, and makes e wait for its own answer.
func (l *Monotone[V]) Process(e stream.Event[V], out stream.Emitter[Match[V]]) {
	k := l.keys.get(e.Key)
	s := &k.state
	oldest := s.first
	if k.due(e.Time) { // some events' horizon has passed
		l.flush(k, e.Time, out) // they leave the stack before e looks at it
	}
	s.makeRoom()
	var ans [2]int64
	ans[l.dir], ans[1-l.dir] = unanswered, noMatch // the other direction is not asked
	s.answer(l.dir, e.Value, s.next)
	s.add(e.Time, e.Value, ans)
	if s.answered() {
		l.flush(k, e.Time, out)
	}
	if s.first != oldest || s.len() == 1 { // the oldest pending event changed
		l.keys.schedule(k, s.oldestEnd(l.horizon))
	}
}

// flush emits, in time order, the answers at the front that are final at
// watermark bound.
func (l *Monotone[V]) flush(k *keyEntry[monoState[V]], bound stream.Time, out stream.Emitter[Match[V]]) {
	s := &k.state
	for s.len() > 0 && s.final(bound, l.horizon) {
		p := s.pop()
		out.Emit(stream.Event[Match[V]]{Key: k.key, Time: p.t, Value: s.match(p.ans[l.dir])})
	}
}

// Advance answers "none" for events whose horizon the watermark has passed
// (t + horizon < wm) and emits what is final, key by key in key order.
func (l *Monotone[V]) Advance(wm stream.Time, out stream.Emitter[Match[V]]) {
	if !l.keys.anyDue(wm) {
		return
	}
	for _, k := range l.keys.takeDue(wm) {
		l.flush(k, wm, out)
		l.keys.settled(k, k.state.oldestEnd(l.horizon), k.state.len() > 0)
	}
}

// direction is what a monotonic stack looks for: a higher or a lower value.
type direction int

const (
	higher direction = 0
	lower  direction = 1
)

// The answer of a pending event in one direction is the number of the event
// that answers it, or one of these. unanswered is the smallest.
const (
	unanswered = -2 // not answered yet: final only once its horizon has passed
	noMatch    = -1 // final without a match (the direction is not asked)
)

// monoState is one key's state for Monotone and HigherLower.
//
// The key's events not emitted yet ("pending") are numbered in arrival (time)
// order and kept in a ring, event number n at evs[n&(len(evs)-1)]; each
// carries its answer in both directions.
//
// For each direction, a stack holds the pending events still waiting for an
// answer in that direction, in time order from the bottom and so with
// monotone values (non-increasing from the bottom when looking for a higher
// value, non-decreasing for lower): a new event answers the top while it beats
// it, then is pushed. The stack is a list linked through the ring, from top[d]
// down each event's below[d]: it ends at the first number below first, so an
// event leaves it by being emitted too, which is how the events whose horizon
// has passed leave from the bottom. Every event is pushed on both stacks; a
// direction that is not asked is never popped, and never read.
//
// The zero value is an empty state ready to use (grow sets it up).
type monoState[V cmp.Ordered] struct {
	evs         []pending[V] // the ring; its length is a power of two (or 0)
	first, next int64        // numbers of the oldest pending event and of the next event
	top         [2]int64     // by direction: the number of the top event (below first: empty)
}

// pending is one event not yet emitted, with its answers and stack links.
type pending[V any] struct {
	t     stream.Time
	v     V
	ans   [2]int64 // by direction: the answering event's number, unanswered or noMatch
	below [2]int64 // by direction: the number of the next event down its stack (below first: none)
}

// len returns the number of pending events.
func (s *monoState[V]) len() int { return int(s.next - s.first) }

// answer makes the event v, number n, the answer in direction d of every
// waiting event it beats. The waiting events must all be within their horizon
// at v's time.
func (s *monoState[V]) answer(d direction, v V, n int64) {
	// Locals, so that the stores into evs need not reload them.
	evs, first, top, mask := s.evs, s.first, s.top[d], int64(len(s.evs)-1)
	// The stack is monotone: once v does not beat the top, it beats nothing
	// below either.
	for top >= first {
		p := &evs[top&mask]
		if d == higher && !(p.v < v) || d == lower && !(p.v > v) {
			break
		}
		p.ans[d] = n
		top = p.below[d]
	}
	s.top[d] = top
}

// makeRoom grows the ring if it is full, before add.
func (s *monoState[V]) makeRoom() {
	if s.len() == len(s.evs) {
		s.grow()
	}
}

// add adds the event (t, v), number next, with its answers, and pushes it on
// both stacks. There must be room for it (see makeRoom).
func (s *monoState[V]) add(t stream.Time, v V, ans [2]int64) {
	n := s.next
	// Field by field: a composite literal goes through the stack, where
	// loading the array fields back 16 bytes at a time stalls.
	p := &s.evs[n&int64(len(s.evs)-1)]
	p.t, p.v = t, v
	p.ans[0], p.ans[1] = ans[0], ans[1]
	p.below[0], p.below[1] = s.top[0], s.top[1]
	s.top[0], s.top[1] = n, n
	s.next++
}

// answered reports whether the oldest pending event is answered in both
// directions.
func (s *monoState[V]) answered() bool {
	if s.first == s.next {
		return false
	}
	p := &s.evs[s.first&int64(len(s.evs)-1)]
	return min(p.ans[0], p.ans[1]) != unanswered
}

// final reports whether the oldest pending event's answers are final at
// watermark bound: answered in both directions, or past its horizon
// (t + horizon < bound, or bound is MaxTime). There must be a pending event.
func (s *monoState[V]) final(bound, horizon stream.Time) bool {
	p := &s.evs[s.first&int64(len(s.evs)-1)]
	return min(p.ans[0], p.ans[1]) != unanswered || p.t.Add(horizon) < bound || bound == stream.MaxTime
}

// pop removes and returns the oldest pending event, which also leaves the
// stacks it is on. It and the events its answers name stay readable until
// the next add.
func (s *monoState[V]) pop() *pending[V] {
	p := &s.evs[s.first&int64(len(s.evs)-1)]
	s.first++
	return p
}

// match returns the answer that ans names.
func (s *monoState[V]) match(ans int64) Match[V] {
	if ans < 0 {
		return Match[V]{}
	}
	f := &s.evs[ans&int64(len(s.evs)-1)]
	return Match[V]{Found: true, Time: f.t, Value: f.v}
}

// oldestEnd returns the end of the horizon of the oldest pending event, or 0
// when there is none.
func (s *monoState[V]) oldestEnd(horizon stream.Time) stream.Time {
	if s.first == s.next {
		return 0
	}
	return s.evs[s.first&int64(len(s.evs)-1)].t.Add(horizon)
}

// grow doubles the capacity of the ring, keeping every event at the position
// its number gives; the first call also empties the stacks.
//
//go:noinline
func (s *monoState[V]) grow() {
	if len(s.evs) == 0 {
		s.top = [2]int64{s.first - 1, s.first - 1}
	}
	size := max(2*len(s.evs), 8)
	evs := make([]pending[V], size)
	for n := s.first; n < s.next; n++ {
		evs[n&int64(size-1)] = s.evs[n&int64(len(s.evs)-1)]
	}
	s.evs = evs
}
