package btc

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
)

func TestDecode(t *testing.T) {
	ts := stream.TimeOf(time.Date(2025, 5, 8, 4, 12, 38, 352_000_000, time.UTC))
	valid := Price{Symbol: "BTCUSDT", Price: 99190.48, Time: ts}
	tests := []struct {
		name string
		in   string
		want Price
		err  error
	}{
		{"canonical", `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`, valid, nil},
		{"any field order, spaces, extra fields", ` { "timestamp" : "2025-05-08T04:12:38.352Z", "x":[1,{"a":null}], "price": 99190.48 ,"symbol":"BTCUSDT", "y":"\"}" } `, valid, nil},
		{"offset normalised to UTC", `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T06:12:38.352+02:00"}`, valid, nil},
		{"negative offset", `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-07T23:42:38.352-04:30"}`, valid, nil},
		{"long fraction truncated", `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T04:12:38.352999999Z"}`, valid, nil},
		{"short fraction", `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T04:12:38.3Z"}`, Price{"BTCUSDT", 99190.48, ts - 52}, nil},
		{"no fraction, lowercase t and z", `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08t04:12:38z"}`, Price{"BTCUSDT", 99190.48, ts - 352}, nil},
		{"space separator", `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08 04:12:38.352Z"}`, valid, nil},
		{"integer and exponent price", `{"symbol":"BTCUSDT","price":9919048e-2,"timestamp":"2025-05-08T04:12:38.352Z"}`, valid, nil},
		{"escaped symbol", `{"symbol":"BTC\u0055SDT","price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`, valid, nil},
		{"last duplicate field wins", `{"symbol":"X","symbol":"BTCUSDT","price":1,"price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`, valid, nil},
		{"escaped surrogate pair in the symbol", `{"symbol":"\ud83d\ude00","price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`, Price{"\U0001F600", 99190.48, ts}, nil},
		{"UTF-8 in an ignored field", "{\"symbol\":\"BTCUSDT\",\"note\":\"d\u00e9j\u00e0 \xc3\xa9\",\"price\":99190.48,\"timestamp\":\"2025-05-08T04:12:38.352Z\"}", valid, nil},
		{"ignored object nested 10000 deep", `{"symbol":"BTCUSDT","x":` + strings.Repeat(`{"a":`, 9999) + `1` + strings.Repeat("}", 9999) + `,"price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`, valid, nil},
		{"ignored field nested 10000 deep", `{"symbol":"BTCUSDT","x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `,"price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`, valid, nil},

		{"empty", ``, Price{}, ErrNotJSON},
		{"garbage", `hello`, Price{}, ErrNotJSON},
		{"truncated", `{"symbol":"BTCUSDT","price":99190.48`, Price{}, ErrNotJSON},
		{"trailing data", `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"} x`, Price{}, ErrNotJSON},
		{"bad number", `{"symbol":"BTCUSDT","price":01,"timestamp":"2025-05-08T04:12:38.352Z"}`, Price{}, ErrNotJSON},
		{"NaN literal", `{"symbol":"BTCUSDT","price":NaN,"timestamp":"2025-05-08T04:12:38.352Z"}`, Price{}, ErrNotJSON},
		{"array", `[1,2]`, Price{}, ErrNotObject},
		{"string", `"BTCUSDT"`, Price{}, ErrNotObject},
		{"no symbol", `{"price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`, Price{}, ErrNoSymbol},
		{"empty symbol", `{"symbol":"","price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`, Price{}, ErrSymbolType},
		{"numeric symbol", `{"symbol":7,"price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`, Price{}, ErrSymbolType},
		{"symbol not UTF-8", "{\"symbol\":\"BTC\xffUSDT\",\"price\":99190.48,\"timestamp\":\"2025-05-08T04:12:38.352Z\"}", Price{}, ErrSymbolUTF8},
		{"escaped symbol not UTF-8", "{\"symbol\":\"B\\\"\xc3\",\"price\":99190.48,\"timestamp\":\"2025-05-08T04:12:38.352Z\"}", Price{}, ErrSymbolUTF8},
		{"lone high surrogate in the symbol", `{"symbol":"BTC\ud800","price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`, Price{}, ErrSymbolUTF8},
		{"lone low surrogate in the symbol", `{"symbol":"\udc00BTC","price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`, Price{}, ErrSymbolUTF8},
		{"high surrogate before a non-surrogate", `{"symbol":"\ud83d\u0041","price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`, Price{}, ErrSymbolUTF8},
		{"ignored field not UTF-8", "{\"symbol\":\"BTCUSDT\",\"note\":\"\xff\xfe\",\"price\":99190.48,\"timestamp\":\"2025-05-08T04:12:38.352Z\"}", Price{}, ErrNotUTF8},
		{"key not UTF-8", "{\"symbol\":\"BTCUSDT\",\"\xc3\":1,\"price\":99190.48,\"timestamp\":\"2025-05-08T04:12:38.352Z\"}", Price{}, ErrNotUTF8},
		{"ignored field nested 10001 deep", `{"symbol":"BTCUSDT","x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `,"price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`, Price{}, ErrTooDeep},
		{"object nested 10001 deep", `{"symbol":"BTCUSDT","x":` + strings.Repeat(`{"a":`, 10000) + `1` + strings.Repeat("}", 10000) + `,"price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`, Price{}, ErrTooDeep},
		{"array nested 10001 deep", strings.Repeat("[", 10001) + strings.Repeat("]", 10001), Price{}, ErrTooDeep},
		{"no price", `{"symbol":"BTCUSDT","timestamp":"2025-05-08T04:12:38.352Z"}`, Price{}, ErrNoPrice},
		{"string price", `{"symbol":"BTCUSDT","price":"99190.48","timestamp":"2025-05-08T04:12:38.352Z"}`, Price{}, ErrPriceType},
		{"null price", `{"symbol":"BTCUSDT","price":null,"timestamp":"2025-05-08T04:12:38.352Z"}`, Price{}, ErrPriceType},
		{"zero price", `{"symbol":"BTCUSDT","price":0,"timestamp":"2025-05-08T04:12:38.352Z"}`, Price{}, ErrBadPrice},
		{"negative price", `{"symbol":"BTCUSDT","price":-1.5,"timestamp":"2025-05-08T04:12:38.352Z"}`, Price{}, ErrBadPrice},
		{"overflowing price", `{"symbol":"BTCUSDT","price":1e400,"timestamp":"2025-05-08T04:12:38.352Z"}`, Price{}, ErrBadPrice},
		{"no timestamp", `{"symbol":"BTCUSDT","price":99190.48}`, Price{}, ErrNoTimestamp},
		{"numeric timestamp", `{"symbol":"BTCUSDT","price":99190.48,"timestamp":1746677558352}`, Price{}, ErrTimeType},
		{"no offset", `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T04:12:38.352"}`, Price{}, ErrBadTimestamp},
		{"impossible date", `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-02-30T04:12:38Z"}`, Price{}, ErrBadTimestamp},
		{"leap second", `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-06-30T23:59:60Z"}`, Price{}, ErrBadTimestamp},
		{"empty fraction", `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T04:12:38.Z"}`, Price{}, ErrBadTimestamp},
		{"bad offset", `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T04:12:38Z+01:00"}`, Price{}, ErrBadTimestamp},
	}
	d := NewDecoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Decode([]byte(tt.in))
			if tt.err != nil {
				assert.ErrorIs(t, err, tt.err, "error kind")
				return
			}
			require.NoError(t, err, "valid record")
			assert.Equal(t, tt.want, got, "decoded")
		})
	}
}

