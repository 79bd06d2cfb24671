// Package keyed holds the per-key state of operators: a Table from key to
// state, with the last key looked up cached since streams often repeat a key,
// and one event-time timer per key, kept in a min-heap on (time, key), so that
// an operator finds in O(1) that no key is due at a watermark and otherwise
// takes the due keys one at a time, in a deterministic order, at O(log K)
// each (K keys with a timer). The trailing windows, the hopping windows and
// the lookaheads keep their state in it. It is not public API.
//
// A timer at t is due at watermark wm when t < wm: an operator sets it to the
// largest event time its result depends on, which is final once the watermark
// is above it. Every timer is due at MaxTime (end of input).
package keyed

import (
	"encoding/binary"
	"slices"
	"strings"
	"unsafe"

	"github.com/tidemark-go/tidemark/stream"
)

// Entry is one key's state in a Table, with its timer. Its address is stable
// while the key is in the table.
type Entry[S any] struct {
	State S
	key   string
	pre   uint64      // the first 8 bytes of key, big-endian, zero-padded: see before
	at    stream.Time // the timer; MaxTime when there is none
	index int         // position in the heap, or -1 when there is no timer
}

// Key returns the entry's key.
func (e *Entry[S]) Key() string { return e.key }

// Scheduled reports whether the entry has a timer.
func (e *Entry[S]) Scheduled() bool { return e.index >= 0 }

// Due reports whether the entry has a timer before wm: one comparison, since
// an entry without a timer has its time at MaxTime. (A timer at MaxTime is due
// only for the Table's AnyDue and PopDue at MaxTime.)
func (e *Entry[S]) Due(wm stream.Time) bool { return e.at < wm }

// before orders entries by (at, key). The keys' first 8 bytes decide most
// comparisons without a call: when they differ, the zero-padded big-endian
// words compare as the strings do (a string that ends first is a prefix of
// the other there).
func before[S any](a, b *Entry[S]) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	if a.pre != b.pre {
		return a.pre < b.pre
	}
	return a.key < b.key
}

// prefix returns the first 8 bytes of k as a big-endian word, zero-padded.
func prefix(k string) uint64 {
	var b [8]byte
	copy(b[:], k)
	return binary.BigEndian.Uint64(b[:])
}

// Table maps keys to entries. The zero value is not ready: use New.
// A Table is not safe for concurrent use.
type Table[S any] struct {
	m     map[string]*Entry[S]
	heap  []*Entry[S] // the entries with a timer: a min-heap on (at, key)
	taken []*Entry[S] // TakeDue's result, reused
	// The time at the root of the heap but at most MaxTime-1, or MaxTime when
	// the heap is empty: an entry is due at wm if soonest < wm, one comparison.
	soonest stream.Time

	// The last key looked up, and the bytes and length of the string it was
	// looked up with, since decoders often intern keys: comparing them needs
	// no call. lastLen is -1 when there is no last key.
	last     *Entry[S]
	lastData *byte
	lastLen  int
}

// New returns an empty Table.
func New[S any]() Table[S] {
	return Table[S]{m: make(map[string]*Entry[S]), soonest: stream.MaxTime, lastLen: -1}
}

// Get returns k's entry, creating one with a zero state and no timer if k is
// new.
func (t *Table[S]) Get(k string) *Entry[S] {
	if unsafe.StringData(k) == t.lastData && len(k) == t.lastLen {
		return t.last
	}
	return t.find(k)
}

// find is Get's slow path: a comparison of the strings, or a map lookup.
func (t *Table[S]) find(k string) *Entry[S] {
	e := t.last
	if e == nil || e.key != k {
		var ok bool
		if e, ok = t.m[k]; !ok {
			e = &Entry[S]{key: k, pre: prefix(k), at: stream.MaxTime, index: -1}
			t.m[k] = e
		}
	}
	t.last, t.lastData, t.lastLen = e, unsafe.StringData(k), len(k)
	return e
}

