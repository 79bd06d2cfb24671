package btc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// trace is a generated input: the lines in arrival order.
type trace struct {
	lines []string
}

type genEvent struct {
	key   string
	t     stream.Time
	price float64
}

// spell writes t in one of many RFC 3339 spellings of the same millisecond
// (sub-millisecond digits are random: they are truncated on reading).
func spell(r *rand.Rand, t stream.Time) string {
	tm := t.UTC()
	off := []int{0, 0, 2 * 3600, -(4*3600 + 30*60), 5*3600 + 45*60}[r.IntN(5)]
	local := tm.In(time.FixedZone("", off))
	s := local.Format("2006-01-02T15:04:05")
	ms := int(t % 1000)
	switch r.IntN(4) {
	case 0:
		if ms != 0 {
			s += fmt.Sprintf(".%03d", ms)
			break
		}
		// no fraction at all
	case 1:
		s += fmt.Sprintf(".%03d%d", ms, r.IntN(10))
	case 2:
		s += fmt.Sprintf(".%03d%06d", ms, r.IntN(1000000))
	default:
		s += fmt.Sprintf(".%03d", ms)
	}
	if off == 0 {
		return s + []string{"Z", "+00:00", "z"}[r.IntN(3)]
	}
	return s + local.Format("-07:00")
}

func priceLine(r *rand.Rand, e genEvent) string {
	p := strconv.FormatFloat(e.price, 'f', -1, 64)
	switch r.IntN(3) {
	case 0:
		return fmt.Sprintf(`{"symbol":%q,"price":%s,"timestamp":%q}`, e.key, p, spell(r, e.t))
	case 1:
		return fmt.Sprintf(`{"timestamp": %q, "price": %s, "source": {"venue": "binance"}, "symbol": %q}`, spell(r, e.t), p, e.key)
	default:
		return fmt.Sprintf(` {"price":%s,"symbol":%q,"timestamp":%q,"seq":[1,2,3]} `, p, e.key, spell(r, e.t))
	}
}

var invalidLines = []string{
	`not json`, `[1,2,3]`, `{"symbol":"BTCUSDT","price":"1.0","timestamp":"2025-05-08T04:12:38.352Z"}`,
	`{"symbol":"BTCUSDT","price":-3,"timestamp":"2025-05-08T04:12:38.352Z"}`,
	`{"symbol":"BTCUSDT","price":3,"timestamp":"2025-05-08T04:12:38.352"}`,
	`{"price":3,"timestamp":"2025-05-08T04:12:38.352Z"}`, `{"symbol":"BTCUSDT","price":3}`,
	`{"symbol":"","price":3,"timestamp":"2025-05-08T04:12:38.352Z"}`, `{"symbol":"BTCUSDT","price":3,"timestamp":"2025-13-08T04:12:38Z"}`,
}

