// Package batchtxn is a transactional Kafka producer that builds its record
// batches itself, on sarama's protocol types and its Broker methods, instead
// of sarama's AsyncProducer.
//
// Why: a stage's CPU goes mostly to sarama's produce pipeline, not to the
// operators. sarama's AsyncProducer moves every record through a chain of
// goroutines and channels (dispatcher, topic, partition, broker producers,
// then the successes channel back), and rebuilds its batch state for every
// record that arrives while a request is in flight. Here each record is
// encoded as it is added, in Kafka's record format, into its partition's
// buffer (records.go), and the buffer goes out as the records of a
// sarama.RecordBatch when the caller flushes: one ProduceRequest per
// leader, no goroutine or channel per record, no allocation per record
// once the buffers have grown, and no second encoding of the records.
//
// The protocol is Kafka's exactly-once producer (KIP-98), as sarama's and
// the Java client's transaction managers follow it:
//
//   - InitProducerID with the transactional id gives a producer id and an
//     epoch; it fences every earlier producer with the same transactional
//     id and aborts its open transaction;
//   - a partition is added to the open transaction (AddPartitionsToTxn)
//     before the first batch to it;
//   - every batch carries the producer id, the epoch and the sequence
//     number of its first record, per partition, from 0 after each
//     InitProducerID: a batch sent twice (a retry after a lost response) is
//     written once;
//   - EndTxn commits or aborts.
//
// Errors: a batch refused because its partition moved (not the leader, or
// unknown while metadata catches up) is sent again, with the same sequence,
// to the new leader; any other failure of a batch fails the flush, and the
// transaction must then be aborted: Abort starts over with a new epoch (a
// new InitProducerID), so that no sequence number is left in doubt.
//
// Every exactly-once kafkaio.Stage writes through it (kafkaio's
// batchProducer).
package batchtxn

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// Config configures a Producer.
type Config struct {
	// TransactionalID names the producer across restarts (required).
	TransactionalID string
	// TransactionTimeout is how long the coordinator keeps a transaction
	// open without an EndTxn before it aborts it (default 10 s).
	TransactionTimeout time.Duration
	// RequestTimeout bounds the wait for the acknowledgement of a
	// ProduceRequest, on the broker (default 10 s).
	RequestTimeout time.Duration
	// Retries is how many times a request is sent again after a retriable
	// error (a coordinator or a leader moving; default 10), Backoff the wait
	// before each (default 50 ms, doubling up to 1 s).
	Retries int
	Backoff time.Duration
	// MaxBatchBytes bounds a partition's batch (default 1,000,000 bytes,
	// sarama's Producer.MaxMessageBytes): a record that would make its
	// partition's buffer larger sends the buffered records first.
	// TopicLimits gives smaller bounds for some topics (a topic whose
	// max.message.bytes is smaller: the broker refuses a whole batch
	// larger than it). The caller may add a topic's bound to the map
	// after New, but before the first record to the topic: a partition
	// reads its bound once, when its first record is added (kafkaio's
	// stage checks an output topic before it writes to it).
	MaxBatchBytes int
	TopicLimits   map[string]int
	// SendBytes starts a Send once this many bytes are buffered (default
	// 1 MiB, the Java producer's max.request.size): batches go out while
	// the next ones fill. Fewer, larger requests cost the caller less CPU
	// per record (a chained lab stage: 7.7 against 9.2 µs per price with
	// 256 KiB, 7 runs each), with the same latency (a transaction's last
	// records go out when it commits).
	SendBytes int
}

// ErrFenced says that a producer with the same transactional id started
// after this one: this one must stop.
// It matches sarama.ErrProducerFenced (errors.Is).
var ErrFenced error = fencedError{}

type fencedError struct{}

func (fencedError) Error() string {
	return "batchtxn: fenced by a newer producer with the same transactional id"
}
func (fencedError) Unwrap() error { return sarama.ErrProducerFenced }

// Record is a record to write.
type Record struct {
	Topic     string
	Partition int32
	Key       []byte // nil: no key
	Value     []byte // nil: a null value
	Headers   []sarama.RecordHeader
	Time      time.Time
	Tag       uint8 // the caller's, given back with the record when it is refused
}

// Refused is a record the broker refused for good (not because a partition
// moved): its batch failed with Err, a sarama.KError.
type Refused struct {
	Topic     string
	Partition int32
	Key       []byte
	Time      time.Time
	Tag       uint8
	Err       error
}

