package source

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/source/binancetest"
	"github.com/tidemark-go/tidemark/stream"
)

// newTestBinance returns a Binance on srv with fast test settings, and its log.
func newTestBinance(t *testing.T, srv *binancetest.Server, cfg BinanceConfig) (*Binance, *logBuf) {
	t.Helper()
	log, buf := newLogger()
	cfg.BaseURL = srv.URL
	cfg.Logger = log
	if cfg.Interval == 0 {
		cfg.Interval = 10 * time.Millisecond
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 10 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 40 * time.Millisecond
	}
	b, err := NewBinance(cfg)
	require.NoError(t, err)
	return b, buf
}

func TestNewBinance(t *testing.T) {
	b, err := NewBinance(BinanceConfig{})
	require.NoError(t, err)
	assert.Equal(t, "Binance https://api.binance.com (BTCUSDT, every 100ms)", b.Describe())
	assert.Equal(t, "https://api.binance.com/api/v3/ticker/price?symbol=BTCUSDT", b.URL())
	assert.Equal(t, -1, b.Stats().UsedWeight)

	b, err = NewBinance(BinanceConfig{BaseURL: "http://127.0.0.1:1/", Symbols: []string{"BTCUSDT", "ETHUSDT"}, Interval: time.Second})
	require.NoError(t, err)
	assert.Equal(t, "Binance http://127.0.0.1:1 (BTCUSDT,ETHUSDT, every 1s)", b.Describe())
	assert.Equal(t, "http://127.0.0.1:1/api/v3/ticker/price?symbols=%5B%22BTCUSDT%22%2C%22ETHUSDT%22%5D", b.URL())

	for _, cfg := range []BinanceConfig{
		{BaseURL: "ftp://x"}, {BaseURL: "api.binance.com"}, {BaseURL: "http://x?y=1"},
		{Symbols: []string{"btcusdt"}}, {Symbols: []string{"BTC\"USDT"}}, {Symbols: []string{""}},
		{Symbols: []string{"BTCUSDT", "BTCUSDT"}}, {Interval: -1}, {Interval: time.Microsecond},
		{MinBackoff: time.Second, MaxBackoff: time.Millisecond}, {WeightThreshold: 1.5},
	} {
		_, err := NewBinance(cfg)
		assert.Error(t, err, "%+v", cfg)
	}
}

func TestParseTickers(t *testing.T) {
	one := []string{"BTCUSDT"}
	two := []string{"BTCUSDT", "ETHUSDT"}
	p, err := parseTickers([]byte(`{"symbol":"BTCUSDT","price":"99190.48000000"}`), one)
	require.NoError(t, err)
	assert.Equal(t, []string{"99190.48000000"}, p)
	p, err = parseTickers([]byte(` [{"symbol":"ETHUSDT","price":"1812.34"},{"symbol":"BTCUSDT","price":"abc","extra":1}]`), two)
	require.NoError(t, err)
	assert.Equal(t, []string{"abc", "1812.34"}, p, "in the order of the symbols asked for; prices are checked later")

	for _, c := range []struct {
		body    string
		symbols []string
		want    string
	}{
		{``, one, "empty body"},
		{`<html><body>502 Bad Gateway</body></html>`, one, "not JSON"},
		{`{"symbol":"BTCUSDT","pri`, one, "not a ticker object"},
		{`{"symbol":"BTCUSDT","price":"1"} x`, one, "not a ticker object"},
		{`[{"symbol":"BTCUSDT","price":"1.00"}]`, one, "an array where one ticker object was expected"},
		{`{"symbol":"BTCUSDT","price":"1.00"}`, two, "an object where an array"},
		{`{"symbol":"ETHUSDT","price":"1.00"}`, one, `symbol "ETHUSDT" not asked for`},
		{`{"price":"1.00"}`, one, "without symbol"},
		{`{"symbol":"BTCUSDT"}`, one, "no price for BTCUSDT"},
		{`{"symbol":"BTCUSDT","price":99190.48}`, one, "not a ticker object"},
		{`{"symbol":"BTCUSDT","price":null}`, one, "no price"},
		{`[{"symbol":"BTCUSDT","price":"1"}]`, two, "symbol ETHUSDT missing"},
		{`[{"symbol":"BTCUSDT","price":"1"},{"symbol":"BTCUSDT","price":"2"}]`, two, "symbol BTCUSDT twice"},
		{`[{"symbol":"BTCUSDT","price":"1"},null]`, two, "without symbol"},
		{`[{"symbol":"BTCUSDT","price":"1"},{"symbol":"ETHUSDT","price":"2"},{"symbol":"BNBUSDT","price":"3"}]`, two, "not asked for"},
		{`"BTCUSDT"`, one, "not JSON"},
	} {
		_, err := parseTickers([]byte(c.body), c.symbols)
		if assert.Error(t, err, c.body) {
			assert.Contains(t, err.Error(), c.want, c.body)
		}
	}
}

