package kafkaio

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/stream"
)

// runtime is a running Stage: its clients, its tasks and its loop. Every
// field without a lock is the loop goroutine's.
type runtime struct {
	st  *Stage
	ctx context.Context // Run's context: waits (fetches, replays, backoffs) end with it
	// writes is the context of the results' writes: it ends only when the
	// stage stops (after the final commit) or crashes, so that a graceful
	// stop never drops a result whose offset it then commits.
	writes    context.Context
	endWrites context.CancelFunc
	log       *slog.Logger
	out       *outputs
	txID      string

	groupCl, prodCl, replayCl sarama.Client
	group                     sarama.ConsumerGroup
	replayer                  sarama.Consumer
	prod                      *producer // the transactional producer, or the dead-letter producer; may be nil

	events   chan event
	dead     chan struct{} // closed when the loop is gone: claims must not wait for it
	consumed chan error    // the consume goroutine's end
	crashed  chan struct{} // tests: stop as a crash would

	slots       map[int32]*slot
	dirty       bool // records processed since the last commit
	sinceCommit int
	lastCommit  time.Time
	batches     sync.Pool
	cps         []stream.InputCheckpoint

	sessMu sync.Mutex
	sess   sarama.ConsumerGroupSession

	// claims are the live claims, for Stats' lag; guarded by claimsMu.
	claimsMu sync.Mutex
	claims   map[*claimRef]struct{}
	// fetched are the batches processed since the last successful commit,
	// for WithLatency.
	fetched []fetchedBatch

	fencings     []time.Time     // when the producer was fenced, for fencedAgain
	kinds        map[string]bool // kinds of decode errors already logged
	lastAbort    time.Time
	abortBackoff time.Duration
}

// slot is the task of one partition number, with the claims that feed it.
type slot struct {
	p       int32
	claims  []*claimRef // per input; nil until claimed
	task    taskCtl     // nil until every input is claimed and the task is built
	inputs  []inputRunner
	first   []int64 // per input without a committed offset: the first offset it read, or -1
	leaving bool    // its claim ended: a failed commit drops it instead of rebuilding it
}

// claimRef is a partition claimed in the current generation.
type claimRef struct {
	input     int
	topic     string
	partition int32
	ready     chan struct{} // closed when the task runs: the claim may deliver
	lag       atomic.Int64  // offsets between its last record and the partition's end
}

// fetchedBatch is a batch of records waiting for the commit that covers it.
type fetchedBatch struct {
	at time.Time
	n  int
}

type eventKind uint8

const (
	claimStarted eventKind = iota
	claimEnded
	records
)

type event struct {
	kind eventKind
	c    *claimRef
	msgs *[]*sarama.ConsumerMessage
	at   time.Time // records: when the batch was received
	ack  chan struct{}
}

// Run runs the stage until ctx is done, then stops gracefully: it commits
// what is done (in-flight results are delivered, the open transaction
// commits), leaves the group (a static member stays, for its successor) and
// returns nil. The results in flight are waited for up to 30 s (a broker
// that is away); past that, the stage stops without committing them, and
// the partitions' next owner processes them again. It returns an error when the stage cannot go on: a consumer
// group that fails for good (an unknown topic, denied authorization), topics
// that are not co-partitioned, or a producer fenced again and again (another
// member runs with the same instance id). A broker that goes away is waited for: Run logs and
// retries. Run may be called once.
func (s *Stage) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return ErrStageRunning
	}
	rt, err := s.start(ctx)
	if err != nil {
		return err
	}
	s.stats.watermark.Store(int64(stream.MinTime))
	s.rt.Store(rt)
	return rt.loop()
}

// clientConfig returns a copy of the stage's sarama config adjusted for one
// of its clients.
func (s *Stage) clientConfig(adjust func(*sarama.Config)) *sarama.Config {
	c := *s.cfg.config
	c.Consumer.IsolationLevel = sarama.ReadCommitted
	c.Consumer.Offsets.AutoCommit.Enable = false
	c.Consumer.Return.Errors = true
	adjust(&c)
	return &c
}

