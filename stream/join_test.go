package stream

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJoin(t *testing.T) {
	type step struct {
		side string // "L", "R" or "W" (advance both)
		key  string
		t    Time
		v    int
	}
	tests := []struct {
		name        string
		steps       []step
		pairs       []string // "key@t=l/r"
		leftOnly    []Time
		rightOnly   []Time
		duplicates  uint64
		waitingLeft int
	}{
		{name: "empty"},
		{name: "single left waits", steps: []step{{"L", "a", 5, 1}}, waitingLeft: 1},
		{name: "pair either order", steps: []step{{"L", "a", 5, 1}, {"R", "a", 5, 2}, {"R", "b", 5, 3}, {"L", "b", 5, 4}},
			pairs: []string{"a@5=1/2", "b@5=4/3"}},
		{name: "same time other key does not pair", steps: []step{{"L", "a", 5, 1}, {"R", "b", 5, 2}, {"W", "", 6, 0}},
			leftOnly: []Time{5}, rightOnly: []Time{5}},
		{name: "evicted once the watermark is above, not at", steps: []step{
			{"L", "a", 5, 1}, {"W", "", 5, 0}, {"R", "a", 5, 2}, {"L", "a", 6, 3}, {"W", "", 7, 0}, {"R", "a", 6, 4}},
			pairs: []string{"a@5=1/2"}, leftOnly: []Time{6}, rightOnly: []Time{6}},
		{name: "duplicates on one side", steps: []step{{"L", "a", 5, 1}, {"L", "a", 5, 9}, {"R", "a", 5, 2}, {"R", "a", 5, 8}, {"L", "a", 5, 7}},
			pairs: []string{"a@5=1/2"}, duplicates: 3},
		{name: "out of order within a side", steps: []step{{"L", "a", 9, 1}, {"L", "a", 3, 2}, {"R", "a", 3, 3}, {"R", "a", 9, 4}},
			pairs: []string{"a@3=2/3", "a@9=1/4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var leftOnly, rightOnly []Time
			j := NewJoin[int, int](func(e Event[int]) { leftOnly = append(leftOnly, e.Time) },
				func(e Event[int]) { rightOnly = append(rightOnly, e.Time) })
			var out collect[Pair[int, int]]
			for _, s := range tt.steps {
				switch s.side {
				case "L":
					j.Left(Event[int]{Key: s.key, Time: s.t, Value: s.v}, &out)
				case "R":
					j.Right(Event[int]{Key: s.key, Time: s.t, Value: s.v}, &out)
				case "W":
					j.Advance(s.t)
				}
			}
			var pairs []string
			for _, p := range out.got {
				pairs = append(pairs, fmt.Sprintf("%s@%d=%d/%d", p.Key, p.Time, p.Value.Left, p.Value.Right))
			}
			assert.Equal(t, tt.pairs, pairs, "pairs")
			assert.Equal(t, tt.leftOnly, leftOnly, "left unmatched")
			assert.Equal(t, tt.rightOnly, rightOnly, "right unmatched")
			st := j.Stats()
			assert.Equal(t, uint64(len(tt.pairs)), st.Pairs, "pair count")
			assert.Equal(t, tt.duplicates, st.Duplicates, "duplicates")
			assert.Equal(t, uint64(len(tt.leftOnly)), st.UnmatchedLeft, "unmatched left count")
			l, _ := j.Waiting()
			assert.Equal(t, tt.waitingLeft, l, "left waiting")
		})
	}
}

func TestJoinSidesWatermarks(t *testing.T) {
	j := NewJoin[int, int](nil, nil)
	var out collect[Pair[int, int]]
	j.Left(Event[int]{Key: "a", Time: 10}, &out)
	j.AdvanceLeft(100)
	assert.Equal(t, MinTime, j.Watermark(), "the join waits for the slower side")
	j.AdvanceRight(50)
	assert.Equal(t, Time(50), j.Watermark(), "the smaller of the two")
	assert.Equal(t, uint64(1), j.Stats().UnmatchedLeft, "evicted at the join watermark")
	j.Right(Event[int]{Key: "a", Time: 10}, &out)
	assert.Empty(t, out.got, "too late to pair")
	assert.Equal(t, uint64(1), j.Stats().UnmatchedRight, "a right event below the watermark is unmatched at once")
}

