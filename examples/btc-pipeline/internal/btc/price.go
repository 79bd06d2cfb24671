package btc

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/tidemark-go/tidemark/stream"
)

// MaxPrice is the largest price a btc-price record may carry: far above any
// traded price, and low enough that the statistics of a window of such
// prices are finite (squares of 1e300 overflow float64, which would make a
// standard deviation null with two events). A larger price is invalid
// (ErrBadPrice).
const MaxPrice = 1e15

// Price is a decoded btc-price record.
type Price struct {
	Symbol string
	Price  float64
	Time   stream.Time
}

// The kinds of invalid btc-price records. Each is the reason carried to the
// dead-letter topic, and the unit of "log once per kind".
var (
	ErrNotJSON      = errors.New("not JSON")
	ErrNotObject    = errors.New("not a JSON object")
	ErrNoSymbol     = errors.New("symbol missing")
	ErrSymbolType   = errors.New("symbol is not a non-empty string")
	ErrSymbolUTF8   = errors.New("symbol is not valid UTF-8")
	ErrNoPrice      = errors.New("price missing")
	ErrPriceType    = errors.New("price is not a JSON number")
	ErrBadPrice     = errors.New("price is not > 0 and at most 1e15")
	ErrNoTimestamp  = errors.New("timestamp missing")
	ErrTimeType     = errors.New("timestamp is not a string")
	ErrBadTimestamp = errors.New("timestamp is not RFC 3339 with an offset")
	ErrNotUTF8      = errors.New("a string is not valid UTF-8")
	ErrTooDeep      = fmt.Errorf("values nest more than %d levels deep", maxDepth)
)

// Reasons lists every decode error kind, for counters and logs.
var Reasons = []error{ErrNotJSON, ErrNotObject, ErrNoSymbol, ErrSymbolType, ErrSymbolUTF8, ErrNoPrice,
	ErrPriceType, ErrBadPrice, ErrNoTimestamp, ErrTimeType, ErrBadTimestamp, ErrNotUTF8, ErrTooDeep}

// Decoder decodes btc-price values without reflection. It interns symbols, so
// decoding a record of a known symbol does not allocate. A Decoder is not safe
// for concurrent use.
type Decoder struct {
	symbols map[string]string
}

// NewDecoder returns a Decoder.
func NewDecoder() *Decoder { return &Decoder{symbols: make(map[string]string)} }

// maxDepth is how deep values may nest, as in encoding/json: a valid record
// whose ignored fields nest deeply is accepted as encoding/json would, and
// one that nests deeper is invalid with ErrTooDeep.
const maxDepth = 10000

type scanner struct {
	b    []byte
	i    int
	err  bool
	deep bool // err because of maxDepth
	high bool // a string has a byte >= 0x80: check the UTF-8
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str scans a JSON string starting at '"'; it returns the raw contents and
// whether they contain escapes.
func (s *scanner) str() (raw []byte, escaped bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		s.err = true
		return nil, false
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, escaped
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				s.err = true
				return nil, false
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					s.err = true
					return nil, false
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						s.err = true
						return nil, false
					}
				}
				s.i += 6
			default:
				s.err = true
				return nil, false
			}
		case c < 0x20:
			s.err = true
			return nil, false
		case c >= 0x80:
			s.high = true
			s.i++
		default:
			s.i++
		}
	}
	s.err = true
	return nil, false
}

// num scans a JSON number and returns its text.
func (s *scanner) num() []byte {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
	default:
		s.err = true
		return nil
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		d := s.i
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
		if s.i == d {
			s.err = true
			return nil
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		d := s.i
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
		if s.i == d {
			s.err = true
			return nil
		}
	}
	return s.b[start:s.i]
}

func (s *scanner) lit(word string) {
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return
	}
	s.err = true
}

// value skips any JSON value and reports its kind by first byte. depth is
// how many arrays and objects enclose it.
func (s *scanner) value(depth int) byte {
	if s.i >= len(s.b) {
		s.err = true
		return 0
	}
	c := s.b[s.i]
	switch {
	case c == '"':
		s.str()
	case c == '-' || c >= '0' && c <= '9':
		s.num()
		c = '0'
	case c == 't':
		s.lit("true")
	case c == 'f':
		s.lit("false")
	case c == 'n':
		s.lit("null")
	case c == '[':
		s.array(depth, func() bool { s.value(depth + 1); return true })
	case c == '{':
		s.object(depth, nil)
	default:
		s.err = true
	}
	return c
}

