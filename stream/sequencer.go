package stream

import (
	"hash/maphash"

	"github.com/tidemark-go/tidemark/internal/ring"
)

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
	// TooFarAhead: the event's time is further ahead of its reference than
	// the input allows (Input.MaxAhead, WithMaxAhead); it is refused, is not
	// held and does not move the watermark. A Sequencer never returns it:
	// the Task and the Driver check the bound before they offer an event.
	TooFarAhead
)

func (v Verdict) String() string {
	switch v {
	case Accepted:
		return "accepted"
	case Late:
		return "late"
	case Duplicate:
		return "duplicate"
	case TooFarAhead:
		return "too far ahead"
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
// places out of order, plus, with several partitions, a lookup of its
// identity in each other partition's run whose range covers it and whose
// keys may include its key (none when each partition has its own keys, or
// when the partitions' times do not overlap); that lookup starts where the
// previous one in the run ended, so it is O(1) for the next event of a
// partition in order and O(log d) for one d places away. A release costs
// O(number of partitions). A duplicate is recognised when it is offered, whichever
// partition holds its first copy, so the Verdict that Offer returns is final:
// an Accepted event is released exactly once. A Sequencer is not safe for
// concurrent use.
type Sequencer[V any] struct {
	runs  []run[V]
	last  int // index of the run offered to last
	wm    Time
	emit  emitterReleaser[V] // Advance's, kept here so that passing it does not allocate
	dedup Dedup[V]
	seq   uint64 // arrivals, the identity of events under NoDedup
}

// Dedup is how an input tells events apart: two events with the same
// identity are duplicates, and the first to arrive wins. Its zero value is
// ByKeyTime, the specification's default.
type Dedup[V any] struct {
	id   func(Event[V]) uint64
	none bool
}

// ByKeyTime makes (Key, Time) an event's identity: one event per key and
// millisecond, the others are duplicates. It is the zero Dedup.
func ByKeyTime[V any]() Dedup[V] { return Dedup[V]{} }

// ByID makes (Key, Time, id(e)) an event's identity, for inputs with several
// events per key and millisecond (trades of one symbol, each with its trade
// id): events with equal keys, times and ids are duplicates, and events of
// one key and time are released in increasing id order, so that results
// still do not depend on their arrival order. id must be a function of the
// event alone.
func ByID[V any](id func(Event[V]) uint64) Dedup[V] { return Dedup[V]{id: id} }

// NoDedup keeps every event: none is a duplicate. Events of one key and
// time are released in their order of arrival, so an operator whose results
// depend on the order of such events (a "last" aggregate) may give results
// that depend on arrival order; ByID gives them an order.
func NoDedup[V any]() Dedup[V] { return Dedup[V]{none: true} }

// identity returns the third part of e's identity.
func (s *Sequencer[V]) identity(e *Event[V]) uint64 {
	switch {
	case s.dedup.none:
		s.seq++
		return s.seq
	case s.dedup.id != nil:
		return s.dedup.id(*e)
	}
	return 0
}

type run[V any] struct {
	partition int
	held      ring.Deque[held[V]] // sorted by (Time, Key); no identity twice across runs
	// Where the last lookup from another partition landed: that partition's
	// next event is usually just after it.
	hint int
	// With several runs, a bit per key held (keyBit), set since the run was
	// last empty: a lookup skips a run that cannot hold the key, the common
	// case when each partition has its own keys.
	keys uint64
}

// held is an accepted event with the offset of its record (-1 when the
// caller has none), which a Task's provenance needs, and the third part of
// its identity (Dedup).
type held[V any] struct {
	e   Event[V]
	off int64
	id  uint64
}

// before reports whether h sorts before o: by time, key and identity.
func (h *held[V]) before(o *held[V]) bool {
	if h.e.Time != o.e.Time {
		return h.e.Time < o.e.Time
	}
	if h.e.Key != o.e.Key {
		return h.e.Key < o.e.Key
	}
	return h.id < o.id
}

// same reports whether h and o have the same identity.
func (h *held[V]) same(o *held[V]) bool {
	return h.e.Time == o.e.Time && h.e.Key == o.e.Key && h.id == o.id
}

// eventReleaser receives the events a Sequencer releases, with their offsets.
type eventReleaser[V any] interface {
	release(e Event[V], off int64)
}

// emitterReleaser releases to an Emitter, dropping the offsets.
type emitterReleaser[V any] struct{ out Emitter[V] }

func (r *emitterReleaser[V]) release(e Event[V], _ int64) { r.out.Emit(e) }

var keySeed = maphash.MakeSeed()

// keyBit returns the bit of a run's keys that stands for key.
func keyBit(key string) uint64 { return 1 << (maphash.String(keySeed, key) & 63) }

// NewSequencer returns an empty Sequencer whose watermark is MinTime, with
// (Key, Time) as the identity of events.
func NewSequencer[V any]() *Sequencer[V] { return &Sequencer[V]{wm: MinTime} }

// NewSequencerBy returns an empty Sequencer that tells events apart as d
// says.
func NewSequencerBy[V any](d Dedup[V]) *Sequencer[V] { return &Sequencer[V]{wm: MinTime, dedup: d} }

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
	if len(s.runs) == 2 { // the first run's keys were not kept so far
		r := &s.runs[0]
		for i := range r.held.Len() {
			r.keys |= keyBit(r.held.At(i).e.Key)
		}
	}
	s.last = len(s.runs) - 1
	return &s.runs[s.last]
}

// Offer classifies e, read from the given partition (any int that names the
// partition; a single input uses 0), and, if it is accepted, holds it.
func (s *Sequencer[V]) Offer(partition int, e Event[V]) Verdict {
	return s.offer(partition, e, -1)
}

// offer is Offer for a record at offset off, which the Sequencer keeps with
// the event and hands back when it releases it.
func (s *Sequencer[V]) offer(partition int, e Event[V], off int64) Verdict {
	if e.Time < s.wm {
		return Late
	}
	x := held[V]{e: e, off: off, id: s.identity(&e)}
	r := s.run(partition)
	n := r.held.Len()
	at := n
	if n > 0 && !r.held.Back().before(&x) {
		at = r.lowerBound(&x)
		if r.held.At(at).same(&x) && !s.dedup.none {
			return Duplicate
		}
	}
	if len(s.runs) > 1 && !s.dedup.none {
		bit := keyBit(e.Key)
		if s.heldElsewhere(r, &x, bit) {
			return Duplicate
		}
		r.keys |= bit
	}
	if at == n {
		r.held.PushBack(x)
	} else {
		r.held.Insert(at, x)
	}
	return Accepted
}

// heldElsewhere reports whether a run other than r holds x's identity.
// bit is x's keyBit.
func (s *Sequencer[V]) heldElsewhere(r *run[V], x *held[V], bit uint64) bool {
	for i := range s.runs {
		q := &s.runs[i]
		if q == r || q.keys&bit == 0 || q.held.Len() == 0 || x.before(q.held.Front()) || q.held.Back().before(x) {
			continue
		}
		// Front <= x <= Back, so the lower bound is an index of q.
		q.hint = q.lowerBoundFrom(x, q.hint)
		if q.held.At(q.hint).same(x) {
			return true
		}
	}
	return false
}

// lowerBound returns the index of the first held event that is not before e;
// the back must not be before e.
func (r *run[V]) lowerBound(e *held[V]) int {
	lo, hi := 0, r.held.Len()-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.held.At(mid).before(e) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// lowerBoundFrom returns the index of the first held event that is not
// before e, searching outwards from index h (a guess, not necessarily
// right) in steps that double: O(log d) where d is how far the answer is
// from h.
func (r *run[V]) lowerBoundFrom(e *held[V], h int) int {
	n := r.held.Len()
	h = min(max(h, 0), n)
	lo, hi := 0, n // the answer is in [lo, hi]
	if h < n && r.held.At(h).before(e) {
		lo = h + 1
		for step := 1; ; step *= 2 {
			p := lo + step - 1
			if p >= n {
				break
			}
			if !r.held.At(p).before(e) {
				hi = p
				break
			}
			lo = p + 1
		}
	} else {
		hi = h
		for step := 1; ; step *= 2 {
			p := hi - step
			if p < 0 {
				break
			}
			if r.held.At(p).before(e) {
				lo = p + 1
				break
			}
			hi = p
		}
	}
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.held.At(mid).before(e) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// Advance raises the watermark to wm (a smaller wm is ignored) and releases, in
// (Time, Key) order, every held event with Time < wm.
func (s *Sequencer[V]) Advance(wm Time, out Emitter[V]) {
	s.emit.out = out
	s.advance(wm, &s.emit)
	s.emit.out = nil
}

// advance is Advance releasing each event with the offset it was offered
// with.
func (s *Sequencer[V]) advance(wm Time, out eventReleaser[V]) {
	if wm <= s.wm {
		return
	}
	s.wm = wm
	if len(s.runs) == 1 { // the common single-partition case: no merge
		r := &s.runs[0]
		for r.held.Len() > 0 && r.held.Front().e.Time < wm {
			h := r.held.PopFront()
			out.release(h.e, h.off)
		}
		return
	}
	for {
		best := -1
		var be *held[V]
		for i := range s.runs {
			r := &s.runs[i]
			if r.held.Len() == 0 {
				continue
			}
			f := r.held.Front()
			if f.e.Time >= wm {
				continue
			}
			if be == nil || f.before(be) {
				best, be = i, f
			}
		}
		if best < 0 {
			return
		}
		r := &s.runs[best]
		if r.hint > 0 {
			r.hint--
		}
		h := r.held.PopFront()
		if r.held.Len() == 0 {
			r.keys = 0
		}
		out.release(h.e, h.off)
	}
}
