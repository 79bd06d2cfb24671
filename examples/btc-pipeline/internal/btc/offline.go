package btc

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
)

// Summary counts what an offline run read and wrote.
type Summary struct {
	Lines   uint64 // input lines (a blank line is an invalid record)
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
	return fmt.Sprintf("offline: accepted=%d late=%d duplicate=%d invalid=%d (too far ahead %d) | moving=%d zscore=%d higher=%d lower=%d | %d lines in %v (%.0f lines/s)",
		s.Accepted, s.Late, s.Duplicates, s.Invalid, s.Ahead,
		s.Written[Moving], s.Written[ZScore], s.Written[Higher], s.Written[Lower],
		s.Lines, s.Elapsed.Round(time.Millisecond), rate)
}

// Output file names, in Kind order, and the side files.
const (
	DeadLetterFile = "btc-price-dlq.jsonl"  // invalid lines: {"line":N,"reason":"...","value":"<raw line>"} ("value_base64" when not UTF-8)
	LateFile       = "btc-price-late.jsonl" // late events, as normalised btc-price records
)

// OutputFiles returns the names of the files Offline writes in its
// directory.
func OutputFiles() []string {
	out := []string{DeadLetterFile, LateFile}
	for k := range numKinds {
		out = append(out, k.FileName())
	}
	return out
}

// MaxLineBytes is the longest input line offline reads as a record, its
// newline included: a btc-price record is about 80 bytes. A longer line is invalid
// (ErrLineTooLong); its dead letter holds its first MaxLineBytes bytes and
// "truncated":true, and reading it takes no more memory than that.
const MaxLineBytes = 1 << 20

// ErrTooFarAhead is the reason of an event further ahead of its partition's
// largest event time than Config.MaxAhead.
var ErrTooFarAhead = errors.New("event time too far ahead")

// ErrLineTooLong is the reason of a line longer than MaxLineBytes.
var ErrLineTooLong = fmt.Errorf("line longer than %d bytes", MaxLineBytes)

// FileName returns the output file of kind k.
func (k Kind) FileName() string { return k.Topic() + ".jsonl" }

