// Package window computes aggregates over event-time windows: trailing windows
// that end at every event, and epoch-aligned tumbling and hopping windows.
//
// # Trailing windows
//
// The trailing window of length W at an event at time t holds the events of the
// same key with time in (t - W, t]. Trailing and TrailingStatistics compute several
// lengths at once (the pipeline uses 30s, 1m, 5m, 15m, 30m and 1h) over one
// shared buffer per key, and emit one result per event as soon as the event
// reaches them: they rely on the stream.Sequencer's guarantee that each key's
// events arrive in increasing time order and are final. Each event enters and
// leaves each window once: amortized O(1) per event per window, and no heap
// allocation per event in steady state.
//
// # Tumbling and hopping windows
//
// Hopping windows are [start, start + size) with start a multiple of the hop
// (tumbling windows: hop = size), aligned on the Unix epoch. A window's result
// is emitted once the watermark passes its end (watermark >= end), on an event
// with Time = end - 1; empty windows emit nothing. Windows closed by the same
// watermark come out in (End, Key) order.
//
// # Accumulators, aggregators and accuracy
//
// An Accumulator adds values and gives their aggregate; an Aggregator also
// removes the oldest value. Tumbling and hopping windows only add (each open
// window has its own accumulator), so they take any Accumulator, including
// aggregates that cannot be undone such as a bar's high and low or a
// volume-weighted average price (see the Accumulator example); trailing
// windows slide, so they take Aggregators. Count, Sum, Mean, Variance, Std
// (sample, divisor n-1, as Spark's stddev; or population), Min, Max, First
// and Last are built-in Aggregators, which fit every window, and users can
// bring their own of either kind.
//
// Sum, Mean, Variance and Std rest on Moments, which keeps exact integer sums of
// the values and of their squares (192-bit fixed point at the values' own
// granularity), so adding and removing never drift, a window of equal values
// has variance exactly 0, and each result is computed from the exact sums with
// only a few roundings at the end: within a few ulps of the exact value, far
// inside the specification's bounds (mean within 1e-12 relative, std within
// 1e-9) on prices of any magnitude with cent or finer steps. Values that
// cannot share one fixed-point scale (spanning more than about 2^62 units of
// the finest granularity, e.g. 1e-300 next to 1e300) fall back to Welford's
// float64 update until the window empties; Moments.Exact reports the mode.
// An undefined result (the mean of nothing, the sample variance of one value)
// is NaN.
//
// # What belongs here
//
// Operators that aggregate a key's events over event-time windows, and the
// accumulators and aggregators they are built from. Stateless transforms are
// in package stream (Map, Filter, FlatMap), the z-score of a value against
// statistics in zscore. It imports only stream and the standard library.
//
// # Conventions
//
// Options: a constructor takes everything as arguments (the lengths, or the
// size and hop, as time.Duration, each a positive whole number of
// milliseconds, and a function that makes aggregators, such as NewMean or a
// Factory); there are no option functions and no defaults to forget. Errors: a constructor rejects an invalid argument
// with an error that wraps ErrInvalidWindow, to test with errors.Is, and names the
// argument (ErrInvalidWindow matches stream.ErrInvalidOption, as every
// package's invalid-argument sentinel does); Process and Advance return nothing and do not fail. Ownership: the
// slice Trailing and TrailingStatistics emit is reused and valid only during
// Emit (copy it to keep it, as stream.CopySlice does); a Result is a value the
// receiver owns; an operator keeps copies of the values it holds, and owns
// the aggregators or accumulators it makes. Concurrency: an operator, and its
// aggregators, are used by one goroutine at a time, the one that runs it (a
// stream.Task or Driver); different operators share nothing. Names: the
// statistics of a window are Statistics, not Stats, which in package stream
// and mongoio are counters; an Accumulator only adds, an Aggregator also
// removes; a Factory makes aggregators, and FactoryOf adapts an aggregator's
// constructor to one.
//
// # Example
//
//	tr, _ := window.NewTrailingStatistics([]time.Duration{30 * time.Second, time.Hour})
//	tr.Process(stream.Event[float64]{Key: "BTCUSDT", Time: t, Value: 99190.48}, out)
//	// out receives []window.Statistics{{Count, Mean, Variance, Std}, ...} for the event.
package window
