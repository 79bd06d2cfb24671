package tmprom_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/mongoio"
	"github.com/tidemark-go/tidemark/plugin/tmprom"
	"github.com/tidemark-go/tidemark/stream"
)

// The library's types are sources of their kind.
var (
	_ tmprom.Stage     = (*kafkaio.Stage)(nil)
	_ tmprom.Sink      = (*kafkaio.Sink[string])(nil)
	_ tmprom.Follower  = (*kafkaio.Follower)(nil)
	_ tmprom.MongoSink = (*mongoio.Sink[string])(nil)
	_ tmprom.MongoSink = (*mongoio.EventSink[string])(nil)
)

// Fixed statistics, for the tests that need no broker.
type (
	fakeStage     kafkaio.StageStats
	fakeSink      kafkaio.SinkStats
	fakeFollower  kafkaio.FollowerStats
	fakeMongoSink mongoio.SinkStats
)

func (f fakeStage) Stats() kafkaio.StageStats            { return kafkaio.StageStats(f) }
func (f fakeSink) Stats() kafkaio.SinkStats              { return kafkaio.SinkStats(f) }
func (f fakeFollower) Stats() kafkaio.FollowerStats      { return kafkaio.FollowerStats(f) }
func (f fakeMongoSink) Stats() mongoio.SinkStats         { return mongoio.SinkStats(f) }
func (f *recordedStage) Stats() kafkaio.StageStats       { f.last = f.s.Stats(); return f.last }
func (f *recordedSink) Stats() kafkaio.SinkStats         { f.last = f.s.Stats(); return f.last }
func (f *recordedFollower) Stats() kafkaio.FollowerStats { f.last = f.s.Stats(); return f.last }

// The recorded sources keep the statistics of the last scrape, to compare
// the scrape with while the sources run.
type (
	recordedStage struct {
		s    *kafkaio.Stage
		last kafkaio.StageStats
	}
	recordedSink struct {
		s    tmprom.Sink
		last kafkaio.SinkStats
	}
	recordedFollower struct {
		s    *kafkaio.Follower
		last kafkaio.FollowerStats
	}
)

// scrape gathers c through a pedantic registry (which checks the metrics
// against their descriptors) and returns each series' value by its name
// and labels, as the text format writes them (name{a="x",b="y"}); a
// histogram gives its _count and _sum.
func scrape(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c), "register the collector")
	mfs, err := reg.Gather()
	require.NoError(t, err, "gather")
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := func(suffix string) string { return mf.GetName() + suffix + "{" + strings.Join(labels, ",") + "}" }
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key("")] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key("")] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key("_count")] = float64(m.GetHistogram().GetSampleCount())
				out[key("_sum")] = m.GetHistogram().GetSampleSum()
			default:
				t.Fatalf("unexpected metric type %v of %s", mf.GetType(), mf.GetName())
			}
		}
	}
	return out
}

// stageSeries returns the series that st gives the stage name, at now.
func stageSeries(name string, st kafkaio.StageStats, now time.Time) map[string]float64 {
	l := fmt.Sprintf("{stage=%q}", name)
	out := map[string]float64{
		"tidemark_stage_records_total" + l:       float64(st.Records),
		"tidemark_stage_replayed_total" + l:      float64(st.Replayed),
		"tidemark_stage_reprocessed_total" + l:   float64(st.Reprocessed),
		"tidemark_stage_accepted_total" + l:      float64(st.Accepted),
		"tidemark_stage_late_total" + l:          float64(st.Late),
		"tidemark_stage_duplicates_total" + l:    float64(st.Duplicates),
		"tidemark_stage_rejected_total" + l:      float64(st.Rejected),
		"tidemark_stage_ahead_total" + l:         float64(st.Ahead),
		"tidemark_stage_dead_lettered_total" + l: float64(st.DeadLettered),
		"tidemark_stage_emitted_total" + l:       float64(st.Emitted),
		"tidemark_stage_refused_total" + l:       float64(st.Refused),
		"tidemark_stage_commits_total" + l:       float64(st.Commits),
		"tidemark_stage_aborts_total" + l:        float64(st.Aborts),
		"tidemark_stage_rebuilds_total" + l:      float64(st.Rebuilds),
		"tidemark_stage_tasks" + l:               float64(st.Tasks),
		"tidemark_stage_lag_records" + l:         float64(st.Lag),
	}
	if st.Watermark != stream.MinTime {
		out["tidemark_stage_watermark_delay_seconds"+l] = float64(stream.TimeOf(now)-st.Watermark) / 1000
		out["tidemark_stage_watermark_timestamp_seconds"+l] = float64(st.Watermark) / 1000
	}
	return out
}

