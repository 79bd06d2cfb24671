package stream

import (
	"errors"
	"fmt"
	"time"

	"github.com/tidemark-go/tidemark/internal/ring"
)

// A Task runs one operator over one partition of each of its inputs: the unit
// of work, state and recovery of a streaming stage, as in Kafka Streams. A
// stage reading a topic of six partitions runs six tasks, wherever its
// members are; a stage joining two co-partitioned topics runs one task per
// partition number, fed by partition p of both topics.
//
// Each input of a task has its own watermark (the largest event time it has
// seen less its allowed lateness) and its own Sequencer, which drops late
// events and duplicates and releases the others in order. The task's
// watermark, the operator's, is the smallest of its inputs'. A key never
// crosses partitions, so a task holds every event of its keys and its results
// are exact; an empty or slow partition holds back only its own task.
//
// # Positions and checkpoints
//
// Records come with their offsets in the partition (increasing, with gaps
// allowed). Checkpoint returns, per input, the offset to commit (just past the
// last record pushed) and a metadata string, under 100 bytes, that says how to
// rebuild the task's state from the partition alone, with no store besides
// Kafka:
//
//   - r, the replay offset: where the records that the results still to come
//     depend on begin. With W the task's watermark and Bounds the operator's,
//     the results not emitted yet have times above W - Ahead (Operator's
//     contract) and depend on events at or after W - Ahead - Back; r is the
//     offset of the first record with such a time. It is tracked exactly,
//     without timestamp lookups (so record timestamps may be anything), by
//     keeping the records that raised the partition's largest time, which
//     are the only candidates, in O(1) amortized per record;
//   - m, the partition's largest event time at the checkpoint, which the
//     replay checks;
//   - w, the task's watermark, for the record.
//
// # Recovery by replay
//
// A task rebuilt from a checkpoint (Restore on each input, then Push of the
// records from the replay offset up to the checkpoint's offset, then
// EndReplay) emits nothing while it replays, and then exactly what the
// original task would have emitted after the checkpoint. Why: the record at r
// raised the partition's largest time, so from it on the replay sees the same
// watermarks as the original run and takes the same late and duplicate
// decisions; all the records with times at or after W - Ahead - Back are
// replayed, since r is the first of them; the
// operator's results that were not final at W depend only on those
// (Operator's contract), while every result that was final at W was emitted,
// by the original and by the replay alike, before the checkpoint. For two
// inputs the interleaving of the replay differs from the original's, which a
// TwoInput's confluence makes harmless. EndReplay reports ErrReplayMismatch
// when the replayed records do not end at the largest time the checkpoint
// recorded (records deleted by retention, or a partition rewritten).
//
// A Task is not safe for concurrent use.
type Task[In, Out any] struct {
	core taskCore
	in   TaskInput[In]
	op   Operator[In, Out]
	out  gate[Out]
	rel  processEmitter[In, Out]
}

// TwoInputTask is a Task for a TwoInput operator: its inputs are Left and
// Right, each with its own lateness, sequencer and watermark.
type TwoInputTask[L, R, Out any] struct {
	core  taskCore
	left  TaskInput[L]
	right TaskInput[R]
	op    TwoInput[L, R, Out]
	out   gate[Out]
	relL  leftEmitter[L, R, Out]
	relR  rightEmitter[L, R, Out]
}

// Input configures one input of a task.
type Input[V any] struct {
	// Lateness is the allowed lateness of the input: an event more than this
	// much older than the largest time seen is late. Inputs produced by a
	// Tidemark stage are in order and can use 0.
	Lateness time.Duration
	// OnLate, if set, receives the late events that are dropped, except
	// during a replay. The value is only valid during the call.
	OnLate func(Event[V])
}

// Checkpoint is where a task stands in one input partition: the offset to
// commit and the metadata to commit with it.
type Checkpoint struct {
	Offset   int64  // the next offset to read
	Metadata string // how to rebuild the task's state; see Task
}

