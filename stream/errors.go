package stream

import (
	"errors"
	"fmt"
	"strings"
)

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
	// ErrInvalidTime is wrapped by the errors ParseTime returns for text
	// that is not an RFC 3339 date-time, or that names an instant whose UTC
	// form falls outside the years 0000 to 9999.
	ErrInvalidTime = errors.New("stream: invalid time")
)

// ErrRejected is matched by the errors of a Sink that refuses results for
// good (a record the store cannot hold, a document that fails its
// validation): writing them again would fail again. A runtime that writes
// results to a sink (kafkaio's stages) dead-letters the input records of
// such results and goes on, instead of retrying them forever. A Sink's
// Write returns an error matching ErrRejected for the event it was given;
// its Flush returns a *RejectedError (possibly joined with other errors)
// for the events of the flush it refused, having written the others.
var ErrRejected = errors.New("stream: rejected by the sink")

// Rejection is one result a sink refused for good: its key and time, and
// why.
type Rejection struct {
	Key  string
	Time Time
	Err  error
}

// RejectedError lists the results a sink refused for good. It matches
// ErrRejected.
type RejectedError struct {
	Rejections []Rejection
}

func (e *RejectedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "stream: the sink refused %d results", len(e.Rejections))
	for i, r := range e.Rejections {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Rejections)-3)
			break
		}
		fmt.Fprintf(&b, "; %s@%v: %v", r.Key, r.Time, r.Err)
	}
	return b.String()
}

// Is reports whether target is ErrRejected.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// RejectedRest returns what err says besides a *RejectedError: nil when err
// is a *RejectedError (possibly wrapped), the other errors when err joins
// one with others (errors.Join), and err itself otherwise.
func RejectedRest(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*RejectedError); ok {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var rest []error
		for _, e := range j.Unwrap() {
			if r := RejectedRest(e); r != nil {
				rest = append(rest, r)
			}
		}
		return errors.Join(rest...)
	}
	if u := errors.Unwrap(err); u != nil {
		var re *RejectedError
		if errors.As(err, &re) && RejectedRest(u) == nil {
			return nil // err only wraps the rejections
		}
	}
	return err
}
