package kafkaio

import (
	"errors"
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
	if rt.tx != nil {
		if err := rt.stopsStage(rt.tx.err()); err != nil {
			return err
		}
	}
	if rt.ctx.Err() != nil {
		// Stopping: the open transaction is left to the broker's timeout
		// or the next incarnation; nothing more is committed, not even by
		// the final commit, which could otherwise commit offsets past a
		// result that failed (a sink's flush reports a rejection once).
		rt.dirty = false
		rt.log.Warn("kafkaio: commit failed while stopping; nothing more is committed (the next owner processes the rest again)",
			"group", rt.st.group, "error", cause)
		return nil
	}
	rt.st.stats.aborts.Add(1)
	rt.st.stats.aborted() // what the transaction counted; the tasks count it again
	rt.log.Warn("kafkaio: commit failed; aborting and rebuilding the tasks from the committed offsets",
		"group", rt.st.group, "tasks", len(rt.parts), "error", cause)
	// Aborts in a row (a broker or a coordinator that is not back yet, a
	// membership sarama has not noticed it lost) back off before the tasks
	// are rebuilt, up to 5 s.
	if time.Since(rt.lastAbort) < 10*time.Second {
		if rt.aborts.Wait(rt.ctx) != nil {
			return nil
		}
	} else {
		rt.aborts.Reset()
	}
	defer func() { rt.lastAbort = time.Now() }()
	rt.resetOutputs()
	clear(rt.refusedInputs)
	rt.written = rt.written[:0]
	if rt.tx != nil {
		if err := rt.tx.reset(rt.ctx, rt.writes); err != nil {
			return err
		}
	}
	rt.dirty, rt.sinceCommit = false, 0
	for _, s := range rt.parts {
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
		if err := s.build(rt, upTo); err != nil {
			return err
		}
		rt.st.stats.rebuilds.Add(1)
		rt.dirty = true
	}
	return nil
}

// stops reports whether err stops the stage rather than being recovered
// from: a record whose result cannot be written (StopOnRecordError, or no
// dead-letter topic), a topic that does not exist.
func stops(err error) bool {
	return errors.Is(err, ErrRecordRefused) || errors.Is(err, ErrMissingTopic)
}
