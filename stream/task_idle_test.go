package stream_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
)

// step is one thing that happens to a task's input: a record, or a quiet
// spell that the runtime reports with Idle.
type step struct {
	rec  logRec[float64]
	idle time.Duration // > 0: a quiet spell of this much wall time
}

// quietLog is messyLog with quiet spells: after a record, sometimes the
// input goes quiet (Idle), sometimes several times in a row (the runtime
// reports a growing elapsed time), and the events that come after a spell
// are sometimes from before it, as a producer that flushes a backlog.
func quietLog(r *rand.Rand, n int, lateness stream.Time) (steps []step, idleLate int) {
	recs := messyLog(r, n, lateness)
	for i := 0; i < len(recs); i++ {
		steps = append(steps, step{rec: recs[i]})
		if r.IntN(40) != 0 || recs[i].skip {
			continue
		}
		elapsed := time.Duration(1+r.IntN(30)) * time.Second
		for range 1 + r.IntN(3) {
			steps = append(steps, step{idle: elapsed})
			elapsed += time.Duration(r.IntN(5000)) * time.Millisecond
		}
		// A backlog after the spell: events from a few seconds before the
		// last one, which the idle advance may have made late.
		last := recs[i]
		for range r.IntN(4) {
			i++
			if i >= len(recs) {
				break
			}
			rec := recs[i]
			if !rec.skip {
				rec.ev.Time = last.ev.Time - stream.Time(r.IntN(int(lateness)+3000)) + stream.Time(r.IntN(2000))
				idleLate++
			}
			steps = append(steps, step{rec: rec})
		}
	}
	return steps, idleLate
}

type idleCase struct {
	name     string
	lateness time.Duration
	newOp    func(t *testing.T) stream.Operator[float64, string]
}

type textOut[T any] struct{ out stream.Emitter[string] }

func (e *textOut[T]) Emit(ev stream.Event[T]) {
	e.out.Emit(stream.Event[string]{Key: ev.Key, Time: ev.Time, Value: textOf(ev)})
}

func textOp[T any](op stream.Operator[float64, T]) stream.Operator[float64, string] {
	return &textOpImpl[T]{op: op}
}

type textOpImpl[T any] struct {
	op  stream.Operator[float64, T]
	out textOut[T]
}

func (o *textOpImpl[T]) Process(e stream.Event[float64], out stream.Emitter[string]) {
	o.out.out = out
	o.op.Process(e, &o.out)
}

func (o *textOpImpl[T]) Advance(wm stream.Time, out stream.Emitter[string]) {
	o.out.out = out
	o.op.Advance(wm, &o.out)
}

func (o *textOpImpl[T]) Bounds() stream.Bounds { return o.op.Bounds() }

func idleCases() []idleCase {
	tr, la, ch := trailingCase(), lookaheadCase(), chainCase()
	return []idleCase{
		{tr.name, tr.lateness, func(t *testing.T) stream.Operator[float64, string] { return textOp(tr.newOp(t)) }},
		{la.name, la.lateness, func(t *testing.T) stream.Operator[float64, string] { return textOp(la.newOp(t)) }},
		{ch.name, ch.lateness, func(t *testing.T) stream.Operator[float64, string] { return textOp(ch.newOp(t)) }},
	}
}

// TestTaskIdleRecovery: a task whose input goes quiet is advanced by Idle,
// and some events that come after the quiet spell are late only because of
// that advance. A task that loses its state at random points and is rebuilt
// from its last checkpoint (whose metadata carries the idle advance's floor
// and those late records) emits exactly what the uninterrupted task emits,
// as long as it is told of the same quiet spells after the checkpoint: the
// replay takes the same records as late, and the results the idle advance
// made final are not emitted twice.
func TestTaskIdleRecovery(t *testing.T) {
	for _, c := range idleCases() {
		for _, seed := range []uint64{1, 2, 3, 4, 5, 6} {
			t.Run(fmt.Sprintf("%s/seed=%d", c.name, seed), func(t *testing.T) {
				t.Logf("seed %d", seed)
				r := rand.New(rand.NewPCG(seed, 0x1d1e))
				steps, backlog := quietLog(r, 3000, stream.DurationOf(c.lateness))
				in := stream.Input[float64]{Lateness: c.lateness}
				want, wantStats := runSteps(t, c, in, steps, nil)
				got, gotStats := runSteps(t, c, in, steps, rand.New(rand.NewPCG(seed, 0xc4a5)))
				require.Positive(t, got.crashes, "crashed at least once")
				require.Positive(t, wantStats.idleLate, "some records were late only because of an idle advance (of %d after quiet spells)", backlog)
				require.Positive(t, got.restoredLate, "a rebuild restored idle-late records from a checkpoint")
				require.Equal(t, len(want.out), len(got.out), "results")
				for i := range want.out {
					require.Equal(t, want.out[i], got.out[i], "result %d after %d crashes", i, got.crashes)
				}
				t.Logf("%d results identical to the uninterrupted run after %d crashes; %d records idle-late, %d rebuilds restored some",
					len(want.out), got.crashes, wantStats.idleLate, got.restoredLate)
				_ = gotStats // counts records pushed again after a crash too
			})
		}
	}
}

