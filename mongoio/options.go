package mongoio

import (
	"fmt"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

// Defaults of the options.
const (
	DefaultBatchSize  = 500
	DefaultMaxRetries = 10
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second

	// DefaultAttemptTimeout bounds one attempt of a flush (the bulk writes
	// of every collection); see [WithAttemptTimeout].
	DefaultAttemptTimeout = 30 * time.Second
	// DefaultMaxRetryTime bounds the retries of one flush in time; see
	// [WithMaxRetryTime].
	DefaultMaxRetryTime = 2 * time.Minute
	// DefaultMaxBufferedBatches is [WithMaxBuffered]'s default in batches:
	// four times [WithBatchSize] writes.
	DefaultMaxBufferedBatches = 4

	// DefaultFlushConcurrency is the default of [WithFlushConcurrency] on
	// MongoDB; on FerretDB the default is 1.
	DefaultFlushConcurrency = 6
)

// Option configures a [Sink]. Options are validated by [NewSink], which
// returns an error wrapping [ErrInvalidOption] for a bad one.
type Option interface {
	apply(*config)
}

type config struct {
	batchSize      int
	maxBuffered    int // 0: DefaultMaxBufferedBatches * batchSize
	flushInterval  time.Duration
	maxRetries     int
	attemptTimeout time.Duration
	maxRetryTime   time.Duration // -1: unbounded
	maxPerCommand  int
	concurrency    int // see concurrencySet
	// concurrencySet says WithFlushConcurrency was given; otherwise the
	// concurrency is DefaultFlushConcurrency, or 1 on FerretDB.
	concurrencySet bool
	insertFirst    *bool // nil: detected, on for FerretDB only (WithInsertFirst, WithUpsertOnly)
	minBackoff     time.Duration
	maxBackoff     time.Duration
	writeConcern   *writeconcern.WriteConcern
	logger         *slog.Logger
}

func defaultConfig() config {
	return config{
		batchSize:      DefaultBatchSize,
		maxRetries:     DefaultMaxRetries,
		attemptTimeout: DefaultAttemptTimeout,
		maxRetryTime:   DefaultMaxRetryTime,
		minBackoff:     DefaultMinBackoff,
		maxBackoff:     DefaultMaxBackoff,
		writeConcern:   writeconcern.Majority(),
	}
}

func (c *config) validate() error {
	switch {
	case c.batchSize < 1:
		return fmt.Errorf("%w: WithBatchSize %d, want at least 1", ErrInvalidOption, c.batchSize)
	case c.flushInterval < 0:
		return fmt.Errorf("%w: WithFlushInterval %v is negative", ErrInvalidOption, c.flushInterval)
	case c.maxPerCommand < 0:
		return fmt.Errorf("%w: WithMaxWritesPerCommand %d is negative", ErrInvalidOption, c.maxPerCommand)
	case c.concurrency < 0, c.concurrencySet && c.concurrency == 0:
		return fmt.Errorf("%w: WithFlushConcurrency %d, want at least 1", ErrInvalidOption, c.concurrency)
	case c.maxBuffered < 0, c.maxBuffered > 0 && c.maxBuffered < c.batchSize:
		return fmt.Errorf("%w: WithMaxBuffered %d, want at least WithBatchSize (%d)", ErrInvalidOption, c.maxBuffered, c.batchSize)
	case c.attemptTimeout <= 0:
		return fmt.Errorf("%w: WithAttemptTimeout %v, want more than 0", ErrInvalidOption, c.attemptTimeout)
	case c.maxRetryTime < -1 || c.maxRetryTime == 0:
		return fmt.Errorf("%w: WithMaxRetryTime %v, want more than 0, or -1 (unbounded)", ErrInvalidOption, c.maxRetryTime)
	case c.maxRetries < -1:
		return fmt.Errorf("%w: WithMaxRetries %d, want -1 (unbounded) or more", ErrInvalidOption, c.maxRetries)
	case c.minBackoff <= 0:
		return fmt.Errorf("%w: WithBackoff minimum %v, want more than 0", ErrInvalidOption, c.minBackoff)
	case c.maxBackoff < c.minBackoff:
		return fmt.Errorf("%w: WithBackoff maximum %v is below its minimum %v", ErrInvalidOption, c.maxBackoff, c.minBackoff)
	case !c.writeConcern.IsValid():
		return fmt.Errorf("%w: WithWriteConcern %+v is invalid", ErrInvalidOption, *c.writeConcern)
	case !c.writeConcern.Acknowledged():
		return fmt.Errorf("%w: WithWriteConcern is unacknowledged (w: 0); the sink needs acknowledgements to know what was written", ErrInvalidOption)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if c.maxBuffered == 0 {
		c.maxBuffered = DefaultMaxBufferedBatches * c.batchSize
	}
	return nil
}

type option func(*config)

func (o option) apply(c *config) { o(c) }

// WithBatchSize sets how many writes the sink buffers before [Sink.Write]
// flushes them. Writes are counted after deduplication: a write that
// replaces a buffered write of the same collection and _id does not count
// twice. Default [DefaultBatchSize]; at least 1.
func WithBatchSize(n int) Option {
	return option(func(c *config) { c.batchSize = n })
}

// WithMaxWritesPerCommand caps the writes sent in one bulk write (one insert
// or update command): a collection's buffered writes beyond it go in
// further bulk writes of the same flush. Default 0: no cap beyond the
// driver's own splitting at the server's limits (100,000 writes or 48 MB
// per command), except for replacements on FerretDB, detected once by its
// buildInfo reply, where the cap is 32: FerretDB v1 holds one backend
// connection (from a pool of 100 on SQLite, 50 on PostgreSQL) for every
// write of an update command that matches an existing document, until the
// command ends, and an update command that replaces as many documents as
// the pool holds hangs forever.
func WithMaxWritesPerCommand(n int) Option {
	return option(func(c *config) { c.maxPerCommand = n })
}

// WithFlushConcurrency sets how many collections a flush writes at once, each
// with its own bulk writes; the writes of one collection are always sent
// one bulk write after the other. 1 writes the collections one after the
// other. At least 1.
//
// Default: [DefaultFlushConcurrency], except on FerretDB, detected once by
// its buildInfo reply, where it is 1: FerretDB's SQLite backend writes one
// transaction at a time per database, and concurrent writers there wait
// for each other in SQLite's busy handler, which sleeps for milliseconds
// at a time, so concurrent flushes are slower. On FerretDB with its
// PostgreSQL backend, which writes concurrent transactions at once, set it
// to the number of collections. On FerretDB the bulk writes of
// replacements run one at a time whatever the concurrency (see
// [WithMaxWritesPerCommand]).
func WithFlushConcurrency(n int) Option {
	return option(func(c *config) { c.concurrency, c.concurrencySet = n, true })
}

// WithInsertFirst makes a flush send each collection's writes first as an
// unordered bulk write of inserts of the whole documents, and then only
// the writes whose insert failed (because a document with that _id exists
// already, mostly) as ReplaceOne upserts. Before those, the documents
// whose insert failed on a duplicate key are read back with one find
// {_id: {$in: [...]}} per collection (from the primary), and the writes
// whose document is stored already, byte for byte, are not sent again:
// a replay after a restart, which writes the same documents, then costs
// an insert and a read per collection. The outcome is the same as with
// upserts alone: the latest write of each _id wins, and a replay replaces
// instead of duplicating. It is much faster where inserting is much
// cheaper than upserting; where most writes replace existing documents
// with other content, each costs an insert, a read and a replacement.
//
// Without WithInsertFirst or [WithUpsertOnly] (the last one given wins),
// the sink chooses when it first writes: it inserts first on FerretDB,
// detected once by its buildInfo reply (FerretDB v1.24 finds the document
// of an upsert or a replacement by reading the whole collection, so each
// costs time in proportion to the collection's size, while an insert uses
// the _id index and is committed a hundred documents per transaction, and
// a find of many _ids reads the collection once), and sends upserts only
// to MongoDB, whose upserts use the _id index.
func WithInsertFirst() Option {
	return option(func(c *config) { on := true; c.insertFirst = &on })
}

// WithUpsertOnly makes a flush send every write as a ReplaceOne upsert,
// never inserting first, also on FerretDB: the choice for collections
// whose writes mostly replace existing documents with other content. See
// [WithInsertFirst] for the default.
func WithUpsertOnly() Option {
	return option(func(c *config) { off := false; c.insertFirst = &off })
}

// WithFlushInterval makes a background goroutine flush the buffer every d, so
// that writes reach the database during quiet periods too. Default 0: no
// background flushes; the buffer is flushed when it is full, by
// [Sink.Flush] and by [Sink.Close].
func WithFlushInterval(d time.Duration) Option {
	return option(func(c *config) { c.flushInterval = d })
}

// WithMaxBuffered bounds the writes the sink holds: when a flush fails (the
// server is down) the writes stay buffered for the next one, and once n are
// buffered [Sink.Write] flushes before it buffers another write and, if
// that flush fails too, returns an error wrapping [ErrBufferFull] without
// buffering the record. Writers are slowed down (each Write waits for a
// flush and its retries) and then stopped, instead of the buffer growing
// while the store is away. Default [DefaultMaxBufferedBatches] times
// [WithBatchSize]; at least the batch size.
func WithMaxBuffered(n int) Option {
	return option(func(c *config) { c.maxBuffered = n })
}

// WithAttemptTimeout bounds one attempt of a flush: a server that accepts
// connections but does not answer (a hung server, a network that drops
// packets without resetting connections) makes the attempt fail after d,
// as a transient error, and the flush retries. Default
// [DefaultAttemptTimeout].
func WithAttemptTimeout(d time.Duration) Option {
	return option(func(c *config) { c.attemptTimeout = d })
}

// WithMaxRetryTime bounds one flush's retries in time: a retry whose wait would
// end more than d after the flush began is not made, and the flush gives up
// with [ErrRetriesExhausted], whatever [WithMaxRetries] allows. -1 means no
// bound. Default [DefaultMaxRetryTime].
func WithMaxRetryTime(d time.Duration) Option {
	return option(func(c *config) { c.maxRetryTime = d })
}

// WithMaxRetries bounds how many times one flush retries after transient
// errors before it gives up with [ErrRetriesExhausted]. 0 disables retries;
// -1 retries until the context passed to the flush is done. Default
// [DefaultMaxRetries].
func WithMaxRetries(n int) Option {
	return option(func(c *config) { c.maxRetries = n })
}

// WithBackoff sets the wait between retries: it starts at minimum, doubles at
// each retry of the same flush and is capped at maximum; each wait is
// jittered to a random duration between half and all of its nominal value.
// Defaults [DefaultMinBackoff] and [DefaultMaxBackoff].
func WithBackoff(minimum, maximum time.Duration) Option {
	return option(func(c *config) { c.minBackoff, c.maxBackoff = minimum, maximum })
}

// WithWriteConcern sets the write concern of every write. Default
// [writeconcern.Majority], so that an acknowledged write survives the loss
// of a replica set primary. nil inherits the write concern of the
// [*mongo.Database] given to [NewSink] (that is, of the client's options or
// of the w, journal and wtimeoutMS parameters of its URI). An
// unacknowledged write concern (w: 0) is rejected.
func WithWriteConcern(wc *writeconcern.WriteConcern) Option {
	return option(func(c *config) { c.writeConcern = wc })
}

// WithLogger sets the logger for retries, recoveries and rejected writes.
// nil, the default, means [slog.Default].
func WithLogger(l *slog.Logger) Option {
	return option(func(c *config) { c.logger = l })
}
