// Package tmprom exports the statistics of Tidemark's stages, sinks and
// followers to Prometheus, as franz-go's kprom does for its client. It is
// a module of its own (github.com/tidemark-go/tidemark/plugin/tmprom), so
// that the library never brings the Prometheus client: add it to a
// program that serves metrics.
//
//	c, err := tmprom.New()
//	...
//	prometheus.MustRegister(c)
//	stage, err := kafkaio.NewStage("moving", in, op, out,
//		kafkaio.WithLatency(c.LatencyObserver("moving")))
//	...
//	err = c.AddStage("moving", stage)
//
// A [Collector] reads the Stats of what was added to it when it is
// scraped: the counters of kafkaio.StageStats, kafkaio.SinkStats,
// kafkaio.FollowerStats and mongoio.SinkStats become Prometheus counters,
// their gauges gauges, each series labelled with the name its source was
// added under. Nothing is counted twice and the processing goroutines pay
// nothing; only the processing latency is a histogram of its own, fed by
// kafkaio.WithLatency through [Collector.LatencyObserver].
//
// # Metrics
//
// Every name begins with the namespace, "tidemark" unless [WithNamespace]
// says otherwise. The names are stable: a statistic that a later version of
// the library adds gets a metric of its own, and no name changes meaning.
// Counters end in _total; the units of the rest are in their names
// (seconds, records) or they are plain numbers.
//
// A kafkaio stage ([Collector.AddStage]), label stage; the field of
// kafkaio.StageStats is in parentheses:
//
//	tidemark_stage_records_total              counter  records processed, replays not counted (Records)
//	tidemark_stage_replayed_total             counter  records read again to rebuild task state (Replayed)
//	tidemark_stage_reprocessed_total          counter  records processed again after an abort (Reprocessed)
//	tidemark_stage_accepted_total             counter  events the sequencers accepted (Accepted)
//	tidemark_stage_late_total                 counter  events dropped as late (Late)
//	tidemark_stage_duplicates_total           counter  events dropped as duplicates (Duplicates)
//	tidemark_stage_rejected_total             counter  records the decoder rejected (Rejected)
//	tidemark_stage_ahead_total                counter  events too far ahead of their record (Ahead)
//	tidemark_stage_dead_lettered_total        counter  records written to the dead-letter topic (DeadLettered)
//	tidemark_stage_emitted_total              counter  results written (Emitted)
//	tidemark_stage_refused_total              counter  results that could not be written (Refused)
//	tidemark_stage_commits_total              counter  transactions or offset commits (Commits)
//	tidemark_stage_aborts_total               counter  transactions aborted, commits failed (Aborts)
//	tidemark_stage_rebuilds_total             counter  tasks rebuilt after an abort (Rebuilds)
//	tidemark_stage_tasks                      gauge    tasks running now (Tasks)
//	tidemark_stage_lag_records                gauge    offsets to the end of the partitions, summed (Lag)
//	tidemark_stage_watermark_delay_seconds    gauge    wall clock less the watermark (Watermark)
//	tidemark_stage_watermark_timestamp_seconds gauge   the watermark, Unix time (Watermark)
//	tidemark_stage_processing_latency_seconds histogram from a record's arrival to the commit
//	                                                   of its results (kafkaio.WithLatency)
//
// The two watermark gauges are absent while the stage has no watermark
// (StageStats.Watermark is stream.MinTime: before its first task runs).
// The latency histogram's buckets are [DefaultLatencyBuckets] unless
// [WithLatencyBuckets] says otherwise.
//
// A kafkaio sink ([Collector.AddSink]), label sink; fields of
// kafkaio.SinkStats:
//
//	tidemark_kafka_sink_written_total             counter  records handed to the producer (Written)
//	tidemark_kafka_sink_acked_total               counter  records the brokers acknowledged (Acked)
//	tidemark_kafka_sink_failed_total              counter  records that failed (Failed)
//	tidemark_kafka_sink_resent_total              counter  records resent after a retriable failure (Resent)
//	tidemark_kafka_sink_outages_total             counter  times records were held back and resent (Outages)
//	tidemark_kafka_sink_dead_lettered_total       counter  records refused for good, dead-lettered (DeadLettered)
//	tidemark_kafka_sink_dead_letter_failed_total  counter  refused records whose dead letter failed (DeadLetterFailed)
//
// A kafkaio follower ([Collector.AddFollower]), labels follower and, but
// for the outages, topic (one series per topic of FollowerStats.Topics;
// the follower's totals are their sums):
//
//	tidemark_follower_records_total   counter  records of the topic delivered (Records)
//	tidemark_follower_partitions      gauge    partitions of the topic followed (Partitions)
//	tidemark_follower_lag_records     gauge    offsets to the end of the topic's partitions (Lag)
//	tidemark_follower_outages_total   counter  times the follower lost the brokers (Outages)
//
// A mongoio sink ([Collector.AddMongoSink]), label sink; fields of
// mongoio.SinkStats:
//
//	tidemark_mongo_sink_written_total        counter  writes acknowledged (Written)
//	tidemark_mongo_sink_upserted_total       counter  writes that created a document (Upserted)
//	tidemark_mongo_sink_rejected_total       counter  writes refused for good (Rejected)
//	tidemark_mongo_sink_deduplicated_total   counter  writes replaced in the buffer (Deduplicated)
//	tidemark_mongo_sink_batches_total        counter  successful bulk writes (Batches)
//	tidemark_mongo_sink_retries_total        counter  waits after transient errors (Retries)
//	tidemark_mongo_sink_buffered             gauge    writes waiting for the next flush (Buffered)
//
// # What belongs here
//
// Exporting the library's statistics to Prometheus, and nothing else. It is
// a module of its own, as franz-go's plugin/kprom, so that the library never
// brings the Prometheus client: add it with go get
// github.com/tidemark-go/tidemark/plugin/tmprom. It is tested with
// prometheus/client_golang v1.22.0, the version its go.mod requires.
//
// # Conventions
//
// They are the library's (see package stream). Options are With*
// functions, checked by [New], which returns an error wrapping
// [ErrInvalidOption] for a bad one instead of panicking; ErrInvalidOption
// matches stream.ErrInvalidOption. The Add methods return errors wrapping
// ErrInvalidOption or [ErrDuplicateName]. Labels common to every series
// (an instance, a job) are the registry's business:
// prometheus.WrapRegistererWith.
package tmprom
