package source

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/stream"
)

// logBuf captures slog output, safe for concurrent use.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// count returns the number of log lines at level (WARN, INFO) that contain
// every one of subs.
func (l *logBuf) count(level string, subs ...string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		if !strings.Contains(line, "level="+level) {
			continue
		}
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			n++
		}
	}
	return n
}

func newLogger() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Record is a record a source returned, as the tests look at it.
type Record struct {
	Symbol string    // the event key
	Value  []byte    // the event value
	Time   time.Time // the event time, UTC
}

func recordOf(r stream.Record[[]byte]) Record {
	return Record{Symbol: r.Event.Key, Value: r.Event.Value, Time: r.Event.Time.UTC()}
}

// collect polls src until it ends (nil) or fails (its error), with
// buffers of 1 to 16 records, and returns what it returned; each is
// passed to seen first, when seen is not nil.
func collect(ctx context.Context, src stream.Source[[]byte], seen func(Record)) ([]Record, error) {
	var recs []Record
	for i := 0; ; i++ {
		buf := make([]stream.Record[[]byte], 1+i%16)
		n, err := src.Poll(ctx, buf)
		for _, r := range buf[:n] {
			rec := recordOf(r)
			if seen != nil {
				seen(rec)
			}
			recs = append(recs, rec)
		}
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
	}
}

// runner polls a source in a goroutine and collects its records.
type runner struct {
	mu     sync.Mutex
	recs   []Record
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func start(t *testing.T, src stream.Source[[]byte]) *runner {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{cancel: cancel, done: make(chan error, 1)}
	go func() {
		_, err := collect(ctx, src, func(rec Record) {
			r.mu.Lock()
			r.recs = append(r.recs, rec)
			r.mu.Unlock()
		})
		r.done <- err
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *runner) records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.recs...)
}

// stop cancels the run and returns Poll's error.
func (r *runner) stop(t *testing.T) error {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(5 * time.Second):
			t.Fatal("Poll did not return within 5s of cancellation")
		}
	})
	return r.err
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out waiting for "+what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fakeClock returns base, base+step, base+2*step... on successive calls.
type fakeClock struct {
	mu    sync.Mutex
	base  time.Time
	step  time.Duration
	calls int
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.base.Add(time.Duration(c.calls) * c.step)
	c.calls++
	return t
}
