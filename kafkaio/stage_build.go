package kafkaio

import (
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/stream"
)

// build makes the slot's task and rebuilds its state: it restores each
// input from the group's committed offset and replays the records from the
// checkpoint's replay offset (EndReplay), then, for a task rebuilt after an
// abort, pushes again the records up to upTo (per input, exclusive) that the
// aborted transaction had covered. It retries while the brokers are away.
func (rt *runtime) build(s *slot, upTo []int64) error {
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := rt.tryBuild(s, upTo)
		if err == nil {
			rt.st.stats.tasks.Add(1)
			return nil
		}
		if rt.ctx.Err() != nil {
			return nil // stopping; the claims see the session end
		}
		rt.log.Warn("kafkaio: cannot build task; retrying", "group", rt.st.group, "partition", s.p,
			"attempt", attempt, "retry_in", backoff, "error", err)
		select {
		case <-rt.ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (rt *runtime) tryBuild(s *slot, upTo []int64) (err error) {
	start := time.Now()
	task, inputs, err := rt.st.newTask(rt.out)
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
			return rt.push(s, i, m)
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
			return rt.push(s, i, m)
		})
		if err != nil {
			return err
		}
	}
	for i := range s.lastAt {
		s.lastAt[i] = time.Now()
	}
	rt.log.Info("kafkaio: task started", "group", rt.st.group, "partition", s.p, "committed", resume,
		"replayed", replayed, "reprocessed", relived, "watermark", task.Watermark(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}
