package dashboard

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/stream"
)

// The browser tests load the page in headless Chromium (TIDEMARK_CHROMIUM;
// they skip without it), wait for the charts, read what each chart was
// given to draw through window.tidemark, compare it with the records the
// page was fed, check that every series left pixels on its canvas, and fail
// on any JavaScript exception, console error or failed load. They save
// screenshots (and the report) in TIDEMARK_ARTIFACTS, or in a temporary
// directory.

// artifacts returns the directory for the screenshots.
func artifacts(t *testing.T) string {
	if d := os.Getenv("TIDEMARK_ARTIFACTS"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	return t.TempDir()
}

// pageState is what the page says it drew.
type pageState struct {
	Charts    map[string][][]*float64 `json:"charts"`
	Inked     map[string][]int        `json:"inked"`
	Heatmap   struct{ Columns, Filled, Points int }
	Selection struct{ Symbol, Window string }
	Symbols   []string `json:"symbols"`
	Counters  int      `json:"counters"`
	Seq       uint64   `json:"seq"`
	Title     string   `json:"title"`
}

const stateJS = `(async () => {
  const T = window.tidemark, charts = {}, inked = {};
  for (const n of Object.keys(T.charts)) { charts[n] = T.chartData(n); inked[n] = await T.inked(n); }
  return {charts, inked, heatmap: T.heatmap, selection: T.selection, seq: T.seq,
    symbols: [...document.querySelectorAll("#symbol option")].map(o => o.value),
    counters: document.querySelectorAll("#counters tbody tr:not(:has(.empty))").length,
    title: document.getElementById("status").textContent};
})()`

func readState(t *testing.T, ctx context.Context, p *cdpPage) pageState {
	t.Helper()
	var st pageState
	require.NoError(t, p.eval(ctx, stateJS, &st))
	return st
}

// xy is one drawn point.
type xy struct{ x, y float64 }

func sortXY(s []xy) []xy {
	slices.SortFunc(s, func(a, b xy) int { return cmp.Or(cmp.Compare(a.x, b.x), cmp.Compare(a.y, b.y)) })
	return s
}

// pairs returns the points of series col of a chart's data that are not
// null.
func pairs(data [][]*float64, col int) []xy {
	var out []xy
	for i, x := range data[0] {
		if y := data[col][i]; y != nil && x != nil {
			out = append(out, xy{*x, *y})
		}
	}
	return sortXY(out)
}

// expected returns the points of series k of records ps, value f.
func expected(ps []point, f func(v []float64) float64) []xy {
	var out []xy
	for _, p := range ps {
		if y := f(p.v); !math.IsNaN(y) {
			out = append(out, xy{float64(p.t) / 1000, y})
		}
	}
	return sortXY(out)
}

func requireXY(t *testing.T, what string, want, got []xy) {
	t.Helper()
	require.Equal(t, len(want), len(got), "%s: points drawn", what)
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("%s: point %d drawn at %v, want %v", what, i, got[i], want[i])
		}
	}
}

// checkDrawn compares the price, z-score and lookahead charts with the
// records of a symbol, for window wi of n, within [from, to].
func checkDrawn(t *testing.T, st pageState, want model, sym string, wi, n int, from, to stream.Time) {
	t.Helper()
	s := within(want, from, to)[sym]
	require.NotNil(t, s, "%s has records in the range", sym)
	price := st.Charts["price"]
	require.Len(t, price, 5, "price chart: x, price, mean, mean+std, mean-std")
	requireXY(t, sym+" price", expected(s[kPrice], func(v []float64) float64 { return v[0] }), pairs(price, 1))
	requireXY(t, sym+" mean", expected(s[kMoving], func(v []float64) float64 { return v[wi] }), pairs(price, 2))
	requireXY(t, sym+" mean+std", expected(s[kMoving], func(v []float64) float64 { return v[wi] + v[n+wi] }), pairs(price, 3))
	requireXY(t, sym+" mean-std", expected(s[kMoving], func(v []float64) float64 { return v[wi] - v[n+wi] }), pairs(price, 4))

	z := st.Charts["zscore"]
	require.Len(t, z, 1+n, "z-score chart: x and one series per window")
	for w := range n {
		requireXY(t, fmt.Sprintf("%s z-score %d", sym, w), expected(s[kZScore], func(v []float64) float64 { return v[1+w] }), pairs(z, 1+w))
	}
	require.Len(t, z[0], len(s[kZScore]), "one x per z-score record")

	la := st.Charts["lookahead"]
	require.Len(t, la, 3)
	requireXY(t, sym+" higher", expected(s[kHigher], func(v []float64) float64 { return v[0] }), pairs(la, 1))
	requireXY(t, sym+" lower", expected(s[kLower], func(v []float64) float64 { return v[0] }), pairs(la, 2))

	for _, c := range []string{"price", "zscore", "lookahead"} {
		for i, px := range st.Inked[c] {
			assert.Positive(t, px, "%s %s chart: series %d drew nothing", sym, c, i+1)
		}
	}
	assert.Positive(t, st.Heatmap.Filled, "%s: the z-score strip is empty", sym)
	assert.Equal(t, len(s[kZScore]), st.Heatmap.Points, "%s: z-score strip points", sym)
}

