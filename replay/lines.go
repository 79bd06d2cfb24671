package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidemark-go/tidemark/stream"
)

// chunkBytes is the size of the reads, and chunks how many are under way at
// once.
const (
	chunkBytes = 64 << 10
	chunks     = 4
)

// Stats counts the lines of a replay.
type Stats struct {
	Lines   uint64 // lines read, blank ones included
	Decoded uint64 // lines the decode function turned into events
	Invalid uint64 // lines it refused (handed to WithInvalidLines' handler)
}

// Lines replays a file of lines as a stream.Source: each line, without its
// terminator ("\n", or "\r\n"), goes through the decode function given to
// NewLines, and the events come out in the order of the lines, all in
// partition 0. A last line without a terminator counts; an empty file has
// no line.
//
// Pacing. At speed 0 (the default) Poll returns what is read as fast as it
// is called. At a speed f > 0 (WithSpeed), the first event is returned at
// once, and an event whose time is later than every event's before it is
// returned when the clock has moved on (its time - the first event's time)
// / f since the first was returned: the pace of the running maximum of the
// event times, anchored to the first. An event that is not later than one
// before it (disorder within a pipeline's allowed lateness, a duplicate) is
// returned at once, so disorder never stalls a replay, and time lost while
// nobody polled is caught up by returning the events that are due at once.
// Events of invalid lines (WithInvalidLines) go out at once and do not move
// the pace. Poll returns the events that are due, up to len(buf), and waits
// only when none is.
//
// The decode function gets each line in a buffer that is reused: it must
// copy what it keeps (a []byte value). The events it returns are the
// caller's.
//
// A replay ends with io.EOF after the last line, or with a *LineError at a
// line that is too long, that decode refuses (without WithInvalidLines) or
// that a read error cut short; Poll returns the events before it first, and
// then keeps returning the same error. Lines are read on a goroutine of the
// replay's own, started by the first Poll, so that Poll returns when its
// context is done even while a read blocks (a pipe, a terminal); such a read
// is left behind, and ends with its input. The file NewLines opened is closed
// at the end of the replay or by Close.
//
// Poll belongs to one goroutine at a time, as stream.Run calls it; Stats
// may be called from any goroutine, and Close from any goroutine once no
// Poll runs.
type Lines[T any] struct {
	name    string
	in      io.Reader
	file    *os.File // the file NewLines opened; nil with NewReader
	decode  func([]byte) (stream.Event[T], error)
	invalid func([]byte, uint64, error) (stream.Event[T], bool)
	speed   float64
	maxLine int
	clock   Clock

	// Reading, on the reader goroutine.
	started bool
	filled  chan chunk  // chunks read
	free    chan []byte // buffers for the next reads
	done    chan struct{}
	stop    sync.Once

	// Lines, on Poll's goroutine.
	cur      []byte // unread bytes of the current chunk
	buf      []byte // the current chunk's buffer, returned to free once read
	line     []byte // a line that spans chunks
	spanning bool
	eof      bool
	readErr  error // a read error, after the bytes before it
	no       uint64

	// Pacing.
	pending  stream.Event[T]
	pend     bool // pending holds the next event
	paced    bool // pending is paced
	anchored bool
	t0, top  stream.Time // the first paced event's time; the latest
	w0       time.Time   // when the first paced event was returned

	end    error // io.EOF, a *LineError, ErrClosed: what Poll returns from now on
	closed atomic.Bool

	lines, decoded, invalidN atomic.Uint64
}

var _ stream.Source[int] = (*Lines[int])(nil)

// chunk is one read: its bytes, and its error (io.EOF at the end).
type chunk struct {
	b   []byte
	err error
}

// NewLines returns a replay of the file at path, decoded line by line by
// decode. The file is opened now (an error says why it cannot be) and read
// from the first Poll.
func NewLines[T any](path string, decode func(line []byte) (stream.Event[T], error), opts ...Option) (*Lines[T], error) {
	if path == "" {
		return nil, fmt.Errorf("%w: no file", ErrInvalidOption)
	}
	l, err := newLines(nil, path, decode, opts)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	if st, err := f.Stat(); err != nil || st.IsDir() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("replay: %s is a directory", path)
		}
		return nil, err
	}
	l.in, l.file = f, f
	return l, nil
}

