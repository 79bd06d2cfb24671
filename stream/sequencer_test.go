package stream

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// collect is an Emitter that keeps what it receives.
type collect[T any] struct{ got []Event[T] }

func (c *collect[T]) Emit(e Event[T]) { c.got = append(c.got, e) }

// identity is an Operator that forwards every event.
type identity[T any] struct{ advances []Time }

func (o *identity[T]) Process(e Event[T], out Emitter[T]) { out.Emit(e) }
func (o *identity[T]) Advance(wm Time, _ Emitter[T])      { o.advances = append(o.advances, wm) }
func (o *identity[T]) Bounds() Bounds                     { return Bounds{} }

func ev(key string, t Time, v int) Event[int] { return Event[int]{Key: key, Time: t, Value: v} }

func TestSequencerOffer(t *testing.T) {
	tests := []struct {
		name    string
		wm      Time // watermark set before the offers
		offers  []Event[int]
		want    []Verdict
		release []Event[int] // after Advance(MaxTime)
	}{
		{"empty", MinTime, nil, nil, nil},
		{"single", MinTime, []Event[int]{ev("a", 5, 1)}, []Verdict{Accepted}, []Event[int]{ev("a", 5, 1)}},
		{"out of order is sorted by time then key", MinTime,
			[]Event[int]{ev("b", 5, 1), ev("a", 7, 2), ev("a", 5, 3), ev("c", 1, 4)},
			[]Verdict{Accepted, Accepted, Accepted, Accepted},
			[]Event[int]{ev("c", 1, 4), ev("a", 5, 3), ev("b", 5, 1), ev("a", 7, 2)}},
		{"first duplicate wins", MinTime,
			[]Event[int]{ev("a", 5, 1), ev("a", 6, 2), ev("a", 5, 3), ev("a", 6, 4)},
			[]Verdict{Accepted, Accepted, Duplicate, Duplicate},
			[]Event[int]{ev("a", 5, 1), ev("a", 6, 2)}},
		{"same time other key is not a duplicate", MinTime,
			[]Event[int]{ev("a", 5, 1), ev("b", 5, 2)},
			[]Verdict{Accepted, Accepted},
			[]Event[int]{ev("a", 5, 1), ev("b", 5, 2)}},
		{"exactly at the watermark is on time, below is late", 100,
			[]Event[int]{ev("a", 100, 1), ev("a", 99, 2)},
			[]Verdict{Accepted, Late},
			[]Event[int]{ev("a", 100, 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSequencer[int]()
			var sink collect[int]
			s.Advance(tt.wm, &sink)
			require.Empty(t, sink.got, "nothing held yet")
			var got []Verdict
			for _, e := range tt.offers {
				got = append(got, s.Offer(0, e))
			}
			assert.Equal(t, tt.want, got, "verdicts")
			s.Advance(MaxTime, &sink)
			assert.Equal(t, tt.release, sink.got, "released events")
			assert.Zero(t, s.Held(), "nothing held after end of input")
		})
	}
}

func TestSequencerReleasesOnlyBelowWatermark(t *testing.T) {
	s := NewSequencer[int]()
	var sink collect[int]
	for _, e := range []Event[int]{ev("a", 10, 0), ev("a", 20, 0), ev("a", 30, 0)} {
		s.Offer(0, e)
	}
	s.Advance(20, &sink)
	assert.Equal(t, []Event[int]{ev("a", 10, 0)}, sink.got, "an event at the watermark is not yet final")
	s.Advance(15, &sink)
	assert.Equal(t, Time(20), s.Watermark(), "the watermark never decreases")
	assert.Equal(t, Late, s.Offer(0, ev("a", 19, 0)), "below the watermark")
	assert.Equal(t, Late, s.Offer(0, ev("a", 10, 0)), "a duplicate below the watermark counts as late")
	assert.Equal(t, Duplicate, s.Offer(0, ev("a", 20, 1)), "a duplicate of a held event")
	s.Advance(31, &sink)
	assert.Len(t, sink.got, 3, "a watermark jump releases everything below it")
}

// TestArrivalOrderIndependence feeds the same events, in many arrival orders
// that respect the lateness bound, through a Driver with an identity operator:
// the released sequence must be identical every time, equal to the reference
// (distinct identities, first arrival wins, sorted by time then key), and
// nothing may be late.
func TestArrivalOrderIndependence(t *testing.T) {
	const seed = 42
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	const lateness = 2000
	keys := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}
	var events []Event[int]
	tm := Time(1_700_000_000_000)
	for i := range 3000 {
		tm += Time(r.IntN(120))
		events = append(events, ev(keys[r.IntN(len(keys))], tm, i))
	}
	// Reference: keep the first event of each identity, in (time, key) order.
	type id struct {
		k string
		t Time
	}
	seen := map[id]bool{}
	var want []Event[int]
	for _, e := range events {
		if !seen[id{e.Key, e.Time}] {
			seen[id{e.Key, e.Time}] = true
			want = append(want, e)
		}
	}
	slices.SortStableFunc(want, func(a, b Event[int]) int {
		if a.Before(&b) {
			return -1
		}
		if b.Before(&a) {
			return 1
		}
		return 0
	})
	for trial := range 20 {
		// Shuffle by a random delay within the lateness: an event may arrive
		// after later ones as long as no event arrives more than `lateness`
		// behind the largest time seen before it. Duplicates keep their order
		// so that the first one still arrives first.
		// Duplicates share their first occurrence's delay, so the stable sort
		// keeps them in their original order and the first still wins.
		arrival := slices.Clone(events)
		delayOf := map[id]Time{}
		keyOf := make([]Time, len(arrival))
		for i, e := range arrival {
			d, ok := delayOf[id{e.Key, e.Time}]
			if !ok {
				d = Time(r.IntN(lateness))
				delayOf[id{e.Key, e.Time}] = d
			}
			keyOf[i] = e.Time + d
		}
		idx := make([]int, len(arrival))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return int(keyOf[a] - keyOf[b]) })
		var sink collect[int]
		op := &identity[int]{}
		d, err := NewDriver[int, int](op, &sink, WithLateness(lateness*time.Millisecond))
		require.NoError(t, err, "NewDriver")
		for _, i := range idx {
			d.Push(0, arrival[i], time.Time{})
		}
		d.Finish()
		st := d.Stats()
		require.Zero(t, st.Late, "trial %d: no event is late within the bound", trial)
		assert.Equal(t, uint64(len(want)), st.Accepted, "trial %d: accepted", trial)
		assert.Equal(t, uint64(len(events)-len(want)), st.Duplicates, "trial %d: duplicates", trial)
		requireSameEvents(t, want, sink.got, "trial %d: released sequence", trial)
		assert.True(t, slices.IsSorted(op.advances), "trial %d: watermarks only grow", trial)
		assert.Equal(t, MaxTime, op.advances[len(op.advances)-1], "trial %d: end of input", trial)
	}
}

