package stream

import (
	"fmt"
	"time"
)

// Bounds are the event-time reach of an operator's results: a result with
// event time t depends only on input events with times in
// [t - Back, t + Ahead], and it is emitted, at the latest, by the Advance call
// that raises the watermark above t + Ahead.
//
// The runtime derives everything that depends on time from the bounds of the
// operator it runs, instead of asking for it in a setting that can be
// forgotten:
//
//   - commits: an input record with time t is done once the watermark is
//     above t + Ahead, since every result it contributes to is then out;
//   - recovery: a task restarted from a checkpoint taken at watermark W
//     replays the input events with times from W - Ahead - Back on, which
//     are all the events the results still to come depend on (see Task).
//
// A trailing window of length W has Bounds{Back: W}; a lookahead with horizon
// H has Bounds{Ahead: H}; a per-event map or a join on equal times has zero
// bounds. Chain adds the bounds of its operators.
type Bounds struct {
	Back  time.Duration // how far before its time a result looks
	Ahead time.Duration // how far after its time a result looks
}

// Then returns the bounds of a chain that feeds the results of an operator
// with bounds b into one with bounds next: the reaches add up.
func (b Bounds) Then(next Bounds) Bounds {
	return Bounds{Back: b.Back + next.Back, Ahead: b.Ahead + next.Ahead}
}

// Max returns the bounds that cover both b and o: the larger reach each way,
// for operators that run side by side over the same input.
func (b Bounds) Max(o Bounds) Bounds {
	return Bounds{Back: max(b.Back, o.Back), Ahead: max(b.Ahead, o.Ahead)}
}

// back and ahead return the reaches in milliseconds, rounded up so that a
// reach of a fraction of a millisecond is not lost.
func (b Bounds) back() Time  { return ceilMillis(b.Back) }
func (b Bounds) ahead() Time { return ceilMillis(b.Ahead) }

func ceilMillis(d time.Duration) Time {
	return Time((d + time.Millisecond - 1) / time.Millisecond)
}

// check reports negative reaches.
func (b Bounds) check() error {
	if b.Back < 0 || b.Ahead < 0 {
		return fmt.Errorf("%w: negative operator bounds %+v", ErrInvalidOption, b)
	}
	return nil
}

// delay returns the watermark of a downstream operator whose input comes from
// an operator that looks ahead by d: results up to wm - d are final. The end
// of input stays the end of input.
func delay(wm, d Time) Time {
	if wm == MaxTime || d == 0 {
		return wm
	}
	return wm.Add(-d)
}