// genTrace makes a trace of about n events on several keys, with ties in
// price and time, quiet spells, bursts, duplicates, late events and invalid
// lines, delivered out of order within the lateness (unless messy is false:
// then it has distinct identities, no late events and no invalid lines).
// The events come from r; spellings, arrival delays and the messy extras from
// arr, so that one r with several arr gives the same events in other orders.
func genTrace(r, arr *rand.Rand, n int, lateness stream.Time, messy bool) (trace, []genEvent) {
	keys := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}
	cents := map[string]int64{"BTCUSDT": 9_919_048, "ETHUSDT": 250_011, "SOLUSDT": 14_550}
	last := map[string]stream.Time{}
	tm := stream.Time(1_746_677_558_352)
	var evs []genEvent
	for len(evs) < n {
		switch r.IntN(40) {
		case 0:
			tm += 40_000 // a quiet spell longer than the largest test window
		case 1, 2:
			// a burst: same millisecond on another key
		default:
			tm += stream.Time(r.IntN(700))
		}
		k := keys[r.IntN(len(keys))]
		if last[k] == tm {
			continue
		}
		last[k] = tm
		if r.IntN(3) != 0 {
			cents[k] += int64(r.IntN(9)) - 4
		}
		p := float64(cents[k]) / 100
		if r.IntN(20) == 0 {
			p = float64(cents[k])/100 + 0.005 // a mid price between cents
		}
		evs = append(evs, genEvent{k, tm, p})
	}
	type arrival struct {
		at   stream.Time
		line string
	}
	var arrivals []arrival
	for _, e := range evs {
		d := stream.Time(arr.Int64N(int64(lateness) + 1)) // delays up to the bound itself
		arrivals = append(arrivals, arrival{e.t + d, priceLine(arr, e)})
		if messy && arr.IntN(25) == 0 { // a duplicate identity, maybe another price, arriving later
			dup := e
			if arr.IntN(2) == 0 {
				dup.price += 1
			}
			arrivals = append(arrivals, arrival{e.t + d + stream.Time(arr.IntN(int(lateness)/2)), priceLine(arr, dup)})
		}
		if messy && arr.IntN(30) == 0 { // a late event, well behind the watermark
			late := genEvent{e.key, e.t - 3*lateness - stream.Time(arr.IntN(1000)), e.price - 1}
			arrivals = append(arrivals, arrival{e.t + lateness + d + 1, priceLine(arr, late)})
		}
		if messy && arr.IntN(40) == 0 {
			arrivals = append(arrivals, arrival{e.t + d, invalidLines[arr.IntN(len(invalidLines))]})
		}
	}
	slices.SortStableFunc(arrivals, func(a, b arrival) int { return int(a.at - b.at) })
	var tr trace
	for _, a := range arrivals {
		tr.lines = append(tr.lines, a.line)
	}
	if messy {
		tr.lines = append(tr.lines, "", "   ") // blank lines are invalid records
	}
	return tr, evs
}

// reference is an independent, brute-force implementation of SPEC sections 2
// to 5 for a single input partition: exact arithmetic, O(n*W) windows and
// O(n*H) lookahead scans.
type reference struct {
	accepted           map[string][]genEvent // per key, sorted by time
	late, dup, invalid int
	windows            []time.Duration
	horizon, lateness  stream.Time
}

func newReference(lines []string, cfg Config) *reference {
	ref := &reference{accepted: map[string][]genEvent{}, windows: cfg.Windows,
		horizon: stream.DurationOf(cfg.Horizon), lateness: stream.DurationOf(cfg.Lateness)}
	type id struct {
		k string
		t stream.Time
	}
	seen := map[id]bool{}
	maxSeen := stream.MinTime
	for _, l := range lines {
		p, ok := refDecode([]byte(l))
		if !ok {
			ref.invalid++
			continue
		}
		switch {
		case maxSeen != stream.MinTime && p.Time < maxSeen-ref.lateness:
			ref.late++
		case seen[id{p.Symbol, p.Time}]:
			ref.dup++
		default:
			seen[id{p.Symbol, p.Time}] = true
			ref.accepted[p.Symbol] = append(ref.accepted[p.Symbol], genEvent{p.Symbol, p.Time, p.Price})
		}
		maxSeen = max(maxSeen, p.Time)
	}
	for k := range ref.accepted {
		slices.SortFunc(ref.accepted[k], func(a, b genEvent) int { return int(a.t - b.t) })
	}
	return ref
}

type refStats struct {
	count    int
	mean     float64
	std      float64 // NaN when undefined
	exactVar *big.Rat
}

