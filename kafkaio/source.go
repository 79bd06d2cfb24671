package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/stream"
)

// Source reads topics as a member of a Kafka consumer group and hands the
// decoded events to stream.Run. It implements stream.Source (Poll),
// stream.Checkpointer (commits) and stream.Rebalancer (partition changes).
//
// Poll, Checkpoint and PartitionChanges are meant for one goroutine (Run's);
// Close and Stats may be called from any goroutine, and Close unblocks a Poll
// in progress.
type Source[T any] struct {
	client     sarama.Client
	ownClient  bool
	group      sarama.ConsumerGroup
	dlq        sarama.SyncProducer
	groupID    string
	topics     []string
	codec      Codec[T]
	log        *slog.Logger
	horizon    stream.Time
	deadLetter string
	every      time.Duration
	maxBatch   int

	batches chan *batch[T] // decoded records, from the claims to Poll
	wake    chan struct{}  // partition changes are pending (capacity 1)
	quit    chan struct{}  // closed by Close
	done    chan struct{}  // closed when the consume loop has returned
	cur     *batch[T]      // the batch Poll is handing out; Poll's goroutine only
	pool    sync.Pool

	mu         sync.Mutex
	ids        map[topicPartition]int
	names      []topicPartition
	claims     map[*claim]struct{}
	sess       sarama.ConsumerGroupSession
	pending    []stream.PartitionChange // not yet attached to a Poll
	staged     []stream.PartitionChange // attached, waiting for PartitionChanges
	wm         stream.Time              // last checkpoint watermark
	meta       string                   // commit metadata for wm
	dirty      bool                     // offsets marked since the last commit
	lastCommit time.Time
	timer      *time.Timer     // commits marks left waiting by the interval
	kinds      map[string]bool // decode error kinds already logged
	failed     error           // why the consume loop stopped, if not Close

	// trace, set by tests before the first Poll, sees every record handed
	// out and every offset committed. It is called under s.mu.
	trace func(traceEvent)

	startOnce sync.Once
	stop      context.CancelFunc
	closeOnce sync.Once
	closeErr  error

	stats struct {
		records, rejected, deadLettered, commits, assigned, revoked atomic.Uint64
	}
}

// SourceStats counts what a Source did.
type SourceStats struct {
	Records      uint64 // decoded records returned by Poll
	Rejected     uint64 // records the codec rejected
	DeadLettered uint64 // rejected records acknowledged by the dead-letter topic
	Commits      uint64 // offset commits sent
	Assigned     uint64 // partition claims started
	Revoked      uint64 // partition claims ended (revoked, or at Close)
}

type topicPartition struct {
	topic     string
	partition int32
}

// claim is one partition claimed in one group generation.
type claim struct {
	id        int
	topic     string
	partition int32
	sess      sarama.ConsumerGroupSession
	track     offsets
	marked    int64 // the last offset marked, or -1; guarded by Source.mu
	revoked   bool  // guarded by Source.mu
}

// traceEvent is a record handed out by Poll (commit false) or an offset
// committed: all records below it are done (commit true).
type traceEvent struct {
	commit    bool
	topic     string
	partition int32
	offset    int64
}

// batch is a run of consecutive records of one claim, decoded together.
type batch[T any] struct {
	claim *claim
	recs  []stream.Record[T] // the decoded records
	ents  []entry            // every consumed record, decoded or not, in offset order
	pos   int                // records handed out so far
	epos  int                // entries registered with the claim so far
	erec  int                // decoded records among ents[:epos]
}

var (
	_ stream.Source[int]  = (*Source[int])(nil)
	_ stream.Checkpointer = (*Source[int])(nil)
	_ stream.Rebalancer   = (*Source[int])(nil)
)

