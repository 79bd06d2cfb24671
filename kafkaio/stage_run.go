package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/internal/backoff"
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
	outputs   []outputWriter // the stage's, bound to this runtime

	groupCl, prodCl, replayCl sarama.Client
	group                     sarama.ConsumerGroup
	replayer                  sarama.Consumer
	lookup                    sarama.Consumer // reads the input record of a refused result; nil until needed
	tx                        *txn            // the transactional producer, or the dead-letter producer; nil without either

	events   chan event
	dead     chan struct{} // closed when the loop is gone: claims must not wait for it
	consumed chan error    // the consume goroutine's end
	crashed  chan struct{} // tests: stop as a crash would

	parts       map[int32]*partitionTask
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

	lastProbe time.Time       // of the lags (stage_lag.go)
	caughtUp  atomic.Int64    // for WaitCaughtUp: since when (unix nanoseconds) the brokers confirm it, or 0
	kinds     map[string]bool // kinds of decode errors already logged
	lastAbort time.Time
	aborts    *backoff.Backoff // between aborts in a row

	// What the loop is working on: the partition task that runs, and the batch
	// of records it pushes, for the origin of a refused result.
	cur      *partitionTask
	curBatch []*sarama.ConsumerMessage

	// The topics the stage writes (stage_topics.go), and the largest record
	// its producer and its dead-letter topic take.
	outTopics     map[string]*outTopic
	producerMax   int
	deadLetterMax int
	batchLimits   batchLimits // topics with a limit below producerMax

	// Results that cannot be written (stage_refused.go): the inputs
	// dead-lettered in the current transaction; the results the brokers
	// refused, to send alone when they come again, and those refused alone
	// (poison); the results written to a sink since the last commit.
	refusedInputs map[originKey]struct{}
	suspects      map[outputID]struct{}
	poison        map[outputID]error
	written       []writtenResult
}

// claimRef is a partition claimed in the current generation.
type claimRef struct {
	input     int
	topic     string
	partition int32
	ready     chan struct{} // closed when the task runs: the claim may deliver
	lag       atomic.Int64  // offsets between its last record and the partition's end
	// For the probe (stage_lag.go): the last offset delivered, the
	// partition's end then, when (unix nanoseconds, 0 before the claim
	// starts), when the probe last asked, and since when the claim is
	// quiet, confirmed by the brokers (0: not confirmed).
	last, hwm, fedAt, probedAt, quiet atomic.Int64
	// processed is the last offset the task has processed: the probe asks
	// what lies beyond it, so that records delivered but still waiting for
	// the loop are never taken for a quiet input.
	processed   atomic.Int64
	confirmed   atomic.Bool  // the brokers said the current quiet spell is one
	confirmedAt atomic.Int64 // when they last said so
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
//
// Run's goroutines, and those its clients start, carry the profiler label
// tidemark.stage=<group> (runtime/pprof): in a process that runs several
// stages, `go tool pprof -tagfocus tidemark.stage=<group>` shows one
// stage's CPU.
func (s *Stage) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return ErrStageRunning
	}
	return s.run(ctx)
}

// ProfileLabel is the runtime/pprof label that a Stage's goroutines carry,
// its value the stage's group.
const ProfileLabel = "tidemark.stage"

// run is Run once the stage is marked as started (Run and Start).
func (s *Stage) run(ctx context.Context) (err error) {
	pprof.Do(ctx, pprof.Labels(ProfileLabel, s.group), func(ctx context.Context) {
		var rt *runtime
		if rt, err = s.start(ctx); err != nil {
			return
		}
		s.stats.watermark.Store(int64(stream.MinTime))
		s.rt.Store(rt)
		err = rt.loop()
	})
	return err
}

// replaying reports whether the task that runs now replays: its results
// are not written.
func (rt *runtime) replaying() bool {
	return rt.cur != nil && rt.cur.task != nil && rt.cur.task.Replaying()
}

// outErr returns the first error of the outputs since the last reset.
func (rt *runtime) outErr() error {
	for _, o := range rt.outputs {
		if err := o.err(); err != nil {
			return err
		}
	}
	return nil
}

// resetOutputs forgets the outputs' errors, after an abort.
func (rt *runtime) resetOutputs() {
	for _, o := range rt.outputs {
		o.reset()
	}
}

// flushSinks flushes the outputs to sinks; the inputs of results they
// refused are dead-lettered.
func (rt *runtime) flushSinks() error {
	for _, o := range rt.outputs {
		if o.toKafka() {
			continue
		}
		if err := rt.sinkRejections(o.flush(rt.writes)); err != nil {
			if stops(err) {
				return err
			}
			return fmt.Errorf("kafkaio: flush sink: %w", err)
		}
	}
	return nil
}

