package btc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tidemark-go/tidemark/lookahead"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
	"github.com/tidemark-go/tidemark/zscore"
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

// Offline's writer side runs in two goroutines beside the one that reads,
// decodes and computes: one encodes btc-price-moving (the largest records), the
// other the three other topics. The computing goroutine copies each output into
// a batch (the operators' slices are reused) and hands full batches to both
// encoders; each encoder writes its own files in batch order, so every file is
// in emission order, as with a single goroutine. A small pool of batches gives
// backpressure.

const batchSize = 4096

type record struct {
	kind  Kind
	key   string
	t     stream.Time
	price float64
	match lookahead.Match[float64]
	off   int // Moving: index in stats; ZScore: index in scores
}

type batch struct {
	recs    []record
	stats   []window.Statistics
	scores  []zscore.Score
	pending atomic.Int32 // encoders still reading it
}

// batchSink fills batches; the pipeline writes to it through one typed
// Emitter per output (movingSink, scoreSink, matchSink).
type batchSink struct {
	cur     *batch
	free    chan *batch
	workers []chan *batch
	written [numKinds]uint64
}

// add appends r to the current batch, shipping it when full.
func (s *batchSink) add(r record, b *batch) {
	b.recs = append(b.recs, r)
	s.written[r.kind]++
	if len(b.recs) == batchSize {
		s.ship()
	}
}

// batch returns the batch being filled.
func (s *batchSink) batch() *batch {
	if s.cur == nil {
		s.cur = <-s.free
	}
	return s.cur
}

type movingSink struct{ *batchSink }

func (s movingSink) Emit(e stream.Event[[]window.Statistics]) {
	b := s.batch()
	r := record{kind: Moving, key: e.Key, t: e.Time, off: len(b.stats)}
	b.stats = append(b.stats, e.Value...)
	s.add(r, b)
}

type scoreSink struct{ *batchSink }

func (s scoreSink) Emit(e stream.Event[zscore.Scored]) {
	b := s.batch()
	r := record{kind: ZScore, key: e.Key, t: e.Time, price: e.Value.Value, off: len(b.scores)}
	b.scores = append(b.scores, e.Value.Scores...)
	s.add(r, b)
}

type matchSink struct {
	*batchSink
	kind Kind
}

func (s matchSink) Emit(e stream.Event[lookahead.Match[float64]]) {
	s.add(record{kind: s.kind, key: e.Key, t: e.Time, match: e.Value}, s.batch())
}

// ship hands the current batch to the encoders.
func (s *batchSink) ship() {
	if s.cur == nil {
		return
	}
	s.cur.pending.Store(int32(len(s.workers)))
	for _, w := range s.workers {
		w <- s.cur
	}
	s.cur = nil
}

// encoder writes the records of some kinds into their files.
type encoder struct {
	enc   *Encoder
	kinds [numKinds]bool
	w     [numKinds]*bufio.Writer
}

