package lookahead_test

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

	"github.com/tidemark-go/tidemark/lookahead"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/streamtest"
)

// kind is one lookahead flavour under test, with the predicate the brute-force
// reference uses for it.
// operator is what both lookahead types offer.
type operator[V any] interface {
	stream.Operator[V, lookahead.Match[V]]
	Horizon() stream.Time
}

func higher[V cmp.Ordered](h time.Duration) (operator[V], error) { return lookahead.NewHigher[V](h) }
func lower[V cmp.Ordered](h time.Duration) (operator[V], error)  { return lookahead.NewLower[V](h) }

type kind[V cmp.Ordered] struct {
	name string
	make func(h time.Duration) (operator[V], error)
	pred func(e, f V) bool
}

func kinds[V cmp.Ordered](custom func(e, f V) bool) []kind[V] {
	ks := []kind[V]{
		{name: "higher", make: higher[V], pred: func(e, f V) bool { return f > e }},
		{name: "lower", make: lower[V], pred: func(e, f V) bool { return f < e }},
	}
	if custom != nil {
		ks = append(ks, kind[V]{
			name: "custom",
			make: func(h time.Duration) (operator[V], error) { return lookahead.New(h, custom) },
			pred: custom,
		})
	}
	return ks
}

// farApart is the custom predicate of the tests: f answers e when |f - e| >= 3.
func farApart(e, f int) bool { return f-e >= 3 || e-f >= 3 }

// emission is one emitted answer with the watermark in force when it was emitted.
type emission[A any] struct {
	ev stream.Event[A]
	wm stream.Time
}

// recorder is an Emitter that keeps every answer and the watermark in force
// (the one the driving test sets before each call).
type recorder[A any] struct {
	wm  stream.Time
	got []emission[A]
}

func (r *recorder[A]) Emit(e stream.Event[A]) {
	r.got = append(r.got, emission[A]{ev: e, wm: r.wm})
}

