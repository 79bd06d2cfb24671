package window

import (
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/tidemark-go/tidemark/internal/keyed"
	"github.com/tidemark-go/tidemark/internal/millis"
	"github.com/tidemark-go/tidemark/internal/ring"
	"github.com/tidemark-go/tidemark/stream"
)

// ErrInvalidWindow is wrapped by the errors the constructors return for invalid
// arguments: a length, size or hop that is not a positive whole number of
// milliseconds, no lengths, or a nil aggregator factory. Test for it with
// errors.Is.
var ErrInvalidWindow error = invalidArgument("window: invalid window")

// invalidArgument is the type of ErrInvalidWindow: its own message, and
// stream.ErrInvalidOption beneath it, so that errors.Is recognises an
// invalid argument of any Tidemark package by stream's sentinel.
type invalidArgument string

func (e invalidArgument) Error() string { return string(e) }
func (invalidArgument) Unwrap() error   { return stream.ErrInvalidOption }

func toLengths(lengths []time.Duration) ([]stream.Time, int, error) {
	if len(lengths) == 0 {
		return nil, 0, fmt.Errorf("%w: no window lengths", ErrInvalidWindow)
	}
	out := make([]stream.Time, len(lengths))
	largest := 0
	for i, d := range lengths {
		ms, err := millis.Positive(d)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: length %w", ErrInvalidWindow, err)
		}
		out[i] = ms
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
	newAgg  Factory[V, R]
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
// number of milliseconds), with one aggregator per key and length made by
// newAgg. newAgg returns a new, empty Aggregator each time it is called: the
// constructor of one (window.NewMean), or a Factory; the Trailing owns what
// it returns. Trailing windows slide, so they need Remove: an add-only
// Accumulator does not fit them. A nil newAgg is an error wrapping
// ErrInvalidWindow.
func NewTrailing[V, R any, A Aggregator[V, R]](lengths []time.Duration, newAgg func() A) (*Trailing[V, R], error) {
	ls, largest, err := toLengths(lengths)
	if err != nil {
		return nil, err
	}
	if newAgg == nil {
		return nil, fmt.Errorf("%w: nil aggregator factory", ErrInvalidWindow)
	}
	return &Trailing[V, R]{lengths: ls, largest: largest, newAgg: FactoryOf[V, R](newAgg),
		keys: keyed.New[trailingKey[V, R]](), out: make([]R, len(ls)), sweep: stream.MinTime}, nil
}

// key returns k's state, new if k is new (at time t).
func (tr *Trailing[V, R]) key(k string, t stream.Time) *trailingKey[V, R] {
	ke := tr.keys.Get(k)
	s := &ke.State
	if s.aggs == nil {
		s.heads = make([]int64, len(tr.lengths))
		s.aggs = make([]Aggregator[V, R], len(tr.lengths))
		for i := range s.aggs {
			s.aggs[i] = tr.newAgg()
		}
		tr.keys.Schedule(ke, idleAt(t, tr.lengths[tr.largest]))
	}
	return s
}

// Process adds e to its key's windows and emits the results at e.
func (tr *Trailing[V, R]) Process(e stream.Event[V], out stream.Emitter[[]R]) {
	s := tr.key(e.Key, e.Time)
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

// Bounds implements stream.Operator: a result looks back by the largest length.
func (tr *Trailing[V, R]) Bounds() stream.Bounds {
	return stream.Bounds{Back: time.Duration(tr.lengths[tr.largest]) * time.Millisecond}
}

// Advance drops the state of keys whose events have all left the largest window.
func (tr *Trailing[V, R]) Advance(wm stream.Time, _ stream.Emitter[[]R]) {
	sweepIdle(&tr.keys, &tr.sweep, wm, tr.lengths[tr.largest], func(s *trailingKey[V, R]) stream.Time { return s.lastT })
}

// idleAt returns the timer of a key whose last event is at t: the key is idle,
// its events have all left every window, once the watermark is above it
// (t + span <= wm).
func idleAt(t, span stream.Time) stream.Time { return t.Add(span - 1) }

// sweepIdle drops, at most once per span of watermark progress (and at end of
// input), the state of keys whose last event is span or more behind wm: it has
// left every window. Every key has a timer at or before idleAt(its last
// event), set when it is created (Process does not move it: an event costs no
// heap operation); the sweep takes the keys whose timer is due, drops those
// that are idle and sets the timer of the others to when they will be. A key
// is taken at most once per sweep, and only if its timer is due: O(log K) per
// key taken, where the sweep it replaces visited every key.
func sweepIdle[S any](keys *keyed.Table[S], sweep *stream.Time, wm, span stream.Time, lastT func(*S) stream.Time) {
	if wm < sweep.Add(span) && wm != stream.MaxTime {
		return
	}
	*sweep = wm
	for e := keys.PopDue(wm); e != nil; e = keys.PopDue(wm) {
		if t := lastT(&e.State); t > wm.Add(-span) && wm != stream.MaxTime {
			keys.Schedule(e, idleAt(t, span)) // idleAt(t) >= wm: not due again in this sweep
		} else {
			keys.Delete(e)
		}
	}
}

// Statistics is the result of TrailingStatistics for one window.
type Statistics struct {
	Count    int64   // number of events in the window
	Mean     float64 // mean of their values
	Variance float64 // sample variance (n-1); NaN when Count < 2
	Std      float64 // sample standard deviation (n-1); NaN when Count < 2
}

// TrailingStatistics is Trailing specialised for count, mean, sample variance and std
// over float64 values, the statistics of the moving-average stage. Accuracy and
// exactness are those of Moments. Values must be finite; a non-finite value
// makes its windows' results NaN while it is held.
//
// All windows of a key normally share one fixed-point scale and reference (see
// Moments), and each held event records the key's running sums Σd and Σd² of
// d = X - R over the events before it, modulo 2^192. A window's exact sums are
// the running totals minus those recorded at its oldest event: modular
// subtraction is exact and the true sums fit 192 bits (|d| < 2^63), so nothing
// drifts. Per event, the key converts the value once and adds it to its totals;
// per window, it advances the window's start past the events that have left it
// (comparing times only), subtracts, computes n*S2 - S1^2 in integers and then
// the statistics with a few floating-point operations and one square root. A
// value that does not fit the shared scale switches the key to one independent
// Moments per window until it has left every window.
type TrailingStatistics struct {
	lengths []stream.Time
	largest int
	keys    keyed.Table[statsKey]
	out     []Statistics
	sums    []windowSums // per window, scratch for Process
	// recip[n] = 1/(n(n-1)) for n >= 2, for as many n as a window has held
	// (grown by doubling: amortized O(1)): a load instead of a division per
	// window and event, with the same result.
	recip []float64
	sweep stream.Time
}

// windowSums is what a window's statistics are computed from: its count, the
// terms of its mean and n*S2 - S1^2 (rounded once). All are functions of the
// values the window holds, whatever the key's reference.
type windowSums struct {
	n   int64
	mt  meanTerms
	num float64
}

// A held event is split in two, in two rings: the statsEntry the hot path
// reads (32 bytes) and the statsCold it reads only in rare cases (32 bytes).
// Together they hold the event's time and value and the key's running sums
// p1 = Σd and p2 = Σd² over the events added before it since the last rebuild,
// modulo 2^192 (p1 in two's complement): the entry has the low words, which give
// a window's S1 modulo 2^64 and S2 modulo 2^128 (all the hot path needs while
// maxAbs bounds the sums), the cold part the high words.
type statsEntry struct {
	t     stream.Time
	p1    uint64 // p1.lo
	p2lo  uint64
	p2mid uint64
}

type statsCold struct {
	x     float64
	p1mid uint64
	p1hi  uint64
	p2hi  uint64
}

type statsKey struct {
	// The held events, oldest first, in two rings: the event with sequence
	// number q is buf[q&mask] and cold[q&mask], len(buf) = len(cold) =
	// mask+1 is a power of two.
	buf   []statsEntry
	cold  []statsCold
	mask  int64
	first int64   // sequence number of the oldest event held
	end   int64   // sequence number of the next event
	heads []int64 // per window: sequence number of its oldest event
	lastT stream.Time

	fixed           // the scale and reference every window shares
	tot1, tot2 u192 // Σd and Σd² through the newest event (shared mode)
	// The largest |d| added since the last rebuild (shared mode): while the
	// largest window's count n times it is below 2^63, every window's |S1|
	// <= n maxAbs fits 64 bits and n*S2 <= (n maxAbs)^2 fits 126, so the low
	// words of the running sums suffice.
	maxAbs uint64

	float bool      // some value does not fit the shared scale: independent Moments
	acc   []Moments // per window, in independent mode only
	// In independent mode, the sequence number of the value that forced it:
	// once the largest window has dropped it, try the shared scale.
	unfitSeq int64
}

// NewTrailingStatistics returns a TrailingStatistics over the given lengths.
func NewTrailingStatistics(lengths []time.Duration) (*TrailingStatistics, error) {
	ls, largest, err := toLengths(lengths)
	if err != nil {
		return nil, err
	}
	return &TrailingStatistics{lengths: ls, largest: largest, keys: keyed.New[statsKey](),
		out: make([]Statistics, len(ls)), sums: make([]windowSums, len(ls)), sweep: stream.MinTime}, nil
}

// key returns k's state, new if k is new (at time t).
func (tr *TrailingStatistics) key(k string, t stream.Time) *statsKey {
	ke := tr.keys.Get(k)
	s := &ke.State
	if s.acc == nil {
		tr.init(s)
		tr.keys.Schedule(ke, idleAt(t, tr.lengths[tr.largest]))
	}
	return s
}

func (tr *TrailingStatistics) init(s *statsKey) {
	s.heads = make([]int64, len(tr.lengths))
	s.acc = make([]Moments, len(tr.lengths))
}

// at returns the hot part of the held event with sequence number q.
func (s *statsKey) at(q int64) *statsEntry { return &s.buf[q&s.mask] }

// coldAt returns the cold part of the held event with sequence number q.
func (s *statsKey) coldAt(q int64) *statsCold { return &s.cold[q&s.mask] }

// x returns the value of the held event with sequence number q.
func (s *statsKey) x(q int64) float64 { return s.coldAt(q).x }

// prefix returns the running sums recorded at the held event with sequence
// number q.
func (s *statsKey) prefix(q int64) (p1, p2 u192) {
	e, c := s.at(q), s.coldAt(q)
	return u192{e.p1, c.p1mid, c.p1hi}, u192{e.p2lo, e.p2mid, c.p2hi}
}

// put records the event with sequence number q, with the running sums before
// it. (Field by field: a composite literal would go through the stack, and
// its copy stall on store forwarding.)
func (s *statsKey) put(q int64, t stream.Time, x float64, p1, p2 u192) {
	e, c := s.at(q), s.coldAt(q)
	e.t, e.p1, e.p2lo, e.p2mid = t, p1.lo, p2.lo, p2.mid
	c.x, c.p1mid, c.p1hi, c.p2hi = x, p1.mid, p1.hi, p2.hi
}

// grow doubles the rings, copying the held events in runs that are
// contiguous in both the old ring and the new one (at most three).
func (s *statsKey) grow() {
	size := max(8, 2*len(s.buf))
	buf, cold := make([]statsEntry, size), make([]statsCold, size)
	mask := int64(size - 1)
	for q := s.first; q < s.end; {
		o, n := q&s.mask, q&mask
		k := min(s.end-q, int64(len(s.buf))-o, int64(size)-n)
		copy(buf[n:n+k], s.buf[o:o+k])
		copy(cold[n:n+k], s.cold[o:o+k])
		q += k
	}
	s.buf, s.cold, s.mask = buf, cold, mask
}

// addShared adds d to the running sums, in shared mode.
func (s *statsKey) addShared(d int64) {
	s.tot1.addSigned(d)
	s.tot2.add128(square(d))
	s.maxAbs = max(s.maxAbs, abs(d))
}

// abs returns |d|, which fits a uint64 for any d.
func abs(d int64) uint64 {
	if d < 0 {
		return -uint64(d)
	}
	return uint64(d)
}

// rebuild chooses a scale and reference that fit every held value and x,
// recomputes the running sums (shared mode) or every window's Moments
// (independent mode). It costs O(held) and runs only when a value needs a finer
// scale or a wider range than all before it, or to leave independent mode.
func (s *statsKey) rebuild(x float64, withX bool) {
	g, big := math.MinInt32, 0.0
	if withX {
		g, big = granularity(x), math.Abs(x)
	} else if s.end > s.first {
		x = s.x(s.end - 1) // the reference: the newest value
	}
	for q := s.first; q < s.end; q++ {
		v := s.x(q)
		g, big = max(g, granularity(v)), max(big, math.Abs(v))
	}
	if g == math.MinInt32 {
		g = 0
	}
	s.float = math.IsNaN(big) || math.IsInf(big, 0) || g > 1000 || big >= math.Ldexp(1, 62-g)
	if !s.float {
		s.setScale(g)
		s.setRef(int64(x * s.mul))
		s.tot1, s.tot2, s.maxAbs = u192{}, u192{}, 0
		for q := s.first; q < s.end; q++ {
			x := s.x(q)
			s.put(q, s.at(q).t, x, s.tot1, s.tot2)
			d, _ := s.delta(x)
			s.addShared(d)
		}
		for w := range s.acc {
			s.acc[w].Reset()
		}
		return
	}
	for w := range s.acc {
		m := &s.acc[w]
		m.Reset()
		for q := s.heads[w]; q < s.end; q++ {
			m.Add(s.x(q))
		}
	}
}

// Process adds e to its key's windows and emits the statistics at e.
func (tr *TrailingStatistics) Process(e stream.Event[float64], out stream.Emitter[[]Statistics]) {
	s := tr.key(e.Key, e.Time)
	x := e.Value
	if s.end == s.first {
		s.float = false
		s.limit = 0 // force a rebuild around x
	}
	var d int64
	if !s.float {
		ok := false
		if d, ok = s.delta(x); !ok {
			s.rebuild(x, true)
			if s.float {
				s.unfitSeq = s.end
			} else {
				d, _ = s.delta(x)
			}
		}
	}
	// Push the event, with the running sums before it, first: no window's
	// start can pass it, so the scans stop at it at the latest.
	if s.end-s.first == int64(len(s.buf)) {
		s.grow()
	}
	s.put(s.end, e.Time, x, s.tot1, s.tot2)
	s.end++
	s.lastT = e.Time
	if s.float {
		tr.independent(s, e.Time, x)
	} else {
		s.addShared(d)
		tr.shared(s, e.Time, x, d)
	}
	s.first = s.heads[tr.largest]
	if s.float && s.first > s.unfitSeq {
		// Every window has dropped the value that did not fit: back to the
		// shared scale if the values held allow it (O(held), rare).
		s.rebuild(0, false)
		if s.float {
			s.unfitSeq = s.end - 1
		}
	}
	out.Emit(stream.Event[[]Statistics]{Key: e.Key, Time: e.Time, Value: tr.out})
}

// shared advances every window to the event at now and computes its statistics
// from the running sums, in shared mode: the hot path. It goes over the windows
// three times, each loop a function of its own with few values live, so that
// they mostly stay in registers: the windows' starts, then their exact sums and
// n*S2 - S1^2 (integer work, on the low words only while maxAbs bounds the
// sums), then the statistics (floating-point work without branches to
// mispredict, so that the windows' square roots overlap; 1/(n(n-1)) comes from
// a table, as divisions would compete with the square roots for one unit).
func (tr *TrailingStatistics) shared(s *statsKey, now stream.Time, x float64, dx int64) {
	heads := s.heads[:len(tr.lengths)]
	advance(s.buf, s.mask, heads, tr.lengths, now)
	sums := tr.sums[:len(heads)]
	most := s.end - heads[tr.largest]
	if hi, lo := bits.Mul64(uint64(most), s.maxAbs); hi == 0 && lo < 1<<62 {
		// Every window's |S1| <= n maxAbs < 2^62, |Σ(X - X0)| <= 2 n maxAbs
		// < 2^63, and n*S2 - S1^2 <= n*S2 <= (n maxAbs)^2 < 2^124: the low
		// words of the running sums give them exactly, modulo 2^64 and 2^128.
		lowSums(sums, s.buf, s.mask, s.end, heads, s.ref, dx, s.maxAbs, s.tot1.lo, s.tot2.lo, s.tot2.mid)
	} else {
		s.wideSums(sums, dx) // some window's S1 might not fit 64 bits, or its S2 128 (rare)
	}
	if most >= int64(len(tr.recip)) {
		tr.growRecip(most)
	}
	if statistics(tr.out[:len(sums)], sums, tr.recip, s.inv, x) {
		for w, ws := range sums {
			if ws.n < 2 {
				tr.out[w] = s.finish(ws.n, ws.mt, ws.num, x)
			}
		}
	}
}

// advance moves each window's start, heads[w], past the events at or before
// now - lengths[w].
func advance(buf []statsEntry, mask int64, heads []int64, lengths []stream.Time, now stream.Time) {
	lengths = lengths[:len(heads)]
	for w, length := range lengths {
		cut := now - length
		h := heads[w]
		// Mostly 0, 1 or 2 events leave a window per event: test the first
		// two without a branch (a mispredicted loop exit would cost more),
		// and loop only for more. The second is valid only if the first is
		// (h is at most the newest event, and the slot after it may be stale).
		c0 := buf[h&mask].t <= cut
		c1 := buf[(h+1)&mask].t <= cut
		h += b2i(c0) + b2i(c0 && c1)
		for buf[h&mask].t <= cut {
			h++
		}
		heads[w] = h
	}
}

// lowSums computes each window's sums from the low words of the running sums:
// tot1 = Σd modulo 2^64, tot2mid*2^64 + tot2lo = Σd² modulo 2^128 through the
// newest event, end its successor, ref the key's reference. Every window's
// |S1| must fit 62 bits, and its n*S2 128.
func lowSums(sums []windowSums, buf []statsEntry, mask, end int64, heads []int64, ref, dx int64, maxAbs, tot1, tot2lo, tot2mid uint64) {
	heads = heads[:len(sums)]
	ax := abs(ref + dx) // |x|, the newest value, every window's reference
	// Every held |X - x| <= 2 maxAbs: when that is at most |x|/2, every
	// window's |Σ(X - x)| <= n |x| / 2 and the test below would pass.
	near := maxAbs <= ax/4
	for w, h := range heads {
		oldest := &buf[h&mask]
		n := end - h
		s1 := int64(tot1 - oldest.p1)
		s2lo, borrow := bits.Sub64(tot2lo, oldest.p2lo, 0)
		s2mid := tot2mid - oldest.p2mid - borrow
		sqH, sqL := square(s1)
		sums[w].n = n
		sums[w].num = float128(numerator126(n, s2mid, s2lo, sqH, sqL))
		// Σ(X - x) = S1 - n dx: |Σ(X - x)| <= 2 n maxAbs < 2^63.
		rel := s1 - n*dx
		sums[w].mt = meanTerms{v: float64(rel)}
		if !near {
			if hi, lo := bits.Mul64(uint64(n), ax); hi == 0 && 2*abs(rel) > lo {
				// Far from x: rare.
				sums[w].mt = termsOf(u192{lo: uint64(s1), mid: uint64(s1 >> 63), hi: uint64(s1 >> 63)}, n, ref, dx)
			}
		}
	}
}

// statistics computes out from sums as fixed.finish does, for a scale of inv,
// with recip[n] = 1/(n(n-1)) for every n >= 2 in sums and x the newest value
// (every window holds it). It reports whether some window holds fewer than 2
// events: its results are then left for finish to write.
func statistics(out []Statistics, sums []windowSums, recip []float64, inv, x float64) (few bool) {
	out = out[:len(sums)]
	var fewer int64
	for w, ws := range sums {
		fewer |= b2i(ws.n < 2)
		m := float64(ws.n - 1) // n-1, exactly
		r := recip[ws.n]       // 1/n = (n-1) r
		v := ws.num * r * inv * inv
		out[w] = Statistics{Count: ws.n, Mean: meanOf(ws.mt, m*r, inv, x), Variance: v, Std: math.Sqrt(v)}
	}
	return fewer != 0
}

// numerator126 returns n*S2 - S1^2 for S2 = s2mid*2^64 + s2lo and S1^2 =
// sqH*2^64 + sqL, when it and n*S2 fit 128 bits (the words of n*S2 above
// them are not computed). It inlines.
func numerator126(n int64, s2mid, s2lo, sqH, sqL uint64) (hi, lo uint64) {
	h0, l0 := bits.Mul64(s2lo, uint64(n))
	lo, borrow := bits.Sub64(l0, sqL, 0)
	return s2mid*uint64(n) + h0 - sqH - borrow, lo
}

// wideSums computes every window's sums from the full running sums; dx is
// the newest value's d.
func (s *statsKey) wideSums(sums []windowSums, dx int64) {
	for w, h := range s.heads {
		p1, p2 := s.prefix(h)
		s1, s2 := s.tot1.minus(p1), s.tot2.minus(p2)
		n := s.end - h
		sums[w] = windowSums{n: n, mt: termsOf(s1, n, s.ref, dx), num: numerator(n, s1, s2)}
	}
}

// growRecip extends recip to cover n, at least doubling it.
func (tr *TrailingStatistics) growRecip(n int64) {
	recip := make([]float64, max(n+1, 2*int64(len(tr.recip)), 64))
	for i := range recip {
		n := float64(i)
		recip[i] = 1 / (n * (n - 1))
	}
	tr.recip = recip
}

// b2i returns 1 for true and 0 for false, without a branch.
func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// independent updates every window's own Moments, in independent mode.
func (tr *TrailingStatistics) independent(s *statsKey, now stream.Time, x float64) {
	for w, length := range tr.lengths {
		m := &s.acc[w]
		h := s.heads[w]
		for s.at(h).t <= now-length {
			m.Remove(s.x(h))
			h++
		}
		s.heads[w] = h
		m.Add(x)
		tr.out[w] = m.stats()
	}
}

// Bounds implements stream.Operator: a result looks back by the largest length.
func (tr *TrailingStatistics) Bounds() stream.Bounds {
	return stream.Bounds{Back: time.Duration(tr.lengths[tr.largest]) * time.Millisecond}
}

// Advance drops the state of keys whose events have all left the largest window.
func (tr *TrailingStatistics) Advance(wm stream.Time, _ stream.Emitter[[]Statistics]) {
	sweepIdle(&tr.keys, &tr.sweep, wm, tr.lengths[tr.largest], func(s *statsKey) stream.Time { return s.lastT })
}
