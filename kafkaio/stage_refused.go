package kafkaio

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/stream"
)

// A result that can never be written (too large for its topic, not
// encodable, refused by the brokers or the sink for what it is) must not
// stop the stage: retrying the transaction would meet it again, forever.
// The stage writes the input record it comes from to the dead-letter topic
// instead, in the same transaction as the results (or, for a stage writing
// to a sink, flushed before the offsets are committed), and goes on; or,
// with StopOnRecordError, Run returns a *RecordError.
//
// What is checked before a result is sent is decided the same way by any
// run of the task over the same records: the size against the topic's
// limit, the encoding, the router's topic. What the brokers refuse after it
// was sent (an invalid timestamp for the topic, a policy, a batch over a
// limit the stage did not know) fails the whole transaction: the stage
// aborts it, remembers the refused results by topic, key and time
// (suspects), and when the rebuilt tasks emit a suspect again it sends it
// alone, waiting for every record before it and for itself: refused again,
// it is poison and its input is dead-lettered from then on; written, it is
// forgotten. A run after a crash learns the same the same way.

// refusedOutput is a result that cannot be written.
type refusedOutput struct {
	topic string // "" for a sink
	key   string
	t     stream.Time
	value []byte // its encoding, if there is one
	size  int    // as the producer counts it, 0 if unknown
	kind  string // for the header tidemark-error-kind and the logs
	err   error
}

// origin is the input record of a refused result.
type originKey struct {
	input     int
	partition int32
	offset    int64
}

// resultOrigin is where a result comes from: the partition task, and the
// input record (exact: the record of the event with the result's key and
// time; else the record whose push made it final, if known).
type resultOrigin struct {
	s            *partitionTask
	o            stream.Origin
	exact, known bool
}

// originOf finds where a result the current task emits now comes from.
func (rt *runtime) originOf(key string, t stream.Time) resultOrigin {
	s := rt.cur
	if s == nil || s.task == nil {
		return resultOrigin{}
	}
	if o, ok := s.task.Origin(key, t); ok {
		return resultOrigin{s: s, o: o, exact: true, known: true}
	}
	o, ok := s.task.Trigger()
	return resultOrigin{s: s, o: o, known: ok}
}

// writtenResult is a result written to a sink since the last commit, with
// its origin, for the sink's rejections at the flush.
type writtenResult struct {
	key  string
	t    stream.Time
	from resultOrigin
}

// refuse deals with a result that cannot be written: it dead-letters the
// input record it comes from and returns nil, or returns the *RecordError
// that stops the stage.
func (rt *runtime) refuse(r refusedOutput, from resultOrigin) error {
	rt.st.stats.refused.add(1)
	s, o, exact, known := from.s, from.o, from.exact, from.known
	re := &RecordError{Stage: rt.st.group, Offset: -1, Output: cmp.Or(r.topic, "sink"), Size: r.size, Err: r.err}
	if known {
		re.Topic, re.Partition, re.Offset = rt.st.inputs[o.Input].topic, s.p, o.Offset
	}
	if rt.st.cfg.onRecordError == StopOnRecordError || rt.st.cfg.deadLetter == "" || rt.tx == nil {
		rt.log.Error("kafkaio: a result cannot be written; stopping (WithOnRecordError, WithDeadLetter)",
			"group", rt.st.group, "error", re)
		return re
	}
	if !rt.kinds["refused/"+r.kind] {
		rt.kinds["refused/"+r.kind] = true
		rt.log.Warn("kafkaio: a result cannot be written; its input record goes to the dead-letter topic (logged once per kind; see StageStats.Refused)",
			"group", rt.st.group, "kind", r.kind, "input", fmt.Sprintf("%s/%d@%d", re.Topic, re.Partition, re.Offset),
			"output", re.Output, "size", r.size, "dead_letter", rt.st.cfg.deadLetter, "error", r.err)
	}
	if exact {
		k := originKey{o.Input, s.p, o.Offset}
		if _, done := rt.refusedInputs[k]; done {
			return nil // another result of the same record was refused in this transaction
		}
		m, err := rt.inputRecord(s, o)
		if err != nil {
			return fmt.Errorf("kafkaio: stage %q: read the input record %s/%d@%d of a refused result: %w", rt.st.group, re.Topic, s.p, o.Offset, err)
		}
		rt.refusedInputs[k] = struct{}{}
		rt.sendDeadLetter(m, r.err, "refused-"+r.kind, r)
		return nil
	}
	// A result of many events, or one emitted by no record (an idle
	// advance): the result itself is dead-lettered, cut to fit, with the
	// record that triggered it, if any, in the usual headers.
	m := &sarama.ConsumerMessage{Key: []byte(r.key), Value: r.value, Timestamp: r.t.UTC(), Offset: -1, Partition: -1}
	if known {
		m.Topic, m.Partition, m.Offset = re.Topic, re.Partition, re.Offset
	}
	rt.sendDeadLetter(m, r.err, "refused-"+r.kind, r)
	return nil
}