// sortEvents puts events in (Time, Key) order, the order the Sequencer releases them in.
func sortEvents[V any](evs []stream.Event[V]) {
	slices.SortFunc(evs, func(a, b stream.Event[V]) int {
		if c := cmp.Compare(a.Time, b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// replay drives l as a Sequencer without lateness would: the events of each
// time, in key order, then Advance(time + 1); at the end Advance(MaxTime). The
// watermark in force while the events of time T are processed is T + 1, the
// smallest watermark that releases them. It returns the emissions and the
// watermarks of the successive steps.
func replay[V, A any](t *testing.T, l stream.Operator[V, A], evs []stream.Event[V]) (*recorder[A], []stream.Time) {
	t.Helper()
	require.True(t, slices.IsSortedFunc(evs, func(a, b stream.Event[V]) int {
		if a.Before(&b) {
			return -1
		}
		if b.Before(&a) {
			return 1
		}
		return 0
	}), "replay needs events in (Time, Key) order")
	rec := &recorder[A]{wm: stream.MinTime}
	var marks []stream.Time
	for i := 0; i < len(evs); {
		now := evs[i].Time
		rec.wm = now + 1
		for ; i < len(evs) && evs[i].Time == now; i++ {
			require.Falsef(t, i > 0 && evs[i-1].Time == now && evs[i-1].Key == evs[i].Key,
				"replay needs distinct identities: %s@%d twice", evs[i].Key, now)
			l.Process(evs[i], rec)
		}
		l.Advance(now+1, rec)
		marks = append(marks, now+1)
	}
	rec.wm = stream.MaxTime
	l.Advance(stream.MaxTime, rec)
	marks = append(marks, stream.MaxTime)
	return rec, marks
}

// expected is the reference answer for one event and the smallest watermark at
// which it is final.
type expected[V any] struct {
	ev      stream.Event[lookahead.Match[V]]
	finalAt stream.Time
}

// bruteForce answers every event by scanning all later events within the
// horizon: O(n * events per horizon). evs must be in (Time, Key) order. The
// answers of each key come out in time order.
func bruteForce[V any](evs []stream.Event[V], h stream.Time, pred func(e, f V) bool) map[string][]expected[V] {
	out := make(map[string][]expected[V])
	for i, e := range evs {
		var m lookahead.Match[V]
		finalAt := e.Time.Add(h).Add(1) // none: final once the watermark is above t + H
		for _, f := range evs[i+1:] {
			if f.Time > e.Time.Add(h) {
				break
			}
			if f.Key == e.Key && f.Time > e.Time && pred(e.Value, f.Value) {
				m = lookahead.Match[V]{Found: true, Time: f.Time, Value: f.Value}
				finalAt = f.Time + 1 // found: final once the watermark is above f's time
				break
			}
		}
		out[e.Key] = append(out[e.Key], expected[V]{ev: stream.Event[lookahead.Match[V]]{Key: e.Key, Time: e.Time, Value: m}, finalAt: finalAt})
	}
	return out
}

// normal drops the Time and Value of an answer that found nothing: they are
// meaningless then.
func normal[V any](m lookahead.Match[V]) lookahead.Match[V] {
	if !m.Found {
		return lookahead.Match[V]{}
	}
	return m
}

// firstMarkAtLeast returns the first step watermark >= wm.
func firstMarkAtLeast(marks []stream.Time, wm stream.Time) stream.Time {
	i, _ := slices.BinarySearch(marks, wm)
	if i == len(marks) {
		return stream.MaxTime
	}
	return marks[i]
}

// checkAnswers compares the emissions with the reference, key by key: one answer
// per event, in time order, equal to the reference, each emitted no earlier than
// it is final. With marks (the watermarks of the replay's steps), it also checks
// that each answer is emitted no later than the first step at which it and
// every earlier answer of its key are final.
func checkAnswers[V comparable](t *testing.T, want map[string][]expected[V], rec *recorder[lookahead.Match[V]], marks []stream.Time) {
	t.Helper()
	got := make(map[string][]emission[lookahead.Match[V]])
	for _, em := range rec.got {
		got[em.ev.Key] = append(got[em.ev.Key], em)
	}
	for key := range got {
		assert.Containsf(t, want, key, "answers for key %q, which had no events", key)
	}
	for key, ws := range want {
		gs := got[key]
		if !assert.Lenf(t, gs, len(ws), "key %q: exactly one answer per event", key) {
			continue
		}
		ready := stream.MinTime // the answers of a key come out in time order
		for i, w := range ws {
			g := gs[i]
			ready = max(ready, w.finalAt)
			var problem string
			switch {
			case g.ev.Time != w.ev.Time:
				problem = fmt.Sprintf("answer #%d is for t=%d, want t=%d (answers in time order)", i, g.ev.Time, w.ev.Time)
			case normal(g.ev.Value) != w.ev.Value:
				problem = fmt.Sprintf("answer for t=%d is %+v, want %+v", w.ev.Time, g.ev.Value, w.ev.Value)
			case g.wm < w.finalAt:
				problem = fmt.Sprintf("answer for t=%d emitted at watermark %d, before it is final (%d)", w.ev.Time, g.wm, w.finalAt)
			case marks != nil && g.wm != firstMarkAtLeast(marks, ready):
				problem = fmt.Sprintf("answer for t=%d emitted at watermark %d, want %d: as soon as it and every earlier answer of its key are final",
					w.ev.Time, g.wm, firstMarkAtLeast(marks, ready))
			}
			if problem != "" {
				assert.Failf(t, "wrong answer", "key %q: %s", key, problem)
				break // one mismatch per key is enough to read
			}
		}
	}
}

// ev is shorthand for an int event.
func ev(key string, t stream.Time, v int) stream.Event[int] {
	return stream.Event[int]{Key: key, Time: t, Value: v}
}

func TestConstructorsRejectBadHorizons(t *testing.T) {
	for _, k := range kinds(farApart) {
		for _, h := range []time.Duration{0, -time.Second, time.Millisecond / 2, 1500 * time.Microsecond} {
			t.Run(fmt.Sprintf("%s/%v", k.name, h), func(t *testing.T) {
				l, err := k.make(h)
				assert.ErrorIs(t, err, lookahead.ErrInvalidHorizon, "horizon %v must be rejected", h)
				assert.Nil(t, l, "no lookahead with an invalid horizon")
			})
		}
		t.Run(k.name+"/valid", func(t *testing.T) {
			l, err := k.make(20 * time.Second)
			require.NoError(t, err, "20s is a valid horizon")
			assert.Equal(t, stream.Time(20_000), l.Horizon(), "Horizon is in milliseconds")
		})
	}
	t.Run("nil predicate", func(t *testing.T) {
		l, err := lookahead.New[int](time.Second, nil)
		assert.ErrorIs(t, err, lookahead.ErrInvalidPredicate, "a nil predicate must be rejected")
		assert.NotErrorIs(t, err, lookahead.ErrInvalidHorizon, "the horizon is valid")
		assert.Nil(t, l, "no lookahead without a predicate")
	})
}

func TestMatchDelay(t *testing.T) {
	const horizon = stream.Time(20_000)
	tests := []struct {
		name string
		m    lookahead.Match[float64]
		t    stream.Time
		want stream.Time
	}{
		{"found", lookahead.Match[float64]{Found: true, Time: 1_960, Value: 2}, 1_000, 960},
		{"found at the horizon", lookahead.Match[float64]{Found: true, Time: 21_000, Value: 2}, 1_000, horizon},
		{"found 1ms later", lookahead.Match[float64]{Found: true, Time: -4, Value: 2}, -5, 1},
		{"none", lookahead.Match[float64]{}, 1_000, horizon},
		{"none ignores a stale time", lookahead.Match[float64]{Time: 1_500}, 1_000, horizon},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.m.Delay(tc.t, horizon), "Delay(%d, %d) of %+v", tc.t, horizon, tc.m)
		})
	}
}

// answer is a hand-written expectation: the event key@t is answered by the
// event of the same key at time f, or by nothing when f is none.
type answer struct {
	key string
	t   stream.Time
	f   stream.Time
}

// none marks a hand-written answer that found nothing.
const none = stream.MinTime

func TestEdgeCases(t *testing.T) {
	const h = 10 // ms
	tests := []struct {
		name          string
		evs           []stream.Event[int]
		higher, lower []answer
	}{
		{name: "empty input"},
		{
			name:   "single event",
			evs:    []stream.Event[int]{ev("A", 0, 5)},
			higher: []answer{{"A", 0, none}},
			lower:  []answer{{"A", 0, none}},
		},
		{
			name:   "equal values do not answer",
			evs:    []stream.Event[int]{ev("A", 0, 5), ev("A", 1, 5), ev("A", 10, 5)},
			higher: []answer{{"A", 0, none}, {"A", 1, none}, {"A", 10, none}},
			lower:  []answer{{"A", 0, none}, {"A", 1, none}, {"A", 10, none}},
		},
		{
			name:   "equal values then a strict one",
			evs:    []stream.Event[int]{ev("A", 0, 5), ev("A", 1, 5), ev("A", 2, 6), ev("A", 3, 4)},
			higher: []answer{{"A", 0, 2}, {"A", 1, 2}, {"A", 2, none}, {"A", 3, none}},
			lower:  []answer{{"A", 0, 3}, {"A", 1, 3}, {"A", 2, 3}, {"A", 3, none}},
		},
		{
			name:   "at t+H is included",
			evs:    []stream.Event[int]{ev("A", 0, 5), ev("A", h, 6)},
			higher: []answer{{"A", 0, h}, {"A", h, none}},
			lower:  []answer{{"A", 0, none}, {"A", h, none}},
		},
		{
			name:   "at t+H+1 is excluded",
			evs:    []stream.Event[int]{ev("A", 0, 5), ev("A", h+1, 6)},
			higher: []answer{{"A", 0, none}, {"A", h + 1, none}},
			lower:  []answer{{"A", 0, none}, {"A", h + 1, none}},
		},
		{
			name:   "the earliest match, not the best",
			evs:    []stream.Event[int]{ev("A", 0, 5), ev("A", 3, 7), ev("A", 4, 9), ev("A", 5, 1), ev("A", 6, 0)},
			higher: []answer{{"A", 0, 3}, {"A", 3, 4}, {"A", 4, none}, {"A", 5, none}, {"A", 6, none}},
			lower:  []answer{{"A", 0, 5}, {"A", 3, 5}, {"A", 4, 5}, {"A", 5, 6}, {"A", 6, none}},
		},
		{
			name:   "answers never cross keys",
			evs:    []stream.Event[int]{ev("A", 0, 5), ev("B", 1, 9), ev("B", 2, 1), ev("A", 3, 4)},
			higher: []answer{{"A", 0, none}, {"A", 3, none}, {"B", 1, none}, {"B", 2, none}},
			lower:  []answer{{"A", 0, 3}, {"A", 3, none}, {"B", 1, 2}, {"B", 2, none}},
		},
		{
			name: "equal timestamps across keys",
			evs: []stream.Event[int]{ev("A", 0, 5), ev("B", 0, 5), ev("A", 4, 6), ev("B", 4, 4),
				ev("A", 8, 4), ev("B", 8, 6)},
			higher: []answer{{"A", 0, 4}, {"A", 4, none}, {"A", 8, none}, {"B", 0, 8}, {"B", 4, 8}, {"B", 8, none}},
			lower:  []answer{{"A", 0, 8}, {"A", 4, 8}, {"A", 8, none}, {"B", 0, 4}, {"B", 4, none}, {"B", 8, none}},
		},
		{
			name: "negative times",
			evs:  []stream.Event[int]{ev("A", -25, 1), ev("A", -15, 2), ev("A", -4, 3), ev("A", 5, 0)},
			higher: []answer{{"A", -25, -15}, {"A", -15, none}, {"A", -4, none},
				{"A", 5, none}},
			lower: []answer{{"A", -25, none}, {"A", -15, none}, {"A", -4, 5}, {"A", 5, none}},
		},
	}
	for _, tc := range tests {
		for _, k := range kinds(farApart) {
			t.Run(tc.name+"/"+k.name, func(t *testing.T) {
				want := bruteForce(tc.evs, h, k.pred)
				switch k.name { // the custom kind is checked against the reference only
				case "higher":
					require.Equal(t, fromHand(t, tc.evs, tc.higher, h), want, "the brute-force reference agrees with the hand-written answers")
				case "lower":
					require.Equal(t, fromHand(t, tc.evs, tc.lower, h), want, "the brute-force reference agrees with the hand-written answers")
				}
				l, err := k.make(h * time.Millisecond)
				require.NoError(t, err, "constructor")
				rec, marks := replay(t, l, tc.evs)
				assert.Len(t, rec.got, len(tc.evs), "one answer per event")
				checkAnswers(t, want, rec, marks)
			})
		}
		t.Run(tc.name+"/both", func(t *testing.T) {
			l, err := lookahead.NewHigherLower[int](h * time.Millisecond)
			require.NoError(t, err, "constructor")
			rec, marks := replay(t, l, tc.evs)
			assert.Len(t, rec.got, len(tc.evs), "one pair of answers per event")
			checkBoth(t, tc.evs, h, rec, marks)
		})
	}
}

// fromHand turns hand-written answers into the reference's form.
func fromHand(t *testing.T, evs []stream.Event[int], hand []answer, h stream.Time) map[string][]expected[int] {
	t.Helper()
	out := make(map[string][]expected[int])
	for _, a := range hand {
		x := expected[int]{ev: stream.Event[lookahead.Match[int]]{Key: a.key, Time: a.t}, finalAt: a.t + h + 1}
		if a.f != none {
			i := slices.IndexFunc(evs, func(e stream.Event[int]) bool { return e.Key == a.key && e.Time == a.f })
			require.GreaterOrEqualf(t, i, 0, "hand-written answer %+v names no event", a)
			x.ev.Value = lookahead.Match[int]{Found: true, Time: a.f, Value: evs[i].Value}
			x.finalAt = a.f + 1
		}
		out[a.key] = append(out[a.key], x)
	}
	return out
}

func TestNoneIsEmittedOnlyOnceFinal(t *testing.T) {
	const h = 10
	for _, k := range kinds(farApart) {
		t.Run(k.name, func(t *testing.T) {
			l, err := k.make(h * time.Millisecond)
			require.NoError(t, err, "constructor")
			rec := &recorder[lookahead.Match[int]]{}
			l.Process(ev("A", 100, 5), rec)
			for _, wm := range []stream.Time{101, 105, 100 + h} {
				l.Advance(wm, rec)
				assert.Emptyf(t, rec.got, "watermark %d is not above t+H = %d: the none answer is not final", wm, 100+h)
			}
			l.Advance(100+h+1, rec)
			require.Len(t, rec.got, 1, "watermark t+H+1 makes the none answer final")
			assert.Equal(t, stream.Time(100), rec.got[0].ev.Time, "the answer carries its event's time")
			assert.False(t, rec.got[0].ev.Value.Found, "nothing answered the only event")
			l.Advance(stream.MaxTime, rec)
			assert.Len(t, rec.got, 1, "an answer is emitted once")
		})
	}
}

func TestFoundIsEmittedWhenItsEventIsProcessed(t *testing.T) {
	for _, k := range kinds(farApart) {
		t.Run(k.name, func(t *testing.T) {
			l, err := k.make(time.Second)
			require.NoError(t, err, "constructor")
			// 100 answers 0 for every kind: 5 -> 9 is higher and 4 apart; 5 -> 1 lower.
			v := 9
			if k.name == "lower" {
				v = 1
			}
			rec := &recorder[lookahead.Match[int]]{}
			l.Process(ev("A", 0, 5), rec)
			l.Advance(1, rec)
			require.Empty(t, rec.got, "nothing is final before the answering event")
			l.Process(ev("A", 100, v), rec)
			require.Len(t, rec.got, 1, "processing the answering event makes the answer final")
			assert.Equal(t, lookahead.Match[int]{Found: true, Time: 100, Value: v}, rec.got[0].ev.Value, "the answer")
			assert.Equal(t, stream.Time(0), rec.got[0].ev.Time, "the answer carries its event's time")
		})
	}
}

func TestAnswersOfAKeyComeOutInTimeOrder(t *testing.T) {
	// Higher, H = 10: 1@3 is answered by 4@4 at once, but 5@0 is still open (nothing
	// beats it), so 1@3 waits until 5@0 expires at watermark 11.
	l, err := lookahead.NewHigher[int](10 * time.Millisecond)
	require.NoError(t, err, "constructor")
	rec := &recorder[lookahead.Match[int]]{}
	l.Process(ev("A", 0, 5), rec)
	l.Process(ev("A", 3, 1), rec)
	l.Process(ev("A", 4, 4), rec)
	l.Advance(5, rec)
	l.Advance(10, rec)
	assert.Empty(t, rec.got, "1@3 is answered but must wait for 5@0")
	l.Advance(11, rec)
	require.Len(t, rec.got, 2, "5@0 expires and releases 1@3")
	assert.Equal(t, stream.Time(0), rec.got[0].ev.Time, "5@0 first")
	assert.False(t, rec.got[0].ev.Value.Found, "nothing beats 5@0")
	assert.Equal(t, stream.Time(3), rec.got[1].ev.Time, "then 1@3")
	assert.Equal(t, lookahead.Match[int]{Found: true, Time: 4, Value: 4}, rec.got[1].ev.Value, "4@4 answers 1@3")
	l.Advance(14, rec)
	require.Len(t, rec.got, 2, "4@4 is not final at watermark 14 = its t + H")
	l.Advance(15, rec)
	require.Len(t, rec.got, 3, "4@4 expires at watermark 15")
	assert.Equal(t, stream.Time(4), rec.got[2].ev.Time, "4@4 last")
}

func TestWatermarkJumpResolvesManyAnswers(t *testing.T) {
	const (
		h      = 50
		keys   = 40
		perKey = 30
	)
	for _, k := range kinds(farApart) {
		t.Run(k.name, func(t *testing.T) {
			l, err := k.make(h * time.Millisecond)
			require.NoError(t, err, "constructor")
			// Every key repeats one value: nothing answers anything.
			var evs []stream.Event[int]
			for j := range perKey {
				for i := range keys {
					evs = append(evs, ev(fmt.Sprintf("k%02d", keys-1-i), stream.Time(j), 7))
				}
			}
			rec := &recorder[lookahead.Match[int]]{}
			for _, e := range evs {
				l.Process(e, rec)
			}
			l.Advance(h, rec)
			require.Empty(t, rec.got, "no horizon has passed at watermark H")
			// t + H < wm for t < perKey-1: all but the last event of each key.
			l.Advance(perKey-1+h, rec)
			require.Len(t, rec.got, keys*(perKey-1), "one jump answers every expired event")
			for i, em := range rec.got {
				key, tm := fmt.Sprintf("k%02d", i/(perKey-1)), stream.Time(i%(perKey-1))
				if !assert.Equalf(t, key, em.ev.Key, "emission #%d: key by key in key order", i) ||
					!assert.Equalf(t, tm, em.ev.Time, "emission #%d: in time order within a key", i) ||
					!assert.Falsef(t, em.ev.Value.Found, "emission #%d: none", i) {
					break
				}
			}
			rec.got = rec.got[:0]
			l.Advance(stream.MaxTime, rec)
			require.Len(t, rec.got, keys, "end of input answers the last event of every key")
			for i, em := range rec.got {
				assert.Equalf(t, fmt.Sprintf("k%02d", i), em.ev.Key, "end of input: key order (#%d)", i)
				assert.Equalf(t, stream.Time(perKey-1), em.ev.Time, "end of input: the last event (#%d)", i)
			}
		})
	}
}

func TestHorizonEndingPastMaxTimeEndsWithInput(t *testing.T) {
	// t + H saturates at MaxTime: only end of input makes the none answer final.
	const h = 10
	for _, k := range kinds(farApart) {
		t.Run(k.name, func(t *testing.T) {
			l, err := k.make(h * time.Millisecond)
			require.NoError(t, err, "constructor")
			rec := &recorder[lookahead.Match[int]]{}
			l.Process(ev("A", stream.MaxTime-h-1, 5), rec) // its horizon ends at MaxTime - 1
			l.Process(ev("A", stream.MaxTime-3, 5), rec)   // its horizon would end past MaxTime
			l.Advance(stream.MaxTime-1, rec)
			require.Empty(t, rec.got, "no horizon has passed at watermark MaxTime - 1")
			l.Advance(stream.MaxTime, rec)
			require.Len(t, rec.got, 2, "end of input answers both events")
			assert.Equal(t, stream.Time(stream.MaxTime-3), rec.got[1].ev.Time, "the later event last")
			assert.False(t, rec.got[1].ev.Value.Found, "equal values answer nothing")
		})
	}
}

func TestEndOfInputFlushesEverything(t *testing.T) {
	for _, k := range kinds(farApart) {
		t.Run(k.name, func(t *testing.T) {
			l, err := k.make(time.Hour)
			require.NoError(t, err, "constructor")
			rec := &recorder[lookahead.Match[int]]{}
			evs := []stream.Event[int]{ev("B", 1, 3), ev("A", 2, 3), ev("B", 3, 3), ev("A", 4, 3)}
			for _, e := range evs {
				l.Process(e, rec)
			}
			l.Advance(5, rec)
			require.Empty(t, rec.got, "an hour's horizon keeps every answer open")
			l.Advance(stream.MaxTime, rec)
			want := []stream.Time{2, 4, 1, 3} // key A then key B, each in time order
			require.Len(t, rec.got, len(want), "end of input answers every event")
			for i, em := range rec.got {
				assert.Equalf(t, want[i], em.ev.Time, "flush #%d in (key, time) order", i)
				assert.Falsef(t, em.ev.Value.Found, "flush #%d: equal values answer nothing", i)
			}
			l.Advance(stream.MaxTime, rec)
			assert.Len(t, rec.got, len(want), "a second end of input emits nothing more")
		})
	}
}

func TestKeyIsReusableAfterItsStateIsDropped(t *testing.T) {
	l, err := lookahead.NewLower[int](10 * time.Millisecond)
	require.NoError(t, err, "constructor")
	rec := &recorder[lookahead.Match[int]]{}
	l.Process(ev("A", 0, 5), rec)
	l.Advance(11, rec) // answers 5@0 with none
	l.Advance(12, rec) // a key with nothing pending may be forgotten here
	require.Len(t, rec.got, 1, "5@0 expired")
	l.Process(ev("A", 100, 5), rec)
	l.Process(ev("A", 105, 4), rec)
	require.Len(t, rec.got, 2, "4@105 answers 5@100 at once")
	assert.Equal(t, lookahead.Match[int]{Found: true, Time: 105, Value: 4}, rec.got[1].ev.Value, "the new state of key A works")
}

// randomStream returns a (Time, Key)-ordered stream over nKeys keys whose gaps
// cluster around the horizon h (h-1, h, h+1), with small gaps, ties across keys,
// occasional long silences, and values drawn from a small range (many ties).
func randomStream(r *rand.Rand, nKeys, n int, h stream.Time, values int) []stream.Event[int] {
	last := make([]stream.Time, nKeys)
	for i := range last {
		last[i] = stream.Time(r.IntN(3)) - 1_000
	}
	evs := make([]stream.Event[int], 0, n)
	for range n {
		k := r.IntN(nKeys)
		var gap stream.Time
		switch r.IntN(10) {
		case 0:
			gap = h - 1
		case 1:
			gap = h
		case 2:
			gap = h + 1
		case 3:
			gap = 10*h + stream.Time(r.IntN(int(5*h)))
		default:
			gap = 1 + stream.Time(r.IntN(int(h)))
		}
		last[k] += max(gap, 1)
		evs = append(evs, ev(fmt.Sprintf("key%d", k), last[k], r.IntN(values)-values/2))
	}
	sortEvents(evs)
	return evs
}

func TestRandomStreamsAgainstBruteForce(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 42, 20250508} {
		r := rand.New(rand.NewPCG(seed, seed^0x5eed))
		h := []stream.Time{1, 2, 5, 10, 37}[r.IntN(5)]
		nKeys := 1 + r.IntN(5)
		values := 2 + r.IntN(8)
		evs := randomStream(r, nKeys, 3_000, h, values)
		for _, k := range kinds(farApart) {
			t.Run(fmt.Sprintf("seed=%d/%s", seed, k.name), func(t *testing.T) {
				t.Logf("seed %d: H=%dms, %d keys, %d values, %d events", seed, h, nKeys, values, len(evs))
				l, err := k.make(time.Duration(h) * time.Millisecond)
				require.NoError(t, err, "constructor")
				rec, marks := replay(t, l, evs)
				checkAnswers(t, bruteForce(evs, h, k.pred), rec, marks)
			})
		}
		t.Run(fmt.Sprintf("seed=%d/both", seed), func(t *testing.T) {
			t.Logf("seed %d: H=%dms, %d keys, %d values, %d events", seed, h, nKeys, values, len(evs))
			l, err := lookahead.NewHigherLower[int](time.Duration(h) * time.Millisecond)
			require.NoError(t, err, "constructor")
			rec, marks := replay(t, l, evs)
			checkBoth(t, evs, h, rec, marks)
		})
	}
}