// InputStats counts what a task did with the records of one input.
type InputStats struct {
	Accepted   uint64 // held and, once final, processed
	Late       uint64 // dropped: time below the input's watermark
	Duplicates uint64 // dropped: same (key, time) as an event already held
	Skipped    uint64 // records without an event (Skip), such as undecodable ones
	Replayed   uint64 // records pushed during a replay, not counted above
}

// NewTask returns a task that feeds the records of one input partition
// through op into out.
func NewTask[In, Out any](op Operator[In, Out], in Input[In], out Emitter[Out]) (*Task[In, Out], error) {
	if op == nil || out == nil {
		return nil, fmt.Errorf("%w: nil operator or emitter", ErrInvalidOption)
	}
	t := &Task[In, Out]{op: op}
	if err := t.core.init(op.Bounds(), 1, t.advance); err != nil {
		return nil, err
	}
	t.out = gate[Out]{core: &t.core, out: out}
	t.rel = processEmitter[In, Out]{op: op, out: &t.out}
	if err := t.in.init(&t.core, 0, in, &t.rel); err != nil {
		return nil, err
	}
	return t, nil
}

// NewTwoInputTask returns a task that feeds the records of one partition of
// each input through op into out.
func NewTwoInputTask[L, R, Out any](op TwoInput[L, R, Out], left Input[L], right Input[R], out Emitter[Out]) (*TwoInputTask[L, R, Out], error) {
	if op == nil || out == nil {
		return nil, fmt.Errorf("%w: nil operator or emitter", ErrInvalidOption)
	}
	t := &TwoInputTask[L, R, Out]{op: op}
	if err := t.core.init(op.Bounds(), 2, t.advance); err != nil {
		return nil, err
	}
	t.out = gate[Out]{core: &t.core, out: out}
	t.relL = leftEmitter[L, R, Out]{op: op, out: &t.out}
	t.relR = rightEmitter[L, R, Out]{op: op, out: &t.out}
	if err := t.left.init(&t.core, 0, left, &t.relL); err != nil {
		return nil, err
	}
	if err := t.right.init(&t.core, 1, right, &t.relR); err != nil {
		return nil, err
	}
	return t, nil
}

// Input returns the task's input.
func (t *Task[In, Out]) Input() *TaskInput[In] { return &t.in }

// Left returns the task's left input.
func (t *TwoInputTask[L, R, Out]) Left() *TaskInput[L] { return &t.left }

// Right returns the task's right input.
func (t *TwoInputTask[L, R, Out]) Right() *TaskInput[R] { return &t.right }

func (t *Task[In, Out]) advance(wm Time)           { t.op.Advance(wm, &t.out) }
func (t *TwoInputTask[L, R, Out]) advance(wm Time) { t.op.Advance(wm, &t.out) }

// Watermark returns the task's watermark: the smallest of its inputs'.
func (t *Task[In, Out]) Watermark() Time { return t.core.wm }

// Watermark returns the task's watermark: the smallest of its inputs'.
func (t *TwoInputTask[L, R, Out]) Watermark() Time { return t.core.wm }

// Replaying reports whether the task is replaying: from the first Restore
// to EndReplay. Nothing it emits meanwhile reaches the emitter; a runtime
// also holds back its own side outputs (dead letters) while it replays.
func (t *Task[In, Out]) Replaying() bool { return t.core.replaying }

// Replaying reports whether the task is replaying; see Task.Replaying.
func (t *TwoInputTask[L, R, Out]) Replaying() bool { return t.core.replaying }

// EndReplay ends a replay: from now on results reach the emitter. It returns
// an error wrapping ErrReplayMismatch if an input's replay did not reproduce
// the checkpoint (the task goes on either way).
func (t *Task[In, Out]) EndReplay() error { return t.core.endReplay() }

// EndReplay ends a replay; see Task.EndReplay.
func (t *TwoInputTask[L, R, Out]) EndReplay() error { return t.core.endReplay() }

