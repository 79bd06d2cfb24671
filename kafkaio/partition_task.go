package kafkaio

import (
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/internal/backoff"
	"github.com/tidemark-go/tidemark/stream"
)

// partitionTask owns the task of one partition number: the claims that
// feed it (one per input), the stream task and its inputs behind their
// decoders, and what rebuilding it needs: it builds the task from the
// group's committed offsets by replay, feeds it the records of its claims,
// tells its inputs when they are idle, and gives its checkpoints to the
// commits. Its methods are for the stage's loop goroutine.
type partitionTask struct {
	p       int32
	claims  []*claimRef // per input; nil until claimed
	task    taskCtl     // nil until every input is claimed and the task is built
	inputs  []inputRunner
	first   []int64 // per input without a committed offset: the first offset it read, or -1
	leaving bool    // its claim ended: a failed commit drops it instead of rebuilding it
}

// build makes the partition's task and rebuilds its state: it restores each
// input from the group's committed offset and replays the records from the
// checkpoint's replay offset (EndReplay), then, for a task rebuilt after an
// abort, pushes again the records up to upTo (per input, exclusive) that the
// aborted transaction had covered. It retries while the brokers are away.
func (s *partitionTask) build(rt *runtime, upTo []int64) error {
	b := backoff.New(250*time.Millisecond, 5*time.Second, 0)
	for {
		err := s.tryBuild(rt, upTo)
		if err == nil {
			rt.st.stats.tasks.Add(1)
			return nil
		}
		if rt.ctx.Err() != nil {
			return nil // stopping; the claims see the session end
		}
		rt.log.Warn("kafkaio: cannot build task; retrying", "group", rt.st.group, "partition", s.p,
			"attempt", b.Attempts()+1, "error", err)
		if b.Wait(rt.ctx) != nil {
			return nil
		}
	}
}

