package window_test

import (
	"cmp"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
)

// hopEmission is one emitted window result, with the watermark in force when
// it was emitted and the call that emitted it.
type hopEmission[R any] struct {
	ev      stream.Event[window.Result[R]]
	wm      stream.Time
	call    int
	advance bool // emitted by Advance (not by Process)
}

// hopRecorder is an Emitter that keeps every result with the context the
// driving test sets before each call.
type hopRecorder[R any] struct {
	wm      stream.Time
	call    int
	advance bool
	got     []hopEmission[R]
}

func (r *hopRecorder[R]) Emit(e stream.Event[window.Result[R]]) {
	r.got = append(r.got, hopEmission[R]{ev: e, wm: r.wm, call: r.call, advance: r.advance})
}

func (r *hopRecorder[R]) process(h *window.Hopping[float64, R], e stream.Event[float64]) {
	r.call++
	r.advance = false
	h.Process(e, r)
}

func (r *hopRecorder[R]) advanceTo(h *window.Hopping[float64, R], wm stream.Time) {
	r.call++
	r.advance, r.wm = true, wm
	h.Advance(wm, r)
}

// hopSort puts events in (Time, Key) order, the Sequencer's release order.
func hopSort(evs []stream.Event[float64]) {
	slices.SortFunc(evs, func(a, b stream.Event[float64]) int {
		if c := cmp.Compare(a.Time, b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// hopReplay drives h as a Sequencer without lateness would: the events of each
// time, then Advance(time + 1), and Advance(MaxTime) at the end. While the events
// of time T are processed the watermark in force is T + 1. It returns the
// emissions and the watermarks of the successive steps.
func hopReplay[R any](t *testing.T, h *window.Hopping[float64, R], evs []stream.Event[float64]) (*hopRecorder[R], []stream.Time) {
	t.Helper()
	require.True(t, slices.IsSortedFunc(evs, func(a, b stream.Event[float64]) int {
		if a.Before(&b) {
			return -1
		}
		if b.Before(&a) {
			return 1
		}
		return 0
	}), "hopReplay needs events in (Time, Key) order")
	rec := &hopRecorder[R]{}
	var marks []stream.Time
	for i := 0; i < len(evs); {
		now := evs[i].Time
		rec.wm = now + 1
		for ; i < len(evs) && evs[i].Time == now; i++ {
			rec.process(h, evs[i])
		}
		rec.advanceTo(h, now+1)
		marks = append(marks, now+1)
	}
	rec.advanceTo(h, stream.MaxTime)
	marks = append(marks, stream.MaxTime)
	return rec, marks
}

// hopWindow is a reference window: its key, start and the values it holds in
// time order.
type hopWindow struct {
	key   string
	start stream.Time
	vals  []float64
}

// hopBrute assigns every event to every window [s, s+size) that holds it, s a
// multiple of hop, by scanning the multiples of hop below the event's time, and
// returns the non-empty windows in (key, start) order.
func hopBrute(evs []stream.Event[float64], size, hop stream.Time) []hopWindow {
	type id struct {
		key   string
		start stream.Time
	}
	byID := make(map[id]*hopWindow)
	for _, e := range evs {
		// The largest multiple of hop at or below e.Time, computed without %.
		s := hop * (e.Time / hop)
		if s > e.Time {
			s -= hop
		}
		for ; s+size > e.Time; s -= hop {
			w, ok := byID[id{e.Key, s}]
			if !ok {
				w = &hopWindow{key: e.Key, start: s}
				byID[id{e.Key, s}] = w
			}
			w.vals = append(w.vals, e.Value)
		}
	}
	out := make([]hopWindow, 0, len(byID))
	for _, w := range byID {
		out = append(out, *w)
	}
	slices.SortFunc(out, func(a, b hopWindow) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return cmp.Compare(a.start, b.start)
	})
	return out
}

// hopMarkAtLeast returns the first step watermark >= wm.
func hopMarkAtLeast(marks []stream.Time, wm stream.Time) stream.Time {
	i, _ := slices.BinarySearch(marks, wm)
	if i == len(marks) {
		return stream.MaxTime
	}
	return marks[i]
}

// checkHopping compares the emissions with the reference windows: each
// non-empty window exactly once, with its Start, End, Count, event time End-1
// and a value that check accepts ("" means accepted); per key in End order;
// each Advance's output in (End, Key) order; and each window emitted when
// the watermark first reaches its End, not before.
func checkHopping[R any](t *testing.T, want []hopWindow, size stream.Time, rec *hopRecorder[R], marks []stream.Time, check func(vals []float64, got R) string) {
	t.Helper()
	got := make(map[string][]hopEmission[R])
	for _, em := range rec.got {
		got[em.ev.Key] = append(got[em.ev.Key], em)
	}
	wantByKey := make(map[string][]hopWindow)
	for _, w := range want {
		wantByKey[w.key] = append(wantByKey[w.key], w)
	}
	for key := range got {
		assert.Containsf(t, wantByKey, key, "results for key %q, which had no events", key)
	}
	for key, ws := range wantByKey {
		gs := got[key]
		if !assert.Lenf(t, gs, len(ws), "key %q: one result per non-empty window", key) {
			continue
		}
		for i, w := range ws {
			g, end := gs[i], w.start+size
			r := g.ev.Value
			var problem string
			switch {
			case r.Start != w.start || r.End != end:
				problem = fmt.Sprintf("result #%d is [%d, %d), want [%d, %d) (windows in End order)", i, r.Start, r.End, w.start, end)
			case g.ev.Time != end-1:
				problem = fmt.Sprintf("[%d, %d) carried at time %d, want End-1 = %d", r.Start, r.End, g.ev.Time, end-1)
			case r.Count != int64(len(w.vals)):
				problem = fmt.Sprintf("[%d, %d) Count %d, want %d", r.Start, r.End, r.Count, len(w.vals))
			case g.wm < end:
				problem = fmt.Sprintf("[%d, %d) emitted at watermark %d, before the watermark reached its end", r.Start, r.End, g.wm)
			case g.wm != hopMarkAtLeast(marks, end):
				problem = fmt.Sprintf("[%d, %d) emitted at watermark %d, want %d: as soon as the watermark reaches its end", r.Start, r.End, g.wm, hopMarkAtLeast(marks, end))
			default:
				if msg := check(w.vals, r.Value); msg != "" {
					problem = fmt.Sprintf("[%d, %d) of %d values: %s", r.Start, r.End, len(w.vals), msg)
				}
			}
			if problem != "" {
				assert.Failf(t, "wrong window result", "key %q: %s", key, problem)
				break // one mismatch per key is enough to read
			}
		}
	}
	// Each Advance emits in (End, Key) order.
	for i := 1; i < len(rec.got); i++ {
		a, b := rec.got[i-1], rec.got[i]
		if !a.advance || !b.advance || a.call != b.call {
			continue
		}
		if a.ev.Value.End > b.ev.Value.End || (a.ev.Value.End == b.ev.Value.End && a.ev.Key >= b.ev.Key) {
			assert.Failf(t, "Advance out of (End, Key) order", "%s [%d, %d) before %s [%d, %d)",
				a.ev.Key, a.ev.Value.Start, a.ev.Value.End, b.ev.Key, b.ev.Value.Start, b.ev.Value.End)
			return
		}
	}
}

// Reference aggregates, computed from a window's raw values.

func checkMean(vals []float64, got float64) string {
	// A 256-bit sum of float64 values spanning less than 200 binary orders of
	// magnitude is exact; the division is rounded at 256 bits.
	sum := new(big.Float).SetPrec(exactPrec)
	for _, v := range vals {
		sum.Add(sum, new(big.Float).SetFloat64(v))
	}
	exact := sum.Quo(sum, new(big.Float).SetInt64(int64(len(vals))))
	if e := floatRelErr(got, exact); !(e <= 1e-12) {
		want, _ := exact.Float64()
		return fmt.Sprintf("mean %v, exact %v: relative error %g > 1e-12", got, want, e)
	}
	return ""
}

func checkMin(vals []float64, got float64) string {
	want := vals[0]
	for _, v := range vals {
		if v < want {
			want = v
		}
	}
	if got != want {
		return fmt.Sprintf("min %v, want %v", got, want)
	}
	return ""
}

func checkMax(vals []float64, got float64) string {
	want := vals[0]
	for _, v := range vals {
		if v > want {
			want = v
		}
	}
	if got != want {
		return fmt.Sprintf("max %v, want %v", got, want)
	}
	return ""
}

func checkFirst(vals []float64, got float64) string {
	if got != vals[0] {
		return fmt.Sprintf("first %v, want %v", got, vals[0])
	}
	return ""
}

func checkLast(vals []float64, got float64) string {
	if got != vals[len(vals)-1] {
		return fmt.Sprintf("last %v, want %v", got, vals[len(vals)-1])
	}
	return ""
}

func checkCount(vals []float64, got int64) string {
	if got != int64(len(vals)) {
		return fmt.Sprintf("count %d, want %d", got, len(vals))
	}
	return ""
}

func TestHoppingConstructorsRejectBadLengths(t *testing.T) {
	mean := window.FactoryOf(window.NewMean)
	tests := []struct {
		name      string
		size, hop time.Duration
		newAgg    func() window.Aggregator[float64, float64]
	}{
		{"zero size", 0, time.Second, mean},
		{"zero hop", time.Second, 0, mean},
		{"negative size", -time.Second, time.Second, mean},
		{"negative hop", time.Second, -time.Second, mean},
		{"sub-millisecond size", time.Millisecond / 2, time.Millisecond, mean},
		{"fractional millisecond hop", time.Second, 1500 * time.Microsecond, mean},
		{"nil aggregator", time.Second, time.Second, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := window.NewHopping(tc.size, tc.hop, tc.newAgg)
			assert.ErrorIs(t, err, window.ErrInvalidWindow, "NewHopping(%v, %v)", tc.size, tc.hop)
			assert.Nil(t, h, "no windows from invalid arguments")
			if tc.size == tc.hop || tc.newAgg == nil {
				h, err := window.NewTumbling(tc.size, tc.newAgg)
				assert.ErrorIs(t, err, window.ErrInvalidWindow, "NewTumbling(%v)", tc.size)
				assert.Nil(t, h, "no windows from invalid arguments")
			}
		})
	}
}

// span is a hand-written expected window [start, end) of a key with its count.
type span struct {
	key        string
	start, end stream.Time
	count      int64
}

func TestHoppingAssignsEventsToEpochAlignedWindows(t *testing.T) {
	ev := func(key string, t stream.Time) stream.Event[float64] {
		return stream.Event[float64]{Key: key, Time: t, Value: float64(t)}
	}
	tests := []struct {
		name      string
		size, hop stream.Time
		evs       []stream.Event[float64]
		want      []span // in (key, start) order
	}{
		{name: "empty input", size: 10, hop: 10},
		{name: "single event", size: 10, hop: 10, evs: []stream.Event[float64]{ev("A", 7)}, want: []span{{"A", 0, 10, 1}}},
		{
			name: "tumbling, boundaries and negative times", size: 10, hop: 10,
			evs:  []stream.Event[float64]{ev("A", -11), ev("A", -10), ev("A", -1), ev("A", 0), ev("A", 9), ev("A", 10)},
			want: []span{{"A", -20, -10, 1}, {"A", -10, 0, 2}, {"A", 0, 10, 2}, {"A", 10, 20, 1}},
		},
		{
			name: "hop < size: overlapping windows", size: 10, hop: 5,
			evs:  []stream.Event[float64]{ev("A", -3), ev("A", 4), ev("A", 5)},
			want: []span{{"A", -10, 0, 1}, {"A", -5, 5, 2}, {"A", 0, 10, 2}, {"A", 5, 15, 1}},
		},
		{
			name: "hop does not divide size", size: 7, hop: 3,
			evs:  []stream.Event[float64]{ev("A", 6)},
			want: []span{{"A", 0, 7, 1}, {"A", 3, 10, 1}, {"A", 6, 13, 1}},
		},
		{
			name: "hop > size: events in gaps belong to no window", size: 3, hop: 10,
			evs:  []stream.Event[float64]{ev("A", -8), ev("A", -7), ev("A", 2), ev("A", 3), ev("A", 9), ev("A", 10), ev("A", 12), ev("A", 13)},
			want: []span{{"A", -10, -7, 1}, {"A", 0, 3, 1}, {"A", 10, 13, 2}},
		},
		{
			name: "windows without events emit nothing", size: 10, hop: 10,
			evs:  []stream.Event[float64]{ev("A", 1), ev("A", 95), ev("A", 1_000)},
			want: []span{{"A", 0, 10, 1}, {"A", 90, 100, 1}, {"A", 1_000, 1_010, 1}},
		},
		{
			name: "keys share timestamps but not windows", size: 10, hop: 10,
			evs:  []stream.Event[float64]{ev("A", 0), ev("B", 0), ev("B", 5), ev("A", 12), ev("B", 12)},
			want: []span{{"A", 0, 10, 1}, {"A", 10, 20, 1}, {"B", 0, 10, 2}, {"B", 10, 20, 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs := slices.Clone(tc.evs)
			hopSort(evs)
			want := hopBrute(evs, tc.size, tc.hop)
			require.Len(t, want, len(tc.want), "the reference agrees with the hand-written windows")
			for i, w := range want {
				require.Equalf(t, tc.want[i], span{w.key, w.start, w.start + tc.size, int64(len(w.vals))},
					"the reference agrees with the hand-written window #%d", i)
			}
			h, err := window.NewHopping(time.Duration(tc.size)*time.Millisecond, time.Duration(tc.hop)*time.Millisecond, window.FactoryOf(window.NewMean))
			require.NoError(t, err, "constructor")
			rec, marks := hopReplay(t, h, evs)
			checkHopping(t, want, tc.size, rec, marks, checkMean)
			for _, em := range rec.got {
				r := em.ev.Value
				assert.Zerof(t, (r.Start%tc.hop+tc.hop)%tc.hop, "[%d, %d): the start is a multiple of the hop %d", r.Start, r.End, tc.hop)
			}
		})
	}
}

func TestHoppingEmitsWhenTheWatermarkReachesTheEnd(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size, hop time.Duration
	}{
		{"tumbling", time.Second, time.Second},
		{"hopping", time.Second, 250 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := window.NewHopping(tc.size, tc.hop, window.FactoryOf(window.NewMax))
			require.NoError(t, err, "constructor")
			rec := &hopRecorder[float64]{}
			rec.process(h, stream.Event[float64]{Key: "A", Time: 1_999, Value: 3})
			// The first window to end holds 1999 and ends at 2000: at watermark
			// 2000 no event before 2000 can come, so it is final.
			for _, wm := range []stream.Time{1_000, 1_998, 1_999} {
				rec.advanceTo(h, wm)
				assert.Emptyf(t, rec.got, "no window ends at or before watermark %d", wm)
			}
			rec.advanceTo(h, 2_000)
			require.Len(t, rec.got, 1, "the window [1000, 2000) closes at watermark 2000 exactly")
			r := rec.got[0]
			assert.Equal(t, window.Result[float64]{Start: 1_000, End: 2_000, Count: 1, Value: 3}, r.ev.Value, "the window holding 1999")
			assert.Equal(t, stream.Time(1_999), r.ev.Time, "the result is carried at End - 1")
			assert.Equal(t, "A", r.ev.Key, "the result keeps its key")
			rec.advanceTo(h, 2_000)
			assert.Len(t, rec.got, 1, "a window is emitted once")
		})
	}
}

func TestHoppingAdvanceOrderIsEndThenKey(t *testing.T) {
	const seed = 11
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	keys := []string{"d", "a", "c", "b", "e"}
	perKey := make(map[string][]stream.Event[float64])
	for _, k := range keys {
		for tm := stream.Time(-40); tm < 100; tm += 1 + stream.Time(r.IntN(15)) {
			perKey[k] = append(perKey[k], stream.Event[float64]{Key: k, Time: tm, Value: float64(r.IntN(100))})
		}
	}
	var first []stream.Event[window.Result[float64]]
	for run := range 3 {
		h, err := window.NewHopping(20*time.Millisecond, 5*time.Millisecond, window.FactoryOf(window.NewMean))
		require.NoError(t, err, "constructor")
		// Each key's events in time order, the keys interleaved at random: a
		// different interleaving in every run.
		rec := &hopRecorder[float64]{}
		next := make(map[string]int)
		for left := len(keys); left > 0; {
			k := keys[r.IntN(len(keys))]
			if next[k] == len(perKey[k]) {
				continue
			}
			rec.process(h, perKey[k][next[k]])
			if next[k]++; next[k] == len(perKey[k]) {
				left--
			}
		}
		n := len(rec.got)
		rec.advanceTo(h, stream.MaxTime)
		var jump []stream.Event[window.Result[float64]]
		for _, em := range rec.got[n:] {
			jump = append(jump, em.ev)
		}
		require.NotEmpty(t, jump, "run %d: the end of input closes windows", run)
		keysSeen := make(map[string]bool)
		for _, e := range jump {
			keysSeen[e.Key] = true
		}
		assert.Lenf(t, keysSeen, len(keys), "run %d: the end of input closes windows of every key", run)
		assert.Truef(t, slices.IsSortedFunc(jump, func(a, b stream.Event[window.Result[float64]]) int {
			if c := cmp.Compare(a.Value.End, b.Value.End); c != 0 {
				return c
			}
			return strings.Compare(a.Key, b.Key)
		}), "run %d: Advance emits in (End, Key) order", run)
		if run == 0 {
			first = jump
			continue
		}
		assert.Equalf(t, first, jump, "run %d: the same windows in the same order whatever the interleaving of keys", run)
	}
}

func TestHoppingRandomAgainstBruteForce(t *testing.T) {
	configs := []struct{ size, hop stream.Time }{
		{10, 10}, {10, 5}, {10, 3}, {7, 3}, {5, 10}, {3, 7}, {1, 1}, {1, 5}, {12, 4}, {60, 1},
	}
	for _, seed := range []uint64{1, 2, 3} {
		r := rand.New(rand.NewPCG(seed, 77))
		cfgs := append(slices.Clone(configs), struct{ size, hop stream.Time }{1 + stream.Time(r.IntN(40)), 1 + stream.Time(r.IntN(40))})
		for _, cfg := range cfgs {
			evs := hopRandomStream(r, 1+r.IntN(4), 600, cfg.size)
			name := fmt.Sprintf("seed=%d/size=%d/hop=%d", seed, cfg.size, cfg.hop)
			want := hopBrute(evs, cfg.size, cfg.hop)
			size, hop := time.Duration(cfg.size)*time.Millisecond, time.Duration(cfg.hop)*time.Millisecond
			t.Run(name+"/mean", func(t *testing.T) {
				t.Logf("seed %d: %d events, %d windows", seed, len(evs), len(want))
				h, err := window.NewHopping(size, hop, window.FactoryOf(window.NewMean))
				require.NoError(t, err, "constructor")
				rec, marks := hopReplay(t, h, evs)
				checkHopping(t, want, cfg.size, rec, marks, checkMean)
			})
			for _, agg := range []struct {
				name  string
				new   func() window.Aggregator[float64, float64]
				check func([]float64, float64) string
			}{
				{"min", window.FactoryOf(window.NewMin), checkMin},
				{"max", window.FactoryOf(window.NewMax), checkMax},
				{"first", window.FactoryOf(window.NewFirst[float64]), checkFirst},
				{"last", window.FactoryOf(window.NewLast[float64]), checkLast},
			} {
				t.Run(name+"/"+agg.name, func(t *testing.T) {
					t.Logf("seed %d", seed)
					h, err := window.NewHopping(size, hop, agg.new)
					require.NoError(t, err, "constructor")
					rec, marks := hopReplay(t, h, evs)
					checkHopping(t, want, cfg.size, rec, marks, agg.check)
				})
			}
			t.Run(name+"/count", func(t *testing.T) {
				t.Logf("seed %d", seed)
				h, err := window.NewHopping(size, hop, window.FactoryOf(window.NewCount[float64]))
				require.NoError(t, err, "constructor")
				rec, marks := hopReplay(t, h, evs)
				checkHopping(t, want, cfg.size, rec, marks, checkCount)
			})
		}
	}
}

// hopRandomStream returns a (Time, Key)-ordered stream of BTC-like prices
// (cent steps, many repeats) over nKeys keys, starting at negative times, with
// gaps around the window size and long silences that close every window.
func hopRandomStream(r *rand.Rand, nKeys, n int, size stream.Time) []stream.Event[float64] {
	last := make([]stream.Time, nKeys)
	cents := make([]int64, nKeys)
	for i := range last {
		last[i] = -5*size - stream.Time(r.IntN(3))
		cents[i] = 9_919_048
	}
	evs := make([]stream.Event[float64], 0, n)
	for range n {
		k := r.IntN(nKeys)
		switch r.IntN(12) {
		case 0:
			last[k] += size
		case 1:
			last[k] += size + 1
		case 2:
			last[k] += 20*size + stream.Time(r.IntN(100))
		default:
			last[k] += 1 + stream.Time(r.IntN(int(max(size/2, 2))))
		}
		cents[k] += int64(r.IntN(5)) - 2
		evs = append(evs, stream.Event[float64]{Key: fmt.Sprintf("key%d", k), Time: last[k], Value: float64(cents[k]) / 100})
	}
	hopSort(evs)
	return evs
}

// TestHoppingStdAgainstExact runs sample std windows over BTC-like prices,
// some of them whole dollars followed by cents, against the exact std of each
// window's values (SPEC accuracy: relative error <= 1e-9 when the std is at
// least 1e-6 x the mean; exactly 0 for equal values; NaN for one value).
func TestHoppingStdAgainstExact(t *testing.T) {
	ev := func(ms stream.Time, price float64) stream.Event[float64] {
		return stream.Event[float64]{Key: "BTCUSDT", Time: ms, Value: price}
	}
	tests := []struct {
		name string
		evs  []stream.Event[float64]
	}{
		{"cents only", []stream.Event[float64]{ev(1, 99_190.48), ev(2, 99_190.49), ev(3, 99_190.47)}},
		{"whole dollars then cents", []stream.Event[float64]{ev(1, 99_190), ev(2, 99_191), ev(3, 99_190.48)}},
		{"equal prices", []stream.Event[float64]{ev(1, 99_190.48), ev(2, 99_190.48), ev(3, 99_190.48)}},
		{"one price", []stream.Event[float64]{ev(1, 99_190.48)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := window.NewTumbling(time.Minute, window.FactoryOf(window.NewStd))
			require.NoError(t, err, "constructor")
			rec, marks := hopReplay(t, h, tc.evs)
			checkHopping(t, hopBrute(tc.evs, 60_000, 60_000), 60_000, rec, marks, func(vals []float64, got float64) string {
				var ref exactSums
				for _, v := range vals {
					ref.add(t, v)
				}
				if len(vals) < 2 {
					if !math.IsNaN(got) {
						return fmt.Sprintf("std of one value %v, want NaN", got)
					}
					return ""
				}
				exact, zero := ref.variance(1)
				if zero {
					if got != 0 {
						return fmt.Sprintf("std of equal values %v, want exactly 0", got)
					}
					return ""
				}
				if e := floatRelErr(got, floatSqrt(exact)); !(e <= 1e-9) {
					want, _ := floatSqrt(exact).Float64()
					return fmt.Sprintf("std %v, exact %v: relative error %g", got, want, e)
				}
				return ""
			})
			assert.Len(t, rec.got, 1, "one minute, one result")
		})
	}
}

// TestErrorsNameTheArgument: every constructor's error wraps ErrInvalidWindow, for
// errors.Is, and says which argument is wrong and why.
func TestErrorsNameTheArgument(t *testing.T) {
	mean := window.FactoryOf(window.NewMean)
	for _, tc := range []struct {
		name string
		err  func() error
		want string
	}{
		{"hopping size", func() error { _, err := window.NewHopping(0, time.Second, mean); return err },
			"window: invalid window: size 0s is not a positive whole number of milliseconds"},
		{"hopping hop", func() error { _, err := window.NewHopping(time.Second, 1500*time.Microsecond, mean); return err },
			"window: invalid window: hop 1.5ms is not a positive whole number of milliseconds"},
		{"tumbling size", func() error { _, err := window.NewTumbling(-time.Second, mean); return err },
			"window: invalid window: size -1s is not a positive whole number of milliseconds"},
		{"trailing length", func() error { _, err := window.NewTrailing([]time.Duration{time.Second, 0}, mean); return err },
			"window: invalid window: length 0s is not a positive whole number of milliseconds"},
		{"trailing statistics length", func() error {
			_, err := window.NewTrailingStatistics([]time.Duration{time.Millisecond / 2})
			return err
		},
			"window: invalid window: length 500µs is not a positive whole number of milliseconds"},
		{"no lengths", func() error { _, err := window.NewTrailingStatistics(nil); return err },
			"window: invalid window: no window lengths"},
		{"nil factory", func() error { _, err := window.NewTumbling(time.Second, (func() *window.Mean)(nil)); return err },
			"window: invalid window: nil accumulator factory"},
		{"nil Factory", func() error {
			_, err := window.NewHopping(time.Second, time.Second, window.Factory[float64, float64](nil))
			return err
		},
			"window: invalid window: nil accumulator factory"},
		{"trailing nil factory", func() error {
			_, err := window.NewTrailing([]time.Duration{time.Second}, (func() *window.Max)(nil))
			return err
		},
			"window: invalid window: nil aggregator factory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			assert.ErrorIs(t, err, window.ErrInvalidWindow, "errors.Is(err, ErrInvalidWindow)")
			assert.ErrorIs(t, err, stream.ErrInvalidOption, "errors.Is(err, stream.ErrInvalidOption)")
			assert.EqualError(t, err, tc.want, "the message")
		})
	}
}
