package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	mongoopts "go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btctest"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/mongotest"
	"github.com/tidemark-go/tidemark/stream"
)

// TestQuietInput replays a trace through the all command in about six
// seconds and then nothing more: no sentinel, no later event. With the
// stages' idle advance (--idle-timeout 5s, the default), every result of
// the trace is committed, read_committed in every output topic and in
// MongoDB, within lateness + horizon + idle timeout (3 s + 2 s + 5 s) of
// the end of the replay, plus a little for the commits and this test's
// polling (2 s); every record and document equals offline's; and the
// dashboard's stage rows (and the lag metric) show a lag of 0 for every
// stage, the transaction markers left out.
//
// Subtests kfake and kafka (TIDEMARK_KAFKA_BROKERS) run it on the embedded
// broker and on the real one.
func TestQuietInput(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the idle timeout; not in -short")
	}
	t.Run("kfake", func(t *testing.T) {
		forms(t, func(t *testing.T, chained bool) { testQuietInput(t, kafkatest.New(t).Addrs(), chained) })
	})
	t.Run("kafka", func(t *testing.T) {
		brokers := os.Getenv("TIDEMARK_KAFKA_BROKERS")
		if brokers == "" {
			t.Skip("TIDEMARK_KAFKA_BROKERS is not set: start a broker with scripts/kafka/broker.sh start")
		}
		addrs := strings.Split(brokers, ",")
		forms(t, func(t *testing.T, chained bool) {
			resetPipeline(t, addrs)
			testQuietInput(t, addrs, chained)
		})
	})
}

