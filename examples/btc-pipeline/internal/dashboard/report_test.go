package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
)

// reportData returns the data a report file holds, as a model, and its
// counters.
func reportData(t *testing.T, page []byte) (model, []json.RawMessage) {
	t.Helper()
	const open = `<script id="tidemark-data" type="application/json">`
	i := bytes.Index(page, []byte(open))
	require.GreaterOrEqual(t, i, 0)
	data := page[i+len(open):]
	data = data[:bytes.Index(data, []byte("</script>"))]
	var b browser
	b.apply(t, sseEvent{name: "snapshot", id: "0", data: data})
	return b.m, b.stats
}

// TestReport builds the report of an offline run from its directory and
// checks that the file holds every record, the run's counters, and nothing
// that a browser would fetch.
func TestReport(t *testing.T) {
	cfg := btc.DefaultConfig()
	in := testTrace(7, 2000, 10_000)
	dir, want := offlineRecords(t, in, cfg)
	sum, err := btc.Offline(context.Background(), bytes.NewReader(in), filepath.Join(dir, "again"), cfg, quiet)
	require.NoError(t, err)

	rep, err := ReportFromDir(dir, bytes.NewReader(in), cfg)
	require.NoError(t, err)
	rep.Title = `BTC </script><b>& co`
	var out bytes.Buffer
	require.NoError(t, WriteReport(&out, rep))
	page := out.Bytes()

	got, stats := reportData(t, page)
	requireSameModel(t, want, got)
	require.Len(t, stats, 1)
	var sample struct {
		Stages []struct {
			Name                              string
			In, Out, Late, Dup, Invalid, Dead uint64
			InRate                            *float64 `json:"inRate"`
			WMDelay                           *float64 `json:"wmDelay"`
		} `json:"stages"`
	}
	require.NoError(t, json.Unmarshal(stats[0], &sample))
	require.Len(t, sample.Stages, 5)
	off := sample.Stages[0]
	assert.Equal(t, "offline", off.Name)
	written := sum.Written[btc.Moving] + sum.Written[btc.ZScore] + sum.Written[btc.Higher] + sum.Written[btc.Lower]
	assert.Equal(t, []uint64{sum.Lines, written, sum.Late, sum.Duplicates, sum.Invalid, sum.Invalid},
		[]uint64{off.In, off.Out, off.Late, off.Dup, off.Invalid, off.Dead})
	assert.Nil(t, off.InRate)
	assert.Nil(t, off.WMDelay)
	for i, k := range []btc.Kind{btc.Moving, btc.ZScore, btc.Higher, btc.Lower} {
		assert.Equal(t, k.Topic(), sample.Stages[1+i].Name)
		assert.Equal(t, sum.Written[k], sample.Stages[1+i].Out)
	}

	// Self-contained: the chart library inline, nothing to fetch.
	s := string(page)
	assert.Contains(t, s, "uPlot")
	assert.Contains(t, s, "Permission is hereby granted", "uPlot's licence")
	for _, ref := range []string{"<link", " src=", "@import", "url(http", "fetch(\"http", "cdn"} {
		assert.NotContains(t, strings.ToLower(s), strings.ToLower(ref))
	}
	assert.Equal(t, 3, strings.Count(s, "</script>"), "the data, uPlot and the page's script")
	assert.Contains(t, s, "BTC &lt;/script&gt;&lt;b&gt;&amp; co", "the title is escaped")
	assert.Contains(t, s, "default-src 'none'", "a Content-Security-Policy")
	assert.NotContains(t, s, "connect-src", "the report connects nowhere")
}

// TestReportBounds checks the report's bound on points per series (every
// k-th record and the last), and a report without the price input (the
// price line then comes from the z-score records).
func TestReportBounds(t *testing.T) {
	cfg := btc.DefaultConfig()
	dir, want := offlineRecords(t, testTrace(8, 1500, 10_000), cfg)
	rep, err := ReportFromDir(dir, nil, cfg)
	require.NoError(t, err)
	rep.MaxPoints = 100
	var out bytes.Buffer
	require.NoError(t, WriteReport(&out, rep))
	got, _ := reportData(t, out.Bytes())
	for sym, s := range want {
		assert.Empty(t, got[sym][kPrice], "no price input")
		for k := kMoving; k < numKinds; k++ {
			w, g := s[k], got[sym][k]
			require.LessOrEqual(t, len(g), 101, "%s %s", sym, kindNames[k])
			require.Greater(t, len(w), 100)
			stride := (len(w) + 99) / 100
			for i, p := range g[:len(g)-1] {
				require.True(t, samePoint(w[i*stride], p), "%s %s point %d", sym, kindNames[k], i)
			}
			require.True(t, samePoint(w[len(w)-1], g[len(g)-1]), "the last record is kept")
		}
	}
}
