package btc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// Offline's first goroutine reads and decodes the input lines and hands
// them, in batches and in order, to the goroutine that computes: decoding
// runs on one core while the operators run on the other.

const (
	readBufferBytes = 64 << 10 // the input's read buffer; longer lines are put together (up to MaxLineBytes)
	linesPerBatch   = 512      // lines per batch
	rawPerBatch     = 32 << 10 // a batch is handed over once its lines' bytes exceed this
	lineBatches     = 3        // batches between the reader and the computing goroutine
)

// inputLine is a decoded input line.
type inputLine struct {
	p          Price
	err        error // why the line is not a btc-price record; nil when it is
	part       int   // p's partition
	start, end int   // the line in its batch's raw bytes, without its newline (its first MaxLineBytes when too long)
	tooLong    bool
}

// lineBatch is a run of consecutive input lines.
type lineBatch struct {
	lines []inputLine
	raw   []byte // the lines, back to back, to dead-letter them as they came
	first uint64 // the number of lines[0] (the first line is 1)
	err   error  // the reading stopped after these lines: the context's error, or a read error
	eof   bool   // the input ended after these lines
}

// lineReader reads and decodes the lines of in. Its run goroutine sends
// the batches, in order, to out and closes out after the last; the
// receiver returns each batch to free.
type lineReader struct {
	ctx   context.Context
	in    io.Reader
	parts int
	out   chan *lineBatch
	free  chan *lineBatch
}

func newLineReader(ctx context.Context, in io.Reader, parts int) *lineReader {
	lr := &lineReader{ctx: ctx, in: in, parts: parts, out: make(chan *lineBatch, lineBatches), free: make(chan *lineBatch, lineBatches)}
	for range lineBatches {
		lr.free <- &lineBatch{lines: make([]inputLine, 0, linesPerBatch), raw: make([]byte, 0, rawPerBatch+1024)}
	}
	return lr
}

func (lr *lineReader) run() {
	defer close(lr.out)
	dec := NewDecoder()
	r := bufio.NewReaderSize(lr.in, readBufferBytes)
	var long []byte
	lineNo := uint64(0)
	b := <-lr.free
	b.first = 1
	send := func() {
		lr.out <- b
		b = <-lr.free
		b.lines, b.raw, b.err, b.eof = b.lines[:0], b.raw[:0], nil, false
		b.first = lineNo + 1
	}
	for {
		if lineNo&1023 == 0 && lr.ctx.Err() != nil {
			b.err = lr.ctx.Err()
			break
		}
		line, err := r.ReadSlice('\n')
		tooLong := false
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: put it together, up to one
			// byte more than MaxLineBytes (which makes it too long), and
			// skip the rest.
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.ReadSlice('\n')
				if room := MaxLineBytes + 1 - len(long); room > 0 {
					long = append(long, line[:min(len(line), room)]...)
				}
			}
			if tooLong = len(long) > MaxLineBytes; tooLong {
				long = long[:MaxLineBytes]
			}
			line = long
		}
		if len(line) > 0 {
			lineNo++
			// The line as it came, but for its end: the decoder skips a
			// "\r" as JSON whitespace, and a dead letter keeps it.
			body := line
			if !tooLong {
				body = bytes.TrimSuffix(line, []byte("\n"))
			}
			l := inputLine{start: len(b.raw), tooLong: tooLong}
			b.raw = append(b.raw, body...)
			l.end = len(b.raw)
			if tooLong {
				l.err = ErrLineTooLong
			} else if l.p, l.err = dec.Decode(body); l.err == nil && lr.parts > 1 {
				l.part = Partition(l.p.Symbol, lr.parts)
			}
			b.lines = append(b.lines, l)
			if len(b.lines) == linesPerBatch || len(b.raw) >= rawPerBatch {
				send()
			}
		}
		if err == io.EOF {
			b.eof = true
			break
		}
		if err != nil {
			b.err = fmt.Errorf("btc: read: %w", err)
			break
		}
	}
	lr.out <- b
}

// recycle returns a batch the receiver is done with.
func (lr *lineReader) recycle(b *lineBatch) {
	if cap(b.raw) > 4*rawPerBatch {
		b.raw = make([]byte, 0, rawPerBatch+1024) // it held a long line: do not keep a MiB
	}
	lr.free <- b
}
