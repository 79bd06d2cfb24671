package stream_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
)

func TestParseTime(t *testing.T) {
	ts := stream.TimeOf(time.Date(2025, 5, 8, 4, 12, 38, 352_000_000, time.UTC))
	tests := []struct {
		name string
		in   string
		want stream.Time // when valid
		err  bool
	}{
		{name: "canonical", in: "2025-05-08T04:12:38.352Z", want: ts},
		{name: "offset normalised to UTC", in: "2025-05-08T06:12:38.352+02:00", want: ts},
		{name: "negative offset", in: "2025-05-07T23:42:38.352-04:30", want: ts},
		{name: "offset -00:00", in: "2025-05-08T04:12:38.352-00:00", want: ts},
		{name: "long fraction truncated", in: "2025-05-08T04:12:38.352999999Z", want: ts},
		{name: "very long fraction truncated", in: "2025-05-08T04:12:38.352999999999999999999999Z", want: ts},
		{name: "short fraction", in: "2025-05-08T04:12:38.3Z", want: ts - 52},
		{name: "two fraction digits", in: "2025-05-08T04:12:38.35Z", want: ts - 2},
		{name: "no fraction, lower-case t and z", in: "2025-05-08t04:12:38z", want: ts - 352},
		{name: "space separator", in: "2025-05-08 04:12:38.352Z", want: ts},
		{name: "epoch", in: "1970-01-01T00:00:00Z", want: 0},
		{name: "before the epoch: truncated towards the past", in: "1969-12-31T23:59:59.9999Z", want: -1},
		{name: "before the epoch, whole", in: "1969-12-31T23:59:59.001Z", want: -999},
		{name: "leap day", in: "2024-02-29T12:00:00Z", want: stream.TimeOf(time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC))},
		{name: "leap day of a 400th year", in: "2000-02-29T00:00:00Z", want: stream.TimeOf(time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC))},
		{name: "first instant", in: "0000-01-01T00:00:00Z", want: stream.TimeOf(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC))},
		{name: "last instant", in: "9999-12-31T23:59:59.999999Z", want: stream.TimeOf(time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC))},
		{name: "offset into year 0000", in: "0001-01-01T00:30:00+01:00", want: stream.TimeOf(time.Date(0, 12, 31, 23, 30, 0, 0, time.UTC))},

		{name: "empty", in: "", err: true},
		{name: "no offset", in: "2025-05-08T04:12:38.352", err: true},
		{name: "impossible date", in: "2025-02-30T04:12:38Z", err: true},
		{name: "February 29 of a common year", in: "2025-02-29T04:12:38Z", err: true},
		{name: "February 29 of 1900", in: "1900-02-29T04:12:38Z", err: true},
		{name: "month 13", in: "2025-13-08T04:12:38Z", err: true},
		{name: "month 0", in: "2025-00-08T04:12:38Z", err: true},
		{name: "day 0", in: "2025-05-00T04:12:38Z", err: true},
		{name: "hour 24", in: "2025-05-08T24:00:00Z", err: true},
		{name: "minute 60", in: "2025-05-08T04:60:00Z", err: true},
		{name: "leap second", in: "2025-06-30T23:59:60Z", err: true},
		{name: "empty fraction", in: "2025-05-08T04:12:38.Z", err: true},
		{name: "comma fraction", in: "2025-05-08T04:12:38,352Z", err: true},
		{name: "offset after Z", in: "2025-05-08T04:12:38Z+01:00", err: true},
		{name: "offset hour 24", in: "2025-05-08T04:12:38+24:00", err: true},
		{name: "offset minute 60", in: "2025-05-08T04:12:38+01:60", err: true},
		{name: "offset without colon", in: "2025-05-08T04:12:38+0100", err: true},
		{name: "short offset", in: "2025-05-08T04:12:38+01", err: true},
		{name: "one-digit hour", in: "2025-05-08T4:12:38.352Z", err: true},
		{name: "other separator", in: "2025-05-08X04:12:38Z", err: true},
		{name: "signed year", in: "+2025-05-08T04:12:38Z", err: true},
		{name: "trailing data", in: "2025-05-08T04:12:38.352Z ", err: true},
		{name: "non-digit in the fraction's place", in: "2025-05-08T04:12:38.35xZ", err: true},
		{name: "before year 0000 in UTC", in: "0000-01-01T00:30:00+01:00", err: true},
		{name: "after year 9999 in UTC", in: "9999-12-31T23:30:00-01:00", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := stream.ParseTime([]byte(tc.in))
			if tc.err {
				assert.ErrorIs(t, err, stream.ErrInvalidTime, "ParseTime(%q) is an invalid time", tc.in)
				return
			}
			require.NoError(t, err, "ParseTime(%q)", tc.in)
			assert.Equal(t, tc.want, got, "ParseTime(%q): %v", tc.in, got)
		})
	}
}

