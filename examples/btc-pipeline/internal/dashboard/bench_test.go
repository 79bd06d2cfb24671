package dashboard

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
	"github.com/tidemark-go/tidemark/zscore"
)

func benchStats(n int) []window.Statistics {
	stats := make([]window.Statistics, n)
	for i := range stats {
		stats[i] = window.Statistics{Count: int64(300 * (i + 1)), Mean: 99190.48 + float64(i)/7, Variance: 2.25 + float64(i)/3}
		stats[i].Std = math.Sqrt(stats[i].Variance)
	}
	return stats
}

// BenchmarkHubAddPrice measures adding one btc-price record (the
// broadcaster applies them every tick, concurrently).
func BenchmarkHubAddPrice(b *testing.B) {
	h := NewHub(btc.DefaultConfig(), Options{Tick: 10 * time.Millisecond})
	defer h.Close()
	b.ReportAllocs()
	t := stream.Time(1_746_677_558_352)
	for b.Loop() {
		t++
		h.AddPrice("BTCUSDT", t, 99190.48)
	}
}

// BenchmarkHubAddMoving measures adding one btc-price-moving record of six
// windows.
func BenchmarkHubAddMoving(b *testing.B) {
	cfg := btc.DefaultConfig()
	h := NewHub(cfg, Options{Tick: 10 * time.Millisecond})
	defer h.Close()
	stats := benchStats(len(cfg.Windows))
	b.ReportAllocs()
	t := stream.Time(1_746_677_558_352)
	for b.Loop() {
		t++
		h.AddMoving("BTCUSDT", t, stats)
	}
}

// BenchmarkHubAddParallel adds records from every P at once (the hub
// takes records from any goroutine; Follow adds from one).
func BenchmarkHubAddParallel(b *testing.B) {
	cfg := btc.DefaultConfig()
	h := NewHub(cfg, Options{Tick: 10 * time.Millisecond})
	defer h.Close()
	scores := make([]zscore.Score, len(cfg.Windows))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		t := stream.Time(1_746_677_558_352)
		for pb.Next() {
			t++
			h.AddZScore("BTCUSDT", t, 99190.48, scores)
		}
	})
}

// BenchmarkDecodeMoving compares the follower's decoder of a
// btc-price-moving record with the btc codec it falls back to.
func BenchmarkDecodeMoving(b *testing.B) {
	cfg := btc.DefaultConfig()
	rec := btc.NewEncoder(cfg.Windows, cfg.Horizon).AppendMoving(nil, "BTCUSDT", 1_746_677_558_352, benchStats(len(cfg.Windows)))
	b.Run("fast", func(b *testing.B) {
		d := newDecoder(cfg)
		b.ReportAllocs()
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			if _, _, _, err := d.decodeMoving(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("codec", func(b *testing.B) {
		c := btc.NewMovingCodec(cfg)
		b.ReportAllocs()
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			if _, err := c.Decode(nil, rec, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDashboardPerEvent measures what the dashboard costs per price
// event of the pipeline: decoding the event's five records (btc-price and
// the four derived ones) as Follow does, adding them to the hub, and the
// hub applying them and encoding the frames for one connected browser. It
// also runs the offline pipeline over the same events, which is the
// computing core of the stages without Kafka: share is the dashboard's cost
// as a fraction of that (the live stages, which also produce to and consume
// from Kafka in transactions, cost several times more per event).
func BenchmarkDashboardPerEvent(b *testing.B) {
	cfg := btc.DefaultConfig()
	const events = 50_000
	in := testTrace(9, events, 10_000)
	dir := b.TempDir()
	start := time.Now()
	sum, err := btc.Offline(context.Background(), bytes.NewReader(in), dir, cfg, quiet)
	if err != nil {
		b.Fatal(err)
	}
	offlinePerEvent := float64(time.Since(start).Nanoseconds()) / float64(sum.Lines)
	var files [4][][]byte
	for _, k := range []btc.Kind{btc.Moving, btc.ZScore, btc.Higher, btc.Lower} {
		data, err := os.ReadFile(filepath.Join(dir, k.FileName()))
		if err != nil {
			b.Fatal(err)
		}
		files[k] = bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	}
	prices := bytes.Split(bytes.TrimSpace(in), []byte("\n"))
	h := NewHub(cfg, Options{Tick: 50 * time.Millisecond, MaxPoints: 1 << 14})
	defer h.Close()
	// One browser, whose frames are encoded and queued (and dropped: the
	// benchmark measures the hub, not a reader).
	c := &client{ch: make(chan *frame, 1), wake: make(chan struct{}, 1)}
	h.cmu.Lock()
	h.clients[c] = struct{}{}
	h.cmu.Unlock()
	pd, md, zd, hd, ld := btc.NewDecoder(), newDecoder(cfg), newDecoder(cfg), newDecoder(cfg), newDecoder(cfg)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, line := range prices {
			if p, err := pd.Decode(line); err == nil {
				h.AddPrice(p.Symbol, p.Time, p.Price)
			}
		}
		for _, line := range files[btc.Moving] {
			sym, t, stats, _ := md.decodeMoving(line)
			h.AddMoving(sym, t, stats)
		}
		for _, line := range files[btc.ZScore] {
			sym, t, price, scores, _ := zd.decodeZScore(line)
			h.AddZScore(sym, t, price, scores)
		}
		for _, line := range files[btc.Higher] {
			sym, t, secs, _ := hd.decodeLookahead(line, "higher_window")
			h.AddLookahead(btc.Higher, sym, t, secs)
		}
		for _, line := range files[btc.Lower] {
			sym, t, secs, _ := ld.decodeLookahead(line, "lower_window")
			h.AddLookahead(btc.Lower, sym, t, secs)
		}
		h.Flush()
		select {
		case <-c.ch:
		default:
		}
	}
	perEvent := float64(b.Elapsed().Nanoseconds()) / float64(b.N*len(prices))
	b.ReportMetric(perEvent, "ns/event")
	b.ReportMetric(offlinePerEvent, "offline-ns/event")
	b.ReportMetric(perEvent/offlinePerEvent, "share-of-offline")
}
