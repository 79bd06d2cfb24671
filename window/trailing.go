package window

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tidemark-go/tidemark/internal/keyed"
	"github.com/tidemark-go/tidemark/internal/ring"
	"github.com/tidemark-go/tidemark/stream"
)

// ErrBadWindow is wrapped by the errors constructors return for invalid lengths.
var ErrBadWindow = errors.New("window: invalid window")

func toLengths(lengths []time.Duration) ([]stream.Time, int, error) {
	if len(lengths) == 0 {
		return nil, 0, fmt.Errorf("%w: no window lengths", ErrBadWindow)
	}
	out := make([]stream.Time, len(lengths))
	largest := 0
	for i, d := range lengths {
		if d < time.Millisecond || d%time.Millisecond != 0 {
			return nil, 0, fmt.Errorf("%w: length %v is not a positive whole number of milliseconds", ErrBadWindow, d)
		}
		out[i] = stream.DurationOf(d)
		if out[i] > out[largest] {
			largest = i
		}
	}
	return out, largest, nil
}

// Trailing computes, for every event, an aggregate over each of several trailing
// windows ending at it: the window of length W at an event at time t holds the
// events of the same key with time in (t - W, t]. All lengths share one buffer
// of events per key, holding the largest window.
//
// Trailing is a stream.Operator. It relies on the Sequencer's guarantee that each
// key's events arrive in increasing time order and are final, so it emits the
// result for an event as soon as it processes it. The emitted Value is a slice
// with one result per length, in the order the lengths were given; it is reused
// and valid only during Emit.
//
// Each event is added once and removed once per window, so the cost is amortized
// O(1) per event per window with invertible aggregators; there is no heap
// allocation per event in steady state (the aggregators' own aside).
type Trailing[V, R any] struct {
	lengths []stream.Time
	largest int
	newAgg  func() Aggregator[V, R]
	keys    keyed.Table[trailingKey[V, R]]
	out     []R
	sweep   stream.Time
}

type trailingKey[V, R any] struct {
	buf   ring.Deque[stream.Event[V]] // Key left empty: it is the map key
	first int64                       // sequence number of buf's front
	heads []int64                     // per window: sequence number of its oldest event
	aggs  []Aggregator[V, R]
	lastT stream.Time
}

// NewTrailing returns a Trailing over the given lengths (each a positive whole
// number of milliseconds), with one aggregator per key and length made by newAgg.
func NewTrailing[V, R any](lengths []time.Duration, newAgg func() Aggregator[V, R]) (*Trailing[V, R], error) {
	ls, largest, err := toLengths(lengths)
	if err != nil {
		return nil, err
	}
	if newAgg == nil {
		return nil, fmt.Errorf("%w: nil aggregator factory", ErrBadWindow)
	}
	return &Trailing[V, R]{lengths: ls, largest: largest, newAgg: newAgg,
		keys: keyed.New[trailingKey[V, R]](), out: make([]R, len(ls)), sweep: stream.MinTime}, nil
}

func (tr *Trailing[V, R]) key(k string) *trailingKey[V, R] {
	s := tr.keys.Get(k)
	if s.aggs == nil {
		s.heads = make([]int64, len(tr.lengths))
		s.aggs = make([]Aggregator[V, R], len(tr.lengths))
		for i := range s.aggs {
			s.aggs[i] = tr.newAgg()
		}
	}
	return s
}

// Process adds e to its key's windows and emits the results at e.
func (tr *Trailing[V, R]) Process(e stream.Event[V], out stream.Emitter[[]R]) {
	s := tr.key(e.Key)
	s.buf.PushBack(stream.Event[V]{Time: e.Time, Value: e.Value})
	s.lastT = e.Time
	for w, length := range tr.lengths {
		h := s.heads[w]
		for {
			old := s.buf.At(int(h - s.first))
			if old.Time > e.Time-length {
				break
			}
			s.aggs[w].Remove(old.Value)
			h++
		}
		s.heads[w] = h
		s.aggs[w].Add(e.Value)
		tr.out[w] = s.aggs[w].Result()
	}
	for s.first < s.heads[tr.largest] {
		s.buf.PopFront()
		s.first++
	}
	out.Emit(stream.Event[[]R]{Key: e.Key, Time: e.Time, Value: tr.out})
}

// Advance drops the state of keys whose events have all left the largest window.
func (tr *Trailing[V, R]) Advance(wm stream.Time, _ stream.Emitter[[]R]) {
	sweepIdle(&tr.keys, &tr.sweep, wm, tr.lengths[tr.largest], func(s *trailingKey[V, R]) stream.Time { return s.lastT })
}

// sweepIdle drops, at most once per span of watermark progress (and at end of
// input), the state of keys whose last event is span or more behind wm: it has
// left every window. The sweep costs O(keys), so O(1) amortized per event.
func sweepIdle[S any](keys *keyed.Table[S], sweep *stream.Time, wm, span stream.Time, lastT func(*S) stream.Time) {
	if wm < sweep.Add(span) && wm != stream.MaxTime {
		return
	}
	*sweep = wm
	keys.Sweep(func(_ string, s *S) bool { return lastT(s) > wm.Add(-span) && wm != stream.MaxTime })
}

// Stats is the result of TrailingStats for one window.
type Stats struct {
	Count    int64   // number of events in the window
	Mean     float64 // mean of their values
	Variance float64 // sample variance (n-1); NaN when Count < 2
	Std      float64 // sample standard deviation (n-1); NaN when Count < 2
}