// array scans an array enclosed by depth arrays and objects, the scanner at
// its '['. It calls elem with the scanner at each element, which elem must
// consume (its depth is depth+1); elem returns false to stop the scan there,
// when the caller gives up on the value.
func (s *scanner) array(depth int, elem func() bool) {
	if depth+1 > maxDepth {
		s.err, s.deep = true, true
		return
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return
	}
	for !s.err {
		s.ws()
		if !elem() || s.closes(']') {
			return
		}
	}
}

// closes scans what follows a member of an array or an object: a ',' before
// the next member, or the container's closing byte, when it returns true;
// anything else is an error.
func (s *scanner) closes(close byte) bool {
	s.ws()
	switch {
	case s.i >= len(s.b):
		s.err = true
	case s.b[s.i] == ',':
		s.i++
	case s.b[s.i] == close:
		s.i++
		return true
	default:
		s.err = true
	}
	return false
}

// object scans an object enclosed by depth arrays and objects; for each
// member it calls field (if not nil) with the scanner positioned at the
// value, which field must consume (its depth is depth+1).
func (s *scanner) object(depth int, field func(key []byte, escaped bool)) {
	if depth+1 > maxDepth || s.i >= len(s.b) || s.b[s.i] != '{' {
		s.err, s.deep = true, depth+1 > maxDepth
		return
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return
	}
	for !s.err {
		s.ws()
		key, esc := s.str()
		if s.err {
			return
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			s.err = true
			return
		}
		s.i++
		s.ws()
		if field != nil {
			field(key, esc)
		} else {
			s.value(depth + 1)
		}
		if s.closes('}') {
			return
		}
	}
}

// unquote decodes the contents of a JSON string that has escapes.
func unquote(raw []byte) (string, bool) {
	var v string
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	if err := json.Unmarshal(q, &v); err != nil {
		return "", false
	}
	return v, true
}

func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// Decode decodes one btc-price value. Other fields are ignored; when a field
// appears twice the last one wins, as in encoding/json. The error is one of
// the kinds above.
func (d *Decoder) Decode(b []byte) (Price, error) {
	if p, ok, err := d.decodeCanonical(b); ok {
		return p, err
	}
	return d.decodeScan(b)
}

// decodeScan is Decode for any value: a scan of the whole JSON text.
func (d *Decoder) decodeScan(b []byte) (Price, error) {
	s := scanner{b: b}
	s.ws()
	if s.i >= len(b) {
		return Price{}, ErrNotJSON
	}
	if b[s.i] != '{' {
		// Valid JSON of another kind, or not JSON at all.
		s.value(0)
		s.ws()
		if s.err || s.i != len(b) {
			return Price{}, s.syntaxError()
		}
		return Price{}, ErrNotObject
	}
	var (
		p                  Price
		symKind, priceKind byte // first byte of each field's value; 0 = missing
		timeKind           byte
		symRaw, priceRaw   []byte
		timeRaw            []byte
		symEsc, timeEsc    bool
	)
	s.object(0, func(key []byte, esc bool) {
		k := bstr(key)
		if esc {
			var ok bool
			if k, ok = unquote(key); !ok {
				s.err = true
				return
			}
		}
		start := s.i
		switch k {
		case "symbol":
			symKind = s.value(1)
			if symKind == '"' && !s.err {
				symRaw = b[start+1 : s.i-1]
				symEsc = bytesHasBackslash(symRaw)
			}
		case "price":
			priceKind = s.value(1)
			priceRaw = b[start:s.i]
		case "timestamp":
			timeKind = s.value(1)
			if timeKind == '"' && !s.err {
				timeRaw = b[start+1 : s.i-1]
				timeEsc = bytesHasBackslash(timeRaw)
			}
		default:
			s.value(1)
		}
	})
	s.ws()
	if s.err || s.i != len(b) {
		return Price{}, s.syntaxError()
	}
	switch {
	case symKind == 0:
		return Price{}, ErrNoSymbol
	case symKind != '"' || len(symRaw) == 0:
		return Price{}, ErrSymbolType
	case !utf8.Valid(symRaw) || symEsc && loneSurrogate(symRaw):
		// encoding/json would replace the invalid bytes (or the escaped
		// half of a surrogate pair, which UTF-8 cannot encode) with
		// U+FFFD: a symbol that is not what was sent.
		return Price{}, ErrSymbolUTF8
	case s.high && !utf8.Valid(b):
		// JSON text is UTF-8; an ignored field that is not would be
		// copied into no output, but the record is not JSON.
		return Price{}, ErrNotUTF8
	case priceKind == 0:
		return Price{}, ErrNoPrice
	case priceKind != '0':
		return Price{}, ErrPriceType
	case timeKind == 0:
		return Price{}, ErrNoTimestamp
	case timeKind != '"':
		return Price{}, ErrTimeType
	}
	if symEsc {
		sym, ok := unquote(symRaw)
		if !ok || sym == "" {
			return Price{}, ErrSymbolType
		}
		p.Symbol = d.intern(sym)
	} else {
		p.Symbol = d.internBytes(symRaw)
	}
	v, err := strconv.ParseFloat(bstr(priceRaw), 64)
	if err != nil || !(v > 0) || v > MaxPrice {
		return Price{}, ErrBadPrice
	}
	p.Price = v
	if timeEsc {
		ts, ok := unquote(timeRaw)
		if !ok {
			return Price{}, ErrBadTimestamp
		}
		timeRaw = []byte(ts)
	}
	if p.Time, err = stream.ParseTime(timeRaw); err != nil {
		return Price{}, ErrBadTimestamp
	}
	return p, nil
}

