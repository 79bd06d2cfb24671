package dashboard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btctest"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
	"github.com/tidemark-go/tidemark/zscore"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testTrace returns a btc-price trace of n events on three symbols, in
// arrival order: out of order within the lateness, with duplicates, late
// events and invalid lines, 1 to 150 ms apart.
func testTrace(seed uint64, n int, lateness stream.Time) []byte {
	lines := btctest.Trace(rand.New(rand.NewPCG(seed, 7)), n, lateness,
		[]string{`not json`, `{"symbol":"BTCUSDT","price":-1,"timestamp":"2025-05-08T04:12:38.352Z"}`})
	return []byte(strings.Join(lines, "\n") + "\n")
}

// point is one record of a series: its time and values in the layout of
// the frames (see width).
type point struct {
	t stream.Time
	v []float64
}

func (p point) String() string { return fmt.Sprintf("%d%v", p.t, p.v) }

// model is what the records are, or what a browser knows: per symbol, the
// five series.
type model map[string]*[numKinds][]point

func (m model) series(sym string) *[numKinds][]point {
	s := m[sym]
	if s == nil {
		s = new([numKinds][]point)
		m[sym] = s
	}
	return s
}

func (m model) count() int {
	n := 0
	for _, s := range m {
		for k := range s {
			n += len(s[k])
		}
	}
	return n
}

// offlineRecords runs the offline mode over in and returns its directory
// and the records of the trace, decoded with the btc package's own codecs:
// the btc-price lines (valid ones, in arrival order) and the four derived
// files.
func offlineRecords(t testing.TB, in []byte, cfg btc.Config) (string, model) {
	t.Helper()
	dir := t.TempDir()
	_, err := btc.Offline(context.Background(), bytes.NewReader(in), dir, cfg, quiet)
	require.NoError(t, err)
	m := model{}
	n := len(cfg.Windows)
	dec := btc.NewDecoder()
	for line := range bytes.Lines(in) {
		p, err := dec.Decode(bytes.TrimRight(line, "\n"))
		if err == nil {
			s := m.series(p.Symbol)
			s[kPrice] = append(s[kPrice], point{p.Time, []float64{p.Price}})
		}
	}
	mc, zc := btc.NewMovingCodec(cfg), btc.NewZScoreCodec(cfg)
	for _, k := range []btc.Kind{btc.Moving, btc.ZScore, btc.Higher, btc.Lower} {
		b, err := os.ReadFile(filepath.Join(dir, k.FileName()))
		require.NoError(t, err)
		for line := range bytes.Lines(b) {
			line = bytes.TrimRight(line, "\n")
			switch k {
			case btc.Moving:
				e, err := mc.Decode(nil, line, 0)
				require.NoError(t, err)
				v := make([]float64, 3*n)
				for i, st := range e.Value {
					v[i], v[n+i], v[2*n+i] = st.Mean, st.Std, float64(st.Count)
				}
				s := m.series(e.Key)
				s[kMoving] = append(s[kMoving], point{e.Time, v})
			case btc.ZScore:
				e, err := zc.Decode(nil, line, 0)
				require.NoError(t, err)
				v := make([]float64, 1+n)
				v[0] = e.Value.Price
				for i, sc := range e.Value.Scores {
					v[1+i] = math.NaN()
					if sc.OK {
						v[1+i] = sc.Z
					}
				}
				s := m.series(e.Key)
				s[kZScore] = append(s[kZScore], point{e.Time, v})
			default:
				var rec map[string]any
				require.NoError(t, json.Unmarshal(line, &rec))
				tm, err := stream.ParseTime([]byte(rec["timestamp"].(string)))
				require.NoError(t, err)
				kk, field := kHigher, "higher_window"
				if k == btc.Lower {
					kk, field = kLower, "lower_window"
				}
				s := m.series(rec["symbol"].(string))
				s[kk] = append(s[kk], point{tm, []float64{rec[field].(float64)}})
			}
		}
	}
	return dir, m
}

// feed adds the records of m to h, one goroutine per series kind (the hub
// takes records from any goroutine), each in the records' order.
func feed(h *Hub, m model, n int) {
	var wg sync.WaitGroup
	for k := range numKinds {
		wg.Go(func() {
			for _, sym := range sortedNames(m) {
				for _, p := range m[sym][k] {
					addPoint(h, k, sym, p, n)
				}
			}
		})
	}
	wg.Wait()
}