// TrailingStats is Trailing specialised for count, mean, sample variance and std
// over float64 values, the statistics of the moving-average stage. It keeps one
// exact Moments accumulator per window and prepares each value's exact terms
// once per event for all windows, which makes six windows cost less than twice
// one. Accuracy and exactness are those of Moments. Values must be finite; a
// non-finite value makes its windows' results NaN while it is held.
type TrailingStats struct {
	lengths []stream.Time
	largest int
	keys    keyed.Table[statsKey]
	out     []Stats
	sweep   stream.Time
}

type statsEntry struct {
	t stream.Time
	x float64
	term
}

type statsKey struct {
	buf   ring.Deque[statsEntry]
	first int64
	heads []int64
	acc   []Moments
	lastT stream.Time
	fixed      // the exact scale and reference every window's accumulator shares
	float bool // some value does not fit the shared scale: independent Moments
	// In independent mode, the buffer's sequence number of the value that
	// forced it: once the largest window has dropped it, try the shared scale.
	unfitSeq int64
}

// NewTrailingStats returns a TrailingStats over the given lengths.
func NewTrailingStats(lengths []time.Duration) (*TrailingStats, error) {
	ls, largest, err := toLengths(lengths)
	if err != nil {
		return nil, err
	}
	return &TrailingStats{lengths: ls, largest: largest, keys: keyed.New[statsKey](),
		out: make([]Stats, len(ls)), sweep: stream.MinTime}, nil
}

func (tr *TrailingStats) key(k string) *statsKey {
	s := tr.keys.Get(k)
	if s.acc == nil {
		s.heads = make([]int64, len(tr.lengths))
		s.acc = make([]Moments, len(tr.lengths))
	}
	return s
}

// rebuild chooses a scale and reference that fit every held value and x,
// recomputes the held terms and every window's sums. It costs O(held) and runs
// only when a value needs a finer scale or a wider range than all before it.
func (s *statsKey) rebuild(x float64, withX bool) {
	g, big := math.MinInt32, 0.0
	if withX {
		g, big = granularity(x), math.Abs(x)
	} else if s.buf.Len() > 0 {
		x = s.buf.Back().x // the reference: the newest value
	}
	for i := 0; i < s.buf.Len(); i++ {
		v := s.buf.At(i).x
		g, big = max(g, granularity(v)), max(big, math.Abs(v))
	}
	if g == math.MinInt32 {
		g = 0
	}
	s.float = math.IsNaN(big) || math.IsInf(big, 0) || g > 1000 || big >= math.Ldexp(1, 62-g)
	if !s.float {
		s.setScale(g)
		s.ref = int64(x * s.mul)
		for i := 0; i < s.buf.Len(); i++ {
			e := s.buf.At(i)
			e.term = s.termOf(e.x)
		}
	}
	for w := range s.acc {
		m := &s.acc[w]
		m.Reset()
		if !s.float {
			m.fixed = s.fixed
		}
		for i := int(s.heads[w] - s.first); i < s.buf.Len(); i++ {
			e := s.buf.At(i)
			if s.float {
				m.Add(e.x)
			} else {
				m.addTerm(e.term)
			}
		}
	}
}

// Process adds e to its key's windows and emits the statistics at e.
func (tr *TrailingStats) Process(e stream.Event[float64], out stream.Emitter[[]Stats]) {
	s := tr.key(e.Key)
	x := e.Value
	if s.buf.Len() == 0 {
		s.float = false
		s.limit = 0 // force a rebuild around x
	}
	var t term
	if !s.float {
		if t = s.termOf(x); !t.scaled {
			s.rebuild(x, true)
			if s.float {
				s.unfitSeq = s.first + int64(s.buf.Len())
			} else {
				t = s.termOf(x)
			}
		}
	}
	exact := !s.float
	s.buf.PushBack(statsEntry{t: e.Time, x: x, term: t})
	s.lastT = e.Time
	for w, length := range tr.lengths {
		m := &s.acc[w]
		h := s.heads[w]
		for {
			old := s.buf.At(int(h - s.first))
			if old.t > e.Time-length {
				break
			}
			if exact {
				m.removeTerm(old.term)
			} else {
				m.Remove(old.x)
			}
			h++
		}
		s.heads[w] = h
		if exact {
			m.addTerm(t)
		} else {
			m.Add(x)
		}
		tr.out[w] = m.stats()
	}
	for s.first < s.heads[tr.largest] {
		s.buf.PopFront()
		s.first++
	}
	if s.float && s.first > s.unfitSeq {
		// Every window has dropped the value that did not fit: back to the
		// shared scale if the values held allow it (O(held), rare).
		s.rebuild(0, false)
		if s.float {
			s.unfitSeq = s.first + int64(s.buf.Len()) - 1
		}
	}
	out.Emit(stream.Event[[]Stats]{Key: e.Key, Time: e.Time, Value: tr.out})
}

// Advance drops the state of keys whose events have all left the largest window.
func (tr *TrailingStats) Advance(wm stream.Time, _ stream.Emitter[[]Stats]) {
	sweepIdle(&tr.keys, &tr.sweep, wm, tr.lengths[tr.largest], func(s *statsKey) stream.Time { return s.lastT })
}
