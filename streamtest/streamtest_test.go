package streamtest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
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