func TestDriverLateSinkAndStats(t *testing.T) {
	var late []Event[int]
	var sink collect[int]
	d, err := NewDriver[int, int](&identity[int]{}, &sink, WithLateness(10*time.Second),
		WithLateSink(func(e Event[int]) { late = append(late, e) }))
	require.NoError(t, err, "NewDriver")
	assert.Equal(t, Accepted, d.Push(0, ev("a", 20_000, 1), time.Time{}), "first")
	assert.Equal(t, Accepted, d.Push(0, ev("a", 10_000, 2), time.Time{}), "exactly at the lateness bound")
	assert.Equal(t, Late, d.Push(0, ev("a", 9_999, 3), time.Time{}), "one ms beyond the bound")
	assert.Equal(t, Duplicate, d.Push(0, ev("a", 20_000, 4), time.Time{}), "duplicate")
	assert.Equal(t, Accepted, d.Push(0, ev("a", 40_000, 5), time.Time{}), "watermark jump to 30s")
	assert.Equal(t, []Event[int]{ev("a", 10_000, 2), ev("a", 20_000, 1)}, sink.got, "released by the jump")
	d.Finish()
	assert.Equal(t, Stats{Accepted: 3, Late: 1, Duplicates: 1}, d.Stats(), "stats")
	assert.Equal(t, []Event[int]{ev("a", 9_999, 3)}, late, "late sink")
	assert.Len(t, sink.got, 3, "end of input flushes")
}

