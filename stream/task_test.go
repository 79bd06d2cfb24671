package stream_test

import (
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
	"github.com/tidemark-go/tidemark/window"
	"github.com/tidemark-go/tidemark/zscore"
)

// logRec is one record of a partition: an event, or an undecodable record
// (skip) that only takes an offset.
type logRec[V any] struct {
	off  int64
	ev   stream.Event[V]
	skip bool
}

// messyLog is a price trace of one partition as a Kafka topic would hold it:
// three keys, disorder within lateness, duplicates of an identity with another
// price, events later than the lateness, quiet spells of minutes, undecodable
// records, and offsets with gaps (transaction markers, compaction).
func messyLog(r *rand.Rand, n int, lateness stream.Time) []logRec[float64] {
	keys := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}
	price := []int64{9_919_048, 312_055, 14_420}
	now := stream.Time(1_746_677_558_352)
	var log []logRec[float64]
	off := int64(r.IntN(5))
	add := func(l logRec[float64]) {
		l.off = off
		log = append(log, l)
		off += 1 + int64(r.IntN(3)/2)
	}
	var recent []stream.Event[float64]
	for range n {
		switch x := r.IntN(100); {
		case x < 2:
			now += stream.Time(60_000 + r.IntN(240_000)) // a quiet spell
		case x < 60:
			now += stream.Time(1 + r.IntN(400))
		}
		k := r.IntN(len(keys))
		price[k] += int64(r.IntN(9)) - 4
		t := now
		if r.IntN(4) == 0 {
			t -= stream.Time(r.IntN(int(lateness) + 1)) // disorder within the lateness
		}
		e := stream.Event[float64]{Key: keys[k], Time: t, Value: float64(price[k]) / 100}
		switch y := r.IntN(100); {
		case y < 3 && len(recent) > 0: // a duplicate identity with another price
			d := recent[r.IntN(len(recent))]
			d.Value += 0.01
			add(logRec[float64]{ev: d})
		case y < 5: // late: older than the lateness
			add(logRec[float64]{ev: stream.Event[float64]{Key: e.Key, Time: now - lateness - 1 - stream.Time(r.IntN(5000)), Value: e.Value}})
		case y < 6:
			add(logRec[float64]{skip: true})
		}
		add(logRec[float64]{ev: e})
		recent = append(recent, e)
		if len(recent) > 20 {
			recent = recent[1:]
		}
	}
	return log
}

// textOf renders an output event; the recorder keeps text, so values that
// operators reuse are captured when emitted.
func textOf[T any](e stream.Event[T]) string { return fmt.Sprintf("%s@%d=%+v", e.Key, e.Time, e.Value) }

type textRecorder[T any] struct{ got []string }

func (r *textRecorder[T]) Emit(e stream.Event[T]) { r.got = append(r.got, textOf(e)) }

// oneInputCase is an operator under test with its lateness.
type oneInputCase[Out any] struct {
	name     string
	lateness time.Duration
	newOp    func(t *testing.T) stream.Operator[float64, Out]
}

func trailingCase() oneInputCase[[]window.Statistics] {
	return oneInputCase[[]window.Statistics]{"trailing stats", 2 * time.Second, func(t *testing.T) stream.Operator[float64, []window.Statistics] {
		op, err := window.NewTrailingStatistics([]time.Duration{3 * time.Second, 10 * time.Second, time.Minute})
		require.NoError(t, err, "NewTrailingStatistics")
		return op
	}}
}

func lookaheadCase() oneInputCase[lookahead.Both[float64]] {
	return oneInputCase[lookahead.Both[float64]]{"higher and lower", 2 * time.Second, func(t *testing.T) stream.Operator[float64, lookahead.Both[float64]] {
		op, err := lookahead.NewHigherLower[float64](20 * time.Second)
		require.NoError(t, err, "NewHigherLower")
		return op
	}}
}

func chainCase() oneInputCase[window.Result[float64]] {
	return oneInputCase[window.Result[float64]]{"lookahead then hopping window", time.Second, func(t *testing.T) stream.Operator[float64, window.Result[float64]] {
		la, err := lookahead.NewHigher[float64](5 * time.Second)
		require.NoError(t, err, "NewHigher")
		hop, err := window.NewHopping(10*time.Second, 2*time.Second, window.FactoryOf[float64, float64](window.NewMean))
		require.NoError(t, err, "NewHopping")
		delays := &matchDelay{}
		return stream.Chain(stream.Chain[float64, lookahead.Match[float64], float64](la, delays), hop)
	}}
}

