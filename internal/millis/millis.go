// Package millis holds the one check of the durations operators take (window
// lengths, hops, sizes and lookahead horizons): event time has millisecond
// resolution, so each must be a positive whole number of milliseconds. Each
// public package wraps the error in its own sentinel (window.ErrInvalidWindow,
// lookahead.ErrInvalidHorizon). It is not public API.
package millis

import (
	"fmt"
	"time"

	"github.com/tidemark-go/tidemark/stream"
)

// Positive returns d in milliseconds, or an error saying that d is not a
// positive whole number of milliseconds.
func Positive(d time.Duration) (stream.Time, error) {
	if d < time.Millisecond || d%time.Millisecond != 0 {
		return 0, fmt.Errorf("%v is not a positive whole number of milliseconds", d)
	}
	return stream.DurationOf(d), nil
}
