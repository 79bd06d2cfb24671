package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// FollowStart says where a Follower begins in each partition it finds when
// it starts: FromEnd or FromOldest. The zero FollowStart is FromEnd(0).
type FollowStart struct {
	back int64 // committed records before the end; -1: from the oldest
	err  error
}

// FromEnd starts n committed records before the end of each partition: a
// Follower delivers the last n records that read_committed consumers can
// see (all of them when the partition holds fewer), then what is committed
// later. Transaction markers and the records of aborted transactions do not
// count, so n is a number of records, not of offsets: to find where the
// last n begin, Start reads them once (backwards, through fetches of its
// own, skipping further back past markers and aborted records) before they
// are delivered. FromEnd(0) delivers only the records committed after
// Start. n must not be negative.
func FromEnd(n int64) FollowStart {
	if n < 0 {
		return FollowStart{err: fmt.Errorf("%w: FromEnd(%d), want 0 or more records", ErrInvalidOption, n)}
	}
	return FollowStart{back: n}
}

// FromOldest starts at the oldest record each partition holds.
func FromOldest() FollowStart { return FollowStart{back: -1} }

// FollowerStats counts what a Follower delivered since it started.
type FollowerStats struct {
	Records    uint64 // records delivered: returned by Poll or handed to Run's function
	Partitions int64  // partitions followed
	// Lag is the sum, over the partitions followed, of the offsets between
	// the next record to deliver and the partition's end, as of the latest
	// fetch. The end counts transaction markers, which a read_committed
	// reader never receives: a caught-up Follower of a transactional topic
	// shows up to one per partition.
	Lag int64
	// Outages counts the times the Follower lost the brokers (each is
	// logged when it begins and when it ends).
	Outages uint64
	// Topics are the counters of each topic, in the order NewFollower was
	// given them.
	Topics []FollowerTopicStats
}

// FollowerTopicStats are a Follower's counters of one topic.
type FollowerTopicStats struct {
	Topic      string
	Records    uint64 // records of the topic delivered
	Partitions int64  // partitions of the topic followed
	Lag        int64  // as FollowerStats.Lag, over the topic's partitions
}

// Follower reads one or more topics as any downstream consumer would, to
// watch what a stage writes (a view, a dashboard, a test): read_committed,
// without a consumer group and without committing offsets. It reads every
// partition of its topics, from where its FollowStart says, and picks up the
// partitions added to a topic while it runs (it looks every few seconds),
// reading those from their oldest record. Records of a transaction are
// delivered once it commits, in offset order with the rest of their
// partition; those of an aborted transaction never are.
//
// Records come in offset order within each partition, and in no particular
// order across partitions. They can be pulled with Poll, which fills a
// buffer as stream.Source's Poll does, for callers that read until they have
// what they want (a test waiting for N records) or that run their own loop;
// or handled one by one with Run, for callers that handle every record until
// told to stop (a view). Both deliver on the calling goroutine, so a handler
// needs no locking for state only it touches, and can keep a decoder per
// topic; Run is a loop over Poll, and the two may be mixed.
//
// Start connects, checks that every topic exists and fixes where each
// partition begins; Poll and Run call it when it has not been called. A
// broker that is not up, or goes away, is waited for with capped backoff (250
// ms, doubling to 5 s), with one log line when the trouble begins and one
// when it ends; the Follower resumes where it was, with nothing lost or
// delivered twice. A topic that does not exist when it starts is an error
// (one wrapping sarama.ErrUnknownTopicOrPartition that names the topic).
// Records that retention deletes before the Follower reads them are skipped,
// with a warning.
//
// The records delivered are the caller's: the Follower never reuses or
// changes them (sarama allocates each one). Their Key and Value may share
// memory with the rest of the fetch they came in, so a caller that keeps a
// few records among many for a long time copies what it keeps. Apart from
// sarama's allocation of each record, delivering a record allocates nothing.
//
// A goroutine per partition takes the records of sarama's partition
// consumer and hands them to Poll through a buffer of 256 records; another
// one looks for new partitions. Poll and Run belong
// to one goroutine at a time; Start, Stats and Close may be called from any
// goroutine at any time, and Close ends a Poll, Run or Start in progress
// (they return ErrClosed).
type Follower struct {
	topics []string
	start  FollowStart
	log    *slog.Logger
	cfg    *sarama.Config // the consumer's: read_committed, errors returned, backoff
	given  sarama.Client  // the caller's client, or nil
	addrs  []string       // WithBrokers: the Follower dials its own client

	// discoverEvery is how often the Follower looks for new partitions
	// (and, during an outage, whether the brokers answer again).
	discoverEvery time.Duration

	startMu sync.Mutex // serializes Start

	mu      sync.Mutex // guards client, cons and the transitions of running and closed
	client  sarama.Client
	cons    sarama.Consumer
	running atomic.Bool
	closed  atomic.Bool
	stop    chan struct{} // closed by Close
	wg      sync.WaitGroup

	records chan delivery
	parts   atomic.Pointer[[]*followPart] // copy on write
	known   map[followKey]bool            // the partitions followed; the discovery goroutine's after Start

	out outage

	// The polling goroutine's.
	scratch []delivery
	pending []delivery // taken by Run but not handed to its function, which failed
}

