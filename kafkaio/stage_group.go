package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/internal/backoff"
)

// fatalGroupError reports consumer group errors that retrying cannot fix.
func fatalGroupError(err error) bool {
	var ce sarama.ConfigurationError
	return errors.As(err, &ce) ||
		errors.Is(err, sarama.ErrUnknownTopicOrPartition) ||
		errors.Is(err, sarama.ErrTopicAuthorizationFailed) ||
		errors.Is(err, sarama.ErrGroupAuthorizationFailed) ||
		errors.Is(err, sarama.ErrSASLAuthenticationFailed) ||
		errors.Is(err, sarama.ErrInvalidGroupId)
}

// consume runs the consumer group until it is closed or fails for good.
func (rt *runtime) consume() {
	h := stageHandler{rt}
	b := backoff.New(100*time.Millisecond, 10*time.Second, 0)
	topics := rt.st.topics()
	for {
		err := rt.group.Consume(context.Background(), topics, h)
		if errors.Is(err, sarama.ErrClosedConsumerGroup) || errors.Is(err, sarama.ErrClosedClient) {
			rt.consumed <- nil
			return
		}
		if err == nil {
			b.Reset()
			continue
		}
		if fatalGroupError(err) {
			rt.consumed <- fmt.Errorf("kafkaio: stage %q on %v: %w", rt.st.group, topics, err)
			return
		}
		rt.log.Warn("kafkaio: consumer group session failed; retrying", "group", rt.st.group, "attempt", b.Attempts()+1, "error", err)
		_ = b.Wait(context.Background()) // the group's Close ends Consume, not this wait
	}
}

func (rt *runtime) groupErrors() {
	for err := range rt.group.Errors() {
		var ce *sarama.ConsumerError
		if errors.As(err, &ce) && ce.Topic != "" {
			rt.log.Warn("kafkaio: consumer error", "group", rt.st.group, "topic", ce.Topic, "partition", ce.Partition, "error", ce.Err)
			continue
		}
		rt.log.Warn("kafkaio: consumer error", "group", rt.st.group, "error", err)
	}
}

type stageHandler struct{ rt *runtime }

func (h stageHandler) Setup(sess sarama.ConsumerGroupSession) error {
	h.rt.sessMu.Lock()
	h.rt.sess = sess
	h.rt.sessMu.Unlock()
	h.rt.log.Info("kafkaio: joined consumer group", "group", h.rt.st.group, "member", sess.MemberID(),
		"generation", sess.GenerationID(), "claims", sess.Claims())
	return nil
}

func (h stageHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	h.rt.sessMu.Lock()
	if h.rt.sess == sess {
		h.rt.sess = nil
	}
	h.rt.sessMu.Unlock()
	return nil
}