// TestDriverPushAgreesWithStats pushes copies of events into other
// partitions than their first copy's: Push reports them as duplicates, and
// Stats counts each event as Push reported it.
func TestDriverPushAgreesWithStats(t *testing.T) {
	var sink collect[int]
	d, err := NewDriver[int, int](&identity[int]{}, &sink, WithLateness(10*time.Second))
	require.NoError(t, err, "NewDriver")
	assert.Equal(t, Accepted, d.Push(0, ev("a", 20_000, 1), time.Time{}), "first copy, partition 0")
	assert.Equal(t, Accepted, d.Push(1, ev("b", 20_000, 2), time.Time{}), "another key, partition 1")
	assert.Equal(t, Duplicate, d.Push(1, ev("a", 20_000, 3), time.Time{}), "copy held by partition 0")
	assert.Equal(t, Duplicate, d.Push(2, ev("b", 20_000, 4), time.Time{}), "copy held by partition 1")
	assert.Equal(t, Duplicate, d.Push(0, ev("a", 20_000, 5), time.Time{}), "copy in its own partition")
	d.Finish()
	assert.Equal(t, Stats{Accepted: 2, Duplicates: 3}, d.Stats(), "stats")
	assert.Equal(t, []Event[int]{ev("a", 20_000, 1), ev("b", 20_000, 2)}, sink.got, "the first copies, once each")

	// The same, at random: copies within and across partitions, out of order
	// within the lateness.
	r := rand.New(rand.NewPCG(3, 3))
	sink.got = nil
	d, err = NewDriver[int, int](&identity[int]{}, &sink, WithLateness(time.Second))
	require.NoError(t, err, "NewDriver")
	var tally Stats
	for i := range 20_000 {
		e := ev(string(rune('a'+r.IntN(3))), Time(i/4+r.IntN(1500)), i)
		switch d.Push(r.IntN(4), e, time.Time{}) {
		case Accepted:
			tally.Accepted++
		case Late:
			tally.Late++
		case Duplicate:
			tally.Duplicates++
		}
	}
	d.Finish()
	assert.Equal(t, tally, d.Stats(), "Stats counts what Push returned")
	assert.Positive(t, tally.Duplicates, "some duplicates")
	assert.Positive(t, tally.Late, "some late events")
	assert.Equal(t, int(tally.Accepted), len(sink.got), "every accepted event released once")
}

func TestDriverOptionsValidated(t *testing.T) {
	var sink collect[int]
	for _, tt := range []struct {
		name string
		opt  Option
	}{
		{"negative lateness", WithLateness(-time.Second)},
		{"negative idle", WithIdleTimeout(-time.Second)},
		{"late sink of the wrong type", WithLateSink(func(Event[string]) {})},
		{"idle advance without an idle timeout", WithIdleAdvance()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewDriver[int, int](&identity[int]{}, &sink, tt.opt)
			assert.ErrorIs(t, err, ErrInvalidOption, "constructor error")
			_, err = Run[int, int](context.Background(), &sliceSource{}, &identity[int]{}, &sliceSink{}, tt.opt)
			assert.ErrorIs(t, err, ErrInvalidOption, "Run's error")
		})
	}
	_, err := NewDriver[int, int](&identity[int]{}, &sink, WithLateSink(func(Event[string]) {}))
	assert.EqualError(t, err, "stream: invalid option: WithLateSink with a func(stream.Event[string]), but the input is int: want a func(stream.Event[int])",
		"the mismatch is named")
	_, err = NewDriver[int, int](nil, &sink)
	assert.ErrorIs(t, err, ErrInvalidOption, "nil operator")
}

// TestDriverIdleOptions: WithIdleTimeout alone lets idle partitions stop
// holding the watermark back; with WithIdleAdvance too, the watermark
// advances by the wall time since the last event once every partition is
// idle, never to the wall clock itself.
func TestDriverIdleOptions(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, byClock := range []bool{false, true} {
		opts := []Option{WithLateness(time.Second), WithIdleTimeout(5 * time.Second)}
		if byClock {
			opts = append(opts, WithIdleAdvance())
		}
		var sink collect[int]
		d, err := NewDriver[int, int](&identity[int]{}, &sink, opts...)
		require.NoError(t, err, "NewDriver")
		d.Push(0, ev("a", 10_000, 1), t0)
		d.Push(1, ev("b", 50_000, 2), t0.Add(time.Second))
		assert.Equal(t, Time(9_000), d.Watermark(), "clock %v: partition 0 holds back", byClock)
		d.Tick(t0.Add(5500 * time.Millisecond))
		assert.Equal(t, Time(49_000), d.Watermark(), "clock %v: partition 0 idle", byClock)
		now := t0.Add(time.Hour)
		d.Tick(now)
		want := Time(49_000)
		if byClock {
			want = 50_000 + Time(time.Hour/time.Millisecond) - 1000 - 1000 // the last event came 1 s after t0
		}
		assert.Equal(t, want, d.Watermark(), "clock %v: every partition idle", byClock)
	}
}

