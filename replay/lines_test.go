package replay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/replay"
	"github.com/tidemark-go/tidemark/stream"
)

// decodeKTV decodes "key time value" lines: a key, an event time in
// milliseconds, and the rest as the value.
func decodeKTV(line []byte) (stream.Event[string], error) {
	f := strings.SplitN(string(line), " ", 3)
	if len(f) != 3 || f[0] == "" {
		return stream.Event[string]{}, fmt.Errorf("not key time value: %q", line)
	}
	t, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return stream.Event[string]{}, fmt.Errorf("time: %w", err)
	}
	return stream.Event[string]{Key: f[0], Time: stream.Time(t), Value: f[2]}, nil
}

// passRaw replays an invalid line as an event with an empty key, time -1
// and the line as the value.
func passRaw(line []byte, _ uint64, _ error) (stream.Event[string], bool) {
	return stream.Event[string]{Time: -1, Value: string(line)}, true
}

// drain polls src to its end with buffers of random sizes.
func drain[T any](t *testing.T, src stream.Source[T], r *rand.Rand) ([]stream.Event[T], error) {
	t.Helper()
	var out []stream.Event[T]
	for {
		buf := make([]stream.Record[T], 1+r.IntN(8))
		n, err := src.Poll(context.Background(), buf)
		require.LessOrEqual(t, n, len(buf), "n")
		for _, rec := range buf[:n] {
			require.Zero(t, rec.Partition, "partition 0")
			out = append(out, rec.Event)
		}
		if err != nil {
			require.Zero(t, n, "no record with an error")
			return out, err
		}
		require.NotZero(t, n, "Poll returns at least one record or an error")
	}
}

func seeded(t *testing.T) *rand.Rand {
	seed := rand.Uint64()
	if v := os.Getenv("TIDEMARK_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "TIDEMARK_SEED")
	}
	t.Logf("seed %d (TIDEMARK_SEED repeats it)", seed)
	return rand.New(rand.NewPCG(seed, 3))
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trace.txt")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644), "write the trace")
	return path
}

// TestLinesInOrder: every line, in order, decoded or handed to the
// invalid-line handler; terminators "\n" and "\r\n"; a last line without
// one; blank lines are lines.
func TestLinesInOrder(t *testing.T) {
	r := seeded(t)
	lines := []string{"a 1 one", "not a record", "", "b 3 three\r", "a 2 two", "\r", "c x bad time", "a 4 four four"}
	path := writeFile(t, strings.Join(lines, "\n"))
	src, err := replay.NewLines(path, decodeKTV, replay.WithInvalidLines(passRaw))
	require.NoError(t, err, "NewLines")
	got, err := drain[string](t, src, r)
	require.ErrorIs(t, err, io.EOF, "the end")
	want := []stream.Event[string]{
		{Key: "a", Time: 1, Value: "one"}, {Time: -1, Value: "not a record"}, {Time: -1, Value: ""},
		{Key: "b", Time: 3, Value: "three"}, {Key: "a", Time: 2, Value: "two"}, {Time: -1, Value: ""},
		{Time: -1, Value: "c x bad time"}, {Key: "a", Time: 4, Value: "four four"},
	}
	assert.Equal(t, want, got, "every line in order")
	assert.Equal(t, replay.Stats{Lines: 8, Decoded: 4, Invalid: 4}, src.Stats(), "stats")
	n, err := src.Poll(context.Background(), make([]stream.Record[string], 4))
	assert.Zero(t, n, "after the end")
	assert.ErrorIs(t, err, io.EOF, "the end again")
	assert.NoError(t, src.Close(), "Close")

	// Without a handler, the first invalid line ends the replay.
	src, err = replay.NewLines(path, decodeKTV)
	require.NoError(t, err, "NewLines")
	got, err = drain[string](t, src, r)
	var le *replay.LineError
	require.ErrorAs(t, err, &le, "a LineError: %v", err)
	assert.Equal(t, uint64(2), le.Line, "the line")
	assert.Equal(t, path, le.Name, "the file")
	assert.EqualError(t, err, "replay: "+path+`: line 2: time: strconv.ParseInt: parsing "a": invalid syntax`, "message")
	assert.Equal(t, want[:1], got, "the lines before it")
	_, again := src.Poll(context.Background(), make([]stream.Record[string], 4))
	assert.Equal(t, err, again, "the same error again")

	// A handler that skips.
	src, err = replay.NewLines(path, decodeKTV, replay.WithInvalidLines(func([]byte, uint64, error) (stream.Event[string], bool) {
		return stream.Event[string]{}, false
	}))
	require.NoError(t, err, "NewLines")
	got, err = drain[string](t, src, r)
	require.ErrorIs(t, err, io.EOF, "the end")
	assert.Len(t, got, 4, "the valid lines")
	assert.Equal(t, replay.Stats{Lines: 8, Decoded: 4, Invalid: 4}, src.Stats(), "skipped lines count as invalid")
}

