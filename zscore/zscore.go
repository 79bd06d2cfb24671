package zscore

import (
	"math"

	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
)

// Of returns (x - mean) / std and true, or 0 and false when the score is
// undefined: std NaN, zero, negative or infinite, any input not finite, or a
// score that overflows float64.
func Of(x, mean, std float64) (float64, bool) {
	if !(std > 0) || math.IsInf(std, 0) || math.IsNaN(x) || math.IsInf(x, 0) || math.IsNaN(mean) || math.IsInf(mean, 0) {
		return 0, false
	}
	z := (x - mean) / std
	if math.IsInf(z, 0) {
		return 0, false // x - mean overflowed
	}
	return z, true
}

// Score is one z-score; OK is false when it is undefined.
type Score struct {
	Z  float64
	OK bool
}

// Scored is the output of Operator: the value and its score against each window.
type Scored struct {
	Value  float64
	Scores []Score
}

// Operator turns each (value, statistics per window) pair into the value's
// z-score against every window, in the windows' order. It is a stream.Operator;
// the emitted slice is reused and valid only during Emit.
type Operator struct {
	out []Score
}

// NewOperator returns an Operator.
func NewOperator() *Operator { return &Operator{} }

// Process emits the scores of e's value against each window's statistics.
func (o *Operator) Process(e stream.Event[stream.Pair[float64, []window.Statistics]], out stream.Emitter[Scored]) {
	o.out = o.out[:0]
	for _, st := range e.Value.Right {
		z, ok := Of(e.Value.Left, st.Mean, st.Std)
		o.out = append(o.out, Score{Z: z, OK: ok})
	}
	out.Emit(stream.Event[Scored]{Key: e.Key, Time: e.Time, Value: Scored{Value: e.Value.Left, Scores: o.out}})
}

// Bounds implements stream.Operator: a score depends on its pair alone.
func (o *Operator) Bounds() stream.Bounds { return stream.Bounds{} }

// Advance does nothing: every score is final when its pair arrives.
func (o *Operator) Advance(stream.Time, stream.Emitter[Scored]) {}
