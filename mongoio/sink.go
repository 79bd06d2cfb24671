package mongoio

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
)

// Route says where and what to write for one record.
type Route struct {
	// Collection is the collection of the sink's database to write to. It
	// must be a valid collection name: not empty, without '$' or NUL, not
	// starting with "system.".
	Collection string

	// ID is the document's _id, the key of the upsert. nil means the _id
	// field of Doc, which then must have one. When both are given they
	// must encode to the same BSON value.
	ID any

	// Doc is the whole document that replaces (or creates) the document
	// with that _id. It is marshalled with [bson.Marshal] when the record
	// is written, so later changes to it have no effect; pass a [bson.Raw]
	// to control the encoding. Its first field must not start with '$'
	// (it is a replacement, not an update operator document).
	Doc any
}

// SinkStats are a sink's counters since it was created, as
// [Sink.Stats] returns them. They are uint64, as kafkaio's SinkStats and
// StageStats are: counts that only grow (Buffered, a gauge, is never
// negative either).
type SinkStats struct {
	// Written counts the writes the server acknowledged, each one a
	// document created or replaced.
	Written uint64
	// Upserted counts the writes of Written that created a document;
	// Written - Upserted replaced an existing one (replays, updates).
	Upserted uint64
	// Rejected counts the writes the server refused for good.
	Rejected uint64
	// Deduplicated counts the writes dropped from the buffer because a
	// later write to the same collection and _id replaced them before a flush.
	Deduplicated uint64
	// Batches counts the successful bulk writes: one per collection per
	// flush, or more with [WithInsertFirst] (inserts, then replacements) or
	// [WithMaxWritesPerCommand].
	Batches uint64
	// Retries counts the waits after transient errors.
	Retries uint64
	// Buffered is the number of writes waiting for the next flush.
	Buffered uint64
}

// Sink writes records to MongoDB as batched, idempotent upserts keyed by
// _id. Create it with [NewSink]; see the package documentation for its
// semantics.
//
// A Sink is safe for concurrent use. Only one flush runs at a time, and
// Write waits while a flush is running (or until its context is done): a
// slow or unavailable database slows writers down instead of letting the
// buffer grow.
type Sink[T any] struct {
	db    *mongo.Database
	route func(T) (Route, error)
	cfg   config
	log   *slog.Logger

	// mu, a lock that waits under a context, guards the fields below it.
	mu       chan struct{}
	colls    map[string]*batch[T] // by collection name; kept across flushes
	order    []*batch[T]          // first-write order, for deterministic flushes
	buffered int
	rejected []Rejection[T] // from background flushes, reported by the next Flush
	closed   bool
	// detected is set once detectServer has resolved the fields below
	// from the server's buildInfo reply.
	detected bool
	// perCommand is the most writes per bulk write of replacements:
	// WithMaxWritesPerCommand, or, when that is 0, -1 (no limit) or, on
	// FerretDB, ferretDBMaxWrites.
	perCommand int
	// insertFirst and concurrency: see [WithInsertFirst] and
	// [WithFlushConcurrency]; resolved like perCommand.
	insertFirst bool
	concurrency int
	// oneReplace, set on FerretDB, lets only one bulk write of
	// replacements run at a time (see lockReplace).
	oneReplace bool
	// replacing is the lock of oneReplace.
	replacing chan struct{}

	stopBackground context.CancelFunc // nil without WithFlushInterval
	background     sync.WaitGroup

	written, upserted, rejectedN, deduplicated, batches, retries, bufferedN atomic.Uint64
}

// batch is the buffered writes of one collection.
type batch[T any] struct {
	coll    *mongo.Collection
	entries []entry[T]
	models  []mongo.WriteModel // models[i] is entries[i].model
	index   map[idKey]int      // position in entries of each _id

	// rejected collects the rejections of the running flush; the flush
	// moves them to Sink.rejected once every collection is done.
	rejected []Rejection[T]
}

type entry[T any] struct {
	rec   T
	id    bson.RawValue
	doc   bson.Raw         // the whole document with its _id, for an insert
	model mongo.WriteModel // the ReplaceOne upsert
}

// NewSink returns a sink that writes the records given to [Sink.Write] to
// collections of db, as route says. The sink does not own db's client: the
// caller disconnects it after [Sink.Close]. NewSink does not contact the
// server.
func NewSink[T any](db *mongo.Database, route func(T) (Route, error), opts ...Option) (*Sink[T], error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil database", ErrInvalidOption)
	}
	if route == nil {
		return nil, fmt.Errorf("%w: nil route function", ErrInvalidOption)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidOption)
		}
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Sink[T]{
		db:    db,
		route: route,
		cfg:   cfg,
		log:   cfg.logger.With(slog.String("component", "mongoio"), slog.String("db", db.Name())),
		mu:    make(chan struct{}, 1),
		colls: make(map[string]*batch[T]),

		replacing: make(chan struct{}, 1),
	}
	if cfg.flushInterval > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		s.stopBackground = cancel
		s.background.Add(1)
		go s.flushEvery(ctx, cfg.flushInterval)
	}
	return s, nil
}

