// Package lookahead answers, for each event, "what is the first later event of
// the same key within a bounded horizon that satisfies a predicate?".
//
// For an event e at time t, with horizon H and predicate P, the answer is the
// earliest event f of the same key with t < f.Time <= t + H and P(e, f), or
// none. The answer is final, and emitted, once the watermark is above f.Time
// (found) or above t + H (none). Answers of one key are emitted in the order
// of their events' times.
//
// NewHigher and NewLower (f strictly above / below e) keep a monotonic stack
// of the events still waiting for an answer: every event is pushed and popped
// once, so they cost amortized O(1) per event whatever the horizon.
// NewHigherLower fuses the two: one operator, one key lookup and one emission
// per event, carrying both answers (Both), emitted once both are final; it is
// the cheaper way to get both. New takes any predicate and scans the waiting
// events, O(waiting) per event.
//
// The keys with events waiting are kept in a min-heap on the end of their
// oldest waiting event's horizon: Advance costs O(1) when no answer is due,
// otherwise O(log K) per key with a due answer (K keys waiting) plus the
// answers it emits, in key order; Process pays O(log K) when it changes its
// key's oldest waiting event, O(1) otherwise.
//
// The operators rely on the stream.Sequencer's guarantee: each key's events
// arrive in increasing time order and are final. They read no clock.
//
// # What belongs here
//
// Operators that answer for each event with a later event of its key
// (higher, lower, any predicate, or both at once); windows that look back
// are in package window. It imports only stream and the standard library.
//
// # Conventions
//
// Options: a constructor takes the horizon as a time.Duration, a positive
// whole number of milliseconds, and New the predicate; there are no option
// functions. Errors: a constructor rejects a bad horizon with an error that
// wraps ErrInvalidHorizon and a nil predicate with one that wraps ErrInvalidPredicate,
// to test with errors.Is (both match stream.ErrInvalidOption, as every
// package's invalid-argument sentinel does); Process and Advance return nothing and do not fail.
// Ownership: an operator keeps a copy of each event's value until its answer
// is emitted; a Match or Both is a value the receiver owns (a Match's Value is
// a copy of the answering event's value: a V that holds references shares
// them). Concurrency: an operator is used by one goroutine at a time, the one
// that runs it (a stream.Task or Driver), and calls New's predicate on it;
// the predicate must be a pure function of its arguments.
package lookahead
