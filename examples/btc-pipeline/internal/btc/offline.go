package btc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tidemark-go/tidemark/stream"
)

// Summary counts what an offline run read and wrote.
type Summary struct {
	Lines   uint64 // non-blank input lines
	Invalid uint64 // lines that are not valid btc-price records
	stream.Stats
	Written  [numKinds]uint64 // records written per Kind
	Elapsed  time.Duration
	Invalids map[string]uint64 // per reason
}

// String is the one-line summary the offline command prints.
func (s Summary) String() string {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Lines) / s.Elapsed.Seconds()
	}
	return fmt.Sprintf("offline: accepted=%d late=%d duplicate=%d invalid=%d | moving=%d zscore=%d higher=%d lower=%d | %d lines in %v (%.0f lines/s)",
		s.Accepted, s.Late, s.Duplicates, s.Invalid,
		s.Written[Moving], s.Written[ZScore], s.Written[Higher], s.Written[Lower],
		s.Lines, s.Elapsed.Round(time.Millisecond), rate)
}

// Output file names, in Kind order, and the side files.
const (
	DeadLetterFile = "btc-price-dlq.jsonl"  // invalid lines: {"line":N,"reason":"...","value":"<raw line>"}
	LateFile       = "btc-price-late.jsonl" // late events, as normalised btc-price records
)

// FileName returns the output file of kind k.
func (k Kind) FileName() string { return k.Topic() + ".jsonl" }

// fileSink encodes outputs into one buffered file per topic.
type fileSink struct {
	enc     *Encoder
	w       [numKinds]*bufio.Writer
	written [numKinds]uint64
}

func (f *fileSink) Emit(e stream.Event[Output]) {
	w := f.w[e.Value.Kind]
	b := w.AvailableBuffer()
	switch e.Value.Kind {
	case Moving:
		b = f.enc.AppendMoving(b, e.Key, e.Time, e.Value.Stats)
	case ZScore:
		b = f.enc.AppendZScore(b, e.Key, e.Time, e.Value.Price, e.Value.Scores)
	case Higher:
		b = f.enc.AppendLookahead(b, "higher_window", e.Key, e.Time, e.Value.Match)
	case Lower:
		b = f.enc.AppendLookahead(b, "lower_window", e.Key, e.Time, e.Value.Match)
	}
	b = append(b, '\n')
	w.Write(b) // a write error is sticky in bufio.Writer and reported by Flush
	f.written[e.Value.Kind]++
}

// Offline reads btc-price JSON lines from in, in arrival order, runs them
// through the pipeline and writes one JSON-lines file per derived topic into
// outDir (created if needed), plus the dead-letter and late side files. End of
// input flushes everything. If ctx is cancelled it stops reading, writes what
// is already final and returns ctx's error.
func Offline(ctx context.Context, in io.Reader, outDir string, cfg Config, log *slog.Logger) (Summary, error) {
	if log == nil {
		log = slog.Default()
	}
	start := time.Now()
	sum := Summary{Invalids: make(map[string]uint64)}
	pipe, err := NewPipeline(cfg)
	if err != nil {
		return sum, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return sum, fmt.Errorf("btc: %w", err)
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	create := func(name string) (*bufio.Writer, error) {
		f, err := os.Create(filepath.Join(outDir, name))
		if err != nil {
			return nil, fmt.Errorf("btc: %w", err)
		}
		files = append(files, f)
		return bufio.NewWriterSize(f, 1<<20), nil
	}
	sink := &fileSink{enc: NewEncoder(cfg.Windows, cfg.Horizon)}
	for k := range numKinds {
		if sink.w[k], err = create(k.FileName()); err != nil {
			return sum, err
		}
	}
	dlq, err := create(DeadLetterFile)
	if err != nil {
		return sum, err
	}
	late, err := create(LateFile)
	if err != nil {
		return sum, err
	}
	onLate := func(e stream.Event[float64]) {
		b := AppendPrice(late.AvailableBuffer(), Price{Symbol: e.Key, Price: e.Value, Time: e.Time})
		late.Write(append(b, '\n'))
	}
	driver, err := stream.NewDriver[float64, Output](pipe, sink, stream.WithLateness(cfg.Lateness), stream.WithLateSink(onLate))
	if err != nil {
		return sum, fmt.Errorf("btc: %w", err)
	}
	dec := NewDecoder()
	r := bufio.NewReaderSize(in, 1<<20)
	var long []byte
	lineNo := uint64(0)
	var readErr error
	for {
		if lineNo&1023 == 0 && ctx.Err() != nil {
			readErr = ctx.Err()
			break
		}
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(line) > 0 {
			lineNo++
			body := bytes.TrimRight(line, "\r\n")
			if len(bytes.TrimSpace(body)) > 0 {
				sum.Lines++
				p, derr := dec.Decode(body)
				if derr != nil {
					sum.Invalid++
					if sum.Invalids[derr.Error()]++; sum.Invalids[derr.Error()] == 1 {
						log.Warn("invalid btc-price record (logged once per kind)", "reason", derr.Error(), "line", lineNo)
					}
					b := append(dlq.AvailableBuffer(), `{"line":`...)
					b = fmt.Appendf(b, "%d", lineNo)
					b = append(b, `,"reason":`...)
					b = appendJSONString(b, derr.Error())
					b = append(b, `,"value":`...)
					b = appendJSONString(b, string(body))
					dlq.Write(append(b, "}\n"...))
				} else {
					driver.Push(0, stream.Event[float64]{Key: p.Symbol, Time: p.Time, Value: p.Price}, time.Time{})
				}
			}
		}
		if err == io.EOF {
			driver.Finish()
			break
		}
		if err != nil {
			readErr = fmt.Errorf("btc: read: %w", err)
			break
		}
	}
	sum.Stats = driver.Stats()
	sum.Written = sink.written
	var werr error
	for _, w := range append(sink.w[:], dlq, late) {
		werr = errors.Join(werr, w.Flush())
	}
	for _, f := range files {
		werr = errors.Join(werr, f.Close())
	}
	files = nil
	sum.Elapsed = time.Since(start)
	if werr != nil {
		return sum, errors.Join(readErr, fmt.Errorf("btc: write: %w", werr))
	}
	return sum, readErr
}
