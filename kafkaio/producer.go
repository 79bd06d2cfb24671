package kafkaio

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/stream"
)

// producer carries the dead letters of an at-least-once stage (beside a
// sink outside Kafka) through sarama's idempotent AsyncProducer, flushed
// before offsets are committed; an exactly-once stage's transactions go
// through batchProducer. Its methods are for the stage's loop goroutine,
// except that records are acknowledged on a goroutine of its own.
type producer struct {
	prod sarama.AsyncProducer
	pool sync.Pool // of *stageMsg

	inflight atomic.Int64
	mu       sync.Mutex
	waiters  []chan struct{}
	failure  error         // the first record that failed since begin
	failed   chan struct{} // receives once when a record fails (capacity 1)
	acked    chan struct{} // closed when the acknowledgement goroutine ends
	// refused are the results the brokers refused for what they are
	// (recordRefused) since begin, and deadRefused the first dead letter
	// they refused so: see stage_refused.go.
	refused     []outputID
	deadRefused error

	// limits are the topics whose max.message.bytes is below the
	// producer's Producer.MaxMessageBytes, and batched the bytes in flight
	// to each of them (see send).
	limits  batchLimits
	batched map[string]*atomic.Int64
}

// batchLimits maps a topic whose max.message.bytes is below the producer's
// Producer.MaxMessageBytes to the most bytes (as ByteSize counts them) that
// a batch of its records may hold. Only the stage's loop goroutine uses it.
type batchLimits map[string]int

// stageMsg is a record a stage produces, with reusable buffers for its key
// and value.
type stageMsg struct {
	msg      sarama.ProducerMessage
	key, val bufEncoder
	dead     bool // a dead letter, not a result

	counted *atomic.Int64 // the bytes in flight it counts in, if any
	size    int64
}

// outputID names a result: its topic, key and time. A result refused by
// the brokers is known by it when its task emits it again (stage_refused.go).
type outputID struct {
	topic, key string
	t          int64
}

// newProducer starts a producer on client.
func newProducer(client sarama.Client) (*producer, error) {
	ap, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		return nil, err
	}
	p := &producer{prod: ap, failed: make(chan struct{}, 1), acked: make(chan struct{})}
	go p.acks()
	return p, nil
}

var _ outProducer = (*producer)(nil)

// recycle gives back a message that was not sent.
func (p *producer) recycle(m *stageMsg) { p.pool.Put(m) }

// failedCh receives once when a record fails.
func (p *producer) failedCh() <-chan struct{} { return p.failed }

// message returns a pooled message with empty key and value buffers.
func (p *producer) message() *stageMsg { return pooledMessage(&p.pool) }

// pooledMessage returns a message of pool, or a new one, with empty key
// and value buffers.
func pooledMessage(pool *sync.Pool) *stageMsg {
	m, _ := pool.Get().(*stageMsg)
	if m == nil {
		m = new(stageMsg)
	}
	m.key.b, m.val.b, m.dead = m.key.b[:0], m.val.b[:0], false
	return m
}

// send hands m to the producer; it blocks while the producer's buffers are
// full, until ctx is done.
//
// sarama batches a partition's records up to Producer.MaxMessageBytes, and
// a broker refuses a whole batch larger than its topic's max.message.bytes
// (Kafka's Java producer splits such a batch and sends it again; sarama
// fails every record in it). So a record of a topic with a smaller limit
// waits, when the bytes in flight to that topic would exceed the limit with
// it, until every record sent is acknowledged: no batch of that topic can
// then be larger than the limit, and records larger than it but within the
// producer's limit go to the topics that take them.
func (p *producer) send(ctx context.Context, m *stageMsg) error {
	m.msg.Metadata = m
	m.counted = nil
	if limit, ok := p.limits[m.msg.Topic]; ok {
		c := p.batched[m.msg.Topic]
		if c == nil {
			if p.batched == nil {
				p.batched = make(map[string]*atomic.Int64)
			}
			c = new(atomic.Int64)
			p.batched[m.msg.Topic] = c
		}
		size := int64(m.msg.ByteSize(2))
		if c.Load()+size > int64(limit) {
			if err := p.flush(ctx); err != nil {
				p.pool.Put(m)
				return err
			}
		}
		c.Add(size)
		m.counted, m.size = c, size
	}
	p.inflight.Add(1)
	select {
	case p.prod.Input() <- &m.msg:
		return nil
	case <-ctx.Done():
		p.uncount(m)
		p.settle()
		p.pool.Put(m)
		return ctx.Err()
	}
}

