package source

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/replay"
	"github.com/tidemark-go/tidemark/stream"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trace.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

func collectReplay(t *testing.T, r *Replay) ([]Record, error) {
	t.Helper()
	return collect(context.Background(), r, nil)
}

func TestReplayEverythingInOrder(t *testing.T) {
	lines := []string{
		`{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`,
		`not json`,
		``,
		`   `,
		`{"symbol":"ETHUSDT","price":1812.34,"timestamp":"2025-05-08T06:12:38.4529+02:00"}`,
		`{"symbol":"BTCUSDT","price":"99190.48","timestamp":"2025-05-08T04:12:38.452Z"}`,
		`  {"timestamp":"2025-05-08T04:12:38.100Z", "price":1e5, "symbol":"BTCUSDT", "x":[1,{}]}  `,
		`{"symbol":"BTCUSDT","price":-1,"timestamp":"2025-05-08T04:12:38.552Z"}`,
		`[1,2]`,
		"{\"symbol\":\"BTCUSDT\",\"price\":99190.5,\"timestamp\":\"2025-05-08T04:12:38.652Z\"}\r", // CRLF
		`{"symbol":"BTCUSDT","price":99190.6,"timestamp":"2025-05-08T04:12:38.752Z"}`,             // no final newline
	}
	content := strings.Join(lines, "\n")
	path := writeFile(t, content)
	log, logs := newLogger()
	clock := &fakeClock{base: time.Date(2030, 1, 1, 0, 0, 0, 123_456_000, time.UTC), step: time.Second}
	r, err := NewReplay(path, ReplayConfig{Logger: log, Now: clock.Now})
	require.NoError(t, err)
	assert.Equal(t, "Replay "+path+" (as fast as possible)", r.Describe())
	recs, err := collectReplay(t, r)
	require.NoError(t, err)
	require.Len(t, recs, len(lines))

	dec := btc.NewDecoder()
	invalid := 0
	for i, rec := range recs {
		want := strings.TrimSuffix(lines[i], "\r")
		assert.Equal(t, []byte(want), rec.Value, "line %d untouched", i+1)
		assert.NotNil(t, rec.Value, "line %d: a blank line is an empty value, not a null one", i+1)
		p, err := dec.Decode([]byte(want))
		if err != nil {
			assert.Empty(t, rec.Symbol, "line %d", i+1)
			assert.Equal(t, clock.base.Add(time.Duration(invalid)*time.Second).Truncate(time.Millisecond), rec.Time, "line %d: the wall clock", i+1)
			invalid++
		} else {
			assert.Equal(t, p.Symbol, rec.Symbol, "line %d", i+1)
			assert.Equal(t, p.Time.UTC(), rec.Time, "line %d", i+1)
		}
	}
	assert.Equal(t, 6, invalid)
	assert.Equal(t, "ETHUSDT", recs[4].Symbol)
	assert.Equal(t, time.Date(2025, 5, 8, 4, 12, 38, 452_000_000, time.UTC), recs[4].Time)
	assert.Equal(t, ReplayStats{Lines: 11, Valid: 5, Invalid: 6}, r.Stats())
	// Logged once per kind: not-json (3 lines), price-type, bad-price, not-object.
	assert.Equal(t, 1, logs.count("WARN", "reason=\"not JSON\"", "line=2"), logs.String())
	assert.Equal(t, 4, logs.count("WARN"), logs.String())
}

