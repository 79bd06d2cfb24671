package dashboard

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
)

// serve serves h's Handler until the test ends (the hub closes first, which
// ends the event streams).
func serve(t testing.TB, h *Hub) *httptest.Server {
	srv := httptest.NewServer(Handler(h))
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return srv
}

// split returns the first half of every series of m, and the rest.
func split(m model) (model, model) {
	a, b := model{}, model{}
	for sym, s := range m {
		for k := range s {
			h := len(s[k]) / 2
			a.series(sym)[k] = s[k][:h]
			b.series(sym)[k] = s[k][h:]
		}
	}
	return a, b
}

// within returns the records of m with times in [from, to].
func within(m model, from, to stream.Time) model {
	out := model{}
	for sym, s := range m {
		for k := range s {
			for _, p := range s[k] {
				if p.t >= from && p.t <= to {
					out.series(sym)[k] = append(out.series(sym)[k], p)
				}
			}
		}
	}
	return nonEmpty(out)
}

// getSnapshot reads /api/snapshot with the query q into a model.
func getSnapshot(t *testing.T, base, q string) model {
	t.Helper()
	resp, err := http.Get(base + "/api/snapshot" + q)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var b browser
	b.apply(t, sseEvent{name: "snapshot", id: seqOf(t, body), data: body})
	return b.m
}

func seqOf(t *testing.T, body []byte) string {
	s := string(body)
	i := strings.Index(s, `"seq":`)
	require.GreaterOrEqual(t, i, 0)
	s = s[i+6:]
	j := strings.IndexAny(s, ",}")
	return s[:j]
}