// BatchError is the failure of a partition's batch.
type BatchError struct {
	Topic     string
	Partition int32
	Err       sarama.KError
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("batchtxn: produce to %s/%d: %v", e.Topic, e.Partition, e.Err)
}

// Unwrap returns the broker's error code.
func (e *BatchError) Unwrap() error { return e.Err }

// concurrentBackoff is the first wait after CONCURRENT_TRANSACTIONS.
const concurrentBackoff = 2 * time.Millisecond

// Stats counts a producer's requests.
type Stats struct {
	Produces atomic.Int64 // ProduceRequests sent
	Retries  atomic.Int64 // requests to the coordinator sent again
}

// batchOverhead is the length of a record batch's header: a batch takes
// that and its records' bytes (buffer.buf).
const batchOverhead = 61

type topicPartition struct {
	topic     string
	partition int32
}

// part is one partition's state: its sequence number, and two buffers,
// one that Add fills while the other's batch is in flight.
type part struct {
	tp    topicPartition
	seq   int32 // the sequence number of the next record sent; only the flush in flight changes it
	added bool  // in the open transaction
	limit int   // the bound of a batch: Config.MaxBatchBytes, or the topic's in TopicLimits
	cur   *buffer
	spare *buffer
}

// buffer holds records of one partition, encoded (records.go).
type buffer struct {
	buf       []byte    // the records, as the batch carries them
	recs      []pending // per record
	base, max int64     // the first record's timestamp and the largest, in ms
	ptrs      []*sarama.Record
}

func (b *buffer) reset() { b.buf, b.recs = b.buf[:0], b.recs[:0] }

// sending is a partition's buffer in a flush.
type sending struct {
	pt  *part
	buf *buffer
}

// pending is what a buffered record's refusal needs: where its key is in
// buffer.buf, its time and its tag.
type pending struct {
	keyOff, keyLen int32 // keyLen -1: no key
	ts             time.Time
	tag            uint8
}

// Producer is a transactional producer. It is not safe for concurrent use.
type Producer struct {
	client sarama.Client
	cfg    Config
	id     int64
	epoch  int16
	topics map[string][]*part // by partition
	parts  []*part
	dirty  []*part // parts with records buffered, in the order of their first
	inTxn  bool    // a partition was added since the last EndTxn
	broken error   // a failure that only Abort clears

	// The flush in flight, if any: its buffers, and done, which receives
	// its result.
	flying   []sending
	done     chan error
	buffered int // bytes in the filling buffers

	failed  chan struct{} // receives when a flush in flight fails
	mu      sync.Mutex
	refused []Refused
	lastErr error // the last flush's failure, once it has ended

	stats Stats
}

// New initialises a producer id for cfg.TransactionalID through client, which
// fences earlier producers with the same id. The client stays the caller's.
func New(client sarama.Client, cfg Config) (*Producer, error) {
	if cfg.TransactionalID == "" {
		return nil, errors.New("batchtxn: TransactionalID is required")
	}
	if cfg.TransactionTimeout <= 0 {
		cfg.TransactionTimeout = 10 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 10
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 50 * time.Millisecond
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 1_000_000
	}
	if cfg.SendBytes <= 0 {
		cfg.SendBytes = 1 << 20
	}
	p := &Producer{client: client, cfg: cfg, id: -1, epoch: -1, topics: make(map[string][]*part),
		done: make(chan error, 1), failed: make(chan struct{}, 1)}
	if err := p.init(); err != nil {
		return nil, err
	}
	return p, nil
}

// ProducerID returns the producer id and epoch the coordinator gave.
func (p *Producer) ProducerID() (int64, int16) { return p.id, p.epoch }

