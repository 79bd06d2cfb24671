package window

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
)

// TestHoppingKeepsOnlyKeysWithWindows runs random streams of many keys, with
// gaps between windows (hop > size) and without, and checks after every
// watermark that every key kept has an open window or sits in a gap with a
// timer, that every key with an open window has its timer at the oldest one's
// End - 1, and that the end of input leaves nothing.
func TestHoppingKeepsOnlyKeysWithWindows(t *testing.T) {
	for _, seed := range []uint64{1, 2, uint64(time.Now().UnixNano())} {
		for _, cfg := range []struct{ size, hop stream.Time }{{10, 10}, {10, 3}, {3, 10}} {
			t.Run(fmt.Sprintf("%d/size=%d/hop=%d", seed, cfg.size, cfg.hop), func(t *testing.T) {
				t.Logf("seed %d", seed)
				r := rand.New(rand.NewPCG(seed, 9))
				h, err := NewHopping(time.Duration(cfg.size)*time.Millisecond, time.Duration(cfg.hop)*time.Millisecond, FactoryOf[float64, int64](NewCount[float64]))
				require.NoError(t, err, "NewHopping")
				out := stream.EmitFunc[Result[int64]](func(stream.Event[Result[int64]]) {})
				now := stream.Time(0)
				for step := range 3000 {
					now += stream.Time(r.IntN(4))
					if r.IntN(100) == 0 {
						now += 5 * (cfg.size + cfg.hop)
					}
					for i := range 1 + r.IntN(3) {
						h.Process(stream.Event[float64]{Key: fmt.Sprintf("k%d", (step+i*7)%50), Time: now, Value: 1}, out)
					}
					now++
					h.Advance(now, out)
					for i := range 50 {
						ke := h.keys.Lookup(fmt.Sprintf("k%d", i))
						if ke == nil {
							continue
						}
						require.Truef(t, ke.Scheduled(), "step %d: key %s kept without a timer", step, ke.Key())
						if k := &ke.State; k.open.Len() > 0 {
							end := k.open.Front().start + h.size
							require.Falsef(t, ke.Due(now), "step %d: key %s: a window ending at %d is still open at watermark %d", step, ke.Key(), end, now)
							require.Truef(t, !ke.Due(end-1) && ke.Due(end), "step %d: key %s: its timer is at End - 1 = %d", step, ke.Key(), end-1)
						} else {
							require.Greaterf(t, h.hop, h.size, "step %d: key %s kept without windows, without gaps", step, ke.Key())
						}
					}
				}
				h.Advance(stream.MaxTime, out)
				assert.Zero(t, h.keys.Len(), "no key left at the end of input")
				assert.Zero(t, h.keys.Timers(), "no timer left at the end of input")
			})
		}
	}
}

// TestHoppingNoAllocationsInSteadyState: events of a few keys, in windows and
// in gaps, with their watermarks, allocate nothing once the keys are known.
func TestHoppingNoAllocationsInSteadyState(t *testing.T) {
	for _, cfg := range []struct{ size, hop time.Duration }{{time.Minute, 10 * time.Second}, {time.Second, 10 * time.Second}} {
		h, err := NewHopping(cfg.size, cfg.hop, FactoryOf[float64, float64](NewMean))
		require.NoError(t, err, "NewHopping")
		var out resultSink
		keys := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}
		now := stream.Time(1_746_677_558_352)
		step := func() {
			now += 100
			for _, k := range keys {
				h.Process(stream.Event[float64]{Key: k, Time: now, Value: 99_190.48}, &out)
			}
			h.Advance(now+1, &out)
		}
		for range 10_000 {
			step()
		}
		assert.Zerof(t, testing.AllocsPerRun(5000, step), "size %v hop %v: allocations per step", cfg.size, cfg.hop)
	}
}