// subset returns the series of m whose names begin with prefix.
func subset(m map[string]float64, prefix string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

type price struct {
	Symbol string    `json:"symbol"`
	Price  float64   `json:"price"`
	Time   time.Time `json:"time"`
}

var priceCodec = kafkaio.JSON[price]{
	Key:  func(p *price) (string, error) { return p.Symbol, nil },
	Time: func(p *price) (stream.Time, error) { return stream.TimeOf(p.Time), nil },
}

// quiet is the logger of the stages, sinks and followers of the tests.
var quiet = slog.New(slog.DiscardHandler)

func newConfig(t *testing.T) *sarama.Config {
	t.Helper()
	cfg, err := kafkaio.NewConfig()
	require.NoError(t, err, "kafkaio.NewConfig")
	return cfg
}

// TestStage runs a stage on kafkatest with a late event, a duplicate and a
// record that is not JSON, and compares a scrape with the stage's Stats.
func TestStage(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, kafkatest.WithTopic("prices", 1), kafkatest.WithTopic("out", 1), kafkatest.WithTopic("dlq", 1))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	t0 := time.Date(2025, 5, 8, 4, 12, 38, 352e6, time.UTC)
	var msgs []*sarama.ProducerMessage
	for _, v := range []string{
		fmt.Sprintf(`{"symbol":"BTCUSDT","price":1,"time":%q}`, t0.Format(time.RFC3339Nano)),
		fmt.Sprintf(`{"symbol":"BTCUSDT","price":2,"time":%q}`, t0.Add(time.Second).Format(time.RFC3339Nano)),
		fmt.Sprintf(`{"symbol":"BTCUSDT","price":2,"time":%q}`, t0.Add(time.Second).Format(time.RFC3339Nano)), // a duplicate
		`not json`,
		fmt.Sprintf(`{"symbol":"BTCUSDT","price":3,"time":%q}`, t0.Add(2*time.Second).Format(time.RFC3339Nano)),
		fmt.Sprintf(`{"symbol":"BTCUSDT","price":4,"time":%q}`, t0.Add(3*time.Second).Format(time.RFC3339Nano)),
		fmt.Sprintf(`{"symbol":"BTCUSDT","price":5,"time":%q}`, t0.Add(1500*time.Millisecond).Format(time.RFC3339Nano)), // late
	} {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: "prices", Key: sarama.StringEncoder("BTCUSDT"), Value: sarama.StringEncoder(v)})
	}
	require.NoError(t, k.Produce(ctx, msgs...), "produce the prices")

	now := t0.Add(time.Hour)
	c, err := tmprom.New(tmprom.WithClock(func() time.Time { return now }))
	require.NoError(t, err, "New")
	stage, err := kafkaio.NewStage("tmprom-test", kafkaio.Input[price]{Topic: "prices", Decoder: priceCodec, Lateness: 0},
		func() (stream.Operator[price, float64], error) {
			return stream.Map(func(e stream.Event[price]) float64 { return e.Value.Price }), nil
		},
		kafkaio.ToTopic("out", kafkaio.JSON[float64]{}),
		kafkaio.WithBrokers(k.Addrs(), newConfig(t)), kafkaio.WithDeadLetter("dlq"), kafkaio.WithLogger(quiet),
		kafkaio.WithLatency(c.LatencyObserver("prices")))
	require.NoError(t, err, "NewStage")
	rec := &recordedStage{s: stage}
	require.NoError(t, c.AddStage("prices", rec), "AddStage")

	before := scrape(t, c)
	want := stageSeries("prices", rec.last, now)
	want[`tidemark_stage_processing_latency_seconds_count{stage="prices"}`] = 0
	want[`tidemark_stage_processing_latency_seconds_sum{stage="prices"}`] = 0
	assert.Equal(t, want, subset(before, "tidemark_stage_"),
		"before Run: the counters at zero, no watermark, the histogram empty")

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- stage.Run(runCtx) }()
	defer func() {
		stop()
		require.NoError(t, <-done, "Run")
	}()
	// With no lateness a price is final once a later one is seen: the
	// first three are emitted, the fourth waits.
	require.Eventually(t, func() bool {
		st := stage.Stats()
		return st.Records == 7 && st.Emitted == 3 && st.Commits > 0 && st.Watermark != stream.MinTime
	}, time.Minute, 10*time.Millisecond, "the stage processes the prices")

	got := scrape(t, c)
	st := rec.last
	t.Logf("stats of the scrape: %+v", st)
	want = stageSeries("prices", st, now)
	for k, v := range want {
		assert.Equal(t, v, got[k], "%s equals the stage's Stats of the scrape", k)
	}
	assert.Equal(t, 7.0, got[`tidemark_stage_records_total{stage="prices"}`], "every record")
	assert.Equal(t, 4.0, got[`tidemark_stage_accepted_total{stage="prices"}`], "four prices accepted")
	assert.Equal(t, 1.0, got[`tidemark_stage_late_total{stage="prices"}`], "the late price")
	assert.Equal(t, 1.0, got[`tidemark_stage_duplicates_total{stage="prices"}`], "the duplicate")
	assert.Equal(t, 1.0, got[`tidemark_stage_rejected_total{stage="prices"}`], "the record that is not JSON")
	assert.Equal(t, 1.0, got[`tidemark_stage_dead_lettered_total{stage="prices"}`], "dead-lettered")
	assert.Equal(t, 3.0, got[`tidemark_stage_emitted_total{stage="prices"}`], "three results")
	assert.Equal(t, 1.0, got[`tidemark_stage_tasks{stage="prices"}`], "one task per partition")
	delay := got[`tidemark_stage_watermark_delay_seconds{stage="prices"}`]
	assert.InDelta(t, time.Hour.Seconds()-3, delay, 3, "the watermark is about the last price, an hour before the clock")
	assert.InDelta(t, now.Sub(stream.Time(got[`tidemark_stage_watermark_timestamp_seconds{stage="prices"}`]*1000).UTC()).Seconds(), delay, 1e-9,
		"the delay is the clock less the watermark's timestamp")
	assert.Positive(t, got[`tidemark_stage_processing_latency_seconds_count{stage="prices"}`], "latency observed after a commit")
	assert.Positive(t, got[`tidemark_stage_processing_latency_seconds_sum{stage="prices"}`], "latency observed after a commit")
}