func (ref *reference) stats(key string, t stream.Time, w time.Duration) refStats {
	var xs []*big.Rat
	for _, e := range ref.accepted[key] {
		if e.t > t-stream.DurationOf(w) && e.t <= t {
			xs = append(xs, new(big.Rat).SetFloat64(e.price))
		}
	}
	sum := new(big.Rat)
	for _, x := range xs {
		sum.Add(sum, x)
	}
	n := int64(len(xs))
	m := new(big.Rat).Quo(sum, big.NewRat(n, 1))
	mean, _ := m.Float64()
	if n < 2 {
		return refStats{count: int(n), mean: mean, std: math.NaN()}
	}
	ss := new(big.Rat)
	for _, x := range xs {
		d := new(big.Rat).Sub(x, m)
		ss.Add(ss, d.Mul(d, d))
	}
	v := new(big.Rat).Quo(ss, big.NewRat(n-1, 1))
	vf, _ := v.Float64()
	return refStats{count: int(n), mean: mean, std: math.Sqrt(vf), exactVar: v}
}

// next returns the delay in ms to the first later event within the horizon
// that is strictly higher (dir > 0) or lower (dir < 0), or the horizon.
func (ref *reference) next(key string, i int, dir int) stream.Time {
	evs := ref.accepted[key]
	e := evs[i]
	for _, f := range evs[i+1:] {
		if f.t > e.t+ref.horizon {
			break
		}
		if (dir > 0 && f.price > e.price) || (dir < 0 && f.price < e.price) {
			return f.t - e.t
		}
	}
	return ref.horizon
}

// Output records as read back with encoding/json.
type movingRec struct {
	Timestamp string `json:"timestamp"`
	Symbol    string `json:"symbol"`
	Windows   []struct {
		Window string   `json:"window"`
		Avg    float64  `json:"avg_price"`
		Std    *float64 `json:"std_price"`
		Count  int      `json:"count"`
	} `json:"windows"`
}

type zscoreRec struct {
	Timestamp string  `json:"timestamp"`
	Symbol    string  `json:"symbol"`
	Price     float64 `json:"price"`
	ZScores   []struct {
		Window string   `json:"window"`
		Z      *float64 `json:"zscore_price"`
	} `json:"zscores"`
}

type lookRec struct {
	Timestamp string   `json:"timestamp"`
	Symbol    string   `json:"symbol"`
	Higher    *float64 `json:"higher_window"`
	Lower     *float64 `json:"lower_window"`
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err, "read %s", path)
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func ts(t stream.Time) string {
	return time.UnixMilli(int64(t)).UTC().Format("2006-01-02T15:04:05.000Z")
}