// matchDelay maps a lookahead answer to its delay in seconds (-1 for none).
type matchDelay struct{}

func (matchDelay) Process(e stream.Event[lookahead.Match[float64]], out stream.Emitter[float64]) {
	d := -1.0
	if e.Value.Found {
		d = float64(e.Value.Time-e.Time) / 1000
	}
	out.Emit(stream.Event[float64]{Key: e.Key, Time: e.Time, Value: d})
}
func (matchDelay) Advance(stream.Time, stream.Emitter[float64]) {}
func (matchDelay) Bounds() stream.Bounds                        { return stream.Bounds{} }

// asLog turns a messy log into a streamtest.Log with the same offsets.
func asLog(recs []logRec[float64]) *streamtest.Log[float64] {
	log := streamtest.NewLog[float64]()
	for _, r := range recs {
		log.Gap(r.off - log.End())
		if r.skip {
			log.AppendSkip()
		} else {
			log.Append(r.ev)
		}
	}
	return log
}

// TestTaskCrashRecovery: a task that loses its state at random points and is
// rebuilt from its last checkpoint by a replay emits exactly what an
// uninterrupted task emits: no result missing, none twice, every value equal
// (streamtest.CheckRecovery), for a windowed operator, a lookahead and a
// chain of a lookahead and a hopping window.
func TestTaskCrashRecovery(t *testing.T) {
	check := func(name string, lateness time.Duration, run func(t *testing.T, seed uint64, in stream.Input[float64], log *streamtest.Log[float64]) (int, int)) {
		for _, seed := range []uint64{1, 2, 3, 4, 5} {
			t.Run(fmt.Sprintf("%s/seed=%d", name, seed), func(t *testing.T) {
				t.Logf("seed %d", seed)
				r := rand.New(rand.NewPCG(seed, 0x7a5c))
				log := asLog(messyLog(r, 3000, stream.DurationOf(lateness)))
				n, crashes := run(t, seed, stream.Input[float64]{Lateness: lateness}, log)
				require.Positive(t, crashes, "crashed at least once")
				require.Positive(t, n, "results")
				t.Logf("%d results identical to the uninterrupted run after %d crashes", n, crashes)
			})
		}
	}
	c1 := trailingCase()
	check(c1.name, c1.lateness, func(t *testing.T, seed uint64, in stream.Input[float64], log *streamtest.Log[float64]) (int, int) {
		return streamtest.CheckRecovery(t, seed, in, log, func() stream.Operator[float64, []window.Statistics] { return c1.newOp(t) })
	})
	c2 := lookaheadCase()
	check(c2.name, c2.lateness, func(t *testing.T, seed uint64, in stream.Input[float64], log *streamtest.Log[float64]) (int, int) {
		return streamtest.CheckRecovery(t, seed, in, log, func() stream.Operator[float64, lookahead.Both[float64]] { return c2.newOp(t) })
	})
	c3 := chainCase()
	check(c3.name, c3.lateness, func(t *testing.T, seed uint64, in stream.Input[float64], log *streamtest.Log[float64]) (int, int) {
		return streamtest.CheckRecovery(t, seed, in, log, func() stream.Operator[float64, window.Result[float64]] { return c3.newOp(t) })
	})
}

