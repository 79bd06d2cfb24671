package stream

import "github.com/tidemark-go/tidemark/internal/ring"

// Pair is the output of a Join: the two events' values that share (Key, Time).
type Pair[L, R any] struct {
	Left  L
	Right R
}

// JoinStats counts what a Join did.
type JoinStats struct {
	Pairs          uint64 // pairs emitted
	UnmatchedLeft  uint64 // left events evicted without a partner
	UnmatchedRight uint64 // right events evicted without a partner
	Duplicates     uint64 // events whose identity was already seen on their side
}

// Join is the timestamp-keyed join: it pairs events of a left and a right stream
// that have equal (Key, Time), and emits the pair as soon as the second of the two
// arrives. Each side has its own watermark; the join's watermark is the smaller
// of the two. An event waits for its partner until the join's watermark is above
// its time; it is then evicted, counted as unmatched and handed to the unmatched
// sink of its side, if any. An event that arrives when the join's watermark is
// already above its time cannot find a partner any more and is unmatched at once.
//
// Identities are unique per side: a second event with the identity of an earlier
// one on the same side is a duplicate, counted and dropped. The inputs need not
// be ordered; state is two sorted buffers, so a pair costs O(log n) for the
// partner lookup where n is the number of events waiting, O(1) amortized for
// events that arrive in order. A Join is not safe for concurrent use.
type Join[L, R any] struct {
	left        ring.Deque[waiting[L]]
	right       ring.Deque[waiting[R]]
	wmLeft      Time
	wmRight     Time
	wm          Time
	onLeftOnly  func(Event[L])
	onRightOnly func(Event[R])
	stats       JoinStats
	waitLeft    int // unmatched events held
	waitRight   int
}

type waiting[V any] struct {
	ev      Event[V]
	matched bool
}

// NewJoin returns an empty Join. onLeftOnly and onRightOnly, either of which may
// be nil, receive the events evicted without a partner.
func NewJoin[L, R any](onLeftOnly func(Event[L]), onRightOnly func(Event[R])) *Join[L, R] {
	return &Join[L, R]{wmLeft: MinTime, wmRight: MinTime, wm: MinTime, onLeftOnly: onLeftOnly, onRightOnly: onRightOnly}
}

// Stats returns the counts so far.
func (j *Join[L, R]) Stats() JoinStats { return j.stats }

// Watermark returns the join's watermark: the smaller of the two sides'.
func (j *Join[L, R]) Watermark() Time { return j.wm }

// Waiting returns the number of events waiting for a partner on each side.
func (j *Join[L, R]) Waiting() (left, right int) { return j.waitLeft, j.waitRight }

// Left offers an event of the left stream.
func (j *Join[L, R]) Left(e Event[L], out Emitter[Pair[L, R]]) {
	if e.Time < j.wm {
		j.stats.UnmatchedLeft++
		if j.onLeftOnly != nil {
			j.onLeftOnly(e)
		}
		return
	}
	if i, ok := find(&j.right, e.Key, e.Time); ok {
		w := j.right.At(i)
		if w.matched {
			j.stats.Duplicates++
			return
		}
		w.matched = true
		j.waitRight--
		j.stats.Pairs++
		out.Emit(Event[Pair[L, R]]{Key: e.Key, Time: e.Time, Value: Pair[L, R]{Left: e.Value, Right: w.ev.Value}})
		return
	}
	if insert(&j.left, e) {
		j.waitLeft++
	} else {
		j.stats.Duplicates++
	}
}

// Right offers an event of the right stream.
func (j *Join[L, R]) Right(e Event[R], out Emitter[Pair[L, R]]) {
	if e.Time < j.wm {
		j.stats.UnmatchedRight++
		if j.onRightOnly != nil {
			j.onRightOnly(e)
		}
		return
	}
	if i, ok := find(&j.left, e.Key, e.Time); ok {
		w := j.left.At(i)
		if w.matched {
			j.stats.Duplicates++
			return
		}
		w.matched = true
		j.waitLeft--
		j.stats.Pairs++
		out.Emit(Event[Pair[L, R]]{Key: e.Key, Time: e.Time, Value: Pair[L, R]{Left: w.ev.Value, Right: e.Value}})
		return
	}
	if insert(&j.right, e) {
		j.waitRight++
	} else {
		j.stats.Duplicates++
	}
}

// AdvanceLeft raises the left stream's watermark.
func (j *Join[L, R]) AdvanceLeft(wm Time) { j.wmLeft = max(j.wmLeft, wm); j.evict() }

// AdvanceRight raises the right stream's watermark.
func (j *Join[L, R]) AdvanceRight(wm Time) { j.wmRight = max(j.wmRight, wm); j.evict() }

// Advance raises both watermarks, for two streams that share one.
func (j *Join[L, R]) Advance(wm Time) {
	j.wmLeft, j.wmRight = max(j.wmLeft, wm), max(j.wmRight, wm)
	j.evict()
}

func (j *Join[L, R]) evict() {
	wm := min(j.wmLeft, j.wmRight)
	if wm <= j.wm {
		return
	}
	j.wm = wm
	for j.left.Len() > 0 && j.left.Front().ev.Time < wm {
		w := j.left.PopFront()
		if !w.matched {
			j.waitLeft--
			j.stats.UnmatchedLeft++
			if j.onLeftOnly != nil {
				j.onLeftOnly(w.ev)
			}
		}
	}
	for j.right.Len() > 0 && j.right.Front().ev.Time < wm {
		w := j.right.PopFront()
		if !w.matched {
			j.waitRight--
			j.stats.UnmatchedRight++
			if j.onRightOnly != nil {
				j.onRightOnly(w.ev)
			}
		}
	}
}

// find looks up (key, t) in a buffer sorted by (Time, Key).
func find[V any](d *ring.Deque[waiting[V]], key string, t Time) (int, bool) {
	i := lowerBound(d, key, t)
	if i < d.Len() {
		if w := d.At(i); w.ev.Time == t && w.ev.Key == key {
			return i, true
		}
	}
	return i, false
}

// insert adds e in (Time, Key) order; it reports false if e's identity is there.
// A matched entry stays in the buffer until eviction so that a later duplicate
// of either side is recognised as such.
func insert[V any](d *ring.Deque[waiting[V]], e Event[V]) bool {
	n := d.Len()
	if n == 0 || d.Back().ev.Before(&e) {
		d.PushBack(waiting[V]{ev: e})
		return true
	}
	i, ok := find(d, e.Key, e.Time)
	if ok {
		return false
	}
	d.Insert(i, waiting[V]{ev: e})
	return true
}

func lowerBound[V any](d *ring.Deque[waiting[V]], key string, t Time) int {
	lo, hi := 0, d.Len()
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		w := d.At(mid)
		if w.ev.Time < t || (w.ev.Time == t && w.ev.Key < key) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}