// NewSource returns a Source that consumes topics as a member of group, with
// the given client (nil with WithBrokers) and codec. It joins the group at
// its first Poll. A consumer group needs a client of its own: do not give the
// same client to two Sources. The client's config should come from NewConfig;
// in any case it must allow consumer groups (Version >= 0.10.2).
//
// Offsets are committed by Checkpoint only, after the results of the records
// are flushed (see the package documentation). With auto-commit enabled in
// the client's config, sarama also commits periodically, but only offsets the
// Source has marked, so the guarantee holds either way.
func NewSource[T any](client sarama.Client, group string, topics []string, codec Codec[T], opts ...SourceOption) (*Source[T], error) {
	cfg := sourceConfig{commitInterval: time.Second, batch: 512}
	for _, o := range opts {
		if o != nil {
			o.applySource(&cfg)
		}
	}
	switch {
	case group == "":
		return nil, fmt.Errorf("%w: empty consumer group", ErrBadOption)
	case len(topics) == 0:
		return nil, fmt.Errorf("%w: no topics", ErrBadOption)
	case slices.Contains(topics, ""):
		return nil, fmt.Errorf("%w: empty topic name", ErrBadOption)
	case codec == nil:
		return nil, fmt.Errorf("%w: nil codec", ErrBadOption)
	case slices.Contains(topics, cfg.deadLetter):
		return nil, fmt.Errorf("%w: dead-letter topic %q is also consumed", ErrBadOption, cfg.deadLetter)
	}
	client, own, err := cfg.resolve(client)
	if err != nil {
		return nil, err
	}
	s := &Source[T]{
		client:     client,
		ownClient:  own,
		groupID:    group,
		topics:     slices.Clone(topics),
		codec:      codec,
		log:        cfg.logger,
		horizon:    stream.DurationOf(cfg.horizon),
		deadLetter: cfg.deadLetter,
		every:      cfg.commitInterval,
		maxBatch:   cfg.batch,
		batches:    make(chan *batch[T], 8),
		wake:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
		ids:        make(map[topicPartition]int),
		claims:     make(map[*claim]struct{}),
		wm:         stream.MinTime,
		kinds:      make(map[string]bool),
	}
	fail := func(err error) (*Source[T], error) {
		if s.dlq != nil {
			_ = s.dlq.Close()
		}
		if own {
			_ = client.Close()
		}
		return nil, err
	}
	if cfg.deadLetter != "" {
		if !client.Config().Producer.Return.Successes {
			return fail(fmt.Errorf("%w: a dead-letter topic needs Producer.Return.Successes", ErrBadConfig))
		}
		if s.dlq, err = sarama.NewSyncProducerFromClient(client); err != nil {
			return fail(fmt.Errorf("%w: dead-letter producer: %w", ErrBadConfig, err))
		}
	}
	if s.group, err = sarama.NewConsumerGroupFromClient(group, client); err != nil {
		return fail(fmt.Errorf("%w: consumer group %q: %w", ErrBadConfig, group, err))
	}
	return s, nil
}

// Poll implements stream.Source. It blocks until decoded records are
// available, partition changes are pending (it then may return n == 0 with a
// nil error), ctx is done (ctx.Err()), the Source is closed (ErrClosed) or the
// consumer group failed for good (an unknown topic, a denied authorization).
// The records of a Poll all come from partitions this member holds once the
// changes PartitionChanges reports after it are applied.
func (s *Source[T]) Poll(ctx context.Context, buf []stream.Record[T]) (int, error) {
	if len(buf) == 0 {
		return 0, fmt.Errorf("%w: Poll with an empty buffer", ErrBadOption)
	}
	select {
	case <-s.quit:
		return 0, ErrClosed
	default:
	}
	s.start()
	for {
		if s.cur == nil {
			select {
			case b := <-s.batches:
				s.cur = b
			case <-s.wake:
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-s.quit:
				return 0, ErrClosed
			case <-s.done:
				return 0, s.stopError()
			}
		}
		if n, changed := s.handOut(buf); n > 0 || changed {
			return n, nil
		}
	}
}