// Offline reads btc-price JSON lines from in, in arrival order, runs them
// through the pipeline and writes one JSON-lines file per derived topic into
// outDir (created if needed), plus the dead-letter and late side files. End of
// input flushes everything. If ctx is cancelled it stops reading, writes what
// is already final and returns ctx's error.
//
// The work runs as a pipeline of four goroutines, so that it spreads over
// two cores: one reads and decodes the lines (offline_read.go), the caller's
// computes (the operators, one stream.Driver per partition; it also writes
// the dead-letter and late files, in line order), and two encode and write
// the four outputs (offline_write.go). Batches of a few hundred lines or
// records go between them, and every buffer is small: memory is the
// operators' state, and little more.
func Offline(ctx context.Context, in io.Reader, outDir string, cfg Config, log *slog.Logger) (Summary, error) {
	if log == nil {
		log = slog.Default()
	}
	start := time.Now()
	sum := Summary{Invalids: make(map[string]uint64)}
	parts := max(cfg.Partitions, 1)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return sum, fmt.Errorf("btc: %w", err)
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	create := func(name string, size int) (*fileWriter, error) {
		f, err := os.Create(filepath.Join(outDir, name))
		if err != nil {
			return nil, fmt.Errorf("btc: %w", err)
		}
		files = append(files, f)
		return newFileWriter(f, size), nil
	}
	var outs [numKinds]*fileWriter
	for k := range numKinds {
		var err error
		if outs[k], err = create(k.FileName(), writeBytes); err != nil {
			return sum, err
		}
	}
	dlq, err := create(DeadLetterFile, sideBytes)
	if err != nil {
		return sum, err
	}
	late, err := create(LateFile, sideBytes)
	if err != nil {
		return sum, err
	}
	onLate := func(e stream.Event[float64]) {
		late.buf = AppendPrice(late.buf, Price{Symbol: e.Key, Price: e.Value, Time: e.Time})
		late.line()
	}
	var written [numKinds]uint64
	movingSink, restSink := newOutSink(&written), newOutSink(&written)
	horizon := stream.DurationOf(cfg.Horizon)
	// One driver (one watermark) per partition, as one task per partition
	// in the streaming stages.
	drivers := make([]*stream.Driver[float64, []window.Statistics], parts)
	for i := range drivers {
		pipe, err := NewPipeline(cfg, scoreOut{restSink}, matchOut{restSink, Higher, horizon}, matchOut{restSink, Lower, horizon})
		if err != nil {
			return sum, err
		}
		if drivers[i], err = stream.NewDriver[float64, []window.Statistics](pipe, movingOut{movingSink}, stream.WithLateness(cfg.Lateness), stream.WithLateSink(onLate),
			stream.WithMaxAhead(cfg.MaxAhead)); err != nil {
			return sum, fmt.Errorf("btc: %w", err)
		}
	}

	var encoders []chan struct{}
	for _, s := range []*outSink{movingSink, restSink} {
		e := &outEncoder{w: outs, n: len(cfg.Windows)}
		for k := range numKinds {
			e.enc[k] = NewEncoder(cfg.Windows, cfg.Horizon)
		}
		done := make(chan struct{})
		encoders = append(encoders, done)
		go e.run(s, done)
	}
	reader := newLineReader(ctx, in, parts)
	go reader.run()

	var readErr error
	for b := range reader.out {
		for i := range b.lines {
			l := &b.lines[i]
			derr := l.err
			if derr == nil {
				e := stream.Event[float64]{Key: l.p.Symbol, Time: l.p.Time, Value: l.p.Price}
				if drivers[l.part].Push(0, e, time.Time{}) == stream.TooFarAhead {
					// The lines have no record timestamps: the bound is on
					// the jump of the partition's largest event time.
					derr = fmt.Errorf("%w: event time %v is more than %v ahead of the largest event time of its partition", ErrTooFarAhead, l.p.Time, cfg.MaxAhead)
				}
			}
			if derr != nil {
				lineNo := b.first + uint64(i)
				sum.Invalid++
				reason := derr.Error()
				if errors.Is(derr, ErrTooFarAhead) {
					reason = ErrTooFarAhead.Error() // one kind, whatever the times
				}
				if sum.Invalids[reason]++; sum.Invalids[reason] == 1 {
					log.Warn("invalid btc-price record (logged once per kind)", "reason", derr.Error(), "line", lineNo)
				}
				dlq.buf = appendDeadLetter(dlq.buf, lineNo, derr, b.raw[l.start:l.end], l.tooLong)
				dlq.line()
			}
		}
		sum.Lines += uint64(len(b.lines))
		if b.eof {
			for _, d := range drivers {
				d.Finish()
			}
		}
		readErr = b.err
		reader.recycle(b)
	}
	movingSink.close()
	restSink.close()
	for _, done := range encoders {
		<-done
	}
	for _, d := range drivers {
		st := d.Stats()
		sum.Accepted += st.Accepted
		sum.Late += st.Late
		sum.Duplicates += st.Duplicates
		sum.Ahead += st.Ahead
	}
	sum.Written = written
	var werr error
	for _, w := range append(outs[:], dlq, late) {
		werr = errors.Join(werr, w.flush())
	}
	for _, f := range files {
		werr = errors.Join(werr, f.Close())
	}
	files = nil
	sum.Elapsed = time.Since(start)
	if werr != nil {
		// A write failed (a full disk, say): report what the files hold,
		// complete lines only, and cut a partial last line.
		for k := range numKinds {
			sum.Written[k] = settleFile(filepath.Join(outDir, k.FileName()))
		}
		settleFile(filepath.Join(outDir, DeadLetterFile))
		settleFile(filepath.Join(outDir, LateFile))
		return sum, errors.Join(readErr, fmt.Errorf("btc: write: %w", werr))
	}
	return sum, readErr
}

// appendDeadLetter appends the dead letter of input line lineNo, body (its
// first MaxLineBytes when tooLong), refused for err.
func appendDeadLetter(b []byte, lineNo uint64, err error, body []byte, tooLong bool) []byte {
	b = append(b, `{"line":`...)
	b = strconv.AppendUint(b, lineNo, 10)
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, err.Error())
	if utf8.Valid(body) {
		b = append(b, `,"value":`...)
		b = appendJSONString(b, string(body))
	} else { // a JSON string cannot hold it untouched
		b = append(b, `,"value_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, body)
		b = append(b, '"')
	}
	if tooLong {
		b = append(b, `,"truncated":true`...)
	}
	return append(b, '}')
}

// settleFile cuts a regular file after its last complete line and returns
// the number of lines it holds; anything else (a device) holds none.
func settleFile(path string) uint64 {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0
	}
	var lines, end int64
	buf := make([]byte, 1<<20)
	for off := int64(0); ; {
		n, err := f.ReadAt(buf, off)
		for i, c := range buf[:n] {
			if c == '\n' {
				lines++
				end = off + int64(i) + 1
			}
		}
		off += int64(n)
		if err != nil {
			break
		}
	}
	if end < st.Size() {
		_ = f.Truncate(end)
	}
	return uint64(lines)
}