// ConsumeClaim registers the claim with the loop, waits until its task runs,
// then hands the loop batches of records until the claim ends; it returns
// only once the loop has committed what the claim delivered and dropped the
// task, so that the partition's next owner starts from a commit that covers
// everything this member emitted for it.
func (h stageHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, cl sarama.ConsumerGroupClaim) error {
	rt := h.rt
	c := &claimRef{input: rt.st.inputIndex(cl.Topic()), topic: cl.Topic(), partition: cl.Partition(), ready: make(chan struct{})}
	if c.input < 0 || !rt.post(event{kind: claimStarted, c: c}) {
		return nil
	}
	rt.claimsMu.Lock()
	rt.claims[c] = struct{}{}
	rt.claimsMu.Unlock()
	defer func() {
		rt.claimsMu.Lock()
		delete(rt.claims, c)
		rt.claimsMu.Unlock()
		ack := make(chan struct{})
		if rt.post(event{kind: claimEnded, c: c, ack: ack}) {
			select {
			case <-ack:
			case <-rt.dead:
			}
		}
	}()
	done := sess.Context().Done()
	select {
	case <-c.ready:
	case <-done:
		return nil
	case <-rt.dead:
		return nil
	}
	off := cl.InitialOffset()
	if off < 0 { // no committed offset: the claim starts at the partition's start
		off, _ = rt.groupCl.GetOffset(cl.Topic(), cl.Partition(), sarama.OffsetOldest)
	}
	if off >= 0 {
		// Quiet from the start, until a record comes (a partition with
		// nothing new since the last incarnation, or nothing at all).
		now := time.Now().UnixNano()
		c.last.Store(off - 1)
		c.processed.Store(off - 1)
		c.fedAt.Store(now)
		c.quiet.Store(now)
	}
	msgs := cl.Messages()
	limit := rt.st.cfg.batch
	for {
		var m *sarama.ConsumerMessage
		var ok bool
		select {
		case m, ok = <-msgs:
			if !ok {
				return nil
			}
		case <-done:
			return nil
		case <-rt.dead:
			return nil
		}
		b := rt.batch()
		*b = append(*b, m)
	drain:
		for len(*b) < limit {
			select {
			case m, ok = <-msgs:
				if !ok {
					break drain
				}
				*b = append(*b, m)
			default:
				break drain
			}
		}
		last, hwm, now := (*b)[len(*b)-1].Offset, cl.HighWaterMarkOffset(), time.Now().UnixNano()
		c.last.Store(last)
		c.hwm.Store(hwm)
		c.fedAt.Store(now)
		c.quiet.Store(now) // a quiet spell starts after each batch, to be confirmed
		c.confirmed.Store(false)
		c.lag.Store(max(hwm-last-1, 0))
		var at time.Time
		if rt.st.cfg.latency != nil {
			at = time.Now()
		}
		if !rt.post(event{kind: records, c: c, msgs: b, at: at}) {
			return nil
		}
		if !ok {
			return nil
		}
	}
}

func (s *Stage) inputIndex(topic string) int {
	for i, in := range s.inputs {
		if in.topic == topic {
			return i
		}
	}
	return -1
}

// claimStarted registers a claim and builds the partition's task once every
// input of the partition number is claimed.
func (rt *runtime) claimStarted(c *claimRef) error {
	s := rt.parts[c.partition]
	if s == nil {
		n := len(rt.st.inputs)
		s = &partitionTask{p: c.partition, claims: make([]*claimRef, n), first: make([]int64, n)}
		for i := range s.first {
			s.first[i] = -1
		}
		rt.parts[c.partition] = s
	}
	s.claims[c.input] = c
	for _, cl := range s.claims {
		if cl == nil {
			return nil
		}
	}
	if err := s.build(rt, nil); err != nil {
		return err
	}
	for _, cl := range s.claims {
		close(cl.ready)
	}
	return nil
}

// claimEnded commits what the claim's task emitted and drops the task.
func (rt *runtime) claimEnded(c *claimRef) error {
	s := rt.parts[c.partition]
	if s == nil || s.claims[c.input] != c {
		return nil
	}
	var err error
	if s.task != nil {
		// Commit the task's results with its offsets before the partition
		// moves; if that fails they are aborted, and the next owner computes
		// them again from the committed offsets.
		s.leaving = true
		err = rt.commit()
		if s.task != nil {
			rt.st.stats.tasks.Add(-1)
		}
		s.task, s.inputs, s.leaving = nil, nil, false
		rt.log.Info("kafkaio: task stopped", "group", rt.st.group, "partition", s.p, "topic", c.topic)
	}
	s.claims[c.input] = nil
	empty := true
	for _, cl := range s.claims {
		empty = empty && cl == nil
	}
	if empty {
		delete(rt.parts, c.partition)
	}
	return err
}

// lag sums the lag of the live claims.
func (rt *runtime) lag() int64 {
	rt.claimsMu.Lock()
	defer rt.claimsMu.Unlock()
	var n int64
	for c := range rt.claims {
		n += c.lag.Load()
	}
	return n
}

func (rt *runtime) instanceID() *string {
	if rt.st.cfg.instanceID == "" {
		return nil
	}
	return &rt.st.cfg.instanceID
}

func (rt *runtime) session() sarama.ConsumerGroupSession {
	rt.sessMu.Lock()
	defer rt.sessMu.Unlock()
	return rt.sess
}