// TestSinkAndFollower writes through a kafkaio sink on kafkatest and reads
// the topic with a follower, and compares a scrape with their Stats.
func TestSinkAndFollower(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, kafkatest.WithTopic("prices", 2), kafkatest.WithTopic("other", 1))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := tmprom.New()
	require.NoError(t, err, "New")

	sink, err := kafkaio.NewSink(nil, kafkaio.JSON[float64]{}, kafkaio.WithTopic("prices"), kafkaio.WithBrokers(k.Addrs(), newConfig(t)), kafkaio.WithLogger(quiet))
	require.NoError(t, err, "NewSink")
	defer func() { require.NoError(t, sink.Close(context.Background()), "close the sink") }()
	rs := &recordedSink{s: sink}
	require.NoError(t, c.AddSink("prices", rs), "AddSink")
	f, err := kafkaio.NewFollower(nil, []string{"prices", "other"}, kafkaio.FromOldest(), kafkaio.WithBrokers(k.Addrs(), newConfig(t)), kafkaio.WithLogger(quiet))
	require.NoError(t, err, "NewFollower")
	defer func() { require.NoError(t, f.Close(), "close the follower") }()
	rf := &recordedFollower{s: f}
	require.NoError(t, c.AddFollower("view", rf), "AddFollower")

	t0 := stream.TimeOf(time.Date(2025, 5, 8, 4, 12, 38, 0, time.UTC))
	for i, key := range []string{"BTCUSDT", "ETHUSDT", "BTCUSDT", "SOLUSDT", "ETHUSDT"} {
		require.NoError(t, sink.Write(ctx, stream.Event[float64]{Key: key, Time: t0 + stream.Time(i), Value: float64(i)}), "write")
	}
	require.NoError(t, sink.Flush(ctx), "flush")
	require.NoError(t, f.Start(ctx), "start the follower")
	buf := make([]*sarama.ConsumerMessage, 10)
	for read := 0; read < 5; {
		n, err := f.Poll(ctx, buf)
		require.NoError(t, err, "poll")
		read += n
	}

	got := scrape(t, c)
	st, ft := rs.last, rf.last
	assert.Equal(t, kafkaio.SinkStats{Written: 5, Acked: 5}, st, "the sink's Stats of the scrape")
	assert.Equal(t, map[string]float64{
		`tidemark_kafka_sink_written_total{sink="prices"}`:            5,
		`tidemark_kafka_sink_acked_total{sink="prices"}`:              5,
		`tidemark_kafka_sink_failed_total{sink="prices"}`:             0,
		`tidemark_kafka_sink_resent_total{sink="prices"}`:             0,
		`tidemark_kafka_sink_outages_total{sink="prices"}`:            0,
		`tidemark_kafka_sink_dead_lettered_total{sink="prices"}`:      0,
		`tidemark_kafka_sink_dead_letter_failed_total{sink="prices"}`: 0,
	}, subset(got, "tidemark_kafka_sink_"), "the sink's metrics")
	require.Len(t, ft.Topics, 2, "the follower's topics")
	assert.Equal(t, uint64(5), ft.Records, "the follower delivered every record")
	assert.Equal(t, map[string]float64{
		`tidemark_follower_records_total{follower="view",topic="prices"}`: float64(ft.Topics[0].Records),
		`tidemark_follower_partitions{follower="view",topic="prices"}`:    2,
		`tidemark_follower_lag_records{follower="view",topic="prices"}`:   float64(ft.Topics[0].Lag),
		`tidemark_follower_records_total{follower="view",topic="other"}`:  0,
		`tidemark_follower_partitions{follower="view",topic="other"}`:     1,
		`tidemark_follower_lag_records{follower="view",topic="other"}`:    float64(ft.Topics[1].Lag),
		`tidemark_follower_outages_total{follower="view"}`:                0,
	}, subset(got, "tidemark_follower_"), "the follower's metrics, per topic")
	assert.Equal(t, 5.0, got[`tidemark_follower_records_total{follower="view",topic="prices"}`], "records of prices")
	assert.Empty(t, subset(got, "tidemark_stage_"), "no stage, no stage metrics")
}

