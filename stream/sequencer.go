package stream

import "github.com/tidemark-go/tidemark/internal/ring"

// Verdict is what a Sequencer decided about an offered event.
type Verdict uint8

const (
	// Accepted: the event is held and will be released in order.
	Accepted Verdict = iota
	// Late: the event's time is below the watermark; it is dropped.
	Late
	// Duplicate: an event with the same (Key, Time) is already held; the first
	// to arrive wins and this one is dropped.
	Duplicate
)

func (v Verdict) String() string {
	switch v {
	case Accepted:
		return "accepted"
	case Late:
		return "late"
	case Duplicate:
		return "duplicate"
	}
	return "unknown"
}

// Sequencer turns a stream whose events arrive out of order within the allowed
// lateness into a final, ordered stream: it holds accepted events until the
// watermark passes them and then releases them in (Time, Key) order, dropping
// late events and duplicates.
//
// Late is decided before duplicate: an event below the watermark is late even
// when its identity was seen before, because the Sequencer remembers identities
// only while their events are held (time >= watermark). This keeps its state
// bounded by the events within the lateness.
//
// Because release order is (Time, Key) whatever the arrival order, every
// operator downstream sees the same sequence for any arrival order that respects
// the lateness bound; that is what makes results independent of arrival order.
// Offer is O(1) for events that arrive in order and O(log n + d) for an event
// d places out of order. A Sequencer is not safe for concurrent use.
type Sequencer[V any] struct {
	held ring.Deque[Event[V]]
	wm   Time
}

// NewSequencer returns an empty Sequencer whose watermark is MinTime.
func NewSequencer[V any]() *Sequencer[V] { return &Sequencer[V]{wm: MinTime} }

// Watermark returns the watermark of the last Advance.
func (s *Sequencer[V]) Watermark() Time { return s.wm }

// Held returns the number of events waiting for the watermark.
func (s *Sequencer[V]) Held() int { return s.held.Len() }

// Offer classifies e and, if it is accepted, holds it.
func (s *Sequencer[V]) Offer(e Event[V]) Verdict {
	if e.Time < s.wm {
		return Late
	}
	n := s.held.Len()
	if n == 0 || s.held.Back().Before(&e) {
		s.held.PushBack(e)
		return Accepted
	}
	// Lower bound: the first held event that is not before e.
	lo, hi := 0, n-1 // the back is not before e, so the answer is <= n-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s.held.At(mid).Before(&e) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if h := s.held.At(lo); h.Time == e.Time && h.Key == e.Key {
		return Duplicate
	}
	s.held.Insert(lo, e)
	return Accepted
}

// Advance raises the watermark to wm (a smaller wm is ignored) and releases, in
// (Time, Key) order, every held event with Time < wm.
func (s *Sequencer[V]) Advance(wm Time, out Emitter[V]) {
	if wm <= s.wm {
		return
	}
	s.wm = wm
	for s.held.Len() > 0 && s.held.Front().Time < wm {
		out.Emit(s.held.PopFront())
	}
}
