package stream

import "time"

// DefaultLateness is the allowed lateness the example pipeline uses: 10 s.
const DefaultLateness = 10 * time.Second

// watermarks tracks the event-time watermark of a source made of partitions,
// for a Driver (a Task has a watermark per input).
//
// Each partition remembers the largest event time it has seen. The watermark is
// the minimum, over the partitions seen, of (largest event time - lateness). A
// partition that has received nothing for the idle timeout stops holding the
// watermark back until it receives an event again. When every partition is
// idle, the watermark is the largest (time - lateness) over the partitions,
// and with advanceWhenIdle it advances further by the wall time elapsed since
// the last event of any partition, as if event time went on at the wall
// clock's pace; it never jumps to the wall clock itself, so that a replay of
// old events stays valid. The watermark never decreases.
//
// It reads no clock itself: callers pass "now" (processing time) to
// Observe and Idle, and may pass the zero time when the idle timeout is 0.
// It is not safe for concurrent use.
type watermarks struct {
	lateness Time
	idle     time.Duration
	byClock  bool
	parts    []partition
	current  Time
}

type partition struct {
	id   int
	max  Time
	last time.Time
	idle bool
}

// newWatermarks returns a tracker with the given allowed lateness and idle
// timeout (0 disables idleness). With advanceWhenIdle, the watermark advances
// with the wall time while every partition is idle.
func newWatermarks(lateness, idleTimeout time.Duration, advanceWhenIdle bool) *watermarks {
	return &watermarks{
		lateness: DurationOf(lateness),
		idle:     idleTimeout,
		byClock:  advanceWhenIdle,
		current:  MinTime,
	}
}

// Current returns the watermark.
func (w *watermarks) Current() Time { return w.current }

// Lateness returns the allowed lateness in milliseconds.
func (w *watermarks) Lateness() Time { return w.lateness }

// max returns the largest event time seen on partition id, MinTime if none.
func (w *watermarks) max(id int) Time {
	for i := range w.parts {
		if w.parts[i].id == id {
			return w.parts[i].max
		}
	}
	return MinTime
}

func (w *watermarks) find(id int) *partition {
	for i := range w.parts {
		if w.parts[i].id == id {
			return &w.parts[i]
		}
	}
	w.parts = append(w.parts, partition{id: id, max: MinTime})
	return &w.parts[len(w.parts)-1]
}

// Observe records an event time seen on partition id and returns the watermark.
func (w *watermarks) Observe(id int, t Time, now time.Time) Time {
	var p *partition
	if n := len(w.parts); n > 0 && w.parts[0].id == id {
		p = &w.parts[0]
	} else {
		p = w.find(id)
	}
	p.idle, p.last = false, now
	if t > p.max {
		p.max = t
	}
	if len(w.parts) == 1 {
		return w.raise(p.max.Add(-w.lateness))
	}
	return w.recompute(now, false)
}

// Idle re-evaluates which partitions are idle at wall-clock time now and returns
// the watermark.
func (w *watermarks) Idle(now time.Time) Time { return w.recompute(now, true) }

// Finish moves the watermark to MaxTime: end of input.
func (w *watermarks) Finish() Time {
	w.current = MaxTime
	return w.current
}

func (w *watermarks) raise(wm Time) Time {
	if wm > w.current {
		w.current = wm
	}
	return w.current
}

func (w *watermarks) recompute(now time.Time, checkIdle bool) Time {
	lowest, any := MaxTime, false
	for i := range w.parts {
		p := &w.parts[i]
		if checkIdle && w.idle > 0 && now.Sub(p.last) >= w.idle {
			p.idle = true
		}
		if p.idle {
			continue
		}
		any = true
		if wm := p.max.Add(-w.lateness); wm < lowest {
			lowest = wm
		}
	}
	if any {
		return w.raise(lowest)
	}
	if len(w.parts) > 0 {
		// Every partition is idle: the largest time seen still bounds what
		// is final, and with byClock the wall time since the last event
		// moves it on.
		var last time.Time
		for i := range w.parts {
			w.raise(w.parts[i].max.Add(-w.lateness))
			if w.parts[i].last.After(last) {
				last = w.parts[i].last
			}
		}
		if checkIdle && w.byClock {
			highest := MinTime
			for i := range w.parts {
				highest = max(highest, w.parts[i].max)
			}
			if highest != MinTime {
				w.raise(highest.Add(DurationOf(now.Sub(last))).Add(-w.lateness))
			}
		}
	}
	return w.current
}