func addPoint(h *Hub, k kind, sym string, p point, n int) {
	switch k {
	case kPrice:
		h.AddPrice(sym, p.t, p.v[0])
	case kMoving:
		h.AddMoving(sym, p.t, statsOf(p.v, n))
	case kZScore:
		h.AddZScore(sym, p.t, p.v[0], scoresOf(p.v[1:]))
	case kHigher:
		h.AddLookahead(btc.Higher, sym, p.t, p.v[0])
	case kLower:
		h.AddLookahead(btc.Lower, sym, p.t, p.v[0])
	}
}

// ------------------------------------------------------------ an SSE client

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	name, id string
	data     []byte
}

// frameJSON is a snapshot or delta as sent.
type frameJSON struct {
	Type      string                                `json:"type"`
	Seq       uint64                                `json:"seq"`
	From      uint64                                `json:"from"`
	To        uint64                                `json:"to"`
	Windows   []string                              `json:"windows"`
	RetainMs  int64                                 `json:"retainMs"`
	MaxPoints int                                   `json:"maxPoints"`
	Symbols   map[string]map[string]json.RawMessage `json:"symbols"`
	Stats     []json.RawMessage                     `json:"stats"`
}

type seriesJSON struct {
	Newest int64        `json:"newest"`
	T      []int64      `json:"t"`
	C      [][]*float64 `json:"c"`
}

// browser mirrors what the page's script does with the events: a snapshot
// replaces the model, a delta appends to it and applies the same bounds.
type browser struct {
	m         model
	newest    map[string]*[numKinds]stream.Time
	seq       uint64
	retain    stream.Time
	maxPoints int
	snapshots int
	frames    int
	gaps      int
	stats     []json.RawMessage // the stats samples
}

func decodeSeries(t testing.TB, raw json.RawMessage) ([]point, stream.Time) {
	var s seriesJSON
	require.NoError(t, json.Unmarshal(raw, &s))
	pts := make([]point, len(s.T))
	for i, tm := range s.T {
		v := make([]float64, len(s.C))
		for c := range s.C {
			require.Len(t, s.C[c], len(s.T), "column %d", c)
			v[c] = math.NaN()
			if s.C[c][i] != nil {
				v[c] = *s.C[c][i]
			}
		}
		pts[i] = point{stream.Time(tm), v}
	}
	return pts, stream.Time(s.Newest)
}

func kindOf(t testing.TB, name string) kind {
	i := slices.Index(kindNames[:], name)
	require.GreaterOrEqual(t, i, 0, "series %q", name)
	return kind(i)
}

func (b *browser) apply(t testing.TB, ev sseEvent) {
	var f frameJSON
	require.NoError(t, json.Unmarshal(ev.data, &f), "event %s", ev.name)
	switch ev.name {
	case "snapshot":
		require.Equal(t, "snapshot", f.Type)
		b.m, b.newest = model{}, map[string]*[numKinds]stream.Time{}
		b.seq, b.retain, b.maxPoints = f.Seq, stream.Time(f.RetainMs), f.MaxPoints
		b.stats = f.Stats
		require.Equal(t, ev.id, strconv.FormatUint(f.Seq, 10))
		for sym, ss := range f.Symbols {
			s := b.m.series(sym)
			nw := new([numKinds]stream.Time)
			b.newest[sym] = nw
			for name, raw := range ss {
				k := kindOf(t, name)
				s[k], nw[k] = decodeSeries(t, raw)
			}
		}
		b.snapshots++
	case "delta":
		require.Equal(t, "delta", f.Type)
		require.Equal(t, ev.id, strconv.FormatUint(f.To, 10))
		if b.m == nil || f.From != b.seq {
			b.gaps++
			return
		}
		for sym, ss := range f.Symbols {
			s := b.m.series(sym)
			nw := b.newest[sym]
			if nw == nil {
				nw = &[numKinds]stream.Time{stream.MinTime, stream.MinTime, stream.MinTime, stream.MinTime, stream.MinTime}
				b.newest[sym] = nw
			}
			for name, raw := range ss {
				k := kindOf(t, name)
				pts, newest := decodeSeries(t, raw)
				s[k] = append(s[k], pts...)
				nw[k] = max(nw[k], newest)
				drop := 0
				if b.maxPoints > 0 {
					drop = max(0, len(s[k])-b.maxPoints)
				}
				if b.retain > 0 {
					for drop < len(s[k]) && s[k][drop].t < nw[k]-b.retain {
						drop++
					}
				}
				s[k] = slices.Clone(s[k][drop:])
			}
		}
		b.seq = f.To
		b.stats = append(b.stats, f.Stats...)
		b.frames++
	default:
		t.Fatalf("unexpected event %q", ev.name)
	}
}