// handOut copies decoded records into buf, registers them with their claims
// for commit tracking and attaches the pending partition changes, all under
// one lock so that no record of a claim revoked by those changes gets out.
func (s *Source[T]) handOut(buf []stream.Record[T]) (n int, changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n < len(buf) {
		b := s.cur
		if b == nil {
			select {
			case b = <-s.batches:
				s.cur = b
			default:
			}
			if b == nil {
				break
			}
		}
		if b.claim.revoked {
			s.cur = nil
			s.recycle(b)
			continue
		}
		k := copy(buf[n:], b.recs[b.pos:])
		b.pos += k
		n += k
		b.register(s.trace)
		if b.pos == len(b.recs) {
			s.cur = nil
			s.recycle(b)
		}
	}
	if len(s.pending) > 0 {
		s.staged = append(s.staged, s.pending...)
		s.pending = s.pending[:0]
		if len(s.staged) > 2*len(s.names)+64 { // nobody reads them: keep them bounded
			s.staged = compactChanges(s.staged)
		}
		changed = true
	}
	s.stats.records.Add(uint64(n))
	return n, changed
}

// register hands the entries up to the last record handed out (and the
// undecodable records that follow it, once the batch is exhausted) to the claim.
func (b *batch[T]) register(trace func(traceEvent)) {
	for b.epos < len(b.ents) {
		e := b.ents[b.epos]
		if !e.done {
			if b.erec == b.pos {
				return
			}
			b.erec++
			if trace != nil {
				trace(traceEvent{topic: b.claim.topic, partition: b.claim.partition, offset: e.off})
			}
		}
		b.claim.track.push(e)
		b.epos++
	}
}

// compactChanges reduces changes to their net effect per partition, which
// applied in order leaves the watermarks as the full sequence does: a
// partition last revoked gets one revocation, a partition last assigned after
// earlier changes gets a revocation (forgetting what it had seen) and an
// assignment.
func compactChanges(changes []stream.PartitionChange) []stream.PartitionChange {
	type net struct{ first, last int }
	seen := make(map[int]*net, len(changes))
	var order []int
	for i, c := range changes {
		if n := seen[c.Partition]; n != nil {
			n.last = i
			continue
		}
		seen[c.Partition] = &net{first: i, last: i}
		order = append(order, c.Partition)
	}
	out := make([]stream.PartitionChange, 0, 2*len(order))
	for _, id := range order {
		n := seen[id]
		last := changes[n.last]
		if !last.Revoked && n.first != n.last {
			out = append(out, stream.PartitionChange{Partition: id, Revoked: true})
		}
		out = append(out, last)
	}
	return out
}

// PartitionChanges implements stream.Rebalancer: it appends the partitions
// assigned and revoked up to the last Poll. Partition numbers are stable for
// the Source's life, also when a partition leaves and comes back.
func (s *Source[T]) PartitionChanges(dst []stream.PartitionChange) []stream.PartitionChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	dst = append(dst, s.staged...)
	s.staged = s.staged[:0]
	return dst
}

// Checkpoint implements stream.Checkpointer: every result of an event with
// time t < wm - horizon has been flushed. For each partition it marks the
// offset just past the longest prefix of handed-out records that are done (event
// time t with t + horizon < wm, or dead-lettered) and commits the marks when
// the commit interval has passed since the last commit; marks that must wait
// for the interval are committed by a timer when it has passed, even if no
// Checkpoint follows. When ctx is done Checkpoint only marks, and the timer
// commits. Revoking a partition and closing the Source commit at once, whatever
// the interval. Checkpoint returns nil:
// sarama reports commit failures asynchronously, and the Source logs them; a
// failed commit only means that more records are read again after a restart.
func (s *Source[T]) Checkpoint(ctx context.Context, wm stream.Time) error {
	s.mu.Lock()
	s.raise(wm)
	for c := range s.claims {
		if s.mark(c) {
			s.dirty = true
		}
	}
	sess := s.due(time.Now(), ctx.Err() == nil)
	s.mu.Unlock()
	if sess != nil {
		s.commit(sess)
	}
	return nil
}

