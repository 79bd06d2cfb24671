package lookahead_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/lookahead"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/streamtest"
)

// checkBoth checks HigherLower's emissions against the brute-force reference:
// each pair's Higher and Lower are the reference's higher and lower answers,
// and a pair is final once both of its answers are. Otherwise as
// checkAnswers: one pair per event, in time order per key, each emitted no
// earlier than it is final and, with marks, no later than the first step at
// which it and every earlier pair of its key are final.
func checkBoth[V cmp.Ordered](t *testing.T, evs []stream.Event[V], h stream.Time, rec *recorder[lookahead.Both[V]], marks []stream.Time) {
	t.Helper()
	wantH := bruteForce(evs, h, func(e, f V) bool { return f > e })
	wantL := bruteForce(evs, h, func(e, f V) bool { return f < e })
	for key, hs := range wantH {
		ls := wantL[key]
		for i := range hs {
			hs[i].finalAt = max(hs[i].finalAt, ls[i].finalAt)
			ls[i].finalAt = hs[i].finalAt
		}
	}
	recH, recL := splitBoth(rec)
	checkAnswers(t, wantH, recH, marks)
	checkAnswers(t, wantL, recL, marks)
}

// splitBoth returns the Higher and the Lower halves of rec's emissions.
func splitBoth[V any](rec *recorder[lookahead.Both[V]]) (higher, lower *recorder[lookahead.Match[V]]) {
	higher, lower = &recorder[lookahead.Match[V]]{}, &recorder[lookahead.Match[V]]{}
	for _, em := range rec.got {
		e := em.ev
		higher.got = append(higher.got, emission[lookahead.Match[V]]{
			ev: stream.Event[lookahead.Match[V]]{Key: e.Key, Time: e.Time, Value: e.Value.Higher}, wm: em.wm})
		lower.got = append(lower.got, emission[lookahead.Match[V]]{
			ev: stream.Event[lookahead.Match[V]]{Key: e.Key, Time: e.Time, Value: e.Value.Lower}, wm: em.wm})
	}
	return higher, lower
}

func TestHigherLowerConstructor(t *testing.T) {
	for _, h := range []time.Duration{0, -time.Second, time.Millisecond / 2, 1500 * time.Microsecond} {
		l, err := lookahead.NewHigherLower[float64](h)
		assert.ErrorIsf(t, err, lookahead.ErrInvalidHorizon, "horizon %v must be rejected", h)
		assert.Nilf(t, l, "no lookahead with the invalid horizon %v", h)
	}
	l, err := lookahead.NewHigherLower[float64](20 * time.Second)
	require.NoError(t, err, "20s is a valid horizon")
	assert.Equal(t, stream.Time(20_000), l.Horizon(), "Horizon is in milliseconds")
}

func TestHigherLowerWaitsForBothAnswers(t *testing.T) {
	const h = 10 // ms
	l, err := lookahead.NewHigherLower[int](h * time.Millisecond)
	require.NoError(t, err, "constructor")
	rec := &recorder[lookahead.Both[int]]{}
	l.Process(ev("A", 0, 5), rec)
	l.Process(ev("A", 1, 6), rec) // answers 5@0 higher
	l.Advance(2, rec)
	l.Advance(h, rec)
	assert.Empty(t, rec.got, "5@0's higher answer is final, its lower one not until watermark H+1")
	l.Process(ev("A", h, 4), rec) // exactly at 0+H: answers 5@0 and 6@1 lower
	require.Len(t, rec.got, 1, "4@H completes 5@0's pair, not 6@1's")
	assert.Equal(t, stream.Time(0), rec.got[0].ev.Time, "5@0")
	assert.Equal(t, lookahead.Both[int]{
		Higher: lookahead.Match[int]{Found: true, Time: 1, Value: 6},
		Lower:  lookahead.Match[int]{Found: true, Time: h, Value: 4},
	}, rec.got[0].ev.Value, "5@0: higher 6@1, lower 4@H")
	l.Advance(h+1, rec)
	assert.Len(t, rec.got, 1, "6@1's higher answer is open until watermark 1+H+1")
	l.Advance(h+2, rec)
	require.Len(t, rec.got, 2, "watermark 1+H+1 makes 6@1's pair final")
	assert.Equal(t, stream.Time(1), rec.got[1].ev.Time, "6@1")
	assert.Equal(t, lookahead.Both[int]{Lower: lookahead.Match[int]{Found: true, Time: h, Value: 4}},
		normalBoth(rec.got[1].ev.Value), "6@1: no higher, lower 4@H")
}