func requireClean(t *testing.T, p *cdpPage) {
	t.Helper()
	problems, _ := p.collected()
	require.Empty(t, problems, "the page logged errors")
}

// TestBrowserHarness checks that the harness sees what it must fail on: a
// console error and an uncaught exception.
func TestBrowserHarness(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := chromium(t, ctx)
	require.NoError(t, p.navigate(ctx, "data:text/html,<p>x</p>"))
	require.NoError(t, p.eval(ctx, `console.error("boom"); setTimeout(() => { throw new Error("bang") }, 0); true`, nil))
	require.Eventually(t, func() bool {
		problems, _ := p.collected()
		return len(problems) >= 2
	}, 10*time.Second, 20*time.Millisecond)
	problems, _ := p.collected()
	assert.Contains(t, fmt.Sprint(problems), "boom")
	assert.Contains(t, fmt.Sprint(problems), "bang")
}

// TestBrowserDashboard serves the dashboard of a hub fed with a replayed
// trace, half before the page loads (the snapshot) and half after (the
// event stream), and checks the charts against the records for several
// symbols and windows, a past range, and the stage charts; it saves
// dashboard.png.
func TestBrowserDashboard(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	p := chromium(t, ctx)

	cfg := btc.DefaultConfig()
	n := len(cfg.Windows)
	_, want := offlineRecords(t, testTrace(11, 2500, 10_000), cfg)
	h := NewHub(cfg, Options{Tick: 50 * time.Millisecond, StatsEvery: 100 * time.Millisecond})
	var calls atomic.Uint64
	h.SetStats(func() []StageStat {
		c := calls.Add(1)
		return []StageStat{
			{Name: "extract", In: 100 * c, Out: 100 * c, WatermarkDelay: -1},
			{Name: "moving", In: 90 * c, Out: 88 * c, Lag: int64(c % 7), WatermarkDelay: time.Duration(10+c%5) * time.Second, Late: c / 10, Duplicates: c / 20, Invalid: 3, DeadLettered: 3},
			{Name: "zscore", In: 170 * c, Out: 85 * c, Lag: int64(c % 3), WatermarkDelay: 11 * time.Second},
			{Name: "bonus", In: 90 * c, Out: 176 * c, Lag: 0, WatermarkDelay: 30 * time.Second},
		}
	})
	srv := serve(t, h)
	first, second := split(want)
	feed(h, first, n)
	h.Flush()
	seq1 := h.Metrics().Seq

	require.NoError(t, p.navigate(ctx, srv.URL+"/"))
	require.NoError(t, p.waitTrue(ctx, "window.tidemark && tidemark.ready && tidemark.seq === "+strconv.FormatUint(seq1, 10)))
	feed(h, second, n)
	h.Flush()
	total := totalRecords(want)
	require.NoError(t, p.waitTrue(ctx, "tidemark.seq === "+strconv.FormatUint(total, 10)+" && tidemark.frames > 0"))
	// Three stats samples at least, for lines in the stage charts.
	require.NoError(t, p.waitTrue(ctx, "tidemark.model.stats.length >= 4"))
	require.NoError(t, p.eval(ctx, "tidemark.select(null, null), true", nil))

	st := readState(t, ctx, p)
	assert.Equal(t, []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}, st.Symbols)
	assert.Equal(t, "BTCUSDT", st.Selection.Symbol)
	assert.Equal(t, "30s", st.Selection.Window)
	checkDrawn(t, st, want, "BTCUSDT", 0, n, stream.MinTime, stream.MaxTime)
	for _, c := range []string{"throughput", "watermark", "lag"} {
		data := st.Charts[c]
		require.Len(t, data, 1+4, "%s: x and one series per stage", c)
		require.GreaterOrEqual(t, len(data[0]), 4, "%s: samples", c)
	}
	for _, c := range []string{"throughput", "lag"} {
		for i, px := range st.Inked[c] {
			assert.Positive(t, px, "%s chart: series %d drew nothing", c, i+1)
		}
	}
	assert.Equal(t, 4, st.Counters, "counter rows")
	require.NoError(t, p.screenshot(ctx, filepath.Join(artifacts(t), "dashboard.png")))

	for _, sel := range []struct {
		sym string
		wi  int
	}{{"ETHUSDT", 2}, {"SOLUSDT", 5}} {
		require.NoError(t, p.eval(ctx, fmt.Sprintf("tidemark.select(%q, %q), true", sel.sym, btc.Label(cfg.Windows[sel.wi])), nil))
		checkDrawn(t, readState(t, ctx, p), want, sel.sym, sel.wi, n, stream.MinTime, stream.MaxTime)
	}

	// A past range, from the server.
	mv := want["SOLUSDT"][kMoving]
	from, to := mv[len(mv)/3].t, mv[2*len(mv)/3].t
	require.NoError(t, p.eval(ctx, fmt.Sprintf("tidemark.showRange(%d, %d).then(() => true)", from, to), nil))
	checkDrawn(t, readState(t, ctx, p), want, "SOLUSDT", 5, n, from, to)
	require.NoError(t, p.eval(ctx, "tidemark.showAll(), true", nil))
	checkDrawn(t, readState(t, ctx, p), want, "SOLUSDT", 5, n, stream.MinTime, stream.MaxTime)
	require.NoError(t, p.eval(ctx, `tidemark.select("BTCUSDT", "30s"), true`, nil))

	_, requests := p.collected()
	for _, r := range requests {
		assert.Regexp(t, `^(`+srv.URL+`/|data:)`, r, "the page asked for something elsewhere")
	}
	requireClean(t, p)
}