func TestReplayTestdata(t *testing.T) {
	path := filepath.Join("..", "..", "testdata", "btc-price.jsonl")
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	want := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	r, err := NewReplay(path, ReplayConfig{Logger: quiet})
	require.NoError(t, err)
	recs, err := collectReplay(t, r)
	require.NoError(t, err)
	require.Len(t, recs, len(want))
	dec := btc.NewDecoder()
	valid := 0
	for i, rec := range recs {
		require.Equal(t, want[i], string(rec.Value), "line %d", i+1)
		if p, err := dec.Decode(rec.Value); err == nil {
			valid++
			require.Equal(t, p.Symbol, rec.Symbol)
			require.Equal(t, stream.TimeOf(rec.Time), p.Time)
		} else {
			require.Empty(t, rec.Symbol)
		}
	}
	st := r.Stats()
	assert.Equal(t, uint64(len(want)), st.Lines)
	assert.Equal(t, uint64(valid), st.Valid)
	assert.Equal(t, st.Lines-st.Valid, st.Invalid)
	t.Logf("testdata: %+v", st)
}

// trace returns n valid lines step ms apart from a fixed time.
func trace(n int, step stream.Time) []string {
	t0 := stream.TimeOf(time.Date(2025, 5, 8, 4, 12, 38, 0, time.UTC))
	var lines []string
	for i := range n {
		lines = append(lines, string(btc.AppendPrice(nil, btc.Price{Symbol: "BTCUSDT", Price: 99190 + float64(i), Time: t0 + stream.Time(i)*step})))
	}
	return lines
}

func TestReplayPacing(t *testing.T) {
	// 2 s of trace at 4x: about 0.5 s.
	lines := trace(21, 100)
	// An out-of-order earlier event and an invalid line go out at once.
	lines = append(lines[:11], append([]string{lines[2], "garbage"}, lines[11:]...)...)
	r, err := NewReplayReader(strings.NewReader(strings.Join(lines, "\n")+"\n"), "trace", ReplayConfig{Speed: 4, Logger: quiet})
	require.NoError(t, err)
	assert.Equal(t, "Replay trace (4x the trace's pace)", r.Describe())
	var at []time.Duration
	var began time.Time
	_, err = collect(context.Background(), r, func(Record) {
		if began.IsZero() {
			began = time.Now()
		}
		at = append(at, time.Since(began))
	})
	require.NoError(t, err)
	require.Len(t, at, 23)
	t.Logf("emitted at %v", at)
	total := at[len(at)-1]
	assert.GreaterOrEqual(t, total, 500*time.Millisecond)
	assert.Less(t, total, time.Second)
	for i, d := range at {
		k := i // index in the original trace
		switch {
		case i == 11 || i == 12: // the earlier event and the garbage: right after line 10
			assert.Less(t, d, 11*25*time.Millisecond, "record %d at once, before the next one is due", i)
			continue
		case i > 12:
			k = i - 2
		}
		due := time.Duration(k) * 25 * time.Millisecond
		assert.GreaterOrEqual(t, d, due, "record %d not before its time", i)
		assert.Less(t, d, due+150*time.Millisecond, "record %d on time", i)
	}
}

func TestReplayCancel(t *testing.T) {
	// An hour of trace in real time.
	lines := trace(2, 3_600_000)
	r, err := NewReplayReader(strings.NewReader(strings.Join(lines, "\n")), "trace", ReplayConfig{Speed: 1, Logger: quiet})
	require.NoError(t, err)
	run := start(t, r)
	waitFor(t, time.Second, "the first record", func() bool { return len(run.records()) == 1 })
	began := time.Now()
	require.ErrorIs(t, run.stop(t), context.Canceled)
	assert.Less(t, time.Since(began), 250*time.Millisecond)

	// A read that blocks (a pipe nobody writes to) does not hold Run up.
	pr, pw := io.Pipe()
	defer pw.Close()
	r, err = NewReplayReader(pr, "pipe", ReplayConfig{Logger: quiet})
	require.NoError(t, err)
	run = start(t, r)
	_, err = pw.Write([]byte(lines[0] + "\n"))
	require.NoError(t, err)
	waitFor(t, time.Second, "the line written", func() bool { return len(run.records()) == 1 })
	began = time.Now()
	require.ErrorIs(t, run.stop(t), context.Canceled)
	assert.Less(t, time.Since(began), 250*time.Millisecond)
}

