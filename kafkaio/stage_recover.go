package kafkaio

import (
	"errors"
	"fmt"
	"time"
)

// recoverAll treats a failed commit, a failed record or a failed sink like a
// crash of every task: the transaction is aborted (the producer recreated
// when it cannot), and each task is rebuilt from the committed offsets and
// fed again the records it had read since, so that their results go into
// the next transaction.
func (rt *runtime) recoverAll(cause error) error {
	if stops(cause) {
		return cause // a record that stops the stage, a topic that is gone
	}
	if err := rt.learnRefused(); err != nil {
		return err
	}
	if rt.prod != nil {
		if err := rt.stopsStage(rt.prod.err()); err != nil {
			return err
		}
	}
	if rt.ctx.Err() != nil {
		// Stopping: the open transaction is left to the broker's timeout
		// or the next incarnation; nothing more is committed.
		return nil
	}
	rt.st.stats.aborts.Add(1)
	rt.st.stats.aborted() // what the transaction counted; the tasks count it again
	rt.log.Warn("kafkaio: commit failed; aborting and rebuilding the tasks from the committed offsets",
		"group", rt.st.group, "tasks", len(rt.slots), "error", cause)
	// Aborts in a row (a broker or a coordinator that is not back yet, a
	// membership sarama has not noticed it lost) back off before the tasks
	// are rebuilt, up to 5 s.
	if time.Since(rt.lastAbort) < 10*time.Second {
		rt.abortBackoff = min(max(2*rt.abortBackoff, 100*time.Millisecond), 5*time.Second)
		select {
		case <-rt.ctx.Done():
			return nil
		case <-time.After(rt.abortBackoff):
		}
	} else {
		rt.abortBackoff = 0
	}
	defer func() { rt.lastAbort = time.Now() }()
	rt.out.reset()
	clear(rt.refusedInputs)
	rt.written = rt.written[:0]
	if rt.prod != nil {
		if err := rt.resetProducer(); err != nil {
			return err
		}
	}
	rt.dirty, rt.sinceCommit = false, 0
	for _, s := range rt.slots {
		if s.task == nil {
			continue
		}
		if s.leaving {
			s.task, s.inputs = nil, nil
			rt.st.stats.tasks.Add(-1)
			continue
		}
		upTo := make([]int64, len(s.inputs))
		for i, in := range s.inputs {
			upTo[i] = -1
			if n, ok := in.next(); ok {
				upTo[i] = n
			}
		}
		s.task, s.inputs = nil, nil
		rt.st.stats.tasks.Add(-1)
		if err := rt.build(s, upTo); err != nil {
			return err
		}
		rt.st.stats.rebuilds.Add(1)
		rt.dirty = true
	}
	return nil
}

// fencedAgain records that the producer was fenced and reports whether it
// has been more than 5 times in the last minute: a producer whose
// transaction timed out is fenced once, one that shares its transactional
// id with a live member is fenced each time the other starts a transaction.
func (rt *runtime) fencedAgain() bool {
	now := time.Now()
	keep := rt.fencings[:0]
	for _, t := range rt.fencings {
		if now.Sub(t) < time.Minute {
			keep = append(keep, t)
		}
	}
	rt.fencings = append(keep, now)
	return len(rt.fencings) > 5
}

// resetProducer aborts the open transaction or, when that fails, replaces
// the producer (a new one fences the old and ends its transaction).
func (rt *runtime) resetProducer() error {
	if rt.st.exactly {
		err := rt.prod.abort()
		if err == nil {
			return nil
		}
		if fenced(err) {
			// The coordinator bumped the producer's epoch: it aborted the
			// transaction after its timeout (an outage outlasted it), or a
			// producer with the same transactional id started. A new
			// producer takes over the id; fencedAgain tells the cases apart.
			if rt.fencedAgain() {
				return fmt.Errorf("kafkaio: stage %q: producer %q fenced again and again: another member runs with the same transactional id (instance id %q): %w",
					rt.st.group, rt.txID, rt.st.cfg.instanceID, err)
			}
			rt.log.Warn("kafkaio: producer fenced (its transaction timed out, or another producer took its id); replacing it",
				"group", rt.st.group, "transactional_id", rt.txID, "error", err)
		} else {
			rt.log.Warn("kafkaio: abort failed; replacing the producer", "group", rt.st.group, "error", err)
		}
	} else if err := rt.prod.begin(); err == nil {
		_ = rt.prod.flush(rt.writes)
		return rt.prod.begin()
	}
	_ = rt.prod.close()
	rt.prod = nil
	return rt.newProducer()
}

// stops reports whether err stops the stage rather than being recovered
// from: a record whose result cannot be written (StopOnRecordError, or no
// dead-letter topic), a topic that does not exist.
func stops(err error) bool {
	return errors.Is(err, ErrRecordRefused) || errors.Is(err, ErrMissingTopic)
}
