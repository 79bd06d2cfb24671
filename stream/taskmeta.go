package stream

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The checkpoint metadata is one line of text, committed with the offset:
//
//	tm2 r=<replay offset> m=<largest time> w=<task watermark> [f=<floor>] [x=<ranges>]
//
// with times in milliseconds since the epoch ("-" for none). f is the
// input's watermark floor when an idle advance raised it above what its
// largest time gives (Idle), and x the records that were late only because
// of such an advance, as comma-separated offset ranges "a+n" (the records
// at offsets a to a+n, n omitted when 0), at most maxIdleLateRanges of them.
// Without idle advances it stays under 100 bytes, and with them under
// 3,000, below Kafka's offset.metadata.max.bytes (4096 by default). The
// version tag comes first; a reader refuses versions it does not know and
// ignores fields it does not know (a later minor revision's).
const metaVersion = "tm2"

type meta struct {
	r       int64
	m, w, f Time
	x       offsetRanges
}

func formatMeta(m meta) string {
	b := make([]byte, 0, 96)
	b = append(b, metaVersion...)
	b = append(b, " r="...)
	b = strconv.AppendInt(b, m.r, 10)
	b = appendMetaTime(append(b, " m="...), m.m)
	b = appendMetaTime(append(b, " w="...), m.w)
	if m.f != MinTime {
		b = appendMetaTime(append(b, " f="...), m.f)
	}
	if len(m.x) > 0 {
		b = append(b, " x="...)
		for i, r := range m.x {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, r.from, 10)
			if r.to > r.from {
				b = append(b, '+')
				b = strconv.AppendInt(b, r.to-r.from, 10)
			}
		}
	}
	return string(b)
}

func appendMetaTime(b []byte, t Time) []byte {
	if t == MinTime {
		return append(b, '-')
	}
	return strconv.AppendInt(b, int64(t), 10)
}

func parseMeta(s string) (meta, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 || fields[0] != metaVersion {
		return meta{}, fmt.Errorf("not a %s checkpoint", metaVersion)
	}
	m := meta{r: -1, m: MinTime, w: MinTime, f: MinTime}
	seen := map[string]bool{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok || seen[k] {
			return meta{}, fmt.Errorf("field %q", f)
		}
		seen[k] = true
		var err error
		switch k {
		case "r":
			m.r, err = strconv.ParseInt(v, 10, 64)
			if err == nil && m.r < 0 {
				err = errors.New("negative")
			}
		case "m":
			m.m, err = parseMetaTime(v)
		case "w":
			m.w, err = parseMetaTime(v)
		case "f":
			m.f, err = parseMetaTime(v)
		case "x":
			m.x, err = parseRanges(v)
		default:
			continue // a field of a later minor revision
		}
		if err != nil {
			return meta{}, fmt.Errorf("field %q: %w", f, err)
		}
	}
	if !seen["r"] {
		return meta{}, errors.New("missing r")
	}
	return m, nil
}

func parseMetaTime(v string) (Time, error) {
	if v == "-" {
		return MinTime, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return Time(n), err
}

func parseRanges(v string) (offsetRanges, error) {
	var out offsetRanges
	for part := range strings.SplitSeq(v, ",") {
		a, n, hasN := strings.Cut(part, "+")
		from, err := strconv.ParseInt(a, 10, 64)
		if err != nil || from < 0 {
			return nil, fmt.Errorf("range %q", part)
		}
		to := from
		if hasN {
			d, err := strconv.ParseInt(n, 10, 64)
			if err != nil || d <= 0 || from+d < from {
				return nil, fmt.Errorf("range %q", part)
			}
			to = from + d
		}
		if len(out) > 0 && from <= out[len(out)-1].to {
			return nil, fmt.Errorf("range %q out of order", part)
		}
		out = append(out, offsetRange{from, to})
	}
	if len(out) > maxIdleLateRanges {
		return nil, fmt.Errorf("%d ranges, more than %d", len(out), maxIdleLateRanges)
	}
	return out, nil
}

// maxIdleLateRanges bounds the ranges of idle-late records a checkpoint
// keeps; beyond it the oldest are forgotten (a replay then takes those
// records as it finds them).
const maxIdleLateRanges = 128

// offsetRange is the records at offsets from to to, both included.
type offsetRange struct{ from, to int64 }

// offsetRanges are records by offset ranges, in increasing order.
type offsetRanges []offsetRange

// add adds the record at off, which is above every record added so far;
// extend says that the last record pushed before it was added too, so that
// the last range grows over the offsets between (which hold no record of
// the input: transaction markers, compacted records).
func (rs *offsetRanges) add(off int64, extend bool) {
	if n := len(*rs); extend && n > 0 {
		(*rs)[n-1].to = off
		return
	}
	if len(*rs) == maxIdleLateRanges {
		*rs = append((*rs)[:0], (*rs)[1:]...)
	}
	*rs = append(*rs, offsetRange{off, off})
}

// has reports whether off is in a range.
func (rs offsetRanges) has(off int64) bool {
	i, j := 0, len(rs)
	for i < j {
		h := int(uint(i+j) >> 1)
		if rs[h].to < off {
			i = h + 1
		} else {
			j = h
		}
	}
	return i < len(rs) && rs[i].from <= off
}

// dropBelow forgets the ranges that end below off.
func (rs *offsetRanges) dropBelow(off int64) {
	i := 0
	for i < len(*rs) && (*rs)[i].to < off {
		i++
	}
	if i > 0 {
		*rs = append((*rs)[:0], (*rs)[i:]...)
	}
}
