// Package embedded runs the services Tidemark talks to inside the current
// process: a Kafka-protocol cluster ([Kafka], backed by
// github.com/twmb/franz-go/pkg/kfake) and a MongoDB wire-compatible store
// ([Mongo], backed by FerretDB v1 with its SQLite backend).
//
// It is not public API: it lives under internal/ so that the library's
// adapter tests and the example binary's default mode share one way of
// starting these services, and it may change without notice.
//
// Both services listen on 127.0.0.1 only, on a random port unless an option
// fixes one, and are stopped by Close.
// Tests usually start them through package
// github.com/tidemark-go/tidemark/internal/embedded/embeddedtest, which ties
// their lifetime to a [testing.TB].
//
// # Kafka
//
// kfake speaks the Kafka protocol well enough for IBM/sarama to use it as a
// real broker: produce and fetch, classic consumer groups (join, sync,
// heartbeat, offset commit and fetch), idempotent producers and
// transactions (InitProducerID, AddPartitionsToTxn, AddOffsetsToTxn,
// TxnOffsetCommit, EndTxn) with read_committed fetches. Known differences
// from Apache Kafka: there is no replication (every broker holds every
// partition in memory unless [KafkaDataDir] is given), no quota throttling,
// no initial rebalance delay for consumer groups, and a minimum group
// session timeout of 6 s as in Kafka's default.
//
// # Mongo
//
// FerretDB translates the MongoDB wire protocol to SQL on SQLite files in a
// directory. It supports the CRUD commands, bulk writes, upserts and
// createIndexes (including unique indexes), but not transactions, change
// streams or retryable writes: it reports itself as a standalone server,
// so the Go driver never retries a write on its own. FerretDB logs every
// command it does not implement at WARN, so [Mongo] discards its logs
// unless [MongoLogger] is given. Bugs of FerretDB v1.24.2 worth knowing:
//
//   - an update command (a bulk write of updates or replacements) whose
//     statements match 100 existing documents or more hangs for good and
//     wedges that database until the server stops, because each matching
//     statement holds one of the 100 SQLite connections until the command
//     ends; keep such bulk writes to a few dozen writes;
//   - an update command ignores ordered: false: it stops at its first
//     failing statement and reports that failure at index 0;
//   - a createIndexes command that lists several indexes that all exist
//     already panics, and FerretDB drops the connection; creating them one
//     per command works;
//   - every write of an update command is its own SQLite transaction, and
//     an upsert finds its _id by scanning the collection, so bulk upserts
//     run at a few hundred to a few thousand documents per second, slower
//     as the collection grows; inserts are committed a hundred per
//     transaction through the _id index (about 20,000 documents per second
//     on 2 cores), which is why mongoio inserts first on FerretDB (see its
//     package documentation).
//
// [Mongo.Stop] and [Mongo.Start] stop and restart the server on the same
// port and data directory, which lets tests simulate a database outage:
// Stop drops every client connection at once, as a crash would (FerretDB
// alone would keep serving open connections for up to 3 s). A client
// created before the outage gets a network error on its next operation
// (the driver then clears its connection pool) and reconnects once the
// server is back.
//
// A Kafka cluster restarts by closing it and calling [NewKafka] again with
// the same [KafkaPorts] and [KafkaDataDir].
package embedded