// TestExposition checks the text format of a scrape, HELP and TYPE lines
// included, on fixed statistics of every kind.
func TestExposition(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 5, 8, 4, 13, 0, 0, time.UTC)
	c, err := tmprom.New(tmprom.WithNamespace("lab"), tmprom.WithClock(func() time.Time { return now }),
		tmprom.WithLatencyBuckets(0.01, 0.1, 1))
	require.NoError(t, err, "New")
	wm := stream.TimeOf(now.Add(-2500 * time.Millisecond))
	require.NoError(t, c.AddStage("moving", fakeStage{Records: 10, Emitted: 7, Tasks: 3, Lag: 2, Watermark: wm}), "AddStage")
	require.NoError(t, c.AddStage("idle", fakeStage{Watermark: stream.MinTime}), "AddStage")
	require.NoError(t, c.AddSink("extract", fakeSink{Written: 4, Acked: 3, Failed: 1}), "AddSink")
	require.NoError(t, c.AddMongoSink("load", fakeMongoSink{Written: 9, Upserted: 8, Buffered: 2}), "AddMongoSink")
	require.NoError(t, c.AddFollower("view", fakeFollower{Records: 6, Partitions: 3, Lag: 1, Outages: 1,
		Topics: []kafkaio.FollowerTopicStats{{Topic: "a", Records: 6, Partitions: 2, Lag: 1}, {Topic: "b", Partitions: 1}}}), "AddFollower")
	c.LatencyObserver("moving")(50*time.Millisecond, 2)

	want := `
# HELP lab_stage_records_total Records the stage processed, not counting replays (StageStats.Records).
# TYPE lab_stage_records_total counter
lab_stage_records_total{stage="idle"} 0
lab_stage_records_total{stage="moving"} 10
# HELP lab_stage_emitted_total Results the stage wrote (StageStats.Emitted).
# TYPE lab_stage_emitted_total counter
lab_stage_emitted_total{stage="idle"} 0
lab_stage_emitted_total{stage="moving"} 7
# HELP lab_stage_tasks Tasks the stage runs now (StageStats.Tasks).
# TYPE lab_stage_tasks gauge
lab_stage_tasks{stage="idle"} 0
lab_stage_tasks{stage="moving"} 3
# HELP lab_stage_lag_records Offsets between the last record the stage received and the end of its partitions, summed (StageStats.Lag).
# TYPE lab_stage_lag_records gauge
lab_stage_lag_records{stage="idle"} 0
lab_stage_lag_records{stage="moving"} 2
# HELP lab_stage_watermark_delay_seconds Wall clock less the stage's watermark, in seconds; absent while the stage has no watermark (StageStats.Watermark).
# TYPE lab_stage_watermark_delay_seconds gauge
lab_stage_watermark_delay_seconds{stage="moving"} 2.5
# HELP lab_stage_watermark_timestamp_seconds The stage's watermark, in seconds since the Unix epoch; absent while the stage has no watermark (StageStats.Watermark).
# TYPE lab_stage_watermark_timestamp_seconds gauge
lab_stage_watermark_timestamp_seconds{stage="moving"} 1.7466775775e+09
# HELP lab_stage_processing_latency_seconds Time from a record's arrival at the stage to the end of the commit that made its results and offset durable, in seconds (kafkaio.WithLatency).
# TYPE lab_stage_processing_latency_seconds histogram
lab_stage_processing_latency_seconds_bucket{stage="moving",le="0.01"} 0
lab_stage_processing_latency_seconds_bucket{stage="moving",le="0.1"} 2
lab_stage_processing_latency_seconds_bucket{stage="moving",le="1"} 2
lab_stage_processing_latency_seconds_bucket{stage="moving",le="+Inf"} 2
lab_stage_processing_latency_seconds_sum{stage="moving"} 0.1
lab_stage_processing_latency_seconds_count{stage="moving"} 2
# HELP lab_kafka_sink_written_total Records handed to the producer (kafkaio.SinkStats.Written).
# TYPE lab_kafka_sink_written_total counter
lab_kafka_sink_written_total{sink="extract"} 4
# HELP lab_kafka_sink_acked_total Records the brokers acknowledged (kafkaio.SinkStats.Acked).
# TYPE lab_kafka_sink_acked_total counter
lab_kafka_sink_acked_total{sink="extract"} 3
# HELP lab_kafka_sink_failed_total Records that failed (kafkaio.SinkStats.Failed).
# TYPE lab_kafka_sink_failed_total counter
lab_kafka_sink_failed_total{sink="extract"} 1
# HELP lab_follower_records_total Records of the topic the follower delivered (FollowerTopicStats.Records).
# TYPE lab_follower_records_total counter
lab_follower_records_total{follower="view",topic="a"} 6
lab_follower_records_total{follower="view",topic="b"} 0
# HELP lab_follower_partitions Partitions of the topic the follower follows (FollowerTopicStats.Partitions).
# TYPE lab_follower_partitions gauge
lab_follower_partitions{follower="view",topic="a"} 2
lab_follower_partitions{follower="view",topic="b"} 1
# HELP lab_follower_outages_total Times the follower lost the brokers (FollowerStats.Outages).
# TYPE lab_follower_outages_total counter
lab_follower_outages_total{follower="view"} 1
# HELP lab_mongo_sink_written_total Writes the server acknowledged, each a document created or replaced (mongoio.SinkStats.Written).
# TYPE lab_mongo_sink_written_total counter
lab_mongo_sink_written_total{sink="load"} 9
# HELP lab_mongo_sink_upserted_total Writes that created a document (mongoio.SinkStats.Upserted).
# TYPE lab_mongo_sink_upserted_total counter
lab_mongo_sink_upserted_total{sink="load"} 8
# HELP lab_mongo_sink_buffered Writes waiting for the next flush (mongoio.SinkStats.Buffered).
# TYPE lab_mongo_sink_buffered gauge
lab_mongo_sink_buffered{sink="load"} 2
`
	names := []string{"lab_stage_records_total", "lab_stage_emitted_total", "lab_stage_tasks", "lab_stage_lag_records",
		"lab_stage_watermark_delay_seconds", "lab_stage_watermark_timestamp_seconds", "lab_stage_processing_latency_seconds",
		"lab_kafka_sink_written_total", "lab_kafka_sink_acked_total", "lab_kafka_sink_failed_total",
		"lab_follower_records_total", "lab_follower_partitions", "lab_follower_outages_total",
		"lab_mongo_sink_written_total", "lab_mongo_sink_upserted_total", "lab_mongo_sink_buffered"}
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want), names...), "the exposition")
	// 18 stage metrics of moving, 16 of idle (no watermark), the histogram,
	// 7 of the sink, 3 per topic and 1 of the follower, 7 of the MongoDB sink.
	assert.Equal(t, 18+16+1+7+2*3+1+7, testutil.CollectAndCount(c), "every series")
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err, "lint")
	assert.Empty(t, problems, "the metrics follow Prometheus's naming conventions")
}