func TestRandomPriceWalkAgainstBruteForce(t *testing.T) {
	const h = 20_000 // the pipeline's horizon, 20 s
	for _, seed := range []uint64{7, 99} {
		r := rand.New(rand.NewPCG(seed, seed))
		keys := []string{"BTCUSDT", "ETHUSDT"}
		cents := []int64{9_919_048, 9_919_048}
		last := []stream.Time{1_746_677_558_352, 1_746_677_558_352}
		var evs []stream.Event[float64]
		for range 4_000 {
			k := r.IntN(len(keys))
			cents[k] += int64(r.IntN(21)) - 10
			switch r.IntN(40) {
			case 0:
				last[k] += h + stream.Time(r.IntN(3)) - 1 // h-1, h or h+1
			default:
				last[k] += 50 + stream.Time(r.IntN(101))
			}
			evs = append(evs, stream.Event[float64]{Key: keys[k], Time: last[k], Value: float64(cents[k]) / 100})
		}
		sortEvents(evs)
		for _, k := range kinds[float64](nil) {
			t.Run(fmt.Sprintf("seed=%d/%s", seed, k.name), func(t *testing.T) {
				t.Logf("seed %d: %d events", seed, len(evs))
				l, err := k.make(h * time.Millisecond)
				require.NoError(t, err, "constructor")
				rec, marks := replay(t, l, evs)
				checkAnswers(t, bruteForce(evs, h, k.pred), rec, marks)
			})
		}
		t.Run(fmt.Sprintf("seed=%d/both", seed), func(t *testing.T) {
			t.Logf("seed %d: %d events", seed, len(evs))
			l, err := lookahead.NewHigherLower[float64](h * time.Millisecond)
			require.NoError(t, err, "constructor")
			rec, marks := replay(t, l, evs)
			checkBoth(t, evs, h, rec, marks)
		})
	}
}

