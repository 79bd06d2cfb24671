package source

import (
	"context"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/stream"
)

var synthStart = time.Date(2025, 5, 8, 4, 12, 38, 352_000_000, time.UTC)

func runSynthetic(t *testing.T, cfg SyntheticConfig) []Record {
	t.Helper()
	recs, err := collect(context.Background(), NewSynthetic(cfg), nil)
	require.NoError(t, err)
	return recs
}

func TestSyntheticDeterministic(t *testing.T) {
	cfg := SyntheticConfig{Seed: 42, Symbols: []string{"BTCUSDT", "ETHUSDT"}, Unpaced: true, Start: synthStart, Count: 5000}
	a, b := runSynthetic(t, cfg), runSynthetic(t, cfg)
	require.Len(t, a, 5000)
	require.Equal(t, a, b, "the same seed gives the same records")
	cfg.Seed = 43
	c := runSynthetic(t, cfg)
	assert.NotEqual(t, a, c, "another seed, other records")
}

func TestSyntheticShape(t *testing.T) {
	// About 10 minutes of a synthetic market, unpaced.
	const n = 12_000
	recs := runSynthetic(t, SyntheticConfig{Seed: 7, Symbols: []string{"BTCUSDT", "ETHUSDT"}, Unpaced: true, Start: synthStart, Count: n})
	require.Len(t, recs, n)
	dec := btc.NewDecoder()
	last := map[string]stream.Time{}
	times := map[string][]stream.Time{}
	var prevT stream.Time
	maxGap := stream.Time(0)
	for i, r := range recs {
		p, err := dec.Decode(r.Value)
		require.NoError(t, err, string(r.Value))
		require.Equal(t, r.Symbol, p.Symbol)
		require.Equal(t, stream.TimeOf(r.Time), p.Time)
		require.Equal(t, time.UTC, r.Time.Location())
		require.Greater(t, p.Price, 0.0)
		c := p.Price * 100
		require.InDelta(t, math.Round(c), c, 1e-6, "cent steps: %s", r.Value)
		// The text is what the pipeline's encoder writes for that price.
		require.Equal(t, string(btc.AppendPrice(nil, p)), string(r.Value))
		if lt, ok := last[p.Symbol]; ok {
			require.Greater(t, p.Time, lt, "at most one event per symbol and millisecond, in time order")
		}
		last[p.Symbol] = p.Time
		times[p.Symbol] = append(times[p.Symbol], p.Time)
		if i > 0 {
			require.GreaterOrEqual(t, p.Time, prevT, "records in event-time order")
			maxGap = max(maxGap, p.Time-prevT)
		}
		prevT = p.Time
	}
	first := map[string]float64{}
	for _, r := range recs[:10] {
		p, _ := dec.Decode(r.Value)
		if _, ok := first[p.Symbol]; !ok {
			first[p.Symbol] = p.Price
		}
	}
	assert.InDelta(t, 100_000, first["BTCUSDT"], 50)
	assert.InDelta(t, 2_500, first["ETHUSDT"], 5)
	// Event times count from Start.
	assert.False(t, recs[0].Time.Before(synthStart))
	assert.Less(t, recs[0].Time.Sub(synthStart), time.Second)

	span := float64(prevT-stream.TimeOf(synthStart)) / 1000
	for sym, ts := range times {
		rate := float64(len(ts)) / span
		assert.InDelta(t, 10, rate, 3, "%s: about 10 events per second (%.1f s)", sym, span)
		// A burst: more than 20 events of one symbol within 100 ms.
		best := 0
		for i, j := 0, 0; j < len(ts); j++ {
			for ts[j]-ts[i] >= 100 {
				i++
			}
			best = max(best, j-i+1)
		}
		assert.Greater(t, best, 20, "%s: bursts", sym)
		t.Logf("%s: %d events over %.0f s (%.2f/s), at most %d within 100 ms", sym, len(ts), span, rate, best)
	}
	assert.Greater(t, maxGap, stream.Time(1000), "quiet spells: no event at all for more than a second")
	t.Logf("longest quiet spell: %d ms", maxGap)
}

