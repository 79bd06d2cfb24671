package stream

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sumPairs turns each pair into the sum of its sides.
type sumPairs struct{ advances []Time }

func (s *sumPairs) Process(e Event[Pair[int, int]], out Emitter[int]) {
	out.Emit(Event[int]{Key: e.Key, Time: e.Time, Value: e.Value.Left + e.Value.Right})
}
func (s *sumPairs) Advance(wm Time, _ Emitter[int]) { s.advances = append(s.advances, wm) }
func (s *sumPairs) Bounds() Bounds                  { return Bounds{} }

func TestChainTwoInput(t *testing.T) {
	j, err := NewJoin(JoinConfig[int, int]{})
	require.NoError(t, err, "NewJoin")
	second := &sumPairs{}
	c := ChainTwoInput[int, int, Pair[int, int], int](j, second)
	assert.Equal(t, Bounds{}, c.Bounds(), "zero plus zero")
	var got []string
	out := EmitFunc[int](func(e Event[int]) { got = append(got, fmt.Sprintf("%s@%d=%d", e.Key, e.Time, e.Value)) })
	c.ProcessLeft(Event[int]{Key: "a", Time: 5, Value: 1}, out)
	c.ProcessRight(Event[int]{Key: "a", Time: 5, Value: 10}, out)
	c.ProcessRight(Event[int]{Key: "b", Time: 6, Value: 20}, out)
	c.Advance(7, out)
	assert.Equal(t, []string{"a@5=11"}, got, "the pair, summed")
	assert.Equal(t, []Time{7}, second.advances, "a join does not look ahead: the watermark passes unchanged")
	assert.Equal(t, uint64(1), j.Stats().UnmatchedRight, "b had no partner")
}