// inputRecord returns the input record at o of partition task s: from the batch being
// processed, or read again from its partition.
func (rt *runtime) inputRecord(s *partitionTask, o stream.Origin) (*sarama.ConsumerMessage, error) {
	topic := rt.st.inputs[o.Input].topic
	if b := rt.curBatch; len(b) > 0 && b[0].Topic == topic && b[0].Partition == s.p {
		i := sort.Search(len(b), func(i int) bool { return b[i].Offset >= o.Offset })
		if i < len(b) && b[i].Offset == o.Offset {
			return b[i], nil
		}
	}
	// A consumer of its own: a replay of the partition may be under way.
	if rt.lookup == nil {
		c, err := sarama.NewConsumerFromClient(rt.replayCl)
		if err != nil {
			return nil, err
		}
		rt.lookup = c
	}
	// On the writes' context, which a stop does not end: a refusal met by
	// the flush of a commit under way when the stop comes is dealt with.
	var got *sarama.ConsumerMessage
	err := readRange(rt.writes, rt.lookup, topic, s.p, o.Offset, o.Offset+1, rt.log.Warn, func(m *sarama.ConsumerMessage) error {
		if m.Offset == o.Offset {
			got = m
		}
		return nil
	})
	if err == nil && got == nil {
		err = fmt.Errorf("offset %d is gone", o.Offset)
	}
	return got, err
}

// sendDeadLetter writes m to the dead-letter topic, untouched but cut to
// fit, with the reason in headers and, for a refused result r, its topic
// and size.
func (rt *runtime) sendDeadLetter(m *sarama.ConsumerMessage, reason error, kind string, r refusedOutput) {
	om := rt.tx.message()
	om.dead = true
	om.key.b = append(om.key.b, m.Key...)
	om.val.b = append(om.val.b, m.Value...)
	om.msg = *deadLetterMessage(m, reason, kind, rt.st.cfg.deadLetter, false)
	if m.Offset < 0 {
		om.msg.Headers = slicesDeleteOrigin(om.msg.Headers)
	}
	om.msg.Headers = append(om.msg.Headers, sarama.RecordHeader{Key: []byte(HeaderStage), Value: []byte(rt.st.group)})
	if r.topic != "" || r.kind != "" {
		om.msg.Headers = append(om.msg.Headers, sarama.RecordHeader{Key: []byte(HeaderOutputTopic), Value: []byte(cmp.Or(r.topic, "sink"))})
		if r.size > 0 {
			om.msg.Headers = append(om.msg.Headers, sarama.RecordHeader{Key: []byte(HeaderSize), Value: strconv.AppendInt(nil, int64(r.size), 10)})
		}
	}
	if m.Key != nil {
		om.msg.Key = &om.key
	}
	if m.Value != nil {
		om.msg.Value = &om.val
	}
	// Cut to fit the producer and the dead-letter topic: the value first,
	// then the key; the header tidemark-truncated gives the value's length.
	if over := om.msg.ByteSize(2) + len(HeaderTruncated) + 20 + 2*binary.MaxVarintLen32 - rt.deadLetterMax; over > 0 {
		om.msg.Headers = append(om.msg.Headers, sarama.RecordHeader{Key: []byte(HeaderTruncated), Value: strconv.AppendInt(nil, int64(len(m.Value)), 10)})
		cut := min(over, len(om.val.b))
		om.val.b = om.val.b[:len(om.val.b)-cut]
		om.key.b = om.key.b[:max(len(om.key.b)-(over-cut), 0)]
	}
	if rt.tx.send(rt.writes, om) == nil {
		rt.st.stats.deadLettered.add(1)
	}
}

