// Package kafkaio runs Tidemark pipelines on Apache Kafka through
// IBM/sarama: a Stage is a member of a consumer group that runs one task per
// partition it is assigned and writes its results exactly once to Kafka, or
// at least once to a sink outside Kafka; a Sink produces events with an
// idempotent producer; codecs, EnsureTopics and the client settings
// (NewConfig, TLS, SASL) complete it.
//
//	cfg, _ := kafkaio.NewConfig(kafkaio.WithCompression(sarama.CompressionLZ4))
//	stage, _ := kafkaio.NewStage("moving",
//		kafkaio.Input[Price]{Topic: "btc-price", Decoder: priceCodec, Lateness: 10 * time.Second},
//		func() (stream.Operator[Price, []window.Statistics], error) { return newMovingOperator() },
//		kafkaio.ToTopic("btc-price-moving", movingCodec),
//		kafkaio.WithBrokers(brokers, cfg), kafkaio.WithDeadLetter("btc-price-dlq"))
//	err := stage.Run(ctx) // until ctx is done: then commits what is done and leaves
//
// # Stages and tasks
//
// A stage reads one topic (NewStage) or two co-partitioned topics
// (NewTwoInputStage: the same number of partitions, keys partitioned alike,
// as the Java client's murmur2 partitioner, NewConfig's, does). It runs a
// stream.Task for each partition number it is assigned, fed by that
// partition of each input, with an operator from the factory it was given:
// each task has its own watermarks, sequencers and operator state, so a key
// never meets another partition's data, an empty or slow partition holds
// back only its own task, and a two-input task's sides keep their identities
// and duplicates apart. The group's assignor is NewCoPartitionedStrategy: it
// gives partition p of every input to the same member, keeps assignments
// sticky, and rebalances cooperatively (a partition that moves is withheld
// until its old owner has released it; the others keep flowing). The
// topics' partition counts are checked when the stage starts
// (ErrNotCoPartitioned).
//
// # Chains and side outputs
//
// A stage runs one operator per task, and that operator may be a chain
// (stream.Chain, or an operator of your own that calls others) with several
// typed outputs: the main output (the Output given to NewStage) and side
// outputs (NewSide, given to WithSides), each to its own topic or sink,
// written in the same transaction. That is what Flink's operator chaining
// and a Kafka Streams sub-topology do: a pipeline of steps that would be
// several stages, each reading back what the one before wrote, runs as one
// stage that reads its input once and keeps the intermediate results in
// process. The lab's chained stage (examples/btc-pipeline, btc.NewChainedStage)
// runs its moving statistics, the join with the prices, the z-scores and
// the lookahead so, writing four topics with the records its three separate
// stages write; on Apache Kafka on two cores it reads 1.2 to 1.3 times as
// many prices per second, with half the latency. Separate stages remain
// the choice when the steps must scale, restart or be deployed apart.
//
// One goroutine, the stage's loop, decodes records, runs the tasks, encodes
// and produces results and commits; sarama's goroutines fetch, heartbeat and
// send. More throughput on more cores comes from more stage members (in one
// process or several), as with Kafka Streams threads.
//
// # Exactly once, to Kafka
//
// A stage whose output is ToTopic or ToTopics writes its results, its dead
// letters and the offsets it consumed in Kafka transactions, with a
// transactional producer of its own, one per stage member (Kafka's
// "exactly_once_v2"):
//
//   - every WithCommitInterval (100 ms by default) or WithCommitRecords, and
//     when a partition is revoked or the stage stops, the loop adds each
//     task's checkpoints (offset and metadata, see below) to the transaction
//     with the member's group metadata, its generation and member id
//     (KIP-447: AddOffsetsToTxn, then TxnOffsetCommit v3), and commits it;
//   - a member the group has left behind (its partitions moved while it was
//     stuck) is refused when it commits (ILLEGAL_GENERATION,
//     UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID): its transaction is aborted and
//     nothing it produced becomes visible;
//   - consumers read read_committed, and fetch committed offsets with
//     RequireStable: a partition's new owner waits while a transaction that
//     commits its offsets is still open, so it never starts behind results
//     that are about to appear;
//   - a revoked partition's claim returns only after the transaction holding
//     its results has committed (or aborted, then the next owner redoes
//     them);
//   - the transaction timeout (WithTransactionTimeout, 10 s) stays below the
//     group's session timeout (NewConfig: 30 s), so that an expelled member's
//     transaction is over by the time its partitions move;
//   - an abort, a record that failed on its way (a broker away), a fenced
//     producer or a commit whose outcome is unknown (a timeout) are handled
//     as a crash of every task of the member: the transaction is aborted
//     (the producer replaced when it cannot be, which fences the old one and
//     ends its transaction), and each task is rebuilt from the committed
//     offsets and fed again the records it had read since, into the next
//     transaction. Aborts in a row back off up to 5 s. A producer fenced
//     again and again means another member shares its transactional id: Run
//     returns an error. A result that can never be written is another
//     matter (see Results that cannot be written).
//
// WithInstanceID makes a member static (KIP-345) with the transactional id
// "<group>-<id>": restarted, it takes its partitions back at once and its
// first transaction aborts what the previous incarnation left open. Without
// it the member is dynamic, its transactional id random, and an open
// transaction of a dead member blocks read_committed readers of its output
// partitions until the transaction timeout.
//
// The producer (kafkaio/internal/batchtxn) speaks Kafka's transaction
// protocol through sarama's request types and Broker methods
// (InitProducerID, AddPartitionsToTxn, Produce with idempotent sequence
// numbers, AddOffsetsToTxn, TxnOffsetCommit, EndTxn), and builds the record
// batches itself: a result is encoded once, in Kafka's record format, into
// its partition's batch when it is emitted, batches leave as they fill (one
// request per leader in flight while the next batches fill) and at each
// commit. sarama's AsyncProducer moves every record through a chain of
// goroutines and channels instead, and encodes each batch's records twice;
// the stage's own producer takes about a third of its CPU per record
// (BenchmarkTxnProduce in that package). A result without a partition goes
// to the one the client's Producer.Partitioner picks, over the topic's
// partitions as the client's metadata gave them at the start of the
// transaction. Batches keep within each output
// topic's max.message.bytes; a batch the brokers refuse for its records
// gives them back to the runtime as suspects (see Results that cannot be
// written). sarama also provides RequireStable offset fetches for
// read_committed groups and the consumer group; what it lacks, this package
// adds: offset fetches that return the commit metadata (fetchCommitted),
// offset commits that report their errors (commitOffsets, at least once),
// reading a partition range to rebuild a task, treating a fenced producer as
// recoverable, and tying the transaction to the life of each claim. An
// at-least-once stage's dead letters go through sarama's idempotent
// AsyncProducer.
//
// # State rebuilt by replay, with no store besides Kafka
//
// The metadata committed with each partition's offset (stream.Checkpoint,
// "tm2 r=<replay offset> m=<largest time> w=<watermark>", under 100 bytes,
// far below Kafka's offset.metadata.max.bytes of 4096) says where the records
// that the task's pending results depend on begin: the first record at or
// after W - Ahead - Back, W the task's watermark and Bounds its operator's
// (stream.Bounds), tracked exactly as records arrive, without timestamp
// lookups, so record timestamps may be anything. When a task starts (a
// partition assigned, a member restarted, a transaction aborted) it fetches
// the committed offsets and metadata, reads the records from the replay
// offset to the committed offset through a consumer of its own, pushes them
// with its output suppressed, and then goes on from the committed offset:
// it emits exactly what the task that committed would have emitted next.
// Offsets committed without metadata (another tool) start afresh, without
// replay. A replay needs the input's retention to cover the largest window
// plus the lateness; when records are gone, the task says so (its replay
// does not reproduce the checkpoint) and goes on.
//
// Results are written with their event time as the record timestamp. Kafka's
// time-based retention goes by record timestamps: on an output topic with
// retention.ms (the broker's default is 7 days), results of events older
// than that are deleted at the broker's next retention check (every 5
// minutes by default), a few minutes after they were committed, while the
// offsets that produced them stay committed. A stage that processes history
// (a replay of an old trace) needs output topics that keep records by size
// or not at all (retention.ms -1), or timestamps set by the broker
// (message.timestamp.type LogAppendTime); EnsureTopics takes the setting.
//
// The price of this design is the replay: a task that moves re-reads up to
// Back + Ahead + the lateness of its input (an hour and a minute for the
// example's moving averages), in the stage's loop, before it processes new
// records.
//
// # Results that cannot be written
//
// Some results can never be written, however often the transaction is
// tried again: one too large for its topic (a 900,000-character symbol in
// the key and the value), one its codec cannot encode, one the broker
// refuses for what it is (a timestamp beyond the topic's
// message.timestamp.after.max.ms, a policy), a document the store refuses
// (a sink's error matching stream.ErrRejected, or a *stream.RejectedError
// from its Flush). Retrying would stop every record behind it for ever, as
// Kafka Streams' thread and Flink's restarts do. A stage instead writes the
// input record the result comes from to its dead-letter topic, in the same
// transaction as the other results (for a stage writing to a sink: flushed
// before the offsets are committed), untouched but for being cut to fit,
// with the headers tidemark-error (the reason), tidemark-error-kind
// ("refused-too-large", "refused-encode", "refused-refused" for the
// broker's, "refused-sink"), tidemark-output-topic, tidemark-size and the
// record's tidemark-topic, -partition and -offset; it counts the result in
// StageStats.Refused and goes on. With WithOnRecordError(StopOnRecordError),
// or without a dead-letter topic, Run returns a *RecordError naming the
// stage, the record and the output instead, aborting the open transaction,
// so that nothing past the record is committed (Kafka Streams'
// ProductionExceptionHandler answering FAIL).
//
// The input record of a result is the one whose event has the result's key
// and time (stream.Task.Origin): right for every per-event operator (maps,
// trailing windows, the lookahead, the join, whose left record is taken).
// A result of many events (a tumbling window's aggregate), or one an idle
// advance made final, has no such record: the result itself is
// dead-lettered, cut to fit, with the record whose arrival made it final in
// the coordinates' headers when there is one. Each input record is
// dead-lettered once per transaction, however many of its results fail.
//
// The decision is the same in every run over the same records, so that
// exactly once holds across crashes: what is checked before a result is
// sent depends on the result and the topic's settings alone (its size
// against the smaller of Producer.MaxMessageBytes and the topic's
// max.message.bytes, read when the stage starts; the encoding; the router's
// topic). What the broker refuses after the result was sent fails the whole
// transaction: the stage aborts it and rebuilds its tasks as after any
// abort, remembering the refused results by topic, key and time; when a
// rebuilt task emits one of them again, the stage sends it alone, after
// every record before it is acknowledged: refused again, its input is
// dead-lettered from then on; written, it is forgotten. A run after a crash
// learns the same the same way. (A timestamp refused against the broker's
// clock is the one decision that depends on when it is made: a replay much
// later may write what was refused.) A dead letter the dead-letter topic
// itself refuses for good stops the stage: it has nowhere else to go.
//
// A record larger than its topic's max.message.bytes (less a batch header)
// or the producer's Producer.MaxMessageBytes is refused before it is sent.
// The brokers also refuse a whole batch larger than its topic's limit: an
// exactly-once stage's batches keep within the smaller of the two limits
// (a record that would pass it starts the partition's next batch), and an
// at-least-once stage's dead letters, sent through sarama, which batches up
// to the producer's limit, wait when the bytes in flight to a topic with a
// smaller limit would pass it, until the records before them are
// acknowledged. A dead letter is cut to fit the dead-letter topic.
//
// # At least once, to a sink
//
// A stage whose output is ToSink writes its results to a stream.Sink
// (mongoio's, say) and commits offsets itself: at each commit it flushes the
// sink (stream.Flusher) and the dead-letter producer, and then commits the
// offsets with their metadata in an OffsetCommit request as the member and
// generation of its session, whose errors it reports. A failed flush or
// commit is handled as an abort: the tasks are rebuilt from the committed
// offsets and their results written again. After a crash, the results since
// the last commit are written again, with the same values (tasks are
// deterministic): a sink that upserts by identity holds each exactly once.
//
// # Records and events
//
// A Codec turns a record's key, value and timestamp into a stream.Event and
// an event's value into bytes. JSON (encoding/json) and Raw are built in; a
// pipeline brings its own codec for speed or validation. A record the codec
// rejects is never fatal: it is counted (StageStats.Rejected), logged once
// per kind of error, and, with WithDeadLetter, written untouched to a
// dead-letter topic with the headers tidemark-error (the reason),
// tidemark-error-kind, tidemark-topic, tidemark-partition, tidemark-offset
// and tidemark-stage, in the same transaction as the results.
//
// # Events from the future and quiet inputs
//
// Input.MaxAhead refuses events whose time is further ahead than it of
// their record's timestamp (of the largest event time of their partition,
// for records without one): such an event is counted (StageStats.Ahead),
// logged once and dead-lettered with the kind "too-far-ahead", and it never
// moves the watermark, so that one event dated 2099 cannot make every later
// event of its partition late. The record's timestamp is stored with the
// record, so a replay takes the same decision; it must come from a clock of
// its own (a LogAppendTime topic, or producers that stamp records with
// their wall clock, Kafka's default) for the bound to catch anything. See
// package stream, Events from the future.
//
// A stage advances with event time only: when its input goes quiet, the
// results of the last events wait for a later event. WithIdleAdvance makes
// a task whose input has had no record for a timeout, as the brokers
// confirm (no record on its way, no transaction open: a broker away is not
// a quiet input), advance its watermark by the wall time since its last
// record, so that they come out, within the input's lateness, the
// operator's reach ahead and the timeout, and are committed; the checkpoint
// carries what the advance did, so that recovery stays exact (package
// stream, Idle inputs). It is off by default, and meant for inputs that raw
// producers write: an input another stage writes is Input.Final, whose
// events are released as they come.
//
// StageStats.Lag counts the records between each partition's position and
// its end. A topic written in transactions ends with markers that a
// read_committed consumer never receives; when a claim has been quiet for
// a second, the stage asks the partition's leader what lies beyond it, and
// a claim that only markers (or aborted records) follow has a lag of 0.
//
// # Outages and configuration
//
// A broker that is not up when the stage starts, or that goes away, is
// waited for with capped backoff and clear log lines; the consumer group
// rejoins, the producer is replaced, and the tasks are rebuilt from the
// committed offsets. Run returns an error only for what retrying cannot fix:
// a topic the stage reads or writes (its outputs and its dead-letter topic)
// that does not exist, when it starts or when a write says it is gone
// (ErrMissingTopic: the stage's clients never create topics; WithEnsureTopics
// creates them first), denied authorization, topics that are not
// co-partitioned, a member whose transactional id another member uses, a
// result that cannot be written with StopOnRecordError.
//
// # Profiling
//
// A stage's goroutines, and those its sarama clients start, carry the
// runtime/pprof label ProfileLabel ("tidemark.stage") with the stage's
// group as its value. In a process that runs several stages (as a Kafka
// Streams application runs several sub-topologies), a CPU profile reads one
// stage at a time: `go tool pprof -tags FILE` lists the stages' shares, and
// `go tool pprof -tagfocus tidemark.stage=GROUP FILE` shows one. The labels
// cost nothing unless a profile is taken. The Go runtime's own work (its
// collector, the scheduler) carries no label.
//
// # Producing with a Sink
//
// The Sink produces with sarama's asynchronous producer, idempotent and with
// acks from all in-sync replicas (NewConfig), batching per partition and
// compressing as the client's config says (WithBatch, WithCompression). An
// event with an empty key becomes a record with a null key. Write returns as
// soon as the record is handed over; Flush waits until every record written
// is acknowledged and returns the first delivery error (*ProduceError), as
// does every Write after a failure. With WithDeadLetter, a record the brokers
// will refuse whenever it is sent (too large, a timestamp the topic refuses,
// an invalid record) goes to the dead-letter topic with its reason instead
// of failing the Sink (see Sink). Produce writes a stream.Source into a Sink
// to its end, with a bounded final flush; Partition says which partition a
// key goes to.
//
// # Security
//
// WithTLS and WithSASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, the SCRAM client
// being github.com/xdg-go/scram) configure every client of a stage or sink;
// PLAIN should only be used over TLS.
//
// # What belongs here, and the versions tested
//
// Everything that talks to Kafka: stages (NewStage, NewTwoInputStage, their
// outputs, sides and options), the Sink and Produce, the Follower, codecs,
// topics (EnsureTopics, Partition) and the client settings. An in-process
// cluster for tests is package kafkatest; a Prometheus exporter of the
// statistics is the module github.com/tidemark-go/tidemark/plugin/tmprom, so
// that this package does not bring the Prometheus client.
//
// It is tested with IBM/sarama v1.61.1, the version go.mod requires, against
// Apache Kafka 4.1.1 (KRaft; the integration tier of .ci/run, plain and
// SASL over TLS) and kfake. Your module gets that version unless it asks for
// a newer one (go get github.com/IBM/sarama@latest): newer versions are
// untested; pin it with go get github.com/IBM/sarama@v1.61.1. The runtime
// builds Kafka requests with sarama's protocol types (see "Exactly once, to
// Kafka"), so a sarama upgrade is a change of this package, with its tests.
//
// # Conventions
//
// They are package stream's. Options are With* functions, checked when the
// value they configure is made: NewConfig, NewSink, NewStage and
// NewTwoInputStage return an error wrapping ErrInvalidOption for an invalid
// option or argument, and one wrapping ErrInvalidConfig for a
// *sarama.Config that a Sink or Stage cannot work with (NewConfig's always
// fits), instead of panicking or failing later. ErrInvalidOption matches
// stream.ErrInvalidOption, so errors.Is(err, stream.ErrInvalidOption)
// recognises it, as it does mongoio's. An option fits the constructors its
// type names: ConfigOption for NewConfig, SinkOption for NewSink,
// StageOption for the stages, and Option (WithLogger, WithBrokers,
// WithDeadLetter) for a Sink and a Stage alike. WithRouter[T] takes a type parameter that NewSink
// checks against the Sink's, for the reason stream's WithLateSink gives.
//
// Errors that callers branch on are sentinels (ErrInvalidOption,
// ErrInvalidConfig, ErrClosed, ErrTopicMismatch, ErrNotCoPartitioned,
// ErrStageRunning, ErrMissingTopic, ErrRecordRefused), all in errors.go,
// wrapped with details, *ProduceError for a record the brokers did not
// take and *RecordError for an input record whose result a stage could not
// write: test them with errors.Is and errors.As, not by comparing errors or
// messages.
//
// What waits for the brokers takes a context.Context: Stage.Run,
// Sink.Write, Sink.Flush, Sink.Close and EnsureTopics. Run returns once ctx
// is done, after its final commit; Sink.Close waits for the records in
// flight while ctx lasts (an outage may hold them back for up to the
// delivery timeout), and when ctx ends first it says how many are left and
// keeps them, as mongoio's Sink.Close does with its buffer. NewSink, given
// WithBrokers, connects its client without a context, as sarama does.
//
// Ownership follows stream's: an event given to Sink.Write, or to the
// stream.Sink of ToSink, is only valid during the call. Sink.Write encodes
// the value and copies the key before it returns, so the caller may reuse
// the event's memory at once; a Codec's Decode gets record bytes that are
// only valid during the call. A Sink owns the client WithBrokers made it,
// and closes it in Close; a client passed to NewSink stays the caller's, to
// close after the Sink. A Stage makes and closes its own clients.
//
// A Sink is safe for concurrent use (Write, Flush, Stats and Close). A
// Stage runs once (Run returns ErrStageRunning to a second call), on one
// processing goroutine of its own that calls its codecs, operators and
// ToSink's sink; Stats may be called from any goroutine. Both report with
// a method Stats: the counters of SinkStats and StageStats are uint64, as
// mongoio's SinkStats are, because they only grow; StageStats' gauges
// (Tasks, Lag) are int64, and its Watermark a stream.Time.
//
// # Examples
//
// The package's examples run against an in-process kfake broker:
// ExampleNewConfig, ExampleEnsureTopics, ExampleNewSink and ExampleNewStage.
//
// # Tests
//
// The package's tests run against an in-process kfake cluster and, when the
// environment variable TIDEMARK_KAFKA_BROKERS names one (start it with
// scripts/kafka/broker.sh start), against a real Kafka broker as well:
// crashes at random points and inside transactions, a member joining and
// leaving, a zombie member, a broker restart, a produce the broker refuses,
// each compared record by record with an uninterrupted run.
package kafkaio