func TestChain(t *testing.T) {
	double := &mapOp{f: func(v int) int { return 2 * v }}
	inc := &mapOp{f: func(v int) int { return v + 1 }}
	var sink collect[int]
	c := Chain[int, int, int](double, inc)
	c.Process(ev("a", 1, 5), &sink)
	c.Advance(10, &sink)
	assert.Equal(t, []Event[int]{ev("a", 1, 11)}, sink.got, "chained")
	assert.Equal(t, []Time{10}, double.advances, "first advanced")
	assert.Equal(t, []Time{10}, inc.advances, "second advanced")
}

type mapOp struct {
	f        func(int) int
	advances []Time
}

func (m *mapOp) Process(e Event[int], out Emitter[int]) {
	out.Emit(Event[int]{Key: e.Key, Time: e.Time, Value: m.f(e.Value)})
}
func (m *mapOp) Advance(wm Time, _ Emitter[int]) { m.advances = append(m.advances, wm) }
func (m *mapOp) Bounds() Bounds                  { return Bounds{} }

func BenchmarkSequencerInOrder(b *testing.B) {
	s := NewSequencer[float64]()
	out := EmitFunc[float64](func(Event[float64]) {})
	tm := Time(0)
	b.ReportAllocs()
	for b.Loop() {
		tm += 100
		s.Offer(0, Event[float64]{Key: "BTCUSDT", Time: tm, Value: 1})
		s.Advance(tm-10_000, out)
	}
}

// requireSameEvents compares two event sequences and reports the first
// difference only, to keep failure output readable.
func requireSameEvents[T comparable](t *testing.T, want, got []Event[T], msg string, args ...any) {
	t.Helper()
	for i := range min(len(want), len(got)) {
		require.Equal(t, want[i], got[i], "%s: first difference at %d", fmt.Sprintf(msg, args...), i)
	}
	require.Equal(t, len(want), len(got), "%s: length", fmt.Sprintf(msg, args...))
}

// TestSequencerPartitionsMerge offers events from several partitions in large
// interleaved chunks (as Kafka fetches deliver them), with duplicates within
// and across partitions, advancing the watermark as far as the events still to
// come allow: the release is the reference (first arrival of each identity,
// in (time, key) order), and every duplicate is reported as such by Offer,
// whichever partition holds its first copy.
func TestSequencerPartitionsMerge(t *testing.T) {
	const seed = 17
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	type rec struct {
		part int
		e    Event[int]
	}
	const parts = 5
	var perPart [parts][]rec
	keys := []string{"a", "b", "c", "d"}
	for i := range 6000 {
		p := r.IntN(parts)
		tm := Time(i/3 + r.IntN(4))
		e := ev(keys[r.IntN(len(keys))], tm, i)
		perPart[p] = append(perPart[p], rec{p, e})
		if r.IntN(15) == 0 { // a copy of the same identity, here or in another partition
			q := r.IntN(parts)
			perPart[q] = append(perPart[q], rec{q, ev(e.Key, e.Time, -i)})
		}
	}
	// Arrival: chunks of up to 300 records from one partition at a time.
	var arrival []rec
	for {
		var open []int
		for p := range parts {
			if len(perPart[p]) > 0 {
				open = append(open, p)
			}
		}
		if len(open) == 0 {
			break
		}
		p := open[r.IntN(len(open))]
		n := min(len(perPart[p]), 1+r.IntN(300))
		arrival = append(arrival, perPart[p][:n]...)
		perPart[p] = perPart[p][n:]
	}
	type id struct {
		k string
		t Time
	}
	firstFrom := map[id]int{} // the partition of each identity's first copy
	var want []Event[int]
	isDup := make([]bool, len(arrival))
	crossDups := 0 // duplicates whose first copy came from another partition
	for i, a := range arrival {
		p, ok := firstFrom[id{a.e.Key, a.e.Time}]
		if !ok {
			firstFrom[id{a.e.Key, a.e.Time}] = a.part
			want = append(want, a.e)
			continue
		}
		isDup[i] = true
		if p != a.part {
			crossDups++
		}
	}
	slices.SortStableFunc(want, func(a, b Event[int]) int {
		if a.Before(&b) {
			return -1
		}
		if b.Before(&a) {
			return 1
		}
		return 0
	})
	// The smallest time still to arrive, after each arrival.
	minAfter := make([]Time, len(arrival)+1)
	minAfter[len(arrival)] = MaxTime
	for i := len(arrival) - 1; i >= 0; i-- {
		minAfter[i] = min(minAfter[i+1], arrival[i].e.Time)
	}
	s := NewSequencer[int]()
	var sink collect[int]
	dups := 0
	for i, a := range arrival {
		v := s.Offer(a.part, a.e)
		wantV := Accepted
		if isDup[i] {
			wantV = Duplicate
		}
		require.Equal(t, wantV, v, "record %d: the verdict is final when offered, whichever partition holds the first copy", i)
		if v == Duplicate {
			dups++
		}
		if r.IntN(50) == 0 {
			s.Advance(minAfter[i+1], &sink)
		}
	}
	s.Advance(MaxTime, &sink)
	requireSameEvents(t, want, sink.got, "released sequence")
	assert.Equal(t, len(arrival)-len(want), dups, "every duplicate counted once, when offered")
	assert.Positive(t, crossDups, "some duplicates were across partitions")
	assert.Zero(t, s.Held(), "nothing held at the end")
}