// TestTaskCheckpointMetadata: the replay offset is the first record at or
// after the earliest time the pending results depend on, and the seed is
// the largest time before it.
func TestTaskCheckpointMetadata(t *testing.T) {
	tr, err := window.NewTrailingStatistics([]time.Duration{10 * time.Second})
	require.NoError(t, err, "NewTrailingStatistics")
	var rec textRecorder[[]window.Statistics]
	task, err := stream.NewTask(tr, stream.Input[float64]{Lateness: time.Second}, &rec)
	require.NoError(t, err, "NewTask")
	in := task.Input()
	times := []stream.Time{100_000, 99_500, 105_000, 104_000, 112_000, 113_000, 130_000}
	for i, tm := range times {
		_, err := in.Push(int64(10+i), stream.Event[float64]{Key: "k", Time: tm, Value: 1})
		require.NoError(t, err, "Push")
	}
	// Watermark 129 s; pending results depend on times from 129 - 10 = 119 s:
	// the first record at or after 119 s is 130 s at offset 16.
	assert.Equal(t, stream.Time(129_000), task.Watermark(), "watermark")
	cps := task.Checkpoints(nil)
	require.Len(t, cps, 1, "checkpoints")
	assert.Equal(t, stream.InputCheckpoint{Input: 0, Checkpoint: stream.Checkpoint{Offset: 17,
		Metadata: "tm2 r=16 m=130000 w=129000"}}, cps[0], "checkpoint")

	// A restored task replays from offset 16: 130 s is then the largest
	// time, as the checkpoint says.
	t2, err := stream.NewTask(tr, stream.Input[float64]{Lateness: time.Second}, &rec)
	require.NoError(t, err, "NewTask")
	from, err := t2.Input().Restore(cps[0].Checkpoint)
	require.NoError(t, err, "Restore")
	assert.Equal(t, int64(16), from, "replay from")
	_, err = t2.Input().Push(17, stream.Event[float64]{Key: "k", Time: 131_000})
	require.ErrorIs(t, err, stream.ErrOffsetOrder, "a live record before the replay ended")
	_, err = t2.Input().Push(16, stream.Event[float64]{Key: "k", Time: 130_000})
	require.NoError(t, err, "replayed record")
	require.NoError(t, t2.EndReplay(), "EndReplay matches")

	t3, err := stream.NewTask(tr, stream.Input[float64]{Lateness: time.Second}, &rec)
	require.NoError(t, err, "NewTask")
	_, err = t3.Input().Restore(cps[0].Checkpoint)
	require.NoError(t, err, "Restore")
	require.ErrorIs(t, t3.EndReplay(), stream.ErrReplayMismatch, "a replay that found nothing")

	for _, bad := range []string{"tm1 r=1", "tm2 r=x", "tm2 m=1", "tm2 r=20", "tm2 r=1 r=2", "tm2 r=-1"} {
		t4, err := stream.NewTask(tr, stream.Input[float64]{}, &rec)
		require.NoError(t, err, "NewTask")
		from, err := t4.Input().Restore(stream.Checkpoint{Offset: 17, Metadata: bad})
		assert.ErrorIs(t, err, stream.ErrInvalidCheckpoint, "metadata %q", bad)
		assert.Equal(t, int64(17), from, "unreadable metadata: start afresh at the offset (%q)", bad)
	}
}

// TestTaskPartitionsIndependent: one symbol on a topic of six partitions
// leaves five empty; with a task per partition the empty ones hold nothing
// back, with no idle timeout (a shared watermark over the six partitions
// emitted nothing).
func TestTaskPartitionsIndependent(t *testing.T) {
	var rec textRecorder[[]window.Statistics]
	tasks := make([]*stream.Task[float64, []window.Statistics], 6)
	for p := range tasks {
		tr, err := window.NewTrailingStatistics([]time.Duration{time.Minute})
		require.NoError(t, err, "NewTrailingStatistics")
		tasks[p], err = stream.NewTask(tr, stream.Input[float64]{Lateness: 0}, &rec)
		require.NoError(t, err, "NewTask")
	}
	for i := range 1000 {
		_, err := tasks[3].Input().Push(int64(i), stream.Event[float64]{Key: "BTCUSDT", Time: stream.Time(1000 * (i + 1)), Value: 1})
		require.NoError(t, err, "Push")
	}
	assert.Len(t, rec.got, 999, "every result but the last, which waits for a later event")
}

// twoInputLogs returns a price partition and the matching moving-statistics
// partition, the second computed by a task as the moving stage would, so
// that the two are co-partitioned and the join finds its pairs.
func twoInputLogs(t *testing.T, r *rand.Rand, n int) ([]logRec[float64], []logRec[[]window.Statistics]) {
	prices := messyLog(r, n, 2000)
	var moving []logRec[[]window.Statistics]
	off := int64(0)
	out := stream.EmitFunc[[]window.Statistics](func(e stream.Event[[]window.Statistics]) {
		e.Value = slices.Clone(e.Value)
		moving = append(moving, logRec[[]window.Statistics]{off: off, ev: e})
		off += 1 + int64(r.IntN(2))
	})
	tr, err := window.NewTrailingStatistics([]time.Duration{3 * time.Second, time.Minute})
	require.NoError(t, err, "NewTrailingStatistics")
	task, err := stream.NewTask(tr, stream.Input[float64]{Lateness: 2 * time.Second}, out)
	require.NoError(t, err, "NewTask")
	for _, l := range prices {
		push(t, task.Input(), l)
	}
	task.Finish()
	return prices, moving
}

