package lookahead_test

import (
	"fmt"
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
