package source

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppendDecimal(t *testing.T) {
	good := map[string]string{
		"99190.48000000":  "99190.48",
		"100.00000000":    "100",
		"0.00001000":      "0.00001",
		"1":               "1",
		"1.5":             "1.5",
		"000123.4500":     "123.45",
		"0.10000000":      "0.1",
		"103456.78912345": "103456.78912345",
		"00.01":           "0.01",
	}
	for in, want := range good {
		got, err := appendDecimal([]byte("x"), in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, "x"+want, string(got), in)
			// The text is the same number as Binance's string.
			a, _ := strconv.ParseFloat(in, 64)
			b, _ := strconv.ParseFloat(want, 64)
			assert.Equal(t, a, b, in)
		}
	}
	bad := []string{"abc", "-1", "0", "0.00000000", "1e5", "1E5", "NaN", "Inf", "+1", " 1", "1 ", "", ".5", "5.",
		"1.2.3", "1,5", "0x10", "1_000", "١٢", "9e308", "\"1\"",
		"1" + string(bytesOf('0', 400)), // over-long (and beyond float64's range)
		"0." + string(bytesOf('0', 62)), // zero, at the length limit
	}
	for _, in := range bad {
		got, err := appendDecimal([]byte("x"), in)
		assert.Error(t, err, "%q", in)
		assert.Equal(t, "x", string(got), "%q: dst unchanged", in)
	}
	// At the length limit (64), a price is far inside float64's range.
	_, err := appendDecimal(nil, string(bytesOf('9', 64)))
	require.NoError(t, err)
	_, err = appendDecimal(nil, string(bytesOf('9', 65)))
	require.Error(t, err)
}

func bytesOf(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 5, 8, 4, 12, 38, 0, time.UTC)
	assert.Equal(t, time.Second, parseRetryAfter("1", now))
	assert.Equal(t, 120*time.Second, parseRetryAfter(" 120 ", now))
	assert.Equal(t, time.Duration(0), parseRetryAfter("", now))
	assert.Equal(t, time.Duration(0), parseRetryAfter("-3", now))
	assert.Equal(t, time.Duration(0), parseRetryAfter("soon", now))
	assert.Equal(t, 30*time.Second, parseRetryAfter(now.Add(30*time.Second).Format(httpTime), now))
	assert.Equal(t, time.Duration(0), parseRetryAfter(now.Add(-time.Second).Format(httpTime), now))
}

const httpTime = "Mon, 02 Jan 2006 15:04:05 GMT"

func TestBackoff(t *testing.T) {
	lo, hi := 200*time.Millisecond, 30*time.Second
	want := []time.Duration{200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000}
	for retry, d := range want {
		d *= time.Millisecond
		for range 200 {
			b := backoff(retry, lo, hi)
			require.GreaterOrEqual(t, b, d/2, "retry %d", retry)
			require.LessOrEqual(t, b, d, "retry %d", retry)
		}
	}
	require.LessOrEqual(t, backoff(1000, lo, hi), hi)
}
