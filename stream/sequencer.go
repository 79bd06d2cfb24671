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
//
// Events are held in one sorted run per input partition, and released by
// merging the runs. A partition's events are nearly in order even when
// partitions interleave in large chunks (as Kafka fetches do), so an offer is
// O(1) for an event in order within its partition and O(log n + d) for one d
// places out of order; a release costs O(number of partitions). A duplicate
// within a partition is recognised when offered; a duplicate of an event held
// for another partition is recognised, and counted, when the two meet at
// release, where the first to arrive wins. A Sequencer is not safe for
// concurrent use.
type Sequencer[V any] struct {
	runs    []run[V]
	last    int // index of the run offered to last
	wm      Time
	arrival uint64
	// The identity released last, to drop a cross-partition duplicate.
	released    bool
	releasedKey string
	releasedAt  Time
	mergedDups  uint64
}

type run[V any] struct {
	partition int
	held      ring.Deque[heldEvent[V]] // sorted by (Time, Key)
}

type heldEvent[V any] struct {
	ev  Event[V]
	seq uint64 // arrival order, for "the first to arrive wins" across partitions
}

// NewSequencer returns an empty Sequencer whose watermark is MinTime.
func NewSequencer[V any]() *Sequencer[V] { return &Sequencer[V]{wm: MinTime} }

// Watermark returns the watermark of the last Advance.
func (s *Sequencer[V]) Watermark() Time { return s.wm }

// Held returns the number of events waiting for the watermark.
func (s *Sequencer[V]) Held() int {
	n := 0
	for i := range s.runs {
		n += s.runs[i].held.Len()
	}
	return n
}

// MergedDuplicates returns how many duplicates were dropped at release because
// their first copy was held for another partition (they were Accepted when
// offered).
func (s *Sequencer[V]) MergedDuplicates() uint64 { return s.mergedDups }

// Offer classifies e, read from partition 0, and, if it is accepted, holds it.
func (s *Sequencer[V]) Offer(e Event[V]) Verdict { return s.OfferFrom(0, e) }

func (s *Sequencer[V]) run(partition int) *run[V] {
	if s.last < len(s.runs) && s.runs[s.last].partition == partition {
		return &s.runs[s.last]
	}
	for i := range s.runs {
		if s.runs[i].partition == partition {
			s.last = i
			return &s.runs[i]
		}
	}
	s.runs = append(s.runs, run[V]{partition: partition})
	s.last = len(s.runs) - 1
	return &s.runs[s.last]
}

// OfferFrom classifies e, read from the given partition, and, if it is
// accepted, holds it.
func (s *Sequencer[V]) OfferFrom(partition int, e Event[V]) Verdict {
	if e.Time < s.wm {
		return Late
	}
	r := s.run(partition)
	s.arrival++
	h := heldEvent[V]{ev: e, seq: s.arrival}
	n := r.held.Len()
	if n == 0 || r.held.Back().ev.Before(&e) {
		r.held.PushBack(h)
		return Accepted
	}
	// Lower bound: the first held event that is not before e.
	lo, hi := 0, n-1 // the back is not before e, so the answer is <= n-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.held.At(mid).ev.Before(&e) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if x := r.held.At(lo); x.ev.Time == e.Time && x.ev.Key == e.Key {
		return Duplicate
	}
	r.held.Insert(lo, h)
	return Accepted
}

// Advance raises the watermark to wm (a smaller wm is ignored) and releases, in
// (Time, Key) order, every held event with Time < wm.
func (s *Sequencer[V]) Advance(wm Time, out Emitter[V]) {
	if wm <= s.wm {
		return
	}
	s.wm = wm
	if len(s.runs) == 1 { // the common single-partition case: no merge
		r := &s.runs[0]
		for r.held.Len() > 0 && r.held.Front().ev.Time < wm {
			s.release(r.held.PopFront(), out)
		}
		return
	}
	for {
		best := -1
		var bh *heldEvent[V]
		for i := range s.runs {
			r := &s.runs[i]
			if r.held.Len() == 0 {
				continue
			}
			f := r.held.Front()
			if f.ev.Time >= wm {
				continue
			}
			if bh == nil || f.ev.Before(&bh.ev) || (f.ev.Time == bh.ev.Time && f.ev.Key == bh.ev.Key && f.seq < bh.seq) {
				best, bh = i, f
			}
		}
		if best < 0 {
			return
		}
		s.release(s.runs[best].held.PopFront(), out)
	}
}

func (s *Sequencer[V]) release(h heldEvent[V], out Emitter[V]) {
	if s.released && h.ev.Time == s.releasedAt && h.ev.Key == s.releasedKey {
		s.mergedDups++ // a later copy held for another partition
		return
	}
	s.released, s.releasedAt, s.releasedKey = true, h.ev.Time, h.ev.Key
	out.Emit(h.ev)
}
