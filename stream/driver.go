package stream

import (
	"fmt"
	"reflect"
	"time"
)

// Stats counts what a Driver did with the events it was given.
type Stats struct {
	Accepted   uint64 // held and, once final, processed
	Late       uint64 // dropped: time below the watermark
	Duplicates uint64 // dropped: same (key, time) as an event already held
	Ahead      uint64 // refused: too far ahead of its partition (WithMaxAhead)
}

// Option configures a Driver or Run. Options are checked when the Driver is
// made: an invalid one makes NewDriver and Run return an error wrapping
// ErrInvalidOption.
type Option interface{ apply(*config) }

type config struct {
	lateness    time.Duration
	idle        time.Duration
	byClock     bool
	maxAhead    time.Duration
	onLate      any // func(Event[In]), checked against In by newConfig
	dedup       any // Dedup[In], checked against In by newConfig
	pollTimeout time.Duration
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithLateness sets the allowed lateness (default DefaultLateness, 10 s). It must
// not be negative.
func WithLateness(d time.Duration) Option {
	return optionFunc(func(c *config) { c.lateness = d })
}

// WithIdleTimeout sets how long a partition may go without events before it
// stops holding the watermark back (default 0: never). It must not be
// negative. Idleness is measured on the wall clock, which only the Driver's
// caller (Run) reads.
func WithIdleTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.idle = d })
}

// WithIdleAdvance makes the watermark advance with the wall clock while
// every partition is idle: beyond the largest event time seen less the
// lateness, by the wall time elapsed since the last event, as if event time
// went on at the wall clock's pace. It never jumps to the wall clock itself,
// so that a replay of old events stays valid; an event that arrives after a
// gap longer than its lateness may then be late. It needs WithIdleTimeout
// with a positive timeout.
func WithIdleAdvance() Option {
	return optionFunc(func(c *config) { c.byClock = true })
}

// WithDedup sets how the Driver tells events apart (default ByKeyTime).
// In must be the Driver's input type, as for WithLateSink.
func WithDedup[In any](d Dedup[In]) Option {
	return optionFunc(func(c *config) { c.dedup = d })
}

// WithMaxAhead refuses events from the future: an event more than d ahead
// of the largest event time its partition has taken is refused (Verdict
// TooFarAhead, counted in Stats.Ahead): it is not held and never moves the
// watermark. The first event of a partition is taken as it is. d must not be
// negative; 0, the default, sets no bound. See the package documentation,
// Events from the future, for what this rule catches and what it does not.
func WithMaxAhead(d time.Duration) Option {
	return optionFunc(func(c *config) { c.maxAhead = d })
}

// WithLateSink hands every late event to f after counting it. In must be the
// Driver's input type: NewDriver and Run return an error wrapping
// ErrInvalidOption otherwise (see the package documentation, Conventions,
// for why the compiler cannot check it).
func WithLateSink[In any](f func(Event[In])) Option {
	return optionFunc(func(c *config) { c.onLate = f })
}

// Driver is the synchronous core of a pipeline: partitioned input -> watermarks ->
// Sequencer (late and duplicate events dropped and counted) -> operator -> out.
// Run wraps a Driver around a Source and a Sink; tests and batch jobs (such as
// the example's offline mode) drive it directly. It is not safe for concurrent use.
type Driver[In, Out any] struct {
	maxAhead Time
	marks    *watermarks
	seq      *Sequencer[In]
	op       Operator[In, Out]
	out      Emitter[Out]
	onLate   func(Event[In])
	stats    Stats
	release  releaser[In, Out]
}

type releaser[In, Out any] struct{ d *Driver[In, Out] }

func (r *releaser[In, Out]) release(e Event[In], _ int64) { r.d.op.Process(e, r.d.out) }

