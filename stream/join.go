package stream

import (
	"fmt"
	"reflect"

	"github.com/tidemark-go/tidemark/internal/ring"
)

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

// JoinConfig configures NewJoin. The zero value suits values that hold no
// references (numbers, strings, structs of them).
type JoinConfig[L, R any] struct {
	// CopyLeft and CopyRight copy an event's value into storage the Join
	// keeps while the event waits for its partner: operators reuse the
	// slices they emit, so a value that holds references (a slice, a map, a
	// pointer) must be copied. dst holds a value the Join kept before, whose
	// storage may be reused (CopySlice does). NewJoin requires them for value
	// types that hold references; Assign keeps values as they are, for
	// references to immutable data.
	CopyLeft  func(dst *L, src L)
	CopyRight func(dst *R, src R)
	// OnLeftOnly and OnRightOnly, if set, receive the events evicted without
	// a partner. The value is only valid during the call.
	OnLeftOnly  func(Event[L])
	OnRightOnly func(Event[R])
}

// CopySlice copies src into *dst, reusing *dst's storage: the CopyLeft or
// CopyRight of a Join whose values are slices of plain values.
func CopySlice[E any](dst *[]E, src []E) { *dst = append((*dst)[:0], src...) }

// Assign keeps src as it is: the CopyLeft or CopyRight of a Join whose
// values hold references to data that nothing modifies.
func Assign[T any](dst *T, src T) { *dst = src }

// Join is the timestamp-keyed join: it pairs events of a left and a right stream
// that have equal (Key, Time), and emits the pair as soon as the second of the two
// arrives. It is a TwoInput operator with zero bounds: its watermark is the
// smaller of its inputs' (Advance). An event waits for its partner until the
// watermark is above its time; it is then evicted, counted as unmatched and
// handed to the unmatched callback of its side, if any. An event that arrives
// when the watermark is already above its time cannot find a partner any more
// and is unmatched at once. The Join copies the values it keeps (JoinConfig),
// so the operators upstream may reuse theirs.
//
// Identities are unique per side: a second event with the identity of an earlier
// one on the same side is a duplicate, counted and dropped. The inputs need not
// be ordered; state is two sorted buffers, so a pair costs O(log n) for the
// partner lookup where n is the number of events waiting, O(1) amortized for
// events that arrive in order. The pairs it has emitted after two sequences of
// events and watermarks do not depend on how the sequences were interleaved,
// as TwoInput requires. A Join is not safe for concurrent use.
type Join[L, R any] struct {
	left  joinSide[L]
	right joinSide[R]
	wm    Time
	stats JoinStats
}

// joinSide is the buffer of one side's events that wait for a partner.
type joinSide[V any] struct {
	buf    ring.Deque[waiting[V]] // sorted by (Time, Key)
	copy   func(dst *V, src V)    // nil: assignment
	free   []V                    // storage of evicted values, for copy to reuse
	wait   int                    // unmatched events held
	onOnly func(Event[V])
}

type waiting[V any] struct {
	ev      Event[V]
	matched bool
}

var _ TwoInput[int, int, Pair[int, int]] = (*Join[int, int])(nil)

// NewJoin returns an empty Join. It returns an error wrapping ErrInvalidOption
// when a side's values hold references and the config has no copy for it.
func NewJoin[L, R any](cfg JoinConfig[L, R]) (*Join[L, R], error) {
	if cfg.CopyLeft == nil && holdsReferences(reflect.TypeFor[L]()) {
		return nil, fmt.Errorf("%w: join: left values (%v) hold references; set JoinConfig.CopyLeft (CopySlice, or Assign for immutable data)",
			ErrInvalidOption, reflect.TypeFor[L]())
	}
	if cfg.CopyRight == nil && holdsReferences(reflect.TypeFor[R]()) {
		return nil, fmt.Errorf("%w: join: right values (%v) hold references; set JoinConfig.CopyRight (CopySlice, or Assign for immutable data)",
			ErrInvalidOption, reflect.TypeFor[R]())
	}
	return &Join[L, R]{
		left:  joinSide[L]{copy: cfg.CopyLeft, onOnly: cfg.OnLeftOnly},
		right: joinSide[R]{copy: cfg.CopyRight, onOnly: cfg.OnRightOnly},
		wm:    MinTime,
	}, nil
}