// randomReader returns at most a random number of bytes per Read.
type randomReader struct {
	r   *rand.Rand
	src io.Reader
}

func (rr randomReader) Read(p []byte) (int, error) {
	return rr.src.Read(p[:min(len(p), 1+rr.r.IntN(200_000))])
}

// TestLinesRandom: random files, read in random pieces, give the lines that
// splitting the file gives.
func TestLinesRandom(t *testing.T) {
	r := seeded(t)
	for round := range 30 {
		var b strings.Builder
		var want []string
		nl := r.IntN(300)
		for i := range nl {
			n := r.IntN(40)
			if r.IntN(50) == 0 {
				n = r.IntN(150_000) // across reads
			}
			line := fmt.Sprintf("k %d ", i) + strings.Repeat(string(rune('a'+i%26)), n)
			want = append(want, line)
			b.WriteString(line)
			switch {
			case i == nl-1 && r.IntN(2) == 0: // no final terminator
			case r.IntN(3) == 0:
				b.WriteString("\r\n")
			default:
				b.WriteString("\n")
			}
		}
		reads := rand.New(rand.NewPCG(r.Uint64(), 4)) // the reader goroutine's own
		src, err := replay.NewReader(randomReader{reads, strings.NewReader(b.String())}, "random", decodeKTV)
		require.NoError(t, err, "NewReader")
		got, err := drain[string](t, src, r)
		require.ErrorIs(t, err, io.EOF, "round %d", round)
		require.Len(t, got, len(want), "round %d", round)
		for i, e := range got {
			require.Equal(t, want[i], e.Key+" "+strconv.FormatInt(int64(e.Time), 10)+" "+e.Value, "round %d line %d", round, i+1)
		}
	}
}

// TestLinesLongLines: lines longer than a read are whole; a line longer than
// the limit ends the replay after the lines before it, without holding more
// than the limit in memory.
func TestLinesLongLines(t *testing.T) {
	r := seeded(t)
	long := "a 1 " + strings.Repeat("x", 300_000)
	src, err := replay.NewReader(strings.NewReader("a 0 first\n"+long+"\na 2 last"), "long", decodeKTV)
	require.NoError(t, err, "NewReader")
	got, err := drain[string](t, src, r)
	require.ErrorIs(t, err, io.EOF, "the end")
	require.Len(t, got, 3, "three lines")
	assert.Equal(t, long[4:], got[1].Value, "the long line whole")

	for _, tc := range []struct {
		name, content string
		limit         int
		n             int    // lines before the error
		line          uint64 // the too-long line; 0: none
	}{
		{"at the limit", "a 1 " + strings.Repeat("x", 96) + "\r\na 2 b", 100, 2, 0},
		{"one over", "a 1 x\na 1 " + strings.Repeat("x", 97) + "\na 3 c\n", 100, 1, 2},
		{"one over with CRLF", "a 1 " + strings.Repeat("x", 97) + "\r\n", 100, 0, 1},
		{"a last line over", "a 1 x\n" + strings.Repeat("y", 101), 100, 1, 2},
		{"far over, across reads", "a 1 x\na 2 y\n" + strings.Repeat("z", 1<<20), 1000, 2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := replay.NewReader(strings.NewReader(tc.content), "long", decodeKTV, replay.WithMaxLineBytes(tc.limit),
				replay.WithInvalidLines(passRaw))
			require.NoError(t, err, "NewReader")
			got, err := drain[string](t, src, r)
			assert.Len(t, got, tc.n, "the lines before")
			if tc.line == 0 {
				require.ErrorIs(t, err, io.EOF, "no line too long")
				return
			}
			require.ErrorIs(t, err, replay.ErrLineTooLong, "too long")
			var le *replay.LineError
			require.ErrorAs(t, err, &le, "a LineError")
			assert.Equal(t, tc.line, le.Line, "its number")
		})
	}
}