func TestOptions(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		opt  tmprom.Option
		msg  string
	}{
		{"empty namespace", tmprom.WithNamespace(""), `tmprom: invalid option: namespace ""`},
		{"namespace with a dash", tmprom.WithNamespace("my-app"), `namespace "my-app"`},
		{"namespace with a digit first", tmprom.WithNamespace("1app"), `namespace "1app"`},
		{"nil clock", tmprom.WithClock(nil), "nil clock"},
		{"no buckets", tmprom.WithLatencyBuckets(), "no latency buckets"},
		{"buckets not increasing", tmprom.WithLatencyBuckets(1, 1), "latency buckets [1 1]"},
		{"negative bucket", tmprom.WithLatencyBuckets(-1, 1), "latency buckets [-1 1]"},
		{"infinite bucket", tmprom.WithLatencyBuckets(1, math.Inf(1)), "latency buckets"},
		{"nil option", nil, "nil option"},
	} {
		c, err := tmprom.New(tt.opt)
		assert.Nil(t, c, "%s: no collector", tt.name)
		require.Error(t, err, tt.name)
		assert.ErrorIs(t, err, tmprom.ErrInvalidOption, tt.name)
		assert.ErrorIs(t, err, stream.ErrInvalidOption, "%s: the library's sentinel too", tt.name)
		assert.Contains(t, err.Error(), tt.msg, tt.name)
	}
	c, err := tmprom.New(tmprom.WithNamespace("app_1"), tmprom.WithLatencyBuckets(0.5))
	require.NoError(t, err, "valid options")
	require.NoError(t, c.AddStage("s", fakeStage{}), "AddStage")
	assert.Contains(t, scrape(t, c), `app_1_stage_records_total{stage="s"}`, "the namespace prefixes the names")
}