func TestHigherLowerPairIsFinalOnlyWhenBothAre(t *testing.T) {
	const h = 10 // ms
	l, err := lookahead.NewHigherLower[int](h * time.Millisecond)
	require.NoError(t, err, "constructor")
	rec := &recorder[lookahead.Both[int]]{}
	l.Process(ev("A", 0, 5), rec)
	l.Process(ev("A", 3, 6), rec) // answers 5@0 higher; 5@0's lower answer stays open
	for _, wm := range []stream.Time{4, 7, h} {
		l.Advance(wm, rec)
		assert.Emptyf(t, rec.got, "watermark %d: 5@0's lower answer is open until watermark H+1", wm)
	}
	l.Advance(h+1, rec)
	require.Len(t, rec.got, 1, "watermark H+1 makes 5@0's pair final, not 6@3's")
	assert.Equal(t, lookahead.Both[int]{Higher: lookahead.Match[int]{Found: true, Time: 3, Value: 6}},
		normalBoth(rec.got[0].ev.Value), "5@0: higher 6@3, no lower")
	l.Advance(3+h+1, rec)
	require.Len(t, rec.got, 2, "watermark 3+H+1 makes 6@3's pair final")
	assert.Equal(t, stream.Time(3), rec.got[1].ev.Time, "6@3")
	assert.Equal(t, lookahead.Both[int]{}, normalBoth(rec.got[1].ev.Value), "nothing answers 6@3")
	l.Advance(stream.MaxTime, rec)
	assert.Len(t, rec.got, 2, "a pair is emitted once")
}

// normalBoth applies normal to both answers.
func normalBoth[V any](b lookahead.Both[V]) lookahead.Both[V] {
	return lookahead.Both[V]{Higher: normal(b.Higher), Lower: normal(b.Lower)}
}