func TestBinanceValuesAndEventTimes(t *testing.T) {
	srv := binancetest.NewServer(nil)
	defer srv.Close()
	srv.Script(
		binancetest.Fault{Prices: map[string]string{"BTCUSDT": "100.00000000"}},
		binancetest.Fault{Prices: map[string]string{"BTCUSDT": "0.00001000"}},
		binancetest.Fault{Prices: map[string]string{"BTCUSDT": "0103456.78912345"}},
	)
	base := time.Date(2025, 5, 8, 4, 12, 38, 352_789_000, time.FixedZone("X", 3600))
	clock := &fakeClock{base: base, step: 100 * time.Millisecond}
	b, logs := newTestBinance(t, srv, BinanceConfig{Now: clock.Now})
	r := start(t, b)
	waitFor(t, 5*time.Second, "5 records", func() bool { return len(r.records()) >= 5 })
	require.ErrorIs(t, r.stop(t), context.Canceled)

	want := []string{
		`{"symbol":"BTCUSDT","price":100,"timestamp":"2025-05-08T03:12:38.352Z"}`,
		`{"symbol":"BTCUSDT","price":0.00001,"timestamp":"2025-05-08T03:12:38.452Z"}`,
		`{"symbol":"BTCUSDT","price":103456.78912345,"timestamp":"2025-05-08T03:12:38.552Z"}`,
		`{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T03:12:38.652Z"}`,
		`{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T03:12:38.752Z"}`,
	}
	prices := []float64{100, 0.00001, 103456.78912345, 99190.48, 99190.48}
	dec := btc.NewDecoder()
	for i, rec := range r.records()[:5] {
		assert.Equal(t, "BTCUSDT", rec.Symbol)
		assert.Equal(t, want[i], string(rec.Value))
		wantT := base.Add(time.Duration(i) * 100 * time.Millisecond).Truncate(time.Millisecond).UTC()
		assert.Equal(t, wantT, rec.Time)
		assert.Equal(t, time.UTC, rec.Time.Location())
		p, err := dec.Decode(rec.Value)
		require.NoError(t, err)
		assert.Equal(t, btc.Price{Symbol: "BTCUSDT", Price: prices[i], Time: stream.TimeOf(wantT)}, p)
	}
	for _, req := range srv.Requests() {
		assert.Equal(t, []string{"BTCUSDT"}, req.Symbols)
	}
	st := b.Stats()
	assert.GreaterOrEqual(t, st.Polls, uint64(5))
	assert.GreaterOrEqual(t, st.Records, uint64(5))
	assert.Positive(t, st.UsedWeight)
	assert.Zero(t, st.Failing)
	assert.Zero(t, logs.count("WARN"), logs.String())
}

