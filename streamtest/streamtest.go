// Package streamtest helps test operators, tasks and stages written with
// package stream, the way Tidemark tests its own:
//
//   - Recorder keeps deep copies of what an operator emits (operators reuse
//     the slices they emit, so keeping the values themselves is a bug);
//   - Shuffle gives an arrival order within the allowed lateness, to check
//     that results do not depend on it;
//   - SliceSource and Recorder are a finite stream.Source and a stream.Sink
//     for stream.Run;
//   - Log is a partition (records at offsets), with Replay to feed a task
//     and Restore to rebuild one from a checkpoint;
//   - CheckRecovery crashes a task at random points, rebuilds it from its
//     checkpoints by replay, and compares every result with an
//     uninterrupted run: it checks that an operator's Bounds are right and
//     that its results depend only on the events within them, which
//     exactly-once stages rely on; CheckRecoveryTwoInput does the same for
//     a stream.TwoInput operator over two logs, and also checks its
//     confluence (results that do not depend on how the inputs interleave).
//
// Example:
//
//	log := streamtest.NewLog[float64]()
//	for _, e := range events {
//		log.Append(e)
//	}
//	streamtest.CheckRecovery(t, 1, stream.Input[float64]{Lateness: time.Second}, log,
//		func() stream.Operator[float64, []window.Statistics] { op, _ := window.NewTrailingStatistics(lengths); return op })
//
// and for a two-input operator, over a log of each input:
//
//	streamtest.CheckRecoveryTwoInput(t, 1, stream.Input[Trade]{}, stream.Input[Quote]{}, trades, quotes,
//		func() stream.TwoInput[Trade, Quote, stream.Pair[Trade, Quote]] {
//			j, _ := stream.NewJoin(stream.JoinConfig[Trade, Quote]{})
//			return j
//		})
//
// What belongs here: helpers for tests of operators and tasks, with no
// broker and no store. Whole stages are tested against package kafkatest's
// in-process cluster (kafkaio's Start, Stop, WaitCaughtUp and Faults) and
// the module mongotest's in-process store. It imports only stream and the
// standard library, so that it can be used from any test.
package streamtest

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tidemark-go/tidemark/stream"
)

// Recorder is a stream.Emitter and a stream.Sink (with Flush) that keeps a
// deep copy of every event it receives. It is safe for concurrent use.
type Recorder[T any] struct {
	mu      sync.Mutex
	events  []stream.Event[T]
	flushes int
}

var (
	_ stream.Emitter[int] = (*Recorder[int])(nil)
	_ stream.Sink[int]    = (*Recorder[int])(nil)
	_ stream.Flusher      = (*Recorder[int])(nil)
)

// Emit keeps a copy of e.
func (r *Recorder[T]) Emit(e stream.Event[T]) {
	e.Value = Copy(e.Value)
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// Write keeps a copy of e; it never fails.
func (r *Recorder[T]) Write(_ context.Context, e stream.Event[T]) error {
	r.Emit(e)
	return nil
}

// Flush counts the flushes; it never fails.
func (r *Recorder[T]) Flush(context.Context) error {
	r.mu.Lock()
	r.flushes++
	r.mu.Unlock()
	return nil
}

// Events returns the events received so far, in order.
func (r *Recorder[T]) Events() []stream.Event[T] {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Len returns the number of events received so far.
func (r *Recorder[T]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// Flushes returns the number of Flush calls.
func (r *Recorder[T]) Flushes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flushes
}

// Reset forgets the events received.
func (r *Recorder[T]) Reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}

// Copy returns a deep copy of v: slices, maps, pointers, arrays, structs and
// interfaces are copied, recursively; strings, funcs and channels are
// shared. Unexported struct fields are copied shallowly.
func Copy[T any](v T) T {
	rv := reflect.ValueOf(&v).Elem()
	return deepCopy(rv).Interface().(T)
}

func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			c.Index(i).Set(deepCopy(v.Index(i)))
		}
		return c
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			c.SetMapIndex(deepCopy(it.Key()), deepCopy(it.Value()))
		}
		return c
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		c := reflect.New(v.Type().Elem())
		c.Elem().Set(deepCopy(v.Elem()))
		return c
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		c := reflect.New(v.Type()).Elem()
		c.Set(deepCopy(v.Elem()))
		return c
	case reflect.Array:
		c := reflect.New(v.Type()).Elem()
		for i := range v.Len() {
			c.Index(i).Set(deepCopy(v.Index(i)))
		}
		return c
	case reflect.Struct:
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		for i := range v.NumField() {
			if c.Field(i).CanSet() {
				c.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
		return c
	}
	return v
}