// driverRecorder records answers with the Driver's watermark at emission time.
type driverRecorder[A any] struct {
	d   *stream.Driver[int, A]
	got []emission[A]
}

func (r *driverRecorder[A]) Emit(e stream.Event[A]) {
	r.got = append(r.got, emission[A]{ev: e, wm: r.d.Watermark()})
}

func TestThroughDriverArrivalOrderDoesNotMatter(t *testing.T) {
	const (
		h        = 10
		lateness = 25 // ms
	)
	for _, seed := range []uint64{5, 6, 7} {
		r := rand.New(rand.NewPCG(seed, 0))
		evs := randomStream(r, 3, 1_500, h, 5)
		for _, k := range kinds(farApart) {
			t.Run(fmt.Sprintf("seed=%d/%s", seed, k.name), func(t *testing.T) {
				t.Logf("seed %d: %d events, lateness %dms", seed, len(evs), lateness)
				want := bruteForce(evs, h, k.pred)
				var first map[string][]emission[lookahead.Match[int]]
				for run := range 3 {
					arrival := streamtest.Shuffle(r, evs, lateness*time.Millisecond) // no event late
					l, err := k.make(h * time.Millisecond)
					require.NoError(t, err, "constructor")
					rec := &driverRecorder[lookahead.Match[int]]{}
					d, err := stream.NewDriver[int, lookahead.Match[int]](l, rec, stream.WithLateness(lateness*time.Millisecond))
					require.NoError(t, err, "driver")
					rec.d = d
					for _, e := range arrival {
						d.Push(0, e, time.Time{})
					}
					d.Finish()
					require.Equal(t, stream.Stats{Accepted: uint64(len(evs))}, d.Stats(), "run %d: nothing late or duplicate", run)
					checkAnswers(t, want, &recorder[lookahead.Match[int]]{got: rec.got}, nil)
					got := make(map[string][]emission[lookahead.Match[int]])
					for _, em := range rec.got {
						got[em.ev.Key] = append(got[em.ev.Key], em)
					}
					if run == 0 {
						first = got
						continue
					}
					for key := range first {
						a, b := first[key], got[key]
						assert.Truef(t, slices.EqualFunc(a, b, func(x, y emission[lookahead.Match[int]]) bool { return x.ev == y.ev }),
							"run %d key %q: the output does not depend on the arrival order", run, key)
					}
				}
			})
		}
	}
}