// checkAgainstReference runs Offline over lines and compares every record.
func checkAgainstReference(t *testing.T, lines []string, cfg Config) string {
	t.Helper()
	dir := t.TempDir()
	var in strings.Builder
	for _, l := range lines {
		in.WriteString(l + "\n")
	}
	sum, err := Offline(context.Background(), strings.NewReader(in.String()), dir, cfg, quiet)
	require.NoError(t, err, "Offline")
	ref := newReference(lines, cfg)
	total := 0
	for _, evs := range ref.accepted {
		total += len(evs)
	}
	assert.Equal(t, uint64(total), sum.Accepted, "accepted")
	assert.Equal(t, uint64(ref.late), sum.Late, "late")
	assert.Equal(t, uint64(ref.dup), sum.Duplicates, "duplicates")
	assert.Equal(t, uint64(ref.invalid), sum.Invalid, "invalid")
	assert.Len(t, readLines(t, filepath.Join(dir, DeadLetterFile)), ref.invalid, "dead letters")
	assert.Len(t, readLines(t, filepath.Join(dir, LateFile)), ref.late, "late file")

	labels := NewEncoder(cfg.Windows, cfg.Horizon).Labels()
	index := func(key, stamp string) (int, bool) {
		for i, e := range ref.accepted[key] {
			if ts(e.t) == stamp {
				return i, true
			}
		}
		return 0, false
	}
	// Moving.
	moving := readLines(t, filepath.Join(dir, Moving.FileName()))
	require.Len(t, moving, total, "one moving record per accepted event")
	for _, line := range moving {
		var m movingRec
		require.NoError(t, json.Unmarshal([]byte(line), &m), "moving record %s", line)
		i, ok := index(m.Symbol, m.Timestamp)
		require.True(t, ok, "moving record for an accepted event: %s", line)
		e := ref.accepted[m.Symbol][i]
		require.Len(t, m.Windows, len(cfg.Windows), "windows in %s", line)
		for w, win := range m.Windows {
			want := ref.stats(m.Symbol, e.t, cfg.Windows[w])
			assert.Equal(t, labels[w], win.Window, "label")
			assert.Equal(t, want.count, win.Count, "count %s %s", win.Window, line)
			assert.LessOrEqual(t, math.Abs(win.Avg-want.mean), 1e-12*math.Abs(want.mean), "avg %s %s", win.Window, line)
			switch {
			case math.IsNaN(want.std):
				assert.Nil(t, win.Std, "std is null for one event: %s", line)
			case want.exactVar.Sign() == 0:
				require.NotNil(t, win.Std, "std present: %s", line)
				assert.Zero(t, *win.Std, "std exactly 0 for equal prices: %s", line)
			default:
				require.NotNil(t, win.Std, "std present: %s", line)
				if want.std >= 1e-6*want.mean {
					assert.LessOrEqual(t, math.Abs(*win.Std-want.std), 1e-9*want.std, "std %s %s", win.Window, line)
				}
			}
		}
	}
	// Z-scores.
	zs := readLines(t, filepath.Join(dir, ZScore.FileName()))
	require.Len(t, zs, total, "one zscore record per accepted event")
	for _, line := range zs {
		var z zscoreRec
		require.NoError(t, json.Unmarshal([]byte(line), &z), "zscore record %s", line)
		i, ok := index(z.Symbol, z.Timestamp)
		require.True(t, ok, "zscore record for an accepted event: %s", line)
		e := ref.accepted[z.Symbol][i]
		assert.Equal(t, e.price, z.Price, "price %s", line)
		for w, sc := range z.ZScores {
			want := ref.stats(z.Symbol, e.t, cfg.Windows[w])
			assert.Equal(t, labels[w], sc.Window, "label")
			if math.IsNaN(want.std) || want.exactVar.Sign() == 0 {
				assert.Nil(t, sc.Z, "zscore is null when std is null or 0: %s", line)
				continue
			}
			require.NotNil(t, sc.Z, "zscore present: %s", line)
			wz := (e.price - want.mean) / want.std
			assert.InDelta(t, wz, *sc.Z, 1e-6+1e-9*math.Abs(wz), "zscore %s %s", sc.Window, line)
		}
	}
	// Higher and lower: exact, as text.
	for _, k := range []Kind{Higher, Lower} {
		out := readLines(t, filepath.Join(dir, k.FileName()))
		require.Len(t, out, total, "one %s record per accepted event", k.Topic())
		field := map[Kind]string{Higher: "higher_window", Lower: "lower_window"}[k]
		dir := map[Kind]int{Higher: 1, Lower: -1}[k]
		for _, line := range out {
			var rec lookRec
			require.NoError(t, json.Unmarshal([]byte(line), &rec), "%s record %s", k.Topic(), line)
			i, ok := index(rec.Symbol, rec.Timestamp)
			require.True(t, ok, "%s record for an accepted event: %s", k.Topic(), line)
			ms := ref.next(rec.Symbol, i, dir)
			want := fmt.Sprintf(`{"timestamp":"%s","symbol":"%s","%s":%s}`, rec.Timestamp, rec.Symbol, field, refSeconds(ms))
			assert.Equal(t, want, line, "%s", k.Topic())
		}
	}
	return dir
}

// refSeconds writes milliseconds as seconds the way SPEC section 5 shows
// (20.0, 0.96), through big.Rat rather than the code under test.
func refSeconds(ms stream.Time) string {
	s := new(big.Rat).SetFrac64(int64(ms), 1000).FloatString(3)
	s = strings.TrimRight(s, "0")
	if strings.HasSuffix(s, ".") {
		s += "0"
	}
	return s
}

