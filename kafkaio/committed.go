package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// committed is an offset committed for a partition, with its metadata.
type committed struct {
	offset int64 // -1 when the group has committed nothing for the partition
	meta   string
}

// fetchCommitted reads the group's committed offsets and metadata for the
// given partitions. It asks for stable offsets (KIP-447 RequireStable): while
// a transaction that commits offsets for one of them is still open, the
// broker answers UNSTABLE_OFFSET_COMMIT and fetchCommitted waits and asks
// again, so that a task never starts from an offset that an open transaction
// is about to move. sarama's offset manager fetches the same way for the
// claims, but keeps the metadata to itself: the tasks need it.
func fetchCommitted(ctx context.Context, client sarama.Client, group string, parts map[string][]int32) (map[topicPartition]committed, error) {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		out, retry, err := fetchCommittedOnce(client, group, parts)
		if err == nil {
			return out, nil
		}
		if !retry {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("kafkaio: fetch committed offsets of group %q: %w (last error: %w)", group, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

func fetchCommittedOnce(client sarama.Client, group string, parts map[string][]int32) (map[topicPartition]committed, bool, error) {
	coord, err := client.Coordinator(group)
	if err != nil {
		return nil, true, err
	}
	req := sarama.NewOffsetFetchRequest(client.Config().Version, group, parts)
	req.RequireStable = req.Version >= 7
	resp, err := coord.FetchOffset(req)
	if err != nil {
		_ = client.RefreshCoordinator(group)
		return nil, true, err
	}
	if resp.Err != sarama.ErrNoError {
		return nil, retriableGroupError(resp.Err), refreshOn(client, group, resp.Err)
	}
	out := make(map[topicPartition]committed)
	for topic, ps := range parts {
		for _, p := range ps {
			b := resp.GetBlock(topic, p)
			if b == nil {
				return nil, true, fmt.Errorf("kafkaio: no committed offset in the answer for %s/%d", topic, p)
			}
			if b.Err != sarama.ErrNoError {
				return nil, retriableGroupError(b.Err), refreshOn(client, group, b.Err)
			}
			out[topicPartition{topic, p}] = committed{offset: b.Offset, meta: b.Metadata}
		}
	}
	return out, false, nil
}

// commitOffsets commits offsets for the group as the member and generation
// of sess, outside any transaction, and returns the broker's verdict: unlike
// sarama's session.Commit, which reports failures on an error channel, the
// caller learns whether the commit took.
func commitOffsets(client sarama.Client, group string, m *sarama.ConsumerGroupMetadata, offsets map[string][]*sarama.PartitionOffsetMetadata) error {
	coord, err := client.Coordinator(group)
	if err != nil {
		return fmt.Errorf("kafkaio: commit offsets of group %q: %w", group, err)
	}
	v := client.Config().Version
	req := &sarama.OffsetCommitRequest{
		Version:                 2,
		ConsumerGroup:           group,
		ConsumerGroupGeneration: m.GenerationID,
		ConsumerID:              m.MemberID,
		RetentionTime:           -1,
	}
	switch {
	case v.IsAtLeast(sarama.V2_4_0_0):
		req.Version = 8
	case v.IsAtLeast(sarama.V2_3_0_0):
		req.Version = 7
	case v.IsAtLeast(sarama.V2_1_0_0):
		req.Version = 6
	}
	if req.Version >= 7 {
		req.GroupInstanceId = m.GroupInstanceID
	}
	for topic, ps := range offsets {
		for _, p := range ps {
			meta := ""
			if p.Metadata != nil {
				meta = *p.Metadata
			}
			req.AddBlock(topic, p.Partition, p.Offset, -1, meta)
		}
	}
	resp, err := coord.CommitOffset(req)
	if err != nil {
		_ = client.RefreshCoordinator(group)
		return fmt.Errorf("kafkaio: commit offsets of group %q: %w", group, err)
	}
	var errs []error
	for topic, ps := range resp.Errors {
		for p, kerr := range ps {
			if kerr != sarama.ErrNoError {
				_ = refreshOn(client, group, kerr)
				errs = append(errs, fmt.Errorf("%s/%d: %w", topic, p, kerr))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("kafkaio: commit offsets of group %q: %w", group, errors.Join(errs...))
	}
	return nil
}

// retriableGroupError reports coordinator errors that a later attempt may not
// see: a moving or loading coordinator, or a transaction still open.
func retriableGroupError(err sarama.KError) bool {
	switch err {
	case sarama.ErrNotCoordinatorForConsumer, sarama.ErrConsumerCoordinatorNotAvailable,
		sarama.ErrOffsetsLoadInProgress, sarama.ErrUnstableOffsetCommit, sarama.ErrRequestTimedOut,
		sarama.ErrNetworkException:
		return true
	}
	return false
}

// refreshOn forgets the coordinator when err says it moved, and returns err.
func refreshOn(client sarama.Client, group string, err sarama.KError) error {
	if err == sarama.ErrNotCoordinatorForConsumer || err == sarama.ErrConsumerCoordinatorNotAvailable {
		_ = client.RefreshCoordinator(group)
	}
	return err
}

// topicPartition names a partition.
type topicPartition struct {
	topic     string
	partition int32
}