// Shuffle returns evs in a random arrival order in which no event is late
// for the allowed lateness: each event arrives at its time plus a random
// delay below the lateness, so that every event before it has a time above
// its own less the lateness. Feeding the result to a Driver or a Task with
// that lateness must give the same results as feeding evs in time order.
func Shuffle[V any](r *rand.Rand, evs []stream.Event[V], lateness time.Duration) []stream.Event[V] {
	l := stream.DurationOf(lateness)
	type arrival struct {
		at stream.Time
		e  stream.Event[V]
	}
	arr := make([]arrival, len(evs))
	for i, e := range evs {
		var d stream.Time
		if l > 0 {
			d = stream.Time(r.Int64N(int64(l)))
		}
		arr[i] = arrival{e.Time.Add(d), e}
	}
	slices.SortStableFunc(arr, func(a, b arrival) int { return cmp.Compare(a.at, b.at) })
	out := make([]stream.Event[V], len(arr))
	for i, a := range arr {
		out[i] = a.e
	}
	return out
}

// SliceSource is a finite stream.Source: it hands out Records in batches of
// at most Batch (default 512), then io.EOF. It records the done watermarks
// stream.Run checkpoints (stream.Checkpointer).
type SliceSource[T any] struct {
	Records     []stream.Record[T]
	Batch       int
	Checkpoints []stream.Time
}

var (
	_ stream.Source[int]  = (*SliceSource[int])(nil)
	_ stream.Checkpointer = (*SliceSource[int])(nil)
)

// Poll implements stream.Source.
func (s *SliceSource[T]) Poll(ctx context.Context, buf []stream.Record[T]) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(s.Records) == 0 {
		return 0, io.EOF
	}
	batch := s.Batch
	if batch <= 0 {
		batch = 512
	}
	n := copy(buf[:min(len(buf), batch)], s.Records)
	s.Records = s.Records[n:]
	return n, nil
}

// Checkpoint implements stream.Checkpointer.
func (s *SliceSource[T]) Checkpoint(_ context.Context, done stream.Time) error {
	s.Checkpoints = append(s.Checkpoints, done)
	return nil
}

// Log is one partition: records at increasing offsets, each an event or an
// undecodable record (Skip).
type Log[V any] struct {
	recs []LogRecord[V]
	next int64
}

// LogRecord is a record of a Log.
type LogRecord[V any] struct {
	Offset int64
	Event  stream.Event[V]
	Skip   bool // a record without an event (one that could not be decoded)
}

// NewLog returns an empty log whose first offset is 0.
func NewLog[V any]() *Log[V] { return &Log[V]{} }

// Append adds an event at the next offset and returns its offset.
func (l *Log[V]) Append(e stream.Event[V]) int64 {
	l.recs = append(l.recs, LogRecord[V]{Offset: l.next, Event: e})
	l.next++
	return l.next - 1
}

// AppendSkip adds a record without an event at the next offset.
func (l *Log[V]) AppendSkip() int64 {
	l.recs = append(l.recs, LogRecord[V]{Offset: l.next, Skip: true})
	l.next++
	return l.next - 1
}

// Gap leaves n offsets unused, as transaction markers and compaction do.
func (l *Log[V]) Gap(n int64) { l.next += n }

// Records returns the log's records.
func (l *Log[V]) Records() []LogRecord[V] { return l.recs }

// End returns the offset after the last record.
func (l *Log[V]) End() int64 { return l.next }

// Replay pushes the records with offsets in [from, to) into in.
func (l *Log[V]) Replay(in *stream.TaskInput[V], from, to int64) error {
	i, _ := slices.BinarySearchFunc(l.recs, from, func(r LogRecord[V], off int64) int { return cmp.Compare(r.Offset, off) })
	for ; i < len(l.recs) && l.recs[i].Offset < to; i++ {
		r := l.recs[i]
		if r.Skip {
			if err := in.Skip(r.Offset); err != nil {
				return err
			}
			continue
		}
		if _, err := in.Push(r.Offset, r.Event); err != nil {
			return err
		}
	}
	return nil
}

// Restore restores in from cp and replays the records the checkpoint asks
// for, up to cp.Offset; the caller then restores the task's other inputs
// and calls EndReplay.
func (l *Log[V]) Restore(in *stream.TaskInput[V], cp stream.Checkpoint) error {
	from, err := in.Restore(cp)
	if err != nil {
		return err
	}
	return l.Replay(in, from, cp.Offset)
}

