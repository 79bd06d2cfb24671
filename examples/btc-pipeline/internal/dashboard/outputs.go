package dashboard

import (
	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/lookahead"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
	"github.com/tidemark-go/tidemark/zscore"
)

// Outputs are stream.Emitters of btc.Pipeline's four outputs that add
// each record to a Hub or a Report.
type Outputs struct {
	Moving        stream.Emitter[[]window.Statistics]
	ZScore        stream.Emitter[zscore.Scored]
	Higher, Lower stream.Emitter[lookahead.Match[float64]]
}

// adder is what Hub and Report have in common.
type adder interface {
	AddMoving(symbol string, t stream.Time, stats []window.Statistics)
	AddZScore(symbol string, t stream.Time, price float64, scores []zscore.Score)
	AddLookahead(k btc.Kind, symbol string, t stream.Time, seconds float64)
}

func outputsOf(a adder, horizon stream.Time) Outputs {
	match := func(k btc.Kind) stream.Emitter[lookahead.Match[float64]] {
		return stream.EmitFunc[lookahead.Match[float64]](func(e stream.Event[lookahead.Match[float64]]) {
			a.AddLookahead(k, e.Key, e.Time, float64(e.Value.Delay(e.Time, horizon))/1000)
		})
	}
	return Outputs{
		Moving: stream.EmitFunc[[]window.Statistics](func(e stream.Event[[]window.Statistics]) { a.AddMoving(e.Key, e.Time, e.Value) }),
		ZScore: stream.EmitFunc[zscore.Scored](func(e stream.Event[zscore.Scored]) {
			a.AddZScore(e.Key, e.Time, e.Value.Value, e.Value.Scores)
		}),
		Higher: match(btc.Higher),
		Lower:  match(btc.Lower),
	}
}

// Outputs returns Emitters that add the pipeline's records to h.
func (h *Hub) Outputs() Outputs { return outputsOf(h, h.horizon) }

// Outputs returns Emitters that add the pipeline's records to r.
func (r *Report) Outputs() Outputs { return outputsOf(r, r.horizon) }
