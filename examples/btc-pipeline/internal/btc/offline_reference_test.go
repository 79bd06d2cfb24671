package btc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btctest"
	"github.com/tidemark-go/tidemark/lookahead"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
	"github.com/tidemark-go/tidemark/zscore"
)

// sequentialOffline is offline as one loop in one goroutine, without
// batches, pipelines or buffers of its own: each line read, decoded, pushed,
// and each output encoded into its file as it is emitted (the offline of
// 2026-12-06, 993d33b, less its two encoder goroutines). Offline must write
// exactly its bytes and counts, however it spreads the work.
func sequentialOffline(in io.Reader, outDir string, cfg Config) (Summary, error) {
	sum := Summary{Invalids: make(map[string]uint64)}
	parts := max(cfg.Partitions, 1)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return sum, err
	}
	var ws []*bufio.Writer
	var files []*os.File
	create := func(name string) *bufio.Writer {
		f, err := os.Create(filepath.Join(outDir, name))
		if err != nil {
			panic(err)
		}
		files = append(files, f)
		w := bufio.NewWriter(f)
		ws = append(ws, w)
		return w
	}
	var out [numKinds]*bufio.Writer
	var enc [numKinds]*Encoder
	for k := range numKinds {
		out[k], enc[k] = create(k.FileName()), NewEncoder(cfg.Windows, cfg.Horizon)
	}
	dlq, late := create(DeadLetterFile), create(LateFile)
	moving := stream.EmitFunc[[]window.Statistics](func(e stream.Event[[]window.Statistics]) {
		sum.Written[Moving]++
		out[Moving].Write(append(enc[Moving].AppendMoving(nil, e.Key, e.Time, e.Value), '\n'))
	})
	scores := stream.EmitFunc[zscore.Scored](func(e stream.Event[zscore.Scored]) {
		sum.Written[ZScore]++
		out[ZScore].Write(append(enc[ZScore].AppendZScore(nil, e.Key, e.Time, e.Value.Value, e.Value.Scores), '\n'))
	})
	match := func(k Kind, field string) stream.Emitter[lookahead.Match[float64]] {
		return stream.EmitFunc[lookahead.Match[float64]](func(e stream.Event[lookahead.Match[float64]]) {
			sum.Written[k]++
			out[k].Write(append(enc[k].AppendLookahead(nil, field, e.Key, e.Time, e.Value), '\n'))
		})
	}
	onLate := func(e stream.Event[float64]) {
		late.Write(append(AppendPrice(nil, Price{Symbol: e.Key, Price: e.Value, Time: e.Time}), '\n'))
	}
	drivers := make([]*stream.Driver[float64, []window.Statistics], parts)
	for i := range drivers {
		pipe, err := NewPipeline(cfg, scores, match(Higher, "higher_window"), match(Lower, "lower_window"))
		if err != nil {
			return sum, err
		}
		if drivers[i], err = stream.NewDriver[float64, []window.Statistics](pipe, moving, stream.WithLateness(cfg.Lateness),
			stream.WithLateSink(onLate), stream.WithMaxAhead(cfg.MaxAhead)); err != nil {
			return sum, err
		}
	}
	dec := NewDecoder()
	r := bufio.NewReader(in)
	for lineNo := uint64(1); ; lineNo++ {
		// The whole line, however long, then cut as offline cuts it.
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			body := bytes.TrimSuffix(line, []byte("\n"))
			tooLong := len(line) > MaxLineBytes // its newline included
			sum.Lines++
			var p Price
			var derr error
			if tooLong {
				derr = ErrLineTooLong
				body = line[:MaxLineBytes]
			} else {
				p, derr = dec.Decode(body)
			}
			if derr == nil {
				e := stream.Event[float64]{Key: p.Symbol, Time: p.Time, Value: p.Price}
				if drivers[Partition(p.Symbol, parts)].Push(0, e, time.Time{}) == stream.TooFarAhead {
					derr = fmt.Errorf("%w: event time %v is more than %v ahead of the largest event time of its partition", ErrTooFarAhead, p.Time, cfg.MaxAhead)
				}
			}
			if derr != nil {
				sum.Invalid++
				reason := derr.Error()
				if errors.Is(derr, ErrTooFarAhead) {
					reason = ErrTooFarAhead.Error()
				}
				sum.Invalids[reason]++
				b := fmt.Appendf(nil, `{"line":%d,"reason":`, lineNo)
				b = appendJSONString(b, derr.Error())
				if utf8.Valid(body) {
					b = append(b, `,"value":`...)
					b = appendJSONString(b, string(body))
				} else {
					b = append(b, `,"value_base64":"`...)
					b = base64.StdEncoding.AppendEncode(b, body)
					b = append(b, '"')
				}
				if tooLong {
					b = append(b, `,"truncated":true`...)
				}
				dlq.Write(append(b, "}\n"...))
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return sum, err
		}
	}
	for _, d := range drivers {
		d.Finish()
		st := d.Stats()
		sum.Accepted += st.Accepted
		sum.Late += st.Late
		sum.Duplicates += st.Duplicates
		sum.Ahead += st.Ahead
	}
	for _, w := range ws {
		if err := w.Flush(); err != nil {
			return sum, err
		}
	}
	for _, f := range files {
		if err := f.Close(); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// requireSameOffline runs Offline and sequentialOffline over in and requires
// the same files, byte for byte, and the same counts.
func requireSameOffline(t *testing.T, name string, in []byte, cfg Config) {
	t.Helper()
	dir := t.TempDir()
	want, err := sequentialOffline(bytes.NewReader(in), filepath.Join(dir, "want"), cfg)
	require.NoError(t, err, "%s: sequential offline", name)
	got, err := Offline(context.Background(), bytes.NewReader(in), filepath.Join(dir, "got"), cfg, quiet)
	require.NoError(t, err, "%s: offline", name)
	got.Elapsed = 0
	require.Equal(t, want, got, "%s: summary", name)
	for _, f := range OutputFiles() {
		w, err := os.ReadFile(filepath.Join(dir, "want", f))
		require.NoError(t, err, "read")
		g, err := os.ReadFile(filepath.Join(dir, "got", f))
		require.NoError(t, err, "read")
		if !bytes.Equal(w, g) {
			wl, gl := strings.Split(string(w), "\n"), strings.Split(string(g), "\n")
			for i := range min(len(wl), len(gl)) {
				require.Equal(t, wl[i], gl[i], "%s: %s line %d", name, f, i+1)
			}
			require.Equal(t, len(wl), len(gl), "%s: %s lines", name, f)
		}
	}
}

// TestOfflineSameAsSequential: Offline writes what the plain loop of
// sequentialOffline writes, byte for byte, over messy traces on one and
// three partitions, bad and oversized lines, lines longer than the read
// buffer, an event from the future, input that does not end with a newline,
// and nothing at all.
func TestOfflineSameAsSequential(t *testing.T) {
	seed := seedOf(t)
	r := rand.New(rand.NewPCG(seed, 16))
	join := func(lines []string, end string) []byte { return []byte(strings.Join(lines, "\n") + end) }

	for _, parts := range []int{1, 3} {
		cfg := testConfig()
		cfg.Partitions = parts
		tr, _ := genTrace(r, r, 3000, stream.DurationOf(cfg.Lateness), true)
		requireSameOffline(t, fmt.Sprint("messy trace, partitions ", parts), join(tr.lines, "\n"), cfg)

		cfg = DefaultConfig()
		cfg.Partitions = parts
		lines := btctest.Trace(r, 30_000, stream.DurationOf(cfg.Lateness), offlineTraceInvalid)
		lines = append(lines[:len(lines)/2:len(lines)/2], append([]string{`{"symbol":"BTCUSDT","price":1,"timestamp":"2099-01-01T00:00:00Z"}`}, lines[len(lines)/2:]...)...)
		requireSameOffline(t, fmt.Sprint("benchmark-like trace, default config, partitions ", parts), join(lines, ""), cfg)
	}

	cfg := testConfig()
	valid, bads := badTrace(t, r, cfg, 300, 2)
	mixed, _ := mixBad(r, valid, bads)
	// Valid records longer than any read buffer, and CRLF line ends.
	for i := range 3 {
		at := r.IntN(len(mixed))
		mixed[at] = strings.Replace(mixed[at], `{`, fmt.Sprintf(`{"pad":%q,`, strings.Repeat("p", 100_000<<i)), 1)
		mixed[r.IntN(len(mixed))] += "\r"
	}
	requireSameOffline(t, "bad, oversized and long lines", join(mixed, "\n"), cfg)
	requireSameOffline(t, "no input", nil, cfg)
	// Around the bound: a line of exactly MaxLineBytes with its newline is
	// a record, one byte more is too long.
	long := func(n int) string {
		head := `{"symbol":"BTCUSDT","price":1,"timestamp":"2025-05-08T04:12:38.352Z","pad":"`
		return head + strings.Repeat("x", n-len(head)-2) + `"}`
	}
	ok := `{"symbol":"BTCUSDT","price":2,"timestamp":"2025-05-08T04:12:39.352Z"}`
	requireSameOffline(t, "lines around MaxLineBytes", join([]string{long(MaxLineBytes - 1), ok, long(MaxLineBytes), ok, long(MaxLineBytes + 1), ok}, "\n"), cfg)
	requireSameOffline(t, "MaxLineBytes at the end without a newline", join([]string{ok, long(MaxLineBytes)}, ""), cfg)
}
