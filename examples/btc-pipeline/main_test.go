package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/mongotest"
)

func TestOfflineCommand(t *testing.T) {
	out := t.TempDir()
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"offline", "--in", "testdata/btc-price.jsonl", "--out", out,
		"--windows", "30s,1m", "--horizon", "5s", "--lateness", "2s"}, nil, io.Discard, &stderr)
	require.Equal(t, 0, code, "exit code; stderr: %s", stderr.String())
	assert.Contains(t, stderr.String(), "offline: accepted=3000 late=1 duplicate=1 invalid=1", "summary line")
	for _, f := range []string{"btc-price-moving.jsonl", "btc-price-zscore.jsonl", "btc-price-higher.jsonl", "btc-price-lower.jsonl"} {
		b, err := os.ReadFile(filepath.Join(out, f))
		require.NoError(t, err, "output %s", f)
		assert.Equal(t, 3000, strings.Count(string(b), "\n"), "records in %s", f)
	}
	first, _, _ := strings.Cut(readFile(t, filepath.Join(out, "btc-price-moving.jsonl")), "\n")
	assert.Contains(t, first, `"window":"30s"`, "--windows honoured")
	assert.Contains(t, first, `"window":"1m"`, "--windows honoured")
	assert.NotContains(t, first, `"window":"5m"`, "only the windows asked for")
}

// TestOfflineReport writes the charts of a trace into one HTML file, which
// needs nothing from the network (the browser test of package dashboard
// opens such a file in Chromium).
func TestOfflineReport(t *testing.T) {
	out := t.TempDir()
	report := filepath.Join(out, "report.html")
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"offline", "--in", "testdata/btc-price.jsonl", "--out", out, "--report", report},
		nil, io.Discard, &stderr)
	require.Equal(t, 0, code, "exit code; stderr: %s", stderr.String())
	assert.Contains(t, stderr.String(), "offline: report in "+report)
	page := readFile(t, report)
	assert.Contains(t, page, "<html", "an HTML page")
	assert.Contains(t, page, "uPlot", "the chart library is inlined")
	assert.Contains(t, page, `"BTCUSDT"`, "the trace's symbol is in the data")
	for _, ref := range []string{`src="http`, `href="http`, `src='http`, `@import`} {
		assert.NotContains(t, page, ref, "nothing is loaded from the network")
	}
}

func TestOfflineFromStdin(t *testing.T) {
	out := t.TempDir()
	var stderr bytes.Buffer
	in := strings.NewReader(`{"symbol":"BTCUSDT","price":1.5,"timestamp":"2025-05-08T04:12:38.352Z"}` + "\n")
	require.Equal(t, 0, run(context.Background(), []string{"offline", "--in", "-", "--out", out}, in, io.Discard, &stderr), "exit code: %s", stderr.String())
	assert.Equal(t, `{"timestamp":"2025-05-08T04:12:38.352Z","symbol":"BTCUSDT","higher_window":20.0}`+"\n",
		readFile(t, filepath.Join(out, "btc-price-higher.jsonl")), "no higher price within the horizon")
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"nope"}, {"offline"}, {"offline", "--in", "x"}, {"offline", "--windows", "abc"},
		{"moving", "extra"}, {"all", "--view", "bogus"}, {"extract", "--source", "bogus"}, {"extract", "--source", "replay:"},
		{"all", "--partitions", "0"}, {"zscore", "--windows", "0s"}, {"bonus", "--horizon", "-1s"}, {"load", "--log-level", "loud"},
		{"all", "--speed", "-1"}} {
		var stderr bytes.Buffer
		assert.Equal(t, 2, run(context.Background(), args, nil, io.Discard, &stderr), "args %q", args)
		assert.NotEmpty(t, stderr.String(), "a message for %q", args)
	}
	var stderr bytes.Buffer
	assert.Equal(t, 1, run(context.Background(), []string{"offline", "--in", "/does/not/exist", "--out", t.TempDir()}, nil, io.Discard, &stderr), "missing input")
	assert.Equal(t, 2, run(context.Background(), []string{"offline", "--in", "testdata/btc-price.jsonl", "--out", t.TempDir(), "--windows", "0s"}, nil, io.Discard, &stderr), "invalid window")
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"moving", "--help"}, {"all", "-h"}, {"offline", "--help"}} {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, 0, run(context.Background(), args, nil, &stdout, &stderr), "args %q", args)
		assert.Contains(t, stdout.String()+stderr.String(), "usage: btc-pipeline", "args %q: usage shown", args)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err, "read %s", path)
	return string(b)
}

