package tmprom

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/mongoio"
	"github.com/tidemark-go/tidemark/stream"
)

// metric is one metric read from a statistics struct S: the field of S it
// reads (TestEveryField checks that every field of S has one), its name
// after the namespace and the subsystem, its help, its type, and how to
// read it, given the wall clock; ok false leaves the series out of the
// scrape.
type metric[S any] struct {
	field string
	name  string
	help  string
	kind  prometheus.ValueType
	value func(s *S, now time.Time) (v float64, ok bool)
}

func counter[S any](field, name, help string, read func(*S) uint64) metric[S] {
	return metric[S]{field, name, help, prometheus.CounterValue, func(s *S, _ time.Time) (float64, bool) { return float64(read(s)), true }}
}

func gauge[S any, N int64 | uint64](field, name, help string, read func(*S) N) metric[S] {
	return metric[S]{field, name, help, prometheus.GaugeValue, func(s *S, _ time.Time) (float64, bool) { return float64(read(s)), true }}
}

// The subsystems: the second part of the metric names.
const (
	stageSubsystem     = "stage"
	sinkSubsystem      = "kafka_sink"
	followerSubsystem  = "follower"
	mongoSinkSubsystem = "mongo_sink"
)

// stageMetrics are the metrics of a kafkaio.StageStats, labelled stage.
var stageMetrics = []metric[kafkaio.StageStats]{
	counter("Records", "records_total", "Records the stage processed, not counting replays (StageStats.Records).",
		func(s *kafkaio.StageStats) uint64 { return s.Records }),
	counter("Replayed", "replayed_total", "Records the stage read again to rebuild task state (StageStats.Replayed).",
		func(s *kafkaio.StageStats) uint64 { return s.Replayed }),
	counter("Reprocessed", "reprocessed_total", "Records the stage processed again after an abort, also counted once in records_total (StageStats.Reprocessed).",
		func(s *kafkaio.StageStats) uint64 { return s.Reprocessed }),
	counter("Accepted", "accepted_total", "Events the tasks' sequencers accepted (StageStats.Accepted).",
		func(s *kafkaio.StageStats) uint64 { return s.Accepted }),
	counter("Late", "late_total", "Events dropped as late (StageStats.Late).",
		func(s *kafkaio.StageStats) uint64 { return s.Late }),
	counter("Duplicates", "duplicates_total", "Events dropped as duplicates (StageStats.Duplicates).",
		func(s *kafkaio.StageStats) uint64 { return s.Duplicates }),
	counter("Rejected", "rejected_total", "Records the decoder rejected (StageStats.Rejected).",
		func(s *kafkaio.StageStats) uint64 { return s.Rejected }),
	counter("Ahead", "ahead_total", "Events refused as too far ahead of their record (StageStats.Ahead).",
		func(s *kafkaio.StageStats) uint64 { return s.Ahead }),
	counter("DeadLettered", "dead_lettered_total", "Input records written to the dead-letter topic (StageStats.DeadLettered).",
		func(s *kafkaio.StageStats) uint64 { return s.DeadLettered }),
	counter("Emitted", "emitted_total", "Results the stage wrote (StageStats.Emitted).",
		func(s *kafkaio.StageStats) uint64 { return s.Emitted }),
	counter("Refused", "refused_total", "Results that could not be written for good (StageStats.Refused).",
		func(s *kafkaio.StageStats) uint64 { return s.Refused }),
	counter("Commits", "commits_total", "Transactions, or offset commits, committed (StageStats.Commits).",
		func(s *kafkaio.StageStats) uint64 { return s.Commits }),
	counter("Aborts", "aborts_total", "Transactions aborted, or commits that failed (StageStats.Aborts).",
		func(s *kafkaio.StageStats) uint64 { return s.Aborts }),
	counter("Rebuilds", "rebuilds_total", "Tasks rebuilt after an abort (StageStats.Rebuilds).",
		func(s *kafkaio.StageStats) uint64 { return s.Rebuilds }),
	gauge("Tasks", "tasks", "Tasks the stage runs now (StageStats.Tasks).",
		func(s *kafkaio.StageStats) int64 { return s.Tasks }),
	gauge("Lag", "lag_records", "Offsets between the last record the stage received and the end of its partitions, summed (StageStats.Lag).",
		func(s *kafkaio.StageStats) int64 { return s.Lag }),
	{"Watermark", "watermark_delay_seconds", "Wall clock less the stage's watermark, in seconds; absent while the stage has no watermark (StageStats.Watermark).",
		prometheus.GaugeValue, func(s *kafkaio.StageStats, now time.Time) (float64, bool) {
			if s.Watermark == stream.MinTime {
				return 0, false
			}
			return float64(stream.TimeOf(now)-s.Watermark) / 1000, true
		}},
	{"Watermark", "watermark_timestamp_seconds", "The stage's watermark, in seconds since the Unix epoch; absent while the stage has no watermark (StageStats.Watermark).",
		prometheus.GaugeValue, func(s *kafkaio.StageStats, _ time.Time) (float64, bool) {
			if s.Watermark == stream.MinTime {
				return 0, false
			}
			return float64(s.Watermark) / 1000, true
		}},
}