type stepsRun struct {
	out          []string
	crashes      int
	restoredLate int
}

type stepsStats struct{ idleLate int }

// runSteps runs a task over steps; with r set it checkpoints and crashes at
// random, rebuilding from the last checkpoint as a runtime does.
func runSteps(t *testing.T, c idleCase, in stream.Input[float64], steps []step, r *rand.Rand) (stepsRun, stepsStats) {
	t.Helper()
	var run stepsRun
	var st stepsStats
	var pending []string
	rec := stream.EmitFunc[string](func(e stream.Event[string]) { pending = append(pending, e.Value) })
	newTask := func() *stream.Task[float64, string] {
		task, err := stream.NewTask(c.newOp(t), in, rec)
		require.NoError(t, err, "NewTask")
		return task
	}
	task := newTask()
	var cp *stream.Checkpoint
	cpStep := 0 // the step after the checkpoint
	for i := 0; i < len(steps); i++ {
		s := steps[i]
		if s.idle > 0 {
			task.Input().Idle(s.idle)
		} else {
			before := task.Input().Stats()
			wmBefore := task.Input().Watermark()
			push(t, task.Input(), s.rec)
			after := task.Input().Stats()
			if after.Late > before.Late && wmBefore > stream.MinTime && s.rec.ev.Time >= maxBefore(steps[:i])-stream.DurationOf(in.Lateness) {
				st.idleLate++
			}
		}
		if r == nil {
			continue
		}
		switch x := r.IntN(1000); {
		case x < 40: // commit
			if cps := task.Checkpoints(nil); len(cps) == 1 {
				cp = &cps[0].Checkpoint
				cpStep = i + 1
				run.out = append(run.out, pending...)
				pending = pending[:0]
			}
		case x < 50: // crash: what was not committed is lost
			run.crashes++
			pending = pending[:0]
			task = newTask()
			if cp == nil {
				i = -1 // from the start
				continue
			}
			from, err := task.Input().Restore(*cp)
			require.NoError(t, err, "Restore %q", cp.Metadata)
			if strings.Contains(cp.Metadata, " x=") {
				run.restoredLate++
			}
			for _, s := range steps {
				if s.idle == 0 && s.rec.off >= from && s.rec.off < cp.Offset {
					push(t, task.Input(), s.rec)
				}
			}
			require.NoError(t, task.EndReplay(), "EndReplay")
			require.Empty(t, pending, "nothing emitted during the replay")
			i = cpStep - 1
		}
	}
	task.Finish()
	run.out = append(run.out, pending...)
	return run, st
}

// maxBefore is the largest event time among the records of steps.
func maxBefore(steps []step) stream.Time {
	m := stream.MinTime
	for _, s := range steps {
		if s.idle == 0 && !s.rec.skip {
			m = max(m, s.rec.ev.Time)
		}
	}
	return m
}

