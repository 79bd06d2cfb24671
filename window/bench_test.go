package window

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tidemark-go/tidemark/stream"
)

var pipelineLengths = []time.Duration{30 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour}

type sinkStats struct{ sum float64 }

func (s *sinkStats) Emit(e stream.Event[[]Statistics]) {
	s.sum += e.Value[0].Mean + e.Value[len(e.Value)-1].Std
}

// priceWalk returns n BTC-like prices (cent steps around 1e5) at 100 ms apart.
func priceWalk(n int, seed uint64) []stream.Event[float64] {
	r := rand.New(rand.NewPCG(seed, seed))
	cents := int64(9_919_048)
	evs := make([]stream.Event[float64], n)
	t := stream.Time(1_746_677_558_352)
	for i := range evs {
		cents += int64(r.IntN(21)) - 10
		t += stream.Time(50 + r.IntN(100))
		evs[i] = stream.Event[float64]{Key: "BTCUSDT", Time: t, Value: float64(cents) / 100}
	}
	return evs
}

// BenchmarkTrailingStatsSixWindows measures the moving-average stage's core: the
// six trailing windows' count, mean and std together over in-order events.
func BenchmarkTrailingStatsSixWindows(b *testing.B) {
	evs := priceWalk(1<<16, 1)
	tr, err := NewTrailingStatistics(pipelineLengths)
	if err != nil {
		b.Fatal(err)
	}
	var out sinkStats
	// Warm up: fill the hour window so the benchmark measures steady state.
	span := evs[len(evs)-1].Time - evs[0].Time
	i, shift := 0, stream.Time(0)
	next := func() stream.Event[float64] {
		e := evs[i]
		e.Time += shift
		i++
		if i == len(evs) {
			i, shift = 0, shift+span+100
		}
		return e
	}
	for range 3 * len(evs) {
		tr.Process(next(), &out)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		tr.Process(next(), &out)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
}

// resultSink sums the counts of the window results it receives, so that they
// are used.
type resultSink struct{ n int64 }

func (s *resultSink) Emit(e stream.Event[Result[float64]]) { s.n += e.Value.Count }

// BenchmarkHoppingManyKeys measures one-minute windows hopping by 10 s over
// keys that each have an event every keys ms (round robin, 1 ms apart), every
// event followed by the watermark a sequencer would announce (its time + 1):
// at every window end every key closes a window.
func BenchmarkHoppingManyKeys(b *testing.B) {
	for _, nKeys := range []int{16, 1024, 16384} {
		b.Run(fmt.Sprintf("keys=%d", nKeys), func(b *testing.B) {
			h, err := NewHopping(time.Minute, 10*time.Second, FactoryOf[float64, float64](NewMean))
			if err != nil {
				b.Fatal(err)
			}
			keys := make([]string, nKeys)
			for i := range keys {
				keys[i] = fmt.Sprintf("key%05d", i)
			}
			const seed = 1
			b.Logf("seed %d", seed)
			r := rand.New(rand.NewPCG(seed, seed))
			cents := int64(9_919_048)
			t := stream.Time(1_746_677_558_352)
			var out resultSink
			step := func() {
				cents += int64(r.IntN(21)) - 10
				t++
				h.Process(stream.Event[float64]{Key: keys[int(t)%nKeys], Time: t, Value: float64(cents) / 100}, &out)
				h.Advance(t+1, &out)
			}
			// Warm up: every key has all its windows open, and the free
			// aggregators and rings are at their steady-state sizes.
			for range 3 * 60_000 {
				step()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				step()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
			if out.n == 0 {
				b.Fatal("no results")
			}
		})
	}
}