// Add encodes r into its partition's buffer; the caller may reuse r's
// bytes. A record that would make its partition's batch larger than the
// bound (Config.MaxBatchBytes, or the topic's in TopicLimits; the size is
// exact: the batch's header and its encoded records) sends the buffered
// records first, and SendBytes buffered start a Send: the error is that
// Send's. A record larger than the bound by itself goes in a batch of its
// own, which the broker refuses.
func (p *Producer) Add(r *Record) error {
	pt := p.part(r.Topic, r.Partition)
	b := pt.cur
	ms := millis(r.Time)
	index, base := len(b.recs), b.base
	if index == 0 {
		base = ms
	}
	size := recordSize(r, index, ms-base)
	if index > 0 && batchOverhead+len(b.buf)+varintLen(int64(size))+size > pt.limit {
		if err := p.Send(); err != nil {
			return err
		}
		b, index, base = pt.cur, 0, ms
		size = recordSize(r, index, 0)
	}
	if index == 0 {
		p.dirty = append(p.dirty, pt)
		b.base, b.max = ms, ms
	}
	b.max = max(b.max, ms)
	n := len(b.buf)
	var keyOff int
	b.buf, keyOff = appendRecord(b.buf, r, index, ms-base, size)
	rec := pending{keyLen: -1, ts: r.Time, tag: r.Tag}
	if r.Key != nil {
		rec.keyOff, rec.keyLen = int32(keyOff), int32(len(r.Key))
	}
	b.recs = append(b.recs, rec)
	p.buffered += len(b.buf) - n
	if p.buffered >= p.cfg.SendBytes {
		return p.Send()
	}
	return nil
}

// part returns the state of a partition, new if it has none.
func (p *Producer) part(topic string, partition int32) *part {
	parts := p.topics[topic]
	if int(partition) < len(parts) && parts[partition] != nil {
		return parts[partition]
	}
	if int(partition) >= len(parts) {
		parts = append(parts, make([]*part, int(partition)+1-len(parts))...)
		p.topics[topic] = parts
	}
	limit := p.cfg.MaxBatchBytes
	if l, ok := p.cfg.TopicLimits[topic]; ok && l < limit {
		limit = l
	}
	pt := &part{tp: topicPartition{topic, partition}, limit: limit, cur: new(buffer), spare: new(buffer)}
	parts[partition] = pt
	p.parts = append(p.parts, pt)
	return pt
}

// Buffered returns the number of records added and not yet flushed.
func (p *Producer) Buffered() int {
	n := 0
	for _, pt := range p.dirty {
		n += len(pt.cur.recs)
	}
	return n
}

// Flush writes the buffered records, one batch per partition, and returns
// once the leaders have acknowledged them (they become visible to
// read_committed consumers when the transaction commits). After an error the
// transaction must be aborted.
func (p *Producer) Flush() error {
	if err := p.Send(); err != nil {
		return err
	}
	return p.Wait()
}

// Send starts writing the buffered records and returns at once: the
// caller may Add the next ones while they are in flight. One flush is in
// flight at a time (Send first waits for the previous one), so every
// partition's batches reach the broker in sequence order. Its result is
// Wait's, or that of the next Send, Flush or Commit.
func (p *Producer) Send() error {
	if err := p.Wait(); err != nil {
		return err
	}
	if len(p.dirty) == 0 {
		return nil
	}
	if err := p.addPartitions(); err != nil {
		return p.fail(err)
	}
	p.flying = p.flying[:0]
	p.buffered = 0
	for _, pt := range p.dirty {
		p.flying = append(p.flying, sending{pt, pt.cur})
		pt.cur, pt.spare = pt.spare, pt.cur
	}
	p.dirty = p.dirty[:0]
	flying := p.flying
	go func() {
		err := p.send(flying)
		if err != nil {
			p.mu.Lock()
			p.lastErr = err
			p.mu.Unlock()
			select {
			case p.failed <- struct{}{}:
			default:
			}
		}
		p.done <- err
	}()
	return nil
}

// Stats returns the producer's counters.
func (p *Producer) Stats() *Stats { return &p.stats }

// Failure returns, without waiting, the failure of a flush that ended
// since the last Abort, or nil.
func (p *Producer) Failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return cmp.Or(p.broken, p.lastErr)
}

// Failed receives when a flush in flight fails: the transaction must be
// aborted (Wait returns the error).
func (p *Producer) Failed() <-chan struct{} { return p.failed }

// TakeRefused returns and forgets the records the brokers refused for good
// since the last call: every record of a batch refused as a whole, or those
// the broker named (KIP-467's record errors). Call it after Wait.
func (p *Producer) TakeRefused() []Refused {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.refused
	p.refused = nil
	return r
}

// Wait waits for the flush in flight, if any, and returns the first error
// since the last Abort.
func (p *Producer) Wait() error {
	if len(p.flying) > 0 {
		err := <-p.done
		for _, f := range p.flying {
			f.buf.reset()
		}
		p.flying = p.flying[:0]
		if err != nil {
			return p.fail(err)
		}
	}
	return p.broken
}