func TestDecodeDoesNotAllocateForKnownSymbols(t *testing.T) {
	d := NewDecoder()
	line := []byte(`{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`)
	_, err := d.Decode(line)
	require.NoError(t, err, "decode")
	assert.Zero(t, testing.AllocsPerRun(1000, func() { d.Decode(line) }), "allocations per record")
}

// TestParseTimeAgainstTimePackage checks ParseTime against the standard
// library on random instants, offsets and fraction lengths.
func TestParseTimeAgainstTimePackage(t *testing.T) {
	const seed = 8
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	for range 5000 {
		sec := r.Int64N(253402300799) // 0001..9999 in Unix seconds, minus the BC part
		ns := r.Int64N(1e9)
		off := (r.IntN(24*60*2) - 24*60) * 60
		loc := time.FixedZone("", off)
		tm := time.Unix(sec, ns).In(loc)
		if tm.Year() > 9999 || tm.Year() < 1 {
			continue
		}
		digits := r.IntN(10)
		layout := "2006-01-02T15:04:05"
		if digits > 0 {
			layout += "." + "000000000"[:digits]
		}
		layout += "Z07:00"
		s := tm.Format(layout)
		got, err := stream.ParseTime([]byte(s))
		require.NoError(t, err, "parse %q", s)
		want, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err, "reference parse %q", s)
		assert.Equal(t, stream.TimeOf(want), got, "%q", s)
		assert.Equal(t, want.UTC().Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z"), string(stream.AppendTime(nil, got)), "format of %q", s)
	}
}

