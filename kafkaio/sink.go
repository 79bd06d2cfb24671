package kafkaio

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

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
// Outages. A Sink that makes its own client (WithBrokers) sets sarama to
// retry failed requests, and the partition-leader lookups before them, for
// half the delivery timeout (WithDeliveryTimeout, default two minutes as in
// Kafka's Java producer), backing off from 100 ms to 1 s: sarama retries a
// partition's failed batch before the batches behind it, so a broker restart
// costs neither records nor order (TestSinkBrokerRestart, "own client": no
// record resent, none out of order, on kfake and on Apache Kafka).
//
// When sarama gives records back anyway (its retries are spent, or the
// client is the caller's, at sarama's default of three retries), the Sink
// does not fail at once: a record that failed with a retriable error (the
// connection dropped, no broker reachable, a leader election, a timeout) is
// held back, later Writes wait (back-pressure: nothing piles up in memory),
// and once every record in flight has come back the held ones are resent in
// the order they were written, after a capped backoff (250 ms doubling to
// 2 s), with one log line when the outage begins and one when it ends. Only
// when the brokers have not taken the held records back for the rest of the
// delivery timeout does the Sink fail. A resent record may have been written
// before (the acknowledgement, not the record, was lost), so consumers see it
// at least once, which stream.Sequencer's duplicate check absorbs; and it
// lands behind the records of its partition that sarama still retried while
// it was held (every resent record did in TestSinkBrokerRestart, "given
// client"), so a consumer with an allowed lateness shorter than the outage
// sees it as late. Errors that a resend cannot fix fail at once: records too
// large, authorization, a topic that does not exist (a Sink does not create
// topics).
//
// A delivery error is sticky: once a record has failed, every later Write and
// Flush returns a *ProduceError for it (wrapped, with the count of other
// failed records), because the records after it may have been acknowledged
// out of order; the pipeline must stop and restart from its last committed
// offsets. Write, Flush, Stats and Close are safe for concurrent use.
//
// Dead letters. With WithDeadLetter, a record that the brokers will refuse
// whenever it is sent does not fail the Sink: it goes to the dead-letter
// topic instead, and the records around it go on, in order. Such records are
//
//   - larger than the client's Producer.MaxMessageBytes, as
//     sarama.ProducerMessage.ByteSize counts key, value and headers (kind
//     "too-large"), or than the topic's max.message.bytes less the 61 bytes
//     of a record batch's header;
//   - stamped outside what the topic accepts: with message.timestamp.type
//     CreateTime, more than message.timestamp.after.max.ms ahead of the
//     Sink's clock or more than message.timestamp.before.max.ms behind it
//     (kind "timestamp"; Kafka 4's brokers refuse records more than an hour
//     ahead by default);
//   - refused by the brokers for what they are: too large
//     (MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE), an invalid timestamp, an
//     invalid or corrupt record ("invalid-record"), a policy ("policy"), or
//     one sarama cannot encode ("encoding").
//
// To tell these apart before sending, the Sink learns each topic's
// max.message.bytes and timestamp settings (DescribeConfigs, once per topic,
// on the first Write to it; a topic whose settings cannot be read is only
// checked against the client's limit), and gives the records of a topic whose
// max.message.bytes is below the client's limit a producer of their own on
// the same client, whose batches stay within that limit: a broker refuses a
// whole batch, and sarama reports the refusal for every record in it, so
// batches must never be what is too large. The first two kinds are caught
// before a record is handed to sarama; a refusal by a broker (a clock that
// differs from the Sink's, settings changed since) fails the records of the
// refused batch alike, and they all go to the dead-letter topic with the
// broker's reason.
//
// A dead letter has the record's key and value (the value cut to fit
// Producer.MaxMessageBytes and the dead-letter topic's limit, the header
// tidemark-truncated then giving its length) and the headers tidemark-error
// (the reason), tidemark-error-kind, tidemark-output-topic (where the record
// was meant to go) and tidemark-size (its size as ByteSize counts it). It
// keeps the record's timestamp, unless that timestamp is what was refused or
// the dead-letter topic would refuse it too: then it carries the wall clock
// when it is dead-lettered, and the header tidemark-timestamp (HeaderTimestamp)
// keeps the original. Dead letters are counted in SinkStats.DeadLettered;
// Flush and Close wait for them. One that fails retriably is sent again on
// its own, after a backoff (250 ms doubling to 2 s), for as long as an
// outage may hold records: dead letters have no order to keep, so they do
// not hold Writes back. A dead letter that cannot be written (the
// dead-letter topic refuses it or does not exist, or the brokers stay away)
// is counted in SinkStats.DeadLetterFailed and logged once per kind of
// error, and the Sink goes on. Refused records are logged once per kind too.
//
// The first Write to a topic waits for its settings, under its context.
// Without WithDeadLetter, a Sink reads no settings and checks no record
// before sending: the first refused record fails it.
type Sink[T any] struct {
	client sarama.Client
	own    bool
	main   *lane // the producer of the client's config
	codec  Encoder[T]
	topic  string
	route  func(stream.Event[T]) string
	log    *slog.Logger

	version     int        // the record format sarama sizes records for (ByteSize)
	lanesMu     sync.Mutex // guards lanes and lanesClosed
	lanes       []*lane    // main first, then one per smaller topic limit
	lanesClosed bool
	dead        deadLetters // WithDeadLetter

	delivery time.Duration // WithDeliveryTimeout
	holdFor  time.Duration // how long an outage may hold records: delivery, less sarama's share
	seq      atomic.Uint64 // numbers Writes, to resend held records in order
	paused   atomic.Bool   // records are held back: Writes wait on resume

	gate   sync.RWMutex // Write holds it shared while it sends, Close exclusively
	closed bool         // guarded by gate

	inflight atomic.Int64
	failing  atomic.Bool
	mu       sync.Mutex
	waiters  []chan struct{} // Flushes waiting for inflight to reach 0
	failure  *ProduceError   // the first failed record
	failures int
	outage   struct { // guarded by mu, while paused
		held      []*outMsg     // records that failed retriably, to resend
		resume    chan struct{} // closed when the outage ends
		began     time.Time
		attempts  int
		resending bool
		last      *ProduceError // the latest retriable failure
	}

	pool sync.Pool
	// closing, a lock that waits under a context, serializes Closes and
	// guards closeDone and closeErr.
	closing   chan struct{}
	closeDone bool
	closeErr  error

	stats struct {
		written, acked, failed, resent, outages atomic.Uint64
		deadLettered, deadLetterFailed          atomic.Uint64
	}
}

