package stream

import (
	"math"
	"time"
)

// Time is an event time: milliseconds since the Unix epoch, UTC. Millisecond
// resolution is the resolution of every timestamp Tidemark reads and writes.
type Time int64

const (
	// MinTime is the smallest Time; it is the watermark before any event is seen.
	MinTime Time = math.MinInt64
	// MaxTime is the largest Time; the watermark jumps to it at end of input.
	MaxTime Time = math.MaxInt64
)

// TimeOf converts t to a Time, truncating to the millisecond (towards the past).
func TimeOf(t time.Time) Time {
	return Time(t.UnixMilli())
}

// DurationOf converts d to a number of milliseconds, truncating towards zero.
func DurationOf(d time.Duration) Time { return Time(d / time.Millisecond) }

// UTC returns t as a time.Time in UTC.
func (t Time) UTC() time.Time { return time.UnixMilli(int64(t)).UTC() }

// Add returns t + d, saturating at MinTime and MaxTime instead of overflowing.
func (t Time) Add(d Time) Time {
	s := t + d
	switch {
	case d > 0 && s < t:
		return MaxTime
	case d < 0 && s > t:
		return MinTime
	}
	return s
}

// String formats t as RFC 3339 with milliseconds in UTC, or "-inf"/"+inf".
func (t Time) String() string {
	switch t {
	case MinTime:
		return "-inf"
	case MaxTime:
		return "+inf"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// Event is one element of a stream: a value of a key at an event time. Its
// identity is (Key, Time): two events with the same identity are duplicates.
type Event[V any] struct {
	Key   string
	Time  Time
	Value V
}

// Before reports whether a sorts before b in (Time, Key) order, the order in which
// the sequencer releases events.
func (a *Event[V]) Before(b *Event[V]) bool {
	return a.Time < b.Time || (a.Time == b.Time && a.Key < b.Key)
}
