package view

import (
	"bytes"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/tidemark-go/tidemark/stream"
)

func status() Status {
	t0 := stream.Time(1_746_677_558_352) // 04:12:38.352
	return Status{
		Snapshot: Snapshot{Symbols: []Symbol{{
			Name: "BTCUSDT", Price: 99190.48, PriceTime: t0, StatsTime: t0 - 10_000, ZTime: t0 - 10_100,
			Windows: []Window{
				{Label: "30s", Avg: 99012.8, Std: 1.458, Count: 150, Z: 0.27},
				{Label: "1m", Avg: 99012.9, Std: math.NaN(), Count: 1, Z: math.NaN()},
			},
			Higher: 0.96, HigherTime: t0 - 30_000, Lower: math.NaN(), LowerTime: stream.MinTime,
		}}, Taken: time.Date(2025, 5, 8, 4, 12, 39, 0, time.UTC)},
		Source:  "SYNTHETIC",
		Stages:  []Stage{{Name: "moving", Rate: 9.6, Records: 1200, Emitted: 1100, Lag: 2, WatermarkDelay: 10200 * time.Millisecond, Late: 3, Duplicates: 1, Invalid: 4, Dead: 4, Commits: 50, Aborts: 1}},
		Horizon: 20 * time.Second,
	}
}

func TestRender(t *testing.T) {
	var b bytes.Buffer
	Render(&b, status())
	out := b.String()
	for _, want := range []string{
		"source: SYNTHETIC",
		"BTCUSDT    99190.48  at 04:12:38.352",
		"avg/std as of 04:12:28.352, z as of 04:12:28.252",
		"  30s          99012.80        1.458     0.27      150",
		"  1m           99012.90            -        -        1", // null std and z
		"next higher within 20s: 0.960 s (at 04:12:08.352)   next lower: - s (at -)",
		"moving          10       1200       1100       2      10.2s      3      1        4      4       50       1",
	} {
		assert.Contains(t, out, want, "rendered view:\n%s", out)
	}
}

func TestLog(t *testing.T) {
	var b bytes.Buffer
	Log(slog.New(slog.NewTextHandler(&b, nil)), status())
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	assert.Len(t, lines, 2, "a line per symbol and per stage")
	assert.Contains(t, lines[0], "msg=prices symbol=BTCUSDT price=99190.48 at=04:12:38.352 avg_30s=99012.80 std_30s=1.458 z_30s=0.27 avg_1m=99012.90 std_1m=- z_1m=-")
	assert.Contains(t, lines[1], "msg=stage stage=moving events_per_s=10 read=1200 written=1100 lag=2 watermark_delay=10.2s late=3 duplicates=1 invalid=4 dead_lettered=4")
}
