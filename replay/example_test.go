package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/tidemark-go/tidemark/replay"
	"github.com/tidemark-go/tidemark/stream"
)

// A trace of btc-price lines replayed as fast as it is polled; the line that
// is not a price passes through raw, with an empty key, for a dead-letter
// path downstream.
func ExampleNewLines() {
	dir, err := os.MkdirTemp("", "replay")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "btc-price.jsonl")
	trace := `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}
not a price
{"symbol":"BTCUSDT","price":99191.02,"timestamp":"2025-05-08T04:12:39.352Z"}
`
	if err := os.WriteFile(path, []byte(trace), 0o644); err != nil {
		log.Fatal(err)
	}

	decode := func(line []byte) (stream.Event[[]byte], error) {
		var p struct {
			Symbol    string    `json:"symbol"`
			Timestamp time.Time `json:"timestamp"`
		}
		if err := json.Unmarshal(line, &p); err != nil {
			return stream.Event[[]byte]{}, err
		}
		return stream.Event[[]byte]{Key: p.Symbol, Time: stream.TimeOf(p.Timestamp), Value: bytes.Clone(line)}, nil
	}
	raw := func(line []byte, no uint64, err error) (stream.Event[[]byte], bool) {
		return stream.Event[[]byte]{Time: 0, Value: bytes.Clone(line)}, true // the wall clock, in a real pipeline
	}
	src, err := replay.NewLines(path, decode, replay.WithInvalidLines(raw)) // replay.WithSpeed(1): the trace's pace
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	buf := make([]stream.Record[[]byte], 16)
	for {
		n, err := src.Poll(context.Background(), buf)
		for _, r := range buf[:n] {
			fmt.Printf("%q %v %.20s\n", r.Event.Key, r.Event.Time, r.Event.Value)
		}
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("%+v\n", src.Stats())
	// Output:
	// "BTCUSDT" 2025-05-08T04:12:38.352Z {"symbol":"BTCUSDT",
	// "" 1970-01-01T00:00:00.000Z not a price
	// "BTCUSDT" 2025-05-08T04:12:39.352Z {"symbol":"BTCUSDT",
	// {Lines:3 Decoded:2 Invalid:1}
}