func testConfig() Config {
	return Config{Windows: []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}, Horizon: 2 * time.Second, Lateness: 3 * time.Second}
}

func TestOfflineAgainstReference(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Logf("seed %d", seed)
			r := rand.New(rand.NewPCG(seed, seed))
			cfg := testConfig()
			tr, _ := genTrace(r, r, 1500, stream.DurationOf(cfg.Lateness), true)
			checkAgainstReference(t, tr.lines, cfg)
		})
	}
}

func TestOfflineDefaultConfigAgainstReference(t *testing.T) {
	const seed = 4
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	cfg := DefaultConfig()
	tr, _ := genTrace(r, r, 800, stream.DurationOf(cfg.Lateness), true)
	checkAgainstReference(t, tr.lines, cfg)
}

func TestOfflineEdges(t *testing.T) {
	cfg := testConfig()
	line := func(key string, t stream.Time, p string) string {
		return fmt.Sprintf(`{"symbol":%q,"price":%s,"timestamp":%q}`, key, p, ts(t))
	}
	base := stream.Time(1_746_677_558_000)
	tests := []struct {
		name  string
		lines []string
	}{
		{"empty input", nil},
		{"single event", []string{line("BTCUSDT", base, "99190.48")}},
		{"equal timestamps on two keys, equal prices", []string{
			line("BTCUSDT", base, "5"), line("ETHUSDT", base, "5"), line("BTCUSDT", base+1, "5"), line("ETHUSDT", base+1, "5")}},
		{"events exactly at t-W and at t+H", []string{
			line("BTCUSDT", base, "1"), line("BTCUSDT", base+1000, "2"), line("BTCUSDT", base+2000, "3"), line("BTCUSDT", base+4000, "0.5")}},
		{"exactly at the lateness bound is accepted, one ms more is late", []string{
			line("BTCUSDT", base+3000, "1"), line("BTCUSDT", base, "2"), line("BTCUSDT", base-1, "3")}},
		{"watermark jump", []string{line("BTCUSDT", base, "1"), line("BTCUSDT", base+1, "2"), line("BTCUSDT", base+10_000_000, "3")}},
		{"only invalid lines", []string{"x", "{}", "[]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkAgainstReference(t, tt.lines, cfg)
		})
	}
}

// sortedFile returns a file's lines sorted (they start with the timestamp and
// symbol, so this sorts by time then key), to compare runs byte for byte.
func sortedFile(t *testing.T, path string) []string {
	t.Helper()
	ls := readLines(t, path)
	slices.SortFunc(ls, func(a, b string) int {
		var ra, rb lookRec
		require.NoError(t, json.Unmarshal([]byte(a), &ra), "record")
		require.NoError(t, json.Unmarshal([]byte(b), &rb), "record")
		return strings.Compare(ra.Symbol+"|"+ra.Timestamp, rb.Symbol+"|"+rb.Timestamp)
	})
	return ls
}