// NewReader returns a replay of r, decoded line by line by decode; name
// names it in errors. r is read from the first Poll, to its end, once.
func NewReader[T any](r io.Reader, name string, decode func(line []byte) (stream.Event[T], error), opts ...Option) (*Lines[T], error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil reader", ErrInvalidOption)
	}
	return newLines(r, name, decode, opts)
}

func newLines[T any](r io.Reader, name string, decode func([]byte) (stream.Event[T], error), opts []Option) (*Lines[T], error) {
	cfg := config{maxLine: DefaultMaxLineBytes, clock: wallClock{}}
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if len(cfg.errs) > 0 {
		return nil, cfg.errs[0]
	}
	if decode == nil {
		return nil, fmt.Errorf("%w: nil decode function", ErrInvalidOption)
	}
	l := &Lines[T]{name: name, in: r, decode: decode, speed: cfg.speed, maxLine: cfg.maxLine, clock: cfg.clock}
	switch f := cfg.invalid.(type) {
	case nil:
	case func([]byte, uint64, error) (stream.Event[T], bool):
		l.invalid = f
	default:
		var zero T
		return nil, fmt.Errorf("%w: the invalid-line handler is %T, want func([]byte, uint64, error) (stream.Event[%T], bool)", ErrInvalidOption, cfg.invalid, zero)
	}
	return l, nil
}

// Stats returns the counts so far. It is safe for concurrent use.
func (l *Lines[T]) Stats() Stats {
	return Stats{Lines: l.lines.Load(), Decoded: l.decoded.Load(), Invalid: l.invalidN.Load()}
}

// Close ends the replay: it stops the reader goroutine (unless a read
// blocks it, which then ends with its input) and closes the file NewLines
// opened. Poll returns ErrClosed afterwards, unless the replay had ended
// already. Close may be called more than once.
func (l *Lines[T]) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	return l.release()
}

// release stops reading and closes the file.
func (l *Lines[T]) release() error {
	var err error
	l.stop.Do(func() {
		if l.done != nil {
			close(l.done)
		}
		if l.file != nil {
			err = l.file.Close()
		}
	})
	return err
}