func TestBinanceSeveralSymbols(t *testing.T) {
	srv := binancetest.NewServer(nil)
	defer srv.Close()
	b, _ := newTestBinance(t, srv, BinanceConfig{Symbols: []string{"ETHUSDT", "BTCUSDT"}})
	r := start(t, b)
	waitFor(t, 5*time.Second, "6 records", func() bool { return len(r.records()) >= 6 })
	r.stop(t)
	recs := r.records()
	for i := 0; i+1 < len(recs); i += 2 {
		assert.Equal(t, "ETHUSDT", recs[i].Symbol)
		assert.Equal(t, "BTCUSDT", recs[i+1].Symbol)
		assert.Equal(t, recs[i].Time, recs[i+1].Time, "one answer, one event time")
		assert.Contains(t, string(recs[i].Value), `"price":1812.34,`)
		assert.Contains(t, string(recs[i+1].Value), `"price":99190.48,`)
	}
	reqs := srv.Requests()
	assert.Equal(t, []string{"ETHUSDT", "BTCUSDT"}, reqs[0].Symbols)
	if len(reqs) >= 2 && reqs[0].Time.Unix()/60 == reqs[1].Time.Unix()/60 {
		assert.Equal(t, WeightManySymbols, reqs[1].Weight-reqs[0].Weight, "weight of a poll for several symbols")
	}
}

func TestBinanceBadPriceSkipsOnlyThatSymbol(t *testing.T) {
	srv := binancetest.NewServer(nil)
	defer srv.Close()
	bad := []string{"abc", "-1", "0", "1e5", "NaN"}
	for _, p := range bad {
		srv.Script(binancetest.BadPrice("BTCUSDT", p))
	}
	b, logs := newTestBinance(t, srv, BinanceConfig{Symbols: []string{"BTCUSDT", "ETHUSDT"}})
	r := start(t, b)
	waitFor(t, 5*time.Second, "9 records", func() bool { return len(r.records()) >= 9 })
	r.stop(t)
	recs := r.records()
	var syms []string
	for _, rec := range recs[:9] {
		syms = append(syms, rec.Symbol)
	}
	assert.Equal(t, []string{"ETHUSDT", "ETHUSDT", "ETHUSDT", "ETHUSDT", "ETHUSDT", "BTCUSDT", "ETHUSDT", "BTCUSDT", "ETHUSDT"}, syms)
	assert.True(t, strings.HasPrefix(string(recs[5].Value), `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"`), string(recs[5].Value))
	st := b.Stats()
	assert.Equal(t, uint64(5), st.BadPrices)
	assert.Zero(t, st.Malformed)
	assert.Zero(t, st.Failing)
	assert.Equal(t, 1, logs.count("WARN", "does not parse", "symbol=BTCUSDT", "price=abc"), logs.String())
	assert.Equal(t, 1, logs.count("WARN"), logs.String())
	assert.Equal(t, 1, logs.count("INFO", "Binance prices of BTCUSDT parse again after 5 bad prices"), logs.String())
}