// Write routes rec and buffers its upsert. When the buffer reaches
// [WithBatchSize] writes, Write flushes it before returning, under ctx, and
// returns the flush's error.
//
// When [WithMaxBuffered] writes are buffered already (the server is away),
// Write flushes before it buffers rec, and if that flush cannot make room
// it returns an error wrapping [ErrBufferFull] and the flush's error.
//
// An error wrapping [ErrInvalidRecord], [ErrBufferFull] or [ErrClosed]
// means rec was not buffered. Any other error comes from a flush (see
// [Sink.Flush]) and rec was buffered all the same.
func (s *Sink[T]) Write(ctx context.Context, rec T) error {
	r, err := s.route(rec)
	if err != nil {
		return fmt.Errorf("%w: route: %w", ErrInvalidRecord, err)
	}
	if err := validCollection(r.Collection); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	doc, full, id, err := marshalRoute(r)
	if err != nil {
		return fmt.Errorf("%w: collection %q: %w", ErrInvalidRecord, r.Collection, err)
	}
	model := mongo.NewReplaceOneModel().
		SetFilter(bson.D{{Key: "_id", Value: id}}).
		SetReplacement(doc).
		SetUpsert(true)
	e := entry[T]{rec: rec, id: id, doc: full, model: model}

	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("mongoio: write: %w", err)
	}
	defer s.unlock()
	if s.closed {
		return ErrClosed
	}
	k := key(id)
	b := s.colls[r.Collection]
	var flushErr error
	if _, dup := b.lookup(k); !dup && s.buffered >= s.cfg.maxBuffered {
		// Full: make room first, or refuse the record.
		flushErr = s.flushLocked(ctx)
		if s.buffered >= s.cfg.maxBuffered {
			return fmt.Errorf("%w: %d writes buffered (WithMaxBuffered) and the flush failed: %w", ErrBufferFull, s.buffered, flushErr)
		}
	}
	if b == nil {
		b = &batch[T]{
			coll:  s.db.Collection(r.Collection, options.Collection().SetWriteConcern(s.cfg.writeConcern)),
			index: make(map[idKey]int),
		}
		s.colls[r.Collection] = b
		s.order = append(s.order, b)
	}
	if i, ok := b.index[k]; ok {
		// Last write wins: an unordered bulk write may apply two writes of
		// one _id in any order, so only the latest is sent.
		b.entries[i] = e
		b.models[i] = model
		s.deduplicated.Add(1)
		return flushErr
	}
	b.index[k] = len(b.entries)
	b.entries = append(b.entries, e)
	b.models = append(b.models, model)
	s.buffered++
	s.bufferedN.Store(uint64(s.buffered))
	if s.buffered < s.cfg.batchSize {
		return flushErr
	}
	return errors.Join(flushErr, s.flushLocked(ctx))
}

// lookup returns the position of the buffered write of k; b may be nil.
func (b *batch[T]) lookup(k idKey) (int, bool) {
	if b == nil {
		return 0, false
	}
	i, ok := b.index[k]
	return i, ok
}

// Flush writes every buffered write and returns when the server has
// acknowledged them, under the sink's write concern. Each flush sends one
// unordered bulk write of ReplaceOne upserts per collection (or several,
// see [WithMaxWritesPerCommand]; or inserts first, see [WithInsertFirst]), up to
// [WithFlushConcurrency] collections at a time, retrying transient errors as
// the package documentation describes.
//
// Flush returns nil when every write buffered before the call is written.
// Otherwise:
//   - an error matching [ErrRejected] (a [*RejectedError]) lists writes the
//     server refused for good, here or in a background flush since the last
//     report; they are dropped, everything else is written;
//   - an error wrapping [ErrRetriesExhausted] or ctx's error, or a
//     non-transient server error (such as an authorization failure), leaves
//     the writes that were not acknowledged in the buffer, for the next flush.
//
// Both kinds may be joined in one error.
func (s *Sink[T]) Flush(ctx context.Context) error {
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("mongoio: flush: %w", err)
	}
	defer s.unlock()
	if s.closed {
		return ErrClosed
	}
	return s.flushLocked(ctx)
}