// Poll implements stream.Source. It returns the events that are due, at
// least one, up to len(buf); it waits for input or for the pace when none
// is, until ctx is done (then it returns ctx.Err()). At the end it returns
// io.EOF, or the *LineError that ended the replay.
func (l *Lines[T]) Poll(ctx context.Context, buf []stream.Record[T]) (int, error) {
	if l.end == nil && l.closed.Load() {
		l.end = ErrClosed
	}
	if l.end != nil && !l.pend {
		return 0, l.end
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if !l.started {
		l.start()
	}
	n := 0
	for n < len(buf) {
		if !l.pend {
			if l.end != nil {
				break
			}
			ok, err := l.next(ctx, n == 0)
			if err != nil {
				return n, err // ctx is done
			}
			if !ok {
				break // nothing read yet, or the end
			}
		}
		if l.paced && l.speed > 0 {
			if wait := l.due().Sub(l.clock.Now()); wait > 0 {
				if n > 0 {
					break // return what is due; this one waits for the next Poll
				}
				if err := l.clock.Sleep(ctx, wait); err != nil {
					return 0, err
				}
			}
			if !l.anchored {
				l.anchored, l.t0, l.top, l.w0 = true, l.pending.Time, l.pending.Time, l.clock.Now()
			}
			l.top = max(l.top, l.pending.Time)
		}
		buf[n] = stream.Record[T]{Event: l.pending}
		l.pending, l.pend = stream.Event[T]{}, false
		n++
	}
	if n == 0 && l.end != nil {
		return 0, l.end
	}
	return n, nil
}

// due is when the pending event is to be returned.
func (l *Lines[T]) due() time.Time {
	if !l.anchored || l.pending.Time <= l.top {
		return time.Time{} // the first, or not later than one returned: at once
	}
	d := float64(l.pending.Time-l.t0) * float64(time.Millisecond) / l.speed
	if d > float64(1<<62) {
		d = float64(1 << 62)
	}
	return l.w0.Add(time.Duration(d))
}

func (l *Lines[T]) start() {
	l.started = true
	l.filled = make(chan chunk, chunks)
	l.free = make(chan []byte, chunks)
	l.done = make(chan struct{})
	for range chunks {
		l.free <- make([]byte, chunkBytes)
	}
	go read(l.in, l.free, l.filled, l.done)
}

// read reads in into the buffers of free and sends them to filled, until
// the end of in, an error, or done.
func read(in io.Reader, free <-chan []byte, filled chan<- chunk, done <-chan struct{}) {
	for {
		var b []byte
		select {
		case b = <-free:
		case <-done:
			return
		}
		n, err := in.Read(b[:cap(b)])
		select {
		case filled <- chunk{b: b[:n], err: err}:
		case <-done:
			return
		}
		if err != nil {
			return
		}
	}
}

// next reads lines until one gives an event, which it makes pending. It
// returns false when no line is complete without waiting (wait false) or at
// the end of the replay (l.end set); an error only when ctx is done while it
// waits for input.
func (l *Lines[T]) next(ctx context.Context, wait bool) (bool, error) {
	for {
		line, ok, err := l.readLine(ctx, wait)
		if err != nil || !ok {
			return false, err
		}
		l.no++
		l.lines.Add(1)
		e, err := l.decode(line)
		if err == nil {
			l.decoded.Add(1)
			l.pending, l.pend, l.paced = e, true, true
			return true, nil
		}
		l.invalidN.Add(1)
		if l.invalid == nil {
			l.finish(&LineError{Name: l.name, Line: l.no, Err: err})
			return false, nil
		}
		if e, ok := l.invalid(line, l.no, err); ok {
			l.pending, l.pend, l.paced = e, true, false
			return true, nil
		}
	}
}

// finish ends the replay with err and lets the input go.
func (l *Lines[T]) finish(err error) {
	l.end = err
	_ = l.release()
}

// readLine returns the next line, without its terminator, in a buffer valid
// until the next call. It returns false when no line is complete and wait
// is false, or at the end (l.end set then).
func (l *Lines[T]) readLine(ctx context.Context, wait bool) ([]byte, bool, error) {
	for {
		if i := bytes.IndexByte(l.cur, '\n'); i >= 0 {
			line := l.cur[:i]
			l.cur = l.cur[i+1:]
			if l.spanning {
				l.line = append(l.line, line...)
				line, l.spanning = l.line, false
			}
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			if len(line) > l.maxLine {
				l.finish(&LineError{Name: l.name, Line: l.no + 1, Err: ErrLineTooLong})
				return nil, false, nil
			}
			return line, true, nil
		}
		if len(l.cur) > 0 {
			if !l.spanning {
				l.line, l.spanning = l.line[:0], true
			}
			l.line = append(l.line, l.cur...)
			l.cur = nil
			if len(l.line) > l.maxLine+1 { // +1: a "\r" of the terminator may follow
				l.finish(&LineError{Name: l.name, Line: l.no + 1, Err: ErrLineTooLong})
				return nil, false, nil
			}
		}
		if l.buf != nil {
			l.free <- l.buf[:cap(l.buf)] // never blocks: free has room for every buffer
			l.buf = nil
		}
		switch {
		case l.readErr != nil:
			l.finish(&LineError{Name: l.name, Line: l.no + 1, Err: l.readErr})
			return nil, false, nil
		case l.eof:
			if l.spanning { // the last line, without a terminator
				l.spanning = false
				line := l.line
				if n := len(line); n > l.maxLine {
					l.finish(&LineError{Name: l.name, Line: l.no + 1, Err: ErrLineTooLong})
					return nil, false, nil
				}
				return line, true, nil
			}
			l.finish(io.EOF)
			return nil, false, nil
		}
		var c chunk
		if wait {
			select {
			case c = <-l.filled:
			case <-ctx.Done():
				return nil, false, ctx.Err()
			}
		} else {
			select {
			case c = <-l.filled:
			default:
				return nil, false, nil
			}
		}
		l.cur, l.buf = c.b, c.b
		switch {
		case c.err == nil:
		case errors.Is(c.err, io.EOF):
			l.eof = true
		default:
			l.readErr = c.err
		}
	}
}
