package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
