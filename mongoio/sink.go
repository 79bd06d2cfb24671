package mongoio

import (
	"cmp"
	"context"
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

// Stats are a sink's counters since it was created.
type Stats struct {
	// Written counts the writes the server acknowledged, each one a
	// document created or replaced.
	Written int64
	// Upserted counts the writes of Written that created a document;
	// Written - Upserted replaced an existing one (replays, updates).
	Upserted int64
	// Rejected counts the writes the server refused for good.
	Rejected int64
	// Deduplicated counts the writes dropped from the buffer because a
	// later write to the same collection and _id replaced them before a flush.
	Deduplicated int64
	// Batches counts the successful bulk writes, one per collection per flush.
	Batches int64
	// Retries counts the waits after transient errors.
	Retries int64
	// Buffered is the number of writes waiting for the next flush.
	Buffered int64
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
	// perCommand is the most writes per bulk write: MaxWritesPerCommand,
	// or, when that is 0, resolved by detectServer to -1 (no limit) or
	// ferretDBMaxWrites.
	perCommand int

	stopBackground context.CancelFunc // nil without FlushInterval
	background     sync.WaitGroup

	written, upserted, rejectedN, deduplicated, batches, retries, bufferedN atomic.Int64
}

// batch is the buffered writes of one collection.
type batch[T any] struct {
	coll    *mongo.Collection
	entries []entry[T]
	models  []mongo.WriteModel // models[i] is entries[i].model
	index   map[idKey]int      // position in entries of each _id
}

type entry[T any] struct {
	rec   T
	id    bson.RawValue
	model mongo.WriteModel
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

		perCommand: cfg.maxPerCommand,
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
// [BatchSize] writes, Write flushes it before returning, under ctx, and
// returns the flush's error.
//
// An error wrapping [ErrInvalidRecord] or [ErrClosed] means rec was not
// buffered. Any other error comes from the flush (see [Sink.Flush]) and
// rec was buffered all the same.
func (s *Sink[T]) Write(ctx context.Context, rec T) error {
	r, err := s.route(rec)
	if err != nil {
		return fmt.Errorf("%w: route: %w", ErrInvalidRecord, err)
	}
	if err := validCollection(r.Collection); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	doc, id, err := marshalRoute(r)
	if err != nil {
		return fmt.Errorf("%w: collection %q: %w", ErrInvalidRecord, r.Collection, err)
	}
	model := mongo.NewReplaceOneModel().
		SetFilter(bson.D{{Key: "_id", Value: id}}).
		SetReplacement(doc).
		SetUpsert(true)

	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("mongoio: write: %w", err)
	}
	defer s.unlock()
	if s.closed {
		return ErrClosed
	}
	b := s.colls[r.Collection]
	if b == nil {
		b = &batch[T]{
			coll:  s.db.Collection(r.Collection, options.Collection().SetWriteConcern(s.cfg.writeConcern)),
			index: make(map[idKey]int),
		}
		s.colls[r.Collection] = b
		s.order = append(s.order, b)
	}
	k := key(id)
	if i, ok := b.index[k]; ok {
		// Last write wins: an unordered bulk write may apply two writes of
		// one _id in any order, so only the latest is sent.
		b.entries[i] = entry[T]{rec: rec, id: id, model: model}
		b.models[i] = model
		s.deduplicated.Add(1)
		return nil
	}
	b.index[k] = len(b.entries)
	b.entries = append(b.entries, entry[T]{rec: rec, id: id, model: model})
	b.models = append(b.models, model)
	s.buffered++
	s.bufferedN.Store(int64(s.buffered))
	if s.buffered < s.cfg.batchSize {
		return nil
	}
	return s.flushLocked(ctx)
}

// Flush writes every buffered write and returns when the server has
// acknowledged them, under the sink's write concern. Each flush sends one
// unordered bulk write of ReplaceOne upserts per collection (or several,
// see [MaxWritesPerCommand]), retrying transient errors as the package
// documentation describes.
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
// [ErrClosed]. When the final flush fails, the writes it could not make
// are dropped and the error says how many. Close returns nil when called
// again, and an error wrapping ctx's error, leaving the sink open but
// without background flushes, when ctx is done before a running flush ends.
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
	s.closed = true
	err := s.flushLocked(ctx)
	if s.buffered > 0 {
		err = fmt.Errorf("mongoio: close: %d buffered writes dropped: %w", s.buffered, err)
		s.log.ErrorContext(ctx, "mongoio: close dropped buffered writes",
			slog.Int("writes", s.buffered), slog.Any("err", err))
		for _, b := range s.order {
			b.reset()
		}
		s.buffered = 0
		s.bufferedN.Store(0)
	}
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
	for retry := 0; ; retry++ {
		name, err := coll.Indexes().CreateOne(ctx, m)
		if err == nil {
			return name, nil
		}
		err = fmt.Errorf("mongoio: create index %v on %s.%s: %w", m.Keys, s.db.Name(), coll.Name(), err)
		if ctx.Err() != nil || !transient(err) {
			return "", err
		}
		if s.cfg.maxRetries >= 0 && retry >= s.cfg.maxRetries {
			return "", fmt.Errorf("%w after %d retries: %w", ErrRetriesExhausted, retry, err)
		}
		if werr := s.wait(ctx, retry, err, slog.String("collection", coll.Name())); werr != nil {
			return "", fmt.Errorf("mongoio: create index: %w; last error: %w", werr, err)
		}
	}
}

