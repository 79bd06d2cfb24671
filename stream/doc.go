// Package stream holds Tidemark's core: events, event time and watermarks, the
// operator model, the Driver and Run that push a source through an operator into
// a sink, and the timestamp-keyed Join.
//
// # Event time
//
// An Event has a key, an event Time (milliseconds since the Unix epoch) and a
// value; its identity is (Key, Time). Time enters the library only through
// events and watermarks: no operator reads the wall clock, so every operator is a
// deterministic state machine.
//
// Each input partition remembers the largest event time it has seen; the
// watermark is the minimum over active partitions of that time minus the allowed
// lateness (DefaultLateness, 10 s). An event with Time < watermark is late: it is
// dropped, counted and handed to the optional late sink. A result that depends on
// events up to time t is final, and emitted, once the watermark is above t. End
// of input moves the watermark to MaxTime and flushes everything.
//
// # Ordering and determinism
//
// The Sequencer stands between the partitions and the operators: it holds
// accepted events until the watermark passes them and releases them in
// (Time, Key) order, dropping late events and duplicates (the first to arrive
// wins). Operators therefore see, for each key, a strictly increasing sequence of
// final events, and that sequence is the same for every arrival order that
// respects the lateness bound. Results are emitted exactly once and never
// depend on arrival order.
//
// Decisions where the specification is silent, written down here:
//   - Late is decided before duplicate: an event below the watermark is counted
//     late even if its identity was seen, because identities are remembered only
//     while their events are held (bounded state).
//   - A partition that is assigned but has produced nothing holds the watermark
//     back until the idle timeout; when every partition is idle the watermark
//     rises to the largest (time - lateness) seen, or follows the wall clock if
//     WithIdleTimeout asks for it.
//
// # Example
//
//	d, _ := stream.NewDriver[float64, float64](op, out, stream.WithLateness(10*time.Second))
//	d.Push(0, stream.Event[float64]{Key: "BTCUSDT", Time: t, Value: 99190.48}, time.Time{})
//	d.Finish() // end of input: flush
package stream
