package replay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"

	"github.com/tidemark-go/tidemark/replay"
	"github.com/tidemark-go/tidemark/stream"
)

// decodeNumber decodes "key time value" lines whose value is an integer,
// without allocating: the key is one of a few, interned.
func decodeNumber(line []byte) (stream.Event[int64], error) {
	i := bytes.IndexByte(line, ' ')
	j := bytes.LastIndexByte(line, ' ')
	if i <= 0 || j <= i {
		return stream.Event[int64]{}, errors.New("not key time value")
	}
	var t, v int64
	for _, c := range line[i+1 : j] {
		t = t*10 + int64(c-'0')
	}
	for _, c := range line[j+1:] {
		v = v*10 + int64(c-'0')
	}
	key := "ETHUSDT"
	if string(line[:i]) == "BTCUSDT" {
		key = "BTCUSDT"
	}
	return stream.Event[int64]{Key: key, Time: stream.Time(t), Value: v}, nil
}

// BenchmarkLines replays 100,000 lines of about 40 bytes from memory, unpaced,
// polled 512 at a time as stream.Run and kafkaio.Produce do; one iteration
// is the whole trace. allocs/op are per trace, not per line: a line costs
// none.
func BenchmarkLines(b *testing.B) {
	const n = 100_000
	var trace bytes.Buffer
	for i := range n {
		key := "BTCUSDT"
		if i%3 == 0 {
			key = "ETHUSDT"
		}
		fmt.Fprintf(&trace, "%s %d %d\n", key, 1_746_677_558_000+int64(i)*100, 9_919_048+i%1000)
	}
	raw := trace.Bytes()
	buf := make([]stream.Record[int64], 512)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		src, err := replay.NewReader(bytes.NewReader(raw), "trace", decodeNumber)
		if err != nil {
			b.Fatal(err)
		}
		lines := 0
		for {
			m, err := src.Poll(context.Background(), buf)
			lines += m
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		if lines != n {
			b.Fatal("lines: " + strconv.Itoa(lines))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/line")
}
