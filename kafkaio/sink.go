package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/stream"
)

// Sink produces events to Kafka with sarama's asynchronous, idempotent
// producer. It implements stream.Sink and stream.Flusher.
//
// Write encodes an event (record key = event key, value = the codec's
// encoding, timestamp = event time) and hands it to the producer, which
// batches records per partition; Write blocks only when the producer's buffers
// are full. Flush returns once every record written before it has been
// acknowledged by all in-sync replicas, or with the first delivery error.
//
// A delivery error is sticky: once a record has failed, every later Write and
// Flush returns a *ProduceError for it (wrapped, with the count of other
// failed records), because the records after it may have been acknowledged
// out of order; the pipeline must stop and restart from its last committed
// offsets. Write, Flush, Stats and Close are safe for concurrent use.
type Sink[T any] struct {
	client sarama.Client
	own    bool
	prod   sarama.AsyncProducer
	codec  Codec[T]
	topic  string
	route  func(stream.Event[T]) string
	log    *slog.Logger

	gate   sync.RWMutex // Write holds it shared while it sends, Close exclusively
	closed bool         // guarded by gate

	inflight atomic.Int64
	failing  atomic.Bool
	mu       sync.Mutex
	waiters  []chan struct{} // Flushes waiting for inflight to reach 0
	failure  *ProduceError   // the first failed record
	failures int

	acksDone  chan struct{}
	pool      sync.Pool
	closeOnce sync.Once
	closeErr  error

	stats struct{ written, acked, failed atomic.Uint64 }
}

// SinkStats counts what a Sink did.
type SinkStats struct {
	Written uint64 // records handed to the producer
	Acked   uint64 // records acknowledged by the brokers
	Failed  uint64 // records that failed
}

var (
	_ stream.Sink[int] = (*Sink[int])(nil)
	_ stream.Flusher   = (*Sink[int])(nil)
)

// NewSink returns a Sink that produces with the given client (nil with
// WithBrokers) and codec; WithTopic or WithRouter says where. The client's
// config must have an idempotent producer with acks from all in-sync replicas
// that returns successes and errors (Producer.Idempotent, RequiredAcks =
// WaitForAll, Net.MaxOpenRequests = 1, Producer.Return.Successes and
// .Errors): NewConfig has them. Batching and compression are part of that
// config too (WithBatch, WithCompression).
func NewSink[T any](client sarama.Client, codec Codec[T], opts ...SinkOption) (*Sink[T], error) {
	var cfg sinkConfig
	for _, o := range opts {
		if o != nil {
			o.applySink(&cfg)
		}
	}
	if codec == nil {
		return nil, fmt.Errorf("%w: nil codec", ErrInvalidOption)
	}
	var route func(stream.Event[T]) string
	switch r := cfg.router.(type) {
	case nil:
		if cfg.topic == "" {
			return nil, fmt.Errorf("%w: no topic (WithTopic or WithRouter)", ErrInvalidOption)
		}
	case func(stream.Event[T]) string:
		route = r
	default:
		var zero T
		return nil, fmt.Errorf("%w: router is %T, want func(stream.Event[%T]) string", ErrInvalidOption, cfg.router, zero)
	}
	if client != nil {
		if err := checkProducerConfig(client.Config()); err != nil {
			return nil, err
		}
	} else if cfg.config != nil {
		if err := checkProducerConfig(cfg.config); err != nil {
			return nil, err
		}
	}
	client, own, err := cfg.resolve(client)
	if err != nil {
		return nil, err
	}
	prod, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		if own {
			_ = client.Close()
		}
		return nil, fmt.Errorf("%w: producer: %w", ErrBadConfig, err)
	}
	s := &Sink[T]{
		client:   client,
		own:      own,
		prod:     prod,
		codec:    codec,
		topic:    cfg.topic,
		route:    route,
		log:      cfg.logger,
		acksDone: make(chan struct{}),
	}
	go s.acks()
	return s, nil
}

func checkProducerConfig(c *sarama.Config) error {
	switch {
	case !c.Producer.Idempotent || c.Producer.RequiredAcks != sarama.WaitForAll:
		return fmt.Errorf("%w: the Sink needs Producer.Idempotent and RequiredAcks = WaitForAll (use kafkaio.NewConfig)", ErrBadConfig)
	case !c.Producer.Return.Successes || !c.Producer.Return.Errors:
		return fmt.Errorf("%w: the Sink needs Producer.Return.Successes and Producer.Return.Errors (use kafkaio.NewConfig)", ErrBadConfig)
	}
	return nil
}

// outMsg is a pooled producer message with its own key and value buffers.
type outMsg struct {
	msg      sarama.ProducerMessage
	key, val bufEncoder
}

// bufEncoder is a sarama.Encoder over a reusable buffer; a pointer to it
// converts to the interface without allocating.
type bufEncoder struct{ b []byte }