// Close stops the background flushes, flushes the buffer under ctx and
// releases the sink; later calls of Write, Flush and EnsureIndexes return
// [ErrClosed]. Close never drops a buffered write: when the final flush
// cannot write everything (the server is away, ctx is done), Close returns
// its error, says how many writes are still buffered, and leaves the sink
// open with them, without background flushes, so that Close (or Flush) can
// be called again; a caller that commits input positions after Close must
// not commit them then. Close returns nil when called again after it
// succeeded.
func (s *Sink[T]) Close(ctx context.Context) error {
	if s.stopBackground != nil {
		s.stopBackground()
		s.background.Wait()
	}
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("mongoio: close: %w", err)
	}
	defer s.unlock()
	if s.closed {
		return nil
	}
	err := s.flushLocked(ctx)
	if s.buffered > 0 {
		s.log.ErrorContext(ctx, "mongoio: close could not write every buffered write; the sink stays open with them",
			slog.Int("writes", s.buffered), slog.Any("err", err))
		return fmt.Errorf("mongoio: close: %d writes still buffered, the sink stays open (call Close again): %w", s.buffered, err)
	}
	s.closed = true
	return err
}

// EnsureIndexes creates the given indexes on a collection of the sink's
// database, with the sink's write concern and retries. Creating an index
// that already exists with the same keys and options does nothing, so it
// is safe to call at every start; an index that exists with other options
// is an error. It returns the names of the indexes.
//
// The _id index exists on every collection and keys the sink's upserts; use
// EnsureIndexes for the indexes queries need, such as
// {symbol: 1, timestamp: 1}. The indexes are created one command each, as
// FerretDB v1 fails a createIndexes command that lists several indexes
// that all exist already.
func (s *Sink[T]) EnsureIndexes(ctx context.Context, collection string, models ...mongo.IndexModel) ([]string, error) {
	if err := validCollection(collection); err != nil {
		return nil, fmt.Errorf("mongoio: create indexes: %w", err)
	}
	if err := s.lock(ctx); err != nil {
		return nil, fmt.Errorf("mongoio: create indexes: %w", err)
	}
	closed := s.closed
	s.unlock()
	if closed {
		return nil, ErrClosed
	}
	coll := s.db.Collection(collection, options.Collection().SetWriteConcern(s.cfg.writeConcern))
	names := make([]string, 0, len(models))
	for _, m := range models {
		name, err := s.createIndex(ctx, coll, m)
		if err != nil {
			return names, err
		}
		names = append(names, name)
	}
	return names, nil
}

// createIndex creates one index, retrying transient errors.
func (s *Sink[T]) createIndex(ctx context.Context, coll *mongo.Collection, m mongo.IndexModel) (string, error) {
	began := time.Now()
	for retry := 0; ; retry++ {
		var name string
		err := s.attempt(ctx, func(ctx context.Context) (err error) {
			name, err = coll.Indexes().CreateOne(ctx, m)
			return err
		})
		if err == nil {
			return name, nil
		}
		err = fmt.Errorf("mongoio: create index %v on %s.%s: %w", m.Keys, s.db.Name(), coll.Name(), err)
		if ctx.Err() != nil || !transient(err) {
			return "", err
		}
		d, gaveUp := s.nextRetry(retry, began, err)
		if gaveUp != nil {
			return "", gaveUp
		}
		if werr := s.wait(ctx, d, retry, err, slog.String("collection", coll.Name())); werr != nil {
			return "", fmt.Errorf("mongoio: create index: %w; last error: %w", werr, err)
		}
	}
}

// Stats returns the sink's counters. It does not wait for a running flush.
func (s *Sink[T]) Stats() SinkStats {
	return SinkStats{
		Written:      s.written.Load(),
		Upserted:     s.upserted.Load(),
		Rejected:     s.rejectedN.Load(),
		Deduplicated: s.deduplicated.Load(),
		Batches:      s.batches.Load(),
		Retries:      s.retries.Load(),
		Buffered:     s.bufferedN.Load(),
	}
}

// flushEvery flushes the buffer every d until ctx is canceled.
func (s *Sink[T]) flushEvery(ctx context.Context, d time.Duration) {
	defer s.background.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.lock(ctx) != nil {
			return
		}
		if s.buffered == 0 {
			s.unlock()
			continue
		}
		rejected := len(s.rejected)
		err := s.flushOnce(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "mongoio: background flush failed; writes stay buffered",
				slog.Int("buffered", s.buffered), slog.Any("err", err))
		}
		if len(s.rejected) > rejected {
			s.log.WarnContext(ctx, "mongoio: background flush had rejected writes; the next Flush reports them",
				slog.Int("rejected", len(s.rejected)-rejected))
		}
		s.unlock()
	}
}

