package dashboard

import (
	"math"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/tidemark-go/tidemark/stream"
)

// kind is one of the five series a symbol has: the btc-price records and the
// four derived topics.
type kind uint8

const (
	kPrice  kind = iota // btc-price: [price]
	kMoving             // btc-price-moving: [avg × n, std × n, count × n]
	kZScore             // btc-price-zscore: [price, z × n]
	kHigher             // btc-price-higher: [seconds]
	kLower              // btc-price-lower: [seconds]
	numKinds
)

var kindNames = [numKinds]string{"price", "moving", "zscore", "higher", "lower"}

// width is the number of columns of a kind's points for n windows.
func width(k kind, n int) int {
	switch k {
	case kMoving:
		return 3 * n
	case kZScore:
		return 1 + n
	}
	return 1
}

// ring is one series: points (a time and w float64 columns) in arrival
// order, the oldest dropped first. It grows by appending up to limit points
// (0: no limit), then overwrites the oldest: once full, a push allocates
// nothing.
type ring struct {
	w      int
	limit  int
	t      []stream.Time
	v      []float64 // w per point
	start  int       // physical index of the oldest point
	n      int       // points held
	newest stream.Time
	seen   bool // newest is set
}

func newRing(w, limit int) *ring { return &ring{w: w, limit: limit} }

// slot returns the physical index for a new point, making room if needed.
func (r *ring) slot() int {
	if r.n < len(r.t) {
		i := (r.start + r.n) % len(r.t)
		r.n++
		return i
	}
	if r.limit == 0 || len(r.t) < r.limit {
		if r.start != 0 {
			r.linearize()
		}
		r.t = append(r.t, 0)
		r.v = append(r.v, make([]float64, r.w)...)
		r.n++
		return len(r.t) - 1
	}
	// Full: overwrite the oldest.
	i := r.start
	r.start = (r.start + 1) % len(r.t)
	return i
}

// linearize moves the points so that the oldest is at index 0.
func (r *ring) linearize() {
	t := make([]stream.Time, 0, len(r.t)+1)
	v := make([]float64, 0, len(r.v)+r.w)
	for i := range r.n {
		p := (r.start + i) % len(r.t)
		t = append(t, r.t[p])
		v = append(v, r.v[p*r.w:(p+1)*r.w]...)
	}
	r.t, r.v, r.start = t, v, 0
}

func (r *ring) push(t stream.Time, vals []float64) {
	i := r.slot()
	r.t[i] = t
	copy(r.v[i*r.w:(i+1)*r.w], vals)
	if !r.seen || t > r.newest {
		r.newest, r.seen = t, true
	}
}

// trim drops the oldest points (in arrival order) while they are more than
// retain older than the newest time the series has seen. retain <= 0 keeps
// everything.
func (r *ring) trim(retain stream.Time) {
	if retain <= 0 || !r.seen {
		return
	}
	limit := r.newest - retain
	for r.n > 0 && r.t[r.start] < limit {
		r.start = (r.start + 1) % len(r.t)
		r.n--
	}
	if r.n == 0 {
		r.start = 0
	}
}

// at returns the i-th oldest point.
func (r *ring) at(i int) (stream.Time, []float64) {
	p := (r.start + i) % len(r.t)
	return r.t[p], r.v[p*r.w : (p+1)*r.w]
}

// symbolSeries are a symbol's five series.
type symbolSeries struct {
	name string
	s    [numKinds]*ring
}

// store holds the series of every symbol.
type store struct {
	windows []string
	limit   int // points per series (0: no limit)
	retain  stream.Time
	maxSyms int // 0: no limit
	syms    map[string]*symbolSeries
	names   []string // sorted
}

func newStore(windows []string, limit int, retain stream.Time, maxSyms int) *store {
	return &store{windows: windows, limit: limit, retain: retain, maxSyms: maxSyms, syms: make(map[string]*symbolSeries)}
}

