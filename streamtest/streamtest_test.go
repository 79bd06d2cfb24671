package streamtest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/streamtest"
	"github.com/tidemark-go/tidemark/window"
)

func TestCopy(t *testing.T) {
	type inner struct {
		S []int
		M map[string]*int
	}
	one := 1
	v := []inner{{S: []int{1, 2}, M: map[string]*int{"a": &one}}}
	c := streamtest.Copy(v)
	assert.Equal(t, v, c, "equal")
	v[0].S[0] = 9
	*v[0].M["a"] = 7
	assert.Equal(t, 1, c[0].S[0], "the slice inside was copied")
	assert.Equal(t, 1, *c[0].M["a"], "the pointer inside the map was copied")
	var nilSlice []int
	assert.Nil(t, streamtest.Copy(nilSlice), "nil stays nil")
}

// TestRecorderKeepsCopies: an operator that reuses the slice it emits does
// not change what the recorder kept.
func TestRecorderKeepsCopies(t *testing.T) {
	var rec streamtest.Recorder[[]int]
	buf := []int{1}
	rec.Emit(stream.Event[[]int]{Key: "k", Time: 1, Value: buf})
	buf[0] = 2
	rec.Emit(stream.Event[[]int]{Key: "k", Time: 2, Value: buf})
	require.NoError(t, rec.Write(context.Background(), stream.Event[[]int]{Key: "k", Time: 3, Value: []int{3}}), "Write")
	require.NoError(t, rec.Flush(context.Background()), "Flush")
	got := rec.Events()
	assert.Equal(t, [][]int{{1}, {2}, {3}}, [][]int{got[0].Value, got[1].Value, got[2].Value}, "values as emitted")
	assert.Equal(t, 3, rec.Len(), "Len")
	assert.Equal(t, 1, rec.Flushes(), "Flushes")
	rec.Reset()
	assert.Zero(t, rec.Len(), "Reset")
}

// TestShuffleWithinLateness: no event of a shuffled stream is late, and the
// order does change.
func TestShuffleWithinLateness(t *testing.T) {
	const seed = 3
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	var evs []stream.Event[int]
	for i := range 2000 {
		evs = append(evs, stream.Event[int]{Key: fmt.Sprint(i % 3), Time: stream.Time(i * 7), Value: i})
	}
	const lateness = 100 * time.Millisecond
	sh := streamtest.Shuffle(r, evs, lateness)
	require.Len(t, sh, len(evs), "a permutation")
	assert.NotEqual(t, evs, sh, "another order")
	maxT := stream.MinTime
	for i, e := range sh {
		assert.GreaterOrEqual(t, e.Time, maxT.Add(-stream.DurationOf(lateness)), "event %d is not late", i)
		maxT = max(maxT, e.Time)
	}
	sorted := slices.Clone(sh)
	slices.SortFunc(sorted, func(a, b stream.Event[int]) int { return a.Value - b.Value })
	assert.Equal(t, evs, sorted, "the same events")
}

func TestSliceSourceWithRun(t *testing.T) {
	src := &streamtest.SliceSource[int]{Batch: 2}
	for i := range 5 {
		src.Records = append(src.Records, stream.Record[int]{Event: stream.Event[int]{Key: "k", Time: stream.Time(i * 1000), Value: i}})
	}
	var sink streamtest.Recorder[int]
	_, err := stream.Run(context.Background(), src, stream.Operator[int, int](pass{}), &sink, stream.WithLateness(0))
	require.NoError(t, err, "Run")
	assert.Equal(t, 5, sink.Len(), "everything, at end of input")
	assert.Equal(t, stream.MaxTime, src.Checkpoints[len(src.Checkpoints)-1], "checkpointed to the end")
}

type pass struct{}

func (pass) Process(e stream.Event[int], out stream.Emitter[int]) { out.Emit(e) }
func (pass) Advance(stream.Time, stream.Emitter[int])             {}
func (pass) Bounds() stream.Bounds                                { return stream.Bounds{} }

func priceLog(seed uint64, n int) *streamtest.Log[float64] {
	r := rand.New(rand.NewPCG(seed, seed))
	log := streamtest.NewLog[float64]()
	var evs []stream.Event[float64]
	t := stream.Time(1_746_677_558_352)
	for range n {
		t += stream.Time(1 + r.IntN(300))
		evs = append(evs, stream.Event[float64]{Key: []string{"a", "b"}[r.IntN(2)], Time: t, Value: float64(9_900_000+r.IntN(500)) / 100})
	}
	for _, e := range streamtest.Shuffle(r, evs, time.Second) {
		log.Append(e)
		if r.IntN(50) == 0 {
			log.AppendSkip()
		}
		if r.IntN(20) == 0 {
			log.Gap(2)
		}
	}
	return log
}