// CheckRecovery runs a task with a fresh operator from newOp over log, once
// without interruption and once crashing at random points (seeded by seed):
// it commits now and then (its checkpoint, and the results so far), and at
// random it loses everything since the last commit and is rebuilt from that
// commit by Restore and EndReplay. The results committed must equal the
// uninterrupted run's, record by record; CheckRecovery reports the first
// difference with t.Errorf. It returns the number of results and crashes.
// Results are compared by their text (%+v of a deep copy).
func CheckRecovery[In, Out any](t testing.TB, seed uint64, in stream.Input[In], log *Log[In], newOp func() stream.Operator[In, Out]) (results, crashes int) {
	t.Helper()
	want := runLog(t, in, log, newOp, nil)
	got := runLog(t, in, log, newOp, rand.New(rand.NewPCG(seed, 0x5eed)))
	crashes = got.crashes
	if len(want.out) != len(got.out) {
		t.Errorf("streamtest: recovery (seed %d, %d crashes): %d results, uninterrupted %d", seed, crashes, len(got.out), len(want.out))
	}
	for i := range min(len(want.out), len(got.out)) {
		if want.out[i] != got.out[i] {
			t.Errorf("streamtest: recovery (seed %d, %d crashes): result %d is %s, uninterrupted %s", seed, crashes, i, got.out[i], want.out[i])
			break
		}
	}
	return len(want.out), crashes
}

type logRun struct {
	out     []string
	crashes int
}

type textEmitter[T any] struct{ out *[]string }

func (e textEmitter[T]) Emit(ev stream.Event[T]) {
	*e.out = append(*e.out, fmt.Sprintf("%s@%d=%+v", ev.Key, ev.Time, ev.Value))
}

// runLog runs newOp over log; with r set it crashes at random.
func runLog[In, Out any](t testing.TB, in stream.Input[In], log *Log[In], newOp func() stream.Operator[In, Out], r *rand.Rand) logRun {
	t.Helper()
	var run logRun
	var pending []string
	newTask := func() *stream.Task[In, Out] {
		task, err := stream.NewTask(newOp(), in, textEmitter[Out]{&pending})
		if err != nil {
			t.Fatalf("streamtest: NewTask: %v", err)
		}
		return task
	}
	task := newTask()
	var cp *stream.Checkpoint
	recs := log.Records()
	for i := 0; i < len(recs); i++ {
		rec := recs[i]
		var err error
		if rec.Skip {
			err = task.Input().Skip(rec.Offset)
		} else {
			_, err = task.Input().Push(rec.Offset, rec.Event)
		}
		if err != nil {
			t.Fatalf("streamtest: offset %d: %v", rec.Offset, err)
		}
		if r == nil {
			continue
		}
		switch x := r.IntN(1000); {
		case x < 40:
			if cps := task.Checkpoints(nil); len(cps) == 1 {
				cp = &cps[0].Checkpoint
			}
			run.out = append(run.out, pending...)
			pending = pending[:0]
		case x < 55:
			run.crashes++
			pending = pending[:0]
			task = newTask()
			if cp == nil {
				i = -1 // nothing committed: start over
				continue
			}
			if err := log.Restore(task.Input(), *cp); err != nil {
				t.Fatalf("streamtest: restore from %+v: %v", *cp, err)
			}
			if len(pending) > 0 {
				t.Fatalf("streamtest: the replay emitted %d results", len(pending))
			}
			if err := task.EndReplay(); err != nil {
				t.Fatalf("streamtest: end of replay: %v", err)
			}
			i, _ = slices.BinarySearchFunc(recs, cp.Offset, func(r LogRecord[In], off int64) int { return cmp.Compare(r.Offset, off) })
			i--
		}
	}
	task.Finish()
	run.out = append(run.out, pending...)
	return run
}

// CheckRecoveryTwoInput is CheckRecovery for a two-input operator: it runs a
// stream.TwoInputTask with a fresh operator from newOp over two logs, left
// and right, once without interruption and once crashing at random points,
// each run with its own random interleaving of the two logs (seeded by
// seed). The crashing run commits now and then (both inputs' checkpoints,
// and the results so far), and at random loses everything since the last
// commit and is rebuilt from it: each input that had a checkpoint is
// restored and replayed (Log.Restore), then EndReplay, and the records after
// the checkpoints follow in a new interleaving.
//
// The results committed must be those of the uninterrupted run. A two-input
// operator's results do not depend on how its inputs interleave
// (stream.TwoInput's confluence), but the order in which they come out may,
// so the results are compared as multisets, by their text (%+v of a deep
// copy); CheckRecoveryTwoInput reports the first one missing or in excess
// with t.Errorf. An operator that understates its Bounds, or that is not
// confluent, fails. It returns the number of results of the uninterrupted
// run and the number of crashes.
func CheckRecoveryTwoInput[L, R, Out any](t testing.TB, seed uint64, left stream.Input[L], right stream.Input[R],
	leftLog *Log[L], rightLog *Log[R], newOp func() stream.TwoInput[L, R, Out]) (results, crashes int) {
	t.Helper()
	want := runTwoLogs(t, left, right, leftLog, rightLog, newOp, rand.New(rand.NewPCG(seed, 0x1ef7)), false)
	got := runTwoLogs(t, left, right, leftLog, rightLog, newOp, rand.New(rand.NewPCG(seed, 0x5eed)), true)
	crashes = got.crashes
	if msg := multisetDiff(got.out, want.out); msg != "" {
		t.Errorf("streamtest: recovery of a two-input operator (seed %d, %d crashes): %s", seed, crashes, msg)
	}
	return len(want.out), crashes
}