// fakeClock is a Clock whose Sleep moves its time on at once.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestLinesPacing: at speed f, an event later than all before it is returned
// (its time - the first's) / f after the first; earlier events, and invalid
// lines, at once; Poll returns what is due and waits only when nothing is.
// Measured on a fake clock.
func TestLinesPacing(t *testing.T) {
	// Times in ms; "x" is invalid.
	lines := []string{"a 1000 0", "a 1100 1", "a 1050 2 (disorder)", "x", "a 1100 3 (duplicate time)", "a 1400 4", "a 1401 5", "a 3000 6"}
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: start}
	src, err := replay.NewReader(strings.NewReader(strings.Join(lines, "\n")), "paced", decodeKTV, replay.WithSpeed(2),
		replay.WithClock(clock), replay.WithInvalidLines(passRaw))
	require.NoError(t, err, "NewReader")
	type poll struct {
		at     time.Duration // the clock when Poll returned, from the start
		values []string
	}
	var polls []poll
	ctx := context.Background()
	for {
		buf := make([]stream.Record[string], 10)
		n, err := src.Poll(ctx, buf)
		if err != nil {
			require.ErrorIs(t, err, io.EOF, "the end")
			break
		}
		p := poll{at: clock.Now().Sub(start)}
		for _, rec := range buf[:n] {
			p.values = append(p.values, strings.Fields(rec.Event.Value)[0])
		}
		polls = append(polls, p)
	}
	assert.Equal(t, []poll{
		{0, []string{"0"}}, // the first at once; the next is not due
		{50 * time.Millisecond, []string{"1", "2", "x", "3"}}, // 100 ms of trace at 2x; the disorder, the invalid line and the duplicate with it
		{200 * time.Millisecond, []string{"4"}},
		{200*time.Millisecond + 500*time.Microsecond, []string{"5"}},
		{time.Second, []string{"6"}},
	}, polls, "when Poll returned what")
	assert.Equal(t, []time.Duration{50 * time.Millisecond, 150 * time.Millisecond, 500 * time.Microsecond, 799500 * time.Microsecond},
		clock.sleeps, "the waits")

	// Time lost while nobody polled is caught up: what is due comes at once.
	clock = &fakeClock{now: start}
	src, err = replay.NewReader(strings.NewReader(strings.Join(lines, "\n")), "paced", decodeKTV, replay.WithSpeed(2),
		replay.WithClock(clock), replay.WithInvalidLines(passRaw))
	require.NoError(t, err, "NewReader")
	buf := make([]stream.Record[string], 10)
	n, err := src.Poll(ctx, buf)
	require.NoError(t, err, "Poll")
	require.Equal(t, 1, n, "the first")
	clock.advance(300 * time.Millisecond)
	waitDue(t, src, buf, 6) // every event up to 1401 ms is due
	assert.Empty(t, clock.sleeps, "no wait")

	// Speed 0: no wait at all.
	clock = &fakeClock{now: start}
	src, err = replay.NewReader(strings.NewReader(strings.Join(lines, "\n")), "unpaced", decodeKTV, replay.WithClock(clock),
		replay.WithInvalidLines(passRaw))
	require.NoError(t, err, "NewReader")
	got, err := drain[string](t, src, rand.New(rand.NewPCG(1, 1)))
	require.ErrorIs(t, err, io.EOF, "the end")
	assert.Len(t, got, len(lines), "everything")
	assert.Empty(t, clock.sleeps, "no wait")
}

