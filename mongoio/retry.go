package mongoio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// transientCodes are server error codes that go away by themselves: the
// retryable-writes list of the MongoDB driver specifications, plus write
// concern timeouts and write conflicts.
var transientCodes = map[int]bool{
	6:     true, // HostUnreachable
	7:     true, // HostNotFound
	64:    true, // WriteConcernFailed (wtimeout)
	89:    true, // NetworkTimeout
	91:    true, // ShutdownInProgress
	112:   true, // WriteConflict
	189:   true, // PrimarySteppedDown
	262:   true, // ExceededTimeLimit
	9001:  true, // SocketException
	10107: true, // NotWritablePrimary
	11600: true, // InterruptedAtShutdown
	11602: true, // InterruptedDueToReplStateChange
	13435: true, // NotPrimaryNoSecondaryOk
	13436: true, // NotPrimaryOrSecondary
}

// transientLabels are error labels under which the server or the driver
// says an operation may succeed if retried.
var transientLabels = []string{"RetryableWriteError", "TransientTransactionError", "NetworkError"}

// transient reports whether err may go away if the same writes are sent
// again: network errors, timeouts, server selection errors, pool clears,
// and server errors with a retryable code or label. The caller checks its
// own context first, so a deadline of the caller is never mistaken for a
// transient timeout.
func transient(err error) bool {
	if err == nil || errors.Is(err, mongo.ErrClientDisconnected) {
		return false
	}
	if mongo.IsNetworkError(err) || mongo.IsTimeout(err) {
		return true
	}
	if errors.As(err, new(topology.ServerSelectionError)) {
		return true
	}
	var retryable interface{ Retryable() bool }
	if errors.As(err, &retryable) && retryable.Retryable() {
		return true
	}
	var le mongo.LabeledError
	if errors.As(err, &le) {
		for _, l := range transientLabels {
			if le.HasErrorLabel(l) {
				return true
			}
		}
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) && transientCodes[int(ce.Code)] {
		return true
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && bwe.WriteConcernError != nil && transientCodes[bwe.WriteConcernError.Code] {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// retryableWriteError reports whether a write error of a bulk write may go
// away if the write is sent again. A duplicate key on the _id index means
// that a concurrent upsert of the same _id inserted the document first;
// sent again, the upsert replaces it.
func retryableWriteError(we mongo.BulkWriteError) bool {
	return transientCodes[we.Code] || we.Code == 11000 && strings.Contains(we.Message, "index: _id_ ")
}

// retryableError marks an error as transient for [transient].
type retryableError struct{ error }

func (e retryableError) Unwrap() error   { return e.error }
func (e retryableError) Retryable() bool { return true }

// backoff returns the jittered wait before retry number retry (0-based):
// a random duration in [d/2, d] where d = minimum * 2^retry, capped at
// maximum.
func backoff(retry int, minimum, maximum time.Duration) time.Duration {
	d := minimum
	for range retry {
		if d >= maximum/2 {
			d = maximum
			break
		}
		d *= 2
	}
	d = min(d, maximum)
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleep waits for d or until ctx is done, whichever comes first, and
// returns ctx.Err() in the latter case.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attempt runs one attempt of an operation under [WithAttemptTimeout]. When the
// attempt, not ctx, ran out of time, its error is marked transient and says
// so.
func (s *Sink[T]) attempt(ctx context.Context, op func(context.Context) error) error {
	actx, cancel := context.WithTimeout(ctx, s.cfg.attemptTimeout)
	defer cancel()
	deadline, _ := actx.Deadline()
	err := op(actx)
	// The driver sets its socket deadlines from actx's, so an attempt that
	// ran out of time may fail before actx's own timer has fired: compare
	// with the clock too.
	if err != nil && ctx.Err() == nil && (actx.Err() != nil || !time.Now().Before(deadline)) && !ctxExpired(ctx) {
		return retryableError{fmt.Errorf("no answer within the attempt timeout (%v): %w", s.cfg.attemptTimeout, err)}
	}
	return err
}

// ctxExpired reports whether ctx's own deadline has passed, which
// ctx.Err() may not say yet.
func ctxExpired(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// nextRetry returns the wait before retry number retry of an operation that
// began at began and last failed with err, or the error to give up with
// when [WithMaxRetries] or [WithMaxRetryTime] forbid another retry.
func (s *Sink[T]) nextRetry(retry int, began time.Time, err error) (time.Duration, error) {
	if s.cfg.maxRetries >= 0 && retry >= s.cfg.maxRetries {
		return 0, fmt.Errorf("%w after %d retries: %w", ErrRetriesExhausted, retry, err)
	}
	d := backoff(retry, s.cfg.minBackoff, s.cfg.maxBackoff)
	if s.cfg.maxRetryTime >= 0 && time.Since(began)+d > s.cfg.maxRetryTime {
		return 0, fmt.Errorf("%w after %d retries in %v (WithMaxRetryTime %v): %w", ErrRetriesExhausted, retry,
			time.Since(began).Round(time.Millisecond), s.cfg.maxRetryTime, err)
	}
	return d, nil
}

// wait logs a transient error and sleeps d before retry number retry.
func (s *Sink[T]) wait(ctx context.Context, d time.Duration, retry int, err error, attrs ...slog.Attr) error {
	s.retries.Add(1)
	s.log.LogAttrs(ctx, slog.LevelWarn, "mongoio: transient error, retrying",
		append(attrs, slog.Int("retry", retry+1), slog.Duration("backoff", d), slog.Any("err", err))...)
	return sleep(ctx, d)
}
