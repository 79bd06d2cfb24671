package btc

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
)

// benchInput returns n in-order btc-price lines: a random walk in cents around
// 1e5, 50..150 ms apart, one symbol, as the lab's extract stage writes them.
func benchInput(n int) []byte {
	r := rand.New(rand.NewPCG(1, 1))
	var b bytes.Buffer
	cents := int64(9_919_048)
	t := stream.Time(1_746_677_558_352)
	for range n {
		cents += int64(r.IntN(21)) - 10
		t += stream.Time(50 + r.IntN(100))
		b.Write(AppendPrice(nil, Price{Symbol: "BTCUSDT", Price: float64(cents) / 100, Time: t}))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// BenchmarkOffline measures the offline command end to end: JSON lines in,
// the six windows, z-scores and higher/lower, four JSON-lines files out.
func BenchmarkOffline(b *testing.B) {
	const n = 200_000
	in := benchInput(n)
	dir := b.TempDir()
	cfg := DefaultConfig()
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		sum, err := Offline(context.Background(), bytes.NewReader(in), dir, cfg, quiet)
		if err != nil || sum.Accepted != n {
			b.Fatal(err, sum)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkOfflineTrace measures offline over the 801k-line benchmark trace
// (offline_trace_test.go: three symbols, disorder, duplicates, late events
// and invalid lines), the input of the offline command's figures.
func BenchmarkOfflineTrace(b *testing.B) {
	in := offlineTrace(offlineTraceEvents)
	lines := bytes.Count(in, []byte("\n"))
	dir := b.TempDir()
	cfg := DefaultConfig()
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		sum, err := Offline(context.Background(), bytes.NewReader(in), dir, cfg, quiet)
		if err != nil || sum.Lines != uint64(lines) {
			b.Fatal(err, sum)
		}
	}
	b.ReportMetric(float64(lines*b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkEncodeMoving measures one btc-price-moving record (six windows).
func BenchmarkEncodeMoving(b *testing.B) {
	cfg := DefaultConfig()
	enc := NewEncoder(cfg.Windows, cfg.Horizon)
	stats := make([]window.Statistics, len(cfg.Windows))
	for i := range stats {
		stats[i] = window.Statistics{Count: int64(300 * (i + 1)), Mean: 99190.48 + float64(i)/7, Variance: 2.25 + float64(i)/3}
		stats[i].Std = math.Sqrt(stats[i].Variance)
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = enc.AppendMoving(buf[:0], "BTCUSDT", 1_746_677_558_352, stats)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkStdFormat compares, in one run, the two ways to write a
// standard deviation below 1: strconv's shortest form (what the lab wrote
// before) and appendStd's 12 significant digits (what it writes).
func BenchmarkStdFormat(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 5))
	vals := make([]float64, 1024)
	for i := range vals {
		vals[i] = math.Ldexp(1+r.Float64(), -1-r.IntN(12)) // 1.2e-4 .. 1
	}
	for _, c := range []struct {
		name string
		f    func([]byte, float64) []byte
	}{{"shortest", appendFloat}, {"12-digits", appendStd}} {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 64)
			i := 0
			for b.Loop() {
				buf = c.f(buf[:0], vals[i&1023])
				i++
			}
		})
	}
}
