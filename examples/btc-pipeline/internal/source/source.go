package source

import (
	"context"
	"time"

	"github.com/tidemark-go/tidemark/stream"
)

var (
	_ stream.Source[[]byte] = (*Binance)(nil)
	_ stream.Source[[]byte] = (*Synthetic)(nil)
	_ stream.Source[[]byte] = (*Replay)(nil)
)

// appendRecord appends a btc-price value whose price is already JSON number
// text, in btc.AppendPrice's field order. symbol must need no JSON escaping
// (the sources only build records for validated symbols).
func appendRecord(dst []byte, symbol string, price []byte, t stream.Time) []byte {
	dst = append(dst, `{"symbol":"`...)
	dst = append(dst, symbol...)
	dst = append(dst, `","price":`...)
	dst = append(dst, price...)
	dst = append(dst, `,"timestamp":"`...)
	dst = stream.AppendTime(dst, t)
	return append(dst, `"}`...)
}

// validSymbol reports whether s looks like an exchange symbol: 1 to 32
// upper-case ASCII letters and digits, so it needs no JSON escaping and no
// URL escaping beyond the query's own.
func validSymbol(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// millis truncates t to the millisecond (towards the past) in UTC.
func millis(t time.Time) time.Time { return stream.TimeOf(t).UTC() }

// sleep waits for d or until ctx is done, whichever comes first, and returns
// ctx.Err() in the latter case.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