func TestReplayLongLines(t *testing.T) {
	long := `{"symbol":"BTCUSDT","price":1,"timestamp":"2025-05-08T04:12:38.352Z","pad":"` + strings.Repeat("x", 200_000) + `"}`
	lines := []string{trace(1, 1)[0], long, "x"}
	r, err := NewReplayReader(strings.NewReader(strings.Join(lines, "\n")), "long", ReplayConfig{Logger: quiet})
	require.NoError(t, err)
	recs, err := collectReplay(t, r)
	require.NoError(t, err, "longer than bufio's buffer, within the limit")
	require.Len(t, recs, 3)
	assert.Equal(t, long, string(recs[1].Value))
	assert.Equal(t, "BTCUSDT", recs[1].Symbol)

	lines = []string{strings.Repeat("a", 100), "b", strings.Repeat("c", 101) + "\r", "d"}
	r, err = NewReplayReader(strings.NewReader(strings.Join(lines, "\r\n")), "long", ReplayConfig{MaxLineBytes: 100, Logger: quiet})
	require.NoError(t, err)
	recs, err = collectReplay(t, r)
	var tl *replay.LineError
	require.ErrorAs(t, err, &tl)
	require.ErrorIs(t, err, replay.ErrLineTooLong)
	assert.Equal(t, replay.LineError{Name: "long", Line: 3, Err: replay.ErrLineTooLong}, *tl)
	assert.Equal(t, "replay: long: line 3: replay: line too long", err.Error())
	require.Len(t, recs, 2, "the lines before it")
	assert.Equal(t, lines[0], string(recs[0].Value))

	// Far beyond the limit and bufio's buffer.
	r, err = NewReplayReader(strings.NewReader("ok\n"+strings.Repeat("z", 300_000)), "huge", ReplayConfig{MaxLineBytes: 1000, Logger: quiet})
	require.NoError(t, err)
	recs, err = collectReplay(t, r)
	require.ErrorAs(t, err, &tl)
	assert.Equal(t, uint64(2), tl.Line)
	assert.Len(t, recs, 1)
}

type failingReader struct{ data *strings.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	if f.data.Len() == 0 {
		return 0, errors.New("disk on fire")
	}
	return f.data.Read(p)
}

func TestReplayErrors(t *testing.T) {
	_, err := NewReplay(filepath.Join(t.TempDir(), "missing.jsonl"), ReplayConfig{})
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = NewReplay(t.TempDir(), ReplayConfig{})
	assert.ErrorContains(t, err, "is a directory")
	_, err = NewReplay("", ReplayConfig{})
	assert.Error(t, err)
	_, err = NewReplay(writeFile(t, "x\n"), ReplayConfig{Speed: -1})
	assert.Error(t, err)
	r, err := NewReplay("-", ReplayConfig{Speed: 1})
	require.NoError(t, err)
	assert.Equal(t, "Replay stdin (at the trace's pace)", r.Describe())

	// A read error ends Run after the complete lines; the cut line is not emitted.
	r, err = NewReplayReader(failingReader{strings.NewReader("a\nb\ncut")}, "disk", ReplayConfig{Logger: quiet})
	require.NoError(t, err)
	recs, err := collectReplay(t, r)
	assert.ErrorContains(t, err, "disk on fire")
	assert.ErrorContains(t, err, "line 3")
	assert.Len(t, recs, 2)

	// Poll returns what fits in its buffer; the rest waits for the next.
	r, err = NewReplayReader(strings.NewReader("a\nb\nc\n"), "x", ReplayConfig{Logger: quiet})
	require.NoError(t, err)
	buf := make([]stream.Record[[]byte], 1)
	n, err := r.Poll(context.Background(), buf)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, "a", string(buf[0].Event.Value))
	n, err = r.Poll(context.Background(), buf)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, "b", string(buf[0].Event.Value))
	require.NoError(t, r.Close())
}
