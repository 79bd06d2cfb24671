package btc

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
	"github.com/tidemark-go/tidemark/zscore"
)

// movingSamples returns btc-price-moving and btc-price-zscore values as the
// stages write them, with nulls, negative and tiny values, and hand-made
// variants that the fast path must leave to encoding/json.
func codecSamples(r *rand.Rand, n int) (moving, zs [][]byte) {
	cfg := testConfig()
	enc := NewEncoder(cfg.Windows, cfg.Horizon)
	for i := range n {
		stats := make([]window.Statistics, len(cfg.Windows))
		scores := make([]zscore.Score, len(cfg.Windows))
		for w := range stats {
			stats[w] = window.Statistics{Count: int64(1 + r.IntN(1000)), Mean: r.Float64() * math.Pow(10, float64(r.IntN(12)-4))}
			switch r.IntN(4) {
			case 0:
				stats[w].Std = math.NaN()
			case 1:
				stats[w].Std = 0
			default:
				stats[w].Std = r.ExpFloat64() * math.Pow(10, float64(r.IntN(8)-6))
			}
			if r.IntN(3) > 0 {
				scores[w] = zscore.Score{Z: r.NormFloat64() * math.Pow(10, float64(r.IntN(6)-3)), OK: true}
			}
		}
		key := []string{"BTCUSDT", "ETHUSDT", "ÆØÅ", "a"}[i%4]
		t := stream.Time(1_746_677_558_352 + r.Int64N(1e9))
		moving = append(moving, enc.AppendMoving(nil, key, t, stats))
		zs = append(zs, enc.AppendZScore(nil, key, t, r.Float64()*1e5, scores))
	}
	return moving, zs
}

var codecVariants = []func(string) string{
	func(s string) string { return s },
	func(s string) string { return " \n" + s + "\t " },
	func(s string) string { return strings.Replace(s, `"symbol"`, `"Symbol"`, 1) }, // encoding/json matches keys without case
	func(s string) string { return strings.Replace(s, `"symbol":"`, `"symbol":"\u0041`, 1) },
	func(s string) string { return strings.Replace(s, `{`, `{"extra":[1,{"x":null}],`, 1) },
	func(s string) string { return strings.Replace(s, `"count":`, `"count":1,"count":`, 1) },
	func(s string) string { return strings.Replace(s, `"count":`, `"count":1.5,"n":`, 1) },
	func(s string) string { return strings.Replace(s, `"std_price":`, `"std_price":"1",`+`"x":`, 1) },
	func(s string) string { return strings.Replace(s, `"zscore_price":`, `"zscore_price":1e999,"x":`, 1) },
	func(s string) string { return strings.Replace(s, `"avg_price":`, `"avg_price":null,"x":`, 1) },
	func(s string) string { return strings.Replace(s, `"window":"1s"`, `"window":"5s"`, 1) },
	func(s string) string { return strings.Replace(s, `},{`, `}, {`, 1) },
	func(s string) string { return strings.Replace(s, `"symbol":"`, "\"symbol\":\"\xff", 1) },
	func(s string) string { return strings.Replace(s, `"timestamp":"`, `"timestamp":"x`, 1) },
	func(s string) string { return s + "{}" },
	func(s string) string { return s[:len(s)-1] },
	func(s string) string { return strings.Replace(s, `[`, `[]`, 1) },
}

// checkSameAsJSON fails unless the codec's Decode (fast path first) gives
// what encoding/json alone gives: the same event, or an error of the same
// kind.
func checkSameAsJSON[V any](t *testing.T, name string, value []byte, decode, decodeJSON func([]byte) (stream.Event[V], error)) bool {
	t.Helper()
	got, gerr := decode(value)
	want, werr := decodeJSON(value)
	if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
		t.Errorf("%s %q: error %v, encoding/json's %v", name, value, gerr, werr)
		return false
	}
	if gerr == nil && fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
		t.Errorf("%s %q:\n got %#v\nwant %#v", name, value, got, want)
		return false
	}
	return true
}

// TestFastDecodeSameAsJSON compares the codecs' fast paths with
// encoding/json on the stages' own records and on variants of them.
func TestFastDecodeSameAsJSON(t *testing.T) {
	seed := uint64(42)
	t.Logf("seed %d", seed)
	moving, zs := codecSamples(rand.New(rand.NewPCG(seed, seed)), 200)
	mc, zc := NewMovingCodec(testConfig()), NewZScoreCodec(testConfig())
	mdec := func(b []byte) (stream.Event[[]window.Statistics], error) { return mc.Decode(nil, b, 0) }
	zdec := func(b []byte) (stream.Event[ScoredRecord], error) { return zc.Decode(nil, b, 0) }
	fast := 0
	for i := range moving {
		for v, vary := range codecVariants {
			m, z := []byte(vary(string(moving[i]))), []byte(vary(string(zs[i])))
			if !checkSameAsJSON(t, fmt.Sprintf("moving %d variant %d", i, v), m, mdec, mc.decodeJSON) ||
				!checkSameAsJSON(t, fmt.Sprintf("zscore %d variant %d", i, v), z, zdec, zc.decodeJSON) {
				return
			}
		}
		if _, ok := mc.fastMoving(moving[i]); ok {
			fast++
		}
		if _, ok := zc.fastZScore(zs[i]); ok {
			fast++
		}
	}
	if fast != 2*len(moving) {
		t.Errorf("the fast path took %d of the %d records the stages write", fast, 2*len(moving))
	}
}

func FuzzFastDecode(f *testing.F) {
	moving, zs := codecSamples(rand.New(rand.NewPCG(1, 1)), 4)
	for i := range moving {
		for _, vary := range codecVariants {
			f.Add([]byte(vary(string(moving[i]))))
			f.Add([]byte(vary(string(zs[i]))))
		}
	}
	mc, zc := NewMovingCodec(testConfig()), NewZScoreCodec(testConfig())
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSameAsJSON(t, "moving", b, func(b []byte) (stream.Event[[]window.Statistics], error) { return mc.Decode(nil, b, 0) }, mc.decodeJSON)
		checkSameAsJSON(t, "zscore", b, func(b []byte) (stream.Event[ScoredRecord], error) { return zc.Decode(nil, b, 0) }, zc.decodeJSON)
	})
}

func BenchmarkDecodeMoving(b *testing.B) {
	moving, _ := codecSamples(rand.New(rand.NewPCG(1, 1)), 64)
	c := NewMovingCodec(testConfig())
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Decode(nil, moving[i%len(moving)], 0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkDecodeMovingJSON(b *testing.B) {
	moving, _ := codecSamples(rand.New(rand.NewPCG(1, 1)), 64)
	c := NewMovingCodec(testConfig())
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.decodeJSON(moving[i%len(moving)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
