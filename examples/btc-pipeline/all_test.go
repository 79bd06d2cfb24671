package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
	mongoopts "go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btctest"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/mongotest"
	"github.com/tidemark-go/tidemark/stream"
)

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// e2eTrace is a btc-price trace of n events on three symbols, in arrival
// order: out of order within lateness, with duplicates, late events and
// invalid lines (a blank one among them).
func e2eTrace(r *rand.Rand, n int, lateness stream.Time) []string {
	return btctest.Trace(r, n, lateness, []string{`not json`, `{"symbol":"BTCUSDT","price":-1,"timestamp":"2025-05-08T04:12:38.352Z"}`, ``})
}

// e2eSentinels returns, per partition, three records of a key of that
// partition that push every stage's watermark past the trace (see the btc
// package's stage test).
func e2eSentinels(cfg btc.Config, last stream.Time) []string {
	gap := stream.DurationOf(cfg.Lateness) + stream.DurationOf(cfg.Horizon) + 1000
	var out []string
	for p, i := 0, 0; p < cfg.Partitions; i++ {
		key := fmt.Sprintf(sentinel+"%d", i)
		if btc.Partition(key, cfg.Partitions) != p {
			continue
		}
		for j := 1; j <= 3; j++ {
			out = append(out, string(btc.AppendPrice(nil, btc.Price{Symbol: key, Price: 1, Time: last + stream.Time(j)*gap})))
		}
		p++
	}
	return out
}

// scrape returns the value of a metric sample line that starts with prefix.
func scrape(t *testing.T, url, prefix string) (float64, bool) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, prefix+" ") {
			v, err := strconv.ParseFloat(strings.TrimPrefix(l, prefix+" "), 64)
			require.NoError(t, err, "metric %s", l)
			return v, true
		}
	}
	return 0, false
}

// TestAllEqualsOffline replays a trace through the all command (every stage
// in one process, through a Kafka-protocol broker and a MongoDB-compatible
// store) and checks every record of every output topic, read back
// read_committed, and every MongoDB document against what offline computes
// for the same trace; it also checks the periodic log lines of the view and
// the metrics endpoint.
func TestAllEqualsOffline(t *testing.T) {
	t.Run("chained", func(t *testing.T) { testAll(t, true) })   // the default
	t.Run("separate", func(t *testing.T) { testAll(t, false) }) // --chain=false
}