// lock acquires s.mu, or gives up with ctx's error.
func (s *Sink[T]) lock(ctx context.Context) error {
	select {
	case s.mu <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Sink[T]) unlock() { <-s.mu }

// flushLocked flushes the buffer and reports the rejections collected so
// far. s.mu must be held.
func (s *Sink[T]) flushLocked(ctx context.Context) error {
	err := s.flushOnce(ctx)
	if len(s.rejected) == 0 {
		return err
	}
	rejected := &RejectedError[T]{Rejections: s.rejected}
	s.rejected = nil
	if err == nil {
		return rejected
	}
	return errors.Join(rejected, err)
}

// flushOnce writes every buffered write, retrying transient errors;
// rejections go to s.rejected. s.mu must be held.
func (s *Sink[T]) flushOnce(ctx context.Context) error {
	if s.buffered == 0 {
		return nil
	}
	began := time.Now()
	retry := 0
	for {
		err := s.attempt(ctx, s.writeAll)
		if err == nil {
			if retry > 0 {
				s.log.InfoContext(ctx, "mongoio: flush recovered", slog.Int("retries", retry))
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("mongoio: flush: %w; %d writes stay buffered; last error: %w", ctx.Err(), s.buffered, err)
		}
		if !transient(err) {
			return err
		}
		d, gaveUp := s.nextRetry(retry, began, err)
		if gaveUp != nil {
			return fmt.Errorf("%w; %d writes stay buffered", gaveUp, s.buffered)
		}
		if werr := s.wait(ctx, d, retry, err, slog.Int("buffered", s.buffered)); werr != nil {
			return fmt.Errorf("mongoio: flush: %w; %d writes stay buffered; last error: %w", werr, s.buffered, err)
		}
		retry++
	}
}

// attempt runs one attempt of an operation under [WithAttemptTimeout]. When the
// attempt, not ctx, ran out of time, its error is marked transient and says
// so.
func (s *Sink[T]) attempt(ctx context.Context, op func(context.Context) error) error {
	actx, cancel := context.WithTimeout(ctx, s.cfg.attemptTimeout)
	defer cancel()
	deadline, _ := actx.Deadline()
	err := op(actx)
	// The driver sets its socket deadlines from actx's, so an attempt that
	// ran out of time may fail before actx's own timer has fired: compare
	// with the clock too.
	if err != nil && ctx.Err() == nil && (actx.Err() != nil || !time.Now().Before(deadline)) && !ctxExpired(ctx) {
		return retryableError{fmt.Errorf("no answer within the attempt timeout (%v): %w", s.cfg.attemptTimeout, err)}
	}
	return err
}

// ctxExpired reports whether ctx's own deadline has passed, which
// ctx.Err() may not say yet.
func ctxExpired(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// nextRetry returns the wait before retry number retry of an operation that
// began at began and last failed with err, or the error to give up with
// when [WithMaxRetries] or [WithMaxRetryTime] forbid another retry.
func (s *Sink[T]) nextRetry(retry int, began time.Time, err error) (time.Duration, error) {
	if s.cfg.maxRetries >= 0 && retry >= s.cfg.maxRetries {
		return 0, fmt.Errorf("%w after %d retries: %w", ErrRetriesExhausted, retry, err)
	}
	d := backoff(retry, s.cfg.minBackoff, s.cfg.maxBackoff)
	if s.cfg.maxRetryTime >= 0 && time.Since(began)+d > s.cfg.maxRetryTime {
		return 0, fmt.Errorf("%w after %d retries in %v (WithMaxRetryTime %v): %w", ErrRetriesExhausted, retry,
			time.Since(began).Round(time.Millisecond), s.cfg.maxRetryTime, err)
	}
	return d, nil
}

// wait logs a transient error and sleeps d before retry number retry.
func (s *Sink[T]) wait(ctx context.Context, d time.Duration, retry int, err error, attrs ...slog.Attr) error {
	s.retries.Add(1)
	s.log.LogAttrs(ctx, slog.LevelWarn, "mongoio: transient error, retrying",
		append(attrs, slog.Int("retry", retry+1), slog.Duration("backoff", d), slog.Any("err", err))...)
	return sleep(ctx, d)
}

// writeAll sends the buffered writes of each collection, up to
// [WithFlushConcurrency] collections at a time, in the order collections were
// first written to. Once a collection's writes fail other than by
// rejection, it starts no further collection; the collections that
// succeed are emptied, the others keep the writes not yet made. s.mu must
// be held; the goroutines it starts have returned when it returns.
func (s *Sink[T]) writeAll(ctx context.Context) error {
	if err := s.detectServer(ctx); err != nil {
		return err
	}
	var pending []*batch[T]
	for _, b := range s.order {
		if len(b.entries) > 0 {
			pending = append(pending, b)
		}
	}
	errs := make([]error, len(pending))
	if len(pending) == 1 || s.concurrency == 1 {
		for i, b := range pending {
			if errs[i] = s.writeCollection(ctx, b); errs[i] != nil {
				break
			}
		}
	} else {
		slots := make(chan struct{}, s.concurrency)
		var failed atomic.Bool
		var wg sync.WaitGroup
		for i, b := range pending {
			slots <- struct{}{}
			if failed.Load() {
				break
			}
			wg.Go(func() {
				defer func() { <-slots }()
				if errs[i] = s.writeCollection(ctx, b); errs[i] != nil {
					failed.Store(true)
				}
			})
		}
		wg.Wait()
	}

	s.buffered = 0
	for _, b := range s.order {
		s.buffered += len(b.entries)
		s.rejected = append(s.rejected, b.rejected...)
		clear(b.rejected)
		b.rejected = b.rejected[:0]
	}
	s.bufferedN.Store(uint64(s.buffered))

	// A non-transient error ends the flush: report only those, so that
	// the flush does not retry.
	var retry, fail []error
	for _, err := range errs {
		switch {
		case err == nil:
		case transient(err):
			retry = append(retry, err)
		default:
			fail = append(fail, err)
		}
	}
	switch {
	case len(fail) == 1:
		return fail[0]
	case len(fail) > 1:
		return errors.Join(fail...)
	case len(retry) == 1:
		return retry[0]
	default:
		return errors.Join(retry...) // nil without errors
	}
}

// writeCollection sends b's writes and wraps the error in context. It
// touches only b and the atomic counters, so that several collections may
// be written at once.
func (s *Sink[T]) writeCollection(ctx context.Context, b *batch[T]) error {
	n := len(b.entries)
	if err := s.writeBatch(ctx, b); err != nil {
		return fmt.Errorf("mongoio: write %d documents to %s.%s: %w", n, s.db.Name(), b.coll.Name(), err)
	}
	return nil
}

// ferretDBMaxWrites is the default [WithMaxWritesPerCommand] of replacements
// on FerretDB.
const ferretDBMaxWrites = 32

// detectServer resolves, once, the defaults of [WithMaxWritesPerCommand],
// [WithInsertFirst] and [WithFlushConcurrency]: no limit, replacements only and
// [DefaultFlushConcurrency], except on FerretDB, which says so in its
// buildInfo reply.
func (s *Sink[T]) detectServer(ctx context.Context) error {
	if s.detected {
		return nil
	}
	var info struct {
		FerretDB string `bson:"ferretdbVersion"`
	}
	err := s.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info)
	if err != nil && transient(err) {
		return fmt.Errorf("mongoio: buildInfo: %w", err)
	}
	ferretDB := err == nil && info.FerretDB != ""
	switch {
	case err != nil:
		s.log.DebugContext(ctx, "mongoio: buildInfo failed; assuming MongoDB", slog.Any("err", err))
	case ferretDB:
		s.log.DebugContext(ctx, "mongoio: FerretDB detected; inserting first, limiting replacements per command, one collection at a time by default",
			slog.String("ferretdb", info.FerretDB), slog.Int("max", ferretDBMaxWrites))
	}
	s.perCommand = s.cfg.maxPerCommand
	if s.perCommand == 0 {
		s.perCommand = -1
		if ferretDB {
			s.perCommand = ferretDBMaxWrites
		}
	}
	s.insertFirst = ferretDB
	if s.cfg.insertFirst != nil {
		s.insertFirst = *s.cfg.insertFirst
	}
	s.concurrency = DefaultFlushConcurrency
	switch {
	case s.cfg.concurrencySet:
		s.concurrency = s.cfg.concurrency
	case ferretDB:
		s.concurrency = 1
	}
	s.oneReplace = ferretDB
	s.detected = true
	return nil
}

var unordered = options.BulkWrite().SetOrdered(false)

// writeBatch sends b's writes: with [WithInsertFirst], unordered bulk writes of
// inserts, then, leaving out the writes whose document is stored already
// as it is (see unchanged), the writes the inserts could not make as
// unordered bulk writes of ReplaceOne upserts; otherwise only the latter.
// On return b holds only the writes still to be made: none when err is
// nil.
func (s *Sink[T]) writeBatch(ctx context.Context, b *batch[T]) error {
	var keep, replace, dups []int
	var stop error
	if s.insertFirst {
		size := len(b.entries)
		if s.cfg.maxPerCommand > 0 {
			size = s.cfg.maxPerCommand
		}
		for lo := 0; lo < len(b.entries); lo += size {
			hi := min(lo+size, len(b.entries))
			if stop != nil {
				keep = appendRange(keep, lo, hi)
				continue
			}
			var failed, dup []int
			failed, dup, stop = s.insertChunk(ctx, b, lo, hi)
			if stop != nil {
				keep = append(keep, failed...)
			} else {
				replace = append(replace, failed...)
				dups = append(dups, dup...)
			}
		}
		if stop == nil && len(dups) > 0 {
			if same := s.unchanged(ctx, b, dups); len(same) > 0 {
				replace = slices.DeleteFunc(replace, func(p int) bool { return same[p] })
				s.written.Add(uint64(len(same)))
			}
		}
	} else {
		replace = appendRange(nil, 0, len(b.entries))
	}

	size := len(replace)
	if s.perCommand > 0 {
		size = s.perCommand
	}
	for lo := 0; lo < len(replace); lo += size {
		chunk := replace[lo:min(lo+size, len(replace))]
		if stop != nil {
			keep = append(keep, chunk...)
			continue
		}
		var kept []int
		kept, stop = s.replaceChunk(ctx, b, chunk)
		keep = append(keep, kept...)
	}
	slices.Sort(keep)
	b.keep(keep)
	return stop
}

// insertChunk sends the documents of b.entries[lo:hi] in one unordered bulk
// write of inserts. It returns the positions of the writes it did not
// make: with a nil error, those whose insert failed (an _id that exists
// already, mostly), to be sent as replacements, and among them those that
// failed on a duplicate key; with an error, all of them.
func (s *Sink[T]) insertChunk(ctx context.Context, b *batch[T], lo, hi int) (failed, dup []int, err error) {
	models := make([]mongo.WriteModel, hi-lo)
	for i := range models {
		models[i] = mongo.NewInsertOneModel().SetDocument(b.entries[lo+i].doc)
	}
	res, err := b.coll.BulkWrite(ctx, models, unordered)
	if err == nil {
		s.acknowledged(int64(hi-lo), res.InsertedCount)
		return nil, nil, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || len(bwe.WriteErrors) == 0 || bwe.WriteConcernError != nil {
		return appendRange(nil, lo, hi), nil, err
	}
	errs, ok := failedWrites(bwe, hi-lo)
	if !ok || res.InsertedCount != int64(hi-lo-len(errs)) {
		// The server's account does not add up: replace them all, which
		// changes nothing for the documents it did insert.
		return appendRange(nil, lo, hi), nil, nil
	}
	s.acknowledged(res.InsertedCount, res.InsertedCount)
	for _, we := range errs {
		failed = append(failed, lo+we.Index)
		if we.Code == duplicateKey {
			dup = append(dup, lo+we.Index)
		}
	}
	return failed, dup, nil
}

// duplicateKey is the code of the write error of an insert whose _id (or
// other unique key) exists already.
const duplicateKey = 11000

// maxFindIDs caps the _ids that one find of unchanged asks for.
const maxFindIDs = 1000

// primary reads the documents that unchanged compares from the primary,
// which has every acknowledged write, whatever the client's read
// preference.
var primary = options.Collection().SetReadPreference(readpref.Primary())

// unchanged reads the documents of the writes at the positions dups, whose
// insert failed on a duplicate key, with finds of {_id: {$in: [...]}}, and
// returns the positions of those whose stored document is byte for byte
// the document to write: replacing them would change nothing. A replay
// after a restart writes such documents only.
//
// On FerretDB v1 one find reads the collection once, while each
// replacement reads it whole; on MongoDB the finds use the _id index. On
// any error (a user allowed to write but not to read, say) unchanged
// returns the positions it could compare so far, and the others are
// replaced as usual.
func (s *Sink[T]) unchanged(ctx context.Context, b *batch[T], dups []int) map[int]bool {
	coll := b.coll.Database().Collection(b.coll.Name(), primary)
	pos := make(map[idKey]int, len(dups))
	for _, p := range dups {
		pos[key(b.entries[p].id)] = p
	}
	same := make(map[int]bool, len(dups))
	for lo := 0; lo < len(dups); lo += maxFindIDs {
		chunk := dups[lo:min(lo+maxFindIDs, len(dups))]
		ids := make(bson.A, len(chunk))
		for i, p := range chunk {
			ids[i] = b.entries[p].id
		}
		cur, err := coll.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
			options.Find().SetBatchSize(int32(len(chunk))))
		if err == nil {
			for cur.Next(ctx) {
				p, ok := pos[key(cur.Current.Lookup("_id"))]
				if ok && bytes.Equal(cur.Current, b.entries[p].doc) {
					same[p] = true
				}
			}
			err = cur.Err()
			_ = cur.Close(ctx)
		}
		if err != nil {
			s.log.DebugContext(ctx, "mongoio: cannot read the existing documents; replacing them",
				slog.String("collection", b.coll.Name()), slog.Any("err", err))
			break
		}
	}
	return same
}

// failedWrites returns the write errors of a bulk write of n writes sorted
// by index, and whether their indexes are valid and distinct.
func failedWrites(bwe mongo.BulkWriteException, n int) ([]mongo.BulkWriteError, bool) {
	failed := slices.SortedFunc(slices.Values(bwe.WriteErrors), func(a, b mongo.BulkWriteError) int {
		return cmp.Compare(a.Index, b.Index)
	})
	for i, we := range failed {
		if we.Index < 0 || we.Index >= n || i > 0 && we.Index == failed[i-1].Index {
			return failed, false
		}
	}
	return failed, true
}

// lockReplace takes the lock of oneReplace, when set. FerretDB v1.24 holds
// a backend connection, from a pool of 100 on SQLite and 50 on PostgreSQL,
// for every write of an update command that matches an existing document
// until the command ends; concurrent bulk writes of 32 replacements could
// take them all and wait for each other forever.
func (s *Sink[T]) lockReplace(ctx context.Context) (unlock func(), err error) {
	if !s.oneReplace {
		return func() {}, nil
	}
	select {
	case s.replacing <- struct{}{}:
		return func() { <-s.replacing }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// replaceChunk sends the writes of b at the given positions in one
// unordered bulk write of ReplaceOne upserts and returns the positions of
// the writes still to be made.
func (s *Sink[T]) replaceChunk(ctx context.Context, b *batch[T], pos []int) ([]int, error) {
	unlock, err := s.lockReplace(ctx)
	if err != nil {
		return pos, err
	}
	defer unlock()
	models := make([]mongo.WriteModel, len(pos))
	for i, p := range pos {
		models[i] = b.models[p]
	}
	res, err := b.coll.BulkWrite(ctx, models, unordered)
	if err == nil {
		s.acknowledged(int64(len(pos)), res.UpsertedCount)
		return nil, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || len(bwe.WriteErrors) == 0 || bwe.WriteConcernError != nil {
		return pos, err // all of them are sent again
	}

	// Some writes failed. A conforming server applied all the others and
	// says which failed; trust it only when the numbers add up. FerretDB
	// v1, for one, stops at the first failing write of an unordered batch
	// and reports it at index 0: then find the failing writes one by one.
	failed, ok := failedWrites(bwe, len(pos))
	if !ok || res.MatchedCount+res.UpsertedCount != int64(len(pos)-len(failed)) {
		return s.writeOneByOne(ctx, b, pos)
	}
	s.acknowledged(int64(len(pos)-len(failed)), res.UpsertedCount)
	var keep []int
	for _, we := range failed {
		if retryableWriteError(we) {
			keep = append(keep, pos[we.Index])
			continue
		}
		s.reject(b, pos[we.Index], we)
	}
	if len(keep) > 0 {
		return keep, retryableError{fmt.Errorf("%d writes failed transiently: %w", len(keep), err)}
	}
	return nil, nil
}

// writeOneByOne sends the replacements of b at the given positions one at
// a time, to tell the ones the server rejects from the ones it accepts. It
// stops at the first error that is not a rejection and returns the
// positions of the writes not yet made.
func (s *Sink[T]) writeOneByOne(ctx context.Context, b *batch[T], pos []int) ([]int, error) {
	for i, p := range pos {
		res, err := b.coll.BulkWrite(ctx, b.models[p:p+1], unordered)
		var bwe mongo.BulkWriteException
		switch {
		case err == nil:
			s.acknowledged(1, res.UpsertedCount)
		case errors.As(err, &bwe) && len(bwe.WriteErrors) == 1 && bwe.WriteConcernError == nil &&
			!retryableWriteError(bwe.WriteErrors[0]):
			s.reject(b, p, bwe.WriteErrors[0])
		default:
			return pos[i:], err
		}
	}
	return nil, nil
}

// appendRange appends lo, lo+1, ..., hi-1 to dst.
func appendRange(dst []int, lo, hi int) []int {
	for i := lo; i < hi; i++ {
		dst = append(dst, i)
	}
	return dst
}

// acknowledged counts one successful bulk write of written writes, created
// of which created a document.
func (s *Sink[T]) acknowledged(written, created int64) {
	s.written.Add(uint64(written))
	s.upserted.Add(uint64(created))
	s.batches.Add(1)
}

// reject records the rejection of the write at position p of b.
func (s *Sink[T]) reject(b *batch[T], p int, we mongo.BulkWriteError) {
	e := b.entries[p]
	s.rejectedN.Add(1)
	b.rejected = append(b.rejected, Rejection[T]{
		Record:     e.rec,
		Collection: b.coll.Name(),
		ID:         e.id,
		Err:        fmt.Errorf("mongoio: write %s to %s.%s rejected: %w", e.id, s.db.Name(), b.coll.Name(), we),
	})
}

// keep retains the entries at the given ascending positions.
func (b *batch[T]) keep(positions []int) {
	if len(positions) == 0 {
		b.reset()
		return
	}
	clear(b.index)
	for j, i := range positions {
		b.entries[j] = b.entries[i]
		b.models[j] = b.models[i]
		b.index[key(b.entries[j].id)] = j
	}
	clear(b.entries[len(positions):])
	clear(b.models[len(positions):])
	b.entries = b.entries[:len(positions)]
	b.models = b.models[:len(positions)]
}

// reset empties b, keeping its memory for the next batch.
func (b *batch[T]) reset() {
	clear(b.entries)
	clear(b.models)
	b.entries = b.entries[:0]
	b.models = b.models[:0]
	clear(b.index)
}

// idKey identifies an _id in a batch: its BSON type and encoding. Two
// _ids that MongoDB deems equal but that encode differently (int32 1 and
// int64 1) are different keys.
type idKey struct {
	t bson.Type
	v string
}

func key(id bson.RawValue) idKey { return idKey{t: id.Type, v: string(id.Value)} }

// maxDocumentSize is the largest document MongoDB stores (its
// maxBsonObjectSize).
const maxDocumentSize = 16 << 20

// marshalRoute encodes r.Doc and finds the _id of the upsert. It returns
// the encoded Doc, for a replacement, and the whole document with its _id
// (the same bytes when Doc has an _id), for an insert.
func marshalRoute(r Route) (doc, full bson.Raw, id bson.RawValue, err error) {
	if r.Doc == nil {
		return nil, nil, bson.RawValue{}, errors.New("nil Doc")
	}
	b, err := bson.Marshal(r.Doc)
	if err != nil {
		return nil, nil, bson.RawValue{}, fmt.Errorf("marshal Doc: %w", err)
	}
	if len(b) > maxDocumentSize {
		return nil, nil, bson.RawValue{}, fmt.Errorf("Doc is %d bytes, more than MongoDB's limit of %d", len(b), maxDocumentSize)
	}
	doc = bson.Raw(b)
	if first, err := doc.IndexErr(0); err == nil && strings.HasPrefix(first.Key(), "$") {
		return nil, nil, bson.RawValue{}, fmt.Errorf("Doc starts with the operator %q; it must be a whole document", first.Key())
	}
	docID := doc.Lookup("_id")
	hasDocID := docID.Type != 0
	if r.ID == nil {
		if !hasDocID {
			return nil, nil, bson.RawValue{}, errors.New("no _id: Route.ID is nil and Doc has no _id field")
		}
		return doc, doc, docID, nil
	}
	t, v, err := bson.MarshalValue(r.ID)
	if err != nil {
		return nil, nil, bson.RawValue{}, fmt.Errorf("marshal ID: %w", err)
	}
	id = bson.RawValue{Type: t, Value: v}
	if t == bson.TypeNull || t == bson.TypeUndefined {
		return nil, nil, bson.RawValue{}, fmt.Errorf("ID is %s", t)
	}
	if hasDocID {
		if !id.Equal(docID) {
			return nil, nil, bson.RawValue{}, fmt.Errorf("Route.ID %s and the _id %s of Doc differ", id, docID)
		}
		return doc, doc, id, nil
	}
	full = withID(doc, id)
	if len(full) > maxDocumentSize {
		return nil, nil, bson.RawValue{}, fmt.Errorf("Doc with its _id is %d bytes, more than MongoDB's limit of %d", len(full), maxDocumentSize)
	}
	return doc, full, id, nil
}

// withID returns a copy of doc, which has no _id, with the field _id: id
// first, as MongoDB stores it.
func withID(doc bson.Raw, id bson.RawValue) bson.Raw {
	const name = "_id\x00"
	n := len(doc) + 1 + len(name) + len(id.Value)
	full := binary.LittleEndian.AppendUint32(make([]byte, 0, n), uint32(n))
	full = append(full, byte(id.Type))
	full = append(full, name...)
	full = append(full, id.Value...)
	full = append(full, doc[4:]...)
	return full
}

// validCollection checks a collection name against MongoDB's rules.
func validCollection(name string) error {
	switch {
	case name == "":
		return errors.New("empty collection name")
	case strings.ContainsAny(name, "$\x00"):
		return fmt.Errorf("collection name %q contains '$' or NUL", name)
	case strings.HasPrefix(name, "system."):
		return fmt.Errorf("collection name %q is reserved", name)
	}
	return nil
}
