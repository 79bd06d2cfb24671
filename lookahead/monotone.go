package lookahead

import (
	"cmp"
	"time"

	"github.com/tidemark-go/tidemark/internal/keyed"
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
	keys    keyed.Table[monoState[V]]
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
	return &Monotone[V]{horizon: h, dir: d, keys: keyed.New[monoState[V]]()}, nil
}

// Horizon returns the horizon in milliseconds.
func (l *Monotone[V]) Horizon() stream.Time { return l.horizon }

// Bounds implements stream.Operator: an answer looks ahead by the horizon.
func (l *Monotone[V]) Bounds() stream.Bounds {
	return stream.Bounds{Ahead: time.Duration(l.horizon) * time.Millisecond}
}

// Process answers the waiting events that e beats, emits every answer that is
// now final, and makes e wait for its own answer.
func (l *Monotone[V]) Process(e stream.Event[V], out stream.Emitter[Match[V]]) {
	k := l.keys.Get(e.Key)
	s := &k.State
	if k.Due(e.Time) { // some events' horizon has passed
		l.flush(k, e.Time, out) // they leave the stack before e looks at it
	}
	s.makeRoom()
	last := s.lastLink()
	top := s.answer(l.dir, e.Value, last)
	// The other direction is not asked: no match, and the stack is not popped.
	if l.dir == higher {
		s.add(e.Time, e.Value, unanswered, noMatch, top, last)
	} else {
		s.add(e.Time, e.Value, noMatch, unanswered, last, top)
	}
	if s.len() == 1 { // e is the oldest pending event
		l.keys.Schedule(k, e.Time.Add(l.horizon))
	} else if top.n < s.first && s.answered() {
		// The oldest event waits at the bottom of the stack: e can have
		// answered it only by emptying the stack.
		l.flush(k, e.Time, out)
	}
}

// flush emits, in time order, the answers at the front that are final at
// watermark bound, and schedules the key for the oldest event left.
func (l *Monotone[V]) flush(k *keyed.Entry[monoState[V]], bound stream.Time, out stream.Emitter[Match[V]]) {
	s := &k.State
	r := s.ring() // the ring does not grow while flushing
	for s.first < s.next {
		p := r.at(s.first)
		if !p.final(bound, l.horizon) {
			break
		}
		s.first++
		out.Emit(stream.Event[Match[V]]{Key: k.Key(), Time: p.t, Value: r.match(p.ans[l.dir])})
	}
	if s.len() > 0 {
		l.keys.Schedule(k, s.oldestEnd(l.horizon))
	}
}

// Advance answers "none" for events whose horizon the watermark has passed
// (t + horizon < wm) and emits what is final, key by key in key order.
func (l *Monotone[V]) Advance(wm stream.Time, out stream.Emitter[Match[V]]) {
	if l.keys.AnyDue(wm) { // rarely: the check is small enough to inline
		l.advance(wm, out)
	}
}