// testQuietInput runs all with the chained stage (its default) or the
// three stages (--chain=false).
func testQuietInput(t *testing.T, addrs []string, chained bool) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TIDEMARK_SEED"); s != "" {
		_, err := fmt.Sscan(s, &seed)
		require.NoError(t, err, "TIDEMARK_SEED")
	}
	t.Logf("seed %d (TIDEMARK_SEED=%d to repeat)", seed, seed)
	cfg := btc.Config{Windows: []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}, Horizon: 2 * time.Second,
		Lateness: 3 * time.Second, Partitions: 3}
	const idle = 5 * time.Second
	bound := cfg.Lateness + cfg.Horizon + idle
	lines := e2eTrace(rand.New(rand.NewPCG(seed, 16)), 1500, stream.DurationOf(cfg.Lateness))
	dir := t.TempDir()
	_, err := btc.Offline(context.Background(), strings.NewReader(strings.Join(lines, "\n")+"\n"), filepath.Join(dir, "offline"), cfg, quietLog())
	require.NoError(t, err, "offline")
	first, last := stream.MaxTime, stream.MinTime
	dec := btc.NewDecoder()
	for _, l := range lines {
		if p, err := dec.Decode([]byte(l)); err == nil {
			first, last = min(first, p.Time), max(last, p.Time)
		}
	}
	speed := float64(last-first) / 6000 // about six seconds
	trace := filepath.Join(dir, "trace.jsonl")
	require.NoError(t, os.WriteFile(trace, []byte(strings.Join(lines, "\n")+"\n"), 0o644), "write the trace")
	want := map[string][]string{}
	for _, kd := range []btc.Kind{btc.Moving, btc.ZScore, btc.Higher, btc.Lower} {
		want[kd.Topic()] = readLines(t, filepath.Join(dir, "offline", kd.FileName()))
	}
	nz := len(want[btc.ZScore.Topic()])

	m := mongotest.New(t, mongotest.WithLogger(quietLog()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"all", "--source", "replay:" + trace, "--speed", fmt.Sprint(speed), "--brokers", strings.Join(addrs, ","),
			"--mongo-uri", m.URI(), "--view", "off", "--metrics-addr", "127.0.0.1:0", "--ui-addr", "127.0.0.1:0",
			"--partitions", "3", "--windows", "1s,5s,30s", "--horizon", "2s", "--lateness", "3s", "--idle-timeout", idle.String(),
			"--data-dir", filepath.Join(dir, "data"), fmt.Sprintf("--chain=%v", chained)}, nil, io.Discard, &stderr)
	}()
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", &stderr)
		}
	}()
	var metrics, ui string
	require.Eventually(t, func() bool {
		if m := regexp.MustCompile(`Prometheus metrics at (http://\S+/metrics)`).FindStringSubmatch(stderr.String()); m != nil {
			metrics = m[1]
		}
		if m := regexp.MustCompile(`dashboard at (http://\S+/)`).FindStringSubmatch(stderr.String()); m != nil {
			ui = m[1]
		}
		return metrics != "" && ui != ""
	}, 60*time.Second, 20*time.Millisecond, "the metrics and dashboard addresses are announced")

	// The end of the replay: extract says it is done once its last record
	// is acknowledged.
	var ended time.Time
	require.Eventually(t, func() bool {
		if strings.Contains(stderr.String(), `msg="extract: done"`) {
			ended = time.Now()
			return true
		}
		return false
	}, 2*time.Minute, 10*time.Millisecond, "the replay ends")

	mc, err := mongo.Connect(mongoopts.Client().ApplyURI(m.URI()))
	require.NoError(t, err, "mongo client")
	defer mc.Disconnect(context.Background())
	db := mc.Database(btc.Database)
	complete := func() bool {
		read := btctest.ReadCommitted(t, addrs, btc.Moving.Topic(), btc.ZScore.Topic(), btc.Higher.Topic(), btc.Lower.Topic())
		for topic, w := range want {
			if len(read[topic]) < len(w) {
				return false
			}
		}
		for _, w := range cfg.Windows {
			n, err := db.Collection(btc.Collection(btc.Label(w))).CountDocuments(context.Background(), bson.D{})
			if err != nil || n < int64(nz) {
				return false
			}
		}
		return true
	}
	const slack = 2 * time.Second
	require.True(t, btctest.WaitFor(t, bound+time.Minute, complete), "every result is committed")
	took := time.Since(ended)
	t.Logf("every result committed %v after the end of the replay (bound: lateness %v + horizon %v + idle %v = %v, + %v slack)",
		took.Round(10*time.Millisecond), cfg.Lateness, cfg.Horizon, idle, bound, slack)
	assert.LessOrEqual(t, took, bound+slack, "every result within lateness + horizon + idle timeout of the end of the input")

	// The lag: 0 for every stage, on the dashboard and in the metrics.
	stages := []string{"chained", "load"}
	if !chained {
		stages = []string{"moving", "zscore", "bonus", "load"}
	}
	lags := func() map[string]int64 {
		var snap struct {
			Stats []struct { // the history of the stage rows, oldest first
				Stages []struct {
					Name string `json:"name"`
					Lag  int64  `json:"lag"`
				} `json:"stages"`
			} `json:"stats"`
		}
		require.NoError(t, json.Unmarshal([]byte(httpGet(t, ui+"api/snapshot")), &snap), "the dashboard's snapshot")
		out := map[string]int64{}
		if n := len(snap.Stats); n > 0 {
			for _, s := range snap.Stats[n-1].Stages {
				out[s.Name] = s.Lag
			}
		}
		return out
	}
	var seen map[string]int64
	ok := btctest.WaitFor(t, 10*time.Second, func() bool {
		seen = lags()
		for _, s := range stages {
			if l, found := seen[s]; !found || l != 0 {
				return false
			}
			if v, found := scrape(t, metrics, fmt.Sprintf(`tidemark_stage_lag_records{stage=%q}`, s)); !found || v != 0 {
				return false
			}
		}
		return true
	})
	require.True(t, ok, "the dashboard and the metrics show a lag of 0 for every stage: %v", seen)

	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, "exit code after a stop")
	case <-time.After(60 * time.Second):
		t.Fatal("all did not stop")
	}
	read := btctest.ReadCommitted(t, addrs, btc.Moving.Topic(), btc.ZScore.Topic(), btc.Higher.Topic(), btc.Lower.Topic())
	for topic, w := range want {
		var got []string
		for _, msg := range read[topic] {
			got = append(got, string(msg.Value))
		}
		btctest.SameRecords(t, topic, w, got)
	}
	n := btctest.CheckDocuments(t, db, len(cfg.Windows), want[btc.ZScore.Topic()], "")
	assert.Equal(t, len(cfg.Windows)*nz, n, "documents")
}
