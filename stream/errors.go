package stream

import "errors"

// Errors that callers branch on, to test with errors.Is.
var (
	// ErrInvalidOption is wrapped by the errors that constructors return for
	// an invalid option or argument. The invalid-option errors of packages
	// kafkaio and mongoio, and the invalid-argument errors of window and
	// lookahead, match it too.
	ErrInvalidOption = errors.New("stream: invalid option")

	// ErrReplayMismatch is returned by EndReplay when the replayed records do
	// not reproduce the checkpoint's largest event time: the partition lost
	// or changed records, and the rebuilt state may differ from the original.
	ErrReplayMismatch = errors.New("stream: replay does not match the checkpoint")
	// ErrInvalidCheckpoint is returned by Restore for metadata it cannot
	// read; the input then starts afresh at the checkpoint's offset, without
	// replay.
	ErrInvalidCheckpoint = errors.New("stream: invalid checkpoint metadata")
	// ErrOffsetOrder is returned by Push and Skip for an offset that is not
	// above the last one, or that a replay has not reached yet.
	ErrOffsetOrder = errors.New("stream: offset out of order")
)