// refDecode is an independent reference decoder: encoding/json, a regular
// expression for RFC 3339 and the time package.
var rfc3339 = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$`)

func refDecode(b []byte) (Price, bool) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return Price{}, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return Price{}, false
	}
	var raw map[string]json.RawMessage // a symbol must be valid UTF-8 as sent
	if err := json.Unmarshal(b, &raw); err != nil || !utf8.Valid(raw["symbol"]) {
		return Price{}, false
	}
	sym, ok1 := m["symbol"].(string)
	pr, ok2 := m["price"].(float64)
	ts, ok3 := m["timestamp"].(string)
	if !ok1 || !ok2 || !ok3 || sym == "" || !(pr > 0) || pr > 1e15 {
		return Price{}, false
	}
	g := rfc3339.FindStringSubmatch(ts)
	if g == nil {
		return Price{}, false
	}
	norm := g[1] + "-" + g[2] + "-" + g[3] + "T" + g[4] + ":" + g[5] + ":" + g[6] + g[7]
	if g[8] == "z" || g[8] == "Z" {
		norm += "Z"
	} else {
		norm += g[8]
	}
	tm, err := time.Parse(time.RFC3339Nano, norm)
	if err != nil || tm.UTC().Year() < 0 || tm.UTC().Year() > 9999 {
		return Price{}, false
	}
	return Price{Symbol: sym, Price: pr, Time: stream.TimeOf(tm)}, true
}

// FuzzDecode checks the decoder's invariants on arbitrary input:
//   - it never panics;
//   - it accepts exactly what the reference decoder (encoding/json, a regular
//     expression and the time package) accepts, with the same result;
//   - an accepted record re-encoded with AppendPrice decodes to itself.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`,
		`{"symbol":"BTCUSDT","price":1e3,"timestamp":"2025-05-08T06:12:38.1+02:00","x":[true,false,null,{}]}`,
		`{"symbol":"B\"T","price":0.5,"timestamp":"1999-12-31 23:59:59.999999z"}`,
		`[]`, `{}`, `{"price":"1"}`, `{"symbol":"a","price":-0,"timestamp":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder()
		got, err := d.Decode(b)
		want, ok := refDecode(b)
		if !ok {
			if err == nil && json.Valid(b) {
				t.Fatalf("accepted %q, which the reference rejects: %+v", b, got)
			}
			// Invalid UTF-8 and similar are accepted by the scanner but not by
			// encoding/json's stricter reading; the scanner's own errors suffice.
			return
		}
		if err != nil {
			t.Fatalf("rejected %q (%v), which the reference accepts as %+v", b, err, want)
		}
		if got != want {
			t.Fatalf("decoded %q as %+v, reference %+v", b, got, want)
		}
		again, err := d.Decode(AppendPrice(nil, got))
		if err != nil || again != got {
			t.Fatalf("round trip of %+v: %+v, %v", got, again, err)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	d := NewDecoder()
	line := []byte(`{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T04:12:38.352Z"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := d.Decode(line); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleDecoder_Decode() {
	d := NewDecoder()
	p, err := d.Decode([]byte(`{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2025-05-08T06:12:38.352999+02:00"}`))
	fmt.Println(p.Symbol, strconv.FormatFloat(p.Price, 'f', -1, 64), p.Time, err)
	_, err = d.Decode([]byte(`{"symbol":"BTCUSDT","price":"99190.48","timestamp":"2025-05-08T04:12:38Z"}`))
	fmt.Println(err)
	// Output:
	// BTCUSDT 99190.48 2025-05-08T04:12:38.352Z <nil>
	// price is not a JSON number
}