func TestBinanceRetryAfter(t *testing.T) {
	srv := binancetest.NewServer(nil)
	defer srv.Close()
	srv.Script(binancetest.RateLimited("1"), binancetest.Banned("1"))
	b, logs := newTestBinance(t, srv, BinanceConfig{})
	r := start(t, b)

	waitFor(t, 2*time.Second, "the 429", func() bool { return b.Stats().RateLimited == 1 })
	st := b.Stats()
	assert.Equal(t, 1, st.Failing)
	assert.GreaterOrEqual(t, st.Backoff, time.Second)
	assert.LessOrEqual(t, st.Backoff, 1100*time.Millisecond)

	waitFor(t, 5*time.Second, "3 records after the 429 and the 418", func() bool { return len(r.records()) >= 3 })
	r.stop(t)
	reqs := srv.Requests()
	require.GreaterOrEqual(t, len(reqs), 4)
	assert.Equal(t, http.StatusTooManyRequests, reqs[0].Status)
	assert.Equal(t, http.StatusTeapot, reqs[1].Status)
	assert.Equal(t, http.StatusOK, reqs[2].Status)
	for i := range 2 {
		gap := reqs[i+1].Time.Sub(reqs[i].Time)
		assert.GreaterOrEqual(t, gap, time.Second, "no request before Retry-After expires (gap %d)", i)
		assert.Less(t, gap, 1500*time.Millisecond, "polling resumes once it expires (gap %d)", i)
	}
	assert.Less(t, reqs[3].Time.Sub(reqs[2].Time), 500*time.Millisecond, "back to the normal interval")

	st = b.Stats()
	assert.Equal(t, uint64(1), st.RateLimited)
	assert.Equal(t, uint64(1), st.Banned)
	assert.Zero(t, st.Failing)
	assert.Zero(t, st.Backoff)
	assert.Equal(t, 1, logs.count("WARN", "HTTP 429", "status=429", "retry_after=1s", "code -1003"), logs.String())
	assert.Equal(t, 1, logs.count("WARN", "HTTP 418", "status=418", "retry_after=1s", "banned"), logs.String())
	assert.Equal(t, 2, logs.count("WARN"), logs.String())
	assert.Equal(t, 1, logs.count("INFO", "Binance reachable again after 2 failures over 2."), logs.String())
}

func TestBinanceBackoffGrowsAndIsCapped(t *testing.T) {
	srv := binancetest.NewServer(nil)
	defer srv.Close()
	srv.Script(binancetest.ServerError(503), binancetest.ServerError(500), binancetest.ServerError(503),
		binancetest.ServerError(502), binancetest.ServerError(503), binancetest.ServerError(503), binancetest.ServerError(504))
	const failures = 7
	b, logs := newTestBinance(t, srv, BinanceConfig{Interval: 5 * time.Millisecond,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 320 * time.Millisecond})
	r := start(t, b)
	var maxBackoff time.Duration
	waitFor(t, 5*time.Second, "3 records after the failures", func() bool {
		maxBackoff = max(maxBackoff, b.Stats().Backoff)
		return len(r.records()) >= 3
	})
	r.stop(t)

	reqs := srv.Requests()
	require.GreaterOrEqual(t, len(reqs), failures+3)
	const slack = 100 * time.Millisecond
	var gaps []time.Duration
	for i := range failures {
		require.GreaterOrEqual(t, reqs[i].Status, 500)
		gaps = append(gaps, reqs[i+1].Time.Sub(reqs[i].Time))
	}
	t.Logf("gaps after each failure: %v", gaps)
	d := 20 * time.Millisecond
	for i, g := range gaps {
		assert.GreaterOrEqual(t, g, d/2, "gap %d: at least half the backoff", i)
		assert.LessOrEqual(t, g, d+slack, "gap %d: at most the backoff", i)
		d = min(2*d, 320*time.Millisecond)
	}
	assert.Greater(t, gaps[4], gaps[0], "backoff grows")
	assert.Greater(t, gaps[5], gaps[1], "backoff grows")
	assert.LessOrEqual(t, maxBackoff, 320*time.Millisecond, "backoff is capped")
	assert.GreaterOrEqual(t, maxBackoff, 160*time.Millisecond)
	for i := failures; i+1 < len(reqs); i++ {
		assert.Less(t, reqs[i+1].Time.Sub(reqs[i].Time), 5*time.Millisecond+slack, "polling resumes at the interval")
	}

	st := b.Stats()
	assert.Equal(t, uint64(failures), st.ServerErrors)
	assert.Zero(t, st.Backoff)
	assert.Equal(t, 1, logs.count("WARN", "Binance server error", "kind=server-error", "status=503"), logs.String())
	assert.Equal(t, 1, logs.count("WARN"), logs.String())
	assert.Equal(t, 1, logs.count("INFO", "Binance reachable again after 7 failures over", "server-error=7"), logs.String())
}