func TestSyntheticPaced(t *testing.T) {
	// Paced at 20x, the run takes the records' span / 20.
	cfg := SyntheticConfig{Seed: 3, Count: 40, Start: synthStart, Speed: 20}
	full := runSynthetic(t, SyntheticConfig{Seed: 3, Count: 40, Start: synthStart, Unpaced: true})
	span := full[39].Time.Sub(synthStart) / 20
	began := time.Now()
	got := runSynthetic(t, cfg)
	elapsed := time.Since(began)
	assert.Equal(t, full, got, "pacing does not change the records")
	assert.GreaterOrEqual(t, elapsed, span-2*time.Millisecond)
	assert.Less(t, elapsed, span+300*time.Millisecond)
	t.Logf("40 records spanning %s of event time at 20x: %s", full[39].Time.Sub(synthStart), elapsed)

	// Real time from the wall clock: the event time is the wall clock at emission.
	var lags []time.Duration
	_, err := collect(context.Background(), NewSynthetic(SyntheticConfig{Seed: 3, Count: 6}), func(r Record) {
		lags = append(lags, time.Since(r.Time))
	})
	require.NoError(t, err)
	require.Len(t, lags, 6)
	for _, l := range lags {
		assert.Greater(t, l, -2*time.Millisecond)
		assert.Less(t, l, 100*time.Millisecond)
	}
}

func TestSyntheticReanchorsAfterBackpressure(t *testing.T) {
	// Block on the second record until the third is 400 ms overdue.
	plan := runSynthetic(t, SyntheticConfig{Seed: 5, Count: 3, Start: synthStart, Unpaced: true})
	block := plan[2].Time.Sub(plan[1].Time) + 400*time.Millisecond
	s := NewSynthetic(SyntheticConfig{Seed: 5, Count: 4})
	var lags []time.Duration
	buf := make([]stream.Record[[]byte], 1)
	for n := 1; ; n++ {
		m, err := s.Poll(context.Background(), buf)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		require.Equal(t, 1, m)
		lags = append(lags, time.Since(buf[0].Event.Time.UTC()))
		if n == 2 {
			time.Sleep(block) // a blocked producer: nobody polls
		}
	}
	assert.Equal(t, uint64(1), s.Stats().Reanchors)
	assert.Equal(t, uint64(4), s.Stats().Records)
	for i, l := range lags {
		// Without skipping ahead, the records after the block would lag 400 ms.
		assert.Less(t, l, 200*time.Millisecond, "record %d: event time near the wall clock, not a backlog", i)
	}
}

func TestSyntheticCancel(t *testing.T) {
	for _, cfg := range []SyntheticConfig{{Unpaced: true}, {}, {Speed: 0.001}} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := collect(ctx, NewSynthetic(cfg), nil)
			done <- err
		}()
		time.Sleep(30 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			require.ErrorIs(t, err, context.Canceled)
		case <-time.After(time.Second):
			t.Fatalf("%+v: Run did not end after cancel", cfg)
		}
	}
}

func TestSyntheticConfig(t *testing.T) {
	s := NewSynthetic(SyntheticConfig{Seed: 9})
	assert.Equal(t, "SYNTHETIC random walk, not market data (BTCUSDT, seed 9, real time)", s.Describe())
	banner := s.Banner()
	for _, want := range []string{"SYNTHETIC DATA", "NOT MARKET DATA", "NOT Binance prices", "seed 9", "BTCUSDT 100000",
		"https://api.binance.com", "--source replay:FILE"} {
		assert.Contains(t, banner, want)
	}
	assert.Greater(t, strings.Count(banner, "\n"), 4)
	s = NewSynthetic(SyntheticConfig{Symbols: []string{"BTCUSDT", "SOLUSDT"}, Prices: map[string]float64{"BTCUSDT": 64000.123}, Speed: 4})
	assert.Contains(t, s.Describe(), "4x real time")
	assert.Contains(t, s.Banner(), "BTCUSDT 64000.12, SOLUSDT "+centsText(int64(math.Round(DefaultStartPrice("SOLUSDT")*100))))
	assert.Contains(t, NewSynthetic(SyntheticConfig{Unpaced: true}).Describe(), "unpaced")

	p := DefaultStartPrice("SOLUSDT")
	assert.Equal(t, p, DefaultStartPrice("SOLUSDT"))
	assert.GreaterOrEqual(t, p, 100.0)
	assert.Less(t, p, 1100.0)

	for _, cfg := range []SyntheticConfig{
		{Symbols: []string{"btc"}}, {Symbols: []string{"BTCUSDT", "BTCUSDT"}}, {Speed: -1}, {Count: -1},
		{Prices: map[string]float64{"BTCUSDT": 0}}, {Prices: map[string]float64{"BTCUSDT": math.NaN()}},
	} {
		_, err := NewSynthetic(cfg).Poll(context.Background(), make([]stream.Record[[]byte], 1))
		assert.Error(t, err, "%+v", cfg)
	}
}

func TestCentsText(t *testing.T) {
	for c, want := range map[int64]string{10000000: "100000", 9919040: "99190.4", 9919048: "99190.48", 1: "0.01", 10: "0.1", 105: "1.05"} {
		assert.Equal(t, want, centsText(c))
	}
}