// advance is Advance once an answer is due.
func (l *Monotone[V]) advance(wm stream.Time, out stream.Emitter[Match[V]]) {
	for _, k := range l.keys.TakeDue(wm) {
		l.flush(k, wm, out) // which schedules k again if events are left
		if k.State.len() == 0 {
			l.keys.Delete(k)
		}
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
// it, then is pushed. Every event is pushed on both stacks, so both have the
// last event, number next-1, on top (below first: both are empty). The stack
// is a list linked through the ring, from the top down each event's below[d]:
// it ends at the first number below first, so an event leaves it by being
// emitted too, which is how the events whose horizon has passed leave from
// the bottom. A direction that is not asked is never popped, and never read.
// A link carries the value of the event it leads to, so that deciding whether
// to pop one more event waits for one load, not two.
//
// The zero value is an empty state ready to use.
type monoState[V cmp.Ordered] struct {
	evs         []pending[V] // the ring; its length is a power of two (or 0)
	first, next int64        // numbers of the oldest pending event and of the next event
	last        V            // the value of the last event, number next-1, if any
}

// pending is one event not yet emitted, with its answers and stack links.
type pending[V any] struct {
	t     stream.Time
	v     V
	ans   [2]int64   // by direction: the answering event's number, unanswered or noMatch
	below [2]link[V] // by direction: the next event down its stack
}

// link leads to an event down a stack: its number (below first: none) and its
// value.
type link[V any] struct {
	n int64
	v V
}

// len returns the number of pending events.
func (s *monoState[V]) len() int { return int(s.next - s.first) }

// answer makes v, the next event, the answer in direction d of every waiting
// event it beats on d's stack from the one top leads to down, and returns the
// link to the top event left. The waiting events must all be within their
// horizon at v's time.
func (s *monoState[V]) answer(d direction, v V, top link[V]) link[V] {
	// Locals, so that the stores into evs need not reload them.
	evs, first, n := s.evs, s.first, s.next
	// The stack is monotone: once v does not beat an event, it beats nothing
	// below either.
	for top.n >= first && beats(d, v, top.v) {
		p := &evs[top.n&int64(len(evs)-1)]
		p.ans[d] = n
		top = p.below[d]
	}
	return top
}

// beats reports whether v beats w in direction d: is strictly higher, or
// strictly lower.
func beats[V cmp.Ordered](d direction, v, w V) bool {
	if d == higher {
		return v > w
	}
	return v < w
}

// makeRoom grows the ring if it is full, before add.
func (s *monoState[V]) makeRoom() {
	if s.len() == len(s.evs) {
		s.grow()
	}
}

// add adds the event (t, v), number next, with its answers in each direction,
// ah (higher) and al (lower), and pushes it on both stacks, above the events
// that bh and bl lead to. There must be room for it (see makeRoom).
func (s *monoState[V]) add(t stream.Time, v V, ah, al int64, bh, bl link[V]) {
	n := s.next
	p := &s.evs[n&int64(len(s.evs)-1)]
	p.t, p.v = t, v
	p.ans[higher], p.ans[lower] = ah, al
	p.below[higher], p.below[lower] = bh, bl
	s.next++
	s.last = v
}

// lastLink returns the link to the last event, the top of both stacks (below
// first: there is none).
func (s *monoState[V]) lastLink() link[V] { return link[V]{s.next - 1, s.last} }

// answered reports whether the oldest pending event is answered in both
// directions.
func (s *monoState[V]) answered() bool {
	if s.first == s.next {
		return false
	}
	p := &s.evs[s.first&int64(len(s.evs)-1)]
	return min(p.ans[0], p.ans[1]) != unanswered
}

// ring returns the ring by value, for flush to keep in registers across Emit
// calls. It stays valid until the ring grows (makeRoom).
func (s *monoState[V]) ring() evRing[V] {
	return evRing[V]{s.evs, int64(len(s.evs) - 1)}
}

// evRing is monoState's ring: its slice, and the mask for event numbers.
type evRing[V any] struct {
	evs  []pending[V]
	mask int64 // len(evs) - 1
}

// at returns the event number n, which must be pending (or just emitted).
func (r evRing[V]) at(n int64) *pending[V] { return &r.evs[n&r.mask] }

// match returns the answer that ans names.
func (r evRing[V]) match(ans int64) Match[V] {
	if ans < 0 {
		return Match[V]{}
	}
	f := &r.evs[ans&r.mask]
	return Match[V]{Found: true, Time: f.t, Value: f.v}
}

// final reports whether p's answers are final at watermark bound: answered in
// both directions, or past its horizon (t + horizon < bound, or bound is
// MaxTime).
func (p *pending[V]) final(bound, horizon stream.Time) bool {
	return min(p.ans[0], p.ans[1]) != unanswered || p.t.Add(horizon) < bound || bound == stream.MaxTime
}

// oldestEnd returns the end of the horizon of the oldest pending event. There
// must be one.
func (s *monoState[V]) oldestEnd(horizon stream.Time) stream.Time {
	return s.evs[s.first&int64(len(s.evs)-1)].t.Add(horizon)
}

// grow doubles the capacity of the ring, keeping every event at the position
// its number gives.
//
//go:noinline
func (s *monoState[V]) grow() {
	size := max(2*len(s.evs), 8)
	evs := make([]pending[V], size)
	for n := s.first; n < s.next; n++ {
		evs[n&int64(size-1)] = s.evs[n&int64(len(s.evs)-1)]
	}
	s.evs = evs
}
