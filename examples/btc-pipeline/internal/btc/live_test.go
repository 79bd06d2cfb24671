package btc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btctest"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/mongotest"
	"github.com/tidemark-go/tidemark/stream"
)

// sentinelPrefix marks the keys of the records a test adds after a trace to
// push every partition's watermark past it; they are left out of the
// comparison.
const sentinelPrefix = "~END"

// sentinels returns, for each of n partitions, three btc-price records of a
// key that lands in that partition: the first far enough after last to make
// every result of the trace final in the stages that read btc-price; the
// second makes the first one's moving record final, so that the zscore
// stage's second input passes the trace too; the third makes the second's
// moving record final, which releases the first one's z-score, so that the
// load stage's input passes the trace's last z-score.
func sentinels(cfg Config, n int, last stream.Time) []stream.Event[[]byte] {
	gap := stream.DurationOf(cfg.Lateness) + stream.DurationOf(cfg.Horizon) + 1000
	var out []stream.Event[[]byte]
	for p, i := 0, 0; p < n; i++ {
		key := fmt.Sprintf("%s%d", sentinelPrefix, i)
		if Partition(key, n) != p {
			continue
		}
		for j, t := range []stream.Time{last + gap, last + 2*gap, last + 3*gap} {
			v := AppendPrice(nil, Price{Symbol: key, Price: float64(1 + j), Time: t})
			out = append(out, stream.Event[[]byte]{Key: key, Time: t, Value: v})
		}
		p++
	}
	return out
}

// produceTrace writes lines to btc-price keyed by symbol (an invalid line
// without a key), in order, then the sentinels. It returns the number of
// records written.
func produceTrace(t *testing.T, addrs []string, cfg Config, partitions int, lines []string) int {
	t.Helper()
	sink, err := kafkaio.NewSink[[]byte](nil, kafkaio.Raw{}, kafkaio.WithTopic(PriceTopic), kafkaio.WithBrokers(addrs, nil))
	require.NoError(t, err, "sink")
	defer sink.Close(context.Background())
	ctx := context.Background()
	dec := NewDecoder()
	last := stream.MinTime
	now := stream.TimeOf(time.Now())
	for _, l := range lines {
		e := stream.Event[[]byte]{Time: now, Value: []byte(l)}
		if p, err := dec.Decode([]byte(l)); err == nil {
			e.Key, e.Time = p.Symbol, p.Time
			last = max(last, p.Time)
		}
		require.NoError(t, sink.Write(ctx, e), "produce")
	}
	ends := sentinels(cfg, partitions, last)
	for _, e := range ends {
		require.NoError(t, sink.Write(ctx, e), "produce sentinel")
	}
	require.NoError(t, sink.Flush(ctx), "flush")
	return len(lines) + len(ends)
}

// runStages runs the stages until the returned stop is called, which returns
// their Run errors once all have returned. A stage whose Run returns before
// that fails the test at once, with its error.
func runStages(t *testing.T, stages ...*kafkaio.Stage) (stop func() []error) {
	ctx, cancel := context.WithCancel(context.Background())
	errs := make([]error, len(stages))
	var wg sync.WaitGroup
	for i, s := range stages {
		wg.Go(func() {
			errs[i] = s.Run(ctx)
			if ctx.Err() == nil {
				t.Errorf("stage %d returned before the stop: %v", i, errs[i])
				cancel()
			}
		})
	}
	return func() []error {
		cancel()
		wg.Wait()
		return errs
	}
}

// newLab returns the moving, zscore, bonus and load stages of cfg on the
// broker at addrs, the loader, and a client of the embedded MongoDB store
// the loader writes to (disconnected at the test's end).
func newLab(t *testing.T, cfg Config, addrs []string) (moving, zs, bonus, load *kafkaio.Stage, loader *Loader, mc *mongodrv.Client) {
	t.Helper()
	opts := []kafkaio.StageOption{kafkaio.WithBrokers(addrs, nil), kafkaio.WithLogger(btctest.Logger(t))}
	var err error
	moving, err = NewMovingStage(cfg, opts...)
	require.NoError(t, err, "moving stage")
	zs, err = NewZScoreStage(cfg, opts...)
	require.NoError(t, err, "zscore stage")
	bonus, err = NewBonusStage(cfg, opts...)
	require.NoError(t, err, "bonus stage")
	mongo := mongotest.New(t, mongotest.WithLogger(quiet))
	mc, err = mongodrv.Connect(options.Client().ApplyURI(mongo.URI()))
	require.NoError(t, err, "mongo client")
	t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
	loader, err = NewLoader(mc.Database(Database), cfg, quiet)
	require.NoError(t, err, "loader")
	load, err = NewLoadStage(cfg, loader, opts...)
	require.NoError(t, err, "load stage")
	return moving, zs, bonus, load, loader, mc
}