// delivery is a record on its way from a partition's goroutine to Poll.
type delivery struct {
	m *sarama.ConsumerMessage
	p *followPart
}

// followKey names a partition a Follower follows.
type followKey struct {
	topic     string
	partition int32
}

// followPart is a partition a Follower follows.
type followPart struct {
	topic     string
	ti        int // the topic's index in Follower.topics
	partition int32
	records   atomic.Uint64
	next      atomic.Int64 // the offset after the last record delivered
	hwm       atomic.Int64 // the high-water mark as of the latest fetch
}

// Follower defaults.
const (
	followDiscoverEvery = 5 * time.Second
	followBuffer        = 256 // records between the partitions' goroutines and Poll
	followRunBatch      = 64  // records Run takes at a time
	followBackoffMin    = 250 * time.Millisecond
	followBackoffMax    = 5 * time.Second
)

// NewFollower returns a Follower of topics that starts where start says. It
// reads through client, which stays the caller's (close it after the
// Follower), or, with WithBrokers instead (client nil), through a client of
// its own that it closes in Close. Either way it reads read_committed,
// whatever the config says: it uses a copy of the config with the isolation
// level set, errors returned to it and, unless the config has a
// Consumer.Retry.BackoffFunc, its capped backoff. A client it makes never
// creates topics; a client of the caller's whose config lets metadata
// requests create them (sarama's default, unlike NewConfig) may create a
// missing topic on a broker that allows it, instead of reporting it. The
// options are WithBrokers and WithLogger (the log lines of outages, lost
// records and new partitions). NewFollower does no I/O: Start connects.
func NewFollower(client sarama.Client, topics []string, start FollowStart, opts ...FollowerOption) (*Follower, error) {
	var c common
	for _, o := range opts {
		if o != nil {
			o.applyFollower(&c)
		}
	}
	switch {
	case len(c.errs) > 0:
		return nil, c.errs[0]
	case start.err != nil:
		return nil, start.err
	case len(topics) == 0:
		return nil, fmt.Errorf("%w: a Follower without topics", ErrInvalidOption)
	case c.dial && client != nil:
		return nil, fmt.Errorf("%w: both a client and WithBrokers", ErrInvalidOption)
	case !c.dial && client == nil:
		return nil, fmt.Errorf("%w: nil client and no WithBrokers", ErrInvalidOption)
	case client != nil && client.Closed():
		return nil, fmt.Errorf("%w: the client is closed", ErrInvalidOption)
	}
	seen := make(map[string]bool, len(topics))
	for _, t := range topics {
		if t == "" || seen[t] {
			return nil, fmt.Errorf("%w: topic %q empty or given twice", ErrInvalidOption, t)
		}
		seen[t] = true
	}
	base := c.config
	if client != nil {
		base = client.Config()
	}
	if base == nil {
		var err error
		if base, err = NewConfig(); err != nil {
			return nil, err
		}
	}
	cfg := followConfig(base)
	if !cfg.Version.IsAtLeast(sarama.V0_11_0_0) {
		return nil, fmt.Errorf("%w: protocol version %v cannot read read_committed (0.11 or later)", ErrInvalidConfig, cfg.Version)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	log := c.logger
	if log == nil {
		log = slog.Default()
	}
	return &Follower{
		topics: slices.Clone(topics), start: start, log: log, cfg: cfg, given: client, addrs: c.brokers,
		discoverEvery: followDiscoverEvery, stop: make(chan struct{}), records: make(chan delivery, followBuffer),
		known: make(map[followKey]bool),
	}, nil
}

// followConfig returns the config of a Follower's consumer: a copy of base
// that reads read_committed, returns errors and backs off as the Follower
// does.
func followConfig(base *sarama.Config) *sarama.Config {
	c := *base
	c.Consumer.IsolationLevel = sarama.ReadCommitted
	c.Consumer.Return.Errors = true
	c.Metadata.AllowAutoTopicCreation = false
	if c.Consumer.Retry.BackoffFunc == nil {
		c.Consumer.Retry.BackoffFunc = followBackoff
	}
	return &c
}

// followBackoff is the wait before retry number n (1, 2, ...): 250 ms,
// doubling, at most 5 s.
func followBackoff(n int) time.Duration {
	return min(followBackoffMin<<min(max(n-1, 0), 5), followBackoffMax)
}

// Start connects (WithBrokers: waiting for the brokers while ctx lasts),
// checks that every topic exists and fixes where each partition begins;
// the Follower then fetches in the background until Close. It returns an
// error wrapping sarama.ErrUnknownTopicOrPartition for a topic that does
// not exist, one wrapping ctx.Err() when ctx ends first, and ErrClosed after
// Close. Start on a started Follower does nothing; Poll and Run call it
// when needed.
func (f *Follower) Start(ctx context.Context) error {
	f.startMu.Lock()
	defer f.startMu.Unlock()
	if f.closed.Load() {
		return ErrClosed
	}
	if f.running.Load() {
		return nil
	}
	client, err := f.connect(ctx)
	if err != nil {
		return err
	}
	drop := func() {
		if f.given == nil {
			_ = client.Close()
		}
	}
	if err := f.checkTopics(ctx, client); err != nil {
		drop()
		return err
	}
	var parts []*followPart
	var from []int64
	for ti, topic := range f.topics {
		ids, err := client.Partitions(topic)
		if err != nil {
			drop()
			return fmt.Errorf("kafkaio: follower: partitions of %q: %w", topic, err)
		}
		for _, id := range ids {
			p := &followPart{topic: topic, ti: ti, partition: id}
			off, hwm, err := f.startOffset(ctx, client, p)
			if err != nil {
				drop()
				return err
			}
			p.next.Store(off)
			p.hwm.Store(hwm)
			parts = append(parts, p)
			from = append(from, off)
		}
	}
	cons, err := sarama.NewConsumerFromClient(configured{Client: client, cfg: f.cfg})
	if err != nil {
		drop()
		return fmt.Errorf("%w: consumer: %w", ErrInvalidConfig, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed.Load() {
		_ = cons.Close()
		drop()
		return ErrClosed
	}
	f.client, f.cons = client, cons
	f.parts.Store(&parts)
	for i, p := range parts {
		f.known[followKey{p.topic, p.partition}] = true
		f.wg.Add(1)
		go f.follow(p, from[i])
	}
	f.wg.Add(1)
	go f.discover()
	f.running.Store(true)
	f.log.Debug("kafkaio: follower started", "topics", f.topics, "partitions", len(parts))
	return nil
}

// configured is a client whose Config is the Follower's: sarama's consumer
// takes its settings (isolation level, errors, backoff) from the Config of
// its client, which may be the caller's.
type configured struct {
	sarama.Client
	cfg *sarama.Config
}

func (c configured) Config() *sarama.Config { return c.cfg }

// connect returns the caller's client, or dials one, waiting for the
// brokers with capped backoff while ctx lasts.
func (f *Follower) connect(ctx context.Context) (sarama.Client, error) {
	if f.given != nil {
		return f.given, nil
	}
	for attempt := 1; ; attempt++ {
		c, err := sarama.NewClient(f.addrs, f.cfg)
		if err == nil {
			f.out.over(f, true)
			return c, nil
		}
		var ce sarama.ConfigurationError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		f.out.trouble(f, err, "connect", "brokers", f.addrs)
		if serr := f.sleep(ctx, followBackoff(attempt)); serr != nil {
			return nil, fmt.Errorf("kafkaio: follower: connect to %v: %w (last error: %w)", f.addrs, serr, err)
		}
	}
}

// checkTopics waits until the metadata of every topic is known; a topic
// that does not exist, or that the client may not read, is an error.
func (f *Follower) checkTopics(ctx context.Context, client sarama.Client) error {
	for attempt := 1; ; attempt++ {
		err := client.RefreshMetadata(f.topics...)
		if err == nil {
			f.out.over(f, true)
			return nil
		}
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			var missing []string
			for _, t := range f.topics {
				if ps, err := client.Partitions(t); errors.Is(err, sarama.ErrUnknownTopicOrPartition) || (err == nil && len(ps) == 0) {
					missing = append(missing, t)
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("kafkaio: follower: topics %q do not exist: %w", missing, sarama.ErrUnknownTopicOrPartition)
			}
		}
		if permanent(err) {
			return fmt.Errorf("kafkaio: follower: topics %q: %w", f.topics, err)
		}
		f.out.trouble(f, err, "metadata", "topics", f.topics)
		if serr := f.sleep(ctx, followBackoff(attempt)); serr != nil {
			return fmt.Errorf("kafkaio: follower: metadata of %q: %w (last error: %w)", f.topics, serr, err)
		}
	}
}

// permanent reports whether err is one that waiting does not fix.
func permanent(err error) bool {
	var ce sarama.ConfigurationError
	return errors.As(err, &ce) || errors.Is(err, sarama.ErrClosedClient) ||
		errors.Is(err, sarama.ErrTopicAuthorizationFailed) || errors.Is(err, sarama.ErrClusterAuthorizationFailed) ||
		errors.Is(err, sarama.ErrSASLAuthenticationFailed) || errors.Is(err, sarama.ErrInvalidTopic) ||
		errors.Is(err, sarama.ErrUnsupportedVersion)
}

// sleep waits for d; it returns ctx's error, or ErrClosed, when either ends
// the wait first.
func (f *Follower) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-f.stop:
		return ErrClosed
	}
}

// Poll blocks until at least one record is available, fills buf from the
// front and returns how many records it wrote, as stream.Source's Poll
// does. It starts the Follower if needed (see Start). It returns an error
// wrapping ctx.Err() when ctx is done (at once when ctx is done already),
// ErrClosed once the Follower is closed, and Start's error when starting
// fails. buf must not be empty.
func (f *Follower) Poll(ctx context.Context, buf []*sarama.ConsumerMessage) (int, error) {
	if len(buf) == 0 {
		return 0, fmt.Errorf("%w: Poll with an empty buffer", ErrInvalidOption)
	}
	if err := f.ready(ctx); err != nil {
		return 0, err
	}
	n, err := f.take(ctx, len(buf))
	for i, d := range f.scratch[:n] {
		buf[i] = d.m
		d.p.delivered(d.m)
	}
	return n, err
}

// Run calls fn with every record, in the order Poll would return them,
// until ctx is done, fn fails or the Follower is closed. It starts the
// Follower if needed (see Start). It returns fn's error as it is, an error
// wrapping ctx.Err() when ctx is done, ErrClosed once the Follower is
// closed, or Start's error. After Run returns the Follower goes on: a
// later Poll or Run delivers the records that come after the last one fn
// was given. fn runs on Run's goroutine.
func (f *Follower) Run(ctx context.Context, fn func(m *sarama.ConsumerMessage) error) error {
	if fn == nil {
		return fmt.Errorf("%w: Run with a nil function", ErrInvalidOption)
	}
	if err := f.ready(ctx); err != nil {
		return err
	}
	done := ctx.Done()
	for {
		n, err := f.take(ctx, followRunBatch)
		if err != nil {
			return err
		}
		for i, d := range f.scratch[:n] {
			select {
			case <-done:
				f.pending = slices.Insert(f.pending, 0, f.scratch[i:n]...)
				return fmt.Errorf("kafkaio: follower: %w", ctx.Err())
			default:
			}
			d.p.delivered(d.m)
			if err := fn(d.m); err != nil {
				f.pending = slices.Insert(f.pending, 0, f.scratch[i+1:n]...)
				return err
			}
		}
	}
}

// ready starts the Follower if it has not started.
func (f *Follower) ready(ctx context.Context) error {
	if f.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafkaio: follower: %w", err)
	}
	if f.running.Load() {
		return nil
	}
	return f.Start(ctx)
}

