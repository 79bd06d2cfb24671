package kafkaio

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/IBM/sarama"
)

// waitOutage waits until the outage that holds records back has ended.
func (s *Sink[T]) waitOutage(ctx context.Context) error {
	s.mu.Lock()
	resume := s.outage.resume
	s.mu.Unlock()
	if resume == nil {
		return nil
	}
	select {
	case <-resume:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// hold keeps a record that failed retriably for resending; the first one of
// an outage pauses Writes.
func (s *Sink[T]) hold(m *outMsg, pe *sarama.ProducerError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := &s.outage
	if !s.paused.Load() {
		o.resume, o.began, o.attempts = make(chan struct{}), time.Now(), 0
		s.paused.Store(true)
		s.stats.outages.Add(1)
		s.log.Warn("kafkaio: produce failed; holding records back and resending them once the brokers answer (Writes wait)",
			"topic", pe.Msg.Topic, "partition", pe.Msg.Partition, "error", pe.Err, "gives_up_after", s.holdFor)
	}
	o.held = append(o.held, m)
	o.last = &ProduceError{Topic: pe.Msg.Topic, Partition: pe.Msg.Partition, Err: pe.Err}
	s.stepOutage()
}

// stepOutage moves an outage on, with mu held: once every record in flight
// is held, it resends them (or gives up); once none is in flight, the outage
// is over and Writes go on.
func (s *Sink[T]) stepOutage() {
	o := &s.outage
	if !s.paused.Load() || o.resending {
		return
	}
	inflight := s.inflight.Load()
	switch {
	case len(o.held) > 0 && inflight == int64(len(o.held)):
		o.resending = true
		held := o.held
		o.held = nil
		wait := min(250*time.Millisecond<<min(o.attempts, 3), 2*time.Second)
		o.attempts++
		if time.Since(o.began) >= s.holdFor {
			go s.giveUp(held, o.last)
		} else {
			go s.resend(held, wait)
		}
	case len(o.held) == 0 && inflight == 0:
		s.paused.Store(false)
		close(o.resume)
		o.resume = nil
		if s.failure == nil {
			s.log.Info("kafkaio: produce recovered; held records were resent", "after", time.Since(o.began).Round(time.Millisecond),
				"resent", s.stats.resent.Load())
		}
	}
}

// resend hands held records back to the producer, in the order they were
// written, after wait.
func (s *Sink[T]) resend(held []*outMsg, wait time.Duration) {
	time.Sleep(wait)
	slices.SortFunc(held, func(a, b *outMsg) int { return cmp.Compare(a.seq, b.seq) })
	for _, m := range held {
		m.lane.prod.Input() <- &m.msg
		s.stats.resent.Add(1)
	}
	s.mu.Lock()
	s.outage.resending = false
	s.stepOutage()
	s.mu.Unlock()
}

// giveUp fails held records: the outage outlasted the delivery timeout.
func (s *Sink[T]) giveUp(held []*outMsg, last *ProduceError) {
	s.log.Error("kafkaio: the brokers did not take the held records back within the delivery timeout; the sink fails",
		"records", len(held), "timeout", s.delivery, "error", last.Err)
	for _, m := range held {
		s.fail(&sarama.ProducerError{Msg: &m.msg, Err: last.Err})
	}
	s.mu.Lock()
	s.outage.resending = false
	s.mu.Unlock()
	for _, m := range held {
		s.release(&m.msg)
	}
}
