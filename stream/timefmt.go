package stream

import (
	"fmt"
)

// The errors ParseTime returns: made once, so that rejecting a time does not
// allocate either.
var (
	errTimeSyntax = fmt.Errorf("%w: not RFC 3339 (YYYY-MM-DDTHH:MM:SS, an optional fraction, then Z or ±HH:MM)", ErrInvalidTime)
	errTimeField  = fmt.Errorf("%w: month, day, hour, minute or second out of range", ErrInvalidTime)
	errTimeOffset = fmt.Errorf("%w: offset out of range (±23:59 at most)", ErrInvalidTime)
	errTimeYears  = fmt.Errorf("%w: outside the years 0000 to 9999 in UTC", ErrInvalidTime)
)

// The instants whose UTC form RFC 3339 can write: years 0000 to 9999.
var (
	minTextTime = Time(civilDays(0, 1, 1) * 86_400_000)
	maxTextTime = Time(civilDays(10_000, 1, 1)*86_400_000 - 1)
)

// timeLayout is how Time.String, and AppendTime, write a time.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// AppendTime appends t to dst as RFC 3339 in UTC with exactly three fraction
// digits, 2025-05-08T04:12:38.352Z, and returns the extended slice; ParseTime
// reads it back. It appends what t.String() returns, without allocating
// (beyond growing dst): for the instants outside the years 0000 to 9999,
// which RFC 3339 cannot write and ParseTime rejects, that is time.Time's
// form, a year of five or more digits or with a minus sign, and "-inf" and
// "+inf" for MinTime and MaxTime.
func AppendTime(dst []byte, t Time) []byte {
	if t < minTextTime || t > maxTextTime {
		switch t {
		case MinTime:
			return append(dst, "-inf"...)
		case MaxTime:
			return append(dst, "+inf"...)
		}
		return t.UTC().AppendFormat(dst, timeLayout)
	}
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
	y, m, d := civilDate(days)
	hh, mm, ss := int(rem/3600), int(rem/60%60), int(rem%60)
	return append(dst,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+hh/10), byte('0'+hh%10), ':', byte('0'+mm/10), byte('0'+mm%10), ':',
		byte('0'+ss/10), byte('0'+ss%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// ParseTime parses an RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS, an optional
// fraction of a second of one or more digits, and Z or a numeric offset
// ±HH:MM. As RFC 3339 allows, T and Z may be lower case and the T may be a
// space. The result is normalised to UTC and truncated to the millisecond
// towards the past (digits after the third are dropped); it is the same
// instant as time.Parse(time.RFC3339Nano, ...) gives, truncated by TimeOf.
//
// ParseTime returns an error wrapping ErrInvalidTime for anything else:
// another layout, a field out of range (month 13, February 30, hour 24, the
// leap second 60, an offset beyond ±23:59), or an instant whose UTC form
// falls outside the years 0000 to 9999 (0000-01-01T00:30:00+01:00), which
// AppendTime could not write back. It does not allocate, also when it fails,
// and does not keep b.
func ParseTime(b []byte) (Time, error) {
	if len(b) < len("2006-01-02T15:04:05Z") {
		return 0, errTimeSyntax
	}
	year, ok1 := timeDigits(b[0:4])
	month, ok2 := timeDigits(b[5:7])
	day, ok3 := timeDigits(b[8:10])
	hour, ok4 := timeDigits(b[11:13])
	minute, ok5 := timeDigits(b[14:16])
	sec, ok6 := timeDigits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || b[4] != '-' || b[7] != '-' ||
		(b[10] != 'T' && b[10] != 't' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return 0, errTimeSyntax
	}
	if month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || sec > 59 {
		return 0, errTimeField
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
			return 0, errTimeSyntax
		}
		for ; n < 3; n++ {
			ms *= 10
		}
	}
	if i >= len(b) {
		return 0, errTimeSyntax
	}
	offset := int64(0)
	switch b[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(b)-i != len("+07:00") || b[i+3] != ':' {
			return 0, errTimeSyntax
		}
		oh, okh := timeDigits(b[i+1 : i+3])
		om, okm := timeDigits(b[i+4 : i+6])
		if !okh || !okm {
			return 0, errTimeSyntax
		}
		if oh > 23 || om > 59 {
			return 0, errTimeOffset
		}
		offset = int64(oh*60+om) * 60
		if b[i] == '-' {
			offset = -offset
		}
		i += len("+07:00")
	default:
		return 0, errTimeSyntax
	}
	if i != len(b) {
		return 0, errTimeSyntax
	}
	secs := civilDays(year, month, day)*86400 + int64(hour*3600+minute*60+sec) - offset
	t := Time(secs*1000 + ms)
	if t < minTextTime || t > maxTextTime {
		return 0, errTimeYears
	}
	return t, nil
}

// timeDigits reads b as a decimal number of len(b) digits.
func timeDigits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysInMonth(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// civilDays returns the days since 1970-01-01 of a date of the proleptic
// Gregorian calendar (Howard Hinnant's days_from_civil).
func civilDays(y, m, d int) int64 {
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

// civilDate is the inverse of civilDays (Hinnant's civil_from_days).
func civilDate(z int64) (y, m, d int) {
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
