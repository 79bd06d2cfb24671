package lookahead

import (
	"slices"
	"strings"
	"unsafe"

	"github.com/tidemark-go/tidemark/stream"
)

// keyTable holds the per-key state S of a lookahead, and schedules the keys by
// the end of the horizon of their oldest waiting event, so that Advance finds
// in O(1) that no answer is due, and otherwise only the keys that have one.
//
// The operator reports, whenever a key's oldest waiting event changes, the end
// of its horizon (schedule); Advance takes the keys whose oldest waiting event
// the watermark has made final (takeDue), settles them, and reports what is
// left (settled). A key with nothing waiting is dropped.
type keyTable[S any] struct {
	m     map[string]*keyEntry[S]
	heap  []*keyEntry[S] // the keys with a waiting event: a min-heap on end
	taken []*keyEntry[S] // takeDue's result, reused
	// The end at the root of the heap but at most MaxTime-1, or MaxTime when
	// the heap is empty: a key is due at wm if soonest < wm, one comparison.
	soonest stream.Time

	// The last key looked up, since streams often repeat a key, and the
	// bytes and length of the string it was looked up with, since decoders
	// often intern keys: comparing them needs no call. lastLen is -1 when
	// there is no last key.
	last     *keyEntry[S]
	lastData *byte
	lastLen  int
}

// keyEntry is one key's state and its place in the schedule.
type keyEntry[S any] struct {
	key   string
	end   stream.Time // end of the horizon of the oldest waiting event, or unscheduled
	index int         // position in the heap, when scheduled
	state S
}

func newKeyTable[S any]() keyTable[S] {
	return keyTable[S]{m: make(map[string]*keyEntry[S]), soonest: stream.MaxTime, lastLen: -1}
}

// get returns k's entry, creating an unscheduled one with a zero state if k is
// new.
func (t *keyTable[S]) get(k string) *keyEntry[S] {
	if unsafe.StringData(k) == t.lastData && len(k) == t.lastLen {
		return t.last
	}
	return t.find(k)
}

// find is get's slow path: a comparison of the strings, or a map lookup.
func (t *keyTable[S]) find(k string) *keyEntry[S] {
	e := t.last
	if e == nil || e.key != k {
		var ok bool
		if e, ok = t.m[k]; !ok {
			e = &keyEntry[S]{key: k, end: unscheduled}
			t.m[k] = e
		}
	}
	t.last, t.lastData, t.lastLen = e, unsafe.StringData(k), len(k)
	return e
}

// unscheduled is the end of a key that is not in the heap: no horizon ends
// there, since t + horizon > MinTime.
const unscheduled = stream.MinTime

// due reports whether e is scheduled with an end before t: whether its oldest
// waiting event's horizon ends before t.
func (e *keyEntry[S]) due(t stream.Time) bool { return e.end < t && e.end != unscheduled }

// schedule notes that e's oldest waiting event's horizon ends at end. The end
// of a scheduled key only grows.
func (t *keyTable[S]) schedule(e *keyEntry[S], end stream.Time) {
	if end != e.end { // small enough to inline: the end rarely changes
		t.reschedule(e, end)
	}
}

// reschedule is schedule's slow path: it puts e in the heap, or moves it
// down the heap after its end grew.
func (t *keyTable[S]) reschedule(e *keyEntry[S], end stream.Time) {
	if e.end == unscheduled {
		e.end, e.index = end, len(t.heap)
		t.heap = append(t.heap, e)
		t.up(e.index)
	} else {
		e.end = end
		t.down(e.index)
	}
	t.setSoonest()
}

// anyDue reports whether a key's oldest waiting event's horizon ends before wm
// (whether any key has a waiting event, when wm is MaxTime).
func (t *keyTable[S]) anyDue(wm stream.Time) bool { return t.soonest < wm }

// setSoonest sets soonest after the heap changed.
func (t *keyTable[S]) setSoonest() {
	t.soonest = stream.MaxTime
	if len(t.heap) > 0 {
		t.soonest = min(t.heap[0].end, stream.MaxTime-1)
	}
}

// takeDue unschedules and returns, in key order, the keys whose oldest waiting
// event's horizon ends before wm (every scheduled key when wm is MaxTime). The
// caller settles each and reports it with settled. The slice is valid until
// the next call.
func (t *keyTable[S]) takeDue(wm stream.Time) []*keyEntry[S] {
	t.taken = t.taken[:0]
	for t.anyDue(wm) {
		t.taken = append(t.taken, t.pop())
	}
	if len(t.taken) > 1 {
		slices.SortFunc(t.taken, func(a, b *keyEntry[S]) int { return strings.Compare(a.key, b.key) })
	}
	return t.taken
}

// settled reschedules a key returned by takeDue whose oldest waiting event's
// horizon now ends at end, or drops the key when nothing waits.
func (t *keyTable[S]) settled(e *keyEntry[S], end stream.Time, waiting bool) {
	if waiting {
		t.schedule(e, end)
		return
	}
	delete(t.m, e.key)
	if t.last == e {
		t.last, t.lastData, t.lastLen = nil, nil, -1
	}
}

// pop removes and returns the key with the smallest end.
func (t *keyTable[S]) pop() *keyEntry[S] {
	e := t.heap[0]
	n := len(t.heap) - 1
	t.heap[0], t.heap[n] = t.heap[n], nil
	t.heap = t.heap[:n]
	if n > 0 {
		t.heap[0].index = 0
		t.down(0)
	}
	t.setSoonest()
	e.end = unscheduled
	return e
}

// up moves the key at heap position i towards the root while its end is
// smaller than its parent's.
func (t *keyTable[S]) up(i int) {
	h := t.heap
	e := h[i]
	for i > 0 {
		p := (i - 1) / 2
		if h[p].end <= e.end {
			break
		}
		h[i], h[p].index = h[p], i
		i = p
	}
	h[i], e.index = e, i
}

// down moves the key at heap position i towards the leaves while its end is
// larger than its smaller child's.
func (t *keyTable[S]) down(i int) {
	h := t.heap
	e := h[i]
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if c+1 < len(h) && h[c+1].end < h[c].end {
			c++
		}
		if e.end <= h[c].end {
			break
		}
		h[i], h[c].index = h[c], i
		i = c
	}
	h[i], e.index = e, i
}
