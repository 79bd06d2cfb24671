package btc

import (
	"errors"

	"github.com/tidemark-go/tidemark/stream"
)

var errTime = errors.New("timestamp is not RFC 3339 with an offset")

// ParseTime parses an RFC 3339 date-time with an offset: YYYY-MM-DDTHH:MM:SS,
// an optional fraction of any length, and Z or ±HH:MM. The separator may be T,
// t or a space (RFC 3339 section 5.6 allows the latter two) and Z may be z. The
// result is normalised to UTC and truncated to the millisecond; a time whose UTC
// form falls outside the years 0000..9999 is rejected, since no RFC 3339
// timestamp could carry it onwards.
func ParseTime(b []byte) (stream.Time, error) {
	if len(b) < 20 {
		return 0, errTime
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || b[4] != '-' || b[7] != '-' ||
		(b[10] != 'T' && b[10] != 't' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return 0, errTime
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || sec > 59 {
		return 0, errTime
	}
	i := 19
	ms := int64(0)
	if b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if i-start < 3 {
				ms = ms*10 + int64(b[i]-'0')
			}
			i++
		}
		n := i - start
		if n == 0 {
			return 0, errTime
		}
		for ; n < 3; n++ {
			ms *= 10
		}
	}
	if i >= len(b) {
		return 0, errTime
	}
	offset := int64(0)
	switch b[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(b)-i != 6 || b[i+3] != ':' {
			return 0, errTime
		}
		oh, okh := digits(b[i+1 : i+3])
		om, okm := digits(b[i+4 : i+6])
		if !okh || !okm || oh > 23 || om > 59 {
			return 0, errTime
		}
		offset = int64(oh*60+om) * 60
		if b[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return 0, errTime
	}
	if i != len(b) {
		return 0, errTime
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec) - offset
	t := stream.Time(secs*1000 + ms)
	if t < minRFC3339 || t > maxRFC3339 {
		return 0, errTime // its UTC form is outside years 0000..9999: it could not be written back
	}
	return t, nil
}

// The instants whose UTC form RFC 3339 can write: years 0000 to 9999.
var (
	minRFC3339 = stream.Time(daysFromCivil(0, 1, 1) * 86400 * 1000)
	maxRFC3339 = stream.Time(daysFromCivil(10000, 1, 1)*86400*1000 - 1)
)

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian date
// (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y, m, d int) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	m = int(mp + 3)
	if m > 12 {
		m -= 12
	}
	y = int(yoe + era*400)
	if m <= 2 {
		y++
	}
	return y, m, d
}

// AppendTime appends t as RFC 3339 in UTC with milliseconds, 2025-05-08T04:12:38.352Z.
// Years outside 0000..9999 are clamped to that range's format width only in
// the sense that they are printed with at least four digits.
func AppendTime(dst []byte, t stream.Time) []byte {
	ms := int64(t) % 1000
	secs := int64(t) / 1000
	if ms < 0 {
		ms += 1000
		secs--
	}
	days := secs / 86400
	rem := secs % 86400
	if rem < 0 {
		rem += 86400
		days--
	}
	y, m, d := civilFromDays(days)
	if y < 0 || y > 9999 {
		// Out of RFC 3339's range; print the value as stream.Time does.
		return append(dst, t.String()...)
	}
	hh, mm, ss := int(rem/3600), int(rem/60%60), int(rem%60)
	return append(dst,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+hh/10), byte('0'+hh%10), ':', byte('0'+mm/10), byte('0'+mm%10), ':',
		byte('0'+ss/10), byte('0'+ss%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}
