package source

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/stream"
)

// DefaultMaxLineBytes is the longest replayed line accepted by default:
// Kafka's default largest message.
const DefaultMaxLineBytes = 1 << 20

// ReplayConfig configures a Replay source. Zero fields take the defaults.
type ReplayConfig struct {
	// Speed is the pace against the trace's event times: 1 replays at the
	// trace's pace, 10 ten times faster, 0 (the default) as fast as emit
	// accepts.
	Speed float64
	// MaxLineBytes is the longest line accepted, DefaultMaxLineBytes; a
	// longer line ends Run with a *LineTooLongError.
	MaxLineBytes int

	Now    func() time.Time // the wall clock, time.Now: the time of invalid lines
	Logger *slog.Logger     // slog.Default()
}

// ReplayStats are the counters of a Replay source: lines emitted.
type ReplayStats struct {
	Lines   uint64 // lines emitted, blank ones included
	Valid   uint64 // lines that are valid btc-price records
	Invalid uint64 // other lines (blank ones included), emitted raw with an empty key
}

// LineTooLongError ends a replay at a line longer than the limit.
type LineTooLongError struct {
	Name  string // the file
	Line  uint64 // 1-based line number
	Limit int    // ReplayConfig.MaxLineBytes
}

func (e *LineTooLongError) Error() string {
	return fmt.Sprintf("source: replay %s: line %d is longer than %d bytes", e.Name, e.Line, e.Limit)
}

// Replay reads btc-price JSON lines from a file or a reader. See the package
// documentation.
type Replay struct {
	cfg  ReplayConfig
	name string    // for messages: the path, "stdin", or the reader's name
	path string    // the file to open in Run; "" with a reader
	in   io.Reader // the reader when path is ""
	log  *slog.Logger

	lines, valid, invalid atomic.Uint64
}

