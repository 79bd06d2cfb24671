package btc

import (
	"os"

	"github.com/tidemark-go/tidemark/lookahead"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
	"github.com/tidemark-go/tidemark/zscore"
)

// Offline's writer side runs in two goroutines beside the reading and the
// computing ones: one encodes btc-price-moving (the largest records, half
// the output's bytes), the other the three other topics. The computing
// goroutine copies each output into a batch of its encoder (the operators'
// slices are reused) and hands full batches over; each encoder writes its
// files in batch order, so every file is in emission order, as with a
// single goroutine. A few batches per encoder give backpressure.

const (
	recordsPerBatch = 1024 // output records per batch
	outBatches      = 3    // batches per encoder
	// An output file is written once this much of it is encoded: large
	// enough that system calls are few, small enough that a buffer stays
	// in the core's cache until the kernel copies it.
	writeBytes = 64 << 10
	sideBytes  = 16 << 10 // the same for the dead-letter and late files
)

// fileWriter buffers one output file. A write error is kept (nothing more
// is written after it) and returned by flush.
type fileWriter struct {
	f    *os.File
	buf  []byte
	size int // write once buf holds this much
	err  error
}

func newFileWriter(f *os.File, size int) *fileWriter {
	return &fileWriter{f: f, size: size, buf: make([]byte, 0, size+4096)}
}

// line ends the record appended to buf and writes buf when full.
func (w *fileWriter) line() {
	w.buf = append(w.buf, '\n')
	if len(w.buf) >= w.size {
		w.flush()
	}
}

func (w *fileWriter) flush() error {
	if len(w.buf) > 0 && w.err == nil {
		_, w.err = w.f.Write(w.buf)
	}
	w.buf = w.buf[:0]
	return w.err
}

// outRecord is an output record in a batch.
type outRecord struct {
	key   string
	t     stream.Time
	price float64     // ZScore
	delay stream.Time // Higher, Lower: the time to the match, or the horizon
	off   int32       // ZScore: where its scores start in the batch
	kind  Kind
}

type outBatch struct {
	recs   []outRecord
	stats  []window.Statistics // Moving: len(windows) per record, in order
	scores []zscore.Score
}

// outSink fills the batches of one encoder.
type outSink struct {
	cur     *outBatch
	free    chan *outBatch
	out     chan *outBatch
	written *[numKinds]uint64
}

func newOutSink(written *[numKinds]uint64) *outSink {
	s := &outSink{free: make(chan *outBatch, outBatches), out: make(chan *outBatch, outBatches), written: written}
	for range outBatches {
		s.free <- &outBatch{recs: make([]outRecord, 0, recordsPerBatch)}
	}
	return s
}

// batch returns the batch being filled.
func (s *outSink) batch() *outBatch {
	if s.cur == nil {
		s.cur = <-s.free
	}
	return s.cur
}

// add appends r to b, the batch being filled, and hands it over when full.
func (s *outSink) add(b *outBatch, r outRecord) {
	b.recs = append(b.recs, r)
	s.written[r.kind]++
	if len(b.recs) == recordsPerBatch {
		s.ship()
	}
}

// ship hands the batch being filled to the encoder.
func (s *outSink) ship() {
	if s.cur != nil {
		s.out <- s.cur
		s.cur = nil
	}
}

// close hands the last batch over and tells the encoder there are no more.
func (s *outSink) close() {
	s.ship()
	close(s.out)
}

type movingOut struct{ *outSink }

func (s movingOut) Emit(e stream.Event[[]window.Statistics]) {
	b := s.batch()
	b.stats = append(b.stats, e.Value...)
	s.add(b, outRecord{kind: Moving, key: e.Key, t: e.Time})
}

type scoreOut struct{ *outSink }

func (s scoreOut) Emit(e stream.Event[zscore.Scored]) {
	b := s.batch()
	r := outRecord{kind: ZScore, key: e.Key, t: e.Time, price: e.Value.Value, off: int32(len(b.scores))}
	b.scores = append(b.scores, e.Value.Scores...)
	s.add(b, r)
}

type matchOut struct {
	*outSink
	kind    Kind
	horizon stream.Time
}

func (s matchOut) Emit(e stream.Event[lookahead.Match[float64]]) {
	s.add(s.batch(), outRecord{kind: s.kind, key: e.Key, t: e.Time, delay: e.Value.Delay(e.Time, s.horizon)})
}

// outEncoder writes the records of its batches into their files.
type outEncoder struct {
	enc [numKinds]*Encoder // one per kind: each keeps the last timestamp it formatted
	w   [numKinds]*fileWriter
	n   int // windows
}

func (e *outEncoder) run(s *outSink, done chan<- struct{}) {
	defer close(done)
	for b := range s.out {
		for i := range b.recs {
			r := &b.recs[i]
			w := e.w[r.kind]
			switch r.kind {
			case Moving:
				w.buf = e.enc[Moving].AppendMoving(w.buf, r.key, r.t, b.stats[i*e.n:(i+1)*e.n])
			case ZScore:
				w.buf = e.enc[ZScore].AppendZScore(w.buf, r.key, r.t, r.price, b.scores[r.off:int(r.off)+e.n])
			case Higher:
				w.buf = e.enc[Higher].appendLookaheadDelay(w.buf, "higher_window", r.key, r.t, r.delay)
			case Lower:
				w.buf = e.enc[Lower].appendLookaheadDelay(w.buf, "lower_window", r.key, r.t, r.delay)
			}
			w.line()
		}
		b.recs, b.stats, b.scores = b.recs[:0], b.stats[:0], b.scores[:0]
		s.free <- b
	}
}
