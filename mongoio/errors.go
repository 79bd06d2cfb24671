package mongoio

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tidemark-go/tidemark/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Errors that callers branch on. Every error the package returns is
// prefixed with "mongoio: " and wraps at most one of these, plus the
// underlying driver error where there is one.
var (
	// ErrInvalidOption is wrapped by the error of [NewSink] for a bad
	// argument or option. It matches [stream.ErrInvalidOption] with
	// [errors.Is], as kafkaio's does.
	ErrInvalidOption error = invalidOption("mongoio: invalid option")

	// ErrInvalidRecord is wrapped by the error of [Sink.Write] when the
	// route function fails or returns a [Route] that cannot be written (an
	// invalid collection name, a Doc that is not a document or is larger
	// than MongoDB's 16 MiB, a missing or conflicting _id). The record was
	// not buffered; writing it again will fail again. It matches
	// [stream.ErrRejected], so that a stream runtime dead-letters the record
	// instead of retrying it.
	ErrInvalidRecord error = invalidRecord("mongoio: invalid record")

	// ErrRejected is matched by a [*RejectedError]: the server refused some
	// writes for good (a duplicate key on a unique index other than _id, a
	// document that fails validation). The rejected writes were dropped from
	// the buffer; every other write of the flush is written.
	ErrRejected = errors.New("mongoio: writes rejected")

	// ErrRetriesExhausted is wrapped, together with the last transient
	// error, when a flush still fails after [WithMaxRetries] retries. The
	// writes that were not acknowledged stay buffered for the next flush.
	ErrRetriesExhausted = errors.New("mongoio: retries exhausted")

	// ErrClosed is returned by every method of a [Sink] after [Sink.Close].
	ErrClosed = errors.New("mongoio: sink closed")

	// ErrBufferFull is wrapped by [Sink.Write] when [WithMaxBuffered] writes
	// are buffered and a flush could not make room: the record was not
	// buffered.
	ErrBufferFull = errors.New("mongoio: buffer full")
)

// invalidRecord is the type of [ErrInvalidRecord]: its own message, and
// [stream.ErrRejected] beneath it.
type invalidRecord string

func (e invalidRecord) Error() string { return string(e) }
func (invalidRecord) Unwrap() error   { return stream.ErrRejected }

// invalidOption is the type of [ErrInvalidOption]: its own message, and
// [stream.ErrInvalidOption] beneath it.
type invalidOption string

func (e invalidOption) Error() string { return string(e) }
func (invalidOption) Unwrap() error   { return stream.ErrInvalidOption }

// Rejection is one write the server refused for good.
type Rejection[T any] struct {
	// Record is the record whose write was rejected, as given to
	// [Sink.Write], for a dead-letter queue: the value Write kept, so the
	// memory its pointers, slices or maps refer to is the caller's, as it
	// was after Write (see Conventions in the package documentation).
	Record T
	// Collection and ID are where the record was routed.
	Collection string
	ID         bson.RawValue
	// Err is the server's error, a [mongo.WriteError] or
	// [mongo.BulkWriteError] wrapped in context; use
	// [mongo.IsDuplicateKeyError] and friends on it.
	Err error
}

// RejectedError reports the writes that the server refused for good. It
// matches [ErrRejected] with [errors.Is]; use [errors.As] with a
// *RejectedError[T] of the sink's record type to get the records.
type RejectedError[T any] struct {
	Rejections []Rejection[T]
}

// Error summarizes the rejections: their count and the first few reasons.
func (e *RejectedError[T]) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mongoio: %d writes rejected", len(e.Rejections))
	const shown = 3
	for i, r := range e.Rejections {
		if i == shown {
			fmt.Fprintf(&b, "; and %d more", len(e.Rejections)-shown)
			break
		}
		fmt.Fprintf(&b, "; %s/%s: %v", r.Collection, r.ID, r.Err)
	}
	return b.String()
}

// Is reports whether target is [ErrRejected].
func (e *RejectedError[T]) Is(target error) bool { return target == ErrRejected }

// Unwrap returns the errors of the individual rejections.
func (e *RejectedError[T]) Unwrap() []error {
	errs := make([]error, len(e.Rejections))
	for i, r := range e.Rejections {
		errs[i] = r.Err
	}
	return errs
}
