package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/kafkaio/internal/batchtxn"
	"github.com/tidemark-go/tidemark/stream"
)

// outProducer is what a stage's txn writes through: batchProducer for an
// exactly-once stage, producer (sarama's AsyncProducer) for the dead
// letters of an at-least-once one. Committing and aborting are
// batchProducer's alone (txn.commit, txn.abort). Its methods are for the
// stage's loop goroutine.
type outProducer interface {
	// message returns a pooled message with empty key and value buffers,
	// and recycle gives back one that was not sent.
	message() *stageMsg
	recycle(m *stageMsg)
	// send hands m over (m belongs to the producer from then on).
	send(ctx context.Context, m *stageMsg) error
	// flush waits until every record sent is acknowledged or failed and
	// returns the first failure since the last begin (begin forgets them).
	flush(ctx context.Context) error
	begin() error
	// err returns the first record failure since begin; failedCh receives
	// when one happens.
	err() error
	failedCh() <-chan struct{}
	// takeRefused returns and forgets the results the brokers refused for
	// what they are since begin, and the first dead letter they refused
	// so (stage_refused.go).
	takeRefused() ([]outputID, error)
	close() error
}

// Tags of the records a batchProducer writes.
const (
	tagResult uint8 = iota
	tagDead         // a dead letter or a forwarded late record
)

// batchProducer is an exactly-once stage's producer: batchtxn's, which
// builds its record batches itself and sends them without sarama's
// goroutine per hop (kafkaio/internal/batchtxn, BenchmarkTxnProduce:
// about a third of the AsyncProducer's CPU per record). A record is copied
// into its partition's batch when it is sent, and its message recycled at
// once; the partitioner is the client's (Producer.Partitioner).
type batchProducer struct {
	cl   sarama.Client
	p    *batchtxn.Producer
	pool sync.Pool // of *stageMsg

	topics  map[string]*partitionedTopic
	txn     uint64 // counts the transactions begun
	failure error
	rec     batchtxn.Record
}

// partitionedTopic is what choosing a partition of a topic needs: the client's
// partitioner for it, and its partitions as the client's metadata gave
// them at the start of the transaction txn (read once per transaction, not
// once per record: the client takes a lock and two map lookups for them,
// and they change only with a metadata refresh).
type partitionedTopic struct {
	partitioner sarama.Partitioner
	parts       []int32
	txn         uint64
}

func newBatchProducer(cl sarama.Client, id string, limits batchLimits) (*batchProducer, error) {
	cfg := cl.Config()
	p, err := batchtxn.New(cl, batchtxn.Config{
		TransactionalID:    id,
		TransactionTimeout: cfg.Producer.Transaction.Timeout,
		RequestTimeout:     cfg.Producer.Timeout,
		Retries:            cfg.Producer.Retry.Max,
		Backoff:            cfg.Producer.Retry.Backoff,
		MaxBatchBytes:      cfg.Producer.MaxMessageBytes,
		TopicLimits:        limits,
	})
	if err != nil {
		return nil, err
	}
	return &batchProducer{cl: cl, p: p, topics: make(map[string]*partitionedTopic), txn: 1}, nil
}

func (b *batchProducer) message() *stageMsg { return pooledMessage(&b.pool) }

func (b *batchProducer) recycle(m *stageMsg) {
	m.msg.Headers = nil
	b.pool.Put(m)
}

func (b *batchProducer) send(ctx context.Context, m *stageMsg) error {
	defer b.recycle(m)
	if err := ctx.Err(); err != nil {
		return err
	}
	msg := &m.msg
	partition := msg.Partition
	if partition < 0 {
		var err error
		if partition, err = b.partition(msg); err != nil {
			b.setFailure(&ProduceError{Topic: msg.Topic, Partition: -1, Err: err})
			return nil
		}
	}
	r := &b.rec
	*r = batchtxn.Record{Topic: msg.Topic, Partition: partition, Headers: msg.Headers, Time: msg.Timestamp}
	if msg.Key != nil {
		r.Key = m.key.b
		if r.Key == nil {
			r.Key = []byte{}
		}
	}
	if msg.Value != nil {
		r.Value = m.val.b
		if r.Value == nil {
			r.Value = []byte{}
		}
	}
	if m.dead {
		r.Tag = tagDead
	}
	if err := b.p.Add(r); err != nil {
		b.setFailure(err)
	}
	return nil
}

