package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Record is an event read by a Source, with the partition it came from. Partition
// identifies the input partition within the source (a source reading several
// topics numbers their partitions so that the numbers do not collide).
type Record[T any] struct {
	Partition int
	Event     Event[T]
}

// Source is a stream of records. Poll blocks until at least one record is
// available or ctx is done, fills buf from the front and returns how many
// records it wrote. It returns io.EOF (with n == 0) at the end of a finite input,
// and ctx.Err() when ctx is done.
type Source[T any] interface {
	Poll(ctx context.Context, buf []Record[T]) (n int, err error)
}

// Sink receives results one at a time, as operators emit them. Write may buffer;
// the event's Value (including any slice inside it) is only valid during the
// call, so a sink that keeps it must copy or encode it. A sink that buffers also
// implements Flusher.
type Sink[T any] interface {
	Write(ctx context.Context, e Event[T]) error
}

// Flusher is implemented by sinks that buffer. Run calls Flush after each polled
// batch and before it returns; Flush returns once everything written is durable.
type Flusher interface {
	Flush(ctx context.Context) error
}

// Checkpointer is implemented by sources that want to know how far results are
// durable, to commit their read positions. Run calls Checkpoint after each
// successful Flush with done, the watermark of the events released so far
// less how far the operator looks ahead (Bounds.Ahead): every result that
// depends on an event with Time < done has been written.
type Checkpointer interface {
	Checkpoint(ctx context.Context, done Time) error
}

// Run drives src through op into sink until ctx is done (it returns ctx's
// error) or src reaches its end (it flushes everything and returns nil). It reads
// the wall clock only for idle partitions (WithIdleTimeout). Results are written
// to sink as they are emitted and flushed after each polled batch. The Stats it returns are valid on every path.
func Run[In, Out any](ctx context.Context, src Source[In], op Operator[In, Out], sink Sink[Out], opts ...Option) (Stats, error) {
	cfg, err := newConfig[In](opts)
	if err != nil {
		return Stats{}, err
	}
	if src == nil || sink == nil || op == nil {
		return Stats{}, fmt.Errorf("%w: nil source, operator or sink", ErrInvalidOption)
	}
	w := &sinkEmitter[Out]{ctx: ctx, sink: sink}
	d, err := NewDriver(op, w, opts...)
	if err != nil {
		return Stats{}, err
	}
	if err := op.Bounds().check(); err != nil {
		return Stats{}, err
	}
	ahead := op.Bounds().ahead()
	cp, _ := src.(Checkpointer)
	fl, _ := sink.(Flusher)
	flush := func(ctx context.Context) error {
		if w.err != nil {
			return fmt.Errorf("stream: sink: %w", w.err)
		}
		if fl != nil {
			if err := fl.Flush(ctx); err != nil {
				return fmt.Errorf("stream: sink: %w", err)
			}
		}
		if cp != nil {
			if err := cp.Checkpoint(ctx, delay(d.Watermark(), ahead)); err != nil {
				return fmt.Errorf("stream: checkpoint: %w", err)
			}
		}
		return nil
	}
	buf := make([]Record[In], 512)
	for {
		pollCtx, cancel := ctx, context.CancelFunc(nil)
		if cfg.idle > 0 {
			pollCtx, cancel = context.WithTimeout(ctx, cfg.pollTimeout)
		}
		n, err := src.Poll(pollCtx, buf)
		if cancel != nil {
			cancel()
		}
		var now time.Time
		if cfg.idle > 0 {
			now = time.Now()
		}
		for i := range buf[:n] {
			d.Push(buf[i].Partition, buf[i].Event, now)
		}
		clear(buf[:n])
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			w.ctx = context.WithoutCancel(ctx)
			d.Finish()
			return d.Stats(), flush(ctx)
		case ctx.Err() != nil:
			// Deliver what is already final before stopping, on a context that
			// is not cancelled, so that an interrupt does not lose results.
			w.ctx = context.WithoutCancel(ctx)
			ferr := flush(context.WithoutCancel(ctx))
			return d.Stats(), errors.Join(ctx.Err(), ferr)
		case errors.Is(err, context.DeadlineExceeded):
			// Poll timed out: a chance to notice idle partitions.
			d.Tick(now)
		default:
			ferr := flush(context.WithoutCancel(ctx))
			return d.Stats(), errors.Join(fmt.Errorf("stream: source: %w", err), ferr)
		}
		if cfg.idle > 0 && n > 0 {
			d.Tick(now)
		}
		if err := flush(ctx); err != nil {
			if ctx.Err() != nil {
				// Cancelled during the flush: finish it on a context that is
				// not cancelled, as on the other shutdown path.
				w.ctx = context.WithoutCancel(ctx)
				return d.Stats(), errors.Join(ctx.Err(), flush(context.WithoutCancel(ctx)))
			}
			return d.Stats(), err
		}
	}
}

// sinkEmitter writes emitted events to a Sink and keeps the first error.
type sinkEmitter[T any] struct {
	ctx  context.Context
	sink Sink[T]
	err  error
}

func (s *sinkEmitter[T]) Emit(e Event[T]) {
	if s.err == nil {
		s.err = s.sink.Write(s.ctx, e)
	}
}