// take puts up to max records into f.scratch, the ones Run left first,
// waiting for one when there are none.
func (f *Follower) take(ctx context.Context, max int) (int, error) {
	f.scratch = f.scratch[:0]
	if len(f.pending) > 0 {
		k := min(max, len(f.pending))
		f.scratch = append(f.scratch, f.pending[:k]...)
		f.pending = f.pending[:copy(f.pending, f.pending[k:])]
		return k, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("kafkaio: follower: %w", err)
	}
	select {
	case d := <-f.records:
		f.scratch = append(f.scratch, d)
	case <-ctx.Done():
		return 0, fmt.Errorf("kafkaio: follower: %w", ctx.Err())
	case <-f.stop:
		return 0, ErrClosed
	}
	for len(f.scratch) < max {
		select {
		case d := <-f.records:
			f.scratch = append(f.scratch, d)
		default:
			return len(f.scratch), nil
		}
	}
	return len(f.scratch), nil
}

func (p *followPart) delivered(m *sarama.ConsumerMessage) {
	p.records.Add(1)
	p.next.Store(m.Offset + 1)
}

// Stats returns the Follower's counters; it does not block. Before Start
// they are all zero.
func (f *Follower) Stats() FollowerStats {
	st := FollowerStats{Outages: f.out.count.Load(), Topics: make([]FollowerTopicStats, len(f.topics))}
	for i, t := range f.topics {
		st.Topics[i].Topic = t
	}
	if parts := f.parts.Load(); parts != nil {
		for _, p := range *parts {
			ts := &st.Topics[p.ti]
			ts.Partitions++
			ts.Records += p.records.Load()
			ts.Lag += max(p.hwm.Load()-p.next.Load(), 0)
		}
	}
	for _, ts := range st.Topics {
		st.Partitions += ts.Partitions
		st.Records += ts.Records
		st.Lag += ts.Lag
	}
	return st
}

