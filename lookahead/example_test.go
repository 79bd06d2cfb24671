package lookahead_test

import (
	"fmt"
	"math"
	"time"

	"github.com/tidemark-go/tidemark/lookahead"
	"github.com/tidemark-go/tidemark/stream"
)

// For each price, how long until the price is strictly higher, within 20 s?
// The answer is the delay in seconds, or the horizon (20 s) when there is none,
// as in the pipeline's btc-price-higher topic. Answers come out once final: a
// found answer as soon as the higher price is processed, a "none" answer once
// the watermark passes t + 20 s (here at the end of input, or when a later event
// of the key shows the horizon has passed).
func ExampleNewHigher() {
	higher, err := lookahead.NewHigher[float64](20 * time.Second)
	if err != nil {
		panic(err)
	}
	out := stream.EmitFunc[lookahead.Match[float64]](func(e stream.Event[lookahead.Match[float64]]) {
		delay := e.Value.Delay(e.Time, higher.Horizon())
		if e.Value.Found {
			fmt.Printf("t=%4.1fs  higher_window=%.3g (%.2f)\n", float64(e.Time)/1000, float64(delay)/1000, e.Value.Value)
		} else {
			fmt.Printf("t=%4.1fs  higher_window=%.1f (none)\n", float64(e.Time)/1000, float64(delay)/1000)
		}
	})
	prices := []struct {
		ms    stream.Time
		price float64
	}{
		{0, 99190.48},
		{1_000, 99189.00},
		{2_500, 99190.50},
		{4_000, 99190.50}, // equal, not higher
		{30_000, 99200.00},
	}
	for _, p := range prices {
		higher.Process(stream.Event[float64]{Key: "BTCUSDT", Time: p.ms, Value: p.price}, out)
	}
	higher.Advance(stream.MaxTime, out) // end of input
	// Output:
	// t= 0.0s  higher_window=2.5 (99190.50)
	// t= 1.0s  higher_window=1.5 (99190.50)
	// t= 2.5s  higher_window=20.0 (none)
	// t= 4.0s  higher_window=20.0 (none)
	// t=30.0s  higher_window=20.0 (none)
}

// For each price, how long until the price is strictly higher, and until it is
// strictly lower, within 20 s? NewHigherLower gives both answers of an event
// in one emission, once both are final: the pair of 99190.48 at 0 s as soon as
// 99190.50 is processed at 2.5 s, the pair of 99189.00 at 1 s only once the
// watermark passes 1 s + 20 s, since it has no lower answer (here at the end
// of input).
func ExampleNewHigherLower() {
	both, err := lookahead.NewHigherLower[float64](20 * time.Second)
	if err != nil {
		panic(err)
	}
	window := func(t stream.Time, m lookahead.Match[float64]) string {
		if !m.Found {
			return fmt.Sprintf("%.1f (none)", float64(m.Delay(t, both.Horizon()))/1000)
		}
		return fmt.Sprintf("%.1f (%.2f)", float64(m.Delay(t, both.Horizon()))/1000, m.Value)
	}
	out := stream.EmitFunc[lookahead.Both[float64]](func(e stream.Event[lookahead.Both[float64]]) {
		fmt.Printf("t=%4.1fs  higher_window=%-16s lower_window=%s\n",
			float64(e.Time)/1000, window(e.Time, e.Value.Higher), window(e.Time, e.Value.Lower))
	})
	prices := []struct {
		ms    stream.Time
		price float64
	}{
		{0, 99190.48},
		{1_000, 99189.00},
		{2_500, 99190.50},
		{4_000, 99190.50}, // equal, neither higher nor lower
		{30_000, 99200.00},
	}
	for _, p := range prices {
		both.Process(stream.Event[float64]{Key: "BTCUSDT", Time: p.ms, Value: p.price}, out)
	}
	both.Advance(stream.MaxTime, out) // end of input
	// Output:
	// t= 0.0s  higher_window=2.5 (99190.50)   lower_window=1.0 (99189.00)
	// t= 1.0s  higher_window=1.5 (99190.50)   lower_window=20.0 (none)
	// t= 2.5s  higher_window=20.0 (none)      lower_window=20.0 (none)
	// t= 4.0s  higher_window=20.0 (none)      lower_window=20.0 (none)
	// t=30.0s  higher_window=20.0 (none)      lower_window=20.0 (none)
}

// Any predicate: for each price, the first later price of its key within 5 s
// that differs from it by 10 or more, in either direction.
func ExampleNew() {
	moves, err := lookahead.New(5*time.Second, func(e, f float64) bool { return math.Abs(f-e) >= 10 })
	if err != nil {
		panic(err)
	}
	out := stream.EmitFunc[lookahead.Match[float64]](func(e stream.Event[lookahead.Match[float64]]) {
		delay := float64(e.Value.Delay(e.Time, moves.Horizon())) / 1000
		if e.Value.Found {
			fmt.Printf("t=%.0fs: moved to %.0f after %.1f s\n", float64(e.Time)/1000, e.Value.Value, delay)
		} else {
			fmt.Printf("t=%.0fs: no move within %.1f s\n", float64(e.Time)/1000, delay)
		}
	})
	for i, price := range []float64{100, 105, 111, 95} {
		moves.Process(stream.Event[float64]{Key: "BTCUSDT", Time: stream.Time(i * 1000), Value: price}, out)
	}
	moves.Advance(stream.MaxTime, out) // end of input
	// Output:
	// t=0s: moved to 111 after 2.0 s
	// t=1s: moved to 95 after 2.0 s
	// t=2s: moved to 95 after 1.0 s
	// t=3s: no move within 5.0 s
}