func TestAppendTime(t *testing.T) {
	tests := []struct {
		t    stream.Time
		want string
	}{
		{stream.TimeOf(time.Date(2025, 5, 8, 4, 12, 38, 352_000_000, time.UTC)), "2025-05-08T04:12:38.352Z"},
		{0, "1970-01-01T00:00:00.000Z"},
		{-1, "1969-12-31T23:59:59.999Z"},
		{stream.TimeOf(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)), "0000-01-01T00:00:00.000Z"},
		{stream.TimeOf(time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC)), "9999-12-31T23:59:59.999Z"},
		{stream.TimeOf(time.Date(2000, 2, 29, 7, 8, 9, 10_000_000, time.UTC)), "2000-02-29T07:08:09.010Z"},
		{stream.TimeOf(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)), "10000-01-01T00:00:00.000Z"},
		{stream.TimeOf(time.Date(-1, 12, 31, 23, 59, 59, 999_000_000, time.UTC)), "-0001-12-31T23:59:59.999Z"},
		{stream.MinTime, "-inf"},
		{stream.MaxTime, "+inf"},
	}
	for _, tc := range tests {
		got := stream.AppendTime([]byte("t="), tc.t)
		assert.Equal(t, "t="+tc.want, string(got), "AppendTime(%d) appends", int64(tc.t))
		assert.Equal(t, tc.t.String(), tc.want, "Time.String(%d) agrees", int64(tc.t))
	}
}

// TestTimeTextAgainstTimePackage writes random instants of the years 0000
// to 9999 and of far beyond, at random offsets and with fractions of 0 to
// 12 digits, with the time package, and checks ParseTime and AppendTime
// against it.
func TestTimeTextAgainstTimePackage(t *testing.T) {
	lo := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for _, seed := range testSeeds(t) {
		r := rand.New(rand.NewPCG(seed, 21))
		for range 20_000 {
			tm := time.Unix(lo+r.Int64N(hi-lo), r.Int64N(1e9)).In(time.FixedZone("", (r.IntN(24*60*2-1)-(24*60-1))*60))
			if y := tm.Year(); y < 0 || y > 9999 {
				continue // the local form has a year RFC 3339 cannot write
			}
			layout := "2006-01-02T15:04:05"
			if n := r.IntN(13); n > 0 {
				layout += "." + "000000000000"[:n]
			}
			s := tm.Format(layout + "Z07:00")
			ref, err := time.Parse(time.RFC3339Nano, s)
			require.NoError(t, err, "seed %d: time.Parse(%q)", seed, s)
			want := stream.TimeOf(ref)
			got, err := stream.ParseTime([]byte(s))
			require.NoError(t, err, "seed %d: ParseTime(%q)", seed, s)
			require.Equal(t, want, got, "seed %d: ParseTime(%q)", seed, s)
			require.Equal(t, time.UnixMilli(int64(got)).UTC().Format("2006-01-02T15:04:05.000Z07:00"), string(stream.AppendTime(nil, got)),
				"seed %d: AppendTime of %q", seed, s)
		}
		for range 2000 { // any instant: AppendTime writes what String does
			tm := stream.Time(r.Int64())
			require.Equal(t, tm.String(), string(stream.AppendTime(nil, tm)), "seed %d: AppendTime(%d)", seed, int64(tm))
		}
	}
}

func TestTimeTextDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 64)
	valid := []byte("2025-05-08T06:12:38.352123+02:00")
	invalid := []byte("2025-02-30T04:12:38Z")
	var sink stream.Time
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		tm, _ := stream.ParseTime(valid)
		sink += tm
	}), "ParseTime of a valid time")
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		_, err := stream.ParseTime(invalid)
		if err == nil {
			sink++
		}
	}), "ParseTime of an invalid time")
	assert.Zero(t, testing.AllocsPerRun(1000, func() { buf = stream.AppendTime(buf[:0], sink) }), "AppendTime in range")
	far := stream.Time(math.MaxInt64 / 3)
	assert.Zero(t, testing.AllocsPerRun(1000, func() { buf = stream.AppendTime(buf[:0], far) }), "AppendTime out of range")
}

