package kafkaio

import (
	"fmt"
	"slices"

	"github.com/IBM/sarama"
)

// CoPartitionedStrategyName is the name under which NewCoPartitionedStrategy
// takes part in a group's assignor election.
const CoPartitionedStrategyName = "tidemark-copartitioned"

// NewCoPartitionedStrategy returns the balance strategy of a Stage: it
// assigns partition p of every subscribed topic to the same member, so that
// the task for partition p of a two-input stage gets both its inputs. It is
// sticky (a member keeps the partition numbers it owns while the group stays
// balanced, so their tasks keep their state) and cooperative (a partition
// number that moves is withheld from its new owner until the old owner has
// revoked it, and the group rebalances again; the other members go on
// working). Every member must subscribe to the same topics, which must have
// the same number of partitions; Plan fails otherwise.
func NewCoPartitionedStrategy() sarama.BalanceStrategy { return coPartitioned{} }

type coPartitioned struct{}

func (coPartitioned) Name() string { return CoPartitionedStrategyName }

func (coPartitioned) SupportedProtocols() []sarama.RebalanceProtocol {
	return []sarama.RebalanceProtocol{sarama.RebalanceProtocolCooperative, sarama.RebalanceProtocolEager}
}

func (coPartitioned) AssignmentData(string, map[string][]int32, int32) ([]byte, error) {
	return nil, nil
}

func (coPartitioned) Plan(members map[string]sarama.ConsumerGroupMemberMetadata, topics map[string][]int32) (sarama.BalanceStrategyPlan, error) {
	names := make([]string, 0, len(topics))
	n := -1
	for t, ps := range topics {
		names = append(names, t)
		if n >= 0 && len(ps) != n {
			return nil, fmt.Errorf("kafkaio: topics %v are not co-partitioned: partition counts differ", names)
		}
		n = len(ps)
	}
	slices.Sort(names)
	ids := make([]string, 0, len(members))
	for id, m := range members {
		if !slices.Equal(sortedCopy(m.Topics), names) {
			return nil, fmt.Errorf("kafkaio: member %s subscribes to %v, the group to %v; a co-partitioned group needs one subscription", id, m.Topics, names)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	plan := make(sarama.BalanceStrategyPlan, len(ids))
	if len(ids) == 0 || n <= 0 {
		return plan, nil
	}

	// Current owners of each partition number; a number claimed by two
	// members (one of them stale) belongs to neither until both revoked it.
	owner := make([]int, n)
	for p := range owner {
		owner[p] = -1
	}
	claims := make([][]int32, len(ids))
	for i, id := range ids {
		seen := map[int32]bool{}
		for _, op := range members[id].OwnedPartitions {
			for _, p := range op.Partitions {
				if p < 0 || int(p) >= n || seen[p] {
					continue
				}
				seen[p] = true
				claims[i] = append(claims[i], p)
				switch owner[p] {
				case -1:
					owner[p] = i
				default:
					owner[p] = -2
				}
			}
		}
		slices.Sort(claims[i])
	}

	// Sticky balance: base numbers each, one more for the first extra
	// members to need it; owners keep what they own up to that.
	base, extra := n/len(ids), n%len(ids)
	assigned := make([][]int32, len(ids))
	taken := make([]bool, n)
	for i := range ids {
		for _, p := range claims[i] {
			if owner[p] == i && len(assigned[i]) < base {
				assigned[i] = append(assigned[i], p)
				taken[p] = true
			}
		}
	}
	for i := range ids {
		for _, p := range claims[i] {
			if extra > 0 && owner[p] == i && !taken[p] && len(assigned[i]) == base {
				assigned[i] = append(assigned[i], p)
				taken[p] = true
				extra--
			}
		}
	}
	for p := range n {
		if taken[p] {
			continue
		}
		best := -1
		for i := range ids {
			capacity := base
			if extra > 0 && len(assigned[i]) == base {
				capacity = base + 1
			}
			if len(assigned[i]) < capacity && (best < 0 || len(assigned[i]) < len(assigned[best])) {
				best = i
			}
		}
		if len(assigned[best]) == base {
			extra--
		}
		assigned[best] = append(assigned[best], int32(p))
		taken[p] = true
	}

	// Cooperative: a number moving to a new member waits until no other
	// member claims it any more.
	for i, id := range ids {
		for _, p := range assigned[i] {
			if owner[p] != i && (owner[p] != -1 || claimedByOther(claims, i, p)) {
				continue
			}
			for _, t := range names {
				plan.Add(id, t, p)
			}
		}
	}
	return plan, nil
}

func claimedByOther(claims [][]int32, me int, p int32) bool {
	for i, c := range claims {
		if i != me {
			if _, ok := slices.BinarySearch(c, p); ok {
				return true
			}
		}
	}
	return false
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return slices.Compact(c)
}
