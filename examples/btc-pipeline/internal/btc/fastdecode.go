package btc

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
	"github.com/tidemark-go/tidemark/zscore"
)

// The codecs of the stages' own records (btc-price-moving and
// btc-price-zscore) decode the shape the stages write with the scanner of
// the btc-price decoder, without reflection: encoding/json took a third of
// the zscore stage's time. Anything else (escapes in strings, unknown or
// repeated fields, a field of another type, invalid UTF-8, a number out of
// range) is left to encoding/json, so the result, or the error, is exactly
// encoding/json's; the fuzz tests check that the two agree.

// fastMoving decodes a btc-price-moving value of the canonical shape; ok is
// false when b is not of that shape.
func (c *MovingCodec) fastMoving(b []byte) (e stream.Event[[]window.Statistics], ok bool) {
	s := scanner{b: b}
	var (
		ts, sym []byte
		seen    uint8
		stats   []window.Statistics
		bad     bool
	)
	s.ws()
	s.object(1, func(key []byte, esc bool) {
		switch {
		case esc || bad:
			bad = true
			s.value(1)
		case string(key) == "timestamp" && seen&1 == 0:
			seen |= 1
			ts = s.plainString(&bad)
		case string(key) == "symbol" && seen&2 == 0:
			seen |= 2
			sym = s.plainString(&bad)
		case string(key) == "windows" && seen&4 == 0:
			seen |= 4
			stats = c.fastWindows(&s, &bad)
		default:
			bad = true
			s.value(1)
		}
	})
	s.ws()
	if s.err || bad || s.i != len(b) || seen != 7 || len(sym) == 0 || len(stats) != len(c.labels) {
		return e, false
	}
	t, err := stream.ParseTime(ts)
	if err != nil {
		return e, false
	}
	return stream.Event[[]window.Statistics]{Key: c.syms.intern(sym), Time: t, Value: stats}, true
}

// fastWindows scans the windows array of a btc-price-moving value.
func (c *MovingCodec) fastWindows(s *scanner, bad *bool) []window.Statistics {
	if s.i >= len(s.b) || s.b[s.i] != '[' {
		*bad = true
		s.value(1)
		return nil
	}
	stats := make([]window.Statistics, 0, len(c.labels))
	s.array(1, func() bool {
		var (
			w     = window.Statistics{Variance: math.NaN()}
			label []byte
			seen  uint8
		)
		s.object(2, func(key []byte, esc bool) {
			switch {
			case esc || *bad:
				*bad = true
				s.value(2)
			case string(key) == "window" && seen&1 == 0:
				seen |= 1
				label = s.plainString(bad)
			case string(key) == "avg_price" && seen&2 == 0:
				seen |= 2
				w.Mean = s.float(bad)
			case string(key) == "std_price" && seen&4 == 0:
				seen |= 4
				if s.i < len(s.b) && s.b[s.i] == 'n' {
					s.lit("null")
					w.Std = math.NaN()
				} else {
					w.Std = s.float(bad)
				}
			case string(key) == "count" && seen&8 == 0:
				seen |= 8
				n, err := strconv.ParseInt(bstr(s.num()), 10, 64)
				*bad = *bad || err != nil
				w.Count = n
			default:
				*bad = true
				s.value(2)
			}
		})
		if *bad || seen != 15 || len(stats) >= len(c.labels) || string(label) != c.labels[len(stats)] {
			*bad = true
			return false
		}
		stats = append(stats, w)
		return true
	})
	if *bad || s.err {
		return nil
	}
	return stats
}

// fastZScore decodes a btc-price-zscore value of the canonical shape; ok is
// false when b is not of that shape.
func (c *ZScoreCodec) fastZScore(b []byte) (e stream.Event[ScoredRecord], ok bool) {
	s := scanner{b: b}
	var (
		ts, sym []byte
		seen    uint8
		rec     ScoredRecord
		bad     bool
	)
	s.ws()
	s.object(1, func(key []byte, esc bool) {
		switch {
		case esc || bad:
			bad = true
			s.value(1)
		case string(key) == "timestamp" && seen&1 == 0:
			seen |= 1
			ts = s.plainString(&bad)
		case string(key) == "symbol" && seen&2 == 0:
			seen |= 2
			sym = s.plainString(&bad)
		case string(key) == "price" && seen&4 == 0:
			seen |= 4
			rec.Price = s.float(&bad)
		case string(key) == "zscores" && seen&8 == 0:
			seen |= 8
			rec.Scores = c.fastScores(&s, &bad)
		default:
			bad = true
			s.value(1)
		}
	})
	s.ws()
	if s.err || bad || s.i != len(b) || seen != 15 || len(sym) == 0 || len(rec.Scores) != len(c.labels) {
		return e, false
	}
	t, err := stream.ParseTime(ts)
	if err != nil {
		return e, false
	}
	return stream.Event[ScoredRecord]{Key: c.syms.intern(sym), Time: t, Value: rec}, true
}

// fastScores scans the zscores array of a btc-price-zscore value.
func (c *ZScoreCodec) fastScores(s *scanner, bad *bool) []zscore.Score {
	if s.i >= len(s.b) || s.b[s.i] != '[' {
		*bad = true
		s.value(1)
		return nil
	}
	scores := make([]zscore.Score, 0, len(c.labels))
	s.array(1, func() bool {
		var (
			z     zscore.Score
			label []byte
			seen  uint8
		)
		s.object(2, func(key []byte, esc bool) {
			switch {
			case esc || *bad:
				*bad = true
				s.value(2)
			case string(key) == "window" && seen&1 == 0:
				seen |= 1
				label = s.plainString(bad)
			case string(key) == "zscore_price" && seen&2 == 0:
				seen |= 2
				if s.i < len(s.b) && s.b[s.i] == 'n' {
					s.lit("null")
				} else {
					z = zscore.Score{Z: s.float(bad), OK: true}
				}
			default:
				*bad = true
				s.value(2)
			}
		})
		if *bad || seen != 3 || len(scores) >= len(c.labels) || string(label) != c.labels[len(scores)] {
			*bad = true
			return false
		}
		scores = append(scores, z)
		return true
	})
	if *bad || s.err {
		return nil
	}
	return scores
}

// plainString scans a string value without escapes and of valid UTF-8 (what
// encoding/json would return unchanged); anything else sets bad.
func (s *scanner) plainString(bad *bool) []byte {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		*bad = true
		s.value(1)
		return nil
	}
	raw, esc := s.str()
	if esc || !utf8.Valid(raw) {
		*bad = true
	}
	return raw
}

// float scans a number value as encoding/json reads it into a float64; a
// value of another type, or out of range, sets bad.
func (s *scanner) float(bad *bool) float64 {
	if s.i >= len(s.b) || !(s.b[s.i] == '-' || s.b[s.i] >= '0' && s.b[s.i] <= '9') {
		*bad = true
		s.value(1)
		return 0
	}
	f, err := strconv.ParseFloat(bstr(s.num()), 64)
	if err != nil {
		*bad = true
	}
	return f
}

// symbols interns the symbols a codec decodes, so that a record of a known
// symbol does not allocate its key. It is used by one goroutine.
type symbols map[string]string

func (m *symbols) intern(b []byte) string {
	if s, ok := (*m)[string(b)]; ok {
		return s
	}
	if *m == nil {
		*m = make(map[string]string)
	}
	if len(*m) >= 1<<16 { // bounded: a flood of symbols does not grow it
		clear(*m)
	}
	s := string(b)
	(*m)[s] = s
	return s
}