// due decides whether marks wait to be committed now: it returns the session
// to commit with, or nil. When the commit interval has not passed yet (or now
// is false), it arms a timer that commits when it has, so that marks do not
// wait for a Checkpoint that may not come (a stream that went quiet).
// Callers hold s.mu.
func (s *Source[T]) due(now time.Time, allowed bool) sarama.ConsumerGroupSession {
	if !s.dirty || s.sess == nil {
		return nil
	}
	wait := s.every - now.Sub(s.lastCommit)
	if allowed && wait <= 0 {
		s.dirty, s.lastCommit = false, now
		return s.sess
	}
	if s.timer == nil {
		s.timer = time.AfterFunc(max(wait, time.Millisecond), s.deferredCommit)
	}
	return nil
}

// deferredCommit is the timer armed by due.
func (s *Source[T]) deferredCommit() {
	s.mu.Lock()
	s.timer = nil
	var sess sarama.ConsumerGroupSession
	select {
	case <-s.quit: // Close commits through the claims
	default:
		sess = s.due(time.Now(), true)
	}
	s.mu.Unlock()
	if sess != nil {
		s.commit(sess)
	}
}

// commit sends the marked offsets of sess to the broker, synchronously.
func (s *Source[T]) commit(sess sarama.ConsumerGroupSession) {
	sess.Commit()
	s.stats.commits.Add(1)
	if s.trace != nil {
		s.mu.Lock()
		for c := range s.claims {
			s.traceCommit(c)
		}
		s.mu.Unlock()
	}
}

// traceCommit reports c's marked offset as committed. Callers hold s.mu.
func (s *Source[T]) traceCommit(c *claim) {
	if s.trace != nil && c.marked >= 0 {
		s.trace(traceEvent{commit: true, topic: c.topic, partition: c.partition, offset: c.marked})
	}
}

// raise records a checkpoint watermark. Callers hold s.mu.
func (s *Source[T]) raise(wm stream.Time) {
	if wm > s.wm {
		s.wm = wm
		s.meta = "tidemark:v1:wm=" + strconv.FormatInt(int64(wm), 10)
	}
}

// mark marks the committable offset of c with its session. Callers hold s.mu.
func (s *Source[T]) mark(c *claim) bool {
	next := c.track.advance(s.wm, s.horizon)
	if next < 0 {
		return false
	}
	c.sess.MarkOffset(c.topic, c.partition, next, s.meta)
	c.marked = next
	return true
}

// Stats returns the counts so far.
func (s *Source[T]) Stats() SourceStats {
	return SourceStats{
		Records:      s.stats.records.Load(),
		Rejected:     s.stats.rejected.Load(),
		DeadLettered: s.stats.deadLettered.Load(),
		Commits:      s.stats.commits.Load(),
		Assigned:     s.stats.assigned.Load(),
		Revoked:      s.stats.revoked.Load(),
	}
}

// TopicPartition returns the topic and partition behind a Record.Partition number.
func (s *Source[T]) TopicPartition(id int) (topic string, partition int32, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id < 0 || id >= len(s.names) {
		return "", 0, false
	}
	return s.names[id].topic, s.names[id].partition, true
}

// Close leaves the consumer group, after committing, for every partition, the
// offsets of the records that the last Checkpoint found done; records handed
// out after that are read again by the partition's next owner. It closes the
// client if WithBrokers made it. Close is idempotent; Poll returns ErrClosed
// afterwards.
func (s *Source[T]) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		s.mu.Lock()
		if s.timer != nil {
			s.timer.Stop()
			s.timer = nil
		}
		s.mu.Unlock()
		started := true
		s.startOnce.Do(func() { started = false })
		var errs []error
		if started {
			s.stop()
		}
		if err := s.group.Close(); err != nil {
			errs = append(errs, fmt.Errorf("kafkaio: close consumer group %q: %w", s.groupID, err))
		}
		if started {
			<-s.done
		}
		if s.dlq != nil {
			if err := s.dlq.Close(); err != nil {
				errs = append(errs, fmt.Errorf("kafkaio: close dead-letter producer: %w", err))
			}
		}
		if s.ownClient {
			if err := s.client.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
				errs = append(errs, fmt.Errorf("kafkaio: close client: %w", err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

func (s *Source[T]) stopError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	return ErrClosed
}

func (s *Source[T]) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Source[T]) start() {
	s.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		s.stop = cancel
		go s.consume(ctx)
		if s.client.Config().Consumer.Return.Errors {
			go s.logErrors()
		}
	})
}

