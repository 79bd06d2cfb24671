package btc

import (
	"bytes"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btctest"
)

// The offline benchmark trace: btctest.Trace's messy stream (three symbols,
// out of order within the lateness, one duplicate identity, one late event
// and one invalid line in 60 events each) with a fixed seed. Its 763,000
// events make 801,258 lines (60 MB), the "801k-event trace" of the
// offline figures. Write it with
//
//	cd examples && TIDEMARK_OFFLINE_TRACE=/tmp/btc-801k.jsonl go test -run TestOfflineWriteTrace ./btc-pipeline/internal/btc/
//
// and time the command over it with
//
//	go build -o /tmp/btc-pipeline ./btc-pipeline
//	/usr/bin/time -f '%e s %M KB' /tmp/btc-pipeline offline --in /tmp/btc-801k.jsonl --out /tmp/btc-out
const offlineTraceEvents = 763_000

// offlineTraceInvalid are the trace's invalid lines: a few kinds of reason.
var offlineTraceInvalid = []string{
	`not json`,
	`{"symbol":"BTCUSDT","price":-1,"timestamp":"2025-05-08T04:12:38.352Z"}`,
	`{"symbol":"BTCUSDT","price":"1.0","timestamp":"2025-05-08T04:12:38.352Z"}`,
	`{"price":3,"timestamp":"2025-05-08T04:12:38.352Z"}`,
	``,
}

// offlineTrace returns the benchmark trace of n events, one line each with
// its newline.
func offlineTrace(n int) []byte {
	lines := btctest.Trace(rand.New(rand.NewPCG(801, 16)), n, 10_000, offlineTraceInvalid)
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// TestOfflineWriteTrace writes the benchmark trace to the file
// TIDEMARK_OFFLINE_TRACE names.
func TestOfflineWriteTrace(t *testing.T) {
	path := os.Getenv("TIDEMARK_OFFLINE_TRACE")
	if path == "" {
		t.Skip("TIDEMARK_OFFLINE_TRACE not set: name a file to write the 801k-line offline benchmark trace to")
	}
	in := offlineTrace(offlineTraceEvents)
	if err := os.WriteFile(path, in, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d lines, %d bytes", path, bytes.Count(in, []byte("\n")), len(in))
}