func (s *partitionTask) tryBuild(rt *runtime, upTo []int64) (err error) {
	start := time.Now()
	task, inputs, err := rt.st.newTask()
	if err != nil {
		return fmt.Errorf("kafkaio: operator: %w", err)
	}
	defer func() {
		if err != nil {
			s.task, s.inputs = nil, nil
		}
	}()
	parts := make(map[string][]int32, len(rt.st.inputs))
	for _, in := range rt.st.inputs {
		parts[in.topic] = append(parts[in.topic], s.p)
	}
	comm, err := fetchCommitted(rt.ctx, rt.groupCl, rt.st.group, parts)
	if err != nil {
		return err
	}
	resume := make([]int64, len(inputs))
	from := make([]int64, len(inputs))
	for i, in := range rt.st.inputs {
		c := comm[topicPartition{in.topic, s.p}]
		resume[i], from[i] = -1, -1
		if c.offset < 0 {
			continue // nothing committed: the task starts with the partition
		}
		f, err := inputs[i].restore(stream.Checkpoint{Offset: c.offset, Metadata: c.meta})
		if errors.Is(err, stream.ErrInvalidCheckpoint) {
			rt.log.Warn("kafkaio: committed offset without usable task state; starting there without a replay",
				"group", rt.st.group, "topic", in.topic, "partition", s.p, "offset", c.offset, "error", err)
		} else if err != nil {
			return err
		}
		resume[i], from[i] = c.offset, f
	}
	replayed := 0
	s.task, s.inputs = task, inputs
	rt.cur = s
	defer func() { rt.cur = nil }()
	for i, in := range rt.st.inputs {
		if from[i] < 0 {
			continue
		}
		err := readRange(rt.ctx, rt.replayer, in.topic, s.p, from[i], resume[i], rt.log.Warn, func(m *sarama.ConsumerMessage) error {
			replayed++
			return s.push(rt, i, m)
		})
		if err != nil {
			return err
		}
	}
	if err := task.EndReplay(); err != nil {
		rt.log.Error("kafkaio: replay does not match the checkpoint; results may differ from an uninterrupted run",
			"group", rt.st.group, "partition", s.p, "error", err)
	}
	relived := 0
	for i, in := range rt.st.inputs {
		if upTo == nil || upTo[i] < 0 {
			continue
		}
		f := resume[i]
		if f < 0 {
			f = s.first[i]
		}
		if f < 0 {
			continue
		}
		var one [1]*sarama.ConsumerMessage
		err := readRange(rt.ctx, rt.replayer, in.topic, s.p, f, upTo[i], rt.log.Warn, func(m *sarama.ConsumerMessage) error {
			relived++
			rt.st.stats.records.add(1)
			rt.st.stats.reprocessed.Add(1)
			one[0] = m
			rt.curBatch = one[:]
			defer func() { rt.curBatch = nil }()
			return s.push(rt, i, m)
		})
		if err != nil {
			return err
		}
	}
	rt.log.Info("kafkaio: task started", "group", rt.st.group, "partition", s.p, "committed", resume,
		"replayed", replayed, "reprocessed", relived, "watermark", task.Watermark(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// push feeds one record to an input of a task, dead-lettering what the
// codec rejects (except during a replay, whose records were dealt with).
func (s *partitionTask) push(rt *runtime, input int, m *sarama.ConsumerMessage) error {
	res, err := s.inputs[input].push(m)
	v, rejected := res.verdict, res.refused
	if err != nil {
		return fmt.Errorf("kafkaio: stage %q: %s/%d@%d: %w", rt.st.group, m.Topic, m.Partition, m.Offset, err)
	}
	replaying := s.task.Replaying()
	switch {
	case replaying:
		rt.st.stats.replayed.Add(1)
	case v == stream.TooFarAhead:
		rt.st.stats.ahead.add(1)
		rt.deadLetter(m, rejected, rt.st.inputs[input].skipDeadLetter)
	case rejected != nil:
		rt.st.stats.rejected.add(1)
		rt.deadLetter(m, rejected, rt.st.inputs[input].skipDeadLetter)
	case v == stream.Accepted:
		rt.st.stats.accepted.add(1)
	case v == stream.Late:
		rt.st.stats.late.add(1)
		if lt := rt.st.inputs[input].lateTopic; lt != "" {
			rt.forwardLate(m, lt)
		}
	case v == stream.Duplicate:
		rt.st.stats.dups.add(1)
	}
	return nil
}

// checkpoints adds the task's checkpoints, per input topic, to out, unless
// it is replaying (its restored checkpoints stand); cps is scratch space,
// returned for reuse.
func (s *partitionTask) checkpoints(rt *runtime, out map[string][]*sarama.PartitionOffsetMetadata, cps []stream.InputCheckpoint) []stream.InputCheckpoint {
	if s.task == nil || s.task.Replaying() {
		return cps
	}
	cps = s.task.Checkpoints(cps[:0])
	for _, c := range cps {
		meta := c.Metadata
		topic := rt.st.inputs[c.Input].topic
		out[topic] = append(out[topic], &sarama.PartitionOffsetMetadata{Partition: s.p, Offset: c.Offset, Metadata: &meta, LeaderEpoch: -1})
	}
	return cps
}

// idle tells each input that has been quiet for timeout how long it has
// (WithIdleAdvance): quiet since its last record, or since the brokers
// answered again, and confirmed by them (see probeClaims). A Final input is
// never idle-advanced: its events are released as they come.
func (s *partitionTask) idle(rt *runtime, now time.Time, timeout time.Duration) {
	if s.task == nil || s.task.Replaying() {
		return
	}
	for i, in := range s.inputs {
		c := s.claims[i]
		if c == nil || rt.st.inputs[i].final {
			continue
		}
		q := c.quiet.Load()
		if d := now.Sub(time.Unix(0, q)); q != 0 && c.confirmed.Load() && d >= timeout {
			in.idle(d)
		}
	}
}