// rfc3339 is RFC 3339's grammar for a date-time (section 5.6, with the
// lower-case letters and the space its notes allow): time.Parse is more
// lenient (it takes a comma before the fraction, offsets up to ±99:59).
var rfc3339 = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?(?:([Zz])|([+-])(\d{2}):(\d{2}))$`)

// refParseTime is ParseTime's reference: the grammar, then time.Parse with
// time.RFC3339Nano on the text with upper-case letters, the years 0000 to
// 9999 of the UTC form, and TimeOf's truncation.
func refParseTime(b []byte) (stream.Time, bool) {
	g := rfc3339.FindSubmatch(b)
	if g == nil {
		return 0, false
	}
	s := string(g[1]) + "T" + string(g[2]) + string(g[3])
	if len(g[4]) > 0 {
		s += "Z"
	} else {
		var oh, om int
		fmt.Sscan(string(g[6]), &oh)
		fmt.Sscan(string(g[7]), &om)
		if oh > 23 || om > 59 {
			return 0, false
		}
		s += string(g[5]) + string(g[6]) + ":" + string(g[7])
	}
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || tm.UTC().Year() < 0 || tm.UTC().Year() > 9999 {
		return 0, false
	}
	return stream.TimeOf(tm), true
}

// FuzzParseTime checks ParseTime against refParseTime on any input: both
// accept the same texts, with the same result, which AppendTime writes in a
// form that ParseTime reads back; a rejection wraps ErrInvalidTime.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{
		"2025-05-08T04:12:38.352Z", "2025-05-08T06:12:38.352+02:00", "2025-05-07T23:42:38.352-04:30",
		"2025-05-08T04:12:38.352999999Z", "2025-05-08T04:12:38.3Z", "2025-05-08t04:12:38z", "2025-05-08 04:12:38.352Z",
		"2025-05-08T04:12:38.352", "2025-02-30T04:12:38Z", "2025-06-30T23:59:60Z", "2025-05-08T04:12:38.Z",
		"2025-05-08T04:12:38Z+01:00", "2025-05-08T04:12:38,5Z", "2025-05-08T04:12:38+24:00", "0000-01-01T00:30:00+01:00",
		"9999-12-31T23:59:59.999999999-00:00", "1969-12-31T23:59:59.9999Z",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := stream.ParseTime(b)
		want, ok := refParseTime(b)
		if !ok {
			if err == nil {
				t.Fatalf("ParseTime(%q) = %v, which the reference rejects", b, got)
			}
			if !errors.Is(err, stream.ErrInvalidTime) {
				t.Fatalf("ParseTime(%q): %v does not wrap ErrInvalidTime", b, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseTime(%q): %v; the reference reads %v", b, err, want)
		}
		if got != want {
			t.Fatalf("ParseTime(%q) = %v (%d), the reference %v (%d)", b, got, int64(got), want, int64(want))
		}
		text := stream.AppendTime(nil, got)
		back, err := stream.ParseTime(text)
		if err != nil || back != got {
			t.Fatalf("ParseTime(%q) = %v, written %q, read back %v, %v", b, got, text, back, err)
		}
	})
}

func BenchmarkParseTime(b *testing.B) {
	for _, s := range []string{"2025-05-08T04:12:38.352Z", "2025-05-08T06:12:38.352123+02:00"} {
		b.Run(s, func(b *testing.B) {
			in := []byte(s)
			var sum stream.Time
			b.ReportAllocs()
			for b.Loop() {
				tm, err := stream.ParseTime(in)
				if err != nil {
					b.Fatal(err)
				}
				sum += tm
			}
			if sum == 0 {
				b.Fatal("no time")
			}
		})
	}
}

func BenchmarkAppendTime(b *testing.B) {
	buf := make([]byte, 0, 32)
	tm := stream.TimeOf(time.Date(2025, 5, 8, 4, 12, 38, 352_000_000, time.UTC))
	b.ReportAllocs()
	for b.Loop() {
		tm++
		buf = stream.AppendTime(buf[:0], tm)
	}
	if len(buf) != len("2025-05-08T04:12:38.352Z") {
		b.Fatalf("wrote %q", buf)
	}
}
