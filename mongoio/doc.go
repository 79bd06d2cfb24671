// Package mongoio writes records to MongoDB (through the official Go
// driver, go.mongodb.org/mongo-driver/v2) as batched, idempotent upserts:
// the load end of a pipeline that is effectively-once.
//
// # Semantics
//
// A [Sink] turns each record given to [Sink.Write] into a [Route]: the
// collection, the document's _id and the whole document. Writes are
// buffered; the buffer is flushed when it holds [WithBatchSize] writes, when
// [Sink.Flush] or [Sink.Close] is called, and every [WithFlushInterval] if
// that option is set. A flush sends, for each collection with buffered
// writes, one unordered bulk write of ReplaceOne models with upsert: true
// and the filter {_id: ID} (several bulk writes when the collection has
// more than [WithMaxWritesPerCommand] writes); with [WithInsertFirst],
// the default on FerretDB, it inserts the documents first and replaces
// only those whose _id exists already with other content. It writes up to
// [WithFlushConcurrency] collections at a time. So:
//
//   - writing a record again (a replay after a restart) replaces the
//     document with the same content, and never creates a second one;
//   - the latest write of an _id wins, in the buffer (an earlier buffered
//     write of the same collection and _id is dropped, as an unordered bulk
//     write could otherwise apply the two in any order) and across flushes
//     (flushes never overlap);
//   - a document is replaced whole: fields of an older version that the
//     new one lacks disappear.
//
// There is no ordering across collections, and no atomicity: a flush that
// fails halfway has written part of the buffer. Idempotence makes both
// harmless for a loader that replays from its last checkpoint.
//
// Effectively-once delivery from a log such as Kafka: write every record,
// call [Sink.Flush], and commit the consumer's offsets only when Flush has
// returned nil (or only an [ErrRejected] error whose records were sent to a
// dead-letter queue). A crash before the commit replays records whose
// upserts are already applied, which changes nothing.
//
// # Errors and retries
//
// Transient errors are retried with exponential backoff and jitter
// ([WithBackoff]), up to [WithMaxRetries] times and for up to
// [WithMaxRetryTime] per flush: network errors, timeouts, server selection
// errors (the server is down or unreachable), connection pool clears, and
// server errors that carry a retryable code or label (a primary stepping
// down, a server shutting down, write concern timeouts and so on). Each retry is logged at WARN with its cause and
// wait, and a flush that succeeds after retries is logged at INFO.
//
// On a transient error the sink sends again every write of the collections
// whose bulk write was not acknowledged; the collections acknowledged
// earlier in the same flush are not sent again. A write that the server
// applied before its acknowledgement was lost is applied a second time,
// which an upsert makes harmless.
//
// A server that rejects individual writes for good (a duplicate key on a
// unique index other than _id, a document that fails schema validation or
// that the server cannot store) gets them reported, not retried: the flush
// writes everything else and returns a [*RejectedError] that lists the
// rejected records, for a dead-letter queue. The server's account of which
// writes failed is trusted when its counts add up; otherwise (FerretDB v1,
// for one, stops an unordered batch at its first failing write) the sink
// sends that collection's writes one at a time to find them. Other errors
// that are not transient (an authorization failure, an invalid write
// concern) end the flush at once and leave the buffer as it was.
//
// # Outages
//
// A store that is down, or that accepts connections but never answers,
// does not block a writer forever and does not make the buffer grow
// without bound:
//   - each attempt of a flush ends after [WithAttemptTimeout] (a hung server's
//     attempt fails as a transient error), and a flush gives up with
//     [ErrRetriesExhausted] after [WithMaxRetries] retries or [WithMaxRetryTime],
//     whichever comes first, keeping the writes it could not make;
//   - the buffer holds at most [WithMaxBuffered] writes: a Write beyond that
//     flushes first (back-pressure: the writer waits for the flush and its
//     retries) and, if that fails too, refuses the record with
//     [ErrBufferFull];
//   - [Sink.Close] never drops a buffered write: if its final flush fails it
//     says so and leaves the sink open with the writes, so that the caller
//     neither loses them nor takes them as written (a stream stage must not
//     commit the input positions of writes a failed Close still holds).
//
// Records that cannot be written at all (the route function fails, the
// document does not marshal, the collection name is invalid, the _id is
// missing or differs between [Route.ID] and the document) are refused by
// [Sink.Write] with [ErrInvalidRecord] before they enter the buffer.
//
// # Write concern, authentication and TLS
//
// Writes use [writeconcern.Majority] unless [WithWriteConcern] says otherwise,
// so that an acknowledged write survives the loss of a replica set
// primary; WithWriteConcern(nil) inherits the database's write concern, such
// as the w parameter of the connection string. Authentication and TLS are
// the client's business: put them in the URI
// (mongodb://user:password@host/?authSource=admin&tls=true&tlsCAFile=ca.pem)
// or in [options.ClientOptions]; the sink only ever sees the connected
// [*mongo.Database].
//
// # What belongs here, and the versions tested
//
// Writing to MongoDB: the Sink of records, the EventSink of stream events
// (a kafkaio stage's ToSink output), their options and errors. An
// in-process MongoDB-compatible server for tests is the module
// github.com/tidemark-go/tidemark/mongotest, so that this package does not
// bring FerretDB.
//
// It is tested with go.mongodb.org/mongo-driver/v2 v2.10.0, the version
// go.mod requires, against FerretDB v1.24 on SQLite and on PostgreSQL (see
// MongoDB-compatible servers); not against MongoDB itself, whose behaviour
// the package follows from its documentation. Pin the driver with go get
// go.mongodb.org/mongo-driver/v2@v2.10.0 if go mod tidy picks a newer one.
//
// # Conventions
//
// They are package stream's, as in package kafkaio. Options are With*
// functions, checked by [NewSink], which returns an error wrapping
// [ErrInvalidOption] for an invalid option or argument (a nil database or
// route function, a batch size below 1) instead of panicking or failing
// later; ErrInvalidOption matches [stream.ErrInvalidOption], so
// errors.Is(err, stream.ErrInvalidOption) recognises it, as it does
// kafkaio's. A choice is an option of its own rather than a boolean:
// [WithInsertFirst] or [WithUpsertOnly], or neither for the server's
// default.
//
// Errors that callers branch on are sentinels ([ErrInvalidOption],
// [ErrInvalidRecord], [ErrRejected], [ErrRetriesExhausted],
// [ErrBufferFull], [ErrClosed]), wrapped with details and the driver's
// error: test them with errors.Is, not by comparing errors or messages;
// errors.As gets the rejected records from a [*RejectedError].
//
// What talks to the server takes a context.Context: [Sink.Write] (which
// flushes a full buffer), [Sink.Flush], [Sink.Close] and
// [Sink.EnsureIndexes]. A flush that ctx ends keeps the writes it has not
// made, and Close keeps the sink open with them, as kafkaio's Sink.Close
// keeps the records it still has in flight. [NewSink] does not contact the
// server. The sink does not own the database's client: the caller
// disconnects it after Close.
//
// Write takes a record of the sink's type T, not a stream.Event[T]: a sink
// stores documents, and what an event's key and time become in a document
// (its _id, fields) is the route function's choice, as is how many
// documents an event makes. So [Sink] is not a stream.Sink; a stage adapts
// its events to records, as the BTC pipeline's Loader
// (examples/btc-pipeline/internal/btc) does, one document per window of
// each event, and gives the adapter to kafkaio.ToSink. The sink has
// kafkaio's Sink's other methods: Flush, Close(ctx) and Stats, whose
// [SinkStats] counters are uint64 as kafkaio's are.
//
// Ownership differs from stream.Sink's, whose values are only valid during
// Write: Write marshals the document before it returns, so later changes to
// the record or to [Route.Doc] do not change what is written, but it keeps
// the record itself, by value, until the write is acknowledged or its
// rejection reported, to give it back in a [Rejection] if the server
// refuses it for good. The record is
// handed over: for a T of plain values that is a copy, but the memory that
// a T's pointers, slices or maps refer to must not be modified after Write
// (pass a copy when you reuse buffers), or a Rejection's Record shows the
// modified contents. The BTC pipeline's Loader builds a new document for
// each write.
//
// A Sink is safe for concurrent use. Flushes run one at a time, and Write
// waits while a flush (its own, another goroutine's or the background
// one) is in progress, so a slow database slows the writers down. Write
// marshals the document before it waits. The route function is called
// from the goroutine that calls Write, concurrently when Write is.
//
// # MongoDB-compatible servers
//
// The sink needs only unordered bulk writes of inserts and ReplaceOne
// upserts, finds by _id, buildInfo and createIndexes, and never relies on
// retryable writes, sessions or transactions, so it also works with
// FerretDB v1 (the store of this module's tests). On FerretDB, detected by
// its buildInfo reply, the sink changes its defaults: it inserts first
// ([WithInsertFirst]), as FerretDB v1.24 reads a whole collection to find the
// document of each upsert; it writes one collection at a time
// ([WithFlushConcurrency]), as concurrent writers to SQLite wait for each
// other; its bulk writes of replacements are capped at 32 writes each
// ([WithMaxWritesPerCommand]) and run one at a time, because FerretDB v1.24
// hangs on an update command, or on concurrent ones, that replace as many
// existing documents as it has backend connections; and FerretDB's
// account of a bulk write with write errors is not trusted (see above).
//
// # Throughput on FerretDB
//
// BenchmarkLoad (in bench_test.go) measures the load path of a pipeline
// that makes one document per price event in each of 6 collections (one
// per window) and flushes before each offset commit, on FerretDB v1.24.2
// embedded in the benchmark's process. Medians of 6 alternated runs of
// each case, in documents per second, on a shared 2-core virtual machine
// with an ext4 disk that was busy with other work at the time (spread
// ±20-50%); "fresh" flushes write D new documents into collections of C
// documents each, "replay" flushes write D documents again, unchanged, as
// after a restart:
//
//	flush of D,         SQLite FULL      SQLite NORMAL    PostgreSQL 15
//	collections of C    old     new      old     new      old     new    new, 6 at once
//	fresh   600, 0      1330  19600      2210  23500      1290  16000    20900
//	fresh  3000, 0       590  25400       810  28300      1140  18900    24100
//	fresh   600, 2000    114  19500       122  24700       520  15100    19900
//	replay  600, 100    2300   5800      2510   6200      2410   2000     3300
//	replay 3000, 500     820   5700       810   6100      1780   2000     4000
//	replay  600, 2000    127    950       116   1000       700    730      830
//
// Old is the behaviour before [WithInsertFirst] and [WithFlushConcurrency]:
// upserts only, one collection at a time. New is the defaults on
// FerretDB: inserts first, one collection at a time; "6 at once" adds
// WithFlushConcurrency(6). SQLite FULL is FerretDB's setup; NORMAL adds the
// pragma synchronous(normal). A second run, 10 rounds of the new cases
// under heavier load, gave the same ratios: WithFlushConcurrency(6) 15-27%
// slower on SQLite and 40-100% faster on PostgreSQL, NORMAL 0-30% faster
// than FULL.
//
// Where the time goes (CPU profiles and syscall traces of the benchmark):
// an upsert on FerretDB v1 is a transaction of its own, which SQLite FULL
// syncs to disk (a third of the time in empty collections), and FerretDB
// finds its document by reading every row of the collection and parsing
// its JSON (three quarters of the time at 2,000 documents per collection,
// 9 ms per document): the old load path slows down as the collections
// grow, and the pipeline's grow for good. Inserts use the _id index and
// are committed a hundred per transaction, so the syncs take a tenth of
// the time; the rest is CPU, about 40 µs per document on one core: three
// quarters in FerretDB (converting each document to its types and to
// JSON, SQLite executing the inserts and updating the _id index), under a
// fifth in the driver and under a tenth in the sink. Concurrent flushes
// do not help on SQLite, which writes one transaction at a time per
// database: concurrent writers wait in SQLite's busy handler. On
// PostgreSQL each transaction is a round trip to the server, which
// WithFlushConcurrency(6) overlaps. A replay costs, per collection, an insert
// that FerretDB retries one document at a time when it fails (a round
// trip each on PostgreSQL) and one find that reads the collection once;
// replacing each document, as the old path did, read it once per
// document.
//
// So, for a load stage that flushes before each offset commit: on the
// embedded FerretDB, use SQLite with the defaults, and keep synchronous at
// FULL: NORMAL gains about 15% but loses the last commits to a power
// failure or an operating system crash, after the offsets that cover them
// were committed, which breaks effectively-once delivery. PostgreSQL is
// not faster here (as fast for new documents with WithFlushConcurrency(6),
// slower for replays); use it when PostgreSQL itself is wanted (a server
// shared by several loaders or outliving the machine's disk), with
// WithFlushConcurrency set to the number of collections. Flushes of a few
// thousand documents are a little faster than flushes of a few hundred.
// On MongoDB the defaults (upserts, 6 collections at once) need no change.
//
// Reproduce (the PostgreSQL cases run when scripts/postgres/pg.sh has
// started a server):
//
//	eval "export $(scripts/postgres/pg.sh start)"
//	go test -run '^$' -bench BenchmarkLoad -benchmem -count=6 ./mongoio/ | tee load.txt
//	benchstat -col /sink -row '/write /docs /coll' -filter '/store:sqlite-full' load.txt
//	scripts/postgres/pg.sh stop
package mongoio