// sendAlone sends a suspect result by itself: every record before it is
// acknowledged first, then it is. Refused again, it is poison: the
// transaction fails, and the rebuilt task dead-letters its input. Written,
// it is no longer a suspect.
func (rt *runtime) sendAlone(m *stageMsg, id outputID) error {
	if err := rt.tx.flush(rt.writes); err != nil {
		rt.tx.recycle(m)
		return err
	}
	if err := rt.tx.send(rt.writes, m); err != nil {
		return err
	}
	if err := rt.tx.flush(rt.writes); err != nil {
		if recordRefused(err) {
			rt.poison[id] = err
			delete(rt.suspects, id)
		}
		return err
	}
	delete(rt.suspects, id)
	rt.st.stats.emitted.add(1)
	return nil
}

// sinkRejections dead-letters the inputs of the results the sink refused
// at its flush (a *stream.RejectedError in err) and returns the rest of
// err: nil when the sink refused results and wrote everything else.
func (rt *runtime) sinkRejections(err error) error {
	var rej *stream.RejectedError
	if !errors.As(err, &rej) {
		return err
	}
	for _, r := range rej.Rejections {
		from := resultOrigin{}
		for i := range rt.written {
			if w := &rt.written[i]; w.key == r.Key && w.t == r.Time {
				from = w.from
				// Counted as emitted when the sink took it; it is refused.
				rt.st.stats.emitted.takeBack()
				break
			}
		}
		if ferr := rt.refuse(refusedOutput{key: r.Key, t: r.Time, kind: "sink", err: r.Err}, from); ferr != nil {
			return ferr
		}
	}
	return stream.RejectedRest(err)
}

// slicesDeleteOrigin drops the headers that name an input record, for a
// dead letter that has none.
func slicesDeleteOrigin(hs []sarama.RecordHeader) []sarama.RecordHeader {
	out := hs[:0]
	for _, h := range hs {
		switch string(h.Key) {
		case HeaderTopic, HeaderPartition, HeaderOffset:
			continue
		}
		out = append(out, h)
	}
	return out
}

// learnRefused takes from the producer what the brokers refused in the
// transaction that is being aborted: the results become suspects; a
// refused dead letter stops the stage, which has nowhere else to put it.
// It waits for every record in flight first: the brokers refuse a batch
// one record at a time (one error each), and the first error, which
// brought the stage here, is often not the last of its batch; a refusal
// taken after this point would be cleared by the abort and the refused
// result, not known as a suspect, would fail the next transaction again.
func (rt *runtime) learnRefused() error {
	if rt.tx == nil {
		return nil
	}
	_ = rt.tx.flush(rt.writes) // its error is the failure being recovered from
	ids, dead := rt.tx.takeRefused()
	for _, id := range ids {
		if _, poison := rt.poison[id]; !poison {
			rt.suspects[id] = struct{}{}
		}
	}
	if dead != nil {
		return fmt.Errorf("kafkaio: stage %q: the dead-letter topic %q refused a record for good: %w", rt.st.group, rt.st.cfg.deadLetter, dead)
	}
	return nil
}

// stopsStage reports whether a produce failure means the stage cannot go
// on: a topic gone, authorization denied. Records refused for what they
// are, fenced producers and outages are recovered from.
func (rt *runtime) stopsStage(err error) error {
	var pe *ProduceError
	if !errors.As(err, &pe) || retriable(pe.Err) || recordRefused(pe.Err) || fenced(pe.Err) {
		return nil
	}
	if errors.Is(pe.Err, sarama.ErrUnknownTopicOrPartition) {
		if rt.topicGone(pe.Topic) {
			return missingTopic(rt.st.group, "writes", pe.Topic, sarama.ErrUnknownTopicOrPartition)
		}
		return nil // a partition moving: retriable after all
	}
	return fmt.Errorf("kafkaio: stage %q cannot write %q: %w", rt.st.group, pe.Topic, pe.Err)
}