// sseClient reads the event stream at url, applying each event to a
// browser model, and reports the model's sequence number on seqs.
type sseClient struct {
	mu   sync.Mutex
	b    browser
	resp *http.Response
	done chan struct{}
	err  error
	// pause, if set, is slept before reading each event (a slow reader).
	pause time.Duration
}

func dialSSE(t testing.TB, url string, pause time.Duration) *sseClient {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	c := &sseClient{resp: resp, done: make(chan struct{}), pause: pause}
	go c.read(t)
	t.Cleanup(func() {
		resp.Body.Close()
		<-c.done
	})
	return c
}

// chanReader reads what a goroutine receives from the network: an
// attentive browser takes every byte at once, however slowly it then
// parses them.
type chanReader struct {
	ch   chan []byte
	cur  []byte
	err  error
	errc chan error
}

func newChanReader(r io.Reader) *chanReader {
	c := &chanReader{ch: make(chan []byte, 1<<16), errc: make(chan error, 1)}
	go func() {
		for {
			b := make([]byte, 64<<10)
			n, err := r.Read(b)
			if n > 0 {
				c.ch <- b[:n]
			}
			if err != nil {
				c.errc <- err
				close(c.ch)
				return
			}
		}
	}()
	return c
}

func (c *chanReader) Read(p []byte) (int, error) {
	for len(c.cur) == 0 {
		b, ok := <-c.ch
		if !ok {
			if c.err == nil {
				c.err = <-c.errc
			}
			return 0, c.err
		}
		c.cur = b
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	return n, nil
}

func (c *sseClient) read(t testing.TB) {
	defer close(c.done)
	var body io.Reader = c.resp.Body
	if c.pause == 0 {
		body = newChanReader(body)
	}
	r := bufio.NewReaderSize(body, 1<<16)
	var ev sseEvent
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		line = bytes.TrimRight(line, "\n")
		switch {
		case len(line) == 0:
			if ev.name != "" {
				if c.pause > 0 {
					time.Sleep(c.pause)
				}
				c.mu.Lock()
				c.b.apply(t, ev)
				c.mu.Unlock()
			}
			ev = sseEvent{}
		case line[0] == ':':
		default:
			field, value, _ := strings.Cut(string(line), ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				ev.name = value
			case "id":
				ev.id = value
			case "data":
				ev.data = append(ev.data, value...)
			}
		}
	}
}

// waitSeq waits until the client's model is at sequence seq.
func (c *sseClient) waitSeq(t testing.TB, seq uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c.mu.Lock()
		got := c.b.seq
		err := c.err
		c.mu.Unlock()
		if got == seq {
			return
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("SSE client at seq %d, want %d (error %v)", got, seq, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *sseClient) model() model {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.m
}

// requireSameModel checks that got holds exactly want's records, series by
// series, record by record (NaN equals NaN: a null).
func requireSameModel(t testing.TB, want, got model) {
	t.Helper()
	require.ElementsMatch(t, sortedNames(want), sortedNames(nonEmpty(got)), "symbols")
	for _, sym := range sortedNames(want) {
		for k := range numKinds {
			w, g := want[sym][k], got[sym][k]
			require.Equal(t, len(w), len(g), "%s %s: records", sym, kindNames[k])
			for i := range w {
				if !samePoint(w[i], g[i]) {
					t.Fatalf("%s %s record %d: got %v, want %v", sym, kindNames[k], i, g[i], w[i])
				}
			}
		}
	}
}

func nonEmpty(m model) model {
	out := model{}
	for sym, s := range m {
		for k := range s {
			if len(s[k]) > 0 {
				out[sym] = s
			}
		}
	}
	return out
}

func samePoint(a, b point) bool {
	if a.t != b.t || len(a.v) != len(b.v) {
		return false
	}
	for i := range a.v {
		if a.v[i] != b.v[i] && !(math.IsNaN(a.v[i]) && math.IsNaN(b.v[i])) {
			return false
		}
	}
	return true
}

func totalRecords(m model) uint64 { return uint64(m.count()) }

// statsOf and scoresOf turn a point's values back into records.
func statsOf(v []float64, n int) []window.Statistics {
	out := make([]window.Statistics, n)
	for i := range out {
		out[i] = window.Statistics{Mean: v[i], Std: v[n+i], Count: int64(v[2*n+i]), Variance: math.NaN()}
	}
	return out
}

func scoresOf(z []float64) []zscore.Score {
	out := make([]zscore.Score, len(z))
	for i, v := range z {
		if !math.IsNaN(v) {
			out[i] = zscore.Score{Z: v, OK: true}
		}
	}
	return out
}