// partition chooses msg's partition as sarama's producer does: with the
// client's partitioner, over the topic's partitions (all of them, or the
// writable ones for a partitioner that does not require consistency).
func (b *batchProducer) partition(msg *sarama.ProducerMessage) (int32, error) {
	t := b.topics[msg.Topic]
	if t == nil {
		t = &partitionedTopic{partitioner: b.cl.Config().Producer.Partitioner(msg.Topic)}
		b.topics[msg.Topic] = t
	}
	if t.txn != b.txn {
		var err error
		if t.partitioner.RequiresConsistency() {
			t.parts, err = b.cl.Partitions(msg.Topic)
		} else {
			t.parts, err = b.cl.WritablePartitions(msg.Topic)
		}
		if err != nil {
			return -1, err
		}
		t.txn = b.txn
	}
	parts := t.parts
	if len(parts) == 0 {
		t.txn = 0 // read them again
		return -1, sarama.ErrLeaderNotAvailable
	}
	i, err := t.partitioner.Partition(msg, int32(len(parts)))
	if err != nil {
		return -1, err
	}
	if i < 0 || int(i) >= len(parts) {
		return -1, sarama.ErrInvalidPartition
	}
	return parts[i], nil
}

// setFailure keeps the first failure since begin, as a *ProduceError when
// it is a batch's.
func (b *batchProducer) setFailure(err error) {
	if b.failure != nil || err == nil {
		return
	}
	var be *batchtxn.BatchError
	if errors.As(err, &be) {
		err = &ProduceError{Topic: be.Topic, Partition: be.Partition, Err: be.Err}
	}
	b.failure = err
}

func (b *batchProducer) flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.setFailure(b.p.Flush())
	return b.failure
}

func (b *batchProducer) err() error {
	if b.failure == nil {
		b.setFailure(b.p.Failure()) // a flush in flight that failed
	}
	return b.failure
}

// failedCh receives when a flush in flight fails. The stage's loop then
// recovers, and learns the error from flush or err.
func (b *batchProducer) failedCh() <-chan struct{} { return b.p.Failed() }

// commit commits the transaction with the consumed offsets of group member
// m and begins the next. After an error the caller aborts and recovers from
// the committed offsets (the transaction may have committed or not).
func (b *batchProducer) commit(offsets map[string][]*sarama.PartitionOffsetMetadata, m *sarama.ConsumerGroupMetadata) error {
	if err := b.err(); err != nil {
		return fmt.Errorf("kafkaio: a record of the transaction failed: %w", err)
	}
	var err error
	if len(offsets) > 0 {
		err = b.p.CommitOffsets(offsets, m)
	} else {
		err = b.p.Commit()
	}
	if err != nil {
		b.setFailure(err)
		return fmt.Errorf("kafkaio: commit transaction: %w", err)
	}
	return b.begin()
}

// abort aborts the transaction and begins the next.
func (b *batchProducer) abort() error {
	if err := b.p.Abort(); err != nil {
		return fmt.Errorf("kafkaio: abort transaction: %w", err)
	}
	return b.begin()
}

func (b *batchProducer) begin() error {
	b.failure = nil
	b.txn++
	_ = b.p.TakeRefused()
	select {
	case <-b.p.Failed():
	default:
	}
	return nil
}

func (b *batchProducer) takeRefused() ([]outputID, error) {
	var ids []outputID
	var dead error
	for _, r := range b.p.TakeRefused() {
		if !recordRefused(r.Err) {
			continue
		}
		if r.Tag == tagDead {
			if dead == nil {
				dead = &ProduceError{Topic: r.Topic, Partition: r.Partition, Err: r.Err}
			}
			continue
		}
		ids = append(ids, outputID{topic: r.Topic, key: string(r.Key), t: int64(stream.TimeOf(r.Time))})
	}
	return ids, dead
}

// close waits for the flush in flight, if any. An open transaction is left
// to the broker, which aborts it when it times out or when a producer with
// the same transactional id starts.
func (b *batchProducer) close() error {
	_ = b.p.Wait()
	return nil
}