// waitDue polls until n events came without a wait (the reader goroutine
// may not have read every line at the first Poll).
func waitDue(t *testing.T, src *replay.Lines[string], buf []stream.Record[string], n int) {
	t.Helper()
	got := 0
	for got < n {
		m, err := src.Poll(context.Background(), buf)
		require.NoError(t, err, "Poll")
		got += m
	}
	assert.Equal(t, n, got, "events due")
}

// TestLinesWallClock: paced by the wall clock at 4x, 2 s of trace take about
// 0.5 s.
func TestLinesWallClock(t *testing.T) {
	var lines []string
	for i := range 21 {
		lines = append(lines, fmt.Sprintf("a %d v", 1000+100*i))
	}
	src, err := replay.NewReader(strings.NewReader(strings.Join(lines, "\n")), "paced", decodeKTV, replay.WithSpeed(4))
	require.NoError(t, err, "NewReader")
	began := time.Now()
	var at []time.Duration
	buf := make([]stream.Record[string], 16)
	for {
		n, err := src.Poll(context.Background(), buf)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "Poll")
		for range n {
			at = append(at, time.Since(began))
		}
	}
	require.Len(t, at, 21, "every line")
	for i, d := range at {
		due := time.Duration(i) * 25 * time.Millisecond
		assert.GreaterOrEqual(t, d, due, "line %d not before its time", i+1)
		assert.Less(t, d, due+150*time.Millisecond, "line %d on time", i+1)
	}
}

// TestLinesCancel: Poll returns when its context is done, while it waits
// for the pace or for a read that blocks.
func TestLinesCancel(t *testing.T) {
	src, err := replay.NewReader(strings.NewReader("a 0 x\na 3600000 y\n"), "hour", decodeKTV, replay.WithSpeed(1))
	require.NoError(t, err, "NewReader")
	buf := make([]stream.Record[string], 4)
	n, err := src.Poll(context.Background(), buf)
	require.NoError(t, err, "the first")
	require.Equal(t, 1, n, "the first")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err = src.Poll(ctx, buf)
	require.ErrorIs(t, err, context.DeadlineExceeded, "waiting for the pace")
	assert.Less(t, time.Since(began), time.Second, "at once")

	pr, pw := io.Pipe()
	defer pw.Close()
	src, err = replay.NewReader(pr, "pipe", decodeKTV)
	require.NoError(t, err, "NewReader")
	go func() { _, _ = pw.Write([]byte("a 1 x\n")) }() // once the replay reads
	n, err = src.Poll(context.Background(), buf)
	require.NoError(t, err, "the line written")
	require.Equal(t, 1, n, "the line written")
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	began = time.Now()
	_, err = src.Poll(ctx, buf)
	require.ErrorIs(t, err, context.DeadlineExceeded, "waiting for a read")
	assert.Less(t, time.Since(began), time.Second, "at once")
	require.NoError(t, src.Close(), "Close")
	_, err = src.Poll(context.Background(), buf)
	assert.ErrorIs(t, err, replay.ErrClosed, "closed")
}

type failingReader struct{ data *strings.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	if f.data.Len() == 0 {
		return 0, errors.New("disk on fire")
	}
	return f.data.Read(p)
}