func newZScoreTask(t *testing.T, out stream.Emitter[zscore.Scored]) *stream.TwoInputTask[float64, []window.Statistics, zscore.Scored] {
	t.Helper()
	join, err := stream.NewJoin(stream.JoinConfig[float64, []window.Statistics]{CopyRight: stream.CopySlice[window.Statistics]})
	require.NoError(t, err, "NewJoin")
	op := stream.ChainTwoInput[float64, []window.Statistics, stream.Pair[float64, []window.Statistics], zscore.Scored](join, zscore.NewOperator())
	task, err := stream.NewTwoInputTask(op, stream.Input[float64]{Lateness: 2 * time.Second},
		stream.Input[[]window.Statistics]{Lateness: 0}, out)
	require.NoError(t, err, "NewTwoInputTask")
	return task
}

// TestTwoInputTaskCrashRecovery: the z-score join of prices with their
// moving statistics, two partitions interleaved at random (differently in
// every incarnation), crashing at random: the committed results equal an
// uninterrupted run's.
func TestTwoInputTaskCrashRecovery(t *testing.T) {
	for _, seed := range []uint64{11, 12, 13, 14} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("seed %d", seed)
			r := rand.New(rand.NewPCG(seed, 0x2))
			prices, moving := twoInputLogs(t, r, 2500)

			var ref textRecorder[zscore.Scored]
			task := newZScoreTask(t, &ref)
			interleave(r, prices, moving, 0, 0, func(left bool, i int) {
				if left {
					push(t, task.Left(), prices[i])
				} else {
					push(t, task.Right(), moving[i])
				}
			})
			task.Finish()
			var accepted int
			st := task.Left().Stats()
			accepted = int(st.Accepted)
			require.Len(t, ref.got, accepted, "every accepted price finds its moving record")

			var committed []string
			var pending textRecorder[zscore.Scored]
			var cps []stream.InputCheckpoint
			crashes := 0
			li, ri := 0, 0
			task = newZScoreTask(t, &pending)
			for li < len(prices) || ri < len(moving) {
				left := ri == len(moving) || (li < len(prices) && r.IntN(2) == 0)
				if left {
					push(t, task.Left(), prices[li])
					li++
				} else {
					push(t, task.Right(), moving[ri])
					ri++
				}
				switch x := r.IntN(1000); {
				case x < 30:
					cps = task.Checkpoints(nil)
					committed = append(committed, pending.got...)
					pending.got = nil
				case x < 40:
					crashes++
					pending.got = nil
					task = newZScoreTask(t, &pending)
					li, ri = restoreTwo(t, r, task, cps, prices, moving)
				}
			}
			task.Finish()
			got := append(committed, pending.got...)
			require.Positive(t, crashes, "crashed")
			require.Equal(t, len(ref.got), len(got), "as many results (%d crashes)", crashes)
			for i := range ref.got {
				require.Equal(t, ref.got[i], got[i], "result %d (%d crashes)", i, crashes)
			}
			t.Logf("%d z-scores identical after %d crashes", len(got), crashes)
		})
	}
}

// restoreTwo rebuilds a two-input task from checkpoints, replaying each side
// (in a random interleaving), and returns where each side goes on.
func restoreTwo(t *testing.T, r *rand.Rand, task *stream.TwoInputTask[float64, []window.Statistics, zscore.Scored],
	cps []stream.InputCheckpoint, prices []logRec[float64], moving []logRec[[]window.Statistics]) (int, int) {
	t.Helper()
	start := [2]stream.Checkpoint{{Offset: prices[0].off}, {Offset: moving[0].off}}
	for _, c := range cps {
		start[c.Input] = c.Checkpoint
	}
	fromL, err := task.Left().Restore(start[0])
	require.NoError(t, err, "Restore left")
	fromR, err := task.Right().Restore(start[1])
	require.NoError(t, err, "Restore right")
	li := idx(prices, fromL)
	ri := idx(moving, fromR)
	endL, endR := idx(prices, start[0].Offset), idx(moving, start[1].Offset)
	interleave(r, prices[:endL], moving[:endR], li, ri, func(left bool, i int) {
		if left {
			push(t, task.Left(), prices[i])
		} else {
			push(t, task.Right(), moving[i])
		}
	})
	require.NoError(t, task.EndReplay(), "EndReplay")
	return endL, endR
}