// multisetDiff describes the first result that got and want do not hold the
// same number of times, or returns "".
func multisetDiff(got, want []string) string {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	for i, j := 0, 0; i < len(g) || j < len(w); {
		switch {
		case j == len(w) || (i < len(g) && g[i] < w[j]):
			return fmt.Sprintf("%d results, uninterrupted %d: %s is not among the uninterrupted run's results (or comes out more often)", len(g), len(w), g[i])
		case i == len(g) || w[j] < g[i]:
			return fmt.Sprintf("%d results, uninterrupted %d: %s is missing (or comes out less often)", len(g), len(w), w[j])
		}
		i++
		j++
	}
	return ""
}

// runTwoLogs runs newOp over the two logs in an interleaving drawn from r;
// with crash set it also commits and crashes at random.
func runTwoLogs[L, R, Out any](t testing.TB, left stream.Input[L], right stream.Input[R], leftLog *Log[L], rightLog *Log[R],
	newOp func() stream.TwoInput[L, R, Out], r *rand.Rand, crash bool) logRun {
	t.Helper()
	var run logRun
	var pending []string
	newTask := func() *stream.TwoInputTask[L, R, Out] {
		task, err := stream.NewTwoInputTask(newOp(), left, right, textEmitter[Out]{&pending})
		if err != nil {
			t.Fatalf("streamtest: NewTwoInputTask: %v", err)
		}
		return task
	}
	task := newTask()
	var cpLeft, cpRight *stream.Checkpoint // the last commit's
	recsL, recsR := leftLog.Records(), rightLog.Records()
	for i, j := 0, 0; i < len(recsL) || j < len(recsR); {
		// Each interleaving of what is left is equally likely.
		if nl, nr := len(recsL)-i, len(recsR)-j; nl > 0 && r.IntN(nl+nr) < nl {
			pushRecord(t, "left", task.Left(), recsL[i])
			i++
		} else {
			pushRecord(t, "right", task.Right(), recsR[j])
			j++
		}
		if !crash {
			continue
		}
		switch x := r.IntN(1000); {
		case x < 40:
			cpLeft, cpRight = nil, nil
			for _, cp := range task.Checkpoints(nil) {
				if cp.Input == 0 {
					cpLeft = &cp.Checkpoint
				} else {
					cpRight = &cp.Checkpoint
				}
			}
			run.out = append(run.out, pending...)
			pending = pending[:0]
		case x < 55:
			run.crashes++
			pending = pending[:0]
			task = newTask()
			i, j = 0, 0
			if cpLeft == nil && cpRight == nil {
				continue // nothing committed: start over
			}
			if cpLeft != nil {
				if err := leftLog.Restore(task.Left(), *cpLeft); err != nil {
					t.Fatalf("streamtest: restore the left input from %+v: %v", *cpLeft, err)
				}
				i = recordIndex(recsL, cpLeft.Offset)
			}
			if cpRight != nil {
				if err := rightLog.Restore(task.Right(), *cpRight); err != nil {
					t.Fatalf("streamtest: restore the right input from %+v: %v", *cpRight, err)
				}
				j = recordIndex(recsR, cpRight.Offset)
			}
			if len(pending) > 0 {
				t.Fatalf("streamtest: the replay emitted %d results", len(pending))
			}
			if err := task.EndReplay(); err != nil {
				t.Fatalf("streamtest: end of replay: %v", err)
			}
		}
	}
	task.Finish()
	run.out = append(run.out, pending...)
	return run
}

// pushRecord pushes or skips rec into in.
func pushRecord[V any](t testing.TB, side string, in *stream.TaskInput[V], rec LogRecord[V]) {
	t.Helper()
	var err error
	if rec.Skip {
		err = in.Skip(rec.Offset)
	} else {
		_, err = in.Push(rec.Offset, rec.Event)
	}
	if err != nil {
		t.Fatalf("streamtest: %s offset %d: %v", side, rec.Offset, err)
	}
}

// recordIndex returns the index of the first record at or after offset.
func recordIndex[V any](recs []LogRecord[V], offset int64) int {
	i, _ := slices.BinarySearchFunc(recs, offset, func(r LogRecord[V], off int64) int { return cmp.Compare(r.Offset, off) })
	return i
}