// TestOfflineRefusesToOverwriteItsInput: --in naming one of the outputs is
// a usage error, and the file is left as it was.
func TestOfflineRefusesToOverwriteItsInput(t *testing.T) {
	out := t.TempDir()
	var stderr bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"offline", "--in", "testdata/btc-price.jsonl", "--out", out}, nil, io.Discard, &stderr))
	in := filepath.Join(out, "btc-price-moving.jsonl")
	before := readFile(t, in)
	stderr.Reset()
	code := run(context.Background(), []string{"offline", "--in", in, "--out", out}, nil, io.Discard, &stderr)
	assert.Equal(t, 2, code, "exit code; stderr: %s", stderr.String())
	assert.Contains(t, stderr.String(), "would be overwritten before it is read")
	assert.Equal(t, before, readFile(t, in), "the input is untouched")
}

// TestOfflineBadLines: every malformed line is a dead letter with its
// reason and its bytes, "\r" included; a deeply nested ignored field does
// not make a valid record invalid; a line over MaxLineBytes is refused
// without being held whole.
func TestOfflineBadLines(t *testing.T) {
	deep := strings.Repeat(`[`, 200) + strings.Repeat(`]`, 200)
	lines := []string{
		`{"symbol":"BTCUSDT","price":1,"timestamp":"2025-05-08T04:12:38.352Z"}` + "\r",
		`not json` + "\r",
		"{\"symbol\":\"BTC\xffUSDT\",\"price\":1,\"timestamp\":\"2025-05-08T04:12:39.352Z\"}",
		`{"symbol":"BTCUSDT","price":2,"timestamp":"2025-05-08T04:12:40.352Z","x":` + deep + `}`,
		`{"symbol":"BTCUSDT","price":3,"timestamp":"2025-05-08T04:12:41.352Z","pad":"` + strings.Repeat("x", btc.MaxLineBytes) + `"}`,
		``,
	}
	out := t.TempDir()
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"offline", "--in", "-", "--out", out}, strings.NewReader(strings.Join(lines, "\n")+"\n"), io.Discard, &stderr)
	require.Equal(t, 0, code, "exit code; stderr: %s", stderr.String())
	assert.Contains(t, stderr.String(), "accepted=2 ", "the first line and the deeply nested one")
	assert.Contains(t, stderr.String(), "invalid=4 ", "summary")
	var dead []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(readFile(t, filepath.Join(out, btc.DeadLetterFile)), "\n"), "\n") {
		var d map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &d), "dead letter %q", l)
		dead = append(dead, d)
	}
	require.Len(t, dead, 4, "dead letters")
	assert.Equal(t, "not json\r", dead[0]["value"], "the line untouched, \\r included")
	assert.Equal(t, "not JSON", dead[0]["reason"])
	assert.Equal(t, btc.ErrSymbolUTF8.Error(), dead[1]["reason"])
	assert.Equal(t, btc.ErrLineTooLong.Error(), dead[2]["reason"])
	assert.Equal(t, true, dead[2]["truncated"])
	assert.Len(t, dead[2]["value"], btc.MaxLineBytes, "the first MaxLineBytes bytes")
	assert.Equal(t, float64(6), dead[3]["line"], "the blank line")
}

// TestOfflineStdinSignal: a signal while offline waits on stdin stops it
// at once, as a failure (130), not as a complete run.
func TestOfflineStdinSignal(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte(`{"symbol":"BTCUSDT","price":1,"timestamp":"2025-05-08T04:12:38.352Z"}` + "\n"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"offline", "--in", "-", "--out", t.TempDir()}, pr, io.Discard, &stderr)
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 130, code, "exit code; stderr: %s", stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("offline went on waiting for stdin after the signal")
	}
}

