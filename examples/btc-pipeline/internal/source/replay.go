package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/replay"
	"github.com/tidemark-go/tidemark/stream"
)

// DefaultMaxLineBytes is the longest replayed line accepted by default:
// Kafka's default largest message.
const DefaultMaxLineBytes = replay.DefaultMaxLineBytes

// ReplayConfig configures a Replay source. Zero fields take the defaults.
type ReplayConfig struct {
	// Speed is the pace against the trace's event times: 1 replays at the
	// trace's pace, 10 ten times faster, 0 (the default) as fast as Poll is
	// called.
	Speed float64
	// MaxLineBytes is the longest line accepted, DefaultMaxLineBytes; a
	// longer line ends the replay with a *replay.LineError wrapping
	// replay.ErrLineTooLong.
	MaxLineBytes int

	Now    func() time.Time // the wall clock, time.Now: the time of invalid lines
	Logger *slog.Logger     // slog.Default()
}

// ReplayStats are the counters of a Replay source: lines replayed.
type ReplayStats struct {
	Lines   uint64 // lines read, blank ones included
	Valid   uint64 // lines that are valid btc-price records
	Invalid uint64 // other lines (blank ones included), replayed raw with an empty key
}

// Replay replays btc-price JSON lines from a file or a reader, with the
// library's replay.Lines. See the package documentation.
type Replay struct {
	*replay.Lines[[]byte]
	name  string
	speed float64
}

var _ stream.Source[[]byte] = (*Replay)(nil)

// NewReplay returns a Replay of the file at path; "-" is the standard input.
func NewReplay(path string, cfg ReplayConfig) (*Replay, error) {
	if path == "" {
		return nil, errors.New("source: replay needs a file (or - for stdin)")
	}
	if path == "-" {
		return NewReplayReader(os.Stdin, "stdin", cfg)
	}
	return newReplay(func(d func([]byte) (stream.Event[[]byte], error), o ...replay.Option) (*replay.Lines[[]byte], error) {
		return replay.NewLines(path, d, o...)
	}, path, cfg)
}

// NewReplayReader returns a Replay of r; name names it in logs and errors.
// r is read once, from the first Poll.
func NewReplayReader(r io.Reader, name string, cfg ReplayConfig) (*Replay, error) {
	if r == nil {
		return nil, errors.New("source: replay of a nil reader")
	}
	return newReplay(func(d func([]byte) (stream.Event[[]byte], error), o ...replay.Option) (*replay.Lines[[]byte], error) {
		return replay.NewReader(r, name, d, o...)
	}, name, cfg)
}

func newReplay(open func(func([]byte) (stream.Event[[]byte], error), ...replay.Option) (*replay.Lines[[]byte], error), name string, cfg ReplayConfig) (*Replay, error) {
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
	log := cfg.Logger.With("source", "replay", "file", name)
	dec := btc.NewDecoder()
	decode := func(line []byte) (stream.Event[[]byte], error) {
		p, err := dec.Decode(line)
		if err != nil {
			return stream.Event[[]byte]{}, err
		}
		return stream.Event[[]byte]{Key: p.Symbol, Time: p.Time, Value: bytes.Clone(line)}, nil
	}
	var (
		mu     sync.Mutex
		logged = make(map[error]bool)
	)
	raw := func(line []byte, no uint64, err error) (stream.Event[[]byte], bool) {
		mu.Lock()
		first := !logged[err]
		logged[err] = true
		mu.Unlock()
		if first {
			log.Warn("invalid btc-price line, replayed raw with an empty key (logged once per kind)", "reason", err.Error(), "line", no)
		}
		// Never a nil value: a blank line is an empty record, not a tombstone.
		return stream.Event[[]byte]{Time: stream.TimeOf(cfg.Now()), Value: append(make([]byte, 0, len(line)), line...)}, true
	}
	lines, err := open(decode, replay.WithSpeed(cfg.Speed), replay.WithMaxLineBytes(cfg.MaxLineBytes), replay.WithInvalidLines(raw))
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	return &Replay{Lines: lines, name: name, speed: cfg.Speed}, nil
}

// Describe says what the source is, in one line: "Replay prices.jsonl (4x
// the trace's pace)".
func (r *Replay) Describe() string {
	pace := "as fast as possible"
	switch {
	case r.speed == 1:
		pace = "at the trace's pace"
	case r.speed > 0:
		pace = strconv.FormatFloat(r.speed, 'g', -1, 64) + "x the trace's pace"
	}
	return fmt.Sprintf("Replay %s (%s)", r.name, pace)
}

// Stats returns a snapshot of the counters.
func (r *Replay) Stats() ReplayStats {
	st := r.Lines.Stats()
	return ReplayStats{Lines: st.Lines, Valid: st.Decoded, Invalid: st.Invalid}
}