// holdsReferences reports whether values of type t can share memory with
// other values, so that keeping one means copying it. Strings are immutable.
func holdsReferences(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface, reflect.Chan,
		reflect.Func, reflect.UnsafePointer:
		return true
	case reflect.Array:
		return holdsReferences(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if holdsReferences(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// Stats returns the counts so far.
func (j *Join[L, R]) Stats() JoinStats { return j.stats }

// Watermark returns the join's watermark: the last one Advance was given.
func (j *Join[L, R]) Watermark() Time { return j.wm }

// Waiting returns the number of events waiting for a partner on each side.
func (j *Join[L, R]) Waiting() (left, right int) { return j.left.wait, j.right.wait }

// Bounds implements TwoInput: a pair depends on the two events of its time.
func (j *Join[L, R]) Bounds() Bounds { return Bounds{} }

// ProcessLeft offers an event of the left stream.
func (j *Join[L, R]) ProcessLeft(e Event[L], out Emitter[Pair[L, R]]) {
	if e.Time < j.wm {
		j.stats.UnmatchedLeft++
		if j.left.onOnly != nil {
			j.left.onOnly(e)
		}
		return
	}
	if w, ok := j.right.partner(e.Key, e.Time); ok {
		if w.matched {
			j.stats.Duplicates++
			return
		}
		w.matched = true
		j.right.wait--
		j.stats.Pairs++
		out.Emit(Event[Pair[L, R]]{Key: e.Key, Time: e.Time, Value: Pair[L, R]{Left: e.Value, Right: w.ev.Value}})
		return
	}
	if !j.left.insert(e) {
		j.stats.Duplicates++
	}
}

// ProcessRight offers an event of the right stream.
func (j *Join[L, R]) ProcessRight(e Event[R], out Emitter[Pair[L, R]]) {
	if e.Time < j.wm {
		j.stats.UnmatchedRight++
		if j.right.onOnly != nil {
			j.right.onOnly(e)
		}
		return
	}
	if w, ok := j.left.partner(e.Key, e.Time); ok {
		if w.matched {
			j.stats.Duplicates++
			return
		}
		w.matched = true
		j.left.wait--
		j.stats.Pairs++
		out.Emit(Event[Pair[L, R]]{Key: e.Key, Time: e.Time, Value: Pair[L, R]{Left: w.ev.Value, Right: e.Value}})
		return
	}
	if !j.right.insert(e) {
		j.stats.Duplicates++
	}
}

// Advance raises the join's watermark (the smaller of its inputs') and evicts
// the events below it; it emits nothing.
func (j *Join[L, R]) Advance(wm Time, _ Emitter[Pair[L, R]]) {
	if wm <= j.wm {
		return
	}
	j.wm = wm
	j.stats.UnmatchedLeft += j.left.evict(wm)
	j.stats.UnmatchedRight += j.right.evict(wm)
}

// evict drops the events below wm and returns how many had no partner.
func (s *joinSide[V]) evict(wm Time) uint64 {
	var n uint64
	for s.buf.Len() > 0 && s.buf.Front().ev.Time < wm {
		w := s.buf.PopFront()
		if !w.matched {
			s.wait--
			n++
			if s.onOnly != nil {
				s.onOnly(w.ev)
			}
		}
		if s.copy != nil {
			s.free = append(s.free, w.ev.Value)
		}
	}
	return n
}

// partner looks up (key, t) in the buffer sorted by (Time, Key).
func (s *joinSide[V]) partner(key string, t Time) (*waiting[V], bool) {
	i := s.lowerBound(key, t)
	if i < s.buf.Len() {
		if w := s.buf.At(i); w.ev.Time == t && w.ev.Key == key {
			return w, true
		}
	}
	return nil, false
}

// insert keeps a copy of e, in (Time, Key) order; it reports false if e's
// identity is there already. A matched entry stays in the buffer until
// eviction so that a later duplicate of either side is recognised as such.
func (s *joinSide[V]) insert(e Event[V]) bool {
	i := s.buf.Len()
	if i > 0 && !s.buf.Back().ev.Before(&e) {
		i = s.lowerBound(e.Key, e.Time)
		if w := s.buf.At(i); w.ev.Time == e.Time && w.ev.Key == e.Key {
			return false
		}
	}
	if s.copy != nil {
		var v V
		if n := len(s.free); n > 0 {
			v = s.free[n-1]
			s.free = s.free[:n-1]
		}
		s.copy(&v, e.Value)
		e.Value = v
	}
	if i == s.buf.Len() {
		s.buf.PushBack(waiting[V]{ev: e})
	} else {
		s.buf.Insert(i, waiting[V]{ev: e})
	}
	s.wait++
	return true
}

func (s *joinSide[V]) lowerBound(key string, t Time) int {
	lo, hi := 0, s.buf.Len()
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		w := s.buf.At(mid)
		if w.ev.Time < t || (w.ev.Time == t && w.ev.Key < key) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}