// TestOfflineArrivalOrderIndependence feeds the same events (distinct
// identities) in several arrival orders that respect the lateness bound: the
// outputs must be byte-identical after sorting by (key, time).
func TestOfflineArrivalOrderIndependence(t *testing.T) {
	const seed = 77
	t.Logf("seed %d", seed)
	cfg := testConfig()
	var first [numKinds][]string
	for trial := range 6 {
		// Same events every trial (same generator seed), new arrival delays.
		tr, _ := genTrace(rand.New(rand.NewPCG(seed, seed)), rand.New(rand.NewPCG(seed, uint64(trial))), 1200, stream.DurationOf(cfg.Lateness), false)
		if trial == 0 {
			// Trial 0 is in event-time order.
			var evs []genEvent
			for _, l := range tr.lines {
				p, ok := refDecode([]byte(l))
				require.True(t, ok, "generated line is valid: %s", l)
				evs = append(evs, genEvent{p.Symbol, p.Time, p.Price})
			}
			slices.SortStableFunc(evs, func(a, b genEvent) int { return int(a.t - b.t) })
			tr.lines = tr.lines[:0]
			for _, e := range evs {
				tr.lines = append(tr.lines, fmt.Sprintf(`{"symbol":%q,"price":%s,"timestamp":%q}`, e.key, strconv.FormatFloat(e.price, 'f', -1, 64), ts(e.t)))
			}
		}
		dir := t.TempDir()
		sum, err := Offline(context.Background(), strings.NewReader(strings.Join(tr.lines, "\n")), dir, cfg, quiet)
		require.NoError(t, err, "Offline")
		require.Zero(t, sum.Late, "trial %d: nothing is late within the bound", trial)
		require.Zero(t, sum.Duplicates, "trial %d: distinct identities", trial)
		for k := range numKinds {
			got := sortedFile(t, filepath.Join(dir, k.FileName()))
			if trial == 0 {
				first[k] = got
				require.NotEmpty(t, got, "%s has records", k.Topic())
				continue
			}
			require.Equal(t, len(first[k]), len(got), "trial %d %s: records", trial, k.Topic())
			for i := range got {
				require.Equal(t, first[k][i], got[i], "trial %d %s: record %d", trial, k.Topic(), i)
			}
		}
	}
}

// TestOfflineRealTraces runs the recorded Binance traces of ../shared/data
// (not shipped with the library) through offline and the reference; set
// TIDEMARK_DATA_DIR to the folder that holds them.
func TestOfflineRealTraces(t *testing.T) {
	dir := os.Getenv("TIDEMARK_DATA_DIR")
	if dir == "" {
		t.Skip("TIDEMARK_DATA_DIR not set: point it at a folder of Binance CSV traces (ts_ms,price or ts_us,price) to run this test")
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	require.NoError(t, err, "glob")
	require.NotEmpty(t, files, "CSV traces in %s", dir)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			fh, err := os.Open(f)
			require.NoError(t, err, "open")
			defer fh.Close()
			sc := bufio.NewScanner(fh)
			sc.Scan()
			micro := strings.HasPrefix(sc.Text(), "ts_us")
			var lines []string
			for sc.Scan() && len(lines) < 4000 {
				tsv, price, _ := strings.Cut(sc.Text(), ",")
				n, err := strconv.ParseInt(tsv, 10, 64)
				require.NoError(t, err, "timestamp")
				if micro {
					n /= 1000
				}
				lines = append(lines, fmt.Sprintf(`{"symbol":"BTCUSDT","price":%s,"timestamp":%q}`, price, ts(stream.Time(n))))
			}
			checkAgainstReference(t, lines, testConfig())
		})
	}
}

func TestOfflineHonoursCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var in bytes.Buffer
	for i := range 5000 {
		fmt.Fprintf(&in, `{"symbol":"BTCUSDT","price":1,"timestamp":%q}`+"\n", ts(stream.Time(i*1000)))
	}
	_, err := Offline(ctx, &in, t.TempDir(), testConfig(), quiet)
	assert.ErrorIs(t, err, context.Canceled, "Offline stops on a cancelled context")
}

// TestSettleFile: a file cut in the middle of its last line (a write that
// failed) keeps its complete lines only, and they are counted.
func TestSettleFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	require.NoError(t, os.WriteFile(path, []byte("{\"a\":1}\n{\"a\":2}\n{\"a\":"), 0o644))
	require.Equal(t, uint64(2), settleFile(path), "complete lines")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "{\"a\":1}\n{\"a\":2}\n", string(b), "the partial line is cut")
	require.Equal(t, uint64(0), settleFile("/dev/null"), "a device holds no lines")
	require.Equal(t, uint64(0), settleFile(filepath.Join(t.TempDir(), "missing")), "a missing file holds none")
}
