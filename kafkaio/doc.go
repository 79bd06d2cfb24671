// Package kafkaio connects Tidemark pipelines to Apache Kafka through
// IBM/sarama: a Source that reads topics as a member of a consumer group and
// commits offsets only once the results of the records are durable, a Sink
// that produces with an idempotent producer, codecs, EnsureTopics, and the
// client settings (NewConfig, TLS, SASL) that make them safe.
//
//	cfg, _ := kafkaio.NewConfig(kafkaio.WithCompression(sarama.CompressionLZ4))
//	in, _ := sarama.NewClient(brokers, cfg)  // one client per Source
//	out, _ := sarama.NewClient(brokers, cfg)
//	src, _ := kafkaio.NewSource(in, "moving", []string{"btc-price"}, codec,
//		kafkaio.WithDeadLetter("btc-price-dlq"), kafkaio.WithHorizon(20*time.Second))
//	sink, _ := kafkaio.NewSink(out, movingCodec, kafkaio.WithTopic("btc-price-moving"))
//	stats, err := stream.Run(ctx, src, op, sink)
//	// then: src.Close(), sink.Close(), close the clients
//
// # Records and events
//
// A Codec turns a record's key, value and timestamp into a stream.Event and an
// event's value into bytes; the record key is the event key and the record
// timestamp the event time. JSON (encoding/json) and Raw are built in; a
// pipeline brings its own codec for speed or validation. A record the codec
// rejects is never fatal: it is counted (SourceStats.Rejected), logged once per
// kind of error, and, with WithDeadLetter, produced untouched to a dead-letter
// topic with the headers tidemark-error (the reason), tidemark-error-kind,
// tidemark-topic, tidemark-partition and tidemark-offset.
//
// Each partition of the consumed topics gets a number of its own for the
// watermarks (stream.Record.Partition), stable for the life of the Source and
// unique across topics; TopicPartition maps it back.
//
// # Commits: at least once
//
// The Source marks and commits an offset only after every result derived from
// the records before it has been acknowledged by the sink. stream.Run calls
// Checkpoint(wm) after the sink's Flush succeeded; at that point every result
// of an event with time t < wm - horizon is out, where the horizon
// (WithHorizon) is the operator's dependency delay: how long after t a result
// of the event at t may still wait for later events (the lookahead's 20 s, a
// tumbling window's length; 0 for per-event results such as trailing windows).
// So, per partition, the Source commits the offset just past the longest
// prefix of consumed records that are done: records with t + horizon < wm,
// and dead-lettered records, which are done once the dead-letter topic
// acknowledged them (before they reach Poll). A record is marked done only
// through the checkpoints that follow the Poll that returned it. Commits are
// synchronous and at most one per WithCommitInterval (1 s); marks that wait
// for the interval are committed when it has passed, even if the stream went
// quiet. A failed commit is logged and retried at the next one. The commit
// metadata carries the checkpoint watermark ("tidemark:v1:wm=<ms>"), for the
// state rebuild of exactly-once stages.
//
// Late and duplicate records are committed by the same rule, not as soon as the
// watermark passes them: the Source cannot tell a late or duplicate record
// from a record read again after a rebalance whose first copy is still
// waiting for its results (see below). This costs at most one horizon of
// commit delay and never a result.
//
// After a crash, consumption resumes at the committed offsets: no record whose
// results were not durable is skipped, and records after the committed offset
// are processed again (their results may be emitted twice; sinks keyed by
// event identity, such as mongoio's upserts, absorb that). Windowed operators
// need the events before the committed offset to compute the same results
// again; rebuilding that state on restart is the job of exactly-once stages
// (rewinding by the largest window plus the lateness), not of this package.
//
// # Rebalances
//
// The lifecycle of a partition is tied to sarama's ConsumeClaim, so eager and
// cooperative assignors behave alike. NewConfig picks cooperative-sticky, which
// moves only the partitions that change owner (all members of a group must
// use compatible assignors). When a claim starts, the partition is reported
// as assigned (stream.Rebalancer); when it ends (revoked, or the session or
// the Source closes), before sarama lets the group move on:
//
//   - the offsets found done by the last checkpoint are marked and committed
//     synchronously;
//   - the partition's records that were decoded but not yet polled are dropped,
//     and Poll never returns a record of it again;
//   - the claim is forgotten: later checkpoints never mark or commit the
//     partition again, so an old owner cannot overwrite the new owner's
//     commits (the partition's next claim, here or elsewhere, starts from the
//     committed offset with a fresh record of what it hands out);
//   - the partition is reported as revoked (stream.Rebalancer), so that it stops
//     holding the watermark back (stream.Run applies the changes; a runner
//     that does not keeps counting a revoked partition, and needs an idle
//     timeout, stream.WithIdleTimeout, to let it go).
//
// The guarantee: an offset is committed only by the member that consumed the
// records before it, only after their results were flushed, and never after
// the member gave the partition up (a member expelled without noticing, after
// a long pause, is stopped by the broker's generation check); so a committed
// record is never delivered again, to any member, and no record is skipped. Records handed out but not
// done when the partition moves are read again by the next owner from the
// committed offset, while the old owner may still emit their results from what
// it holds, when its watermark passes them: around a rebalance, results may be
// emitted twice. When the same member gets the partition back (an eager
// rebalance), the records it reads again are dropped by its Sequencer as
// duplicates or late (counted in stream.Stats), so one process never emits a
// result twice.
//
// Known limit, until exactly-once stages rewind and replay partitions that
// move: the new owner's watermark may already be above some records it reads
// again; its Sequencer drops them as late, and their results then come only
// from the old owner, which emits them only if its watermark still advances
// (it keeps other partitions) and it does not stop first.
//
// # Producing
//
// The Sink produces with sarama's asynchronous producer, idempotent and with
// acks from all in-sync replicas (NewConfig), batching per partition and
// compressing as the client's config says (WithBatch, WithCompression). An
// event with an empty key becomes a record with a null key, which the
// partitioner places at random. Write returns as soon as the record is handed over; Flush waits until every record
// written is acknowledged and returns the first delivery error
// (*ProduceError, "kafkaio: produce topic/partition: ..."), as does every
// Write after a failure.
//
// # Security
//
// WithTLS and WithSASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, the SCRAM client
// being github.com/xdg-go/scram) configure the client; PLAIN should only be
// used over TLS.
//
// # Tests
//
// The package's tests run against an in-process kfake cluster and, when the
// environment variable TIDEMARK_KAFKA_BROKERS names one (start it with
// scripts/kafka/broker.sh start), against a real Kafka broker as well.
package kafkaio
