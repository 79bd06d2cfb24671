package source

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tidemark-go/tidemark/stream"
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
	b.ReportAllocs()
	s := NewSynthetic(SyntheticConfig{Seed: 1, Unpaced: true, Start: time.Unix(1746677558, 0), Count: b.N})
	buf := make([]stream.Record[[]byte], 512)
	b.ResetTimer()
	for {
		_, err := s.Poll(context.Background(), buf)
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			b.Fatal(err)
		}
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
	buf := make([]stream.Record[[]byte], 512)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		r, err := NewReplayReader(bytes.NewReader(raw), "trace", ReplayConfig{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := r.Poll(context.Background(), buf)
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*lines)/b.Elapsed().Seconds(), "lines/s")
}
