package ring

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDequeAgainstSlice drives a Deque and a plain slice with the same random
// operations and checks that they always hold the same elements.
func TestDequeAgainstSlice(t *testing.T) {
	const seed = 7
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	var d Deque[int]
	var ref []int
	for step := range 20000 {
		switch op := r.IntN(5); {
		case op <= 1:
			d.PushBack(step)
			ref = append(ref, step)
		case op == 2 && len(ref) > 0:
			require.Equal(t, ref[0], d.PopFront(), "PopFront at step %d", step)
			ref = ref[1:]
		case op == 3 && len(ref) > 0:
			require.Equal(t, ref[len(ref)-1], d.PopBack(), "PopBack at step %d", step)
			ref = ref[:len(ref)-1]
		case op == 4:
			i := r.IntN(len(ref) + 1)
			d.Insert(i, -step)
			ref = append(ref[:i], append([]int{-step}, ref[i:]...)...)
		}
		require.Equal(t, len(ref), d.Len(), "Len at step %d", step)
		if len(ref) > 0 {
			assert.Equal(t, ref[0], *d.Front(), "Front at step %d", step)
			assert.Equal(t, ref[len(ref)-1], *d.Back(), "Back at step %d", step)
		}
	}
	for i, v := range ref {
		assert.Equal(t, v, *d.At(i), "element %d", i)
	}
	d.Clear()
	assert.Zero(t, d.Len(), "Len after Clear")
}

func TestDequePanicsOnMisuse(t *testing.T) {
	var d Deque[int]
	assert.Panics(t, func() { d.PopFront() }, "PopFront of empty")
	assert.Panics(t, func() { d.PopBack() }, "PopBack of empty")
	assert.Panics(t, func() { d.At(0) }, "At of empty")
	assert.Panics(t, func() { d.Insert(1, 0) }, "Insert past the end")
}

func TestDequeSteadyStateDoesNotAllocate(t *testing.T) {
	var d Deque[int]
	for i := range 100 {
		d.PushBack(i)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		d.PushBack(1)
		d.PopFront()
	})
	assert.Zero(t, allocs, "push/pop at steady size")
}
