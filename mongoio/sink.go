package mongoio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

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
//
// The document is marshalled before Write returns; rec itself is kept, by
// value, until its write is acknowledged, for a [Rejection]: what its
// pointers, slices or maps refer to must not be modified after the call
// (see Conventions in the package documentation).
func (s *Sink[T]) Write(ctx context.Context, rec T) error {
	r, err := s.route(rec)
	if err != nil {
		return fmt.Errorf("%w: route: %w", ErrInvalidRecord, err)
	}
	e, coll, err := prepare(rec, r)
	if err != nil {
		return err
	}
	return s.enqueue(ctx, e, coll)
}

// prepare checks and encodes the write of rec that r describes.
func prepare[T any](rec T, r Route) (entry[T], string, error) {
	if err := validCollection(r.Collection); err != nil {
		return entry[T]{}, "", fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	doc, full, id, err := marshalRoute(r)
	if err != nil {
		return entry[T]{}, "", fmt.Errorf("%w: collection %q: %w", ErrInvalidRecord, r.Collection, err)
	}
	model := mongo.NewReplaceOneModel().
		SetFilter(bson.D{{Key: "_id", Value: id}}).
		SetReplacement(doc).
		SetUpsert(true)
	return entry[T]{rec: rec, id: id, doc: full, model: model}, r.Collection, nil
}

// enqueue buffers a prepared write (Write, after the route).
func (s *Sink[T]) enqueue(ctx context.Context, e entry[T], coll string) error {
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("mongoio: write: %w", err)
	}
	defer s.unlock()
	if s.closed {
		return ErrClosed
	}
	k := key(e.id)
	b := s.colls[coll]
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
			coll:  s.db.Collection(coll, options.Collection().SetWriteConcern(s.cfg.writeConcern)),
			index: make(map[idKey]int),
		}
		s.colls[coll] = b
		s.order = append(s.order, b)
	}
	if i, ok := b.index[k]; ok {
		// Last write wins: an unordered bulk write may apply two writes of
		// one _id in any order, so only the latest is sent.
		b.entries[i] = e
		b.models[i] = e.model
		s.deduplicated.Add(1)
		return flushErr
	}
	b.index[k] = len(b.entries)
	b.entries = append(b.entries, e)
	b.models = append(b.models, e.model)
	s.buffered++
	s.bufferedN.Store(uint64(s.buffered))
	if s.buffered < s.cfg.batchSize {
		return flushErr
	}
	return errors.Join(flushErr, s.flushLocked(ctx))
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
