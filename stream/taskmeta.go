package stream

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The checkpoint metadata is one line of text, committed with the offset:
//
//	tm2 r=<replay offset> m=<largest time> w=<task watermark>
//
// with times in milliseconds since the epoch ("-" for none). It stays under
// 100 bytes, far below Kafka's offset.metadata.max.bytes (4096 by default).
// The version tag comes first; a reader refuses versions it does not know.
const metaVersion = "tm2"

type meta struct {
	r    int64
	m, w Time
}

func formatMeta(m meta) string {
	b := make([]byte, 0, 96)
	b = append(b, metaVersion...)
	b = append(b, " r="...)
	b = strconv.AppendInt(b, m.r, 10)
	b = appendMetaTime(append(b, " m="...), m.m)
	b = appendMetaTime(append(b, " w="...), m.w)
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
	m := meta{r: -1, m: MinTime, w: MinTime}
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