// TestBrowserReport writes the report of an offline run and opens the file
// in headless Chromium with the network off: every chart must be drawn
// from the records, for every symbol, with no request but the file itself;
// it saves report.png and report.html.
func TestBrowserReport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	p := chromium(t, ctx)
	require.NoError(t, p.call(ctx, "Network.emulateNetworkConditions", map[string]any{
		"offline": true, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}, nil))

	cfg := btc.DefaultConfig()
	n := len(cfg.Windows)
	in := testTrace(12, 2500, 10_000)
	dir, want := offlineRecords(t, in, cfg)
	rep, err := ReportFromDir(dir, bytes.NewReader(in), cfg)
	require.NoError(t, err)
	art := artifacts(t)
	path, err := filepath.Abs(filepath.Join(art, "report.html"))
	require.NoError(t, err)
	require.NoError(t, WriteReportFile(path, rep))

	require.NoError(t, p.navigate(ctx, "file://"+path))
	require.NoError(t, p.waitTrue(ctx, "window.tidemark && tidemark.ready"))
	st := readState(t, ctx, p)
	assert.Equal(t, []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}, st.Symbols)
	assert.Contains(t, st.Title, "offline report")
	assert.Equal(t, 5, st.Counters, "counter rows: offline and the four outputs")
	for wi, sym := range st.Symbols {
		require.NoError(t, p.eval(ctx, fmt.Sprintf("tidemark.select(%q, %q), true", sym, btc.Label(cfg.Windows[wi])), nil))
		st := readState(t, ctx, p)
		checkDrawn(t, st, want, sym, wi, n, stream.MinTime, stream.MaxTime)
		er := st.Charts["eventrate"]
		require.Len(t, er, 1+5, "records per second: x and one series per topic")
		for k := range numKinds {
			var sum float64
			for _, v := range er[1+int(k)] {
				sum += *v
			}
			assert.Equal(t, float64(len(want[sym][k])), sum, "%s %s: records per second add up", sym, kindNames[k])
		}
		for i, px := range st.Inked["eventrate"] {
			assert.Positive(t, px, "%s records per second: series %d drew nothing", sym, i+1)
		}
		for _, c := range []string{"throughput", "watermark", "lag"} {
			assert.NotContains(t, st.Charts, c, "live-only chart in the report")
		}
	}
	// A range, in the page.
	mv := want["ETHUSDT"][kMoving]
	from, to := mv[len(mv)/4].t, mv[len(mv)/2].t
	require.NoError(t, p.eval(ctx, fmt.Sprintf(`tidemark.select("ETHUSDT", "1m"); tidemark.showRange(%d, %d).then(() => true)`, from, to), nil))
	checkDrawn(t, readState(t, ctx, p), want, "ETHUSDT", 1, n, from, to)
	require.NoError(t, p.eval(ctx, `tidemark.showAll(); tidemark.select("BTCUSDT", "30s"), true`, nil))
	require.NoError(t, p.screenshot(ctx, filepath.Join(art, "report.png")))

	_, requests := p.collected()
	for _, r := range requests {
		assert.Regexp(t, `^(file://|data:)`, r, "the report asked for something over the network")
	}
	requireClean(t, p)
}

// TestBrowserScreenshotURL saves a screenshot of the dashboard served at
// TIDEMARK_SCREENSHOT_URL (by all or ui) into TIDEMARK_SCREENSHOT_FILE, once
// the page has drawn its data: how the README's screenshot is made. It
// skips unless both variables and TIDEMARK_CHROMIUM are set.
func TestBrowserScreenshotURL(t *testing.T) {
	url, file := os.Getenv("TIDEMARK_SCREENSHOT_URL"), os.Getenv("TIDEMARK_SCREENSHOT_FILE")
	if url == "" || file == "" {
		t.Skip("TIDEMARK_SCREENSHOT_URL and TIDEMARK_SCREENSHOT_FILE are not set: this only makes the README's screenshot")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	p := chromium(t, ctx)
	require.NoError(t, p.navigate(ctx, url))
	require.NoError(t, p.waitTrue(ctx, "window.tidemark && tidemark.ready && tidemark.renders > 0 && tidemark.model && Object.keys(tidemark.model.symbols || {}).length > 0"))
	time.Sleep(3 * time.Second) // a few stats updates for the stage charts
	require.NoError(t, p.screenshot(ctx, file))
	requireClean(t, p)
}
