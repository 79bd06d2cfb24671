package window_test

import (
	"fmt"
	"math"
	"time"

	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
)

// A one-minute tumbling mean. Windows are aligned on the epoch, so every window
// is a calendar minute; a window's result comes out once the watermark reaches
// its end, and a minute without events has no result.
func ExampleNewTumbling() {
	means, err := window.NewTumbling(time.Minute, window.NewMean)
	if err != nil {
		panic(err)
	}
	out := stream.EmitFunc[window.Result[float64]](func(e stream.Event[window.Result[float64]]) {
		r := e.Value
		fmt.Printf("%s [%s, %s) count=%d avg_price=%.2f\n",
			e.Key, r.Start.UTC().Format("15:04:05"), r.End.UTC().Format("15:04:05"), r.Count, r.Value)
	})
	base := stream.TimeOf(time.Date(2025, 5, 8, 4, 12, 0, 0, time.UTC))
	for _, p := range []struct {
		at    time.Duration
		price float64
	}{
		{38*time.Second + 352*time.Millisecond, 99190.48},
		{45 * time.Second, 99191.02},
		{59*time.Second + 999*time.Millisecond, 99189.94}, // the last instant of 04:12
		{time.Minute + 5*time.Second, 99200.10},
		{3*time.Minute + 1*time.Second, 99210.00}, // nothing in 04:14: no result for it
	} {
		e := stream.Event[float64]{Key: "BTCUSDT", Time: base + stream.DurationOf(p.at), Value: p.price}
		means.Process(e, out)
		means.Advance(e.Time+1, out) // the watermark, as a Sequencer without lateness moves it
	}
	means.Advance(stream.MaxTime, out) // end of input
	// Output:
	// BTCUSDT [04:12:00, 04:13:00) count=3 avg_price=99190.48
	// BTCUSDT [04:13:00, 04:14:00) count=1 avg_price=99200.10
	// BTCUSDT [04:15:00, 04:16:00) count=1 avg_price=99210.00
}

// Trailing statistics, as the moving-average stage computes them: at each
// event, the count, mean and sample std of the events of its key in the last
// 1 s and 3 s, (t - W, t]. The std of one event is undefined (null in the
// pipeline's JSON); a window of equal prices has a std of exactly 0.
func ExampleNewTrailingStatistics() {
	stats, err := window.NewTrailingStatistics([]time.Duration{time.Second, 3 * time.Second})
	if err != nil {
		panic(err)
	}
	base := stream.TimeOf(time.Date(2025, 5, 8, 4, 12, 0, 0, time.UTC))
	out := stream.EmitFunc[[]window.Statistics](func(e stream.Event[[]window.Statistics]) {
		fmt.Printf("t=%.1fs", float64(e.Time-base)/1000)
		for i, name := range []string{"1s", "3s"} {
			s := e.Value[i]
			std := "null"
			if !math.IsNaN(s.Std) {
				std = fmt.Sprintf("%.4f", s.Std)
			}
			fmt.Printf("  %s: count=%d avg=%.4f std=%s", name, s.Count, s.Mean, std)
		}
		fmt.Println()
	})
	for _, p := range []struct {
		at    time.Duration
		price float64
	}{
		{0, 100},
		{500 * time.Millisecond, 101},
		{1200 * time.Millisecond, 103},
		{4 * time.Second, 103},
	} {
		stats.Process(stream.Event[float64]{Key: "BTCUSDT", Time: base + stream.DurationOf(p.at), Value: p.price}, out)
	}
	// Output:
	// t=0.0s  1s: count=1 avg=100.0000 std=null  3s: count=1 avg=100.0000 std=null
	// t=0.5s  1s: count=2 avg=100.5000 std=0.7071  3s: count=2 avg=100.5000 std=0.7071
	// t=1.2s  1s: count=2 avg=102.0000 std=1.4142  3s: count=3 avg=101.3333 std=1.5275
	// t=4.0s  1s: count=1 avg=103.0000 std=null  3s: count=2 avg=103.0000 std=0.0000
}

// Hopping windows of one minute every 30 s, the highest price of each: an
// event belongs to the two windows that contain it, [start, start+1m) with
// start a multiple of 30 s.
func ExampleNewHopping() {
	highs, err := window.NewHopping(time.Minute, 30*time.Second, window.NewMax)
	if err != nil {
		panic(err)
	}
	out := stream.EmitFunc[window.Result[float64]](func(e stream.Event[window.Result[float64]]) {
		r := e.Value
		fmt.Printf("[%s, %s) count=%d high=%.2f\n", r.Start.UTC().Format("15:04:05"), r.End.UTC().Format("15:04:05"), r.Count, r.Value)
	})
	base := stream.TimeOf(time.Date(2025, 5, 8, 4, 12, 0, 0, time.UTC))
	for _, p := range []struct {
		at    time.Duration
		price float64
	}{
		{10 * time.Second, 99190.48},
		{40 * time.Second, 99195.00},
		{70 * time.Second, 99185.30},
	} {
		highs.Process(stream.Event[float64]{Key: "BTCUSDT", Time: base + stream.DurationOf(p.at), Value: p.price}, out)
	}
	highs.Advance(stream.MaxTime, out)
	// Output:
	// [04:11:30, 04:12:30) count=1 high=99190.48
	// [04:12:00, 04:13:00) count=2 high=99195.00
	// [04:12:30, 04:13:30) count=2 high=99195.00
	// [04:13:00, 04:14:00) count=1 high=99185.30
}

// A trailing window with any aggregator: at each event, the number of events
// of its key in the last 2 s, (t - 2s, t].
func ExampleNewTrailing() {
	counts, err := window.NewTrailing([]time.Duration{2 * time.Second}, window.NewCount[float64])
	if err != nil {
		panic(err)
	}
	base := stream.TimeOf(time.Date(2025, 5, 8, 4, 12, 0, 0, time.UTC))
	out := stream.EmitFunc[[]int64](func(e stream.Event[[]int64]) {
		fmt.Printf("t=%.1fs %s: %d in the last 2 s\n", float64(e.Time-base)/1000, e.Key, e.Value[0])
	})
	for _, at := range []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond, 2 * time.Second, 3600 * time.Millisecond} {
		counts.Process(stream.Event[float64]{Key: "BTCUSDT", Time: base + stream.DurationOf(at), Value: 1}, out)
	}
	// Output:
	// t=0.0s BTCUSDT: 1 in the last 2 s
	// t=0.5s BTCUSDT: 2 in the last 2 s
	// t=1.5s BTCUSDT: 3 in the last 2 s
	// t=2.0s BTCUSDT: 3 in the last 2 s
	// t=3.6s BTCUSDT: 2 in the last 2 s
}