func TestHigherLowerWatermarkJumpGoesKeyByKey(t *testing.T) {
	const (
		h      = 50
		keys   = 40
		perKey = 30
	)
	l, err := lookahead.NewHigherLower[int](h * time.Millisecond)
	require.NoError(t, err, "constructor")
	// Every key repeats one value: nothing answers anything.
	rec := &recorder[lookahead.Both[int]]{}
	for j := range perKey {
		for i := range keys {
			l.Process(ev(fmt.Sprintf("k%02d", keys-1-i), stream.Time(j), 7), rec)
		}
	}
	l.Advance(h, rec)
	require.Empty(t, rec.got, "no horizon has passed at watermark H")
	l.Advance(perKey-1+h, rec)
	require.Len(t, rec.got, keys*(perKey-1), "one jump answers every expired event")
	for i, em := range rec.got {
		key, tm := fmt.Sprintf("k%02d", i/(perKey-1)), stream.Time(i%(perKey-1))
		if !assert.Equalf(t, key, em.ev.Key, "emission #%d: key by key in key order", i) ||
			!assert.Equalf(t, tm, em.ev.Time, "emission #%d: in time order within a key", i) ||
			!assert.Equalf(t, lookahead.Both[int]{}, normalBoth(em.ev.Value), "emission #%d: none and none", i) {
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
	l.Advance(stream.MaxTime, rec)
	assert.Len(t, rec.got, keys, "a second end of input emits nothing more")
}

func TestHigherLowerHorizonEndingPastMaxTimeEndsWithInput(t *testing.T) {
	// t + H saturates at MaxTime: only end of input makes the pair final.
	const h = 10
	l, err := lookahead.NewHigherLower[int](h * time.Millisecond)
	require.NoError(t, err, "constructor")
	rec := &recorder[lookahead.Both[int]]{}
	l.Process(ev("A", stream.MaxTime-h-1, 5), rec) // its horizon ends at MaxTime - 1
	l.Process(ev("A", stream.MaxTime-3, 6), rec)   // answers higher; its horizon would end past MaxTime
	l.Advance(stream.MaxTime-1, rec)
	require.Empty(t, rec.got, "no horizon has passed at watermark MaxTime - 1")
	l.Advance(stream.MaxTime, rec)
	require.Len(t, rec.got, 2, "end of input answers both events")
	assert.Equal(t, lookahead.Both[int]{Higher: lookahead.Match[int]{Found: true, Time: stream.MaxTime - 3, Value: 6}},
		normalBoth(rec.got[0].ev.Value), "the first event: higher, no lower")
	assert.Equal(t, lookahead.Both[int]{}, normalBoth(rec.got[1].ev.Value), "nothing answers the later event")
}

func TestHigherLowerKeyIsReusableAfterItsStateIsDropped(t *testing.T) {
	l, err := lookahead.NewHigherLower[int](10 * time.Millisecond)
	require.NoError(t, err, "constructor")
	rec := &recorder[lookahead.Both[int]]{}
	l.Process(ev("A", 0, 5), rec)
	l.Advance(11, rec) // answers 5@0 with none and none: key A has nothing left
	l.Advance(12, rec)
	require.Len(t, rec.got, 1, "5@0 expired")
	l.Process(ev("A", 100, 5), rec)
	l.Process(ev("A", 105, 4), rec)
	l.Process(ev("A", 107, 6), rec)
	require.Len(t, rec.got, 2, "4@105 and 6@107 answer 5@100")
	assert.Equal(t, lookahead.Both[int]{
		Higher: lookahead.Match[int]{Found: true, Time: 107, Value: 6},
		Lower:  lookahead.Match[int]{Found: true, Time: 105, Value: 4},
	}, rec.got[1].ev.Value, "the new state of key A works")
}

// TestLongHorizonsAgainstBruteForce keeps hundreds of events waiting per key,
// so that the buffers grow while they wrap around, over many keys.
func TestLongHorizonsAgainstBruteForce(t *testing.T) {
	for _, seed := range []uint64{11, 12} {
		r := rand.New(rand.NewPCG(seed, seed^0x10a9))
		const h = 1_000 // ms
		nKeys := []int{2, 60}[seed%2]
		var evs []stream.Event[int]
		last := make([]stream.Time, nKeys)
		for range 12_000 {
			k := r.IntN(nKeys)
			if r.IntN(500) == 0 {
				last[k] += h + stream.Time(r.IntN(3)) - 1 // h-1, h or h+1
			} else {
				last[k] += 1 + stream.Time(r.IntN(3))
			}
			// A slow drift, so that answers are often far away, or missing.
			evs = append(evs, ev(fmt.Sprintf("key%02d", k), last[k], int(last[k]/300)%7*10+r.IntN(8)))
		}
		sortEvents(evs)
		for _, k := range kinds(farApart) {
			t.Run(fmt.Sprintf("seed=%d/%s", seed, k.name), func(t *testing.T) {
				t.Logf("seed %d: H=%dms, %d keys, %d events", seed, h, nKeys, len(evs))
				l, err := k.make(h * time.Millisecond)
				require.NoError(t, err, "constructor")
				rec, marks := replay(t, l, evs)
				checkAnswers(t, bruteForce(evs, h, k.pred), rec, marks)
			})
		}
		t.Run(fmt.Sprintf("seed=%d/both", seed), func(t *testing.T) {
			t.Logf("seed %d: H=%dms, %d keys, %d events", seed, h, nKeys, len(evs))
			l, err := lookahead.NewHigherLower[int](h * time.Millisecond)
			require.NoError(t, err, "constructor")
			rec, marks := replay(t, l, evs)
			checkBoth(t, evs, h, rec, marks)
		})
	}
}

func TestHigherLowerThroughDriverArrivalOrderDoesNotMatter(t *testing.T) {
	const (
		h        = 10
		lateness = 25 // ms
	)
	for _, seed := range []uint64{5, 6, 7} {
		r := rand.New(rand.NewPCG(seed, 1))
		evs := randomStream(r, 3, 1_500, h, 5)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("seed %d: %d events, lateness %dms", seed, len(evs), lateness)
			var first map[string][]stream.Event[lookahead.Both[int]]
			for run := range 3 {
				arrival := streamtest.Shuffle(r, evs, lateness*time.Millisecond) // no event late
				l, err := lookahead.NewHigherLower[int](h * time.Millisecond)
				require.NoError(t, err, "constructor")
				rec := &driverRecorder[lookahead.Both[int]]{}
				d, err := stream.NewDriver[int, lookahead.Both[int]](l, rec, stream.WithLateness(lateness*time.Millisecond))
				require.NoError(t, err, "driver")
				rec.d = d
				for _, e := range arrival {
					d.Push(0, e, time.Time{})
				}
				d.Finish()
				require.Equal(t, stream.Stats{Accepted: uint64(len(evs))}, d.Stats(), "run %d: nothing late or duplicate", run)
				checkBoth(t, evs, h, &recorder[lookahead.Both[int]]{got: rec.got}, nil)
				// Per key: how keys interleave depends on when the watermark moves.
				got := make(map[string][]stream.Event[lookahead.Both[int]])
				for _, em := range rec.got {
					got[em.ev.Key] = append(got[em.ev.Key], em.ev)
				}
				if run == 0 {
					first = got
					continue
				}
				assert.Equalf(t, first, got, "run %d: each key's output does not depend on the arrival order", run)
			}
		})
	}
}