// SinkStats counts what a Sink did. Once nothing is in flight (after Flush),
// Written = Acked + Failed + DeadLettered + DeadLetterFailed.
type SinkStats struct {
	Written uint64 // records handed to the producer
	Acked   uint64 // records acknowledged by the brokers, in their topic
	Failed  uint64 // records that failed (and failed the Sink)
	Resent  uint64 // records resent after a retriable failure
	Outages uint64 // times records had to be held back and resent
	// DeadLettered counts the records the brokers refuse for good that were
	// written to the dead-letter topic instead (WithDeadLetter).
	DeadLettered uint64
	// DeadLetterFailed counts such records whose dead letter could not be
	// written either: they are logged (once per kind of error) and dropped.
	DeadLetterFailed uint64
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
func NewSink[T any](client sarama.Client, codec Encoder[T], opts ...SinkOption) (*Sink[T], error) {
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
	delivery := cmp.Or(cfg.delivery, DefaultDeliveryTimeout)
	hold := delivery
	if cfg.dial && len(cfg.errs) == 0 {
		// The Sink makes the client: let sarama retry, in order, for half
		// the delivery timeout before the Sink holds and resends.
		base := cfg.config
		if base == nil {
			var err error
			if base, err = NewConfig(); err != nil {
				return nil, err
			}
		}
		c := *base
		orderedRetries(&c, delivery/2)
		cfg.config = &c
		hold = delivery - delivery/2
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
		return nil, fmt.Errorf("%w: producer: %w", ErrInvalidConfig, err)
	}
	main := &lane{prod: prod, max: client.Config().Producer.MaxMessageBytes, done: make(chan struct{})}
	s := &Sink[T]{
		client:   client,
		own:      own,
		main:     main,
		lanes:    []*lane{main},
		codec:    codec,
		topic:    cfg.topic,
		route:    route,
		log:      cfg.logger,
		version:  recordVersion(client.Config()),
		delivery: delivery,
		holdFor:  hold,
		closing:  make(chan struct{}, 1),
	}
	go s.acks(main)
	if cfg.deadLetter != "" {
		s.startDeadLetters(cfg.deadLetter)
	}
	return s, nil
}

// lane is one sarama producer of a Sink, for the topics whose batches must
// stay within its Producer.MaxMessageBytes.
type lane struct {
	prod sarama.AsyncProducer
	max  int           // its config's Producer.MaxMessageBytes: no record nor batch is larger
	done chan struct{} // closed when its acks goroutine has counted every record
}

// recordVersion is the record format version sarama sizes records for, as
// its producer chooses it.
func recordVersion(c *sarama.Config) int {
	if c.Version.IsAtLeast(sarama.V0_11_0_0) {
		return 2
	}
	return 1
}

// orderedRetries makes sarama retry a failed request, and the leader
// lookup before it, for about budget (backing off from 100 ms to 1 s):
// sarama retries a partition's failed batch before the ones behind it, so
// records keep their order, which the Sink's own resends cannot promise.
func orderedRetries(c *sarama.Config, budget time.Duration) {
	backoff := func(retries, _ int) time.Duration { return min(100*time.Millisecond<<min(retries, 4), time.Second) }
	n := 0
	for total := time.Duration(0); total < budget; n++ {
		total += backoff(n, 0)
	}
	c.Producer.Retry.Max, c.Producer.Retry.BackoffFunc = max(c.Producer.Retry.Max, n), backoff
	c.Metadata.Retry.Max, c.Metadata.Retry.BackoffFunc = max(c.Metadata.Retry.Max, n), backoff
}

func checkProducerConfig(c *sarama.Config) error {
	switch {
	case !c.Producer.Idempotent || c.Producer.RequiredAcks != sarama.WaitForAll:
		return fmt.Errorf("%w: the Sink needs Producer.Idempotent and RequiredAcks = WaitForAll (use kafkaio.NewConfig)", ErrInvalidConfig)
	case !c.Producer.Return.Successes || !c.Producer.Return.Errors:
		return fmt.Errorf("%w: the Sink needs Producer.Return.Successes and Producer.Return.Errors (use kafkaio.NewConfig)", ErrInvalidConfig)
	}
	return nil
}

// outMsg is a pooled producer message with its own key and value buffers.
type outMsg struct {
	msg      sarama.ProducerMessage
	key, val bufEncoder
	seq      uint64 // the Write's number

	// A Sink's, with WithDeadLetter:
	lane      *lane     // the producer it is sent on
	dead      bool      // msg is the dead letter of the record
	output    string    // the topic the record was meant for
	kind      string    // why it was refused (tidemark-error-kind)
	restamped bool      // the dead letter carries the wall clock (HeaderTimestamp)
	failedAt  time.Time // the dead letter's first retriable failure
	attempts  int       // its retriable failures
}

// bufEncoder is a sarama.Encoder over a reusable buffer; a pointer to it
// converts to the interface without allocating.
type bufEncoder struct{ b []byte }

func (e *bufEncoder) Encode() ([]byte, error) { return e.b, nil }
func (e *bufEncoder) Length() int             { return len(e.b) }

// Write implements stream.Sink: it encodes e and hands it to the producer. It
// returns the error of an earlier failed record, an encoding error, ctx.Err()
// if ctx is done while the producer's buffers are full or while records are
// held back by an outage, or ErrClosed.
func (s *Sink[T]) Write(ctx context.Context, e stream.Event[T]) error {
	if s.paused.Load() {
		if err := s.waitOutage(ctx); err != nil {
			return err
		}
	}
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
	m.lane, m.dead, m.restamped, m.attempts = s.main, false, false, 0
	if s.dead.topic != "" {
		// Learns the topic's limits on its first Write; a record they
		// refuse becomes its dead letter.
		if err := s.admit(ctx, m); err != nil {
			s.pool.Put(m)
			return err
		}
	}

	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.closed {
		s.pool.Put(m)
		return ErrClosed
	}
	m.seq = s.seq.Add(1)
	s.inflight.Add(1)
	select {
	case m.lane.prod.Input() <- &m.msg:
		s.stats.written.Add(1)
		return nil
	case <-ctx.Done():
		s.pool.Put(m)
		s.settle()
		return ctx.Err()
	}
}

// Flush implements stream.Flusher: it waits until every record written so far
// is acknowledged (or failed), then returns the first delivery error, if any.
// Concurrent Writes delay it. If ctx is done first it returns ctx.Err().
func (s *Sink[T]) Flush(ctx context.Context) error {
	if err := s.drain(ctx); err != nil {
		return err
	}
	return s.err()
}

// drain waits until no record is in flight, or returns ctx.Err().
func (s *Sink[T]) drain(ctx context.Context) error {
	if s.inflight.Load() == 0 {
		return nil
	}
	s.mu.Lock()
	if s.inflight.Load() == 0 {
		s.mu.Unlock()
		return nil
	}
	w := make(chan struct{})
	s.waiters = append(s.waiters, w)
	s.mu.Unlock()
	select {
	case <-w:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the counts so far.
func (s *Sink[T]) Stats() SinkStats {
	return SinkStats{Written: s.stats.written.Load(), Acked: s.stats.acked.Load(), Failed: s.stats.failed.Load(),
		Resent: s.stats.resent.Load(), Outages: s.stats.outages.Load(),
		DeadLettered: s.stats.deadLettered.Load(), DeadLetterFailed: s.stats.deadLetterFailed.Load()}
}

// Close refuses further Writes (they return ErrClosed), waits under ctx for
// the records in flight (through an outage, for up to the delivery timeout),
// stops the producer and closes the client if WithBrokers made it. It returns
// the delivery error of any failed record, like Flush.
//
// If ctx is done before every record in flight is acknowledged or failed,
// Close returns an error wrapping ctx.Err() that says how many are left, and
// leaves the producer running with them, so that none is dropped: call Close
// again (a caller that commits input positions after Close must not commit
// them then). Once Close has stopped the producer, later calls return what
// it returned. Close is safe for concurrent use.
func (s *Sink[T]) Close(ctx context.Context) error {
	select {
	case s.closing <- struct{}{}:
	default: // another Close runs: wait for it, within ctx
		select {
		case s.closing <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("kafkaio: close: waiting for another Close: %w", ctx.Err())
		}
	}
	defer func() { <-s.closing }()
	if s.closeDone {
		return s.closeErr
	}
	s.gate.Lock()
	s.closed = true
	s.gate.Unlock()
	// Held records are resent on the producer, so it stays open until
	// nothing is in flight.
	if err := s.drain(ctx); err != nil {
		return fmt.Errorf("kafkaio: close: %d records still in flight, the sink stays open (call Close again): %w", s.inflight.Load(), err)
	}
	s.lanesMu.Lock()
	s.lanesClosed = true
	lanes := s.lanes
	s.lanesMu.Unlock()
	s.stopDeadLetters()
	for _, l := range lanes {
		l.prod.AsyncClose()
	}
	for _, l := range lanes {
		<-l.done
	}
	errs := []error{s.err()}
	if s.own {
		if err := s.client.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
			errs = append(errs, fmt.Errorf("kafkaio: close client: %w", err))
		}
	}
	s.closeErr = errors.Join(errs...)
	s.closeDone = true
	return s.closeErr
}

// acks accounts for the successes and errors of a lane's producer until it
// is closed.
func (s *Sink[T]) acks(l *lane) {
	defer close(l.done)
	succ, errs := l.prod.Successes(), l.prod.Errors()
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			if om, ok := m.Metadata.(*outMsg); ok && &om.msg == m && om.dead {
				s.stats.deadLettered.Add(1)
			} else {
				s.stats.acked.Add(1)
			}
			s.release(m)
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			om, ours := pe.Msg.Metadata.(*outMsg)
			ours = ours && &om.msg == pe.Msg
			switch {
			case ours && om.dead:
				s.deadLetterFailed(om, pe.Err)
			case ours && retriable(pe.Err):
				s.hold(om, pe)
			case ours && s.dead.topic != "" && recordRefused(pe.Err):
				s.refused(om, pe)
			default:
				s.fail(pe)
				s.release(pe.Msg)
			}
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
	n := s.inflight.Add(-1)
	if s.paused.Load() {
		s.mu.Lock()
		s.stepOutage()
		s.mu.Unlock()
	}
	if n != 0 {
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