func (s *Stage) start(ctx context.Context) (*runtime, error) {
	rt := &runtime{
		st: s, ctx: ctx, log: s.log,
		events: make(chan event, 64), dead: make(chan struct{}), consumed: make(chan error, 1),
		crashed: make(chan struct{}), slots: make(map[int32]*slot), lastCommit: time.Now(), kinds: make(map[string]bool),
		claims: make(map[*claimRef]struct{}),
	}
	rt.writes, rt.endWrites = context.WithCancel(context.WithoutCancel(ctx))
	// A graceful stop delivers the results in flight, but not forever: a
	// broker that does not take them within the grace period is given up
	// on, and nothing more is committed.
	context.AfterFunc(ctx, func() { time.AfterFunc(stopGrace, rt.endWrites) })
	rt.out = s.newOutput(rt)
	fail := func(err error) (*runtime, error) {
		rt.endWrites()
		rt.closeClients()
		return nil, err
	}
	var err error
	groupCfg := s.clientConfig(func(c *sarama.Config) {
		c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{NewCoPartitionedStrategy()}
		c.Consumer.Group.InstanceId = s.cfg.instanceID
	})
	if err := groupCfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if rt.groupCl, err = dial(ctx, s, groupCfg, "group"); err != nil {
		return fail(err)
	}
	if err := s.checkTopics(rt.groupCl); err != nil {
		return fail(err)
	}
	if rt.replayCl, err = dial(ctx, s, s.clientConfig(func(*sarama.Config) {}), "replay"); err != nil {
		return fail(err)
	}
	if rt.replayer, err = sarama.NewConsumerFromClient(rt.replayCl); err != nil {
		return fail(fmt.Errorf("%w: replay consumer: %w", ErrInvalidConfig, err))
	}
	if s.exactly || s.cfg.deadLetter != "" {
		rt.txID = ""
		if s.exactly {
			suffix := s.cfg.instanceID
			if suffix == "" {
				var b [6]byte
				_, _ = rand.Read(b[:])
				suffix = hex.EncodeToString(b[:])
			}
			rt.txID = s.group + "-" + suffix
		}
		prodCfg := s.clientConfig(func(c *sarama.Config) {
			c.Producer.Idempotent = true
			c.Producer.RequiredAcks = sarama.WaitForAll
			c.Net.MaxOpenRequests = 1
			c.Producer.Return.Successes = true
			c.Producer.Return.Errors = true
			c.Producer.Transaction.ID = rt.txID
			c.Producer.Transaction.Timeout = s.cfg.txnTimeout
		})
		if err := prodCfg.Validate(); err != nil {
			return fail(fmt.Errorf("%w: %w", ErrInvalidConfig, err))
		}
		if rt.prodCl, err = dial(ctx, s, prodCfg, "producer"); err != nil {
			return fail(err)
		}
		if err := rt.newProducer(); err != nil {
			return fail(err)
		}
	}
	if rt.group, err = sarama.NewConsumerGroupFromClient(s.group, rt.groupCl); err != nil {
		return fail(fmt.Errorf("%w: consumer group %q: %w", ErrInvalidConfig, s.group, err))
	}
	go rt.consume()
	go rt.groupErrors()
	s.log.Info("kafkaio: stage started", "group", s.group, "inputs", s.topics(), "exactly_once", s.exactly,
		"transactional_id", rt.txID, "instance", s.cfg.instanceID, "bounds", s.bounds)
	return rt, nil
}

func (s *Stage) topics() []string {
	out := make([]string, len(s.inputs))
	for i, in := range s.inputs {
		out[i] = in.topic
	}
	return out
}