// TestOfflineHugePrices: a price above btc.MaxPrice is invalid; prices up to
// it have finite statistics, so that std_price is null for one event only.
func TestOfflineHugePrices(t *testing.T) {
	lines := []string{
		`{"symbol":"BTCUSDT","price":1e300,"timestamp":"2025-05-08T04:12:38.352Z"}`,
		`{"symbol":"BTCUSDT","price":1e15,"timestamp":"2025-05-08T04:12:39.352Z"}`,
		`{"symbol":"BTCUSDT","price":999999999999999.9,"timestamp":"2025-05-08T04:12:40.352Z"}`,
		`{"symbol":"BTCUSDT","price":1e300,"timestamp":"2025-05-08T04:12:41.352Z"}`,
	}
	out := t.TempDir()
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"offline", "--in", "-", "--out", out}, strings.NewReader(strings.Join(lines, "\n")+"\n"), io.Discard, &stderr)
	require.Equal(t, 0, code, "exit code; stderr: %s", stderr.String())
	assert.Contains(t, stderr.String(), "accepted=2 ", "summary")
	assert.Contains(t, stderr.String(), "invalid=2 ", "summary")
	moving := strings.Split(strings.TrimSuffix(readFile(t, filepath.Join(out, "btc-price-moving.jsonl")), "\n"), "\n")
	require.Len(t, moving, 2)
	assert.Contains(t, moving[0], `"window":"30s","avg_price":1e+15,"std_price":null,"count":1`, "one event: null")
	// 999999999999999.9 is 1e15 - 0.125 in float64: the sample standard
	// deviation of the two is 0.125/sqrt(2).
	var rec struct {
		Windows []struct {
			Std   *float64 `json:"std_price"`
			Count int      `json:"count"`
		} `json:"windows"`
	}
	require.NoError(t, json.Unmarshal([]byte(moving[1]), &rec), "moving record")
	require.NotNil(t, rec.Windows[0].Std, "two events: a std, not null")
	assert.Equal(t, 2, rec.Windows[0].Count)
	// A std below 1 is printed with 12 significant digits (docs/pipeline.md):
	// within 5e-12 of it, relatively.
	assert.InEpsilon(t, 0.125/math.Sqrt2, *rec.Windows[0].Std, 5e-12, "two events: the sample std")
}

// TestOfflineFullDisk: when an output cannot be written (here a file that
// is /dev/full, as a full disk would), the command fails and its summary
// says what the files actually hold, complete lines only.
func TestOfflineFullDisk(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system")
	}
	out := t.TempDir()
	require.NoError(t, os.Symlink("/dev/full", filepath.Join(out, "btc-price-moving.jsonl")))
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"offline", "--in", "testdata/btc-price.jsonl", "--out", out}, nil, io.Discard, &stderr)
	assert.Equal(t, 1, code, "exit code; stderr: %s", stderr.String())
	assert.Contains(t, stderr.String(), "moving=0 zscore=3000 higher=3000 lower=3000", "the summary counts what was written")
	assert.Contains(t, stderr.String(), "no space left on device")
	z := readFile(t, filepath.Join(out, "btc-price-zscore.jsonl"))
	assert.True(t, strings.HasSuffix(z, "}\n"), "complete lines")
}

// TestNoSecretsInLogs: a MongoDB password never reaches the logs or the
// error messages.
func TestNoSecretsInLogs(t *testing.T) {
	assert.Equal(t, "mongodb://user:xxxxx@127.0.0.1:1/", redactURI("mongodb://user:s3cret@127.0.0.1:1/?authSource=admin&tlsCertificateKeyFilePassword=s3cret"))
	k := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	defer func(d time.Duration) { mongoWait = d }(mongoWait)
	mongoWait = 2 * time.Second
	var stderr syncBuffer
	code := run(ctx, []string{"load", "--brokers", k.Addrs()[0], "--mongo-uri", "mongodb://user:s3cret@127.0.0.1:1/?authSource=admin"}, nil, io.Discard, &stderr)
	assert.Equal(t, 1, code, "no MongoDB to connect to; log:\n%s", &stderr)
	assert.Contains(t, stderr.String(), "MongoDB at mongodb://user:xxxxx@127.0.0.1:1/", "the failure names the server")
	assert.NotContains(t, stderr.String(), "s3cret", "the password stays out of the log:\n%s", &stderr)
}