// TestTaskIdle: Idle raises the watermark by the wall time since the last
// record, never below it and never for an input without events; results
// it makes final come out; a later event below the raised watermark is late
// and the checkpoint names it (x) with the floor (f).
func TestTaskIdle(t *testing.T) {
	var rec textRecorder[[]window.Statistics]
	tr, err := window.NewTrailingStatistics([]time.Duration{10 * time.Second})
	require.NoError(t, err, "NewTrailingStatistics")
	task, err := stream.NewTask(tr, stream.Input[float64]{Lateness: 2 * time.Second}, &rec)
	require.NoError(t, err, "NewTask")
	in := task.Input()
	in.Idle(time.Hour)
	assert.Equal(t, stream.MinTime, task.Watermark(), "no event yet: nothing to advance from")
	_, err = in.Push(5, stream.Event[float64]{Key: "k", Time: 100_000, Value: 1})
	require.NoError(t, err, "Push")
	assert.Equal(t, stream.Time(98_000), task.Watermark(), "largest time less the lateness")
	assert.Empty(t, rec.got, "the event waits for the watermark")
	in.Idle(time.Second)
	assert.Equal(t, stream.Time(99_000), task.Watermark(), "one second of quiet: one second on")
	assert.Empty(t, rec.got, "still not final")
	in.Idle(2500 * time.Millisecond)
	assert.Equal(t, stream.Time(100_500), task.Watermark(), "2.5 s of quiet")
	assert.Len(t, rec.got, 1, "the event is final and its result out")
	in.Idle(time.Second)
	assert.Equal(t, stream.Time(100_500), task.Watermark(), "a shorter quiet spell does not lower it")

	v, err := in.Push(6, stream.Event[float64]{Key: "k", Time: 99_000, Value: 2})
	require.NoError(t, err, "Push")
	assert.Equal(t, stream.Late, v, "within the lateness of the largest time, but below the idle watermark")
	v, err = in.Push(8, stream.Event[float64]{Key: "k", Time: 100_200, Value: 3})
	require.NoError(t, err, "Push")
	assert.Equal(t, stream.Late, v, "also late; the range grows over the offset gap")
	v, err = in.Push(9, stream.Event[float64]{Key: "k", Time: 101_000, Value: 4})
	require.NoError(t, err, "Push")
	assert.Equal(t, stream.Accepted, v, "above the idle watermark")
	cps := task.Checkpoints(nil)
	require.Len(t, cps, 1, "checkpoint")
	assert.Equal(t, "tm2 r=5 m=101000 w=100500 f=100500 x=6+2", cps[0].Metadata, "the floor and the idle-late records 6 to 8")

	// Rebuilt from the checkpoint, the replay takes 6 and 8 as late again.
	var rec2 textRecorder[[]window.Statistics]
	tr2, err := window.NewTrailingStatistics([]time.Duration{10 * time.Second})
	require.NoError(t, err, "NewTrailingStatistics")
	t2, err := stream.NewTask(tr2, stream.Input[float64]{Lateness: 2 * time.Second}, &rec2)
	require.NoError(t, err, "NewTask")
	from, err := t2.Input().Restore(cps[0].Checkpoint)
	require.NoError(t, err, "Restore")
	require.Equal(t, int64(5), from, "replay from")
	for _, p := range []struct {
		off int64
		tm  stream.Time
		v   float64
	}{{5, 100_000, 1}, {6, 99_000, 2}, {8, 100_200, 3}, {9, 101_000, 4}} {
		_, err := t2.Input().Push(p.off, stream.Event[float64]{Key: "k", Time: p.tm, Value: p.v})
		require.NoError(t, err, "replay %d", p.off)
	}
	require.NoError(t, t2.EndReplay(), "EndReplay")
	assert.Equal(t, stream.Time(100_500), t2.Watermark(), "the floor is restored")
	assert.Empty(t, rec2.got, "what the idle advance emitted before the checkpoint is not emitted again")
	_, err = t2.Input().Push(10, stream.Event[float64]{Key: "k", Time: 105_000, Value: 5})
	require.NoError(t, err, "Push")
	_, err = in.Push(10, stream.Event[float64]{Key: "k", Time: 105_000, Value: 5})
	require.NoError(t, err, "Push")
	assert.Equal(t, rec.got[1:], rec2.got, "the rebuilt task goes on as the original: the event at 101 s counts 2 events, not 4")
	assert.Contains(t, rec2.got[0], "Count:2", "the idle-late events are not in the window")
}