// Lookup returns k's entry, or nil.
func (t *Table[S]) Lookup(k string) *Entry[S] { return t.m[k] }

// Len returns the number of keys.
func (t *Table[S]) Len() int { return len(t.m) }

// Timers returns the number of entries with a timer.
func (t *Table[S]) Timers() int { return len(t.heap) }

// Delete removes e, and its timer, from the table. A later Get of its key
// creates a new entry.
func (t *Table[S]) Delete(e *Entry[S]) {
	if e.index >= 0 {
		t.remove(e.index)
	}
	delete(t.m, e.key)
	if t.last == e {
		t.last, t.lastData, t.lastLen = nil, nil, -1
	}
}

// Schedule sets e's timer to at, adding one if e has none.
func (t *Table[S]) Schedule(e *Entry[S], at stream.Time) {
	if at != e.at || e.index < 0 { // small enough to inline: the time rarely changes
		t.reschedule(e, at)
	}
}

// reschedule is Schedule's slow path: it puts e in the heap, or moves it.
func (t *Table[S]) reschedule(e *Entry[S], at stream.Time) {
	switch {
	case e.index < 0:
		e.at, e.index = at, len(t.heap)
		t.heap = append(t.heap, e)
		t.up(e.index)
	case at < e.at:
		e.at = at
		t.up(e.index)
	default:
		e.at = at
		t.down(e.index)
	}
	t.setSoonest()
}

// AnyDue reports whether some timer is before wm (whether there is any timer,
// when wm is MaxTime).
func (t *Table[S]) AnyDue(wm stream.Time) bool { return t.soonest < wm }

// PopDue removes the timer of the entry whose timer is the first due at wm in
// (time, key) order, and returns the entry; nil when none is due.
func (t *Table[S]) PopDue(wm stream.Time) *Entry[S] {
	if !t.AnyDue(wm) {
		return nil
	}
	e := t.heap[0]
	t.remove(0)
	return e
}

// TakeDue removes the timers due at wm and returns their entries in key
// order. The slice is valid until the next call.
func (t *Table[S]) TakeDue(wm stream.Time) []*Entry[S] {
	t.taken = t.taken[:0]
	for t.AnyDue(wm) {
		t.taken = append(t.taken, t.heap[0])
		t.remove(0)
	}
	if len(t.taken) > 1 {
		slices.SortFunc(t.taken, func(a, b *Entry[S]) int { return strings.Compare(a.key, b.key) })
	}
	return t.taken
}

// setSoonest sets soonest after the heap changed.
func (t *Table[S]) setSoonest() {
	t.soonest = stream.MaxTime
	if len(t.heap) > 0 {
		t.soonest = min(t.heap[0].at, stream.MaxTime-1)
	}
}

// remove takes the entry at heap position i out of the heap.
func (t *Table[S]) remove(i int) {
	e := t.heap[i]
	n := len(t.heap) - 1
	if i != n {
		t.heap[i] = t.heap[n]
		t.heap[i].index = i
	}
	t.heap[n] = nil
	t.heap = t.heap[:n]
	if i != n {
		m := t.heap[i]
		t.up(i)
		t.down(m.index)
	}
	e.at, e.index = stream.MaxTime, -1
	t.setSoonest()
}

// up moves the entry at heap position i towards the root while it is before
// its parent.
func (t *Table[S]) up(i int) {
	h := t.heap
	e := h[i]
	for i > 0 {
		p := (i - 1) / 2
		if !before(e, h[p]) {
			break
		}
		h[i], h[p].index = h[p], i
		i = p
	}
	h[i], e.index = e, i
}

// down moves the entry at heap position i towards the leaves while its
// smaller child is before it.
func (t *Table[S]) down(i int) {
	h := t.heap
	e := h[i]
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if c+1 < len(h) && before(h[c+1], h[c]) {
			c++
		}
		if !before(h[c], e) {
			break
		}
		h[i], h[c].index = h[c], i
		i = c
	}
	h[i], e.index = e, i
}