func TestBinanceTimeout(t *testing.T) {
	srv := binancetest.NewServer(nil)
	defer srv.Close()
	srv.Script(binancetest.Slow(2*time.Second), binancetest.Slow(2*time.Second))
	b, logs := newTestBinance(t, srv, BinanceConfig{Timeout: 100 * time.Millisecond})
	r := start(t, b)
	waitFor(t, 3*time.Second, "a record after the timeouts", func() bool { return len(r.records()) >= 1 })
	r.stop(t)
	reqs := srv.Requests()
	require.GreaterOrEqual(t, len(reqs), 3)
	for i := range 2 {
		gap := reqs[i+1].Time.Sub(reqs[i].Time)
		assert.GreaterOrEqual(t, gap, 100*time.Millisecond, "the request waited for its timeout")
		assert.Less(t, gap, 500*time.Millisecond, "and not for the slow answer")
		assert.Zero(t, reqs[i].Status, "the client went away")
	}
	st := b.Stats()
	assert.Equal(t, uint64(2), st.Timeouts)
	assert.Equal(t, 1, logs.count("WARN", "timed out", "kind=timeout"), logs.String())
	assert.Equal(t, 1, logs.count("WARN"), logs.String())
	assert.Equal(t, 1, logs.count("INFO", "reachable again after 2 failures"), logs.String())
}

func TestBinanceMalformed(t *testing.T) {
	srv := binancetest.NewServer(nil)
	defer srv.Close()
	srv.Script(
		binancetest.Malformed(`<!DOCTYPE html><html><body>Sorry, you have been blocked</body></html>`),
		binancetest.Malformed(`{"symbol":"BTCUSDT","pri`),
		binancetest.Malformed(`[{"symbol":"BTCUSDT","price":"1.00"}]`),
		binancetest.Malformed(`{"symbol":"ETHUSDT","price":"1.00"}`),
		binancetest.Malformed(`{"symbol":"BTCUSDT"}`),
	)
	b, logs := newTestBinance(t, srv, BinanceConfig{})
	r := start(t, b)
	waitFor(t, 3*time.Second, "a record", func() bool { return len(r.records()) >= 1 })
	r.stop(t)
	assert.Contains(t, string(r.records()[0].Value), `"price":99190.48,`, "nothing from the malformed answers")
	st := b.Stats()
	assert.Equal(t, uint64(5), st.Malformed)
	assert.Equal(t, 1, logs.count("WARN", "malformed", "not JSON", "blocked"), logs.String())
	assert.Equal(t, 1, logs.count("WARN"), logs.String())
	assert.Equal(t, 1, logs.count("INFO", "reachable again after 5 failures", "malformed=5"), logs.String())
}

func TestBinanceUnreachable(t *testing.T) {
	srv := binancetest.NewServer(nil)
	srv.Close() // connection refused from now on
	b, logs := newTestBinance(t, srv, BinanceConfig{MinBackoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond})
	r := start(t, b)
	time.Sleep(600 * time.Millisecond)
	require.ErrorIs(t, r.stop(t), context.Canceled)
	st := b.Stats()
	assert.Empty(t, r.records())
	assert.Equal(t, st.Polls, st.NetworkErrors)
	// Waits of at least 10, 20, 40, 40, ... ms: about 15 polls in 600 ms at most.
	assert.GreaterOrEqual(t, st.NetworkErrors, uint64(5))
	assert.LessOrEqual(t, st.NetworkErrors, uint64(20), "never hammer")
	assert.Equal(t, 1, logs.count("WARN", "Binance unreachable", "kind=network", "connection refused"), logs.String())
	assert.Equal(t, 1, logs.count("WARN"), logs.String())
	assert.Zero(t, logs.count("INFO"), logs.String())
}

