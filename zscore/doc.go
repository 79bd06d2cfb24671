// Package zscore computes z-scores of values against windowed statistics:
// z = (x - mean) / std, undefined (reported as not ok) when std is undefined
// (NaN, fewer than two values), zero, or not finite.
//
// Of is the function; Operator applies it to the pairs that the timestamp-keyed
// join (stream.Join) makes of each value and its trailing-window statistics
// (window.TrailingStatistics), one score per window.
//
// # What belongs here
//
// The z-score and its operator over joined pairs; the statistics come from
// package window, the join from stream. It imports only those and the
// standard library.
//
// # Conventions
//
// Options: there are none; NewOperator takes no arguments and cannot fail.
// Errors: the package returns none, so it has no sentinel errors: an undefined
// score is not an error but a result, Of's false and Score.OK. Ownership: the
// Operator reads the statistics slice of each pair during Process and keeps
// nothing of it; the Scores slice it emits is reused and valid only during
// Emit (copy it to keep it). Concurrency: Of is a pure function, safe from any
// goroutine; an Operator is used by one goroutine at a time, the one that runs
// it (a stream.Task or Driver).
package zscore
