// Package stream holds Tidemark's core: events, event time and watermarks, the
// operator model (one-input Operator, TwoInput, their Bounds and Chain), the
// Task that runs an operator over the partitions of a stage and rebuilds its
// state by replay, the Driver and Run for finite inputs, and the
// timestamp-keyed Join.
//
// # Event time
//
// An Event has a key, an event Time (milliseconds since the Unix epoch) and a
// value; its identity is (Key, Time). Time enters the library only through
// events and watermarks: no operator reads the wall clock, so every operator is
// a deterministic state machine. AppendTime and ParseTime write and read an
// event time as RFC 3339 text with milliseconds, without allocating.
//
// An input remembers the largest event time it has seen; its watermark is
// that time less the allowed lateness (DefaultLateness, 10 s). An event with
// Time < watermark is late: it is dropped, counted and handed to the optional
// late sink. A result that depends on events up to time t is final, and
// emitted, once the watermark is above t. End of input moves the watermark to
// MaxTime and flushes everything.
//
// # Ordering and determinism
//
// A Sequencer stands between an input and its operator: it holds accepted
// events until the watermark passes them and releases them in (Time, Key)
// order, dropping late events and duplicates (the first to arrive wins).
// Operators therefore see, for each key, a strictly increasing sequence of
// final events, and that sequence is the same for every arrival order that
// respects the lateness bound. Results are emitted exactly once and never
// depend on arrival order.
//
// # Operators and their bounds
//
// An Operator declares its Bounds: how far back and ahead in event time its
// results reach (a trailing window looks back by its length, a lookahead
// ahead by its horizon). The runtime derives its commit and replay points
// from them instead of asking for a setting that can be forgotten; Chain
// adds them up and delays the second operator's watermark by the first's
// reach ahead. A TwoInput operator has two inputs, left and right, each with
// its own sequencer, watermark, identities and duplicates; its watermark is
// the smaller of the two, and its results must not depend on how the two
// inputs interleave (confluence). Join is one: it pairs events of equal
// (Key, Time) and copies the values it keeps (JoinConfig). Map, Filter and
// FlatMap are the stateless operators, one event in and zero or more
// results out at its time, with zero bounds.
//
// # Tasks
//
// A Task (one input) or TwoInputTask runs an operator over one partition of
// each input, with offsets: it is the unit of work, state and recovery of a
// stage (package kafkaio runs one per partition number). Its Checkpoints
// give, per input, the offset to commit and metadata that says where the
// records the pending results depend on begin; Restore, a replay of those
// records and EndReplay rebuild the task exactly, with the replayed output
// suppressed, from the partition alone. See Task for the argument, and
// package streamtest (CheckRecovery) to check an operator against it.
//
// # Events from the future
//
// One event with a time far ahead (a producer with a wrong clock, a typo in
// a replayed file: 2099 among events of 2025) would raise its input's
// watermark to its time, and every later event of the partition would be
// late. With a bound, Input.MaxAhead for a task and WithMaxAhead for a
// Driver, such an event is refused instead (Verdict TooFarAhead, counted as
// Ahead): it is not held, and it never moves the watermark. The bound is
// measured from a reference that is a function of the partition's contents,
// so that a replay after a crash takes the same decision for the same record:
//
//   - the record's own timestamp, for a record pushed with
//     TaskInput.PushStamped and a stamp: a Kafka record's timestamp as the
//     log holds it. This is the rule to use when the record's timestamp comes
//     from a clock of its own, the broker's (a topic with
//     message.timestamp.type LogAppendTime) or the producer's wall clock;
//     it catches a partition's very first event too. A producer that stamps
//     each record with its event time defeats it (the event is never ahead
//     of itself); Apache Kafka 4 refuses such records itself when they are
//     more than log.message.timestamp.after.max.ms (1 h) ahead of its clock.
//   - otherwise (TaskInput.Push, a record without a timestamp, a Driver over
//     lines of a file) the largest event time the partition has taken: the
//     bound is on the jump of the largest time. It cannot judge a
//     partition's first event, which is taken as it comes; and a legitimate
//     jump larger than the bound (a feed that was down longer than it) is
//     refused, with every event after it, until the events come back within
//     the bound, so the bound must be larger than the longest gap the input
//     may have. Neither rule catches an event that is ahead by less than the
//     bound.
//
// # Idle inputs
//
// Results advance with event time only: when an input goes quiet (its
// producer stops, a partition has no new data), its watermark stops, and
// the results of its last events wait for a later event. The runtime that
// reads the wall clock may then call TaskInput.Idle (or give a Driver
// WithIdleTimeout and WithIdleAdvance): the input's watermark advances by
// the wall time elapsed since its last record, as if event time went on at
// the wall clock's pace, and the last results come out. It never jumps to
// the wall clock itself, so that a replay of events from another year stays
// valid. Under continuous input nothing changes. After an idle advance,
// results may differ from a run over the same events without the quiet
// spell in one way only: an event that arrives after a gap longer than its
// lateness, with a time below the advanced watermark, is late, and counted
// and handed to the late sink as any late event.
//
// A task rebuilt by replay sees the records, not the quiet spells, so the
// checkpoint carries what the idle advances did: the input's raised
// watermark (its floor) and the records that were late only because of it
// (their offsets, as ranges), which the replay takes as late again. A task
// restored from a checkpoint thus emits exactly what the original would
// have, and nothing that the idle advance emitted before the checkpoint is
// emitted twice.
//
// # Provenance
//
// A runtime that cannot write a result (too large for its topic, refused by
// a store) names the input record it comes from: Task.Origin finds the
// record of the input event with the result's key and time among the
// events released whose results may still come (kept for the operator's
// reach ahead, so O(1) per event), which is the right record for every
// per-event operator (maps, trailing windows, the lookahead, the join);
// Task.Trigger names the record whose Push made the result final, for the
// rest (an aggregate of many events).
//
// # Driver and Run
//
// A Driver feeds one operator from a source made of several partitions with
// one watermark (the smallest over the partitions seen, with an optional
// idle timeout and wall-clock advance): the shape of a batch job over files
// (the example's offline mode). Run drives a Source through a Driver into a
// Sink, flushing and checkpointing after each batch.
//
// Decisions where the specification is silent, written down here:
//   - Late is decided before duplicate: an event below the watermark is counted
//     late even if its identity was seen, because identities are remembered only
//     while their events are held (bounded state).
//   - An input's watermark rises with its own events, and with the wall time
//     of its quiet spells only when the runtime says so (TaskInput.Idle; see
//     Idle inputs): a task's silent input holds that task back, not the
//     others. A Driver's partition that has produced nothing holds the
//     watermark back until the idle timeout; when every partition is idle the
//     watermark rises to the largest (time - lateness) seen, and with
//     WithIdleAdvance further by the wall time since the last event.
//   - A duplicate is recognised when it is offered, also when its first copy
//     came from another partition: the Verdict that Push returns is final,
//     and Stats counts each event as Push reported it.
//
// # What belongs here
//
// What does not depend on a broker or a store: the event model and event
// time, the operator interfaces and the stateless operators (Map, Filter,
// FlatMap, Chain), the pieces a runtime drives (Sequencer, Task, Driver,
// Run) and the timestamp-keyed Join. Aggregates over windows are in package
// window, z-scores in zscore, the lookahead in lookahead; Kafka is in
// kafkaio, MongoDB in mongoio, and the helpers for tests in streamtest. The
// package imports only the standard library.
//
// # Conventions
//
// Options are With* functions, checked when the value they configure is
// made: NewDriver and Run return an error wrapping ErrInvalidOption for an
// invalid option or argument, as NewTask, NewTwoInputTask and NewJoin do for
// theirs, instead of panicking or failing later. Packages kafkaio and
// mongoio have their own ErrInvalidOption, which matches this one, so
// errors.Is(err, stream.ErrInvalidOption) recognises them all. One option
// takes a type parameter, WithLateSink[In] (kafkaio's WithRouter[T] is the
// other): the compiler cannot check that In is the Driver's input type,
// because the options form one variadic parameter, whose type cannot depend
// on In if WithLateness(d) and the other untyped options are to fit every
// Driver (Go has no generic methods, and infers no type argument from the
// type a result is assigned to; the alternative is writing
// WithLateness[float64](d) at every call). So the constructor checks it and
// names both types in its error.
//
// Errors that callers branch on are sentinels (ErrInvalidOption,
// ErrReplayMismatch, ErrInvalidCheckpoint, ErrOffsetOrder, and
// ErrInvalidTime for ParseTime), wrapped with
// details: test them with errors.Is, not by comparing errors or messages.
//
// Only what does I/O takes a context.Context: Run, and the Source, Sink,
// Flusher and Checkpointer it calls. Operators, the Sequencer, the Driver and
// tasks are synchronous state machines that take none. Run returns ctx's
// error once ctx is done, after writing and flushing what was already final.
//
// An Event is passed by value, but its Value may hold memory that the caller
// reuses: a value given to Sink.Write, Emitter.Emit, or a callback such as
// WithLateSink's, Input.OnLate or JoinConfig.OnLeftOnly is only valid during
// the call unless its documentation says otherwise. A callee that keeps it
// copies it (JoinConfig.CopyLeft, streamtest.Copy).
//
// Nothing in the package is safe for concurrent use unless its documentation
// says so: a Driver, a Task, a Sequencer or an operator belongs to one
// goroutine at a time. Run starts no goroutine: it calls its Source, Sink and
// operator from the goroutine that called it.
//
// # Examples
//
// The package's examples run: ExampleRun and ExampleDriver for finite
// inputs, ExampleNewTask for a task's checkpoint and its recovery by replay,
// ExampleNewTwoInputTask and ExampleJoin for two inputs, ExampleSequencer,
// ExampleChain, and ExampleMap, ExampleFilter and ExampleFlatMap for the
// stateless operators.
package stream