// TestLookaheadBounds: every lookahead reports its horizon as its reach ahead.
func TestLookaheadBounds(t *testing.T) {
	const h = 20 * time.Second
	want := stream.Bounds{Ahead: h}
	hi, err := lookahead.NewHigher[float64](h)
	require.NoError(t, err, "NewHigher")
	assert.Equal(t, want, hi.Bounds(), "Monotone")
	both, err := lookahead.NewHigherLower[float64](h)
	require.NoError(t, err, "NewHigherLower")
	assert.Equal(t, want, both.Bounds(), "HigherLower")
	any, err := lookahead.New(h, func(e, f float64) bool { return f != e })
	require.NoError(t, err, "New")
	assert.Equal(t, want, any.Bounds(), "Lookahead")
}

// TestErrorsWrapTheirSentinel: the constructors' errors wrap ErrInvalidHorizon or
// ErrInvalidPredicate, for errors.Is, and say what is wrong.
func TestErrorsWrapTheirSentinel(t *testing.T) {
	for _, k := range kinds(farApart) {
		_, err := k.make(1500 * time.Microsecond)
		assert.ErrorIsf(t, err, lookahead.ErrInvalidHorizon, "%s: errors.Is(err, ErrInvalidHorizon)", k.name)
		assert.ErrorIsf(t, err, stream.ErrInvalidOption, "%s: errors.Is(err, stream.ErrInvalidOption)", k.name)
		assert.NotErrorIsf(t, err, lookahead.ErrInvalidPredicate, "%s: the predicate is not the problem", k.name)
		assert.EqualErrorf(t, err, "lookahead: invalid horizon: 1.5ms is not a positive whole number of milliseconds", "%s: the message", k.name)
	}
	_, err := lookahead.New[int](time.Second, nil)
	assert.ErrorIs(t, err, lookahead.ErrInvalidPredicate, "errors.Is(err, ErrInvalidPredicate)")
	assert.ErrorIs(t, err, stream.ErrInvalidOption, "errors.Is(err, stream.ErrInvalidOption)")
	assert.EqualError(t, err, "lookahead: invalid predicate: nil", "the message")
}
