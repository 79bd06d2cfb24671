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
			j, err := NewJoin(JoinConfig[int, int]{
				OnLeftOnly:  func(e Event[int]) { leftOnly = append(leftOnly, e.Time) },
				OnRightOnly: func(e Event[int]) { rightOnly = append(rightOnly, e.Time) },
			})
			require.NoError(t, err, "NewJoin")
			var out collect[Pair[int, int]]
			for _, s := range tt.steps {
				switch s.side {
				case "L":
					j.ProcessLeft(Event[int]{Key: s.key, Time: s.t, Value: s.v}, &out)
				case "R":
					j.ProcessRight(Event[int]{Key: s.key, Time: s.t, Value: s.v}, &out)
				case "W":
					j.Advance(s.t, &out)
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

func TestJoinLateEventIsUnmatchedAtOnce(t *testing.T) {
	j, err := NewJoin(JoinConfig[int, int]{})
	require.NoError(t, err, "NewJoin")
	var out collect[Pair[int, int]]
	j.ProcessLeft(Event[int]{Key: "a", Time: 10}, &out)
	j.Advance(50, &out)
	assert.Equal(t, Time(50), j.Watermark(), "watermark")
	assert.Equal(t, uint64(1), j.Stats().UnmatchedLeft, "evicted at the join watermark")
	j.ProcessRight(Event[int]{Key: "a", Time: 10}, &out)
	assert.Empty(t, out.got, "too late to pair")
	assert.Equal(t, uint64(1), j.Stats().UnmatchedRight, "a right event below the watermark is unmatched at once")
}

// TestJoinOwnsWhatItKeeps: the operators upstream of a join reuse the slices
// they emit (a trailing window's statistics), so a value kept while it waits
// for its partner must be a copy. Without the copy, the pair of t=1 came out
// with the statistics of a later event.
func TestJoinOwnsWhatItKeeps(t *testing.T) {
	_, err := NewJoin(JoinConfig[float64, []int]{})
	require.ErrorIs(t, err, ErrInvalidOption, "a slice value needs a copy")
	assert.Contains(t, err.Error(), "CopyRight", "the error names the missing setting")
	_, err = NewJoin(JoinConfig[struct{ P *int }, int]{})
	require.ErrorIs(t, err, ErrInvalidOption, "a pointer inside a struct needs a copy too")
	_, err = NewJoin(JoinConfig[struct {
		S string
		A [2]float64
	}, string]{})
	require.NoError(t, err, "strings and arrays of numbers are kept as they are")

	j, err := NewJoin(JoinConfig[float64, []int]{CopyRight: CopySlice[int]})
	require.NoError(t, err, "NewJoin")
	var got []string
	out := EmitFunc[Pair[float64, []int]](func(e Event[Pair[float64, []int]]) {
		got = append(got, fmt.Sprintf("%d:%v/%v", e.Time, e.Value.Left, e.Value.Right))
	})
	reused := make([]int, 1) // what an upstream operator emits, rewritten per event
	for tm := Time(1); tm <= 3; tm++ {
		reused[0] = int(tm) // the statistics of the event at tm: count tm
		j.ProcessRight(Event[[]int]{Key: "k", Time: tm, Value: reused}, out)
	}
	for tm := Time(1); tm <= 3; tm++ {
		j.ProcessLeft(Event[float64]{Key: "k", Time: tm, Value: float64(tm) / 10}, out)
	}
	assert.Equal(t, []string{"1:0.1/[1]", "2:0.2/[2]", "3:0.3/[3]"}, got, "each pair has the value of its own time")

	// Evicted copies are recycled: a steady stream keeps a bounded free list.
	for tm := Time(4); tm < 1000; tm++ {
		reused[0] = int(tm)
		j.ProcessRight(Event[[]int]{Key: "k", Time: tm, Value: reused}, out)
		j.ProcessLeft(Event[float64]{Key: "k", Time: tm}, out)
		j.Advance(tm-2, out)
	}
	assert.LessOrEqual(t, len(j.right.free), 4, "free list stays small")
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
	j, err := NewJoin(JoinConfig[int, int]{})
	require.NoError(t, err, "NewJoin")
	maxL, maxR := MinTime, MinTime
	for _, a := range arr {
		if a.left {
			j.ProcessLeft(a.e, &gotPairs)
			maxL = max(maxL, a.e.Time)
		} else {
			j.ProcessRight(a.e, &gotPairs)
			maxR = max(maxR, a.e.Time)
		}
		j.Advance(min(maxL, maxR).Add(-bound), &gotPairs) // the smaller side's watermark
	}
	j.Advance(MaxTime, &gotPairs)
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
	j, err := NewJoin(JoinConfig[float64, float64]{})
	require.NoError(b, err, "NewJoin")
	var out pairCount
	tm := Time(0)
	b.ReportAllocs()
	for b.Loop() {
		tm += 100
		j.ProcessLeft(Event[float64]{Key: "BTCUSDT", Time: tm, Value: 1}, &out)
		j.ProcessRight(Event[float64]{Key: "BTCUSDT", Time: tm, Value: 2}, &out)
		j.Advance(tm-10_000, &out)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/pair")
}