// TestMongoWaitedForAtStart: a store that is down when a command starts is
// waited for, with a log line per attempt, and used once it is up.
func TestMongoWaitedForAtStart(t *testing.T) {
	m := mongotest.New(t)
	require.NoError(t, m.Stop(), "stop the store")
	go func() {
		time.Sleep(3 * time.Second) // longer than a ping's server selection
		if err := m.Start(); err != nil {
			t.Errorf("start the store: %v", err)
		}
	}()
	var logs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := connectMongo(ctx, m.URI(), slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err, "connect once the store is up; log:\n%s", &logs)
	defer c.Disconnect(context.Background())
	assert.Contains(t, logs.String(), "MongoDB not reachable yet; retrying", "the wait is logged")
	n, err := c.Database("btc").Collection("x").CountDocuments(ctx, map[string]any{})
	require.NoError(t, err, "the client works")
	assert.Zero(t, n, "an empty collection")
}

// TestWaitFor: the start-up wait for Kafka and MongoDB retries with a log
// line until try succeeds, stops at once on a permanent error, gives up
// after its time saying what was not reachable, and stops when ctx is done.
func TestWaitFor(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	down := errors.New("connection refused")
	n := 0
	err := waitFor(context.Background(), log, time.Minute, "the store", "store not reachable yet", func() error {
		if n++; n < 3 {
			return down
		}
		return nil
	})
	require.NoError(t, err, "up at the third try")
	assert.Equal(t, 2, strings.Count(logs.String(), "store not reachable yet"), "a log line per failed try")

	n = 0
	err = waitFor(context.Background(), log, time.Minute, "the store", "retrying", func() error {
		n++
		return permanent{errors.New("bad password")}
	})
	assert.EqualError(t, err, "bad password", "a permanent error as it is")
	assert.Equal(t, 1, n, "not retried")

	began := time.Now()
	err = waitFor(context.Background(), log, 600*time.Millisecond, "the store", "retrying", func() error { return down })
	assert.ErrorIs(t, err, down, "the last error")
	assert.EqualError(t, err, "the store: not reachable: connection refused", "says what")
	assert.Less(t, time.Since(began), 3*time.Second, "gives up after its time and one backoff")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = waitFor(ctx, log, time.Minute, "the store", "retrying", func() error { return down })
	assert.ErrorIs(t, err, context.DeadlineExceeded, "ctx ends the wait")
}

// TestExtractStopsWithBrokerAway: extract stopped while its broker is away
// waits a bounded time for the records in flight, then exits 1 saying they
// were not delivered, instead of hanging or claiming a clean stop.
func TestExtractStopsWithBrokerAway(t *testing.T) {
	defer func(d time.Duration) { extractFlushWait = d }(extractFlushWait)
	extractFlushWait = 2 * time.Second
	k := kafkatest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"extract", "--brokers", k.Addrs()[0], "--source", "synthetic", "--speed", "0"}, nil, io.Discard, &stderr)
	}()
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "extract: producing to") }, 30*time.Second, 10*time.Millisecond,
		"extract starts; log:\n%s", &stderr)
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, k.Close(), "stop the broker")
	time.Sleep(500 * time.Millisecond) // records pile up in flight
	stopped := time.Now()
	cancel()
	select {
	case c := <-code:
		assert.Equal(t, 1, c, "exit code; log:\n%s", &stderr)
		assert.Less(t, time.Since(stopped), 15*time.Second, "a bounded stop")
		assert.Contains(t, stderr.String(), "still in flight", "the undelivered records are reported")
		assert.NotContains(t, stderr.String(), "extract: done", "no clean stop claimed")
	case <-time.After(time.Minute):
		t.Fatalf("extract did not stop; log:\n%s", &stderr)
	}
}