// NewDriver returns a Driver that feeds op and sends op's output to out.
func NewDriver[In, Out any](op Operator[In, Out], out Emitter[Out], opts ...Option) (*Driver[In, Out], error) {
	cfg, err := newConfig[In](opts)
	if err != nil {
		return nil, err
	}
	if op == nil || out == nil {
		return nil, fmt.Errorf("%w: nil operator or emitter", ErrInvalidOption)
	}
	d := &Driver[In, Out]{
		maxAhead: ceilMillis(cfg.maxAhead),
		marks:    newWatermarks(cfg.lateness, cfg.idle, cfg.byClock),
		seq:      NewSequencer[In](),
		op:       op,
		out:      out,
	}
	if cfg.onLate != nil {
		d.onLate = cfg.onLate.(func(Event[In]))
	}
	if cfg.dedup != nil {
		d.seq.dedup = cfg.dedup.(Dedup[In])
	}
	d.release.d = d
	return d, nil
}

func newConfig[In any](opts []Option) (config, error) {
	cfg := config{lateness: DefaultLateness, pollTimeout: time.Second}
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	switch {
	case cfg.lateness < 0:
		return cfg, fmt.Errorf("%w: negative lateness %v", ErrInvalidOption, cfg.lateness)
	case cfg.idle < 0:
		return cfg, fmt.Errorf("%w: negative idle timeout %v", ErrInvalidOption, cfg.idle)
	case cfg.byClock && cfg.idle == 0:
		return cfg, fmt.Errorf("%w: WithIdleAdvance without WithIdleTimeout", ErrInvalidOption)
	case cfg.maxAhead < 0:
		return cfg, fmt.Errorf("%w: negative WithMaxAhead %v", ErrInvalidOption, cfg.maxAhead)
	}
	if cfg.dedup != nil {
		if _, ok := cfg.dedup.(Dedup[In]); !ok {
			return cfg, fmt.Errorf("%w: WithDedup with a %T, but the input is %v: want a stream.Dedup[%[3]v]",
				ErrInvalidOption, cfg.dedup, reflect.TypeFor[In]())
		}
	}
	if cfg.onLate != nil {
		if _, ok := cfg.onLate.(func(Event[In])); !ok {
			return cfg, fmt.Errorf("%w: WithLateSink with a %T, but the input is %v: want a func(stream.Event[%[3]v])",
				ErrInvalidOption, cfg.onLate, reflect.TypeFor[In]())
		}
	}
	if cfg.idle > 0 && cfg.idle < cfg.pollTimeout {
		cfg.pollTimeout = cfg.idle
	}
	return cfg, nil
}

// Stats returns the counts so far: each event pushed is counted once, as the
// Verdict Push returned for it.
func (d *Driver[In, Out]) Stats() Stats { return d.stats }

// Watermark returns the watermark of the events released so far.
func (d *Driver[In, Out]) Watermark() Time { return d.seq.Watermark() }

// Push offers one event read from partition at wall-clock time now (the zero
// time is fine when no idle timeout is set), then advances the watermark,
// which may release events through the operator.
func (d *Driver[In, Out]) Push(partition int, e Event[In], now time.Time) Verdict {
	if d.maxAhead > 0 {
		if m := d.marks.max(partition); m != MinTime && e.Time > m.Add(d.maxAhead) {
			d.stats.Ahead++
			return TooFarAhead
		}
	}
	v := d.seq.Offer(partition, e)
	switch v {
	case Accepted:
		d.stats.Accepted++
	case Late:
		d.stats.Late++
		if d.onLate != nil {
			d.onLate(e)
		}
	case Duplicate:
		d.stats.Duplicates++
	}
	d.advance(d.marks.Observe(partition, e.Time, now))
	return v
}

// Tick re-evaluates idle partitions at wall-clock time now.
func (d *Driver[In, Out]) Tick(now time.Time) { d.advance(d.marks.Idle(now)) }

// Finish is end of input: the watermark jumps to MaxTime and everything flushes.
func (d *Driver[In, Out]) Finish() { d.advance(d.marks.Finish()) }

func (d *Driver[In, Out]) advance(wm Time) {
	if wm <= d.seq.Watermark() {
		return
	}
	d.seq.advance(wm, &d.release)
	d.op.Advance(wm, d.out)
}
