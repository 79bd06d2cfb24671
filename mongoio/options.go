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
)

// Option configures a [Sink]. Options are validated by [NewSink], which
// returns an error wrapping [ErrInvalidOption] for a bad one.
type Option interface {
	apply(*config)
}

type config struct {
	batchSize     int
	flushInterval time.Duration
	maxRetries    int
	maxPerCommand int
	minBackoff    time.Duration
	maxBackoff    time.Duration
	writeConcern  *writeconcern.WriteConcern
	logger        *slog.Logger
}

func defaultConfig() config {
	return config{
		batchSize:    DefaultBatchSize,
		maxRetries:   DefaultMaxRetries,
		minBackoff:   DefaultMinBackoff,
		maxBackoff:   DefaultMaxBackoff,
		writeConcern: writeconcern.Majority(),
	}
}

func (c *config) validate() error {
	switch {
	case c.batchSize < 1:
		return fmt.Errorf("%w: BatchSize %d, want at least 1", ErrInvalidOption, c.batchSize)
	case c.flushInterval < 0:
		return fmt.Errorf("%w: FlushInterval %v is negative", ErrInvalidOption, c.flushInterval)
	case c.maxPerCommand < 0:
		return fmt.Errorf("%w: MaxWritesPerCommand %d is negative", ErrInvalidOption, c.maxPerCommand)
	case c.maxRetries < -1:
		return fmt.Errorf("%w: MaxRetries %d, want -1 (unbounded) or more", ErrInvalidOption, c.maxRetries)
	case c.minBackoff <= 0:
		return fmt.Errorf("%w: Backoff minimum %v, want more than 0", ErrInvalidOption, c.minBackoff)
	case c.maxBackoff < c.minBackoff:
		return fmt.Errorf("%w: Backoff maximum %v is below its minimum %v", ErrInvalidOption, c.maxBackoff, c.minBackoff)
	case !c.writeConcern.IsValid():
		return fmt.Errorf("%w: WriteConcern %+v is invalid", ErrInvalidOption, *c.writeConcern)
	case !c.writeConcern.Acknowledged():
		return fmt.Errorf("%w: WriteConcern is unacknowledged (w: 0); the sink needs acknowledgements to know what was written", ErrInvalidOption)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return nil
}

type option func(*config)

func (o option) apply(c *config) { o(c) }

// BatchSize sets how many writes the sink buffers before [Sink.Write]
// flushes them. Writes are counted after deduplication: a write that
// replaces a buffered write of the same collection and _id does not count
// twice. Default [DefaultBatchSize]; at least 1.
func BatchSize(n int) Option {
	return option(func(c *config) { c.batchSize = n })
}

// MaxWritesPerCommand caps the writes sent in one bulk write (one update
// command): a collection's buffered writes beyond it go in further bulk
// writes of the same flush. Default 0: no cap beyond the driver's own
// splitting at the server's limits (100,000 writes or 48 MB per command),
// except on FerretDB, detected once by its buildInfo reply, where the cap
// is 32: FerretDB v1 holds one SQLite connection, from a pool of 100, for
// every write of an update command that matches an existing document,
// until the command ends, and an update command that replaces 100
// documents or more hangs forever.
func MaxWritesPerCommand(n int) Option {
	return option(func(c *config) { c.maxPerCommand = n })
}

// FlushInterval makes a background goroutine flush the buffer every d, so
// that writes reach the database during quiet periods too. Default 0: no
// background flushes; the buffer is flushed when it is full, by
// [Sink.Flush] and by [Sink.Close].
func FlushInterval(d time.Duration) Option {
	return option(func(c *config) { c.flushInterval = d })
}

// MaxRetries bounds how many times one flush retries after transient
// errors before it gives up with [ErrRetriesExhausted]. 0 disables retries;
// -1 retries until the context passed to the flush is done. Default
// [DefaultMaxRetries].
func MaxRetries(n int) Option {
	return option(func(c *config) { c.maxRetries = n })
}

// Backoff sets the wait between retries: it starts at minimum, doubles at
// each retry of the same flush and is capped at maximum; each wait is
// jittered to a random duration between half and all of its nominal value.
// Defaults [DefaultMinBackoff] and [DefaultMaxBackoff].
func Backoff(minimum, maximum time.Duration) Option {
	return option(func(c *config) { c.minBackoff, c.maxBackoff = minimum, maximum })
}

// WriteConcern sets the write concern of every write. Default
// [writeconcern.Majority], so that an acknowledged write survives the loss
// of a replica set primary. nil inherits the write concern of the
// [*mongo.Database] given to [NewSink] (that is, of the client's options or
// of the w, journal and wtimeoutMS parameters of its URI). An
// unacknowledged write concern (w: 0) is rejected.
func WriteConcern(wc *writeconcern.WriteConcern) Option {
	return option(func(c *config) { c.writeConcern = wc })
}

// Logger sets the logger for retries, recoveries and rejected writes.
// nil, the default, means [slog.Default].
func Logger(l *slog.Logger) Option {
	return option(func(c *config) { c.logger = l })
}