// TestTaskTooFarAhead: an event more than MaxAhead ahead of its record's
// timestamp, or without one of the largest time taken, is refused and does
// not move the watermark; the replay refuses it again.
func TestTaskTooFarAhead(t *testing.T) {
	var rec textRecorder[[]window.Statistics]
	tr, err := window.NewTrailingStatistics([]time.Duration{10 * time.Second})
	require.NoError(t, err, "NewTrailingStatistics")
	in := stream.Input[float64]{Lateness: time.Second, MaxAhead: time.Hour}
	task, err := stream.NewTask(tr, in, &rec)
	require.NoError(t, err, "NewTask")
	const hour = stream.Time(3_600_000)
	year2099 := stream.Time(4_070_908_800_000)
	v, err := task.Input().PushStamped(1, stream.Event[float64]{Key: "k", Time: year2099}, 1_000_000)
	require.NoError(t, err, "PushStamped")
	assert.Equal(t, stream.TooFarAhead, v, "the partition's first event, 2099, stamped 1970: refused against its stamp")
	assert.Equal(t, stream.MinTime, task.Watermark(), "the watermark did not move")
	v, err = task.Input().PushStamped(2, stream.Event[float64]{Key: "k", Time: 1_000_000 + hour}, 1_000_000)
	require.NoError(t, err, "PushStamped")
	assert.Equal(t, stream.Accepted, v, "exactly MaxAhead ahead of the stamp is fine")
	v, err = task.Input().Push(3, stream.Event[float64]{Key: "k", Time: 1_000_000 + 2*hour + 1})
	require.NoError(t, err, "Push")
	assert.Equal(t, stream.TooFarAhead, v, "no stamp: more than MaxAhead ahead of the largest time taken")
	v, err = task.Input().Push(4, stream.Event[float64]{Key: "k", Time: 1_000_000 + 2*hour})
	require.NoError(t, err, "Push")
	assert.Equal(t, stream.Accepted, v, "no stamp: exactly MaxAhead ahead")
	v, err = task.Input().PushStamped(5, stream.Event[float64]{Key: "k", Time: year2099}, stream.MinTime)
	require.NoError(t, err, "PushStamped")
	assert.Equal(t, stream.TooFarAhead, v, "a MinTime stamp is no stamp")
	assert.Equal(t, stream.Time(1_000_000+2*hour-1000), task.Watermark(), "the refused events never moved the watermark")
	assert.Equal(t, uint64(3), task.Input().Stats().Ahead, "counted")
	cps := task.Checkpoints(nil)
	require.Len(t, cps, 1, "checkpoint")

	t2, err := stream.NewTask(tr, in, &rec)
	require.NoError(t, err, "NewTask")
	_, err = t2.Input().Restore(stream.Checkpoint{Offset: 6, Metadata: "tm2 r=1 m=" + fmt.Sprint(int64(1_000_000+2*hour))})
	require.NoError(t, err, "Restore")
	_, err = t2.Input().PushStamped(1, stream.Event[float64]{Key: "k", Time: year2099}, 1_000_000)
	require.NoError(t, err, "replay")
	_, err = t2.Input().PushStamped(2, stream.Event[float64]{Key: "k", Time: 1_000_000 + hour}, 1_000_000)
	require.NoError(t, err, "replay")
	_, err = t2.Input().Push(3, stream.Event[float64]{Key: "k", Time: 1_000_000 + 2*hour + 1})
	require.NoError(t, err, "replay")
	_, err = t2.Input().Push(4, stream.Event[float64]{Key: "k", Time: 1_000_000 + 2*hour})
	require.NoError(t, err, "replay")
	require.NoError(t, t2.EndReplay(), "the replay refuses the same events and reaches the checkpoint's largest time")
	assert.Equal(t, task.Watermark(), t2.Watermark(), "same watermark")

	_, err = stream.NewTask(tr, stream.Input[float64]{MaxAhead: -time.Second}, &rec)
	assert.ErrorIs(t, err, stream.ErrInvalidOption, "negative MaxAhead")
}

// TestTaskOrigin: the records of the released events are known while their
// results may still come: at once for a trailing window (no reach ahead),
// for the horizon for a lookahead; Trigger names the record being pushed.
func TestTaskOrigin(t *testing.T) {
	la := lookaheadCase()
	var seen []stream.Origin
	var task *stream.Task[float64, string]
	out := stream.EmitFunc[string](func(e stream.Event[string]) {
		o, ok := task.Origin(e.Key, e.Time)
		require.True(t, ok, "the origin of %s@%d is known when it is emitted", e.Key, e.Time)
		seen = append(seen, o)
	})
	task, err := stream.NewTask(textOp(la.newOp(t)), stream.Input[float64]{}, out)
	require.NoError(t, err, "NewTask")
	for i, tm := range []stream.Time{1000, 2000, 3000, 30_000, 60_000} {
		_, err := task.Input().Push(int64(100+i), stream.Event[float64]{Key: "k", Time: tm, Value: float64(10 - i)})
		require.NoError(t, err, "Push")
	}
	task.Finish()
	want := []stream.Origin{{0, 100}, {0, 101}, {0, 102}, {0, 103}, {0, 104}}
	assert.Equal(t, want, seen, "every result's origin is its event's record")
	_, ok := task.Origin("k", 1000)
	assert.False(t, ok, "forgotten once every result of the event is out")
	_, ok = task.Trigger()
	assert.False(t, ok, "no Push under way")

	var trig []stream.Origin
	tr := trailingCase()
	var t2 *stream.Task[float64, string]
	t2, err = stream.NewTask(textOp(tr.newOp(t)), stream.Input[float64]{}, stream.EmitFunc[string](func(e stream.Event[string]) {
		o, ok := t2.Trigger()
		require.True(t, ok, "emitted during a Push")
		trig = append(trig, o)
		_, ok = t2.Origin(e.Key, e.Time)
		require.True(t, ok, "origin known")
	}))
	require.NoError(t, err, "NewTask")
	for i, tm := range []stream.Time{1000, 2000} {
		_, err := t2.Input().Push(int64(i), stream.Event[float64]{Key: "k", Time: tm})
		require.NoError(t, err, "Push")
	}
	assert.Equal(t, []stream.Origin{{0, 1}}, trig, "the event at 1 s became final when the record at offset 1 was pushed")
	_, ok = t2.Origin("k", 1000)
	assert.False(t, ok, "a trailing window's event is forgotten once released")
}