func (e *encoder) run(in <-chan *batch, free chan<- *batch, done chan<- struct{}) {
	defer close(done)
	n := len(e.enc.labels)
	for b := range in {
		for i := range b.recs {
			r := &b.recs[i]
			if !e.kinds[r.kind] {
				continue
			}
			w := e.w[r.kind]
			buf := w.AvailableBuffer()
			switch r.kind {
			case Moving:
				buf = e.enc.AppendMoving(buf, r.key, r.t, b.stats[r.off:r.off+n])
			case ZScore:
				buf = e.enc.AppendZScore(buf, r.key, r.t, r.price, b.scores[r.off:r.off+n])
			case Higher:
				buf = e.enc.AppendLookahead(buf, "higher_window", r.key, r.t, r.match)
			case Lower:
				buf = e.enc.AppendLookahead(buf, "lower_window", r.key, r.t, r.match)
			}
			w.Write(append(buf, '\n')) // a write error is sticky in bufio.Writer and reported by Flush
		}
		if b.pending.Add(-1) == 0 {
			b.recs, b.stats, b.scores = b.recs[:0], b.stats[:0], b.scores[:0]
			free <- b
		}
	}
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
	parts := max(cfg.Partitions, 1)
	var err error
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
	var files4 [numKinds]*bufio.Writer
	for k := range numKinds {
		if files4[k], err = create(k.FileName()); err != nil {
			return sum, err
		}
	}
	const pool = 4
	sink := &batchSink{free: make(chan *batch, pool)}
	for range pool {
		sink.free <- &batch{}
	}
	movingEnc := &encoder{enc: NewEncoder(cfg.Windows, cfg.Horizon), w: files4}
	movingEnc.kinds[Moving] = true
	restEnc := &encoder{enc: NewEncoder(cfg.Windows, cfg.Horizon), w: files4}
	restEnc.kinds[ZScore], restEnc.kinds[Higher], restEnc.kinds[Lower] = true, true, true
	var dones []chan struct{}
	for _, e := range []*encoder{movingEnc, restEnc} {
		in, done := make(chan *batch, pool), make(chan struct{})
		sink.workers = append(sink.workers, in)
		dones = append(dones, done)
		go e.run(in, sink.free, done)
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
	// One driver (one watermark) per partition, as one task per partition
	// in the streaming stages.
	drivers := make([]*stream.Driver[float64, []window.Statistics], parts)
	for i := range drivers {
		pipe, err := NewPipeline(cfg, scoreSink{sink}, matchSink{sink, Higher}, matchSink{sink, Lower})
		if err != nil {
			return sum, err
		}
		if drivers[i], err = stream.NewDriver[float64, []window.Statistics](pipe, movingSink{sink}, stream.WithLateness(cfg.Lateness), stream.WithLateSink(onLate),
			stream.WithMaxAhead(cfg.MaxAhead)); err != nil {
			return sum, fmt.Errorf("btc: %w", err)
		}
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
		tooLong := false
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.ReadSlice('\n')
				if room := MaxLineBytes - len(long); room > 0 {
					long = append(long, line[:min(len(line), room)]...)
				}
				tooLong = tooLong || len(long) >= MaxLineBytes && len(line) > 0
			}
			line = long
		}
		if len(line) > 0 {
			lineNo++
			// The line as it came, but for its end: the decoder skips a
			// "\r" as JSON whitespace, and a dead letter keeps it.
			body := bytes.TrimSuffix(line, []byte("\n"))
			// Every line is a record: a blank one is invalid, as in btc-price.
			sum.Lines++
			var p Price
			var derr error
			if tooLong {
				derr = ErrLineTooLong
			} else {
				p, derr = dec.Decode(body)
			}
			if derr == nil {
				e := stream.Event[float64]{Key: p.Symbol, Time: p.Time, Value: p.Price}
				if drivers[Partition(p.Symbol, parts)].Push(0, e, time.Time{}) == stream.TooFarAhead {
					// The lines have no record timestamps: the bound is on
					// the jump of the partition's largest event time.
					derr = fmt.Errorf("%w: event time %v is more than %v ahead of the largest event time of its partition", ErrTooFarAhead, p.Time, cfg.MaxAhead)
				}
			}
			if derr != nil {
				sum.Invalid++
				reason := derr.Error()
				if errors.Is(derr, ErrTooFarAhead) {
					reason = ErrTooFarAhead.Error() // one kind, whatever the times
				}
				if sum.Invalids[reason]++; sum.Invalids[reason] == 1 {
					log.Warn("invalid btc-price record (logged once per kind)", "reason", derr.Error(), "line", lineNo)
				}
				b := append(dlq.AvailableBuffer(), `{"line":`...)
				b = fmt.Appendf(b, "%d", lineNo)
				b = append(b, `,"reason":`...)
				b = appendJSONString(b, derr.Error())
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
				dlq.Write(append(b, "}\n"...))
			}
		}
		if err == io.EOF {
			for _, d := range drivers {
				d.Finish()
			}
			break
		}
		if err != nil {
			readErr = fmt.Errorf("btc: read: %w", err)
			break
		}
	}
	sink.ship()
	for i, w := range sink.workers {
		close(w)
		<-dones[i]
	}
	for _, d := range drivers {
		st := d.Stats()
		sum.Accepted += st.Accepted
		sum.Late += st.Late
		sum.Duplicates += st.Duplicates
		sum.Ahead += st.Ahead
	}
	sum.Written = sink.written
	var werr error
	for _, w := range append(files4[:], dlq, late) {
		werr = errors.Join(werr, w.Flush())
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