// send writes the batches of todo, again to a new leader when a partition
// moved.
func (p *Producer) send(todo []sending) error {
	backoff := p.cfg.Backoff
	for attempt := 0; ; attempt++ {
		retry, err := p.produce(todo)
		if err != nil {
			return err
		}
		if len(retry) == 0 {
			return nil
		}
		if attempt == p.cfg.Retries {
			return fmt.Errorf("batchtxn: %s/%d: leader not found after %d retries", retry[0].pt.tp.topic, retry[0].pt.tp.partition, attempt)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
		topics := make([]string, 0, len(retry))
		for _, r := range retry {
			topics = append(topics, r.pt.tp.topic)
		}
		_ = p.client.RefreshMetadata(topics...)
		todo = retry
	}
}

// produce sends the batches of parts, one request per leader, and returns
// the parts to send again (their leader moved).
func (p *Producer) produce(parts []sending) (retry []sending, err error) {
	type leaderRequest struct {
		b     *sarama.Broker
		req   *sarama.ProduceRequest
		parts []sending
	}
	var reqs []*leaderRequest
	for _, s := range parts {
		pt := s.pt
		leader, err := p.client.Leader(pt.tp.topic, pt.tp.partition)
		if err != nil {
			if retriableLeader(err) {
				retry = append(retry, s)
				continue
			}
			return nil, fmt.Errorf("batchtxn: leader of %s/%d: %w", pt.tp.topic, pt.tp.partition, err)
		}
		i := slices.IndexFunc(reqs, func(r *leaderRequest) bool { return r.b == leader })
		if i < 0 {
			i = len(reqs)
			reqs = append(reqs, &leaderRequest{b: leader, req: &sarama.ProduceRequest{TransactionalID: &p.cfg.TransactionalID,
				RequiredAcks: sarama.WaitForAll, Timeout: int32(p.cfg.RequestTimeout / time.Millisecond),
				Version: produceVersion(p.client.Config().Version)}})
		}
		r := reqs[i]
		rb, err := s.buf.batch(p.id, p.epoch, pt.seq)
		if err != nil {
			return nil, err
		}
		r.req.AddBatch(pt.tp.topic, pt.tp.partition, rb)
		r.parts = append(r.parts, s)
	}
	for _, r := range reqs {
		b := r.b
		p.stats.Produces.Add(1)
		resp, perr := b.Produce(r.req)
		if perr != nil {
			// The connection failed: whether the broker wrote the batches
			// is unknown, and sending them again with the same sequence
			// numbers is what idempotence is for.
			_ = b.Close()
			retry = append(retry, r.parts...)
			continue
		}
		for _, s := range r.parts {
			pt := s.pt
			blk := resp.GetBlock(pt.tp.topic, pt.tp.partition)
			switch {
			case blk == nil:
				err = cmp.Or(err, error(fmt.Errorf("batchtxn: produce to %s/%d: no answer for the partition", pt.tp.topic, pt.tp.partition)))
			case blk.Err == sarama.ErrNoError:
				pt.seq += int32(len(s.buf.recs))
			case retriableLeader(blk.Err):
				retry = append(retry, s)
			case blk.Err == sarama.ErrProducerFenced || blk.Err == sarama.ErrInvalidProducerEpoch:
				err = ErrFenced
			default:
				p.refuse(s, blk)
				err = cmp.Or(err, error(&BatchError{Topic: pt.tp.topic, Partition: pt.tp.partition, Err: blk.Err}))
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return retry, nil
}

// refuse records the records of s that blk refused: those it names, or
// all.
func (p *Producer) refuse(s sending, blk *sarama.ProduceResponseBlock) {
	p.mu.Lock()
	defer p.mu.Unlock()
	add := func(i int) {
		r := s.buf.recs[i]
		ref := Refused{Topic: s.pt.tp.topic, Partition: s.pt.tp.partition, Time: r.ts, Tag: r.tag, Err: blk.Err}
		if r.keyLen >= 0 {
			ref.Key = append([]byte(nil), s.buf.buf[r.keyOff:r.keyOff+r.keyLen]...)
		}
		p.refused = append(p.refused, ref)
	}
	named := false
	for _, re := range blk.RecordErrors {
		if i := int(re.BatchIndex); i >= 0 && i < len(s.buf.recs) {
			add(i)
			named = true
		}
	}
	if !named {
		for i := range s.buf.recs {
			add(i)
		}
	}
}

// batch returns the buffer's record batch, its first sequence number seq.
func (pt *buffer) batch(id int64, epoch int16, seq int32) (*sarama.RecordBatch, error) {
	n := len(pt.recs)
	rb := &sarama.RecordBatch{Version: 2, IsTransactional: true, ProducerID: id, ProducerEpoch: epoch, FirstSequence: seq,
		FirstTimestamp: timestamp(pt.base), MaxTimestamp: timestamp(pt.max), LastOffsetDelta: int32(n - 1)}
	if !rawRecords.ok {
		recs, err := decodeRecords(pt.buf, n)
		rb.Records = recs
		return rb, err
	}
	if cap(pt.ptrs) < n {
		pt.ptrs = make([]*sarama.Record, 2*n) // nil pointers: only their count is read
	}
	rb.Records = pt.ptrs[:n]
	setRawRecords(rb, pt.buf)
	return rb, nil
}

// addPartitions adds the partitions with buffered records that are not yet
// in the open transaction.
func (p *Producer) addPartitions() error {
	var add map[string][]int32
	for _, pt := range p.dirty {
		if !pt.added {
			if add == nil {
				add = make(map[string][]int32)
			}
			add[pt.tp.topic] = append(add[pt.tp.topic], pt.tp.partition)
		}
	}
	if add == nil {
		return nil
	}
	err := p.coordinator("add partitions to the transaction", func(b *sarama.Broker) (sarama.KError, error) {
		resp, err := b.AddPartitionsToTxn(&sarama.AddPartitionsToTxnRequest{Version: addPartitionsVersion(p.client.Config().Version),
			TransactionalID: p.cfg.TransactionalID, ProducerID: p.id, ProducerEpoch: p.epoch, TopicPartitions: add})
		if err != nil {
			return 0, err
		}
		for _, errs := range resp.Errors {
			for _, pe := range errs {
				if pe.Err != sarama.ErrNoError {
					return pe.Err, nil
				}
			}
		}
		return sarama.ErrNoError, nil
	})
	if err != nil {
		return err
	}
	for _, pt := range p.dirty {
		pt.added = true
	}
	p.inTxn = true
	return nil
}

// Commit flushes the buffered records and commits the transaction; the next
// records go to a new one. After an error the transaction must be aborted.
func (p *Producer) Commit() error {
	if err := p.Flush(); err != nil {
		return err
	}
	if err := p.endTxn(true); err != nil {
		return p.fail(err)
	}
	return nil
}

// CommitOffsets is Commit with the consumed offsets of a consumer group's
// member in the transaction (AddOffsetsToTxn, then TxnOffsetCommit to the
// group's coordinator): the group's committed offsets move with the
// records, or neither does. group's generation and member id let the
// coordinator refuse a member that was expelled from the group (its
// partitions are another member's now); GenerationID -1 and an empty
// MemberID skip that check.
func (p *Producer) CommitOffsets(offsets map[string][]*sarama.PartitionOffsetMetadata, group *sarama.ConsumerGroupMetadata) error {
	if err := p.Flush(); err != nil {
		return err
	}
	if len(offsets) > 0 {
		if err := p.sendOffsets(offsets, group); err != nil {
			return p.fail(err)
		}
	}
	if err := p.endTxn(true); err != nil {
		return p.fail(err)
	}
	return nil
}

func (p *Producer) sendOffsets(offsets map[string][]*sarama.PartitionOffsetMetadata, group *sarama.ConsumerGroupMetadata) error {
	v := p.client.Config().Version
	err := p.coordinator("add offsets to the transaction", func(b *sarama.Broker) (sarama.KError, error) {
		resp, err := b.AddOffsetsToTxn(&sarama.AddOffsetsToTxnRequest{Version: addPartitionsVersion(v),
			TransactionalID: p.cfg.TransactionalID, ProducerID: p.id, ProducerEpoch: p.epoch, GroupID: group.GroupID})
		if err != nil {
			return 0, err
		}
		return resp.Err, nil
	})
	if err != nil {
		return err
	}
	p.inTxn = true
	req := &sarama.TxnOffsetCommitRequest{TransactionalID: p.cfg.TransactionalID, GroupID: group.GroupID,
		ProducerID: p.id, ProducerEpoch: p.epoch, Topics: offsets}
	switch {
	case v.IsAtLeast(sarama.V2_5_0_0):
		req.Version, req.GenerationID, req.MemberID, req.GroupInstanceID = 3, group.GenerationID, group.MemberID, group.GroupInstanceID
	case v.IsAtLeast(sarama.V2_1_0_0):
		req.Version = 2
	case v.IsAtLeast(sarama.V2_0_0_0):
		req.Version = 1
	}
	// A partition moving, or a request timing out, is answered
	// UNKNOWN_TOPIC_OR_PARTITION or REQUEST_TIMED_OUT: asked again too.
	return p.retry("commit the offsets of group "+group.GroupID,
		func() (*sarama.Broker, error) { return p.client.Coordinator(group.GroupID) },
		func() { _ = p.client.RefreshCoordinator(group.GroupID) },
		func(b *sarama.Broker) (sarama.KError, error) {
			resp, err := b.TxnOffsetCommit(req)
			if err != nil {
				return 0, err
			}
			kerr := sarama.ErrNoError
			for _, errs := range resp.Topics {
				for _, pe := range errs {
					if pe.Err != sarama.ErrNoError {
						kerr = pe.Err
					}
				}
			}
			return kerr, nil
		}, sarama.ErrRequestTimedOut, sarama.ErrUnknownTopicOrPartition)
}

// Abort drops the buffered records and aborts the transaction (EndTxn),
// then calls InitProducerID again, which gives the next epoch and starts
// every sequence at 0: a flush that failed may have left one in doubt.
func (p *Producer) Abort() error {
	_ = p.Wait() // its error is the one being recovered from
	for _, pt := range p.dirty {
		pt.cur.reset()
	}
	p.dirty, p.buffered = p.dirty[:0], 0
	if errors.Is(p.broken, ErrFenced) {
		return p.broken
	}
	// End the transaction first, with this epoch: a coordinator that knows
	// a newer one refuses, and this producer learns it is a zombie before
	// it asks for the next epoch (which would fence the live producer on a
	// coordinator that does not check the epoch it is given).
	if err := p.endTxn(false); errors.Is(err, ErrFenced) {
		p.broken = err
		return err
	}
	if err := p.init(); err != nil {
		return err
	}
	p.mu.Lock()
	p.broken, p.lastErr = nil, nil
	p.mu.Unlock()
	return nil
}

func (p *Producer) fail(err error) error {
	p.mu.Lock()
	if p.broken == nil {
		p.broken = err
	}
	p.mu.Unlock()
	return err
}

func (p *Producer) endTxn(commit bool) error {
	if !p.inTxn {
		return nil // nothing was added: there is no transaction to end
	}
	err := p.coordinator("end the transaction", func(b *sarama.Broker) (sarama.KError, error) {
		resp, err := b.EndTxn(&sarama.EndTxnRequest{Version: endTxnVersion(p.client.Config().Version),
			TransactionalID: p.cfg.TransactionalID, ProducerID: p.id, ProducerEpoch: p.epoch, TransactionResult: commit})
		if err != nil {
			return 0, err
		}
		return resp.Err, nil
	})
	if err != nil {
		return err
	}
	p.inTxn = false
	for _, pt := range p.parts {
		pt.added = false
	}
	return nil
}

// init gets a producer id and epoch: a new one, or the next epoch of the
// current one. The coordinator aborts the open transaction of any earlier
// epoch.
func (p *Producer) init() error {
	err := p.coordinator("init the producer id", func(b *sarama.Broker) (sarama.KError, error) {
		req := &sarama.InitProducerIDRequest{TransactionalID: &p.cfg.TransactionalID, TransactionTimeout: p.cfg.TransactionTimeout,
			ProducerID: p.id, ProducerEpoch: p.epoch}
		req.Version = initProducerIDVersion(p.client.Config().Version)
		resp, err := b.InitProducerID(req)
		if err != nil {
			return 0, err
		}
		if resp.Err == sarama.ErrNoError {
			p.id, p.epoch = resp.ProducerID, resp.ProducerEpoch
		}
		return resp.Err, nil
	})
	if err != nil {
		return err
	}
	p.inTxn = false
	for _, pt := range p.parts {
		pt.seq, pt.added = 0, false
	}
	return nil
}

// coordinator runs call against the transaction coordinator (see retry).
func (p *Producer) coordinator(what string, call func(*sarama.Broker) (sarama.KError, error)) error {
	id := p.cfg.TransactionalID
	return p.retry(what,
		func() (*sarama.Broker, error) { return p.client.TransactionCoordinator(id) },
		func() { _ = p.client.RefreshTransactionCoordinator(id) },
		call)
}

// retry runs call against the coordinator that find returns, again after
// an error of the connection or an answer that says the coordinator moved
// (then refresh looks it up anew), is loading, is busy ending the previous
// transaction, or is one of again.
func (p *Producer) retry(what string, find func() (*sarama.Broker, error), refresh func(),
	call func(*sarama.Broker) (sarama.KError, error), again ...sarama.KError) error {
	backoff := p.cfg.Backoff
	var last error
	for attempt := 0; attempt <= p.cfg.Retries; attempt++ {
		if attempt > 0 {
			wait := backoff
			if last == sarama.ErrConcurrentTransactions {
				// The previous transaction's markers are being written,
				// which takes a few milliseconds: the usual answer to an
				// AddPartitionsToTxn right after an EndTxn. Ask again soon
				// (as Kafka's Java client does), not after a full backoff.
				wait = min(concurrentBackoff<<min(attempt-1, 10), backoff)
			} else {
				backoff = min(2*backoff, time.Second)
			}
			time.Sleep(wait)
			p.stats.Retries.Add(1)
		}
		b, err := find()
		if err != nil {
			last = err
			continue
		}
		kerr, err := call(b)
		switch {
		case err != nil:
			last = err
			_ = b.Close()
			refresh()
		case kerr == sarama.ErrNoError:
			return nil
		case kerr == sarama.ErrProducerFenced || kerr == sarama.ErrInvalidProducerEpoch:
			return ErrFenced
		case kerr == sarama.ErrNotCoordinatorForConsumer || kerr == sarama.ErrConsumerCoordinatorNotAvailable:
			last = kerr
			refresh()
		case kerr == sarama.ErrOffsetsLoadInProgress || kerr == sarama.ErrConcurrentTransactions || slices.Contains(again, kerr):
			last = kerr
		default:
			return fmt.Errorf("batchtxn: %s: %w", what, kerr)
		}
	}
	return fmt.Errorf("batchtxn: %s: %w (after %d retries)", what, last, p.cfg.Retries)
}

func retriableLeader(err error) bool {
	return errors.Is(err, sarama.ErrNotLeaderForPartition) || errors.Is(err, sarama.ErrUnknownTopicOrPartition) ||
		errors.Is(err, sarama.ErrLeaderNotAvailable) || errors.Is(err, sarama.ErrNotEnoughReplicas) ||
		errors.Is(err, sarama.ErrNotEnoughReplicasAfterAppend) || errors.Is(err, sarama.ErrRequestTimedOut)
}

// The request versions sarama's own transaction manager and producer use
// for the client's protocol Version.
func produceVersion(v sarama.KafkaVersion) int16 {
	switch {
	case v.IsAtLeast(sarama.V3_7_0_0):
		return 10
	case v.IsAtLeast(sarama.V2_8_0_0):
		return 9
	case v.IsAtLeast(sarama.V2_4_0_0):
		return 8
	case v.IsAtLeast(sarama.V2_1_0_0):
		return 7
	case v.IsAtLeast(sarama.V2_0_0_0):
		return 6
	case v.IsAtLeast(sarama.V1_0_0_0):
		return 5
	default:
		return 3
	}
}

func initProducerIDVersion(v sarama.KafkaVersion) int16 {
	switch {
	case v.IsAtLeast(sarama.V2_7_0_0):
		return 4
	case v.IsAtLeast(sarama.V2_5_0_0):
		return 3
	case v.IsAtLeast(sarama.V2_4_0_0):
		return 2
	case v.IsAtLeast(sarama.V2_0_0_0):
		return 1
	default:
		return 0
	}
}

func addPartitionsVersion(v sarama.KafkaVersion) int16 {
	switch {
	case v.IsAtLeast(sarama.V2_8_0_0):
		return 3
	case v.IsAtLeast(sarama.V2_7_0_0):
		return 2
	case v.IsAtLeast(sarama.V2_0_0_0):
		return 1
	default:
		return 0
	}
}

func endTxnVersion(v sarama.KafkaVersion) int16 { return addPartitionsVersion(v) }
