package source

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func BenchmarkAppendDecimal(b *testing.B) {
	buf := make([]byte, 0, 64)
	for b.Loop() {
		buf, _ = appendDecimal(buf[:0], "99190.48000000")
	}
}

func BenchmarkParseTickers(b *testing.B) {
	body := []byte(`[{"symbol":"BTCUSDT","price":"99190.48000000"},{"symbol":"ETHUSDT","price":"1812.34000000"}]`)
	syms := []string{"BTCUSDT", "ETHUSDT"}
	for b.Loop() {
		if _, err := parseTickers(body, syms); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSyntheticUnpaced: records per second of an unpaced synthetic run.
func BenchmarkSyntheticUnpaced(b *testing.B) {
	s := NewSynthetic(SyntheticConfig{Seed: 1, Unpaced: true, Start: time.Unix(1746677558, 0), Count: b.N})
	b.ResetTimer()
	if err := s.Run(context.Background(), func(Record) error { return nil }); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkReplayUnpaced: lines per second of a replay at speed 0 (the
// repository's trace, from memory).
func BenchmarkReplayUnpaced(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "btc-price.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	lines := bytes.Count(raw, []byte("\n"))
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		r, err := NewReplayReader(bytes.NewReader(raw), "trace", ReplayConfig{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Run(context.Background(), func(Record) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*lines)/b.Elapsed().Seconds(), "lines/s")
}