// uncount takes m out of the bytes in flight to its topic.
func (p *producer) uncount(m *stageMsg) {
	if m.counted != nil {
		m.counted.Add(-m.size)
		m.counted = nil
	}
}

func (p *producer) acks() {
	defer close(p.acked)
	succ, errs := p.prod.Successes(), p.prod.Errors()
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			p.release(m)
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			p.mu.Lock()
			if p.failure == nil {
				p.failure = &ProduceError{Topic: pe.Msg.Topic, Partition: pe.Msg.Partition, Err: pe.Err}
				select {
				case p.failed <- struct{}{}:
				default:
				}
			}
			if recordRefused(pe.Err) {
				if sm, ok := pe.Msg.Metadata.(*stageMsg); ok && &sm.msg == pe.Msg {
					if sm.dead {
						if p.deadRefused == nil {
							p.deadRefused = &ProduceError{Topic: pe.Msg.Topic, Partition: pe.Msg.Partition, Err: pe.Err}
						}
					} else {
						p.refused = append(p.refused, outputID{topic: pe.Msg.Topic, key: string(sm.key.b), t: int64(stream.TimeOf(pe.Msg.Timestamp))})
					}
				}
			}
			p.mu.Unlock()
			p.release(pe.Msg)
		}
	}
}

func (p *producer) release(m *sarama.ProducerMessage) {
	if om, ok := m.Metadata.(*stageMsg); ok && &om.msg == m {
		p.uncount(om)
		m.Headers = nil
		p.pool.Put(om)
	}
	p.settle()
}

func (p *producer) settle() {
	if p.inflight.Add(-1) != 0 {
		return
	}
	p.mu.Lock()
	for _, w := range p.waiters {
		close(w)
	}
	p.waiters = p.waiters[:0]
	p.mu.Unlock()
}

// takeRefused returns and forgets the results the brokers refused for what
// they are since begin, and the first dead letter they refused so.
func (p *producer) takeRefused() ([]outputID, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids, dead := p.refused, p.deadRefused
	p.refused, p.deadRefused = nil, nil
	return ids, dead
}

// err returns the first record failure since the last begin.
func (p *producer) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failure
}

// flush waits until every record sent is acknowledged or failed and returns
// the first failure.
func (p *producer) flush(ctx context.Context) error {
	if p.inflight.Load() != 0 {
		p.mu.Lock()
		if p.inflight.Load() == 0 {
			p.mu.Unlock()
		} else {
			w := make(chan struct{})
			p.waiters = append(p.waiters, w)
			p.mu.Unlock()
			select {
			case <-w:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return p.err()
}

func (p *producer) begin() error {
	p.mu.Lock()
	p.failure, p.refused, p.deadRefused = nil, nil, nil
	p.mu.Unlock()
	select {
	case <-p.failed:
	default:
	}
	return nil
}

// fenced reports whether err says that another producer with the same
// transactional id took over: this one is a zombie and must stop.
func fenced(err error) bool {
	return errors.Is(err, sarama.ErrProducerFenced) || errors.Is(err, sarama.ErrInvalidProducerEpoch)
}

// close stops the producer.
func (p *producer) close() error {
	p.prod.AsyncClose()
	<-p.acked
	return nil
}
