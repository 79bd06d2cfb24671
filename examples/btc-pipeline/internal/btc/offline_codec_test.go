package btc

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
)

// appendFixedRef is appendFixed as it was before its decimals were written
// in two halves: twelve decimals two at a time.
func appendFixedRef(dst []byte, f float64, minAbs float64) []byte {
	a := math.Abs(f)
	if !(a >= minAbs && a < fixedLimit) {
		return appendFloat(dst, f)
	}
	n := uint64(math.Round(a * 1e12))
	var buf [40]byte
	const point = 24
	frac, whole := n%1_000_000_000_000, n/1_000_000_000_000
	end := point
	if frac != 0 {
		buf[point] = '.'
		for j := point + 11; j > point; j -= 2 {
			d := frac % 100
			frac /= 100
			buf[j], buf[j+1] = twoDigits[2*d], twoDigits[2*d+1]
		}
		end = point + 13
		for buf[end-1] == '0' {
			end--
		}
	}
	start := putUint(&buf, point, whole)
	if f < 0 && n != 0 {
		start--
		buf[start] = '-'
	}
	return append(dst, buf[start:end]...)
}

// TestAppendFixedSameAsBefore: appendFixed writes what it wrote before,
// byte for byte, for values of every magnitude, sign and number of
// decimals.
func TestAppendFixedSameAsBefore(t *testing.T) {
	seed := seedOf(t)
	r := rand.New(rand.NewPCG(seed, 12))
	vals := []float64{0, 1, -1, 0.5, 1e-12, -1e-12, 5e-13, 4.9e-13, 1.000001, 1.0000001, 1.0000000000005, 99190.48, 99190.4833333333,
		8999999.999999, 8999999.9999999999, 9e6, math.Nextafter(9e6, 0), 1e-7, math.Copysign(0, -1), 0.1 + 0.2, math.NaN(), math.Inf(-1)}
	for range 200_000 {
		vals = append(vals,
			(r.Float64()-0.5)*math.Pow(10, float64(r.IntN(16)-8)), // any magnitude
			float64(r.Int64N(1e12))/1e6,                           // six decimals or fewer
			float64(r.Int64N(1e9))/100,                            // cents
			math.Float64frombits(r.Uint64()))
	}
	for _, v := range vals {
		for _, minAbs := range []float64{0, 1} {
			want, got := appendFixedRef(nil, v, minAbs), appendFixed(nil, v, minAbs)
			require.Equal(t, string(want), string(got), "appendFixed(%v, %v)", v, minAbs)
		}
	}
}

// TestEncoderTimestamps: the timestamps of an Encoder's records, written
// from the last one's when in the same minute, are AppendTime's, whatever
// the order and the distance of the times.
func TestEncoderTimestamps(t *testing.T) {
	seed := seedOf(t)
	r := rand.New(rand.NewPCG(seed, 13))
	e := NewEncoder([]time.Duration{time.Second}, time.Second)
	tm := stream.Time(1_746_677_558_352)
	edges := []stream.Time{0, 1, 59_999, 60_000, -1, -60_000, -60_001, stream.MinTime, stream.MaxTime,
		stream.Time(253402300799999), stream.Time(253402300800000), stream.Time(-62167219200000), stream.Time(-62167219200001)}
	for i := range 300_000 {
		switch r.IntN(50) {
		case 0:
			tm = edges[r.IntN(len(edges))]
		case 1:
			tm = stream.Time(r.Int64N(1 << 45))
		case 2:
			tm -= stream.Time(r.IntN(200_000)) // back in time
		default:
			if tm < 1<<45 && tm > -(1<<45) {
				tm += stream.Time(r.IntN(3000))
			}
		}
		want := string(stream.AppendTime(nil, tm))
		require.Equal(t, want, string(e.timestamp(tm)), "time %d (step %d)", tm, i)
	}
}

// TestDecodeCanonicalSameAsScan: the decoder's path for the canonical shape
// gives what the full scan gives, value and error, for lines of that shape
// and lines a byte or a few away from it.
func TestDecodeCanonicalSameAsScan(t *testing.T) {
	seed := seedOf(t)
	r := rand.New(rand.NewPCG(seed, 14))
	syms := []string{"BTCUSDT", "ETHUSDT", "S", "btc usdt", "B~T", `B"T`, `B\u0041`, "BT\xc3\xa9", "\x01", ""}
	prices := []string{"99190.48", "145.47", "1", "0", "-1", "1e15", "1e16", "1.5e3", "01", "1.", ".5", "1e", "-0", "NaN", "1e400", "2.5E-3", `"1"`, "null"}
	times := []string{"2025-05-08T04:12:38.352Z", "2025-05-08T04:12:38Z", "2025-05-08t04:12:38.3z", "2025-05-08 04:12:38.352+02:00",
		"2025-02-30T00:00:00Z", "2025-05-08T04:12:38.352", "yesterday", "", "2025-05-08T04:12:38.352\\u005a", "10000-01-01T00:00:00Z"}
	d, ref := NewDecoder(), NewDecoder()
	canonical := 0
	for range 200_000 {
		line := []byte(`{"symbol":"` + syms[r.IntN(len(syms))] + `","price":` + prices[r.IntN(len(prices))] +
			`,"timestamp":"` + times[r.IntN(len(times))] + `"}`)
		for range r.IntN(3) { // a few bytes changed, inserted or cut
			switch i := r.IntN(len(line)); r.IntN(3) {
			case 0:
				line[i] = " \r\t\"\\{}[],:0aZ\x80"[r.IntN(15)]
			case 1:
				line = append(line[:i], append([]byte{" \r\"x1"[r.IntN(5)]}, line[i:]...)...)
			default:
				line = append(line[:i], line[i+1:]...)
			}
		}
		if _, ok, _ := d.decodeCanonical(line); ok {
			canonical++
		}
		got, gotErr := d.Decode(line)
		want, wantErr := ref.decodeScan(line)
		require.Equal(t, want, got, "%q", line)
		require.Equal(t, wantErr, gotErr, "%q", line)
	}
	t.Logf("%d lines of the canonical shape", canonical)
	require.Greater(t, canonical, 10_000, "lines of the canonical shape")
}