// sinkMetrics are the metrics of a kafkaio.SinkStats, labelled sink.
var sinkMetrics = []metric[kafkaio.SinkStats]{
	counter("Written", "written_total", "Records handed to the producer (kafkaio.SinkStats.Written).",
		func(s *kafkaio.SinkStats) uint64 { return s.Written }),
	counter("Acked", "acked_total", "Records the brokers acknowledged (kafkaio.SinkStats.Acked).",
		func(s *kafkaio.SinkStats) uint64 { return s.Acked }),
	counter("Failed", "failed_total", "Records that failed (kafkaio.SinkStats.Failed).",
		func(s *kafkaio.SinkStats) uint64 { return s.Failed }),
	counter("Resent", "resent_total", "Records resent after a retriable failure (kafkaio.SinkStats.Resent).",
		func(s *kafkaio.SinkStats) uint64 { return s.Resent }),
	counter("Outages", "outages_total", "Times records had to be held back and resent (kafkaio.SinkStats.Outages).",
		func(s *kafkaio.SinkStats) uint64 { return s.Outages }),
	counter("DeadLettered", "dead_lettered_total", "Records the brokers refused for good, written to the dead-letter topic instead (kafkaio.SinkStats.DeadLettered).",
		func(s *kafkaio.SinkStats) uint64 { return s.DeadLettered }),
	counter("DeadLetterFailed", "dead_letter_failed_total", "Refused records whose dead letter could not be written either, dropped (kafkaio.SinkStats.DeadLetterFailed).",
		func(s *kafkaio.SinkStats) uint64 { return s.DeadLetterFailed }),
}

// followerMetrics are the metrics of a kafkaio.FollowerStats, labelled
// follower. Its Records, Partitions and Lag are the sums of its Topics',
// exported per topic by followerTopicMetrics.
var followerMetrics = []metric[kafkaio.FollowerStats]{
	counter("Outages", "outages_total", "Times the follower lost the brokers (FollowerStats.Outages).",
		func(s *kafkaio.FollowerStats) uint64 { return s.Outages }),
}

// followerTopicMetrics are the metrics of a kafkaio.FollowerTopicStats,
// labelled follower and topic.
var followerTopicMetrics = []metric[kafkaio.FollowerTopicStats]{
	counter("Records", "records_total", "Records of the topic the follower delivered (FollowerTopicStats.Records).",
		func(s *kafkaio.FollowerTopicStats) uint64 { return s.Records }),
	gauge("Partitions", "partitions", "Partitions of the topic the follower follows (FollowerTopicStats.Partitions).",
		func(s *kafkaio.FollowerTopicStats) int64 { return s.Partitions }),
	gauge("Lag", "lag_records", "Offsets between the next record to deliver and the end of the topic's partitions, summed (FollowerTopicStats.Lag).",
		func(s *kafkaio.FollowerTopicStats) int64 { return s.Lag }),
}

// mongoSinkMetrics are the metrics of a mongoio.SinkStats, labelled sink.
var mongoSinkMetrics = []metric[mongoio.SinkStats]{
	counter("Written", "written_total", "Writes the server acknowledged, each a document created or replaced (mongoio.SinkStats.Written).",
		func(s *mongoio.SinkStats) uint64 { return s.Written }),
	counter("Upserted", "upserted_total", "Writes that created a document (mongoio.SinkStats.Upserted).",
		func(s *mongoio.SinkStats) uint64 { return s.Upserted }),
	counter("Rejected", "rejected_total", "Writes the server refused for good (mongoio.SinkStats.Rejected).",
		func(s *mongoio.SinkStats) uint64 { return s.Rejected }),
	counter("Deduplicated", "deduplicated_total", "Writes replaced in the buffer by a later write of the same _id (mongoio.SinkStats.Deduplicated).",
		func(s *mongoio.SinkStats) uint64 { return s.Deduplicated }),
	counter("Batches", "batches_total", "Successful bulk writes (mongoio.SinkStats.Batches).",
		func(s *mongoio.SinkStats) uint64 { return s.Batches }),
	counter("Retries", "retries_total", "Waits after transient errors (mongoio.SinkStats.Retries).",
		func(s *mongoio.SinkStats) uint64 { return s.Retries }),
	gauge("Buffered", "buffered", "Writes waiting for the next flush (mongoio.SinkStats.Buffered).",
		func(s *mongoio.SinkStats) uint64 { return s.Buffered }),
}

// descs makes the descriptors of ms, with the variable labels.
func descs[S any](namespace, subsystem string, ms []metric[S], labels ...string) []*prometheus.Desc {
	out := make([]*prometheus.Desc, len(ms))
	for i, m := range ms {
		out[i] = prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, m.name), m.help, labels, nil)
	}
	return out
}

// send sends the metrics ms of s, with their descriptors ds and the label
// values.
func send[S any](ch chan<- prometheus.Metric, ms []metric[S], ds []*prometheus.Desc, s *S, now time.Time, labels ...string) {
	for i, m := range ms {
		if v, ok := m.value(s, now); ok {
			ch <- prometheus.MustNewConstMetric(ds[i], m.kind, v, labels...)
		}
	}
}