// Stats returns the sink's counters. It does not wait for a running flush.
func (s *Sink[T]) Stats() Stats {
	return Stats{
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
	retry := 0
	for {
		err := s.writeAll(ctx)
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
		if s.cfg.maxRetries >= 0 && retry >= s.cfg.maxRetries {
			return fmt.Errorf("%w after %d retries; %d writes stay buffered: %w", ErrRetriesExhausted, retry, s.buffered, err)
		}
		if werr := s.wait(ctx, retry, err, slog.Int("buffered", s.buffered)); werr != nil {
			return fmt.Errorf("mongoio: flush: %w; %d writes stay buffered; last error: %w", werr, s.buffered, err)
		}
		retry++
	}
}

// wait logs a transient error and sleeps before retry number retry.
func (s *Sink[T]) wait(ctx context.Context, retry int, err error, attrs ...slog.Attr) error {
	d := backoff(retry, s.cfg.minBackoff, s.cfg.maxBackoff)
	s.retries.Add(1)
	s.log.LogAttrs(ctx, slog.LevelWarn, "mongoio: transient error, retrying",
		append(attrs, slog.Int("retry", retry+1), slog.Duration("backoff", d), slog.Any("err", err))...)
	return sleep(ctx, d)
}

// writeAll sends the buffered writes of each collection, in the order
// collections were first written to. It stops at the first collection
// whose writes fail other than by rejection; the collections before it are
// done and emptied. s.mu must be held.
func (s *Sink[T]) writeAll(ctx context.Context) error {
	if err := s.detectServer(ctx); err != nil {
		return err
	}
	for _, b := range s.order {
		if len(b.entries) == 0 {
			continue
		}
		n := len(b.entries)
		err := s.writeBatch(ctx, b)
		s.buffered -= n - len(b.entries)
		s.bufferedN.Store(int64(s.buffered))
		if err != nil {
			return fmt.Errorf("mongoio: write %d documents to %s.%s: %w", n, s.db.Name(), b.coll.Name(), err)
		}
	}
	return nil
}

// ferretDBMaxWrites is the default [MaxWritesPerCommand] on FerretDB.
const ferretDBMaxWrites = 32

// detectServer resolves the default of [MaxWritesPerCommand] once: no
// limit, except on FerretDB, which says so in its buildInfo reply.
func (s *Sink[T]) detectServer(ctx context.Context) error {
	if s.perCommand != 0 {
		return nil
	}
	var info struct {
		FerretDB string `bson:"ferretdbVersion"`
	}
	err := s.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info)
	switch {
	case err != nil && transient(err):
		return fmt.Errorf("mongoio: buildInfo: %w", err)
	case err != nil:
		s.log.DebugContext(ctx, "mongoio: buildInfo failed; assuming MongoDB", slog.Any("err", err))
		s.perCommand = -1
	case info.FerretDB != "":
		s.log.DebugContext(ctx, "mongoio: FerretDB detected; limiting writes per command",
			slog.String("ferretdb", info.FerretDB), slog.Int("max", ferretDBMaxWrites))
		s.perCommand = ferretDBMaxWrites
	default:
		s.perCommand = -1
	}
	return nil
}

var unordered = options.BulkWrite().SetOrdered(false)

// writeBatch sends b's writes, in unordered bulk writes of at most
// s.perCommand writes each. On return b holds only the writes still to be
// made: none when err is nil.
func (s *Sink[T]) writeBatch(ctx context.Context, b *batch[T]) error {
	size := len(b.entries)
	if s.perCommand > 0 {
		size = s.perCommand
	}
	var keep []int
	var stop error
	for lo := 0; lo < len(b.entries); lo += size {
		hi := min(lo+size, len(b.entries))
		if stop != nil {
			keep = appendRange(keep, lo, hi)
			continue
		}
		var kept []int
		kept, stop = s.writeChunk(ctx, b, lo, hi)
		keep = append(keep, kept...)
	}
	b.keep(keep)
	return stop
}