func TestAddAndRemove(t *testing.T) {
	t.Parallel()
	c, err := tmprom.New()
	require.NoError(t, err, "New")
	err = c.AddStage("", fakeStage{})
	assert.ErrorIs(t, err, tmprom.ErrInvalidOption, "an empty name")
	assert.EqualError(t, err, `tmprom: invalid option: stage name "", want non-empty UTF-8`, "the message")
	assert.ErrorIs(t, c.AddSink("\xff", fakeSink{}), tmprom.ErrInvalidOption, "a name that is not UTF-8")
	assert.ErrorIs(t, c.AddStage("s", nil), tmprom.ErrInvalidOption, "a nil stage")
	assert.ErrorIs(t, c.AddStage("s", (*kafkaio.Stage)(nil)), tmprom.ErrInvalidOption, "a nil *kafkaio.Stage")
	assert.ErrorIs(t, c.AddMongoSink("s", (*mongoio.Sink[int])(nil)), tmprom.ErrInvalidOption, "a nil *mongoio.Sink")
	assert.ErrorIs(t, c.AddFollower("s", nil), tmprom.ErrInvalidOption, "a nil follower")

	require.NoError(t, c.AddStage("load", fakeStage{Records: 1, Watermark: stream.MinTime}), "AddStage")
	require.NoError(t, c.AddMongoSink("load", fakeMongoSink{Written: 2}), "a MongoDB sink may share a stage's name")
	require.NoError(t, c.AddSink("load", fakeSink{Written: 3}), "a kafkaio sink too")
	err = c.AddStage("load", fakeStage{})
	assert.ErrorIs(t, err, tmprom.ErrDuplicateName, "a second stage named load")
	assert.EqualError(t, err, `tmprom: name registered already: stage "load"`, "the message")
	assert.ErrorIs(t, c.AddMongoSink("load", fakeMongoSink{}), tmprom.ErrDuplicateName, "a second MongoDB sink named load")
	c.LatencyObserver("load")(time.Second, 1)
	got := scrape(t, c)
	assert.Equal(t, 1.0, got[`tidemark_stage_records_total{stage="load"}`], "the stage")
	assert.Equal(t, 2.0, got[`tidemark_mongo_sink_written_total{sink="load"}`], "the MongoDB sink")
	assert.Equal(t, 3.0, got[`tidemark_kafka_sink_written_total{sink="load"}`], "the kafkaio sink")
	assert.Equal(t, 1.0, got[`tidemark_stage_processing_latency_seconds_count{stage="load"}`], "the latency")

	assert.True(t, c.Remove("load"), "Remove")
	assert.Empty(t, scrape(t, c), "nothing left")
	assert.False(t, c.Remove("load"), "nothing to remove")
	require.NoError(t, c.AddStage("load", fakeStage{Records: 4}), "the name is free again")
	assert.Equal(t, 4.0, scrape(t, c)[`tidemark_stage_records_total{stage="load"}`], "the new stage")
}

// TestConcurrentUse scrapes while sources come and go and latencies are
// observed (run with -race).
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	c, err := tmprom.New()
	require.NoError(t, err, "New")
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c), "register")
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				name := fmt.Sprintf("s%d-%d", w, i%5)
				_ = c.AddStage(name, fakeStage{Records: uint64(i)})
				_ = c.AddMongoSink(name, fakeMongoSink{Written: uint64(i)})
				c.LatencyObserver(name)(time.Millisecond, 3)
				if i%3 == 0 {
					c.Remove(name)
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			_, err := reg.Gather()
			if err != nil {
				t.Errorf("gather: %v", err)
				return
			}
		}
	})
	wg.Wait()
	mfs, err := reg.Gather()
	require.NoError(t, err, "gather")
	require.NotEmpty(t, mfs, "metrics left")
	assert.True(t, slices.ContainsFunc(mfs, func(mf *dto.MetricFamily) bool { return mf.GetName() == "tidemark_stage_records_total" }),
		"stages left")
}
