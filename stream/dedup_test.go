package stream_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/streamtest"
)

// idTrade is an event with an id of its own: several per key and millisecond.
type idTrade struct {
	ID    uint64
	Price float64
}

func idTradeID(e stream.Event[idTrade]) uint64 { return e.Value.ID }

// TestSequencerByID: with ByID, events of one key and millisecond are all
// kept and released in id order whatever their arrival order; an event with
// the same key, time and id is a duplicate. Checked against a reference
// (sort and dedupe) on random arrival orders within the lateness.
func TestSequencerByID(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 7))
	var events []stream.Event[idTrade]
	for i := range 2000 {
		tm := stream.Time(1000 + i/5) // five trades per millisecond
		events = append(events, stream.Event[idTrade]{Key: fmt.Sprintf("k%d", r.IntN(2)), Time: tm, Value: idTrade{ID: uint64(r.IntN(1_000_000)), Price: float64(i)}})
	}
	type id struct {
		key string
		t   stream.Time
		id  uint64
	}
	// Reference: the first arrival of each identity wins, in (time, key, id) order.
	reference := func(arrivals []stream.Event[idTrade]) []string {
		seen := map[id]bool{}
		var kept []stream.Event[idTrade]
		for _, e := range arrivals {
			k := id{e.Key, e.Time, e.Value.ID}
			if !seen[k] {
				seen[k] = true
				kept = append(kept, e)
			}
		}
		slices.SortStableFunc(kept, func(a, b stream.Event[idTrade]) int {
			switch {
			case a.Time != b.Time:
				return int(a.Time - b.Time)
			case a.Key != b.Key:
				if a.Key < b.Key {
					return -1
				}
				return 1
			case a.Value.ID < b.Value.ID:
				return -1
			case a.Value.ID > b.Value.ID:
				return 1
			}
			return 0
		})
		out := make([]string, len(kept))
		for i, e := range kept {
			out[i] = fmt.Sprintf("%s@%d#%d=%v", e.Key, e.Time, e.Value.ID, e.Value.Price)
		}
		return out
	}
	for round := range 5 {
		arrivals := slices.Clone(events)
		// Duplicates with another price, and disorder within 20 ms.
		for range 100 {
			d := arrivals[r.IntN(len(arrivals))]
			d.Value.Price = -1
			arrivals = append(arrivals, d)
		}
		arrivals = streamtest.Shuffle(r, arrivals, 20*time.Millisecond)
		s := stream.NewSequencerBy(stream.ByID(idTradeID))
		var got []string
		out := stream.EmitFunc[idTrade](func(e stream.Event[idTrade]) {
			got = append(got, fmt.Sprintf("%s@%d#%d=%v", e.Key, e.Time, e.Value.ID, e.Value.Price))
		})
		max := stream.MinTime
		for _, e := range arrivals {
			require.NotEqual(t, stream.Late, s.Offer(0, e), "round %d: no event is late within the lateness", round)
			if e.Time > max {
				max = e.Time
				s.Advance(max-20, out)
			}
		}
		s.Advance(stream.MaxTime, out)
		require.Equal(t, reference(arrivals), got, "round %d: every identity once, the first to arrive, in (time, key, id) order", round)
	}
}

// TestSequencerNoDedup: with NoDedup every event is kept, duplicates
// included, and events of one key and time come out in arrival order.
func TestSequencerNoDedup(t *testing.T) {
	s := stream.NewSequencerBy(stream.NoDedup[int]())
	var got []int
	out := stream.EmitFunc[int](func(e stream.Event[int]) { got = append(got, e.Value) })
	for i, e := range []stream.Event[int]{{Key: "a", Time: 2, Value: 1}, {Key: "a", Time: 1, Value: 2}, {Key: "a", Time: 2, Value: 3}, {Key: "a", Time: 2, Value: 4}} {
		assert.Equal(t, stream.Accepted, s.Offer(i%2, e), "event %d", i)
	}
	s.Advance(stream.MaxTime, out)
	assert.Equal(t, []int{2, 1, 3, 4}, got, "time order, then arrival order")

	d, err := stream.NewDriver[int, int](stream.Map(func(e stream.Event[int]) int { return e.Value }), out, stream.WithDedup(stream.NoDedup[int]()))
	require.NoError(t, err, "NewDriver")
	got = nil
	for _, v := range []int{5, 6} {
		assert.Equal(t, stream.Accepted, d.Push(0, stream.Event[int]{Key: "a", Time: 1, Value: v}, time.Time{}), "kept")
	}
	d.Finish()
	assert.Equal(t, []int{5, 6}, got, "a Driver with WithDedup(NoDedup)")
	_, err = stream.NewDriver[int, int](stream.Map(func(e stream.Event[int]) int { return e.Value }), out, stream.WithDedup(stream.NoDedup[string]()))
	assert.ErrorIs(t, err, stream.ErrInvalidOption, "a Dedup of another type")
}

// TestTaskFinal: a Final input releases each event at once, its
// watermark is its largest time, an older event is late; a task rebuilt
// by replay emits what the uninterrupted one does.
func TestTaskFinal(t *testing.T) {
	var got []string
	task, err := stream.NewTask(stream.Map(func(e stream.Event[int]) int { return e.Value }), stream.Input[int]{Final: true, Lateness: time.Hour},
		stream.EmitFunc[int](func(e stream.Event[int]) { got = append(got, fmt.Sprintf("%s@%d=%d", e.Key, e.Time, e.Value)) }))
	require.NoError(t, err, "NewTask")
	in := task.Input()
	for i, e := range []stream.Event[int]{{Key: "a", Time: 10, Value: 1}, {Key: "b", Time: 10, Value: 2}, {Key: "a", Time: 12, Value: 3}} {
		v, err := in.Push(int64(i), e)
		require.NoError(t, err, "Push")
		assert.Equal(t, stream.Accepted, v, "event %d", i)
		assert.Len(t, got, i+1, "released at once")
	}
	assert.Equal(t, stream.Time(12), task.Watermark(), "the largest time")
	v, err := in.Push(3, stream.Event[int]{Key: "c", Time: 11, Value: 4})
	require.NoError(t, err, "Push")
	assert.Equal(t, stream.Late, v, "older than the largest time (Lateness does not apply)")
	assert.Equal(t, []string{"a@10=1", "b@10=2", "a@12=3"}, got, "emitted")

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 8))
	log := streamtest.NewLog[int]()
	tm := stream.Time(0)
	for i := range 3000 {
		tm += stream.Time(r.IntN(3))
		log.Append(stream.Event[int]{Key: fmt.Sprintf("k%d", r.IntN(5)), Time: tm, Value: i})
	}
	n, crashes := streamtest.CheckRecovery(t, seed, stream.Input[int]{Final: true, Dedup: stream.NoDedup[int]()}, log,
		func() stream.Operator[int, int] { return stream.Map(func(e stream.Event[int]) int { return e.Value }) })
	require.Positive(t, crashes, "crashed")
	t.Logf("%d results identical after %d crashes", n, crashes)
}
