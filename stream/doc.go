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
//   - An input's watermark rises only with its own events: a task's silent
//     input holds that task back (a partition of a live topic is rarely
//     silent for long, and a silent symbol's last results wait for its next
//     price). A Driver's partition that has produced nothing holds the
//     watermark back until the idle timeout; when every partition is idle the
//     watermark rises to the largest (time - lateness) seen, or follows the
//     wall clock if WithClockWhenIdle asks for it.
//   - A duplicate is recognised when it is offered, also when its first copy
//     came from another partition: the Verdict that Push returns is final,
//     and Stats counts each event as Push reported it.
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