func TestBinanceWeightDelay(t *testing.T) {
	b, err := NewBinance(BinanceConfig{Logger: quiet, Interval: 10 * time.Millisecond})
	require.NoError(t, err)
	at := time.Date(2025, 5, 8, 4, 12, 30, 0, time.UTC) // 30 s before the minute rolls over
	var th bool
	assert.Zero(t, b.weightDelay(&th, tickers{arrived: at, weight: -1}))
	assert.Zero(t, b.weightDelay(&th, tickers{arrived: at, weight: 4800}), "80% is not above 80%")
	assert.False(t, th)
	// 1000 weight left, 500 polls: 30 s / 500.
	assert.Equal(t, 60*time.Millisecond, b.weightDelay(&th, tickers{arrived: at, weight: 5000}))
	assert.True(t, th)
	// 100 left, 50 polls: 600 ms.
	assert.Equal(t, 600*time.Millisecond, b.weightDelay(&th, tickers{arrived: at, weight: 5900}))
	// 2 left, one poll: the rest of the minute and the margin.
	assert.Equal(t, 31*time.Second, b.weightDelay(&th, tickers{arrived: at, weight: 5998}))
	assert.Equal(t, 31*time.Second, b.weightDelay(&th, tickers{arrived: at, weight: 7000}))
	// Near the end of the minute the interval is the floor.
	assert.Equal(t, 10*time.Millisecond, b.weightDelay(&th, tickers{arrived: at.Add(29 * time.Second), weight: 5000}))
	assert.Zero(t, b.weightDelay(&th, tickers{arrived: at, weight: 100}))
	assert.False(t, th)
	assert.Equal(t, uint64(5), b.Stats().Throttled)
}

func TestBinanceWeightThrottling(t *testing.T) {
	srv := binancetest.NewServer(nil)
	defer srv.Close()
	t0 := time.Now()
	minute := time.Date(2025, 5, 8, 4, 12, 0, 0, time.UTC)
	now := func() time.Time { return minute.Add(time.Since(t0)) } // a minute starting now
	b, logs := newTestBinance(t, srv, BinanceConfig{WeightLimit: 1000, Now: now})
	r := start(t, b)

	waitFor(t, 3*time.Second, "normal polling", func() bool { return len(srv.Requests()) >= 20 })
	srv.SetExtraWeight(850) // others on this IP: > 80% of 1000 with ours
	heavy := func() int {
		n := 0
		for _, q := range srv.Requests() {
			if q.Weight > 800 {
				n++
			}
		}
		return n
	}
	waitFor(t, 3*time.Second, "2 polls with a heavy weight", func() bool { return heavy() >= 2 })
	srv.SetExtraWeight(0)
	nHeavyEnd := len(srv.Requests())
	waitFor(t, 5*time.Second, "normal polling again", func() bool { return len(srv.Requests()) >= nHeavyEnd+20 })
	r.stop(t)

	reqs := srv.Requests()
	var throttledGaps []time.Duration
	for i := 0; i+1 < len(reqs); i++ {
		if reqs[i].Weight > 800 {
			throttledGaps = append(throttledGaps, reqs[i+1].Time.Sub(reqs[i].Time))
		}
	}
	t.Logf("gaps after heavy answers: %v", throttledGaps)
	require.GreaterOrEqual(t, len(throttledGaps), 2)
	for _, g := range throttledGaps {
		// (1000 - ~900) / 2 = ~50 polls left for the ~59 s left: > 1 s apart.
		assert.Greater(t, g, 500*time.Millisecond, "slowed down")
	}
	last := reqs[len(reqs)-1].Time.Sub(reqs[len(reqs)-11].Time)
	assert.Less(t, last, time.Second, "10 polls at the normal interval again")
	st := b.Stats()
	assert.GreaterOrEqual(t, st.Throttled, uint64(2))
	assert.Equal(t, 1, logs.count("WARN", "weight near the limit", "limit=1000"), logs.String())
	assert.Equal(t, 1, logs.count("WARN"), logs.String())
	assert.Equal(t, 1, logs.count("INFO", "weight back under the threshold"), logs.String())
}

