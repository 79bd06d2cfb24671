package kafkaio

import (
	"fmt"
	"slices"
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func member(topics []string, owned map[string][]int32) sarama.ConsumerGroupMemberMetadata {
	m := sarama.ConsumerGroupMemberMetadata{Version: 1, Topics: topics}
	for t, ps := range owned {
		m.OwnedPartitions = append(m.OwnedPartitions, &sarama.OwnedPartition{Topic: t, Partitions: ps})
	}
	return m
}

func partitions(n int32) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i)
	}
	return out
}

// numbers returns the partition numbers a member got, checking that it got
// the same ones in every topic (co-partitioning).
func numbers(t *testing.T, plan sarama.BalanceStrategyPlan, id string, topics []string) []int32 {
	t.Helper()
	var first []int32
	for i, topic := range topics {
		ps := slices.Clone(plan[id][topic])
		slices.Sort(ps)
		if i == 0 {
			first = ps
			continue
		}
		require.Equal(t, first, ps, "member %s gets the same partitions of %s as of %s", id, topic, topics[0])
	}
	return first
}

func TestCoPartitionedPlan(t *testing.T) {
	s := NewCoPartitionedStrategy()
	topics := []string{"price", "moving"}
	tp := map[string][]int32{"price": partitions(6), "moving": partitions(6)}

	t.Run("fresh group: balanced and co-partitioned", func(t *testing.T) {
		plan, err := s.Plan(map[string]sarama.ConsumerGroupMemberMetadata{"a": member(topics, nil), "b": member(topics, nil)}, tp)
		require.NoError(t, err, "Plan")
		a, b := numbers(t, plan, "a", topics), numbers(t, plan, "b", topics)
		assert.Len(t, a, 3, "a")
		assert.Len(t, b, 3, "b")
		assert.ElementsMatch(t, partitions(6), append(a, b...), "every partition number once")
	})
	t.Run("sticky: owners keep what they own", func(t *testing.T) {
		owned := map[string][]int32{"price": {1, 3, 5}, "moving": {1, 3, 5}}
		plan, err := s.Plan(map[string]sarama.ConsumerGroupMemberMetadata{
			"a": member(topics, owned),
			"b": member(topics, map[string][]int32{"price": {0, 2, 4}, "moving": {0, 2, 4}}),
		}, tp)
		require.NoError(t, err, "Plan")
		assert.Equal(t, []int32{1, 3, 5}, numbers(t, plan, "a", topics), "a keeps its partitions")
		assert.Equal(t, []int32{0, 2, 4}, numbers(t, plan, "b", topics), "b keeps its partitions")
	})
	t.Run("cooperative: a joining member waits for what moves", func(t *testing.T) {
		all := map[string][]int32{"price": partitions(6), "moving": partitions(6)}
		members := map[string]sarama.ConsumerGroupMemberMetadata{"a": member(topics, all), "b": member(topics, nil)}
		plan, err := s.Plan(members, tp)
		require.NoError(t, err, "Plan")
		kept := numbers(t, plan, "a", topics)
		assert.Len(t, kept, 3, "a keeps half")
		assert.Empty(t, numbers(t, plan, "b", topics), "b gets nothing a still owns")
		// Next round: a has revoked what it did not keep.
		members["a"] = member(topics, map[string][]int32{"price": kept, "moving": kept})
		plan, err = s.Plan(members, tp)
		require.NoError(t, err, "Plan")
		assert.Equal(t, kept, numbers(t, plan, "a", topics), "a keeps the same")
		assert.Len(t, numbers(t, plan, "b", topics), 3, "b gets the rest")
	})
	t.Run("a partition claimed by two members goes to neither until both released it", func(t *testing.T) {
		plan, err := s.Plan(map[string]sarama.ConsumerGroupMemberMetadata{
			"a": member(topics, map[string][]int32{"price": {0}, "moving": {0}}),
			"b": member(topics, map[string][]int32{"price": {0}, "moving": {0}}),
		}, tp)
		require.NoError(t, err, "Plan")
		assert.NotContains(t, append(numbers(t, plan, "a", topics), numbers(t, plan, "b", topics)...), int32(0), "withheld")
	})
	t.Run("uneven counts", func(t *testing.T) {
		for _, n := range []int{1, 2, 4, 5, 7} {
			members := map[string]sarama.ConsumerGroupMemberMetadata{}
			for i := range n {
				members[fmt.Sprint(i)] = member(topics, nil)
			}
			plan, err := s.Plan(members, tp)
			require.NoError(t, err, "Plan")
			var got []int32
			for id := range members {
				ps := numbers(t, plan, id, topics)
				assert.LessOrEqual(t, len(ps), (6+n-1)/n, "%d members: member %s holds at most its share", n, id)
				got = append(got, ps...)
			}
			assert.ElementsMatch(t, partitions(6), got, "%d members: every partition number once", n)
		}
	})
	t.Run("topics not co-partitioned", func(t *testing.T) {
		_, err := s.Plan(map[string]sarama.ConsumerGroupMemberMetadata{"a": member(topics, nil)},
			map[string][]int32{"price": partitions(6), "moving": partitions(4)})
		assert.ErrorContains(t, err, "not co-partitioned", "Plan")
	})
	t.Run("members with another subscription", func(t *testing.T) {
		_, err := s.Plan(map[string]sarama.ConsumerGroupMemberMetadata{"a": member(topics, nil), "b": member([]string{"price"}, nil)}, tp)
		assert.ErrorContains(t, err, "one subscription", "Plan")
	})
}