func (e *bufEncoder) Encode() ([]byte, error) { return e.b, nil }
func (e *bufEncoder) Length() int             { return len(e.b) }

// Write implements stream.Sink: it encodes e and hands it to the producer. It
// returns the error of an earlier failed record, an encoding error, ctx.Err()
// if ctx is done while the producer's buffers are full, or ErrClosed.
func (s *Sink[T]) Write(ctx context.Context, e stream.Event[T]) error {
	if s.failing.Load() {
		return s.err()
	}
	m, _ := s.pool.Get().(*outMsg)
	if m == nil {
		m = new(outMsg)
	}
	var err error
	if m.val.b, err = s.codec.AppendValue(m.val.b[:0], e); err != nil {
		s.pool.Put(m)
		return fmt.Errorf("kafkaio: encode %q at %v: %w", e.Key, e.Time, err)
	}
	topic := s.topic
	if s.route != nil {
		if topic = s.route(e); topic == "" {
			s.pool.Put(m)
			return fmt.Errorf("kafkaio: the router gave no topic for %q at %v", e.Key, e.Time)
		}
	}
	m.msg = sarama.ProducerMessage{Topic: topic, Value: &m.val, Timestamp: e.Time.UTC(), Partition: -1, Metadata: m}
	if e.Key != "" {
		m.key.b = append(m.key.b[:0], e.Key...)
		m.msg.Key = &m.key
	}

	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.closed {
		s.pool.Put(m)
		return ErrClosed
	}
	s.inflight.Add(1)
	select {
	case s.prod.Input() <- &m.msg:
		s.stats.written.Add(1)
		return nil
	case <-ctx.Done():
		s.settle()
		s.pool.Put(m)
		return ctx.Err()
	}
}

// Flush implements stream.Flusher: it waits until every record written so far
// is acknowledged (or failed), then returns the first delivery error, if any.
// Concurrent Writes delay it. If ctx is done first it returns ctx.Err().
func (s *Sink[T]) Flush(ctx context.Context) error {
	if s.inflight.Load() != 0 {
		s.mu.Lock()
		if s.inflight.Load() == 0 {
			s.mu.Unlock()
		} else {
			w := make(chan struct{})
			s.waiters = append(s.waiters, w)
			s.mu.Unlock()
			select {
			case <-w:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return s.err()
}

// Stats returns the counts so far.
func (s *Sink[T]) Stats() SinkStats {
	return SinkStats{Written: s.stats.written.Load(), Acked: s.stats.acked.Load(), Failed: s.stats.failed.Load()}
}

// Close waits for the records in flight, stops the producer and closes the
// client if WithBrokers made it. It returns the delivery error of any failed
// record, like Flush. Close is idempotent; Write returns ErrClosed afterwards.
func (s *Sink[T]) Close() error {
	s.closeOnce.Do(func() {
		s.gate.Lock()
		s.closed = true
		s.gate.Unlock()
		s.prod.AsyncClose()
		<-s.acksDone
		errs := []error{s.err()}
		if s.own {
			if err := s.client.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
				errs = append(errs, fmt.Errorf("kafkaio: close client: %w", err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// acks accounts for the producer's successes and errors until it is closed.
func (s *Sink[T]) acks() {
	defer close(s.acksDone)
	succ, errs := s.prod.Successes(), s.prod.Errors()
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			s.stats.acked.Add(1)
			s.release(m)
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			s.fail(pe)
			s.release(pe.Msg)
		}
	}
}

func (s *Sink[T]) release(m *sarama.ProducerMessage) {
	if om, ok := m.Metadata.(*outMsg); ok && &om.msg == m {
		s.pool.Put(om)
	}
	s.settle()
}

// settle counts one record out of flight and wakes the Flushes when none is left.
func (s *Sink[T]) settle() {
	if s.inflight.Add(-1) != 0 {
		return
	}
	s.mu.Lock()
	for _, w := range s.waiters {
		close(w)
	}
	clear(s.waiters)
	s.waiters = s.waiters[:0]
	s.mu.Unlock()
}

func (s *Sink[T]) fail(pe *sarama.ProducerError) {
	s.stats.failed.Add(1)
	e := &ProduceError{Topic: pe.Msg.Topic, Partition: pe.Msg.Partition, Err: pe.Err}
	s.mu.Lock()
	first := s.failure == nil
	if first {
		s.failure = e
	}
	s.failures++
	s.mu.Unlock()
	s.failing.Store(true)
	if first {
		s.log.Error("kafkaio: produce failed; the sink stops accepting records", "topic", e.Topic, "partition", e.Partition, "error", e.Err)
	}
}

func (s *Sink[T]) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.failure == nil:
		return nil
	case s.failures > 1:
		return fmt.Errorf("%w (and %d more failed records)", s.failure, s.failures-1)
	}
	return s.failure
}