// writeChunk sends the writes b.models[lo:hi] in one unordered bulk write
// and returns the positions of the writes still to be made.
func (s *Sink[T]) writeChunk(ctx context.Context, b *batch[T], lo, hi int) ([]int, error) {
	res, err := b.coll.BulkWrite(ctx, b.models[lo:hi], unordered)
	if err == nil {
		s.acknowledged(res, hi-lo)
		return nil, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || len(bwe.WriteErrors) == 0 || bwe.WriteConcernError != nil {
		return appendRange(nil, lo, hi), err // all of them are sent again
	}

	// Some writes failed. A conforming server applied all the others and
	// says which failed; trust it only when the numbers add up. FerretDB
	// v1, for one, stops at the first failing write of an unordered batch
	// and reports it at index 0: then find the failing writes one by one.
	failed := slices.SortedFunc(slices.Values(bwe.WriteErrors), func(a, b mongo.BulkWriteError) int {
		return cmp.Compare(a.Index, b.Index)
	})
	trusted := res != nil && res.MatchedCount+res.UpsertedCount == int64(hi-lo-len(failed))
	for i, we := range failed {
		if we.Index < 0 || we.Index >= hi-lo || i > 0 && we.Index == failed[i-1].Index {
			trusted = false
		}
	}
	if !trusted {
		return s.writeOneByOne(ctx, b, lo, hi)
	}
	s.acknowledged(res, hi-lo-len(failed))
	var keep []int
	for _, we := range failed {
		if retryableWriteError(we) {
			keep = append(keep, lo+we.Index)
			continue
		}
		s.reject(b.entries[lo+we.Index], b.coll.Name(), we)
	}
	if len(keep) > 0 {
		return keep, retryableError{fmt.Errorf("%d writes failed transiently: %w", len(keep), err)}
	}
	return nil, nil
}

// writeOneByOne sends the writes b.models[lo:hi] one at a time, to tell
// the ones the server rejects from the ones it accepts. It stops at the
// first error that is not a rejection and returns the positions of the
// writes not yet made.
func (s *Sink[T]) writeOneByOne(ctx context.Context, b *batch[T], lo, hi int) ([]int, error) {
	for i := lo; i < hi; i++ {
		res, err := b.coll.BulkWrite(ctx, b.models[i:i+1], unordered)
		var bwe mongo.BulkWriteException
		switch {
		case err == nil:
			s.acknowledged(res, 1)
		case errors.As(err, &bwe) && len(bwe.WriteErrors) == 1 && bwe.WriteConcernError == nil &&
			!retryableWriteError(bwe.WriteErrors[0]):
			s.reject(b.entries[i], b.coll.Name(), bwe.WriteErrors[0])
		default:
			return appendRange(nil, i, hi), err
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

func (s *Sink[T]) acknowledged(res *mongo.BulkWriteResult, n int) {
	s.written.Add(int64(n))
	if res != nil {
		s.upserted.Add(res.UpsertedCount)
	}
	s.batches.Add(1)
}

func (s *Sink[T]) reject(e entry[T], coll string, we mongo.BulkWriteError) {
	s.rejectedN.Add(1)
	s.rejected = append(s.rejected, Rejection[T]{
		Record:     e.rec,
		Collection: coll,
		ID:         e.id,
		Err:        fmt.Errorf("mongoio: write %s to %s.%s rejected: %w", e.id, s.db.Name(), coll, we),
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

// marshalRoute encodes r.Doc and finds the _id of the upsert.
func marshalRoute(r Route) (bson.Raw, bson.RawValue, error) {
	if r.Doc == nil {
		return nil, bson.RawValue{}, errors.New("nil Doc")
	}
	b, err := bson.Marshal(r.Doc)
	if err != nil {
		return nil, bson.RawValue{}, fmt.Errorf("marshal Doc: %w", err)
	}
	if len(b) > maxDocumentSize {
		return nil, bson.RawValue{}, fmt.Errorf("Doc is %d bytes, more than MongoDB's limit of %d", len(b), maxDocumentSize)
	}
	doc := bson.Raw(b)
	if first, err := doc.IndexErr(0); err == nil && strings.HasPrefix(first.Key(), "$") {
		return nil, bson.RawValue{}, fmt.Errorf("Doc starts with the operator %q; it must be a whole document", first.Key())
	}
	docID := doc.Lookup("_id")
	hasDocID := docID.Type != 0
	if r.ID == nil {
		if !hasDocID {
			return nil, bson.RawValue{}, errors.New("no _id: Route.ID is nil and Doc has no _id field")
		}
		return doc, docID, nil
	}
	t, v, err := bson.MarshalValue(r.ID)
	if err != nil {
		return nil, bson.RawValue{}, fmt.Errorf("marshal ID: %w", err)
	}
	id := bson.RawValue{Type: t, Value: v}
	if t == bson.TypeNull || t == bson.TypeUndefined {
		return nil, bson.RawValue{}, fmt.Errorf("ID is %s", t)
	}
	if hasDocID && !id.Equal(docID) {
		return nil, bson.RawValue{}, fmt.Errorf("Route.ID %s and the _id %s of Doc differ", id, docID)
	}
	return doc, id, nil
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