// messyLab is the setup TestStagesEqualOffline and TestChainedEqualsOffline
// share: a messy trace of 3,000 events (late events, duplicates, invalid
// lines; three symbols on three partitions, seeded by TIDEMARK_SEED or the
// clock), offline's output for it in dir, and the trace produced (with
// sentinels) to btc-price on a kafkatest cluster whose topics exist.
func messyLab(t *testing.T) (cfg Config, tr trace, dir string, sum Summary, addrs []string, produced int) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TIDEMARK_SEED"); s != "" {
		_, err := fmt.Sscan(s, &seed)
		require.NoError(t, err, "TIDEMARK_SEED")
	}
	t.Logf("seed %d (TIDEMARK_SEED=%d to repeat)", seed, seed)
	r := rand.New(rand.NewPCG(seed, seed))
	cfg = testConfig()
	cfg.Partitions = 3
	tr, _ = genTrace(r, r, 3000, stream.DurationOf(cfg.Lateness), true)

	dir = t.TempDir()
	sum, err := Offline(context.Background(), strings.NewReader(strings.Join(tr.lines, "\n")), dir, cfg, quiet)
	require.NoError(t, err, "offline")
	require.NotZero(t, sum.Late, "the trace has late events")
	require.NotZero(t, sum.Duplicates, "the trace has duplicates")

	addrs = kafkatest.New(t).Addrs()
	adm, err := sarama.NewClusterAdmin(addrs, nil)
	require.NoError(t, err, "admin")
	defer adm.Close()
	require.NoError(t, kafkaio.EnsureTopics(context.Background(), adm, TopicSpecs(cfg.Partitions)), "topics")
	produced = produceTrace(t, addrs, cfg, cfg.Partitions, tr.lines)
	t.Logf("produced %d records to %s", produced, PriceTopic)
	return cfg, tr, dir, sum, addrs, produced
}

// TestStagesEqualOffline runs the moving, zscore and bonus stages over a
// messy trace (out of order within the lateness, duplicates, late events,
// invalid lines; three symbols on three partitions) and compares every
// record of every output topic, read back read_committed, with what offline
// writes for the same trace: the same records, each exactly once.
func TestStagesEqualOffline(t *testing.T) {
	cfg, tr, dir, sum, addrs, produced := messyLab(t)
	const partitions = 3

	moving, zs, bonus, load, loader, mc := newLab(t, cfg, addrs)
	stop := runStages(t, moving, zs, bonus, load)

	want := make(map[string][]string)
	for kd := range numKinds {
		want[kd.Topic()] = readLines(t, filepath.Join(dir, kd.FileName()))
	}
	// Every record of the trace is on its way once the stages have read
	// every record of btc-price, the zscore stage has read btc-price-moving
	// up to the sentinels' second moving records and written the first
	// sentinels' z-scores, and the loader has written every z-score before
	// them and those (its count reaches nz + partitions only then: a
	// partition's sentinel can come before another's last z-scores).
	nz := uint64(len(want[ZScore.Topic()]))
	done := func() bool {
		ms, zst, bs := moving.Stats(), zs.Stats(), bonus.Stats()
		return ms.Records >= uint64(produced) && bs.Records >= uint64(produced) &&
			zst.Records >= uint64(produced)+uint64(len(want[Moving.Topic()])+2*partitions) &&
			zst.Emitted >= nz+partitions && load.Stats().Emitted >= nz+partitions
	}
	if !btctest.WaitFor(t, 90*time.Second, func() bool { return t.Failed() || done() }) {
		btctest.LogGoroutines(t, "mongoio", "btc.NewLoader", "kafkaio.(*runtime)")
		t.Fatalf("the stages did not read everything in 90 s: moving %+v zscore %+v bonus %+v load %+v",
			moving.Stats(), zs.Stats(), bonus.Stats(), loader.Stats())
	}
	for i, err := range stop() {
		require.NoError(t, err, "stage %d Run", i)
	}
	require.False(t, t.Failed(), "the stages ran")
	require.NoError(t, loader.Close(context.Background()), "close the loader")
	btctest.CheckDocuments(t, mc.Database(Database), len(cfg.Windows), want[ZScore.Topic()], sentinelPrefix)

	ms := moving.Stats()
	assert.Equal(t, sum.Late, ms.Late, "moving: late events")
	assert.Equal(t, sum.Duplicates, ms.Duplicates, "moving: duplicates")
	assert.Equal(t, sum.Invalid, ms.Rejected, "moving: invalid records")
	assert.Equal(t, sum.Invalid, ms.DeadLettered, "moving: dead-lettered records")
	// The zscore stage drops the same late prices; none of btc-price-moving's
	// records is late: the moving stage writes them in event-time order.
	assert.Equal(t, sum.Late, zs.Stats().Late, "zscore: late events")
	assert.Equal(t, sum.Duplicates, zs.Stats().Duplicates, "zscore: duplicates")

	read := btctest.ReadCommitted(t, addrs, Moving.Topic(), ZScore.Topic(), Higher.Topic(), Lower.Topic(), DeadLetterTopic)
	for kd := range numKinds {
		topic := kd.Topic()
		var got []string
		for _, m := range read[topic] {
			if strings.HasPrefix(string(m.Key), sentinelPrefix) {
				continue
			}
			got = append(got, string(m.Value))
		}
		btctest.SameRecords(t, topic, want[topic], got)
		t.Logf("%s: %d records, equal to offline's", topic, len(got))
	}
	dlq := read[DeadLetterTopic]
	require.Len(t, dlq, int(sum.Invalid), "dead letters")
	for _, m := range dlq {
		assert.Contains(t, tr.lines, string(m.Value), "a dead letter is an input line, untouched")
	}
}