// decodeCanonical decodes b when it has the shape AppendPrice writes, the
// shape of nearly every record: {"symbol":"S","price":N,"timestamp":"T"}, no
// whitespace, S and T of printable ASCII without quotes or backslashes, N a
// JSON number. Then it returns ok and what the general path of Decode
// would; otherwise ok is false and Decode scans b in full.
func (d *Decoder) decodeCanonical(b []byte) (p Price, ok bool, err error) {
	const (
		head   = `{"symbol":"`
		priceK = `","price":`
		timeK  = `,"timestamp":"`
	)
	if len(b) < len(head) || string(b[:len(head)]) != head {
		return
	}
	i := len(head)
	for i < len(b) && plainASCII(b[i]) {
		i++
	}
	sym := b[len(head):i]
	if len(sym) == 0 || len(b)-i < len(priceK) || string(b[i:i+len(priceK)]) != priceK {
		return
	}
	s := scanner{b: b, i: i + len(priceK)}
	num := s.num()
	i = s.i
	if s.err || len(b)-i < len(timeK) || string(b[i:i+len(timeK)]) != timeK {
		return
	}
	i += len(timeK)
	ts := i
	for i < len(b) && plainASCII(b[i]) {
		i++
	}
	if len(b)-i != 2 || b[i] != '"' || b[i+1] != '}' {
		return
	}
	p.Symbol = d.internBytes(sym)
	v, perr := strconv.ParseFloat(bstr(num), 64)
	if perr != nil || !(v > 0) || v > MaxPrice {
		return Price{}, true, ErrBadPrice
	}
	p.Price = v
	if p.Time, err = stream.ParseTime(b[ts:i]); err != nil {
		return Price{}, true, ErrBadTimestamp
	}
	return p, true, nil
}

// plainASCII reports whether c is printable ASCII and neither '"' nor '\\':
// a byte of a JSON string that stands for itself.
func plainASCII(c byte) bool { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' }

// syntaxError is the reason of a value the scanner failed on.
func (s *scanner) syntaxError() error {
	if s.deep {
		return ErrTooDeep
	}
	return ErrNotJSON
}

// loneSurrogate reports whether the contents of a JSON string escape half of
// a UTF-16 surrogate pair without the other half.
func loneSurrogate(raw []byte) bool {
	hex := func(i int) (rune, bool) {
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
		return rune(v), err == nil
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		r, ok := hex(i)
		if !ok {
			i++ // an escape of one character, such as \\ or \"
			continue
		}
		switch {
		case r >= 0xD800 && r < 0xDC00: // high half: the low one must follow
			lo, ok := hex(i + 6)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 11
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		default:
			i += 5
		}
	}
	return false
}

func bytesHasBackslash(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

func (d *Decoder) internBytes(b []byte) string {
	if s, ok := d.symbols[string(b)]; ok { // no allocation for the lookup
		return s
	}
	return d.intern(string(b))
}

func (d *Decoder) intern(s string) string {
	if v, ok := d.symbols[s]; ok {
		return v
	}
	if len(d.symbols) < 1<<16 {
		d.symbols[s] = s
	}
	return s
}