func idx[V any](log []logRec[V], off int64) int {
	i := slices.IndexFunc(log, func(l logRec[V]) bool { return l.off >= off })
	if i < 0 {
		return len(log)
	}
	return i
}

// interleave calls f for a[li:] and b[ri:] in a random interleaving.
func interleave[A, B any](r *rand.Rand, a []A, b []B, li, ri int, f func(left bool, i int)) {
	for li < len(a) || ri < len(b) {
		if ri == len(b) || (li < len(a) && r.IntN(2) == 0) {
			f(true, li)
			li++
		} else {
			f(false, ri)
			ri++
		}
	}
}

// TestTwoInputTaskWatermark: the task's watermark is the smaller of its
// inputs', each with its own lateness; an input's late decisions depend on
// its own records only.
func TestTwoInputTaskWatermark(t *testing.T) {
	j, err := stream.NewJoin(stream.JoinConfig[int, int]{})
	require.NoError(t, err, "NewJoin")
	var rec textRecorder[stream.Pair[int, int]]
	task, err := stream.NewTwoInputTask(j, stream.Input[int]{Lateness: 10 * time.Second}, stream.Input[int]{}, &rec)
	require.NoError(t, err, "NewTwoInputTask")
	_, err = task.Left().Push(0, stream.Event[int]{Key: "a", Time: 100_000, Value: 1})
	require.NoError(t, err, "Push")
	assert.Equal(t, stream.MinTime, task.Watermark(), "the right input has seen nothing")
	_, err = task.Right().Push(0, stream.Event[int]{Key: "a", Time: 50_000, Value: 2})
	require.NoError(t, err, "Push")
	assert.Equal(t, stream.Time(50_000), task.Watermark(), "right's 50 s (lateness 0) is below left's 90 s")
	v, err := task.Left().Push(1, stream.Event[int]{Key: "a", Time: 60_000, Value: 3})
	require.NoError(t, err, "Push")
	assert.Equal(t, stream.Late, v, "late on the left: below the left's own watermark of 90 s")
	v, err = task.Right().Push(1, stream.Event[int]{Key: "a", Time: 100_000, Value: 4})
	require.NoError(t, err, "Push")
	assert.Equal(t, stream.Accepted, v, "accepted on the right")
	task.Finish()
	assert.Equal(t, []string{"a@100000={Left:1 Right:4}"}, rec.got, "the pair")
	assert.Equal(t, uint64(1), j.Stats().UnmatchedRight, "right at 50 s had no partner")
}

func TestTaskValidates(t *testing.T) {
	var rec textRecorder[float64]
	_, err := stream.NewTask[float64, float64](nil, stream.Input[float64]{}, &rec)
	assert.ErrorIs(t, err, stream.ErrInvalidOption, "nil operator")
	_, err = stream.NewTask[float64, float64](matchDelayOp{}, stream.Input[float64]{Lateness: -1}, &rec)
	assert.ErrorIs(t, err, stream.ErrInvalidOption, "negative lateness")
	task, err := stream.NewTask[float64, float64](matchDelayOp{}, stream.Input[float64]{}, &rec)
	require.NoError(t, err, "NewTask")
	_, err = task.Input().Push(5, stream.Event[float64]{Key: "k", Time: 1})
	require.NoError(t, err, "Push")
	_, err = task.Input().Push(5, stream.Event[float64]{Key: "k", Time: 2})
	assert.ErrorIs(t, err, stream.ErrOffsetOrder, "same offset again")
	assert.ErrorIs(t, task.Input().Skip(4), stream.ErrOffsetOrder, "an earlier offset")
	_, err = task.Input().Restore(stream.Checkpoint{Offset: 9})
	assert.ErrorIs(t, err, stream.ErrOffsetOrder, "Restore after records")
	assert.True(t, strings.Contains(err.Error(), "Restore"), "says what is wrong: %v", err)
}

type matchDelayOp struct{}

func (matchDelayOp) Process(e stream.Event[float64], out stream.Emitter[float64]) { out.Emit(e) }
func (matchDelayOp) Advance(stream.Time, stream.Emitter[float64])                 {}
func (matchDelayOp) Bounds() stream.Bounds                                        { return stream.Bounds{} }

func push[V any](t *testing.T, in *stream.TaskInput[V], l logRec[V]) {
	t.Helper()
	if l.skip {
		require.NoError(t, in.Skip(l.off), "Skip %d", l.off)
		return
	}
	_, err := in.Push(l.off, l.ev)
	require.NoError(t, err, "Push %d", l.off)
}