// txID is the transactional id of the stage's producer, "" if none.
func (rt *runtime) txID() string {
	if rt.tx == nil {
		return ""
	}
	return rt.tx.id
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
	if rt.tx != nil {
		failed = rt.tx.failedCh()
	}
	for {
		select {
		case ev := <-rt.events:
			if err := rt.handle(ev); err != nil {
				return rt.stop(err)
			}
		case now := <-tick.C:
			if rt.st.cfg.idle > 0 {
				if err := rt.idle(now); err != nil {
					return rt.stop(err)
				}
			}
			if rt.dirty && time.Since(rt.lastCommit) >= rt.st.cfg.commitInterval {
				if err := rt.commit(); err != nil {
					return rt.stop(err)
				}
			}
			if now.Sub(rt.lastProbe) >= quietBeforeProbe/4 {
				rt.lastProbe = now
				rt.probeClaims(now)
			}
			rt.updateCaughtUp()
		case <-failed:
			// A record failed: the transaction cannot commit. Recover now
			// rather than at the next commit.
			if err := rt.recoverAll(fmt.Errorf("produce failed: %w", rt.tx.err())); err != nil {
				return rt.stop(err)
			}
		case err := <-rt.consumed:
			if err != nil {
				return rt.stop(err)
			}
			return rt.stop(nil)
		case <-rt.crashed:
			return rt.stop(ErrCrashed)
		case <-rt.ctx.Done():
			return rt.stop(nil)
		}
		if rt.tx != nil {
			failed = rt.tx.failedCh()
		}
	}
}

func (rt *runtime) handle(ev event) error {
	rt.caughtUp.Store(0) // until the next tick says otherwise
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
	s := rt.parts[ev.c.partition]
	if s == nil || s.claims[ev.c.input] != ev.c || s.task == nil {
		return nil // a claim that ended meanwhile
	}
	in := s.inputs[ev.c.input]
	rt.cur, rt.curBatch = s, *ev.msgs
	for _, m := range *ev.msgs {
		if _, ok := in.next(); !ok && s.first[ev.c.input] < 0 {
			s.first[ev.c.input] = m.Offset
		}
		if err := s.push(rt, ev.c.input, m); err != nil {
			rt.cur, rt.curBatch = nil, nil
			return err
		}
	}
	rt.cur, rt.curBatch = nil, nil
	n := len(*ev.msgs)
	// A quiet spell starts when the task has the claim's records, not when
	// they were fetched: they may have waited for the loop.
	ev.c.processed.Store((*ev.msgs)[n-1].Offset)
	ev.c.quiet.Store(time.Now().UnixNano())
	ev.c.confirmed.Store(false)
	rt.publishWatermark() // before the count: Stats never shows the records without their watermark
	rt.st.stats.records.add(uint64(n))
	if rt.st.cfg.latency != nil {
		rt.fetched = append(rt.fetched, fetchedBatch{at: ev.at, n: n})
	}
	rt.dirty = true
	rt.sinceCommit += n
	if rt.st.hooks.afterBatch != nil {
		rt.st.hooks.afterBatch()
	}
	if err := rt.outErr(); err != nil {
		return rt.recoverAll(err)
	}
	if rt.st.cfg.commitRecords > 0 && rt.sinceCommit >= rt.st.cfg.commitRecords {
		return rt.commit()
	}
	return nil
}

// idle advances the watermark of every task input that has had no record
// for the idle timeout (WithIdleAdvance) by the wall time since its last
// record; what that emits is committed at the next commit.
func (rt *runtime) idle(now time.Time) error {
	before := rt.produced()
	for _, s := range rt.parts {
		rt.cur = s
		s.idle(rt, now, rt.st.cfg.idle)
		rt.cur = nil
	}
	if rt.produced() != before {
		rt.dirty = true
		rt.publishWatermark()
	}
	if err := rt.outErr(); err != nil {
		return rt.recoverAll(err)
	}
	return nil
}

// produced counts the records the stage has produced or refused, to tell
// whether something happened.
func (rt *runtime) produced() uint64 {
	c := &rt.st.stats
	return c.emitted.total.Load() + c.deadLettered.total.Load() + c.refused.total.Load()
}

// publishWatermark stores the smallest watermark of the running tasks that
// are not replaying, for Stats.
func (rt *runtime) publishWatermark() {
	wm, any := stream.MaxTime, false
	for _, s := range rt.parts {
		if s.task != nil && !s.task.Replaying() {
			wm, any = min(wm, s.task.Watermark()), true
		}
	}
	if !any {
		wm = stream.MinTime
	}
	rt.st.stats.watermark.Store(int64(wm))
}

// stopGrace is how long a graceful stop waits for the results in flight
// and the final commit.
const stopGrace = 30 * time.Second

// stop ends the loop: a graceful stop commits what is done, then closes the
// group (the claims end and are acknowledged without waiting for the loop)
// and the clients.
func (rt *runtime) stop(cause error) error {
	if errors.Is(cause, ErrCrashed) {
		rt.crash()
		return cause
	}
	if cause == nil && rt.dirty {
		if err := rt.finalCommit(); err != nil {
			cause = err
		}
	}
	if cause != nil && rt.tx != nil && rt.st.exactly && stops(cause) {
		// Nothing of the open transaction may become visible past the
		// record that stops the stage; an abort says so at once, rather
		// than when the transaction times out.
		_ = rt.tx.abort()
	}
	rt.endWrites()
	close(rt.dead)
	if rt.group != nil {
		if err := rt.group.Close(); err != nil && cause == nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
			rt.log.Warn("kafkaio: close consumer group", "group", rt.st.group, "error", err)
		}
	}
	rt.tx.close()
	rt.closeClients()
	rt.st.stats.tasks.Store(0)
	if cause != nil {
		rt.log.Error("kafkaio: stage failed", "group", rt.st.group, "error", cause, "stats", fmt.Sprintf("%+v", rt.st.Stats()))
	} else {
		rt.log.Info("kafkaio: stage stopped", "group", rt.st.group, "stats", fmt.Sprintf("%+v", rt.st.Stats()))
	}
	return cause
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
	rt.tx.close()
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
