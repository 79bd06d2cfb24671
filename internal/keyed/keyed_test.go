package keyed

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
)

func TestTable(t *testing.T) {
	tab := New[int]()
	a := tab.Get("a")
	a.State = 1
	assert.Same(t, a, tab.Get("a"), "the same entry for the same key (cached)")
	assert.Equal(t, "a", a.Key(), "the entry's key")
	b := tab.Get("b")
	b.State = 2
	assert.Same(t, a, tab.Get(strings.Clone("a")), "the same entry after another key, from another string")
	assert.Equal(t, 2, tab.Len(), "two keys")
	tab.Delete(a)
	assert.Nil(t, tab.Lookup("a"), "a deleted")
	assert.Equal(t, 0, tab.Get("a").State, "a deleted key starts afresh, even when it was the cached one")
	assert.Same(t, b, tab.Lookup("b"), "b kept")
}

func TestTimers(t *testing.T) {
	tab := New[int]()
	a, b, c := tab.Get("a"), tab.Get("b"), tab.Get("c")
	assert.False(t, a.Scheduled(), "a new entry has no timer")
	assert.False(t, tab.AnyDue(stream.MaxTime), "no timer: nothing due even at MaxTime")
	tab.Schedule(c, 10)
	tab.Schedule(b, 10)
	tab.Schedule(a, 20)
	assert.True(t, b.Scheduled(), "b has a timer")
	assert.False(t, b.Due(10), "a timer at 10 is not due at watermark 10")
	assert.True(t, b.Due(11), "a timer at 10 is due at watermark 11")
	assert.False(t, tab.AnyDue(10), "nothing due at 10")
	assert.Nil(t, tab.PopDue(10), "nothing to pop at 10")
	assert.Same(t, b, tab.PopDue(11), "equal times: key order")
	assert.Same(t, c, tab.PopDue(11), "then c")
	assert.Nil(t, tab.PopDue(11), "a is not due at 11")
	assert.False(t, b.Scheduled(), "a popped timer is gone")
	tab.Schedule(b, stream.MaxTime)
	assert.False(t, b.Due(stream.MaxTime), "an entry's timer at MaxTime is not Due")
	assert.Equal(t, []*Entry[int]{a, b}, tab.TakeDue(stream.MaxTime), "every timer is due at MaxTime, in key order")
	assert.Zero(t, tab.Timers(), "no timer left")
	tab.Schedule(a, 5)
	tab.Delete(a)
	assert.Zero(t, tab.Timers(), "a deleted entry's timer is gone")
	assert.False(t, tab.AnyDue(stream.MaxTime), "nothing due")
}

func TestBeforeIsKeyOrder(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	for range 100_000 {
		a, b := randomKey(r), randomKey(r)
		ea := &Entry[int]{key: a, pre: prefix(a)}
		eb := &Entry[int]{key: b, pre: prefix(b)}
		require.Equalf(t, strings.Compare(a, b) < 0, before(ea, eb), "before(%q, %q) at equal times", a, b)
	}
}

