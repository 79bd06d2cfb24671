package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// replayStall is how long readRange waits for the next record of a range
// before it gives up: the records were read before, so they are there
// unless the partition lost them.
const replayStall = 30 * time.Second

// readRange reads the records of topic/partition with offsets in [from, to)
// through cons (a consumer of its own, reading read_committed like the
// group) and calls fn for each, in offset order. The record at to-1 was
// read before by a task, so it exists: reading stops once it is reached.
// Records the partition no longer holds (retention) are skipped with a
// warning: the task's EndReplay then reports the mismatch.
func readRange(ctx context.Context, cons sarama.Consumer, topic string, partition int32, from, to int64,
	warn func(msg string, args ...any), fn func(*sarama.ConsumerMessage) error) error {
	if from >= to {
		return nil
	}
	pc, err := cons.ConsumePartition(topic, partition, from)
	if errors.Is(err, sarama.ErrOffsetOutOfRange) {
		warn("kafkaio: replay: the partition no longer holds the start of the replay (retention shorter than the largest window?)",
			"topic", topic, "partition", partition, "from", from)
		pc, err = cons.ConsumePartition(topic, partition, sarama.OffsetOldest)
	}
	if err != nil {
		return fmt.Errorf("kafkaio: replay %s/%d from %d: %w", topic, partition, from, err)
	}
	defer func() { _ = pc.Close() }() // synchronous: the next replay of the partition may follow at once
	stall := time.NewTimer(replayStall)
	defer stall.Stop()
	var errs []error
	msgs := pc.Messages()
	for {
		select {
		case m, ok := <-msgs:
			// The records already delivered are taken in a run, without the
			// stall timer's reset and the wider select for each: a replay
			// reads millions of them.
			for n := 0; ; n++ {
				if !ok {
					return fmt.Errorf("kafkaio: replay %s/%d: the consumer stopped before offset %d (errors: %v)", topic, partition, to-1, errs)
				}
				if m.Offset >= to {
					return nil
				}
				if err := fn(m); err != nil {
					return err
				}
				if m.Offset == to-1 {
					return nil
				}
				if n&1023 == 1023 && ctx.Err() != nil {
					return ctx.Err()
				}
				select {
				case m, ok = <-msgs:
					continue
				default:
				}
				break
			}
			stall.Reset(replayStall)
		case e := <-pc.Errors():
			if e != nil {
				errs = append(errs, e.Err)
			}
		case <-stall.C:
			return fmt.Errorf("kafkaio: replay %s/%d: no record for %v before offset %d (high watermark %d, errors: %v)",
				topic, partition, replayStall, to-1, pc.HighWaterMarkOffset(), errs)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