// Checkpoints appends the checkpoint of each input that has a position (one
// that was restored or has seen a record) to dst, as (input index,
// checkpoint) pairs in input order, and returns the extended slice.
func (t *Task[In, Out]) Checkpoints(dst []InputCheckpoint) []InputCheckpoint {
	return t.core.checkpoints(dst)
}

// Checkpoints appends the checkpoints of the inputs; see Task.Checkpoints.
// The left input is index 0, the right one 1.
func (t *TwoInputTask[L, R, Out]) Checkpoints(dst []InputCheckpoint) []InputCheckpoint {
	return t.core.checkpoints(dst)
}

// InputCheckpoint is the checkpoint of one input of a task.
type InputCheckpoint struct {
	Input int // 0 for a Task's input and a TwoInputTask's left, 1 for its right
	Checkpoint
}

// Finish is end of input: every input's watermark jumps to MaxTime and
// everything flushes. It is for finite inputs (tests, batch jobs); a task
// that finished accepts no more records.
func (t *Task[In, Out]) Finish() { t.in.finish(); t.core.raise() }

// Finish is end of input; see Task.Finish.
func (t *TwoInputTask[L, R, Out]) Finish() {
	t.left.finish()
	t.right.finish()
	t.core.raise()
}

// gate forwards the operator's output unless the task is replaying.
type gate[Out any] struct {
	core *taskCore
	out  Emitter[Out]
}

func (g *gate[Out]) Emit(e Event[Out]) {
	if !g.core.replaying {
		g.out.Emit(e)
	}
}

type processEmitter[In, Out any] struct {
	op  Operator[In, Out]
	out *gate[Out]
}

func (p *processEmitter[In, Out]) Emit(e Event[In]) { p.op.Process(e, p.out) }

type leftEmitter[L, R, Out any] struct {
	op  TwoInput[L, R, Out]
	out *gate[Out]
}

func (p *leftEmitter[L, R, Out]) Emit(e Event[L]) { p.op.ProcessLeft(e, p.out) }

type rightEmitter[L, R, Out any] struct {
	op  TwoInput[L, R, Out]
	out *gate[Out]
}

func (p *rightEmitter[L, R, Out]) Emit(e Event[R]) { p.op.ProcessRight(e, p.out) }

// taskCore is what a task's inputs share: the task watermark, the operator's
// reach and the replay state.
type taskCore struct {
	inputs    []*inputState
	wm        Time
	back      Time // operator's reach, in milliseconds
	ahead     Time
	advanceOp func(Time)
	replaying bool
}

func (c *taskCore) init(b Bounds, n int, advance func(Time)) error {
	if err := b.check(); err != nil {
		return err
	}
	c.wm, c.back, c.ahead, c.advanceOp = MinTime, b.back(), b.ahead(), advance
	c.inputs = make([]*inputState, 0, n)
	return nil
}

// raise recomputes the task watermark and advances the operator when it rose.
func (c *taskCore) raise() {
	wm := MaxTime
	for _, in := range c.inputs {
		wm = min(wm, in.wm)
	}
	if wm > c.wm {
		c.wm = wm
		c.advanceOp(wm)
	}
}

// need is the earliest event time that results still to come may depend on.
func (c *taskCore) need() Time { return c.wm.Add(-c.ahead).Add(-c.back) }

