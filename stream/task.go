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
	rel  processReleaser[In, Out]
}

// TwoInputTask is a Task for a TwoInput operator: its inputs are Left and
// Right, each with its own lateness, sequencer and watermark.
type TwoInputTask[L, R, Out any] struct {
	core  taskCore
	left  TaskInput[L]
	right TaskInput[R]
	op    TwoInput[L, R, Out]
	out   gate[Out]
	relL  leftReleaser[L, R, Out]
	relR  rightReleaser[L, R, Out]
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
	// MaxAhead bounds how far an event's time may run ahead (0, the
	// default: no bound). An event more than MaxAhead ahead of its
	// reference is refused (Verdict TooFarAhead): it is not held and never
	// moves the watermark. The reference is the record's own timestamp for
	// a record pushed with PushStamped and a stamp, and otherwise the
	// largest event time the input has taken so far (none before its first
	// event). See the package documentation, Events from the future.
	MaxAhead time.Duration
	// Dedup says which events are duplicates (default ByKeyTime).
	Dedup Dedup[V]
	// Final says the input's events are final as they come: the output of a
	// stage, in event-time order in each partition. Each event is released
	// to the operator at once, instead of waiting for the watermark to pass
	// it, and the input's watermark is its largest event time: an event
	// older than that is late. Lateness and Dedup do not apply (such an
	// input has no duplicates to drop). A sink stage whose input another
	// stage wrote uses it, so that its last record is written at once.
	Final bool
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
	Ahead      uint64 // refused: time too far ahead of the reference (Input.MaxAhead)
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
	t.rel = processReleaser[In, Out]{op: op, out: &t.out, st: &t.in.st}
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
	t.relL = leftReleaser[L, R, Out]{op: op, out: &t.out, st: &t.left.st}
	t.relR = rightReleaser[L, R, Out]{op: op, out: &t.out, st: &t.right.st}
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
func (t *Task[In, Out]) EndReplay() error {
	return t.core.endReplay([]func(){func() { t.in.raiseTo(t.in.st.floor) }})
}

// EndReplay ends a replay; see Task.EndReplay.
func (t *TwoInputTask[L, R, Out]) EndReplay() error {
	return t.core.endReplay([]func(){
		func() { t.left.raiseTo(t.left.st.floor) },
		func() { t.right.raiseTo(t.right.st.floor) },
	})
}

// Origin is the record of an input event: which input (0 for a Task's
// input and a TwoInputTask's left, 1 for its right) and its offset.
type Origin struct {
	Input  int
	Offset int64
}

// Origin returns the record of the input event with the given key and
// time, among the events the task released to its operator whose results
// may still be emitted (those within the operator's reach ahead of the
// watermark), and false if there is none. For an operator whose results
// carry the key and time of the event they are computed for (a per-event
// map, a trailing window, a lookahead, the join), it names the input
// record a result comes from, which a runtime dead-letters when the result
// cannot be written. A join's result has two: the left one is returned.
func (t *Task[In, Out]) Origin(key string, at Time) (Origin, bool) { return t.core.origin(key, at) }

// Origin returns the record of an input event; see Task.Origin.
func (t *TwoInputTask[L, R, Out]) Origin(key string, at Time) (Origin, bool) {
	return t.core.origin(key, at)
}

// Trigger returns the record being pushed, while a Push is under way: the
// record whose arrival made the results emitted now final. False outside
// Push (an Idle, a Finish or an EndReplay emits results no record
// triggered).
func (t *Task[In, Out]) Trigger() (Origin, bool) { return t.core.trigger() }

// Trigger returns the record being pushed; see Task.Trigger.
func (t *TwoInputTask[L, R, Out]) Trigger() (Origin, bool) { return t.core.trigger() }

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

// The releasers hand the events an input's sequencer releases to the
// operator, noting each one's record first (provenance).

type processReleaser[In, Out any] struct {
	op  Operator[In, Out]
	out *gate[Out]
	st  *inputState
}

func (p *processReleaser[In, Out]) release(e Event[In], off int64) {
	p.st.released(e.Key, e.Time, off)
	p.op.Process(e, p.out)
}

type leftReleaser[L, R, Out any] struct {
	op  TwoInput[L, R, Out]
	out *gate[Out]
	st  *inputState
}

func (p *leftReleaser[L, R, Out]) release(e Event[L], off int64) {
	p.st.released(e.Key, e.Time, off)
	p.op.ProcessLeft(e, p.out)
}

type rightReleaser[L, R, Out any] struct {
	op  TwoInput[L, R, Out]
	out *gate[Out]
	st  *inputState
}

func (p *rightReleaser[L, R, Out]) release(e Event[R], off int64) {
	p.st.released(e.Key, e.Time, off)
	p.op.ProcessRight(e, p.out)
}

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

// raise recomputes the task watermark and advances the operator when it
// rose; then the released events whose results are all out are forgotten.
func (c *taskCore) raise() {
	wm := MaxTime
	for _, in := range c.inputs {
		wm = min(wm, in.wm)
	}
	if wm > c.wm {
		c.wm = wm
		c.advanceOp(wm)
		// Every result of an event at t is out once the watermark is above
		// t + Ahead (Operator's contract).
		done := delay(wm, c.ahead)
		for _, in := range c.inputs {
			in.forget(done)
		}
	}
}

// need is the earliest event time that results still to come may depend on.
func (c *taskCore) need() Time { return c.wm.Add(-c.ahead).Add(-c.back) }

// endReplay applies what the checkpoints say happened beside the records
// (the watermark floors of idle advances), with the output still
// suppressed, and then lets results through.
func (c *taskCore) endReplay(release []func()) error {
	var errs []error
	for i, in := range c.inputs {
		if err := in.endReplay(); err != nil {
			errs = append(errs, fmt.Errorf("input %d: %w", i, err))
		}
		release[i]()
	}
	c.raise()
	c.replaying = false
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

// origin finds the record of the event with key and time t among those
// released and not forgotten.
func (c *taskCore) origin(key string, t Time) (Origin, bool) {
	for i, in := range c.inputs {
		if off, ok := in.find(key, t); ok {
			return Origin{Input: i, Offset: off}, true
		}
	}
	return Origin{}, false
}

// trigger returns the record being pushed, if a Push is under way.
func (c *taskCore) trigger() (Origin, bool) {
	for i, in := range c.inputs {
		if in.pushing >= 0 {
			return Origin{Input: i, Offset: in.pushing}, true
		}
	}
	return Origin{}, false
}

// inputState is the part of an input that does not depend on its value type.
type inputState struct {
	lateness Time
	maxAhead Time  // 0: no bound
	max      Time  // largest event time seen (or seeded)
	floor    Time  // the watermark an idle advance raised the input to; MinTime if none
	wm       Time  // max(max - lateness, floor)
	next     int64 // the offset after the last record pushed; -1 when unknown
	resume   int64 // a restored checkpoint's offset; records below it are replayed
	check    Time  // the checkpoint's largest time, which the replay must reach; MinTime if none
	restored bool
	pushing  int64 // the offset of the record being pushed; -1 outside Push
	track    replayTracker
	stats    InputStats
	// idleLate are the records (offset ranges) that were late only because
	// of an idle advance: the checkpoint carries them, so that a replay
	// takes them as late again (see Task, Idle advance).
	idleLate offsetRanges
	// lastLate: the last record pushed was idle-late (a range may grow).
	lastLate bool
	// recent are the released events whose results may still come, for
	// Origin, in release order (by time, then key).
	recent ring.Deque[origin]
}

// origin is a released event's identity and record.
type origin struct {
	t   Time
	key string
	off int64
}

// released notes an event the sequencer releases to the operator.
func (st *inputState) released(key string, t Time, off int64) {
	if off >= 0 {
		st.recent.PushBack(origin{t: t, key: key, off: off})
	}
}

// forget drops the released events with times before done.
func (st *inputState) forget(done Time) {
	for st.recent.Len() > 0 && st.recent.Front().t < done {
		st.recent.PopFront()
	}
}

// find returns the record of the released event with key and time t.
func (st *inputState) find(key string, t Time) (int64, bool) {
	n := st.recent.Len()
	lo, hi := 0, n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if st.recent.At(mid).t < t {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	for i := lo; i < n; i++ {
		o := st.recent.At(i)
		if o.t != t {
			break
		}
		if o.key == key {
			return o.off, true
		}
	}
	return 0, false
}

// TaskInput is one input of a task: records of one partition are pushed
// into it in offset order.
type TaskInput[V any] struct {
	core    *taskCore
	st      inputState
	seq     Sequencer[V]
	deliver eventReleaser[V]
	onLate  func(Event[V])
	final   bool // Input.Final
}

func (in *TaskInput[V]) init(core *taskCore, _ int, cfg Input[V], deliver eventReleaser[V]) error {
	if cfg.Lateness < 0 {
		return fmt.Errorf("%w: negative lateness %v", ErrInvalidOption, cfg.Lateness)
	}
	if cfg.MaxAhead < 0 {
		return fmt.Errorf("%w: negative MaxAhead %v", ErrInvalidOption, cfg.MaxAhead)
	}
	in.core, in.deliver, in.onLate, in.final = core, deliver, cfg.OnLate, cfg.Final
	in.st = inputState{lateness: DurationOf(cfg.Lateness), maxAhead: ceilMillis(cfg.MaxAhead), max: MinTime, floor: MinTime,
		wm: MinTime, next: -1, resume: -1, check: MinTime, pushing: -1}
	if cfg.Final {
		in.st.lateness = 0
	}
	in.seq.wm, in.seq.dedup = MinTime, cfg.Dedup
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
	st.next, st.check, st.floor, st.idleLate = m.r, m.m, m.f, m.x
	return m.r, nil
}

// Push processes the record at offset, which carries e: the event is
// offered to the input's sequencer (its verdict is returned), the input's
// watermark rises with it, and what becomes final flows through the operator.
// Offsets must increase; while the task replays they must stay below the
// restored checkpoint's offset. With Input.MaxAhead, e is checked against
// the largest event time the input has taken; PushStamped checks it against
// the record's timestamp instead.
func (in *TaskInput[V]) Push(offset int64, e Event[V]) (Verdict, error) {
	return in.push(offset, e, MinTime)
}

// PushStamped is Push for a record with a timestamp of its own, stamp
// (MinTime: none): with Input.MaxAhead, an event more than MaxAhead ahead
// of stamp is refused (TooFarAhead). Stamp a record with a clock that does
// not come from its event, such as the time the broker appended it
// (LogAppendTime) or the producer's wall clock; a record stamped with its
// own event time is never too far ahead of it.
func (in *TaskInput[V]) PushStamped(offset int64, e Event[V], stamp Time) (Verdict, error) {
	return in.push(offset, e, stamp)
}

func (in *TaskInput[V]) push(offset int64, e Event[V], stamp Time) (Verdict, error) {
	if err := in.at(offset); err != nil {
		return 0, err
	}
	st := &in.st
	if st.tooFarAhead(e.Time, stamp) {
		st.lastLate = false
		if in.core.replaying {
			st.stats.Replayed++
		} else {
			st.stats.Ahead++
		}
		return TooFarAhead, nil
	}
	st.pushing = offset
	defer func() { st.pushing = -1 }()
	st.track.observe(offset, e.Time, st.max)
	var v Verdict
	switch {
	case in.core.replaying && st.idleLate.has(offset):
		v = Late // late at the time because of an idle advance
	case in.final:
		v = Accepted
		if e.Time < st.wm {
			v = Late
		}
	default:
		v = in.seq.offer(0, e, offset)
	}
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
	idleLate := v == Late && !in.core.replaying && e.Time >= st.max.Add(-st.lateness)
	if idleLate {
		st.idleLate.add(offset, st.lastLate)
	}
	st.lastLate = idleLate
	if in.final && v == Accepted {
		in.deliver.release(e, offset) // final already: at once
	}
	if e.Time > st.max {
		in.raiseMax(e.Time)
	}
	return v, nil
}

// tooFarAhead reports whether an event at t is beyond Input.MaxAhead of its
// reference: stamp, or without one the largest time taken.
func (st *inputState) tooFarAhead(t, stamp Time) bool {
	if st.maxAhead == 0 {
		return false
	}
	ref := stamp
	if ref == MinTime {
		ref = st.max
	}
	return ref != MinTime && t > ref.Add(st.maxAhead)
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

// Idle tells the input that it has had no record for elapsed (wall time):
// its watermark rises to its largest event time plus elapsed, less its
// lateness, as if event time had gone on at the pace of the wall clock
// since the last record, and what that makes final flows through the
// operator. It never lowers the watermark, never jumps to the wall clock
// itself (a replay of old events stays valid), and does nothing for an
// input that has seen no event, while the task replays, or after Finish.
// An event that arrives later with a time below the raised watermark is
// late (see Task, Idle advance). The runtime calls it, tasks read no clock.
func (in *TaskInput[V]) Idle(elapsed time.Duration) {
	st := &in.st
	if in.core.replaying || st.max == MinTime || st.wm == MaxTime || elapsed <= 0 {
		return
	}
	f := st.max.Add(DurationOf(elapsed)).Add(-st.lateness)
	if f <= st.wm {
		return
	}
	st.floor, st.wm = f, f
	in.seq.advance(st.wm, in.deliver)
	in.core.raise()
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
	if wm := t.Add(-st.lateness); wm > st.wm {
		st.wm = wm
		in.seq.advance(st.wm, in.deliver)
		in.core.raise()
	}
}

// raiseTo raises the input's watermark to wm (the floor of a restored
// checkpoint) while the output is suppressed.
func (in *TaskInput[V]) raiseTo(wm Time) {
	if wm > in.st.wm {
		in.st.wm = wm
		in.seq.advance(wm, in.deliver)
	}
}

func (in *TaskInput[V]) finish() {
	in.st.wm = MaxTime
	in.seq.advance(MaxTime, in.deliver)
}

// Watermark returns the input's watermark: its largest event time less its
// lateness, or what an idle advance raised it to (Idle).
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
	// An idle advance can take the need beyond the largest time; the record
	// that set it is replayed all the same, so that the rebuilt input knows
	// its largest time (the replay's check, MaxAhead, the watermark).
	r := st.track.replayFrom(min(need, st.max), st.next)
	st.idleLate.dropBelow(r)
	m := meta{r: r, m: st.max, w: wm, f: MinTime, x: st.idleLate}
	if st.floor > st.max.Add(-st.lateness) {
		m.f = st.floor
	}
	return Checkpoint{Offset: st.next, Metadata: formatMeta(m)}, true
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
