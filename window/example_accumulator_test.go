package window_test

import (
	"fmt"
	"time"

	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
)

// Trade is one trade of a symbol: its price and the quantity traded.
type Trade struct {
	Price, Qty float64
}

// Bar summarises the trades of a window.
type Bar struct {
	Open, High, Low, Close float64
	Volume                 float64 // Σ qty
	VWAP                   float64 // volume-weighted average price: Σ price×qty / Σ qty
}

// OHLC aggregates trades into a Bar. Its high and low cannot be undone when
// a trade leaves, so it has no Remove: it is an Accumulator, which is all
// that tumbling and hopping windows need. Volume and VWAP are float64 sums:
// exact for the prices and quantities below, within about n × 2⁻⁵³
// (relative) for n trades in general.
type OHLC struct {
	bar      Bar
	notional float64 // Σ price×qty
	n        int64
}

// NewOHLC returns an empty OHLC.
func NewOHLC() *OHLC { return &OHLC{} }

func (a *OHLC) Add(t Trade) {
	if a.n == 0 {
		a.bar = Bar{Open: t.Price, High: t.Price, Low: t.Price}
	}
	a.n++
	a.bar.High = max(a.bar.High, t.Price)
	a.bar.Low = min(a.bar.Low, t.Price)
	a.bar.Close = t.Price
	a.bar.Volume += t.Qty
	a.notional += t.Price * t.Qty
}

// Result returns the bar; its VWAP is NaN when the volume is 0.
func (a *OHLC) Result() Bar {
	b := a.bar
	b.VWAP = a.notional / b.Volume
	return b
}

func (a *OHLC) Reset() { *a = OHLC{} }

// One-minute OHLC bars and VWAP per symbol, over tumbling windows, with an
// add-only aggregate of the user's own. By hand: BTCUSDT's 04:12 trades have
// a volume of 0.5 + 1.5 + 1 + 1 = 4 and a notional of 49,595 + 148,800 +
// 99,180 + 99,195 = 396,770, so a VWAP of 99,192.5; ETHUSDT's, 2 + 3 = 5 and
// 3,640 + 5,490 = 9,130, so 1,826; BTCUSDT's 04:13 trades, 0.25 + 0.75 = 1
// and 24,802.5 + 74,422.5 = 99,225.
func ExampleAccumulator() {
	bars, err := window.NewTumbling(time.Minute, NewOHLC)
	if err != nil {
		fmt.Println(err)
		return
	}
	out := stream.EmitFunc[window.Result[Bar]](func(e stream.Event[window.Result[Bar]]) {
		b := e.Value.Value
		fmt.Printf("%s %s trades=%d open=%.2f high=%.2f low=%.2f close=%.2f volume=%.2f vwap=%.2f\n",
			e.Key, e.Value.Start.UTC().Format("15:04"), e.Value.Count, b.Open, b.High, b.Low, b.Close, b.Volume, b.VWAP)
	})
	base := stream.TimeOf(time.Date(2025, 5, 8, 4, 12, 0, 0, time.UTC))
	for _, tr := range []struct {
		at         time.Duration
		symbol     string
		price, qty float64
	}{
		{5 * time.Second, "BTCUSDT", 99190.00, 0.5},
		{10 * time.Second, "ETHUSDT", 1820.00, 2},
		{20 * time.Second, "BTCUSDT", 99200.00, 1.5},
		{40 * time.Second, "BTCUSDT", 99180.00, 1},
		{45 * time.Second, "ETHUSDT", 1830.00, 3},
		{59*time.Second + 999*time.Millisecond, "BTCUSDT", 99195.00, 1}, // the last instant of 04:12
		{70 * time.Second, "BTCUSDT", 99210.00, 0.25},
		{90 * time.Second, "BTCUSDT", 99230.00, 0.75},
	} {
		e := stream.Event[Trade]{Key: tr.symbol, Time: base + stream.DurationOf(tr.at), Value: Trade{Price: tr.price, Qty: tr.qty}}
		bars.Process(e, out)
		bars.Advance(e.Time+1, out) // the watermark, as a Sequencer without lateness moves it
	}
	bars.Advance(stream.MaxTime, out) // end of input
	// Output:
	// BTCUSDT 04:12 trades=4 open=99190.00 high=99200.00 low=99180.00 close=99195.00 volume=4.00 vwap=99192.50
	// ETHUSDT 04:12 trades=2 open=1820.00 high=1830.00 low=1820.00 close=1830.00 volume=5.00 vwap=1826.00
	// BTCUSDT 04:13 trades=2 open=99210.00 high=99230.00 low=99210.00 close=99230.00 volume=1.00 vwap=99225.00
}