// TestCheckRecovery: a correct operator passes; one that understates its
// reach back fails, and CheckRecovery says where.
func TestCheckRecovery(t *testing.T) {
	const seed = 5
	t.Logf("seed %d", seed)
	log := priceLog(seed, 4000)
	in := stream.Input[float64]{Lateness: time.Second}
	newStats := func() stream.Operator[float64, []window.Statistics] {
		op, err := window.NewTrailingStatistics([]time.Duration{5 * time.Second, 30 * time.Second})
		require.NoError(t, err, "NewTrailingStatistics")
		return op
	}
	n, crashes := streamtest.CheckRecovery(t, seed, in, log, newStats)
	assert.Positive(t, crashes, "crashed")
	assert.Greater(t, n, 3900, "results")

	var probe probeTB
	streamtest.CheckRecovery(&probe, seed, in, log, func() stream.Operator[float64, []window.Statistics] {
		return understated{newStats()}
	})
	require.NotEmpty(t, probe.errors, "an operator whose Bounds are too small is caught")
	t.Logf("caught: %s", probe.errors[0])
}

// understated claims to look back less than it does.
type understated struct {
	stream.Operator[float64, []window.Statistics]
}

func (understated) Bounds() stream.Bounds { return stream.Bounds{Back: time.Second} }

// probeTB records what CheckRecovery reports.
type probeTB struct {
	testing.TB
	errors []string
}

func (p *probeTB) Helper() {}
func (p *probeTB) Errorf(format string, args ...any) {
	p.errors = append(p.errors, fmt.Sprintf(format, args...))
}
func (p *probeTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// twoLogs returns a left and a right log of int events of two keys: some
// identities on both sides (pairs for a join), some on one side only, and a
// few duplicates of a side's identity with another value; each side arrives
// shuffled within a second, with undecodable records and offset gaps.
func twoLogs(seed uint64, n int) (*streamtest.Log[int], *streamtest.Log[int]) {
	r := rand.New(rand.NewPCG(seed, 0x2))
	var left, right []stream.Event[int]
	t := stream.Time(1_746_677_558_352)
	for i := range n {
		t += stream.Time(1 + r.IntN(200))
		e := stream.Event[int]{Key: []string{"a", "b"}[r.IntN(2)], Time: t, Value: i}
		switch r.IntN(4) {
		case 0:
			left = append(left, e)
		case 1:
			right = append(right, e)
		default:
			left = append(left, e)
			e.Value = -i
			right = append(right, e)
		}
	}
	toLog := func(evs []stream.Event[int]) *streamtest.Log[int] {
		log := streamtest.NewLog[int]()
		for _, e := range streamtest.Shuffle(r, evs, time.Second) {
			log.Append(e)
			switch r.IntN(60) {
			case 0:
				log.AppendSkip()
			case 1:
				log.Gap(3)
			case 2:
				e.Value += 1_000_000 // a duplicate: the first copy wins
				log.Append(e)
			}
		}
		return log
	}
	return toLog(left), toLog(right)
}

// TestCheckRecoveryTwoInputJoin: a Join, alone and chained into a Map,
// passes: its zero bounds are right and it is confluent.
func TestCheckRecoveryTwoInputJoin(t *testing.T) {
	in := stream.Input[int]{Lateness: time.Second}
	extra := uint64(time.Now().UnixNano())
	if s := os.Getenv("TIDEMARK_SEED"); s != "" {
		_, err := fmt.Sscan(s, &extra)
		require.NoError(t, err, "TIDEMARK_SEED")
	}
	t.Logf("seeds 5, 6 and %d (TIDEMARK_SEED=%d to repeat)", extra, extra)
	for _, seed := range []uint64{5, 6, extra} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			left, right := twoLogs(seed, 3000)
			newJoin := func() *stream.Join[int, int] {
				j, err := stream.NewJoin(stream.JoinConfig[int, int]{})
				require.NoError(t, err, "NewJoin")
				return j
			}
			n, crashes := streamtest.CheckRecoveryTwoInput(t, seed, in, in, left, right,
				func() stream.TwoInput[int, int, stream.Pair[int, int]] { return newJoin() })
			assert.Positive(t, crashes, "crashed")
			assert.Greater(t, n, 1000, "pairs")

			n, crashes = streamtest.CheckRecoveryTwoInput(t, seed, in, in, left, right, func() stream.TwoInput[int, int, int] {
				return stream.ChainTwoInput(newJoin(), stream.Map(func(e stream.Event[stream.Pair[int, int]]) int { return e.Value.Left - e.Value.Right }))
			})
			assert.Positive(t, crashes, "crashed, chained")
			assert.Greater(t, n, 1000, "results, chained")
		})
	}
}