// TestLinesErrors: invalid options and arguments, files that cannot be
// read, and read errors.
func TestLinesErrors(t *testing.T) {
	for name, opt := range map[string]replay.Option{
		"negative speed": replay.WithSpeed(-1), "NaN speed": replay.WithSpeed(nanValue()),
		"zero line": replay.WithMaxLineBytes(0), "nil clock": replay.WithClock(nil),
		"nil handler": replay.WithInvalidLines[string](nil),
	} {
		_, err := replay.NewReader(strings.NewReader(""), "x", decodeKTV, opt)
		assert.ErrorIs(t, err, replay.ErrInvalidOption, name)
		assert.ErrorIs(t, err, stream.ErrInvalidOption, "%s: matches stream's", name)
	}
	_, err := replay.NewReader(strings.NewReader(""), "x", decodeKTV, replay.WithInvalidLines(func([]byte, uint64, error) (stream.Event[int], bool) {
		return stream.Event[int]{}, false
	}))
	assert.ErrorIs(t, err, replay.ErrInvalidOption, "a handler of another type")
	assert.ErrorContains(t, err, "stream.Event[int]", "names its type")
	assert.ErrorContains(t, err, "stream.Event[string]", "and the replay's")
	_, err = replay.NewReader[string](nil, "x", decodeKTV)
	assert.ErrorIs(t, err, replay.ErrInvalidOption, "nil reader")
	_, err = replay.NewReader[string](strings.NewReader(""), "x", nil)
	assert.ErrorIs(t, err, replay.ErrInvalidOption, "nil decode")
	_, err = replay.NewLines(filepath.Join(t.TempDir(), "missing"), decodeKTV)
	assert.ErrorIs(t, err, os.ErrNotExist, "a missing file")
	_, err = replay.NewLines(t.TempDir(), decodeKTV)
	assert.ErrorContains(t, err, "is a directory", "a directory")
	_, err = replay.NewLines("", decodeKTV)
	assert.ErrorIs(t, err, replay.ErrInvalidOption, "no file")

	src, err := replay.NewReader(failingReader{strings.NewReader("a 1 x\na 2 y\na 3 cut")}, "disk", decodeKTV)
	require.NoError(t, err, "NewReader")
	got, err := drain[string](t, src, rand.New(rand.NewPCG(1, 1)))
	assert.ErrorContains(t, err, "disk on fire", "the read error")
	var le *replay.LineError
	require.ErrorAs(t, err, &le, "a LineError")
	assert.Equal(t, uint64(3), le.Line, "the line it cut")
	assert.Len(t, got, 2, "the complete lines; the cut one is not replayed")
}

func nanValue() float64 {
	var zero float64
	return zero / zero
}

// TestLinesEmpty: an empty input has no line.
func TestLinesEmpty(t *testing.T) {
	src, err := replay.NewReader(bytes.NewReader(nil), "empty", decodeKTV)
	require.NoError(t, err, "NewReader")
	got, err := drain[string](t, src, rand.New(rand.NewPCG(1, 1)))
	assert.ErrorIs(t, err, io.EOF, "the end")
	assert.Empty(t, got, "no line")
	assert.Equal(t, replay.Stats{}, src.Stats(), "stats")
}

// TestLinesTerminators: only one "\r" before "\n" belongs to the
// terminator; a blank line is a line; a last line without terminator too.
func TestLinesTerminators(t *testing.T) {
	any := func(line []byte) (stream.Event[string], error) { return stream.Event[string]{Value: string(line)}, nil }
	src, err := replay.NewReader(strings.NewReader("a\r\n\n\r\r\nb\rc\nlast"), "terminators", any)
	require.NoError(t, err, "NewReader")
	got, err := drain[string](t, src, rand.New(rand.NewPCG(1, 1)))
	require.ErrorIs(t, err, io.EOF, "the end")
	var values []string
	for _, e := range got {
		values = append(values, e.Value)
	}
	assert.Equal(t, []string{"a", "", "\r", "b\rc", "last"}, values, "the lines")
}