// TestTopicsKeepOldRecords: the topics the pipeline creates keep records
// whatever their timestamps, which are event times: with time-based
// retention, a replay of an old trace would be deleted at the broker's next
// retention check.
func TestTopicsKeepOldRecords(t *testing.T) {
	k := kafkatest.New(t)
	adm, err := sarama.NewClusterAdmin(k.Addrs(), nil)
	require.NoError(t, err, "admin")
	defer adm.Close()
	require.NoError(t, kafkaio.EnsureTopics(context.Background(), adm, TopicSpecs(2)), "topics")
	for _, topic := range Topics() {
		res, err := adm.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms"}}},
			sarama.DescribeConfigsOptions{})
		require.NoError(t, err, "config of %s", topic)
		require.Len(t, res, 1, "config of %s", topic)
		require.Zero(t, res[0].ErrorCode, "config of %s: %s", topic, res[0].ErrorMsg)
		require.Len(t, res[0].Configs, 1, "retention.ms of %s", topic)
		assert.Equal(t, "-1", res[0].Configs[0].Value, "%s: retention.ms", topic)
	}
}

// TestChainedEqualsOffline runs the chained stage (NewChainedStage: moving,
// zscore and bonus in one task per partition) over a messy trace, as
// TestStagesEqualOffline runs the three, and compares every record of every
// output topic, read back read_committed, with what offline writes: the
// same records, each exactly once, and the invalid lines dead-lettered
// once (not once per stage, as three stages do).
func TestChainedEqualsOffline(t *testing.T) {
	cfg, tr, dir, sum, addrs, produced := messyLab(t)

	ch, err := NewChainedStage(cfg, kafkaio.WithBrokers(addrs, nil), kafkaio.WithLogger(btctest.Logger(t)))
	require.NoError(t, err, "chained stage")
	stop := runStages(t, ch)
	want := make(map[string][]string)
	total := 0
	for kd := range numKinds {
		want[kd.Topic()] = readLines(t, filepath.Join(dir, kd.FileName()))
		total += len(want[kd.Topic()])
	}
	// Every result of the trace is written once the stage has read every
	// record and emitted as many results: the sentinels' own results come
	// after the trace's in event time.
	done := func() bool { s := ch.Stats(); return s.Records >= uint64(produced) && s.Emitted >= uint64(total) }
	if !btctest.WaitFor(t, 90*time.Second, func() bool { return t.Failed() || done() }) {
		t.Fatalf("the chained stage did not read everything in 90 s: %+v", ch.Stats())
	}
	for _, err := range stop() {
		require.NoError(t, err, "Run")
	}
	st := ch.Stats()
	assert.Equal(t, sum.Late, st.Late, "late events")
	assert.Equal(t, sum.Duplicates, st.Duplicates, "duplicates")
	assert.Equal(t, sum.Invalid, st.Rejected, "invalid records")

	read := btctest.ReadCommitted(t, addrs, Moving.Topic(), ZScore.Topic(), Higher.Topic(), Lower.Topic(), DeadLetterTopic)
	for kd := range numKinds {
		topic := kd.Topic()
		var got []string
		for _, m := range read[topic] {
			if !strings.HasPrefix(string(m.Key), sentinelPrefix) {
				got = append(got, string(m.Value))
			}
		}
		btctest.SameRecords(t, topic, want[topic], got)
		t.Logf("%s: %d records, equal to offline's", topic, len(got))
	}
	dlq := read[DeadLetterTopic]
	require.Len(t, dlq, int(sum.Invalid), "dead letters: each invalid line once")
	for _, m := range dlq {
		assert.Contains(t, tr.lines, string(m.Value), "a dead letter is an input line, untouched")
	}
}