func TestBinanceProbe(t *testing.T) {
	srv := binancetest.NewServer(nil)
	defer srv.Close()
	b, _ := newTestBinance(t, srv, BinanceConfig{Timeout: 200 * time.Millisecond})
	ctx := context.Background()
	require.NoError(t, b.Probe(ctx))
	assert.Positive(t, b.Stats().UsedWeight)
	assert.Zero(t, b.Stats().Polls, "Probe does not count as a poll")

	srv.Script(binancetest.Fault{Status: http.StatusUnavailableForLegalReasons, Body: binancetest.RestrictedBody})
	err := b.Probe(ctx)
	var pe *PollError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 451, pe.StatusCode)
	assert.Equal(t, "http-status", pe.Kind())
	assert.Contains(t, err.Error(), "restricted location")

	srv.Script(binancetest.Slow(3 * time.Second))
	began := time.Now()
	err = b.Probe(ctx)
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "timeout", pe.Kind())
	assert.Less(t, time.Since(began), time.Second)

	srv.Script(binancetest.BadPrice("BTCUSDT", "NaN"))
	err = b.Probe(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no price parses")

	srv.Script(binancetest.RateLimited("7"))
	err = b.Probe(ctx)
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 7*time.Second, pe.RetryAfter)
	assert.Equal(t, "rate-limited", pe.Kind())

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, b.Probe(cctx), context.Canceled)

	srv.Close()
	err = b.Probe(ctx)
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "network", pe.Kind())
}

func TestBinanceInvalidSymbol(t *testing.T) {
	srv := binancetest.NewServer(nil)
	defer srv.Close()
	b, logs := newTestBinance(t, srv, BinanceConfig{Symbols: []string{"NOSUCHSYM"}})
	err := b.Probe(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "code -1121: Invalid symbol.")
	r := start(t, b)
	waitFor(t, 2*time.Second, "3 failed polls", func() bool { return b.Stats().StatusErrors >= 3 })
	r.stop(t)
	assert.Equal(t, 1, logs.count("WARN", "refused", "status=400", "Invalid symbol"), logs.String())
}

// TestBinancePollBuffer: the records of one answer that do not fit in
// Poll's buffer are returned by the next Polls, before any new request.
func TestBinancePollBuffer(t *testing.T) {
	srv := binancetest.NewServer(nil)
	defer srv.Close()
	b, _ := newTestBinance(t, srv, BinanceConfig{Symbols: []string{"BTCUSDT", "ETHUSDT"}, Interval: time.Hour})
	buf := make([]stream.Record[[]byte], 1)
	var got []string
	for range 2 {
		n, err := b.Poll(context.Background(), buf)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		got = append(got, buf[0].Event.Key)
	}
	assert.Equal(t, []string{"BTCUSDT", "ETHUSDT"}, got, "the symbols of one answer, in order")
	assert.Equal(t, uint64(1), b.Stats().Polls, "one request")
	assert.Equal(t, uint64(2), b.Stats().Records, "two records")
	assert.Len(t, srv.Requests(), 1, "one request")
	n, err := b.Poll(context.Background(), buf[:0])
	assert.NoError(t, err, "an empty buffer")
	assert.Zero(t, n, "an empty buffer")
}

func TestBinanceCancelDuringRetryAfter(t *testing.T) {
	srv := binancetest.NewServer(nil)
	defer srv.Close()
	srv.Script(binancetest.Banned("120"))
	b, logs := newTestBinance(t, srv, BinanceConfig{})
	r := start(t, b)
	waitFor(t, 2*time.Second, "the ban", func() bool { return b.Stats().Banned == 1 })
	assert.GreaterOrEqual(t, b.Stats().Backoff, 120*time.Second)
	began := time.Now()
	require.ErrorIs(t, r.stop(t), context.Canceled)
	assert.Less(t, time.Since(began), 250*time.Millisecond)
	assert.Len(t, srv.Requests(), 1)
	assert.Equal(t, 1, logs.count("WARN", "retry_after=2m0s"), logs.String())
}