// dial makes a client, waiting for the brokers with capped backoff while
// ctx lasts: a broker that is not up yet is not an error.
func dial(ctx context.Context, s *Stage, cfg *sarama.Config, role string) (sarama.Client, error) {
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		c, err := sarama.NewClient(s.cfg.brokers, cfg)
		if err == nil {
			if attempt > 1 {
				s.log.Info("kafkaio: brokers reachable", "brokers", s.cfg.brokers, "client", role)
			}
			return c, nil
		}
		var ce sarama.ConfigurationError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		if attempt == 1 || attempt%10 == 0 {
			s.log.Warn("kafkaio: brokers unreachable; retrying", "brokers", s.cfg.brokers, "client", role,
				"attempt", attempt, "retry_in", backoff, "error", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("kafkaio: connect to %v: %w (last error: %w)", s.cfg.brokers, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// ErrNotCoPartitioned is returned by Run when the inputs of a two-input
// stage do not have the same number of partitions.
var ErrNotCoPartitioned = errors.New("kafkaio: input topics are not co-partitioned")

func (s *Stage) checkTopics(c sarama.Client) error {
	if err := c.RefreshMetadata(s.topics()...); err != nil {
		return fmt.Errorf("kafkaio: stage %q: input topics %v: %w", s.group, s.topics(), err)
	}
	n := -1
	for _, in := range s.inputs {
		ps, err := c.Partitions(in.topic)
		if err != nil {
			return fmt.Errorf("kafkaio: stage %q: input topic %q: %w", s.group, in.topic, err)
		}
		if n >= 0 && len(ps) != n {
			return fmt.Errorf("%w: %q has %d partitions, %q has %d", ErrNotCoPartitioned, s.inputs[0].topic, n, in.topic, len(ps))
		}
		n = len(ps)
	}
	return nil
}

func (rt *runtime) newProducer() error {
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		p, err := newProducer(rt.prodCl)
		if err == nil {
			rt.prod = p
			return nil
		}
		if fenced(err) && rt.fencedAgain() {
			return fmt.Errorf("kafkaio: stage %q: producer %q fenced again and again: another member runs with the same transactional id (instance id %q): %w",
				rt.st.group, rt.txID, rt.st.cfg.instanceID, err)
		}
		var ce sarama.ConfigurationError
		if errors.As(err, &ce) {
			return fmt.Errorf("%w: producer: %w", ErrInvalidConfig, err)
		}
		if attempt == 1 || attempt%10 == 0 {
			rt.log.Warn("kafkaio: cannot start the producer; retrying", "group", rt.st.group, "transactional_id", rt.txID,
				"attempt", attempt, "retry_in", backoff, "error", err)
		}
		select {
		case <-rt.ctx.Done():
			return rt.ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// topicPartition names a partition.
type topicPartition struct {
	topic     string
	partition int32
}

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
	backoff := 100 * time.Millisecond
	topics := rt.st.topics()
	for {
		err := rt.group.Consume(context.Background(), topics, h)
		if errors.Is(err, sarama.ErrClosedConsumerGroup) || errors.Is(err, sarama.ErrClosedClient) {
			rt.consumed <- nil
			return
		}
		if err == nil {
			backoff = 100 * time.Millisecond
			continue
		}
		if fatalGroupError(err) {
			rt.consumed <- fmt.Errorf("kafkaio: stage %q on %v: %w", rt.st.group, topics, err)
			return
		}
		rt.log.Warn("kafkaio: consumer group session failed; retrying", "group", rt.st.group, "retry_in", backoff, "error", err)
		time.Sleep(backoff)
		backoff = min(2*backoff, 10*time.Second)
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

// post hands ev to the loop; false means the loop is gone.
func (rt *runtime) post(ev event) bool {
	select {
	case rt.events <- ev:
		return true
	case <-rt.dead:
		return false
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
		c.lag.Store(max(cl.HighWaterMarkOffset()-(*b)[len(*b)-1].Offset-1, 0))
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

func (rt *runtime) batch() *[]*sarama.ConsumerMessage {
	if b, ok := rt.batches.Get().(*[]*sarama.ConsumerMessage); ok {
		return b
	}
	b := make([]*sarama.ConsumerMessage, 0, rt.st.cfg.batch)
	return &b
}

func (rt *runtime) recycle(b *[]*sarama.ConsumerMessage) {
	clear(*b)
	*b = (*b)[:0]
	rt.batches.Put(b)
}

// loop is the stage's processing goroutine: it alone touches the tasks and
// the producer.
func (rt *runtime) loop() error {
	tick := time.NewTicker(max(rt.st.cfg.commitInterval, time.Millisecond))
	defer tick.Stop()
	var failed <-chan struct{}
	if rt.prod != nil {
		failed = rt.prod.failed
	}
	for {
		select {
		case ev := <-rt.events:
			if err := rt.handle(ev); err != nil {
				return rt.stop(err)
			}
		case <-tick.C:
			if rt.dirty && time.Since(rt.lastCommit) >= rt.st.cfg.commitInterval {
				if err := rt.commit(); err != nil {
					return rt.stop(err)
				}
			}
		case <-failed:
			// A record failed: the transaction cannot commit. Recover now
			// rather than at the next commit.
			if err := rt.recoverAll(fmt.Errorf("produce failed: %w", rt.prod.err())); err != nil {
				return rt.stop(err)
			}
		case err := <-rt.consumed:
			if err != nil {
				return rt.stop(err)
			}
			return rt.stop(nil)
		case <-rt.crashed:
			return rt.stop(errCrashed)
		case <-rt.ctx.Done():
			return rt.stop(nil)
		}
		if rt.prod != nil {
			failed = rt.prod.failed
		}
	}
}

func (rt *runtime) handle(ev event) error {
	switch ev.kind {
	case claimStarted:
		defer rt.publishWatermark()
		return rt.claimStarted(ev.c)
	case claimEnded:
		defer close(ev.ack)
		defer rt.publishWatermark()
		return rt.claimEnded(ev.c)
	}
	defer rt.recycle(ev.msgs)
	s := rt.slots[ev.c.partition]
	if s == nil || s.claims[ev.c.input] != ev.c || s.task == nil {
		return nil // a claim that ended meanwhile
	}
	in := s.inputs[ev.c.input]
	for _, m := range *ev.msgs {
		if _, ok := in.next(); !ok && s.first[ev.c.input] < 0 {
			s.first[ev.c.input] = m.Offset
		}
		if err := rt.push(s, ev.c.input, m); err != nil {
			return err
		}
	}
	n := len(*ev.msgs)
	rt.publishWatermark() // before the count: Stats never shows the records without their watermark
	rt.st.stats.records.Add(uint64(n))
	if rt.st.cfg.latency != nil {
		rt.fetched = append(rt.fetched, fetchedBatch{at: ev.at, n: n})
	}
	rt.dirty = true
	rt.sinceCommit += n
	if rt.st.hooks.afterBatch != nil {
		rt.st.hooks.afterBatch()
	}
	if err := rt.out.err(); err != nil {
		return rt.recoverAll(err)
	}
	if rt.st.cfg.commitRecords > 0 && rt.sinceCommit >= rt.st.cfg.commitRecords {
		return rt.commit()
	}
	return nil
}

// push feeds one record to an input of a task, dead-lettering what the
// codec rejects (except during a replay, whose records were dealt with).
func (rt *runtime) push(s *slot, input int, m *sarama.ConsumerMessage) error {
	v, rejected, err := s.inputs[input].push(m)
	if err != nil {
		return fmt.Errorf("kafkaio: stage %q: %s/%d@%d: %w", rt.st.group, m.Topic, m.Partition, m.Offset, err)
	}
	replaying := s.task.Replaying()
	switch {
	case replaying:
		rt.st.stats.replayed.Add(1)
	case rejected != nil:
		rt.st.stats.rejected.Add(1)
		rt.deadLetter(m, rejected, rt.st.inputs[input].skipDeadLetter)
	case v == stream.Accepted:
		rt.st.stats.accepted.Add(1)
	case v == stream.Late:
		rt.st.stats.late.Add(1)
	case v == stream.Duplicate:
		rt.st.stats.dups.Add(1)
	}
	return nil
}

func (rt *runtime) deadLetter(m *sarama.ConsumerMessage, err error, skip bool) {
	if rt.prod != nil && rt.prod.err() != nil {
		return // the transaction failed: recovery writes it again
	}
	kind := errorKind(err)
	if !rt.kinds[kind] {
		rt.kinds[kind] = true
		rt.log.Warn("kafkaio: undecodable record (logged once per kind; see StageStats.Rejected)",
			"kind", kind, "topic", m.Topic, "partition", m.Partition, "offset", m.Offset,
			"dead_letter", cmp.Or(rt.st.cfg.deadLetter, "none"), "skip_dead_letter", skip, "error", err)
	}
	if rt.st.cfg.deadLetter == "" || rt.prod == nil || skip {
		return
	}
	om := rt.prod.message()
	val, cut := deadLetterValue(m, rt.st.cfg.config.Producer.MaxMessageBytes)
	om.key.b = append(om.key.b, m.Key...)
	om.val.b = append(om.val.b, val...)
	om.msg = *deadLetterMessage(m, err, kind, rt.st.cfg.deadLetter, cut)
	if m.Key != nil {
		om.msg.Key = &om.key
	}
	if m.Value != nil {
		om.msg.Value = &om.val
	}
	if rt.prod.send(rt.writes, om) == nil {
		rt.st.stats.deadLettered.Add(1)
	}
}

// claimStarted registers a claim and builds the slot's task once every
// input of the partition number is claimed.
func (rt *runtime) claimStarted(c *claimRef) error {
	s := rt.slots[c.partition]
	if s == nil {
		n := len(rt.st.inputs)
		s = &slot{p: c.partition, claims: make([]*claimRef, n), first: make([]int64, n)}
		for i := range s.first {
			s.first[i] = -1
		}
		rt.slots[c.partition] = s
	}
	s.claims[c.input] = c
	for _, cl := range s.claims {
		if cl == nil {
			return nil
		}
	}
	if err := rt.build(s, nil); err != nil {
		return err
	}
	for _, cl := range s.claims {
		close(cl.ready)
	}
	return nil
}

// claimEnded commits what the claim's task emitted and drops the task.
func (rt *runtime) claimEnded(c *claimRef) error {
	s := rt.slots[c.partition]
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
		delete(rt.slots, c.partition)
	}
	return err
}

// build makes the slot's task and rebuilds its state: it restores each
// input from the group's committed offset and replays the records from the
// checkpoint's replay offset (EndReplay), then, for a task rebuilt after an
// abort, pushes again the records up to upTo (per input, exclusive) that the
// aborted transaction had covered. It retries while the brokers are away.
func (rt *runtime) build(s *slot, upTo []int64) error {
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := rt.tryBuild(s, upTo)
		if err == nil {
			rt.st.stats.tasks.Add(1)
			return nil
		}
		if rt.ctx.Err() != nil {
			return nil // stopping; the claims see the session end
		}
		rt.log.Warn("kafkaio: cannot build task; retrying", "group", rt.st.group, "partition", s.p,
			"attempt", attempt, "retry_in", backoff, "error", err)
		select {
		case <-rt.ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (rt *runtime) tryBuild(s *slot, upTo []int64) (err error) {
	start := time.Now()
	task, inputs, err := rt.st.newTask(rt.out)
	if err != nil {
		return fmt.Errorf("kafkaio: operator: %w", err)
	}
	defer func() {
		if err != nil {
			s.task, s.inputs = nil, nil
		}
	}()
	parts := make(map[string][]int32, len(rt.st.inputs))
	for _, in := range rt.st.inputs {
		parts[in.topic] = append(parts[in.topic], s.p)
	}
	comm, err := fetchCommitted(rt.ctx, rt.groupCl, rt.st.group, parts)
	if err != nil {
		return err
	}
	resume := make([]int64, len(inputs))
	from := make([]int64, len(inputs))
	for i, in := range rt.st.inputs {
		c := comm[topicPartition{in.topic, s.p}]
		resume[i], from[i] = -1, -1
		if c.offset < 0 {
			continue // nothing committed: the task starts with the partition
		}
		f, err := inputs[i].restore(stream.Checkpoint{Offset: c.offset, Metadata: c.meta})
		if errors.Is(err, stream.ErrInvalidCheckpoint) {
			rt.log.Warn("kafkaio: committed offset without usable task state; starting there without a replay",
				"group", rt.st.group, "topic", in.topic, "partition", s.p, "offset", c.offset, "error", err)
		} else if err != nil {
			return err
		}
		resume[i], from[i] = c.offset, f
	}
	replayed := 0
	s.task, s.inputs = task, inputs
	for i, in := range rt.st.inputs {
		if from[i] < 0 {
			continue
		}
		err := readRange(rt.ctx, rt.replayer, in.topic, s.p, from[i], resume[i], rt.log.Warn, func(m *sarama.ConsumerMessage) error {
			replayed++
			return rt.push(s, i, m)
		})
		if err != nil {
			return err
		}
	}
	if err := task.EndReplay(); err != nil {
		rt.log.Error("kafkaio: replay does not match the checkpoint; results may differ from an uninterrupted run",
			"group", rt.st.group, "partition", s.p, "error", err)
	}
	relived := 0
	for i, in := range rt.st.inputs {
		if upTo == nil || upTo[i] < 0 {
			continue
		}
		f := resume[i]
		if f < 0 {
			f = s.first[i]
		}
		if f < 0 {
			continue
		}
		err := readRange(rt.ctx, rt.replayer, in.topic, s.p, f, upTo[i], rt.log.Warn, func(m *sarama.ConsumerMessage) error {
			relived++
			return rt.push(s, i, m)
		})
		if err != nil {
			return err
		}
	}
	rt.log.Info("kafkaio: task started", "group", rt.st.group, "partition", s.p, "committed", resume,
		"replayed", replayed, "reprocessed", relived, "watermark", task.Watermark(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// commit makes durable everything the tasks did since the last commit:
// exactly once, it commits the producer's transaction with every task's
// checkpoints; at least once, it flushes the sink and the dead-letter
// producer and then commits the checkpoints. A failed commit is recovered
// from like a crash (recoverAll).
func (rt *runtime) commit() error {
	if !rt.dirty {
		return nil
	}
	if rt.st.hooks.beforeCommit != nil && rt.st.hooks.beforeCommit() {
		return errCrashed
	}
	if err := rt.out.err(); err != nil {
		// A result was not written: committing would skip it.
		return rt.recoverAll(err)
	}
	offsets := rt.offsets()
	sess := rt.session()
	if sess == nil {
		return rt.recoverAll(errors.New("no group session"))
	}
	meta := sarama.NewConsumerGroupMetadataFromSession(sess, rt.st.group, rt.instanceID())
	var err error
	if rt.st.exactly {
		err = rt.prod.commit(offsets, meta)
	} else {
		err = rt.commitAtLeastOnce(offsets, meta)
	}
	if err != nil {
		return rt.recoverAll(err)
	}
	rt.committed()
	return nil
}

// committed records a successful commit.
func (rt *runtime) committed() {
	rt.dirty, rt.sinceCommit, rt.lastCommit = false, 0, time.Now()
	rt.st.stats.commits.Add(1)
	if obs := rt.st.cfg.latency; obs != nil {
		for _, b := range rt.fetched {
			obs(rt.lastCommit.Sub(b.at), b.n)
		}
		rt.fetched = rt.fetched[:0]
	}
}

// publishWatermark stores the smallest watermark of the running tasks that
// are not replaying, for Stats.
func (rt *runtime) publishWatermark() {
	wm, any := stream.MaxTime, false
	for _, s := range rt.slots {
		if s.task != nil && !s.task.Replaying() {
			wm, any = min(wm, s.task.Watermark()), true
		}
	}
	if !any {
		wm = stream.MinTime
	}
	rt.st.stats.watermark.Store(int64(wm))
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

func (rt *runtime) commitAtLeastOnce(offsets map[string][]*sarama.PartitionOffsetMetadata, meta *sarama.ConsumerGroupMetadata) error {
	if err := rt.out.err(); err != nil {
		return err
	}
	if rt.out.flush != nil {
		if err := rt.out.flush(rt.writes); err != nil {
			return fmt.Errorf("kafkaio: flush sink: %w", err)
		}
	}
	if rt.prod != nil {
		if err := rt.prod.flush(rt.writes); err != nil {
			return fmt.Errorf("kafkaio: dead-letter topic: %w", err)
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	return commitOffsets(rt.groupCl, rt.st.group, meta, offsets)
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

// offsets gathers the checkpoints of the running tasks.
func (rt *runtime) offsets() map[string][]*sarama.PartitionOffsetMetadata {
	out := make(map[string][]*sarama.PartitionOffsetMetadata, len(rt.st.inputs))
	for _, s := range rt.slots {
		if s.task == nil || s.task.Replaying() {
			continue
		}
		rt.cps = s.task.Checkpoints(rt.cps[:0])
		for _, c := range rt.cps {
			meta := c.Metadata
			topic := rt.st.inputs[c.Input].topic
			out[topic] = append(out[topic], &sarama.PartitionOffsetMetadata{Partition: s.p, Offset: c.Offset, Metadata: &meta, LeaderEpoch: -1})
		}
	}
	return out
}

// recoverAll treats a failed commit, a failed record or a failed sink like a
// crash of every task: the transaction is aborted (the producer recreated
// when it cannot), and each task is rebuilt from the committed offsets and
// fed again the records it had read since, so that their results go into
// the next transaction.
func (rt *runtime) recoverAll(cause error) error {
	if rt.ctx.Err() != nil {
		// Stopping: the open transaction is left to the broker's timeout
		// or the next incarnation; nothing more is committed.
		return nil
	}
	rt.st.stats.aborts.Add(1)
	rt.log.Warn("kafkaio: commit failed; aborting and rebuilding the tasks from the committed offsets",
		"group", rt.st.group, "tasks", len(rt.slots), "error", cause)
	// Aborts in a row (a broker or a coordinator that is not back yet, a
	// membership sarama has not noticed it lost) back off before the tasks
	// are rebuilt, up to 5 s.
	if time.Since(rt.lastAbort) < 10*time.Second {
		rt.abortBackoff = min(max(2*rt.abortBackoff, 100*time.Millisecond), 5*time.Second)
		select {
		case <-rt.ctx.Done():
			return nil
		case <-time.After(rt.abortBackoff):
		}
	} else {
		rt.abortBackoff = 0
	}
	defer func() { rt.lastAbort = time.Now() }()
	rt.out.reset()
	if rt.prod != nil {
		if err := rt.resetProducer(); err != nil {
			return err
		}
	}
	rt.dirty, rt.sinceCommit = false, 0
	for _, s := range rt.slots {
		if s.task == nil {
			continue
		}
		if s.leaving {
			s.task, s.inputs = nil, nil
			rt.st.stats.tasks.Add(-1)
			continue
		}
		upTo := make([]int64, len(s.inputs))
		for i, in := range s.inputs {
			upTo[i] = -1
			if n, ok := in.next(); ok {
				upTo[i] = n
			}
		}
		s.task, s.inputs = nil, nil
		rt.st.stats.tasks.Add(-1)
		if err := rt.build(s, upTo); err != nil {
			return err
		}
		rt.st.stats.rebuilds.Add(1)
		rt.dirty = true
	}
	return nil
}

// fencedAgain records that the producer was fenced and reports whether it
// has been more than 5 times in the last minute: a producer whose
// transaction timed out is fenced once, one that shares its transactional
// id with a live member is fenced each time the other starts a transaction.
func (rt *runtime) fencedAgain() bool {
	now := time.Now()
	keep := rt.fencings[:0]
	for _, t := range rt.fencings {
		if now.Sub(t) < time.Minute {
			keep = append(keep, t)
		}
	}
	rt.fencings = append(keep, now)
	return len(rt.fencings) > 5
}

// stopGrace is how long a graceful stop waits for the results in flight
// and the final commit.
const stopGrace = 30 * time.Second

// errCrashed stops the loop as a crash would (tests).
var errCrashed = errors.New("kafkaio: stage crashed (test)")

// resetProducer aborts the open transaction or, when that fails, replaces
// the producer (a new one fences the old and ends its transaction).
func (rt *runtime) resetProducer() error {
	if rt.st.exactly {
		err := rt.prod.abort()
		if err == nil {
			return nil
		}
		if fenced(err) {
			// The coordinator bumped the producer's epoch: it aborted the
			// transaction after its timeout (an outage outlasted it), or a
			// producer with the same transactional id started. A new
			// producer takes over the id; fencedAgain tells the cases apart.
			if rt.fencedAgain() {
				return fmt.Errorf("kafkaio: stage %q: producer %q fenced again and again: another member runs with the same transactional id (instance id %q): %w",
					rt.st.group, rt.txID, rt.st.cfg.instanceID, err)
			}
			rt.log.Warn("kafkaio: producer fenced (its transaction timed out, or another producer took its id); replacing it",
				"group", rt.st.group, "transactional_id", rt.txID, "error", err)
		} else {
			rt.log.Warn("kafkaio: abort failed; replacing the producer", "group", rt.st.group, "error", err)
		}
	} else if err := rt.prod.begin(); err == nil {
		_ = rt.prod.flush(rt.writes)
		return rt.prod.begin()
	}
	_ = rt.prod.close()
	rt.prod = nil
	return rt.newProducer()
}

// stop ends the loop: a graceful stop commits what is done, then closes the
// group (the claims end and are acknowledged without waiting for the loop)
// and the clients.
func (rt *runtime) stop(cause error) error {
	if errors.Is(cause, errCrashed) {
		rt.crash()
		return cause
	}
	if cause == nil && rt.dirty {
		if err := rt.finalCommit(); err != nil {
			cause = err
		}
	}
	rt.endWrites()
	close(rt.dead)
	if rt.group != nil {
		if err := rt.group.Close(); err != nil && cause == nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
			rt.log.Warn("kafkaio: close consumer group", "group", rt.st.group, "error", err)
		}
	}
	if rt.prod != nil {
		_ = rt.prod.close()
	}
	rt.closeClients()
	rt.st.stats.tasks.Store(0)
	if cause != nil {
		rt.log.Error("kafkaio: stage failed", "group", rt.st.group, "error", cause, "stats", fmt.Sprintf("%+v", rt.st.Stats()))
	} else {
		rt.log.Info("kafkaio: stage stopped", "group", rt.st.group, "stats", fmt.Sprintf("%+v", rt.st.Stats()))
	}
	return cause
}

// finalCommit commits on a context that is not cancelled, once: a failure
// is reported, not recovered from.
func (rt *runtime) finalCommit() error {
	if err := rt.out.err(); err != nil {
		return fmt.Errorf("kafkaio: stage %q: no final commit, a result was not written: %w (the next owner processes it again)", rt.st.group, err)
	}
	ctx := rt.ctx
	rt.ctx = context.WithoutCancel(ctx)
	defer func() { rt.ctx = ctx }()
	offsets := rt.offsets()
	sess := rt.session()
	if sess == nil {
		return nil
	}
	meta := sarama.NewConsumerGroupMetadataFromSession(sess, rt.st.group, rt.instanceID())
	var err error
	if rt.st.exactly {
		err = rt.prod.commit(offsets, meta)
	} else {
		err = rt.commitAtLeastOnce(offsets, meta)
	}
	if err != nil {
		return fmt.Errorf("kafkaio: stage %q: final commit: %w (what it covered is processed again by the next owner)", rt.st.group, err)
	}
	rt.committed()
	return nil
}

// crash stops the stage as a crash would, for tests: no commit, no abort, no
// goodbye to the group. The producer is stopped first, so that its records
// in flight end as a crash leaves them, sent or not, in a transaction that
// never commits (the next incarnation's producer aborts it); closing the
// clients under a live transactional producer would fail every record at
// once, which trips a data race inside sarama (see the package doc).
func (rt *runtime) crash() {
	rt.endWrites()
	close(rt.dead)
	if rt.prod != nil {
		_ = rt.prod.close()
	}
	rt.closeClients()
	if rt.group != nil {
		_ = rt.group.Close()
	}
	rt.st.stats.tasks.Store(0)
}

func (rt *runtime) closeClients() {
	for _, c := range []sarama.Client{rt.prodCl, rt.replayCl, rt.groupCl} {
		if c != nil && !c.Closed() {
			_ = c.Close()
		}
	}
}