func BenchmarkSequencerInterleavedPartitions(b *testing.B) {
	// Six partitions, each in order, delivered in chunks of 500: the shape of
	// a Kafka consumer's fetches.
	s := NewSequencer[float64]()
	out := EmitFunc[float64](func(Event[float64]) {})
	const parts, chunk = 6, 500
	var tm [parts]Time
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		p := (i / chunk) % parts
		tm[p] += 100
		s.Offer(p, Event[float64]{Key: "BTCUSDT", Time: tm[p], Value: 1})
		if i%chunk == chunk-1 {
			low := tm[0]
			for _, t := range tm {
				low = min(low, t)
			}
			s.Advance(low, out)
		}
		i++
	}
}

// TestLowerBoundFrom checks the search that starts from a guess against a
// plain one, for every guess, with events that share times.
func TestLowerBoundFrom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for trial := range 200 {
		var rn run[int]
		tm := Time(0)
		for range r.IntN(40) {
			tm += Time(r.IntN(3))
			e := ev(string(rune('a'+r.IntN(3))), tm, 0)
			if n := rn.held.Len(); n == 0 || rn.held.Back().e.Before(&e) {
				rn.held.PushBack(held[int]{e: e, off: -1})
			}
		}
		n := rn.held.Len()
		for range 20 {
			e := held[int]{e: ev(string(rune('a'+r.IntN(3))), Time(r.IntN(int(tm)+3)-1), 0)}
			want := n
			for i := range n {
				if !rn.held.At(i).before(&e) {
					want = i
					break
				}
			}
			for h := -1; h <= n+1; h++ {
				require.Equal(t, want, rn.lowerBoundFrom(&e, h), "trial %d: %v from %d in %d events", trial, e.e, h, n)
			}
		}
	}
}

// TestDriverMaxAhead: an event more than WithMaxAhead ahead of its
// partition's largest time is refused and does not move the watermark; the
// partition's first event is taken as it is; each partition has its own
// reference.
func TestDriverMaxAhead(t *testing.T) {
	var sink collect[int]
	d, err := NewDriver[int, int](&identity[int]{}, &sink, WithLateness(time.Second), WithMaxAhead(time.Minute))
	require.NoError(t, err, "NewDriver")
	assert.Equal(t, Accepted, d.Push(0, ev("a", 10_000, 1), time.Time{}), "first event")
	assert.Equal(t, TooFarAhead, d.Push(0, ev("a", 4_070_908_800_000, 2), time.Time{}), "2099")
	assert.Equal(t, Time(9_000), d.Watermark(), "the watermark did not move")
	assert.Equal(t, Accepted, d.Push(0, ev("a", 70_000, 3), time.Time{}), "exactly a minute ahead")
	assert.Equal(t, TooFarAhead, d.Push(0, ev("a", 130_001, 4), time.Time{}), "a minute and a millisecond ahead")
	assert.Equal(t, Accepted, d.Push(1, ev("b", 4_070_908_800_000, 5), time.Time{}), "another partition's first event is not checked")
	assert.Equal(t, Stats{Accepted: 3, Ahead: 2}, d.Stats(), "stats")
	_, err = NewDriver[int, int](&identity[int]{}, &sink, WithMaxAhead(-time.Second))
	assert.ErrorIs(t, err, ErrInvalidOption, "negative")
}