// TestJoinRandomized checks the join against a brute-force reference: two
// streams of random identities, each delivered out of order within a bound
// and interleaved; the pairs are exactly the identities present on both sides.
func TestJoinRandomized(t *testing.T) {
	const seed = 99
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	const bound = 50
	type id struct {
		k string
		t Time
	}
	keys := []string{"x", "y", "z"}
	var left, right []Event[int]
	inL, inR := map[id]int{}, map[id]int{}
	for tm := Time(0); tm < 5000; tm++ {
		for _, k := range keys {
			if r.IntN(3) == 0 {
				left = append(left, Event[int]{Key: k, Time: tm, Value: int(tm) * 10})
				inL[id{k, tm}] = int(tm) * 10
			}
			if r.IntN(3) == 0 {
				right = append(right, Event[int]{Key: k, Time: tm, Value: -int(tm)})
				inR[id{k, tm}] = -int(tm)
			}
		}
	}
	var want []string
	for k, l := range inL {
		if rv, ok := inR[k]; ok {
			want = append(want, fmt.Sprintf("%s@%d=%d/%d", k.k, k.t, l, rv))
		}
	}
	slices.Sort(want)
	// Deliver each side sorted by time + random delay < bound, interleaved by
	// that arrival key, with each side's watermark = max time seen - bound.
	type arrival struct {
		at   Time
		left bool
		e    Event[int]
	}
	var arr []arrival
	for _, e := range left {
		arr = append(arr, arrival{e.Time + Time(r.IntN(bound)), true, e})
	}
	for _, e := range right {
		arr = append(arr, arrival{e.Time + Time(r.IntN(bound)), false, e})
	}
	slices.SortStableFunc(arr, func(a, b arrival) int { return int(a.at - b.at) })
	var gotPairs collect[Pair[int, int]]
	j := NewJoin[int, int](nil, nil)
	maxL, maxR := MinTime, MinTime
	for _, a := range arr {
		if a.left {
			j.Left(a.e, &gotPairs)
			maxL = max(maxL, a.e.Time)
			j.AdvanceLeft(maxL.Add(-bound))
		} else {
			j.Right(a.e, &gotPairs)
			maxR = max(maxR, a.e.Time)
			j.AdvanceRight(maxR.Add(-bound))
		}
	}
	j.Advance(MaxTime)
	var got []string
	for _, p := range gotPairs.got {
		got = append(got, fmt.Sprintf("%s@%d=%d/%d", p.Key, p.Time, p.Value.Left, p.Value.Right))
	}
	slices.Sort(got)
	require.Equal(t, len(want), len(got), "number of pairs")
	assert.Equal(t, want, got, "pairs")
	st := j.Stats()
	assert.Equal(t, uint64(len(left)-len(want)), st.UnmatchedLeft, "unmatched left")
	assert.Equal(t, uint64(len(right)-len(want)), st.UnmatchedRight, "unmatched right")
	l, rr := j.Waiting()
	assert.Zero(t, l+rr, "nothing waits after end of input")
}

type pairCount struct{ n int }

func (p *pairCount) Emit(Event[Pair[float64, float64]]) { p.n++ }

// BenchmarkJoin measures one pair: a left event, its right partner, and the
// watermark advance that evicts it, in steady state.
func BenchmarkJoin(b *testing.B) {
	j := NewJoin[float64, float64](nil, nil)
	var out pairCount
	tm := Time(0)
	b.ReportAllocs()
	for b.Loop() {
		tm += 100
		j.Left(Event[float64]{Key: "BTCUSDT", Time: tm, Value: 1}, &out)
		j.Right(Event[float64]{Key: "BTCUSDT", Time: tm, Value: 2}, &out)
		j.Advance(tm - 10_000)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/pair")
}

func ExampleJoin() {
	j := NewJoin[string, float64](nil, nil)
	out := EmitFunc[Pair[string, float64]](func(e Event[Pair[string, float64]]) {
		fmt.Println(e.Key, e.Time, e.Value.Left, e.Value.Right)
	})
	j.Left(Event[string]{Key: "BTCUSDT", Time: 1000, Value: "trade"}, out)
	j.Right(Event[float64]{Key: "BTCUSDT", Time: 1000, Value: 99190.48}, out)
	j.Right(Event[float64]{Key: "BTCUSDT", Time: 2000, Value: 99191.00}, out)
	j.Advance(MaxTime)
	fmt.Println("unmatched right:", j.Stats().UnmatchedRight)
	// Output:
	// BTCUSDT 1970-01-01T00:00:01.000Z trade 99190.48
	// unmatched right: 1
}
