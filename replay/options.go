package replay

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/tidemark-go/tidemark/stream"
)

// DefaultMaxLineBytes is the longest line a replay accepts unless
// WithMaxLineBytes says otherwise: 1 MiB, Kafka's default largest record.
const DefaultMaxLineBytes = 1 << 20

// Option configures NewLines and NewReader.
type Option interface{ apply(*config) }

type config struct {
	speed   float64
	maxLine int
	clock   Clock
	invalid any // func([]byte, uint64, error) (stream.Event[T], bool), checked against T
	errs    []error
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

func optionError(format string, args ...any) Option {
	err := fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...)
	return optionFunc(func(c *config) { c.errs = append(c.errs, err) })
}

// WithSpeed paces the replay by event time at factor f of the trace's pace:
// 1 replays at the trace's pace, 10 ten times faster, 0.5 at half its pace,
// and 0 (the default) as fast as Poll is called. See Lines for how pacing
// goes.
func WithSpeed(f float64) Option {
	if !(f >= 0) || math.IsInf(f, 0) {
		return optionError("speed %v, want a finite number >= 0", f)
	}
	return optionFunc(func(c *config) { c.speed = f })
}

// WithMaxLineBytes bounds the length of a line, without its terminator
// (default DefaultMaxLineBytes): a longer line ends the replay with a
// *LineError wrapping ErrLineTooLong, after the lines before it. The replay
// holds at most one line of that length in memory.
func WithMaxLineBytes(n int) Option {
	if n < 1 {
		return optionError("max line bytes %d, want at least 1", n)
	}
	return optionFunc(func(c *config) { c.maxLine = n })
}

// WithInvalidLines hands each line that the decode function refuses to
// handle, with its 1-based number and the decode error: when handle returns
// true, its event is replayed in the line's place (at once, without pacing:
// its time does not count as the trace's), and when it returns false the
// line is skipped. Either way the line counts in Stats.Invalid. line is only
// valid during the call; an event that keeps bytes of it copies them. T must
// be the replay's event type, or NewLines returns an error.
//
// Without this option, a line the decode function refuses ends the replay
// with a *LineError wrapping the decode error, after the lines before it.
//
// To pass such lines on raw, as a pipeline's dead-letter path expects them
// (an empty key, the wall clock as the time):
//
//	replay.WithInvalidLines(func(line []byte, _ uint64, _ error) (stream.Event[[]byte], bool) {
//		return stream.Event[[]byte]{Time: stream.TimeOf(time.Now()), Value: bytes.Clone(line)}, true
//	})
func WithInvalidLines[T any](handle func(line []byte, no uint64, err error) (stream.Event[T], bool)) Option {
	if handle == nil {
		return optionError("nil invalid-line handler")
	}
	return optionFunc(func(c *config) { c.invalid = handle })
}

// Clock is the time a replay paces by.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Sleep waits for d, or returns ctx.Err() once ctx is done.
	Sleep(ctx context.Context, d time.Duration) error
}

// WithClock sets the clock pacing goes by (default: the wall clock, with
// time.Now and a timer). A test gives a fake one.
func WithClock(c Clock) Option {
	if c == nil {
		return optionError("nil clock")
	}
	return optionFunc(func(cfg *config) { cfg.clock = c })
}

// wallClock is the default Clock.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