// NewReplay returns a Replay of the file at path; "-" is the standard input.
// The file is opened by each Run, so a Replay of a file can run again.
func NewReplay(path string, cfg ReplayConfig) (*Replay, error) {
	if path == "" {
		return nil, errors.New("source: replay needs a file (or - for stdin)")
	}
	if path == "-" {
		return newReplay(os.Stdin, "stdin", cfg)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("source: replay: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("source: replay: %s is a directory", path)
	}
	r, err := newReplay(nil, path, cfg)
	if r != nil {
		r.path = path
	}
	return r, err
}

// NewReplayReader returns a Replay of r; name names it in logs and errors.
// r is read once: a second Run finds it at its end.
func NewReplayReader(r io.Reader, name string, cfg ReplayConfig) (*Replay, error) {
	if r == nil {
		return nil, errors.New("source: replay of a nil reader")
	}
	return newReplay(r, name, cfg)
}

func newReplay(in io.Reader, name string, cfg ReplayConfig) (*Replay, error) {
	if !(cfg.Speed >= 0) || math.IsInf(cfg.Speed, 0) {
		return nil, fmt.Errorf("source: replay speed %v is not finite and >= 0", cfg.Speed)
	}
	if cfg.MaxLineBytes < 0 {
		return nil, fmt.Errorf("source: replay max line bytes %d is negative", cfg.MaxLineBytes)
	}
	if cfg.MaxLineBytes == 0 {
		cfg.MaxLineBytes = DefaultMaxLineBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Replay{cfg: cfg, name: name, in: in, log: cfg.Logger.With("source", "replay", "file", name)}, nil
}

// Describe implements Source: "Replay prices.jsonl (4x the trace's pace)".
func (r *Replay) Describe() string {
	pace := "as fast as possible"
	switch {
	case r.cfg.Speed == 1:
		pace = "at the trace's pace"
	case r.cfg.Speed > 0:
		pace = strconv.FormatFloat(r.cfg.Speed, 'g', -1, 64) + "x the trace's pace"
	}
	return fmt.Sprintf("Replay %s (%s)", r.name, pace)
}

// Stats returns a snapshot of the counters.
func (r *Replay) Stats() ReplayStats {
	return ReplayStats{Lines: r.lines.Load(), Valid: r.valid.Load(), Invalid: r.invalid.Load()}
}

// line is one line read, without its terminator, in a slice of its own.
type line struct {
	no uint64
	b  []byte
}

// batch is lines read together; err ends the input (io.EOF at its end).
type batch struct {
	lines []line
	err   error
}

// Run implements Source: it emits every line in order and returns nil at the
// end of the input, or the read error, or a *LineTooLongError after emitting
// the lines before it.
func (r *Replay) Run(ctx context.Context, emit func(Record) error) error {
	in := r.in
	if r.path != "" {
		f, err := os.Open(r.path)
		if err != nil {
			return fmt.Errorf("source: replay: %w", err)
		}
		defer f.Close()
		in = f
	}
	// Lines are read by a goroutine of their own, so that cancelling ctx ends
	// Run at once even while a read blocks (on a terminal or a pipe); such a
	// read is left behind and ends with the input.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan batch, 4)
	go r.read(rctx, in, batches)

	var (
		dec     = btc.NewDecoder()
		started bool
		t0      stream.Time // the event time of the first valid line
		w0      time.Time   // when it was emitted
		logged  = make(map[error]bool)
	)
	for {
		var b batch
		select {
		case b = <-batches:
		case <-ctx.Done():
			return ctx.Err()
		}
		for _, ln := range b.lines {
			if err := ctx.Err(); err != nil {
				return err
			}
			rec := Record{Value: ln.b}
			p, err := dec.Decode(ln.b)
			valid := err == nil
			if !valid {
				if !logged[err] {
					logged[err] = true
					r.log.Warn("invalid btc-price line, emitted raw with an empty key (logged once per kind)",
						"reason", err.Error(), "line", ln.no)
				}
				rec.Time = millis(r.cfg.Now())
			} else {
				rec.Symbol, rec.Time = p.Symbol, p.Time.UTC()
				if r.cfg.Speed > 0 {
					if !started {
						started, t0, w0 = true, p.Time, time.Now()
					} else if err := sleep(ctx, time.Until(w0.Add(r.offset(p.Time-t0)))); err != nil {
						return err
					}
				}
			}
			if err := emit(rec); err != nil {
				return err
			}
			r.lines.Add(1)
			if valid {
				r.valid.Add(1)
			} else {
				r.invalid.Add(1)
			}
		}
		if b.err == io.EOF {
			return nil
		}
		if b.err != nil {
			return b.err
		}
	}
}

// offset is the wall-clock time from the first valid line to a line d ms of
// event time after it, at the configured speed.
func (r *Replay) offset(d stream.Time) time.Duration {
	f := float64(d) * float64(time.Millisecond) / r.cfg.Speed
	if f > float64(math.MaxInt64/2) {
		return math.MaxInt64 / 2
	}
	return time.Duration(f) // negative (an earlier event): due already
}

// read reads lines into batches until the input ends or ctx is cancelled. A
// batch is sent when it is full or when the next read would wait for the
// input, so lines arriving slowly (a pipe) are not held back.
func (r *Replay) read(ctx context.Context, in io.Reader, out chan<- batch) {
	const batchLines = 256
	br := bufio.NewReaderSize(in, 64<<10)
	var (
		b  batch
		no uint64
	)
	send := func() bool {
		select {
		case out <- b:
			b = batch{}
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		v, err := readLine(br, r.cfg.MaxLineBytes)
		if v != nil {
			no++
			b.lines = append(b.lines, line{no: no, b: v})
		}
		if errors.Is(err, errLineTooLong) {
			err = &LineTooLongError{Name: r.name, Line: no + 1, Limit: r.cfg.MaxLineBytes}
		} else if err != nil && err != io.EOF {
			err = fmt.Errorf("source: replay %s: reading line %d: %w", r.name, no+1, err)
		}
		if err != nil {
			b.err = err
			send()
			return
		}
		if (len(b.lines) >= batchLines || br.Buffered() == 0) && !send() {
			return
		}
	}
}

var errLineTooLong = errors.New("line too long")

// readLine reads one line, in a new slice without its terminator ("\n" or
// "\r\n"). At the end of the input it returns the last line if it has no
// terminator (nil if there is none) with io.EOF. A line longer than max
// returns errLineTooLong.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	frag, err := br.ReadSlice('\n')
	var v []byte
	if errors.Is(err, bufio.ErrBufferFull) {
		v = append([]byte(nil), frag...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(v) > max+2 {
				return nil, errLineTooLong
			}
			frag, err = br.ReadSlice('\n')
			v = append(v, frag...)
		}
	} else {
		if len(frag) == 0 && err != nil {
			return nil, err
		}
		v = make([]byte, len(frag))
		copy(v, frag)
	}
	if err != nil && err != io.EOF {
		return nil, err // a line cut short by a read error is not emitted
	}
	if n := len(v); n > 0 && v[n-1] == '\n' {
		v = v[:n-1]
		if n := len(v); n > 0 && v[n-1] == '\r' {
			v = v[:n-1]
		}
	}
	if len(v) > max {
		return nil, errLineTooLong
	}
	return v, err
}