// consume runs the consumer group until ctx is cancelled or a fatal error.
func (s *Source[T]) consume(ctx context.Context) {
	defer close(s.done)
	h := handler[T]{s}
	backoff := 100 * time.Millisecond
	for {
		err := s.group.Consume(ctx, s.topics, h)
		if ctx.Err() != nil || errors.Is(err, sarama.ErrClosedConsumerGroup) {
			return
		}
		if err == nil {
			backoff = 100 * time.Millisecond
			continue // a rebalance ended the session: join the next generation
		}
		if fatalGroupError(err) {
			s.mu.Lock()
			s.failed = fmt.Errorf("kafkaio: consumer group %q on %v: %w", s.groupID, s.topics, err)
			s.mu.Unlock()
			s.log.Error("kafkaio: consumer group failed", "group", s.groupID, "topics", s.topics, "error", err)
			return
		}
		s.log.Warn("kafkaio: consumer group session failed; retrying",
			"group", s.groupID, "topics", s.topics, "retry_in", backoff, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// fatalGroupError reports errors that retrying cannot fix.
func fatalGroupError(err error) bool {
	var ce sarama.ConfigurationError
	return errors.As(err, &ce) ||
		errors.Is(err, sarama.ErrUnknownTopicOrPartition) ||
		errors.Is(err, sarama.ErrTopicAuthorizationFailed) ||
		errors.Is(err, sarama.ErrGroupAuthorizationFailed) ||
		errors.Is(err, sarama.ErrSASLAuthenticationFailed) ||
		errors.Is(err, sarama.ErrInvalidGroupId)
}

func (s *Source[T]) logErrors() {
	for err := range s.group.Errors() {
		var ce *sarama.ConsumerError
		if errors.As(err, &ce) && ce.Topic != "" {
			s.log.Warn("kafkaio: consumer error", "group", s.groupID, "topic", ce.Topic, "partition", ce.Partition, "error", ce.Err)
			continue
		}
		s.log.Warn("kafkaio: consumer error", "group", s.groupID, "error", err)
	}
}

// handler implements sarama.ConsumerGroupHandler. The lifecycle of a
// partition is tied to ConsumeClaim rather than to Setup and Cleanup, so that
// eager and cooperative rebalancing are handled alike.
type handler[T any] struct{ s *Source[T] }

func (h handler[T]) Setup(sess sarama.ConsumerGroupSession) error {
	s := h.s
	s.mu.Lock()
	s.sess = sess
	s.mu.Unlock()
	s.log.Info("kafkaio: joined consumer group", "group", s.groupID, "member", sess.MemberID(),
		"generation", sess.GenerationID(), "claims", sess.Claims())
	return nil
}

func (h handler[T]) Cleanup(sess sarama.ConsumerGroupSession) error {
	s := h.s
	s.mu.Lock()
	if s.sess == sess {
		s.sess = nil
	}
	s.mu.Unlock()
	sess.Commit() // the claims committed as they ended; this is a safety net
	return nil
}

func (h handler[T]) ConsumeClaim(sess sarama.ConsumerGroupSession, cl sarama.ConsumerGroupClaim) error {
	s := h.s
	c := s.openClaim(sess, cl)
	defer s.closeClaim(c)

	msgs := cl.Messages()
	done := sess.Context().Done()
	filling := make([]*sarama.ConsumerMessage, 0, s.maxBatch)
	var ready *batch[T]
	defer func() {
		if ready != nil {
			s.recycle(ready)
		}
	}()
	for {
		if ready == nil && len(filling) > 0 {
			ready = s.decode(c, filling, done)
			clear(filling)
			filling = filling[:0]
			if ready == nil {
				return nil // the session ended while the dead-letter topic was down
			}
		}
		in := msgs
		if len(filling) == cap(filling) {
			in = nil
		}
		var out chan<- *batch[T]
		if ready != nil {
			out = s.batches
		}
		select {
		case m, ok := <-in:
			if !ok {
				return nil // revoked, or the session is over
			}
			filling = append(filling, m)
		drain:
			for len(filling) < cap(filling) {
				select {
				case m, ok := <-msgs:
					if !ok {
						return nil
					}
					filling = append(filling, m)
				default:
					break drain
				}
			}
		case out <- ready:
			ready = nil
		case <-done:
			return nil
		}
	}
}

// openClaim registers a new claim and queues its assignment.
func (s *Source[T]) openClaim(sess sarama.ConsumerGroupSession, cl sarama.ConsumerGroupClaim) *claim {
	tp := topicPartition{cl.Topic(), cl.Partition()}
	s.mu.Lock()
	id, ok := s.ids[tp]
	if !ok {
		id = len(s.names)
		s.ids[tp] = id
		s.names = append(s.names, tp)
	}
	c := &claim{id: id, topic: tp.topic, partition: tp.partition, sess: sess, marked: -1}
	s.claims[c] = struct{}{}
	s.pending = append(s.pending, stream.PartitionChange{Partition: id})
	s.mu.Unlock()
	s.notify()
	s.stats.assigned.Add(1)
	s.log.Info("kafkaio: partition assigned", "group", s.groupID, "topic", tp.topic, "partition", tp.partition,
		"offset", cl.InitialOffset(), "generation", sess.GenerationID())
	return c
}

// closeClaim ends a claim: it marks and commits what the last checkpoint
// found done, queues the revocation, and drops the rest. Its records still in
// flight are neither handed out nor committed any more: the partition's next
// owner reads them again from the committed offset.
func (s *Source[T]) closeClaim(c *claim) {
	s.mu.Lock()
	c.revoked = true
	marked := s.mark(c)
	inflight := c.track.Len()
	delete(s.claims, c)
	s.pending = append(s.pending, stream.PartitionChange{Partition: c.id, Revoked: true})
	s.mu.Unlock()
	s.notify()
	c.sess.Commit() // also sends what an earlier Checkpoint marked
	if marked {
		s.stats.commits.Add(1)
	}
	if s.trace != nil {
		s.mu.Lock()
		s.traceCommit(c)
		s.mu.Unlock()
	}
	s.stats.revoked.Add(1)
	s.log.Info("kafkaio: partition released", "group", s.groupID, "topic", c.topic, "partition", c.partition,
		"uncommitted", inflight, "generation", c.sess.GenerationID())
}

func (s *Source[T]) newBatch(c *claim) *batch[T] {
	b, _ := s.pool.Get().(*batch[T])
	if b == nil {
		b = &batch[T]{recs: make([]stream.Record[T], 0, s.maxBatch), ents: make([]entry, 0, s.maxBatch)}
	}
	b.claim = c
	return b
}

func (s *Source[T]) recycle(b *batch[T]) {
	clear(b.recs)
	b.recs, b.ents = b.recs[:0], b.ents[:0]
	b.claim, b.pos, b.epos, b.erec = nil, 0, 0, 0
	s.pool.Put(b)
}

// decode decodes msgs into a batch, dead-lettering the records the codec
// rejects. It returns nil if done is closed before the dead-letter topic
// acknowledged them.
func (s *Source[T]) decode(c *claim, msgs []*sarama.ConsumerMessage, done <-chan struct{}) *batch[T] {
	b := s.newBatch(c)
	var bad []rejected
	for _, m := range msgs {
		ts := stream.MinTime
		if !m.Timestamp.IsZero() {
			ts = stream.TimeOf(m.Timestamp)
		}
		e, err := s.codec.Decode(m.Key, m.Value, ts)
		if err != nil {
			bad = append(bad, rejected{m, err, s.reject(m, err)})
			b.ents = append(b.ents, entry{off: m.Offset, done: true})
			continue
		}
		b.recs = append(b.recs, stream.Record[T]{Partition: c.id, Event: e})
		b.ents = append(b.ents, entry{off: m.Offset, t: e.Time})
	}
	if len(bad) > 0 && s.dlq != nil && !s.sendDeadLetters(bad, done) {
		s.recycle(b)
		return nil
	}
	return b
}

type rejected struct {
	m    *sarama.ConsumerMessage
	err  error
	kind string
}

// reject counts a record the codec rejected and logs the first of its kind.
func (s *Source[T]) reject(m *sarama.ConsumerMessage, err error) string {
	s.stats.rejected.Add(1)
	kind := errorKind(err)
	s.mu.Lock()
	seen := s.kinds[kind]
	s.kinds[kind] = true
	s.mu.Unlock()
	if !seen {
		s.log.Warn("kafkaio: undecodable record (logged once per kind; see SourceStats.Rejected)",
			"kind", kind, "topic", m.Topic, "partition", m.Partition, "offset", m.Offset,
			"dead_letter", s.deadLetter, "error", err)
	}
	return kind
}

// Dead-letter headers.
const (
	HeaderError     = "tidemark-error"      // why the record was rejected
	HeaderErrorKind = "tidemark-error-kind" // DecodeError.Kind, or the error's type
	HeaderTopic     = "tidemark-topic"      // the record's original topic
	HeaderPartition = "tidemark-partition"  // its partition, in decimal
	HeaderOffset    = "tidemark-offset"     // its offset, in decimal
)

func (s *Source[T]) deadLetterMessage(r rejected) *sarama.ProducerMessage {
	m := r.m
	hs := make([]sarama.RecordHeader, 0, len(m.Headers)+5)
	for _, h := range m.Headers {
		if h != nil {
			hs = append(hs, *h)
		}
	}
	hs = append(hs,
		sarama.RecordHeader{Key: []byte(HeaderError), Value: []byte(r.err.Error())},
		sarama.RecordHeader{Key: []byte(HeaderErrorKind), Value: []byte(r.kind)},
		sarama.RecordHeader{Key: []byte(HeaderTopic), Value: []byte(m.Topic)},
		sarama.RecordHeader{Key: []byte(HeaderPartition), Value: strconv.AppendInt(nil, int64(m.Partition), 10)},
		sarama.RecordHeader{Key: []byte(HeaderOffset), Value: strconv.AppendInt(nil, m.Offset, 10)},
	)
	pm := &sarama.ProducerMessage{Topic: s.deadLetter, Headers: hs, Timestamp: m.Timestamp}
	if m.Key != nil {
		pm.Key = sarama.ByteEncoder(m.Key)
	}
	if m.Value != nil {
		pm.Value = sarama.ByteEncoder(m.Value)
	}
	return pm
}

// sendDeadLetters produces the rejected records to the dead-letter topic,
// retrying with backoff until they are all acknowledged (true) or done is
// closed (false).
func (s *Source[T]) sendDeadLetters(bad []rejected, done <-chan struct{}) bool {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		pms := make([]*sarama.ProducerMessage, len(bad))
		for i, r := range bad {
			pms[i] = s.deadLetterMessage(r)
		}
		err := s.dlq.SendMessages(pms)
		if err == nil {
			s.stats.deadLettered.Add(uint64(len(bad)))
			return true
		}
		var perrs sarama.ProducerErrors
		if errors.As(err, &perrs) {
			failed := make(map[*sarama.ProducerMessage]bool, len(perrs))
			for _, pe := range perrs {
				failed[pe.Msg] = true
			}
			keep := bad[:0]
			for i, r := range bad {
				if failed[pms[i]] {
					keep = append(keep, r)
				}
			}
			s.stats.deadLettered.Add(uint64(len(bad) - len(keep)))
			bad = keep
			if len(bad) == 0 {
				return true
			}
		}
		s.log.Warn("kafkaio: dead-letter produce failed; the partition waits and retries",
			"topic", s.deadLetter, "records", len(bad), "attempt", attempt, "retry_in", backoff, "error", err)
		select {
		case <-done:
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