// randomKey returns a key from a small alphabet (with a zero byte), of length
// 0 to 12: many keys share their first 8 bytes, or are prefixes of others.
func randomKey(r *rand.Rand) string {
	const alphabet = "\x00ab\xff"
	var b strings.Builder
	for range r.IntN(13) {
		b.WriteByte(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

// refTable is the brute-force reference: a map from key to state and timer,
// searched and sorted at every question.
type refTable struct {
	state map[string]int
	timer map[string]stream.Time // keys with a timer
}

func (r *refTable) due(wm stream.Time) []string {
	var keys []string
	for k, at := range r.timer {
		if at < wm || wm == stream.MaxTime {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(r.timer[a], r.timer[b]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return keys
}

// TestTableAgainstMapAndSort drives a Table and the reference with the same
// random operations and compares every answer, and the heap's invariants.
func TestTableAgainstMapAndSort(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, uint64(time.Now().UnixNano())}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Logf("seed %d", seed)
			r := rand.New(rand.NewPCG(seed, 7))
			nKeys := 1 + r.IntN(60)
			keys := make([]string, nKeys)
			for i := range keys {
				keys[i] = randomKey(r) + fmt.Sprint(i) // distinct
			}
			times := func() stream.Time {
				switch r.IntN(20) {
				case 0:
					return stream.MaxTime
				case 1:
					return stream.MinTime
				case 2:
					return stream.MaxTime - 1
				}
				return stream.Time(r.IntN(40)) // many equal times
			}
			tab := New[int]()
			ref := refTable{state: map[string]int{}, timer: map[string]stream.Time{}}
			for op := range 20_000 {
				k := keys[r.IntN(nKeys)]
				if r.IntN(2) == 0 {
					k = strings.Clone(k) // another string: the slow path of Get
				}
				switch r.IntN(8) {
				case 0, 1: // Get and change the state
					e := tab.Get(k)
					require.Equalf(t, ref.state[k], e.State, "op %d: state of %q", op, k)
					e.State++
					ref.state[k]++
				case 2: // Schedule
					at := times()
					tab.Schedule(tab.Get(k), at)
					if _, ok := ref.state[k]; !ok {
						ref.state[k] = 0
					}
					ref.timer[k] = at
				case 3: // Delete
					if e := tab.Lookup(k); e != nil {
						tab.Delete(e)
					}
					delete(ref.state, k)
					delete(ref.timer, k)
				case 4, 5: // PopDue, a few times
					wm := times()
					want := ref.due(wm)
					require.Equalf(t, len(want) > 0, tab.AnyDue(wm), "op %d: AnyDue(%d)", op, wm)
					for i := range min(len(want), 1+r.IntN(3)) {
						e := tab.PopDue(wm)
						require.NotNilf(t, e, "op %d: PopDue(%d) #%d", op, wm, i)
						require.Equalf(t, want[i], e.Key(), "op %d: PopDue(%d) #%d in (time, key) order", op, wm, i)
						require.False(t, e.Scheduled(), "a popped entry has no timer")
						delete(ref.timer, e.Key())
					}
				case 6: // TakeDue
					wm := times()
					want := ref.due(wm)
					slices.Sort(want)
					var got []string
					for _, e := range tab.TakeDue(wm) {
						got = append(got, e.Key())
						delete(ref.timer, e.Key())
					}
					require.Equalf(t, want, got, "op %d: TakeDue(%d) in key order", op, wm)
				case 7: // Due of one entry
					wm := times()
					e := tab.Lookup(k)
					at, ok := ref.timer[k]
					if e == nil {
						require.Falsef(t, ok, "op %d: %q has a timer but no entry", op, k)
						break
					}
					require.Equalf(t, ok, e.Scheduled(), "op %d: Scheduled(%q)", op, k)
					require.Equalf(t, ok && at < wm, e.Due(wm), "op %d: Due(%q, %d)", op, k, wm)
				}
				require.Equalf(t, len(ref.state), tab.Len(), "op %d: Len", op)
				require.Equalf(t, len(ref.timer), tab.Timers(), "op %d: Timers", op)
				checkHeap(t, &tab)
			}
			// At MaxTime every timer pops, in (time, key) order.
			want := ref.due(stream.MaxTime)
			var got []string
			for e := tab.PopDue(stream.MaxTime); e != nil; e = tab.PopDue(stream.MaxTime) {
				got = append(got, e.Key())
			}
			require.Equal(t, want, got, "everything due at MaxTime")
		})
	}
}

// checkHeap checks the heap's order, the entries' positions and soonest.
func checkHeap[S any](t *testing.T, tab *Table[S]) {
	t.Helper()
	for i, e := range tab.heap {
		require.Equalf(t, i, e.index, "entry %q knows its position", e.key)
		require.Samef(t, e, tab.m[e.key], "entry %q in the heap is in the map", e.key)
		if i > 0 {
			require.Falsef(t, before(e, tab.heap[(i-1)/2]), "entry %q is not before its parent", e.key)
		}
	}
	want := stream.MaxTime
	if len(tab.heap) > 0 {
		want = min(tab.heap[0].at, stream.MaxTime-1)
	}
	require.Equal(t, want, tab.soonest, "soonest")
}

// TestNoAllocations: looking up known keys and moving their timers does not
// allocate once the heap has its size.
func TestNoAllocations(t *testing.T) {
	tab := New[int]()
	keys := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}
	for _, k := range keys {
		tab.Schedule(tab.Get(k), 0)
	}
	at := stream.Time(0)
	allocs := testing.AllocsPerRun(1000, func() {
		for _, k := range keys {
			at++
			tab.Schedule(tab.Get(k), at)
		}
		for e := tab.PopDue(at - 1); e != nil; e = tab.PopDue(at - 1) {
			tab.Schedule(e, at+1)
		}
	})
	assert.Zero(t, allocs, "allocations per run")
}
