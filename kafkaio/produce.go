package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tidemark-go/tidemark/stream"
)

// DefaultFinalFlush is how long Produce waits, at most, for the records in
// flight once it stops: the wait of Kafka's Java producer's close.
const DefaultFinalFlush = 30 * time.Second

// produceBatch is how many records Produce asks its source for at a time.
const produceBatch = 512

// ProduceOption configures Produce.
type ProduceOption interface{ applyProduce(*produceConfig) }

type produceConfig struct {
	finalFlush time.Duration
	errs       []error
}

type produceOption func(*produceConfig)

func (f produceOption) applyProduce(c *produceConfig) { f(c) }

// WithFinalFlush bounds how long Produce waits for the records in flight
// when it stops (default DefaultFinalFlush, 30 s): the final flush, and the
// Writes of records the source gave before a stop.
func WithFinalFlush(d time.Duration) ProduceOption {
	if d <= 0 {
		err := fmt.Errorf("%w: final flush %v is not positive", ErrInvalidOption, d)
		return produceOption(func(c *produceConfig) { c.errs = append(c.errs, err) })
	}
	return produceOption(func(c *produceConfig) { c.finalFlush = d })
}

// ProduceStats says what Produce did.
type ProduceStats struct {
	// Records counts the records of the source handed to the Sink.
	Records uint64
	// Unwritten counts the records the source gave that were not handed to
	// the Sink: it failed, or the final flush's time ran out first.
	Unwritten uint64
	// InFlight is the number of the Sink's records still in flight when
	// Produce returned: neither acknowledged, dead-lettered nor failed. The
	// Sink keeps them; Close waits for them.
	InFlight int64
}

// Produce writes the events of the records src gives to sink until src ends
// (io.EOF), ctx is done, src fails or sink fails, and then flushes sink. It
// polls src with ctx, 512 records at a time, and writes each record's Event
// (its Partition is not used: the Sink's partitioner places records by key).
//
// A stop does not drop what src has given: once ctx is done, the records of
// the last Poll are still written, and the final flush waits for every
// record in flight, on a context that ctx's cancellation does not end, for
// at most WithFinalFlush (DefaultFinalFlush, 30 s) in all.
//
// Produce returns once that flush is over, with
//
//   - nil when src ended and every record written was acknowledged (or,
//     with WithDeadLetter, dead-lettered or counted in
//     SinkStats.DeadLetterFailed): then all of src is in Kafka;
//   - an error wrapping ctx.Err() when ctx was done; the records src gave
//     are in Kafka all the same unless one of the errors below says
//     otherwise;
//   - an error wrapping src's error, other than io.EOF, when Poll failed;
//   - the Sink's delivery error (a *ProduceError) when a record failed;
//   - an error saying how many records are still in flight when the final
//     flush ran out of time (ProduceStats.InFlight; the Sink keeps them, and
//     Close waits for them again), and how many src gave that were not
//     written (ProduceStats.Unwritten);
//
// joined when there are several. ProduceStats says the same in numbers.
// Produce does not close sink: it may write more, and its owner closes it.
// Other goroutines may write to sink meanwhile; the final flush waits for
// their records too, and InFlight counts them.
func Produce[T any](ctx context.Context, src stream.Source[T], sink *Sink[T], opts ...ProduceOption) (ProduceStats, error) {
	cfg := produceConfig{finalFlush: DefaultFinalFlush}
	for _, o := range opts {
		if o != nil {
			o.applyProduce(&cfg)
		}
	}
	if len(cfg.errs) > 0 {
		return ProduceStats{}, cfg.errs[0]
	}
	if src == nil || sink == nil {
		return ProduceStats{}, fmt.Errorf("%w: nil source or sink", ErrInvalidOption)
	}
	var (
		st     ProduceStats
		final  context.Context // the final flush's: made when Produce stops
		cancel = context.CancelFunc(func() {})
	)
	defer func() { cancel() }()
	finalCtx := func() context.Context {
		if final == nil {
			final, cancel = context.WithTimeout(context.WithoutCancel(ctx), cfg.finalFlush)
		}
		return final
	}

	var stop, sinkErr error // why Produce stops; a Write's error
	buf := make([]stream.Record[T], produceBatch)
	for stop == nil {
		n, err := src.Poll(ctx, buf)
		for i := 0; i < n; i++ {
			wctx := ctx
			if ctx.Err() != nil {
				wctx = finalCtx() // what src gave is written all the same
			}
			if err := sink.Write(wctx, buf[i].Event); err != nil {
				if wctx == ctx && ctx.Err() != nil {
					i-- // ctx ended during the Write: again, on the final context
					continue
				}
				sinkErr, stop = err, err
				st.Unwritten += uint64(n - i)
				break
			}
			st.Records++
		}
		clear(buf[:n])
		switch {
		case stop != nil:
		case err == nil:
		case errors.Is(err, io.EOF):
			stop = io.EOF
		case ctx.Err() != nil:
			stop = fmt.Errorf("kafkaio: produce: %w", ctx.Err())
		default:
			stop = fmt.Errorf("kafkaio: produce: source: %w", err)
		}
	}

	flushErr := sink.Flush(finalCtx())
	st.InFlight = sink.inflight.Load()
	var errs []error
	if stop != io.EOF && stop != sinkErr {
		errs = append(errs, stop)
	}
	switch {
	case st.InFlight > 0:
		errs = append(errs, fmt.Errorf("kafkaio: produce: %d records still in flight after the final flush of %v (the sink keeps them; Close waits for them): %w",
			st.InFlight, cfg.finalFlush, flushErr))
	case flushErr != nil:
		errs = append(errs, flushErr) // the Sink's delivery error, which a Write may have returned already
	case sinkErr != nil:
		errs = append(errs, sinkErr)
	}
	if st.Unwritten > 0 {
		errs = append(errs, fmt.Errorf("kafkaio: produce: %d records of the source were not written", st.Unwritten))
	}
	return st, errors.Join(errs...)
}