// asOfSum is a two-input operator that emits, for each right event, the sum
// of the left values of its key in the last back ms, (t - back, t], once
// the watermark has passed t: it looks back by back, and declares the
// bounds it is given.
type asOfSum struct {
	back     stream.Time
	declared stream.Bounds
	left     map[string][]stream.Event[int]
	right    []stream.Event[int] // in (Time, Key) order, as the sequencer releases them
}

func newAsOfSum(back time.Duration, declared stream.Bounds) *asOfSum {
	return &asOfSum{back: stream.DurationOf(back), declared: declared, left: map[string][]stream.Event[int]{}}
}

func (a *asOfSum) ProcessLeft(e stream.Event[int], _ stream.Emitter[int]) {
	a.left[e.Key] = append(a.left[e.Key], e)
}

func (a *asOfSum) ProcessRight(e stream.Event[int], _ stream.Emitter[int]) {
	a.right = append(a.right, e)
}

func (a *asOfSum) Advance(wm stream.Time, out stream.Emitter[int]) {
	n := 0
	for ; n < len(a.right) && a.right[n].Time < wm; n++ {
		r := a.right[n]
		sum := 0
		for _, l := range a.left[r.Key] {
			if l.Time > r.Time-a.back && l.Time <= r.Time {
				sum += l.Value
			}
		}
		out.Emit(stream.Event[int]{Key: r.Key, Time: r.Time, Value: sum})
	}
	a.right = a.right[n:]
	for k, ls := range a.left { // no right event to come needs a left one at or before wm - back
		i := 0
		for i < len(ls) && ls[i].Time <= wm.Add(-a.back) {
			i++
		}
		a.left[k] = ls[i:]
	}
}

func (a *asOfSum) Bounds() stream.Bounds { return a.declared }

// seenSoFar emits, for each right event, how many left events it has seen:
// a result that depends on how the inputs interleave.
type seenSoFar struct{ n int }

func (s *seenSoFar) ProcessLeft(stream.Event[int], stream.Emitter[int]) { s.n++ }
func (s *seenSoFar) ProcessRight(e stream.Event[int], out stream.Emitter[int]) {
	out.Emit(stream.Event[int]{Key: e.Key, Time: e.Time, Value: s.n})
}
func (s *seenSoFar) Advance(stream.Time, stream.Emitter[int]) {}
func (s *seenSoFar) Bounds() stream.Bounds                    { return stream.Bounds{} }

// TestCheckRecoveryTwoInputCatchesBrokenOperators: an operator that looks
// back 5 s passes when its Bounds say so and fails when they say 1 s; an
// operator that is not confluent fails.
func TestCheckRecoveryTwoInputCatchesBrokenOperators(t *testing.T) {
	const seed = 7
	t.Logf("seed %d", seed)
	left, right := twoLogs(seed, 3000)
	in := stream.Input[int]{Lateness: time.Second}

	tests := []struct {
		name   string
		newOp  func() stream.TwoInput[int, int, int]
		caught bool
	}{
		{"bounds right", func() stream.TwoInput[int, int, int] {
			return newAsOfSum(5*time.Second, stream.Bounds{Back: 5 * time.Second})
		}, false},
		{"bounds understated", func() stream.TwoInput[int, int, int] {
			return newAsOfSum(5*time.Second, stream.Bounds{Back: time.Second})
		}, true},
		{"not confluent", func() stream.TwoInput[int, int, int] { return &seenSoFar{} }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var probe probeTB
			n, crashes := streamtest.CheckRecoveryTwoInput(&probe, seed, in, in, left, right, tc.newOp)
			assert.Positive(t, crashes, "crashed")
			assert.Greater(t, n, 1000, "results")
			if !tc.caught {
				assert.Empty(t, probe.errors, "a correct operator passes")
				return
			}
			require.NotEmpty(t, probe.errors, "the checker catches the broken operator")
			t.Logf("caught: %s", probe.errors[0])
		})
	}
}
