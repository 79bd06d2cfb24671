package kafkaio

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/IBM/sarama"
)

// follow runs one partition of a Follower until Close: it consumes it from
// offset from and hands its records to Poll, and consumes it again from
// where it was whenever sarama gives its partition consumer up (retries
// exhausted, an offset the partition no longer holds).
func (f *Follower) follow(p *followPart, from int64) {
	defer f.wg.Done()
	next := from
	for {
		pc := f.open(p, next)
		if pc == nil {
			return // closed
		}
		var stopped bool
		if next, stopped = f.forward(p, pc, next); stopped {
			return
		}
	}
}

// open returns a partition consumer of p from offset next, waiting with
// backoff while sarama cannot make one; nil once the Follower is closed.
func (f *Follower) open(p *followPart, next int64) sarama.PartitionConsumer {
	for attempt := 1; ; attempt++ {
		if f.closed.Load() {
			return nil
		}
		pc, err := f.cons.ConsumePartition(p.topic, p.partition, next)
		if err == nil {
			return pc
		}
		if errors.Is(err, sarama.ErrOffsetOutOfRange) {
			if at, ok := f.reposition(p, next); ok {
				next = at
				continue
			}
		}
		f.out.trouble(f, err, "consume", "topic", p.topic, "partition", p.partition)
		if f.sleep(context.Background(), followBackoff(attempt)) != nil {
			return nil
		}
	}
}

// reposition returns where to go on when offset next is out of p's range:
// its oldest record when retention deleted the records from next on, its
// end when the partition was cut short. Records skipped are logged.
func (f *Follower) reposition(p *followPart, next int64) (int64, bool) {
	oldest, err := f.client.GetOffset(p.topic, p.partition, sarama.OffsetOldest)
	if err != nil {
		return 0, false
	}
	newest, err := f.client.GetOffset(p.topic, p.partition, sarama.OffsetNewest)
	if err != nil {
		return 0, false
	}
	switch {
	case next < oldest:
		f.log.Warn("kafkaio: follower: records deleted before they were read (retention); going on from the oldest one left",
			"topic", p.topic, "partition", p.partition, "from", next, "oldest", oldest, "skipped_offsets", oldest-next)
		return oldest, true
	case next > newest:
		f.log.Warn("kafkaio: follower: the partition ends before the next offset to read (truncated or recreated); going on from its end",
			"topic", p.topic, "partition", p.partition, "from", next, "end", newest)
		return newest, true
	}
	return 0, false
}

// forward hands pc's records to Poll, from offset next, until Close
// (stopped) or until sarama closes pc; it returns the offset after the last
// record handed over.
func (f *Follower) forward(p *followPart, pc sarama.PartitionConsumer, next int64) (int64, bool) {
	msgs, errs := pc.Messages(), pc.Errors()
	for {
		select {
		case m, ok := <-msgs:
			if !ok { // sarama gave up; its reason is on errs, which it closes next
				if errs != nil {
					for e := range errs {
						f.fetchError(p, e.Err)
					}
				}
				return next, false
			}
			p.hwm.Store(pc.HighWaterMarkOffset())
			f.out.over(f, true)
			select {
			case f.records <- delivery{m: m, p: p}:
				next = m.Offset + 1
			case <-f.stop:
				_ = pc.Close()
				return next, true
			}
		case e, ok := <-errs:
			if !ok {
				errs = nil // closed: Messages closes as well
				continue
			}
			f.fetchError(p, e.Err)
		case <-f.stop:
			_ = pc.Close()
			return next, true
		}
	}
}

// fetchError reports an error of p's partition consumer. An offset out of
// range is not trouble with the brokers: the partition consumer stops, and
// open goes on from the right place.
func (f *Follower) fetchError(p *followPart, err error) {
	if errors.Is(err, sarama.ErrOffsetOutOfRange) {
		return
	}
	f.out.trouble(f, err, "fetch", "topic", p.topic, "partition", p.partition)
}

// discover looks for new partitions of the topics every discoverEvery, and
// ends an outage once the brokers answer (every second during one).
func (f *Follower) discover() {
	defer f.wg.Done()
	for {
		every := f.discoverEvery
		if f.out.on.Load() {
			every = min(every, time.Second)
		}
		if f.sleep(context.Background(), every) != nil {
			return
		}
		if err := f.client.RefreshMetadata(f.topics...); err != nil {
			if !f.closed.Load() {
				f.out.trouble(f, err, "metadata", "topics", f.topics)
			}
			continue
		}
		f.out.over(f, false)
		f.addPartitions()
	}
}

// addPartitions follows the partitions of the topics that it does not
// follow yet, from their oldest record.
func (f *Follower) addPartitions() {
	var added []*followPart
	for ti, topic := range f.topics {
		ids, err := f.client.Partitions(topic)
		if err != nil {
			continue
		}
		for _, id := range ids {
			tp := followKey{topic, id}
			if f.known[tp] {
				continue
			}
			oldest, err := f.client.GetOffset(topic, id, sarama.OffsetOldest)
			if err != nil {
				continue // the next round tries again
			}
			if f.closed.Load() {
				return
			}
			p := &followPart{topic: topic, ti: ti, partition: id}
			p.next.Store(oldest)
			p.hwm.Store(oldest)
			f.known[tp] = true
			added = append(added, p)
			f.log.Info("kafkaio: follower: a new partition; reading it from its oldest record",
				"topic", topic, "partition", id, "from", oldest)
			f.wg.Add(1)
			go f.follow(p, oldest)
		}
	}
	if len(added) > 0 {
		parts := slices.Concat(*f.parts.Load(), added)
		f.parts.Store(&parts)
	}
}