// TestSSEEqualsRecords feeds a hub with the records of a replayed trace
// (the offline pipeline's outputs and the btc-price lines) and checks that
// the events a browser receives rebuild exactly those records, series by
// series and record by record, for a browser connected from the start and
// for one connected half way (snapshot, then deltas); and that the JSON
// snapshot, whole or for a past range, holds the same records.
func TestSSEEqualsRecords(t *testing.T) {
	cfg := btc.DefaultConfig()
	n := len(cfg.Windows)
	_, want := offlineRecords(t, testTrace(1, 4000, 10_000), cfg)
	total := totalRecords(want)
	require.Greater(t, total, uint64(15_000))

	h := NewHub(cfg, Options{Tick: 5 * time.Millisecond})
	defer h.Close()
	srv := serve(t, h)

	early := dialSSE(t, srv.URL+"/events", 0)
	first, second := split(want)
	feed(h, first, n)
	h.Flush()
	late := dialSSE(t, srv.URL+"/events", 0)
	feed(h, second, n)
	h.Flush()
	require.Equal(t, total, h.Metrics().Seq, "records applied")

	early.waitSeq(t, total, 20*time.Second)
	late.waitSeq(t, total, 20*time.Second)
	requireSameModel(t, want, early.model())
	requireSameModel(t, want, late.model())
	for name, c := range map[string]*sseClient{"early": early, "late": late} {
		c.mu.Lock()
		assert.Equal(t, 1, c.b.snapshots, "%s: snapshots", name)
		assert.Zero(t, c.b.gaps, "%s: gaps", name)
		assert.Positive(t, c.b.frames, "%s: deltas", name)
		c.mu.Unlock()
	}
	m := h.Metrics()
	assert.Zero(t, m.Dropped+m.Resyncs+m.Lost+m.Disconnects, "%+v", m)

	got := getSnapshot(t, srv.URL, "")
	requireSameModel(t, want, got)

	// A past range, in milliseconds and in RFC 3339.
	btcSeries := want["BTCUSDT"][kMoving]
	from, to := btcSeries[len(btcSeries)/4].t, btcSeries[len(btcSeries)/2].t
	got = getSnapshot(t, srv.URL, "?from="+strconv.FormatInt(int64(from), 10)+"&to="+strconv.FormatInt(int64(to), 10))
	requireSameModel(t, within(want, from, to), got)
	got = getSnapshot(t, srv.URL, "?from="+string(stream.AppendTime(nil, from))+"&to="+string(stream.AppendTime(nil, to)))
	requireSameModel(t, within(want, from, to), got)

	resp, err := http.Get(srv.URL + "/api/snapshot?from=yesterday")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

// TestSSEBounds checks the bounded buffer: each series keeps at most
// MaxPoints records and only those within Retain of its newest, and a
// browser that applies the same bounds to the deltas ends with exactly the
// hub's snapshot, a suffix of each series' records.
func TestSSEBounds(t *testing.T) {
	cfg := btc.DefaultConfig()
	n := len(cfg.Windows)
	_, want := offlineRecords(t, testTrace(2, 3000, 10_000), cfg)
	const maxPoints = 80
	retain := 15 * time.Second
	h := NewHub(cfg, Options{Tick: time.Hour, MaxPoints: maxPoints, Retain: retain})
	defer h.Close()
	srv := serve(t, h)
	c := dialSSE(t, srv.URL+"/events", 0)

	// Feed in chunks, one frame each.
	const chunk = 37
	var seq uint64
	for i := 0; ; i += chunk {
		part, more := model{}, false
		for sym, s := range want {
			for k := range s {
				if i < len(s[k]) {
					part.series(sym)[k] = s[k][i:min(i+chunk, len(s[k]))]
					more = true
				}
			}
		}
		if !more {
			break
		}
		feed(h, part, n)
		h.Flush()
		seq += totalRecords(part)
		c.waitSeq(t, seq, 10*time.Second)
	}
	snap := getSnapshot(t, srv.URL, "")
	requireSameModel(t, snap, c.model())
	for sym, s := range want {
		for k := range s {
			got := snap[sym][k]
			require.LessOrEqual(t, len(got), maxPoints)
			require.NotEmpty(t, got)
			newest := stream.MinTime
			for _, p := range s[k] {
				newest = max(newest, p.t)
			}
			assert.GreaterOrEqual(t, got[0].t, newest-stream.DurationOf(retain), "%s %s: oldest kept", sym, kindNames[k])
			suffix := s[k][len(s[k])-len(got):]
			wantS, gotS := model{}, model{}
			wantS.series(sym)[k], gotS.series(sym)[k] = suffix, got
			requireSameModel(t, wantS, gotS)
		}
	}
}

// TestHubEmit feeds a hub straight from the pipeline's operator (through
// Hub.Outputs) and finds the same records as the offline files.
func TestHubEmit(t *testing.T) {
	cfg := btc.DefaultConfig()
	in := testTrace(3, 1500, 10_000)
	_, want := offlineRecords(t, in, cfg)
	h := NewHub(cfg, Options{Tick: time.Hour})
	defer h.Close()
	o := h.Outputs()
	pipe, err := btc.NewPipeline(cfg, o.ZScore, o.Higher, o.Lower)
	require.NoError(t, err)
	d, err := stream.NewDriver[float64, []window.Statistics](pipe, o.Moving, stream.WithLateness(cfg.Lateness))
	require.NoError(t, err)
	dec := btc.NewDecoder()
	for _, line := range strings.Split(strings.TrimSpace(string(in)), "\n") {
		p, err := dec.Decode([]byte(line))
		if err != nil {
			continue
		}
		h.AddPrice(p.Symbol, p.Time, p.Price)
		d.Push(0, stream.Event[float64]{Key: p.Symbol, Time: p.Time, Value: p.Price}, time.Time{})
	}
	d.Finish()
	h.Flush()
	body, _ := h.snapshot(stream.MinTime, stream.MaxTime, 0)
	var b browser
	b.apply(t, sseEvent{name: "snapshot", id: seqOf(t, body), data: body})
	// The files hold the statistics as printed (12 decimals); Emit gets
	// them exact.
	for sym, s := range want {
		for k := range s {
			got := b.m[sym][k]
			require.Len(t, got, len(s[k]), "%s %s", sym, kindNames[k])
			for i, p := range s[k] {
				require.Equal(t, p.t, got[i].t)
				for j := range p.v {
					if math.IsNaN(p.v[j]) {
						require.True(t, math.IsNaN(got[i].v[j]), "%s %s %d", sym, kindNames[k], i)
						continue
					}
					require.InDelta(t, p.v[j], got[i].v[j], 1e-9*max(1, math.Abs(p.v[j])), "%s %s %d", sym, kindNames[k], i)
				}
			}
		}
	}
}

// TestHubBounds checks that Add never grows the hub past its bounds: a
// record of a symbol beyond MaxSymbols, or added while MaxPending records
// wait for the tick, is dropped and counted, and a record of the wrong
// number of windows is refused.
func TestHubBounds(t *testing.T) {
	cfg := btc.DefaultConfig()
	h := NewHub(cfg, Options{Tick: time.Hour, MaxSymbols: 2, MaxPending: 10})
	defer h.Close()
	for i := range 12 {
		h.AddPrice("S"+strconv.Itoa(i%3), stream.Time(i), 1)
	}
	assert.Equal(t, uint64(2), h.Metrics().Lost, "beyond MaxPending")
	h.Flush()
	m := h.Metrics()
	assert.Equal(t, uint64(10), m.Seq)
	assert.Equal(t, uint64(2+3), m.Lost, "S2's records are lost too")
	h.AddMoving("S0", 1, statsOf(make([]float64, 3), 1))
	h.AddZScore("S0", 1, 1, scoresOf([]float64{math.NaN()}))
	assert.Equal(t, uint64(7), h.Metrics().Lost)
	body, _ := h.snapshot(stream.MinTime, stream.MaxTime, 0)
	assert.NotContains(t, string(body), `"S2"`)
}

// TestSSEStats checks the stage counters: sampled every StatsEvery, sent
// even when no record arrives, with rates derived from the totals.
func TestSSEStats(t *testing.T) {
	var calls atomic.Uint64
	h := NewHub(btc.DefaultConfig(), Options{Tick: 5 * time.Millisecond, StatsEvery: 20 * time.Millisecond,
		Stats: func() []StageStat {
			c := calls.Add(1)
			return []StageStat{{Name: "moving", In: 100 * c, Out: 50 * c, Lag: 3, WatermarkDelay: 1500 * time.Millisecond, Late: 1, Duplicates: 2, Invalid: 3, DeadLettered: 4},
				{Name: "load", In: c, WatermarkDelay: -1}}
		}})
	srv := serve(t, h)
	c := dialSSE(t, srv.URL+"/events", 0)
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.b.stats) >= 5
	}, 10*time.Second, 5*time.Millisecond)
	c.mu.Lock()
	samples := slices.Clone(c.b.stats)
	c.mu.Unlock()
	type row struct {
		Name    string   `json:"name"`
		In      uint64   `json:"in"`
		Out     uint64   `json:"out"`
		InRate  *float64 `json:"inRate"`
		OutRate *float64 `json:"outRate"`
		Lag     int64    `json:"lag"`
		WM      *float64 `json:"wmDelay"`
		Late    uint64   `json:"late"`
		Dup     uint64   `json:"dup"`
		Invalid uint64   `json:"invalid"`
		Dead    uint64   `json:"dead"`
	}
	var prevT int64
	for i, raw := range samples {
		var s struct {
			T      int64 `json:"t"`
			Stages []row `json:"stages"`
		}
		require.NoError(t, json.Unmarshal(raw, &s))
		require.Len(t, s.Stages, 2)
		m, l := s.Stages[0], s.Stages[1]
		assert.Equal(t, "moving", m.Name)
		assert.Equal(t, []any{int64(3), 1.5, uint64(1), uint64(2), uint64(3), uint64(4)}, []any{m.Lag, *m.WM, m.Late, m.Dup, m.Invalid, m.Dead})
		assert.Nil(t, l.WM, "no watermark yet")
		if i == 0 {
			assert.Nil(t, m.InRate, "no rate before a second sample")
		} else {
			require.NotNil(t, m.InRate)
			dt := float64(s.T-prevT) / 1000
			assert.InDelta(t, 100/dt, *m.InRate, 100/dt*0.5, "sample %d", i)
			assert.InDelta(t, *m.InRate/2, *m.OutRate, 1e-9)
		}
		prevT = s.T
	}
}

// TestHandlerPage checks the page the handler serves: self-contained, with
// its Content-Security-Policy, and nothing else under the root.
func TestHandlerPage(t *testing.T) {
	h := NewHub(btc.DefaultConfig(), Options{})
	srv := serve(t, h)
	resp, err := http.Get(srv.URL + "/")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
	s := string(body)
	assert.Contains(t, s, `<body data-mode="live">`)
	assert.Contains(t, s, "var uPlot=")
	assert.Contains(t, s, "window.tidemark")
	assert.NotContains(t, s, "{{", "every placeholder filled")
	for _, ref := range []string{"<link", " src=", "@import", "url(http"} {
		assert.NotContains(t, s, ref)
	}
	resp, err = http.Get(srv.URL + "/other")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}
