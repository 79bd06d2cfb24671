package stream

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// holdOp emits each event once the watermark is above its time + ahead: the
// shape of a lookahead whose answers wait for later events.
type holdOp struct {
	ahead Time
	held  []Event[int]
}

func (h *holdOp) Process(e Event[int], _ Emitter[int]) { h.held = append(h.held, e) }

func (h *holdOp) Advance(wm Time, out Emitter[int]) {
	n := 0
	for _, e := range h.held {
		if e.Time.Add(h.ahead) < wm {
			out.Emit(e)
			n++
		} else {
			break
		}
	}
	h.held = h.held[n:]
}

func (h *holdOp) Bounds() Bounds { return Bounds{Ahead: time.Duration(h.ahead) * time.Millisecond} }

// backOp is an identity that claims to look back by back.
type backOp struct {
	identity[int]
	back time.Duration
}

func (b *backOp) Bounds() Bounds { return Bounds{Back: b.back} }

func TestBoundsCompose(t *testing.T) {
	a := Bounds{Back: time.Hour, Ahead: 20 * time.Second}
	b := Bounds{Back: time.Minute, Ahead: time.Second}
	assert.Equal(t, Bounds{Back: time.Hour + time.Minute, Ahead: 21 * time.Second}, a.Then(b), "a chain adds the reaches")
	assert.Equal(t, Bounds{Back: time.Hour, Ahead: 20 * time.Second}, a.Max(b), "side by side, the larger reach each way")
	assert.Equal(t, Time(2), Bounds{Back: 1001 * time.Microsecond}.back(), "a fraction of a millisecond rounds up")
	assert.Error(t, Bounds{Ahead: -time.Millisecond}.check(), "negative reach")

	c := Chain[int, int, int](&holdOp{ahead: 5000}, &backOp{back: time.Minute})
	assert.Equal(t, Bounds{Back: time.Minute, Ahead: 5 * time.Second}, c.Bounds(), "Chain reports the sum")
}

// TestChainDelaysWatermark: the second operator of a chain sees a watermark
// that trails by how far the first looks ahead, so it is never told that an
// input is complete while the first still holds events for it; the end of
// input reaches it unchanged.
func TestChainDelaysWatermark(t *testing.T) {
	second := &identity[int]{}
	c := Chain[int, int, int](&holdOp{ahead: 5000}, second)
	var got []Event[int]
	out := EmitFunc[int](func(e Event[int]) { got = append(got, e) })
	c.Process(ev("k", 10_000, 1), out)
	c.Advance(12_000, out)
	assert.Empty(t, got, "held: 10000 + 5000 is not below 12000")
	assert.Equal(t, []Time{7000}, second.advances, "second sees 12000 - 5000")
	c.Advance(15_001, out)
	assert.Equal(t, []Event[int]{ev("k", 10_000, 1)}, got, "released once final")
	c.Advance(MaxTime, out)
	assert.Equal(t, []Time{7000, 10_001, MaxTime}, second.advances, "end of input is not delayed")
}

// TestRunCheckpointsBehindTheOperatorsReach: Run tells the source that
// results are done only up to the watermark less the operator's reach ahead,
// so a lookahead's pending answers are never committed past (the trap of a
// horizon configured by hand and forgotten).
func TestRunCheckpointsBehindTheOperatorsReach(t *testing.T) {
	src := &sliceSource{recs: records(0, 10_000, 20_000, 30_000), batch: 1}
	src.block = false
	_, err := Run[int, int](context.Background(), src, &holdOp{ahead: 5000}, &sliceSink{}, WithLateness(0))
	require.NoError(t, err, "Run")
	require.Len(t, src.checkpoints, 4, "one checkpoint per batch and one at the end")
	assert.Equal(t, []Time{5000, 15_000, 25_000, MaxTime}, src.checkpoints, "watermark minus 5 s, then end of input")
}