// Close stops the Follower: it ends a Poll, Run or Start in progress, stops
// fetching and, when it made its client (WithBrokers), closes it. It waits
// for the requests in flight (within the client's timeouts). Close may be
// called more than once, from any goroutine; the calls after the first
// return nil.
func (f *Follower) Close() error {
	f.mu.Lock()
	if f.closed.Load() {
		f.mu.Unlock()
		return nil
	}
	f.closed.Store(true)
	close(f.stop)
	client, cons := f.client, f.cons
	f.mu.Unlock()
	f.wg.Wait()
	var errs []error
	if cons != nil {
		errs = append(errs, cons.Close()) // a consumer from a client leaves the client open
	}
	if client != nil && f.given == nil {
		errs = append(errs, client.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kafkaio: follower: close: %w", err)
	}
	return nil
}

// outage tracks broker trouble: one log line when it begins, one when it
// ends.
type outage struct {
	on    atomic.Bool // an outage is in progress
	count atomic.Uint64
	mu    sync.Mutex
	began time.Time
	last  time.Time // the latest error
	errs  int
}

// followQuiet is how long after the latest error an outage is over when the
// brokers answer a metadata request but no record has come: longer than the
// longest backoff, after which every partition has retried.
const followQuiet = followBackoffMax + time.Second

// trouble records an error; the first of an outage is logged.
func (o *outage) trouble(f *Follower, err error, what string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	o.last = now
	o.errs++
	if o.on.Load() {
		return
	}
	o.on.Store(true)
	o.began, o.errs = now, 1
	o.count.Add(1)
	f.log.Warn("kafkaio: follower: cannot read from the brokers; retrying with backoff",
		append([]any{"topics", f.topics, "while", what, "error", err}, args...)...)
}

// over ends the outage in progress, if any: at once when sure (a record
// came, a request succeeded on the path that failed), or when the brokers
// answer and no error came for followQuiet.
func (o *outage) over(f *Follower, sure bool) {
	if !o.on.Load() {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.on.Load() || (!sure && time.Since(o.last) < followQuiet) {
		return
	}
	o.on.Store(false)
	f.log.Info("kafkaio: follower: reading from the brokers again", "topics", f.topics,
		"after", time.Since(o.began).Round(time.Millisecond), "errors", o.errs)
}
