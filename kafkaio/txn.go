package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/internal/backoff"
)

// txn owns a stage member's side of the transaction protocol: its
// producer (begin, send, add the consumed offsets with the group's
// metadata, commit or abort), fencing (a producer fenced once is replaced;
// one fenced again and again shares its id with a live member) and the
// producer's replacement when an abort fails. An exactly-once stage's txn
// is transactional; an at-least-once stage's only carries its dead letters,
// with an idempotent producer flushed before its offsets are committed.
// Its methods are for the stage's loop goroutine.
type txn struct {
	outProducer // the current one: replaced by reset when it cannot abort

	st       *Stage
	log      *slog.Logger
	cl       sarama.Client // the producer's client
	id       string        // the transactional id; "" when not transactional
	fencings []time.Time   // when the producer was fenced, for fencedAgain
	limits   batchLimits   // the runtime's, shared with each producer
}

// newTxn starts the member's producer on cl, waiting for the brokers.
func newTxn(ctx context.Context, st *Stage, cl sarama.Client, id string, limits batchLimits) (*txn, error) {
	t := &txn{st: st, log: st.log, cl: cl, id: id, limits: limits}
	if err := t.replace(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// replace starts a new producer, waiting for the brokers with capped
// backoff; a transactional one fences the previous producer of its id and
// ends its open transaction.
func (t *txn) replace(ctx context.Context) error {
	b := backoff.New(250*time.Millisecond, 5*time.Second, 0)
	for {
		var err error
		if t.id != "" {
			var bp *batchProducer
			if bp, err = newBatchProducer(t.cl, t.id, t.limits); err == nil {
				t.outProducer = bp
				return nil
			}
		} else {
			var sp *producer
			if sp, err = newProducer(t.cl); err == nil {
				sp.limits = t.limits
				t.outProducer = sp
				return nil
			}
		}
		if fenced(err) && t.fencedAgain() {
			return t.fencedError(err)
		}
		var ce sarama.ConfigurationError
		if errors.As(err, &ce) {
			return fmt.Errorf("%w: producer: %w", ErrInvalidConfig, err)
		}
		if n := b.Attempts() + 1; n == 1 || n%10 == 0 {
			t.log.Warn("kafkaio: cannot start the producer; retrying", "group", t.st.group, "transactional_id", t.id,
				"attempt", n, "error", err)
		}
		if err := b.Wait(ctx); err != nil {
			return err
		}
	}
}

// reset ends the open transaction so that the next one starts clean: it
// aborts it, or, when that fails (the producer was fenced: its transaction
// timed out, or another producer took its id; or the abort itself failed),
// replaces the producer, which fences the old one and ends its transaction.
// An at-least-once producer is flushed and begins anew. writes bounds the
// waits for records in flight.
func (t *txn) reset(ctx, writes context.Context) error {
	if t.id != "" {
		err := t.abort()
		if err == nil {
			return nil
		}
		if fenced(err) {
			if t.fencedAgain() {
				return t.fencedError(err)
			}
			t.log.Warn("kafkaio: producer fenced (its transaction timed out, or another producer took its id); replacing it",
				"group", t.st.group, "transactional_id", t.id, "error", err)
		} else {
			t.log.Warn("kafkaio: abort failed; replacing the producer", "group", t.st.group, "error", err)
		}
	} else if err := t.begin(); err == nil {
		_ = t.flush(writes)
		return t.begin()
	}
	_ = t.outProducer.close()
	t.outProducer = nil
	return t.replace(ctx)
}

// fencedAgain records that the producer was fenced and reports whether it
// has been more than 5 times in the last minute: a producer whose
// transaction timed out is fenced once, one that shares its transactional
// id with a live member is fenced each time the other starts a transaction.
func (t *txn) fencedAgain() bool {
	now := time.Now()
	keep := t.fencings[:0]
	for _, f := range t.fencings {
		if now.Sub(f) < time.Minute {
			keep = append(keep, f)
		}
	}
	t.fencings = append(keep, now)
	return len(t.fencings) > 5
}

func (t *txn) fencedError(err error) error {
	return fmt.Errorf("kafkaio: stage %q: producer %q fenced again and again: another member runs with the same transactional id (instance id %q): %w",
		t.st.group, t.id, t.st.cfg.instanceID, err)
}

// close stops the producer, if any: an open transaction is left to the
// broker (see batchProducer.close).
func (t *txn) close() {
	if t != nil && t.outProducer != nil {
		_ = t.outProducer.close()
	}
}

// commit commits the transaction with the consumed offsets of group member
// m (an exactly-once stage's txn only: its producer is a batchProducer).
func (t *txn) commit(offsets map[string][]*sarama.PartitionOffsetMetadata, m *sarama.ConsumerGroupMetadata) error {
	return t.outProducer.(*batchProducer).commit(offsets, m)
}

// abort aborts the transaction (an exactly-once stage's txn only).
func (t *txn) abort() error { return t.outProducer.(*batchProducer).abort() }