func (c *taskCore) endReplay() error {
	c.replaying = false
	var errs []error
	for i, in := range c.inputs {
		if err := in.endReplay(); err != nil {
			errs = append(errs, fmt.Errorf("input %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

func (c *taskCore) checkpoints(dst []InputCheckpoint) []InputCheckpoint {
	need := c.need()
	for i, in := range c.inputs {
		if cp, ok := in.checkpoint(need, c.wm); ok {
			dst = append(dst, InputCheckpoint{Input: i, Checkpoint: cp})
		}
	}
	return dst
}

// inputState is the part of an input that does not depend on its value type.
type inputState struct {
	lateness Time
	max      Time  // largest event time seen (or seeded)
	wm       Time  // max - lateness
	next     int64 // the offset after the last record pushed; -1 when unknown
	resume   int64 // a restored checkpoint's offset; records below it are replayed
	check    Time  // the checkpoint's largest time, which the replay must reach; MinTime if none
	restored bool
	track    replayTracker
	stats    InputStats
}

// TaskInput is one input of a task: records of one partition are pushed
// into it in offset order.
type TaskInput[V any] struct {
	core    *taskCore
	st      inputState
	seq     Sequencer[V]
	deliver Emitter[V]
	onLate  func(Event[V])
}

func (in *TaskInput[V]) init(core *taskCore, _ int, cfg Input[V], deliver Emitter[V]) error {
	if cfg.Lateness < 0 {
		return fmt.Errorf("%w: negative lateness %v", ErrInvalidOption, cfg.Lateness)
	}
	in.core, in.deliver, in.onLate = core, deliver, cfg.OnLate
	in.st = inputState{lateness: DurationOf(cfg.Lateness), max: MinTime, wm: MinTime, next: -1, resume: -1, check: MinTime}
	in.seq.wm = MinTime
	core.inputs = append(core.inputs, &in.st)
	return nil
}

// Restore sets the input's position from a committed checkpoint and returns
// the offset from which the records must be replayed (Push) up to
// cp.Offset before EndReplay; it equals cp.Offset when there is nothing to
// replay. Empty metadata means a position with no state, such as an offset
// committed by another tool. Restore must come before any Push. It puts the
// task in replay until EndReplay, even with nothing to replay, so that the
// runtime restores every input first.
func (in *TaskInput[V]) Restore(cp Checkpoint) (replayFrom int64, err error) {
	st := &in.st
	if st.next >= 0 || st.restored {
		return 0, fmt.Errorf("%w: Restore after the input has a position", ErrOffsetOrder)
	}
	if cp.Offset < 0 {
		return 0, fmt.Errorf("%w: checkpoint offset %d", ErrInvalidCheckpoint, cp.Offset)
	}
	st.restored, st.resume, st.next = true, cp.Offset, cp.Offset
	in.core.replaying = true
	if cp.Metadata == "" {
		return cp.Offset, nil
	}
	m, perr := parseMeta(cp.Metadata)
	if perr != nil || m.r > cp.Offset {
		if perr == nil {
			perr = fmt.Errorf("replay offset %d beyond the checkpoint's %d", m.r, cp.Offset)
		}
		return cp.Offset, fmt.Errorf("%w: %q: %w", ErrInvalidCheckpoint, cp.Metadata, perr)
	}
	st.next, st.check = m.r, m.m
	return m.r, nil
}

// Push processes the record at offset, which carries e: the event is
// offered to the input's sequencer (its verdict is returned), the input's
// watermark rises with it, and what becomes final flows through the operator.
// Offsets must increase; while the task replays they must stay below the
// restored checkpoint's offset.
func (in *TaskInput[V]) Push(offset int64, e Event[V]) (Verdict, error) {
	if err := in.at(offset); err != nil {
		return 0, err
	}
	st := &in.st
	st.track.observe(offset, e.Time, st.max)
	v := in.seq.Offer(0, e)
	switch {
	case in.core.replaying:
		st.stats.Replayed++
	case v == Accepted:
		st.stats.Accepted++
	case v == Late:
		st.stats.Late++
		if in.onLate != nil {
			in.onLate(e)
		}
	default:
		st.stats.Duplicates++
	}
	if e.Time > st.max {
		in.raiseMax(e.Time)
	}
	return v, nil
}

// Skip moves the input past a record that carries no event (one that could
// not be decoded): it counts for the position, not for the state.
func (in *TaskInput[V]) Skip(offset int64) error {
	if err := in.at(offset); err != nil {
		return err
	}
	if in.core.replaying {
		in.st.stats.Replayed++
	} else {
		in.st.stats.Skipped++
	}
	return nil
}

// at checks offset against the input's position and moves past it.
func (in *TaskInput[V]) at(offset int64) error {
	st := &in.st
	if st.next >= 0 && offset < st.next {
		return fmt.Errorf("%w: offset %d, expected %d or more", ErrOffsetOrder, offset, st.next)
	}
	if in.core.replaying {
		switch {
		case !st.restored:
			return fmt.Errorf("%w: offset %d of an input that was not restored, during the replay; restore every input, replay, then EndReplay",
				ErrOffsetOrder, offset)
		case offset >= st.resume:
			return fmt.Errorf("%w: offset %d reaches the checkpoint (%d) during the replay; call EndReplay first",
				ErrOffsetOrder, offset, st.resume)
		}
	}
	st.next = offset + 1
	return nil
}

// raiseMax records a larger event time: the input's watermark rises, the
// sequencer releases what it makes final, and the task watermark follows.
func (in *TaskInput[V]) raiseMax(t Time) {
	st := &in.st
	st.max = t
	st.wm = t.Add(-st.lateness)
	in.seq.Advance(st.wm, in.deliver)
	in.core.raise()
}

func (in *TaskInput[V]) finish() {
	in.st.wm = MaxTime
	in.seq.Advance(MaxTime, in.deliver)
}

// Watermark returns the input's watermark: its largest event time less its
// lateness.
func (in *TaskInput[V]) Watermark() Time { return in.st.wm }

// Stats returns the input's counts.
func (in *TaskInput[V]) Stats() InputStats { return in.st.stats }

// Held returns the number of events the input's sequencer holds.
func (in *TaskInput[V]) Held() int { return in.seq.Held() }

// Next returns the offset after the last record pushed or skipped (or the
// replay's start after Restore), and false when the input has no position.
func (in *TaskInput[V]) Next() (int64, bool) { return in.st.next, in.st.next >= 0 }

func (st *inputState) endReplay() error {
	if !st.restored {
		return nil
	}
	st.restored = false
	if st.next < st.resume {
		st.next = st.resume // a replay that found fewer records than committed
	}
	if st.check > MinTime && st.max != st.check {
		return fmt.Errorf("%w: largest event time %v after the replay, %v at the checkpoint",
			ErrReplayMismatch, st.max, st.check)
	}
	return nil
}

func (st *inputState) checkpoint(need, wm Time) (Checkpoint, bool) {
	if st.next < 0 {
		return Checkpoint{}, false
	}
	if st.restored {
		// Still replaying: the checkpoint restored is the one to keep.
		return Checkpoint{}, false
	}
	r := st.track.replayFrom(need, st.next)
	return Checkpoint{Offset: st.next, Metadata: formatMeta(meta{r: r, m: st.max, w: wm})}, true
}

// replayTracker finds the first offset whose record has a time at or after a
// bound that only grows. The first record with time >= need is a strict
// running maximum of the times (every earlier record is below need, hence
// below it), so only the running maxima are kept, oldest first, and dropped
// when need passes them. The need of a task is at most its input's largest
// time, so the record that set it is always left: a replay starts with it.
type replayTracker struct {
	cands ring.Deque[replayCand]
}

type replayCand struct {
	off int64
	t   Time
}

// observe records the record at off with time t; max is the largest time
// before it.
func (r *replayTracker) observe(off int64, t, max Time) {
	if t > max {
		r.cands.PushBack(replayCand{off: off, t: t})
	}
}

// replayFrom returns the replay offset for bound need; next is the offset
// after the last record seen, the answer when no record reaches need.
func (r *replayTracker) replayFrom(need Time, next int64) int64 {
	for r.cands.Len() > 0 && r.cands.Front().t < need {
		r.cands.PopFront()
	}
	if r.cands.Len() > 0 {
		return r.cands.Front().off
	}
	return next
}