// series returns a symbol's series, creating them; nil when the store has
// its maximum number of symbols.
func (s *store) series(name string) *symbolSeries {
	if ss := s.syms[name]; ss != nil {
		return ss
	}
	if s.maxSyms > 0 && len(s.syms) >= s.maxSyms {
		return nil
	}
	ss := &symbolSeries{name: name}
	for k := range numKinds {
		ss.s[k] = newRing(width(k, len(s.windows)), s.limit)
	}
	s.syms[name] = ss
	i, _ := slices.BinarySearch(s.names, name)
	s.names = slices.Insert(s.names, i, name)
	return ss
}

// ------------------------------------------------------------------ JSON

// appendNum appends f as the shortest JSON number that reads back as f, or
// null when it is not finite.
func appendNum(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

// appendStr appends s as a JSON string that is also safe inside an HTML
// <script> element: <, > and & are escaped, as are U+2028 and U+2029.
func appendStr(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, `\u202`...)
			dst = append(dst, hex[r&15])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// appendSeries appends one series as {"t":[...],"c":[[col 0...],...]}: n
// points read through at, every stride-th one (the last one always).
func appendSeries(dst []byte, w, n, stride int, newest stream.Time, at func(i int) (stream.Time, []float64)) []byte {
	if stride < 1 {
		stride = 1
	}
	idx := func(yield func(int) bool) {
		for i := 0; i < n; i += stride {
			if !yield(i) {
				return
			}
		}
		if n > 0 && (n-1)%stride != 0 {
			yield(n - 1)
		}
	}
	dst = append(dst, `{"newest":`...)
	dst = strconv.AppendInt(dst, int64(newest), 10)
	dst = append(dst, `,"t":[`...)
	first := true
	for i := range idx {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		t, _ := at(i)
		dst = strconv.AppendInt(dst, int64(t), 10)
	}
	dst = append(dst, `],"c":[`...)
	for c := range w {
		if c > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '[')
		first := true
		for i := range idx {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			_, v := at(i)
			dst = appendNum(dst, v[c])
		}
		dst = append(dst, ']')
	}
	return append(dst, "]}"...)
}

// appendSymbols appends the store's series as {"SYM":{"price":{...},...},...},
// keeping the points with times in [from, to] and at most maxPoints of each
// series (every k-th point; 0: all).
func (s *store) appendSymbols(dst []byte, from, to stream.Time, maxPoints int) []byte {
	dst = append(dst, '{')
	var sel []int
	for si, name := range s.names {
		ss := s.syms[name]
		if si > 0 {
			dst = append(dst, ',')
		}
		dst = appendStr(dst, name)
		dst = append(dst, ":{"...)
		for k := range numKinds {
			r := ss.s[k]
			if k > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = append(dst, kindNames[k]...)
			dst = append(dst, `":`...)
			sel = sel[:0]
			for i := range r.n {
				if t, _ := r.at(i); t >= from && t <= to {
					sel = append(sel, i)
				}
			}
			stride := 1
			if maxPoints > 0 && len(sel) > maxPoints {
				stride = (len(sel) + maxPoints - 1) / maxPoints
			}
			dst = appendSeries(dst, r.w, len(sel), stride, r.newest, func(i int) (stream.Time, []float64) { return r.at(sel[i]) })
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// appendHead appends the fields every snapshot starts with.
func (s *store) appendHead(dst []byte, horizon stream.Time) []byte {
	dst = append(dst, `"windows":[`...)
	for i, l := range s.windows {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendStr(dst, l)
	}
	dst = append(dst, `],"horizonMs":`...)
	dst = strconv.AppendInt(dst, int64(horizon), 10)
	dst = append(dst, `,"retainMs":`...)
	dst = strconv.AppendInt(dst, int64(max(s.retain, 0)), 10)
	dst = append(dst, `,"maxPoints":`...)
	return strconv.AppendInt(dst, int64(s.limit), 10)
}

// sortedNames returns the keys of m, sorted.
func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
