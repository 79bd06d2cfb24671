// Package replay replays a file of lines as a stream.Source, paced by event
// time: a recorded trace (one JSON record per line, say) fed to a pipeline
// at the pace it was recorded, faster, or as fast as the pipeline takes it.
//
//	src, err := replay.NewLines("btc-price.jsonl", decodePrice,
//		replay.WithSpeed(10), replay.WithInvalidLines(passRaw))
//	...
//	st, err := kafkaio.Produce(ctx, src, sink) // or stream.Run(ctx, src, op, sink)
//
// A decode function turns each line into a stream.Event. Pacing goes by the
// running maximum of the event times, so that disorder within a pipeline's
// allowed lateness does not stall a replay (see Lines). A line decode
// refuses ends the replay with a *LineError, unless WithInvalidLines hands
// it to a function that replays an event in its place or skips it; a line
// longer than WithMaxLineBytes (1 MiB by default) ends it too. Stats counts
// lines, decoded and invalid ones.
//
// # What belongs here
//
// Sources that read recorded files. Writing a source into Kafka is
// kafkaio.Produce; running one through operators in process is stream.Run.
//
// # Conventions
//
// They are package stream's. Options are With* functions, checked by
// NewLines and NewReader, which return an error wrapping ErrInvalidOption
// (matching stream.ErrInvalidOption) for an invalid option or argument;
// WithInvalidLines[T] takes a type parameter that they check against the
// replay's. Errors callers branch on are ErrInvalidOption, ErrLineTooLong,
// ErrClosed and *LineError. Only Poll, which may wait for input or for the
// pace, takes a context. Poll belongs to one goroutine at a time; Stats may
// be called from any. A line handed to the decode function or to the
// invalid-line handler is only valid during the call; the events they return
// are the caller's. Pacing reads a Clock (WithClock; the wall clock by
// default), so that tests can measure it with a fake one.
package replay
