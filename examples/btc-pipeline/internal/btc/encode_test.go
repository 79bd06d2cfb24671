package btc

import (
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
)

// TestAppendFixed checks the fixed-decimal writer by reading its output back
// with strconv: within 1e-12 absolute (plus a few float64 ulps), minimal digits, valid JSON numbers.
func TestAppendFixed(t *testing.T) {
	const seed = 6
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	cases := []float64{0, 1, -1, 0.5, 99190.48, 61556.045, 1e-7, -1e-7, 8999999.999999, 9e6, 1e300, math.NaN(), math.Inf(1), math.Copysign(0, -1), 0.1 + 0.2}
	for range 20000 {
		cases = append(cases, (r.Float64()-0.5)*math.Pow(10, float64(r.IntN(14)-6)))
	}
	for _, f := range cases {
		for _, minAbs := range []float64{0, 1} {
			s := string(appendFixed(nil, f, minAbs))
			if math.IsNaN(f) || math.IsInf(f, 0) {
				assert.Equal(t, "null", s, "non-finite %v", f)
				continue
			}
			got, err := strconv.ParseFloat(s, 64)
			require.NoError(t, err, "%v wrote %q", f, s)
			a := math.Abs(f)
			if a >= minAbs && a < fixedLimit {
				// 12 decimals, plus the float64 rounding of f itself and of f*1e12.
				assert.LessOrEqual(t, math.Abs(got-f), 1e-12+4*math.Abs(f)*0x1p-52, "%v wrote %q", f, s)
				assert.NotRegexp(t, `\.\d*0$`, s, "no trailing zeros in %q", s)
			} else {
				assert.Equal(t, f, got, "shortest form of %v reads back exactly: %q", f, s)
			}
		}
	}
}

// TestAppendStd checks the standard deviations' writer by reading its
// output back with strconv: for stds in [stdSigLow, 1), 12 significant
// digits or fewer (trailing zeros trimmed), within 5e-12 relative (plus
// float64 rounding); elsewhere, what appendFixed(f, 1) writes.
func TestAppendStd(t *testing.T) {
	seed := seedOf(t)
	r := rand.New(rand.NewPCG(seed, 7))
	cases := []float64{0, 1, 0.5, 0.1, 0.01, 1e-6, 9.999999999995e-7, 0.99999999999951, 0.9999999999995, 0.0999999999999951,
		0.007071067811859044, 61.140386037161, math.NaN(), math.Inf(1)}
	for range 100_000 {
		cases = append(cases, r.Float64()*math.Pow(10, float64(r.IntN(10)-7)))
	}
	sig := regexp.MustCompile(`^(?:0\.0*([1-9]\d*)|1)$`)
	for _, f := range cases {
		s := string(appendStd(nil, f))
		if !(f >= stdSigLow && f < 1) {
			assert.Equal(t, string(appendFixed(nil, f, 1)), s, "outside [1e-6, 1): as appendFixed")
			continue
		}
		got, err := strconv.ParseFloat(s, 64)
		require.NoError(t, err, "%v wrote %q", f, s)
		assert.LessOrEqual(t, math.Abs(got-f), 5e-12*f+4*f*0x1p-52, "%v wrote %q", f, s)
		m := sig.FindStringSubmatch(s)
		if assert.NotNil(t, m, "%v wrote %q: 0.digits or 1", f, s) {
			assert.LessOrEqual(t, len(m[1]), 12, "%v wrote %q: at most 12 significant digits", f, s)
			assert.NotRegexp(t, `0$`, m[1], "no trailing zeros in %q", s)
		}
	}
}

func TestLabelsAndSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{30 * time.Second: "30s", time.Minute: "1m", 90 * time.Second: "90s",
		15 * time.Minute: "15m", time.Hour: "1h", 2 * time.Hour: "2h", 250 * time.Millisecond: "250ms"} {
		assert.Equal(t, want, Label(d), "label of %v", d)
	}
	for ms, want := range map[int64]string{20000: "20.0", 960: "0.96", 1001: "1.001", 0: "0.0", 10: "0.01", 100: "0.1", 19999: "19.999"} {
		assert.Equal(t, want, string(appendSeconds(nil, stream.Time(ms))), "seconds of %d ms", ms)
	}
}
