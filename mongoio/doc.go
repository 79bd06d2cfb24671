// Package mongoio writes records to MongoDB (through the official Go
// driver, go.mongodb.org/mongo-driver/v2) as batched, idempotent upserts:
// the load end of a pipeline that is effectively-once.
//
// # Semantics
//
// A [Sink] turns each record given to [Sink.Write] into a [Route]: the
// collection, the document's _id and the whole document. Writes are
// buffered; the buffer is flushed when it holds [BatchSize] writes, when
// [Sink.Flush] or [Sink.Close] is called, and every [FlushInterval] if
// that option is set. A flush sends, for each collection with buffered
// writes, one unordered bulk write of ReplaceOne models with upsert: true
// and the filter {_id: ID} (several bulk writes when the collection has
// more than [MaxWritesPerCommand] writes). So:
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
// ([Backoff]), up to [MaxRetries] times per flush: network errors,
// timeouts, server selection errors (the server is down or unreachable),
// connection pool clears, and server errors that carry a retryable code or
// label (a primary stepping down, a server shutting down, write concern
// timeouts and so on). Each retry is logged at WARN with its cause and
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
// Records that cannot be written at all (the route function fails, the
// document does not marshal, the collection name is invalid, the _id is
// missing or differs between [Route.ID] and the document) are refused by
// [Sink.Write] with [ErrInvalidRecord] before they enter the buffer.
//
// # Write concern, authentication and TLS
//
// Writes use [writeconcern.Majority] unless [WriteConcern] says otherwise,
// so that an acknowledged write survives the loss of a replica set
// primary; WriteConcern(nil) inherits the database's write concern, such
// as the w parameter of the connection string. Authentication and TLS are
// the client's business: put them in the URI
// (mongodb://user:password@host/?authSource=admin&tls=true&tlsCAFile=ca.pem)
// or in [options.ClientOptions]; the sink only ever sees the connected
// [*mongo.Database].
//
// # Concurrency
//
// A Sink is safe for concurrent use. Flushes run one at a time, and Write
// waits while a flush (its own, another goroutine's or the background
// one) is in progress, so a slow database slows the writers down. Write
// marshals the document before it waits.
//
// # MongoDB-compatible servers
//
// The sink needs only unordered bulk writes of ReplaceOne upserts,
// buildInfo and createIndexes, and never relies on retryable writes,
// sessions or transactions, so it also works with FerretDB v1 (the store
// of this module's tests), with two workarounds applied automatically:
// FerretDB's account of a bulk write with write errors is not trusted (see
// above), and its bulk writes are capped at 32 writes each (see
// [MaxWritesPerCommand]), because FerretDB v1.24 hangs on an update
// command that replaces 100 existing documents or more.
package mongoio