func testAll(t *testing.T, chain bool) {
	first, committer := "chained", "chained" // the stage that reads btc-price first, one that commits transactions
	if !chain {
		first, committer = "moving", "zscore"
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TIDEMARK_SEED"); s != "" {
		_, err := fmt.Sscan(s, &seed)
		require.NoError(t, err, "TIDEMARK_SEED")
	}
	t.Logf("seed %d (TIDEMARK_SEED=%d to repeat)", seed, seed)
	cfg := btc.Config{Windows: []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}, Horizon: 2 * time.Second,
		Lateness: 3 * time.Second, Partitions: 3}
	lines := e2eTrace(rand.New(rand.NewPCG(seed, 3)), 2500, stream.DurationOf(cfg.Lateness))

	dir := t.TempDir()
	sum, err := btc.Offline(context.Background(), strings.NewReader(strings.Join(lines, "\n")+"\n"), filepath.Join(dir, "offline"), cfg, quietLog())
	require.NoError(t, err, "offline")
	require.NotZero(t, sum.Late, "the trace has late events")
	require.NotZero(t, sum.Duplicates, "the trace has duplicates")
	require.NotZero(t, sum.Invalid, "the trace has invalid lines")
	last := stream.MinTime
	dec := btc.NewDecoder()
	for _, l := range lines {
		if p, err := dec.Decode([]byte(l)); err == nil {
			last = max(last, p.Time)
		}
	}
	trace := filepath.Join(dir, "trace.jsonl")
	all := append(slices.Clone(lines), e2eSentinels(cfg, last)...)
	require.NoError(t, os.WriteFile(trace, []byte(strings.Join(all, "\n")+"\n"), 0o644), "write the trace")

	k := kafkatest.New(t)
	m := mongotest.New(t, mongotest.WithLogger(quietLog()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"all", "--source", "replay:" + trace, "--speed", "0", "--brokers", k.Addrs()[0],
			"--mongo-uri", m.URI(), "--view", "log", "--refresh", "200ms", "--metrics-addr", "127.0.0.1:0", "--ui-addr", "127.0.0.1:0",
			"--partitions", "3", "--windows", "1s,5s,30s", "--horizon", "2s", "--lateness", "3s", "--data-dir", filepath.Join(dir, "data"), fmt.Sprintf("--chain=%v", chain)},
			nil, io.Discard, &stderr)
	}()
	var url string
	require.Eventually(t, func() bool {
		m := regexp.MustCompile(`Prometheus metrics at (http://\S+/metrics)`).FindStringSubmatch(stderr.String())
		if m != nil {
			url = m[1]
		}
		return url != ""
	}, 30*time.Second, 20*time.Millisecond, "the metrics address is announced; log:\n%s", &stderr)

	var ui string
	require.Eventually(t, func() bool {
		m := regexp.MustCompile(`dashboard at (http://\S+/)`).FindStringSubmatch(stderr.String())
		if m != nil {
			ui = m[1]
		}
		return ui != ""
	}, 30*time.Second, 20*time.Millisecond, "the dashboard's address is announced; log:\n%s", &stderr)

	want := map[string][]string{}
	for _, kd := range []btc.Kind{btc.Moving, btc.ZScore, btc.Higher, btc.Lower} {
		b, err := os.ReadFile(filepath.Join(dir, "offline", kd.FileName()))
		require.NoError(t, err, "offline output")
		want[kd.Topic()] = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	nz := len(want[btc.ZScore.Topic()])
	// The load stage writes every z-score of the trace and, once the
	// stages advance their quiet inputs by the clock (--idle-timeout, 5 s
	// by default), the three sentinels' of each partition: nz + 3 per
	// partition in all, and no fewer. Waiting for fewer is a race: a
	// partition's sentinels could count before another partition's last
	// z-scores were written, and the stop would leave those unwritten.
	if !btctest.WaitFor(t, 120*time.Second, func() bool {
		v, ok := scrape(t, url, `tidemark_stage_emitted_total{stage="load"}`)
		return ok && v >= float64(nz+3*cfg.Partitions)
	}) {
		btctest.LogGoroutines(t, "mongoio", "btc.NewLoader", "kafkaio.(*runtime)")
		t.Fatalf("the load stage did not write every z-score in 120 s; log:\n%s", &stderr)
	}

	metric := func(name, stage string) float64 {
		v, ok := scrape(t, url, fmt.Sprintf(`%s{stage=%q}`, name, stage))
		require.True(t, ok, "metric %s of %s", name, stage)
		return v
	}
	assert.Equal(t, float64(len(all)), metric("tidemark_stage_records_total", first), "%s read every record", first)
	assert.Equal(t, float64(sum.Late), metric("tidemark_stage_late_total", first), "late events")
	assert.Equal(t, float64(sum.Duplicates), metric("tidemark_stage_duplicates_total", first), "duplicates")
	assert.Equal(t, float64(sum.Invalid), metric("tidemark_stage_rejected_total", first), "invalid records")
	assert.Equal(t, float64(sum.Invalid), metric("tidemark_stage_dead_lettered_total", first), "dead letters")
	assert.Positive(t, metric("tidemark_stage_commits_total", committer), "transactions committed")
	count, ok := scrape(t, url, fmt.Sprintf(`tidemark_stage_processing_latency_seconds_count{stage=%q}`, first))
	require.True(t, ok, "latency histogram")
	assert.Positive(t, count, "latency observed")
	written, ok := scrape(t, url, `tidemark_kafka_sink_written_total{sink="extract"}`)
	require.True(t, ok, "the extract side's Kafka sink")
	assert.Equal(t, float64(len(all)), written, "extract produced every record")
	docs, ok := scrape(t, url, `tidemark_mongo_sink_written_total{sink="load"}`)
	require.True(t, ok, "the load stage's MongoDB sink")
	assert.Positive(t, docs, "documents written")
	extracted, ok := scrape(t, url, `tidemark_extract_records_total{source="replay"}`)
	require.True(t, ok, "the lab's own extract counter")
	assert.Equal(t, float64(len(all)), extracted, "extract counted every record")

	page := httpGet(t, ui)
	assert.Contains(t, page, "<html", "the dashboard's page")
	assert.Contains(t, httpGet(t, ui+"api/snapshot"), `"ETHUSDT"`, "the dashboard has the symbols' series")

	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, "exit code after a stop; log:\n%s", &stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("all did not stop; log:\n%s", &stderr)
	}

	read := btctest.ReadCommitted(t, k.Addrs(), btc.Moving.Topic(), btc.ZScore.Topic(), btc.Higher.Topic(), btc.Lower.Topic(), btc.DeadLetterTopic)
	for topic, w := range want {
		var got []string
		for _, msg := range read[topic] {
			if !strings.HasPrefix(string(msg.Key), "ZZEND") {
				got = append(got, string(msg.Value))
			}
		}
		btctest.SameRecords(t, topic, w, got)
		t.Logf("%s: %d records, equal to offline's", topic, len(got))
	}
	assert.Len(t, read[btc.DeadLetterTopic], int(sum.Invalid), "dead letters")

	client, err := mongo.Connect(mongoopts.Client().ApplyURI(m.URI()))
	require.NoError(t, err, "mongo client")
	defer client.Disconnect(context.Background())
	n := btctest.CheckDocuments(t, client.Database(btc.Database), len(cfg.Windows), want[btc.ZScore.Topic()], "ZZEND")
	assert.Equal(t, 3*nz, n, "documents")

	log := stderr.String()
	assert.Regexp(t, `msg=stage stage=`+first+` events_per_s=\d+ read=\d+`, log, "periodic stage lines")
	assert.Regexp(t, `msg=prices symbol=ETHUSDT price=[0-9.]+ at=`, log, "periodic price lines")
	assert.Regexp(t, `msg=prices symbol=\w+ price=[0-9.]+ at=\S+ avg_1s=[0-9.]+ std_1s=\S+ z_1s=-?[0-9.]+ `, log, "the view shows statistics and z-scores")
	assert.Regexp(t, `higher_window=[0-9.]+ lower_window=[0-9.]+`, log, "the view shows the lookahead answers")
	assert.Contains(t, log, `msg="btc-pipeline all: stopped"`, "a clean stop")
}

// httpGet returns the body of a GET that must succeed.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err, "GET %s", url)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "GET %s", url)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", url, b)
	return string(b)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestUICommand serves the dashboard alone on an empty pipeline and stops
// on a signal.
func TestUICommand(t *testing.T) {
	k := kafkatest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"ui", "--brokers", k.Addrs()[0], "--ui-addr", "127.0.0.1:0"}, nil, io.Discard, &stderr)
	}()
	var ui string
	require.Eventually(t, func() bool {
		m := regexp.MustCompile(`dashboard at (http://\S+/)`).FindStringSubmatch(stderr.String())
		if m != nil {
			ui = m[1]
		}
		return ui != ""
	}, 30*time.Second, 20*time.Millisecond, "the dashboard's address is announced; log:\n%s", &stderr)
	assert.Contains(t, httpGet(t, ui), "<html", "the dashboard's page")
	assert.Contains(t, httpGet(t, ui+"api/snapshot"), `"windows":["30s","1m","5m","15m","30m","1h"]`, "the snapshot")
	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, "exit code after a stop; log:\n%s", &stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("ui did not stop; log:\n%s", &stderr)
	}
	assert.Contains(t, stderr.String(), `msg="btc-pipeline ui: stopped"`)
}
