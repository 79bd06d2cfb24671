package btc

import "github.com/tidemark-go/tidemark/stream"

// ParseTime parses an RFC 3339 date-time, normalised to UTC and truncated to
// the millisecond: it is stream.ParseTime, kept under this name for the
// lab's call sites. Its errors wrap stream.ErrInvalidTime.
func ParseTime(b []byte) (stream.Time, error) { return stream.ParseTime(b) }

// AppendTime appends t as RFC 3339 in UTC with milliseconds,
// 2025-05-08T04:12:38.352Z: it is stream.AppendTime, kept under this name
// for the lab's call sites.
func AppendTime(dst []byte, t stream.Time) []byte { return stream.AppendTime(dst, t) }
