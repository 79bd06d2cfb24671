package lookahead_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tidemark-go/tidemark/lookahead"
	"github.com/tidemark-go/tidemark/stream"
)

// delaySink sums the delays it receives, so that the answers are used.
type delaySink struct {
	horizon stream.Time
	n       int
	sum     stream.Time
}

func (s *delaySink) Emit(e stream.Event[lookahead.Match[float64]]) {
	s.n++
	s.sum += e.Value.Delay(e.Time, s.horizon)
}

// btcWalk returns n in-order BTC-like prices of one key: a random walk in
// cents around 99190.48, 50 to 150 ms apart.
func btcWalk(n int, seed uint64) []stream.Event[float64] {
	r := rand.New(rand.NewPCG(seed, seed))
	cents := int64(9_919_048)
	t := stream.Time(1_746_677_558_352)
	evs := make([]stream.Event[float64], n)
	for i := range evs {
		cents += int64(r.IntN(21)) - 10
		t += 50 + stream.Time(r.IntN(101))
		evs[i] = stream.Event[float64]{Key: "BTCUSDT", Time: t, Value: float64(cents) / 100}
	}
	return evs
}

// bothSink sums the delays of the pairs of answers it receives.
type bothSink struct {
	horizon stream.Time
	n       int
	sum     stream.Time
}

func (s *bothSink) Emit(e stream.Event[lookahead.Both[float64]]) {
	s.n++
	s.sum += e.Value.Higher.Delay(e.Time, s.horizon) + e.Value.Lower.Delay(e.Time, s.horizon)
}

// benchStream replays a btcWalk of one key forever: each lap is shifted past the
// previous one so that times keep increasing.
type benchStream struct {
	evs         []stream.Event[float64]
	i           int
	span, shift stream.Time
}

func newBenchStream(b *testing.B) *benchStream {
	const seed = 1
	b.Logf("seed %d", seed)
	evs := btcWalk(1<<16, seed)
	return &benchStream{evs: evs, span: evs[len(evs)-1].Time - evs[0].Time}
}

// next returns the next event.
func (r *benchStream) next() stream.Event[float64] {
	e := r.evs[r.i]
	e.Time += r.shift
	if r.i++; r.i == len(r.evs) {
		r.i, r.shift = 0, r.shift+r.span+100
	}
	return e
}

// warmUp returns the number of events to replay to reach the steady-state
// buffer sizes.
func (r *benchStream) warmUp() int { return 2 * len(r.evs) }

const benchHorizon = 20 * time.Second

// BenchmarkHigherLower measures the bonus stage's core: the higher and the lower
// lookahead (20 s horizon) together over in-order events, each followed by the
// watermark a sequencer would announce (its time + 1), in steady state.
func BenchmarkHigherLower(b *testing.B) {
	higher, err := lookahead.NewHigher[float64](benchHorizon)
	if err != nil {
		b.Fatal(err)
	}
	lower, err := lookahead.NewLower[float64](benchHorizon)
	if err != nil {
		b.Fatal(err)
	}
	outH := &delaySink{horizon: higher.Horizon()}
	outL := &delaySink{horizon: lower.Horizon()}
	r := newBenchStream(b)
	step := func() {
		e := r.next()
		higher.Process(e, outH)
		lower.Process(e, outL)
		higher.Advance(e.Time+1, outH)
		lower.Advance(e.Time+1, outL)
	}
	for range r.warmUp() {
		step()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		step()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
	if outH.n == 0 || outL.n == 0 {
		b.Fatal("no answers")
	}
}

// BenchmarkHigherLowerFused is BenchmarkHigherLower with the fused operator,
// NewHigherLower, which gives both answers of an event in one emission.
func BenchmarkHigherLowerFused(b *testing.B) {
	both, err := lookahead.NewHigherLower[float64](benchHorizon)
	if err != nil {
		b.Fatal(err)
	}
	out := &bothSink{horizon: both.Horizon()}
	r := newBenchStream(b)
	step := func() {
		e := r.next()
		both.Process(e, out)
		both.Advance(e.Time+1, out)
	}
	for range r.warmUp() {
		step()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		step()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
	if out.n == 0 {
		b.Fatal("no answers")
	}
}
