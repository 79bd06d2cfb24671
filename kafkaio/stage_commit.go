package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// commit makes durable everything the tasks did since the last commit:
// exactly once, it commits the producer's transaction with every task's
// checkpoints; at least once, it flushes the sink and the dead-letter
// producer and then commits the checkpoints. A failed commit is recovered
// from like a crash (recoverAll).
func (rt *runtime) commit() error {
	if !rt.dirty {
		return nil
	}
	if rt.st.hooks.beforeCommit != nil && rt.st.hooks.beforeCommit() {
		return ErrCrashed
	}
	if rt.st.hooks.failCommit != nil {
		if err := rt.st.hooks.failCommit(); err != nil {
			return rt.recoverAll(err)
		}
	}
	if f := rt.st.cfg.faults; f != nil {
		crash, err := f.beforeCommit()
		if crash {
			return ErrCrashed
		}
		if err != nil {
			return rt.recoverAll(err)
		}
	}
	if err := rt.outErr(); err != nil {
		// A result was not written: committing would skip it.
		return rt.recoverAll(err)
	}
	if ok, err := rt.commitPositions(); !ok {
		return rt.recoverAll(errors.New("no group session"))
	} else if err != nil {
		return rt.recoverAll(err)
	}
	return nil
}

// commitPositions commits every task's checkpoints: in the producer's
// transaction, with the results, exactly once; after flushing the sink and
// the dead-letter producer, at least once. ok is false, and nothing is
// done, without a group session.
func (rt *runtime) commitPositions() (ok bool, err error) {
	sess := rt.session()
	if sess == nil {
		return false, nil
	}
	offsets := rt.offsets()
	meta := sarama.NewConsumerGroupMetadataFromSession(sess, rt.st.group, rt.instanceID())
	if rt.st.exactly {
		if err = rt.flushSinks(); err == nil {
			err = rt.tx.commit(offsets, meta)
		}
	} else {
		err = rt.commitAtLeastOnce(offsets, meta)
	}
	if err == nil {
		rt.committed()
	}
	return true, err
}

// committed records a successful commit.
func (rt *runtime) committed() {
	rt.dirty, rt.sinceCommit, rt.lastCommit = false, 0, time.Now()
	rt.st.stats.commits.Add(1)
	rt.st.stats.committed()
	clear(rt.refusedInputs)
	rt.written = rt.written[:0]
	if obs := rt.st.cfg.latency; obs != nil {
		for _, b := range rt.fetched {
			obs(rt.lastCommit.Sub(b.at), b.n)
		}
		rt.fetched = rt.fetched[:0]
	}
}

func (rt *runtime) commitAtLeastOnce(offsets map[string][]*sarama.PartitionOffsetMetadata, meta *sarama.ConsumerGroupMetadata) error {
	if err := rt.outErr(); err != nil {
		return err
	}
	if err := rt.flushSinks(); err != nil {
		return err
	}
	if rt.tx != nil {
		if err := rt.tx.flush(rt.writes); err != nil {
			return fmt.Errorf("kafkaio: dead-letter topic: %w", err)
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	return commitOffsets(rt.groupCl, rt.st.group, meta, offsets)
}

// offsets gathers the checkpoints of the running tasks.
func (rt *runtime) offsets() map[string][]*sarama.PartitionOffsetMetadata {
	out := make(map[string][]*sarama.PartitionOffsetMetadata, len(rt.st.inputs))
	for _, s := range rt.parts {
		rt.cps = s.checkpoints(rt, out, rt.cps)
	}
	return out
}

// finalCommit commits on a context that is not cancelled, once: a failure
// is reported, not recovered from.
func (rt *runtime) finalCommit() error {
	if err := rt.outErr(); err != nil {
		return fmt.Errorf("kafkaio: stage %q: no final commit, a result was not written: %w (the next owner processes it again)", rt.st.group, err)
	}
	ctx := rt.ctx
	rt.ctx = context.WithoutCancel(ctx)
	defer func() { rt.ctx = ctx }()
	if _, err := rt.commitPositions(); err != nil {
		return fmt.Errorf("kafkaio: stage %q: final commit: %w (what it covered is processed again by the next owner)", rt.st.group, err)
	}
	return nil
}
