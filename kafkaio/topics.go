package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// TopicSpec describes a topic for EnsureTopics.
type TopicSpec struct {
	Name string
	// Partitions is the number of partitions; 0 means the broker's default
	// for a new topic and accepts any count for an existing one.
	Partitions int32
	// ReplicationFactor is the number of replicas; 0 means the broker's default.
	ReplicationFactor int16
	// Config holds topic-level settings for a new topic, such as
	// "retention.ms" or "cleanup.policy". Existing topics keep theirs.
	Config map[string]string
}

// TopicAdmin is the part of sarama.ClusterAdmin that EnsureTopics uses. To
// use a client's connections, pass sarama.NewClusterAdminFromClient(client),
// and do not Close that admin while the client is in use: it would close
// the client.
type TopicAdmin interface {
	DescribeTopics(topics []string) ([]*sarama.TopicMetadata, error)
	CreateTopic(topic string, detail *sarama.TopicDetail, validateOnly bool) error
}

// topicReadyTimeout bounds the wait for new topics when ctx has no deadline.
const topicReadyTimeout = 30 * time.Second

// EnsureTopics creates the topics that do not exist yet and leaves the
// existing ones untouched. It returns once every topic it created has a
// leader for each partition, so that producers and consumers can use it at
// once (it waits at most 30 s when ctx has no deadline). An existing topic
// whose partition count differs from a non-zero Partitions is an error
// wrapping ErrTopicMismatch: record keys would not land where the spec says.
// A topic created concurrently by someone else counts as existing. Errors name
// the topic; EnsureTopics goes on with the other topics and joins the errors.
func EnsureTopics(ctx context.Context, admin TopicAdmin, topics []TopicSpec) error {
	if admin == nil {
		return fmt.Errorf("%w: nil admin", ErrInvalidOption)
	}
	names := make([]string, 0, len(topics))
	seen := make(map[string]bool, len(topics))
	for _, t := range topics {
		switch {
		case t.Name == "":
			return fmt.Errorf("%w: topic with an empty name", ErrInvalidOption)
		case seen[t.Name]:
			return fmt.Errorf("%w: topic %q given twice", ErrInvalidOption, t.Name)
		case t.Partitions < 0 || t.ReplicationFactor < 0:
			return fmt.Errorf("%w: topic %q: negative partitions or replication factor", ErrInvalidOption, t.Name)
		}
		seen[t.Name] = true
		names = append(names, t.Name)
	}
	if len(topics) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	md, err := admin.DescribeTopics(names)
	if err != nil {
		return fmt.Errorf("kafkaio: describe topics %v: %w", names, err)
	}
	found := make(map[string]*sarama.TopicMetadata, len(md))
	for _, m := range md {
		found[m.Name] = m
	}

	var errs []error
	var created []TopicSpec
	for _, t := range topics {
		m := found[t.Name]
		switch {
		case m == nil || errors.Is(m.Err, sarama.ErrUnknownTopicOrPartition):
			if err := ctx.Err(); err != nil {
				return errors.Join(append(errs, err)...)
			}
			err := admin.CreateTopic(t.Name, detail(t), false)
			switch {
			case err == nil:
				created = append(created, t)
			case errors.Is(err, sarama.ErrTopicAlreadyExists):
				created = append(created, t) // someone else's: wait for it and check it like ours
			default:
				errs = append(errs, fmt.Errorf("kafkaio: create topic %q: %w", t.Name, err))
			}
		case !errors.Is(m.Err, sarama.ErrNoError):
			errs = append(errs, fmt.Errorf("kafkaio: describe topic %q: %w", t.Name, m.Err))
		case t.Partitions > 0 && int32(len(m.Partitions)) != t.Partitions:
			errs = append(errs, fmt.Errorf("%w: topic %q has %d partitions, the spec asks for %d (nothing was changed; use Partitions 0 to accept any count)",
				ErrTopicMismatch, t.Name, len(m.Partitions), t.Partitions))
		}
	}
	if len(created) > 0 {
		if err := waitTopics(ctx, admin, created); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func detail(t TopicSpec) *sarama.TopicDetail {
	d := &sarama.TopicDetail{NumPartitions: -1, ReplicationFactor: -1}
	if t.Partitions > 0 {
		d.NumPartitions = t.Partitions
	}
	if t.ReplicationFactor > 0 {
		d.ReplicationFactor = t.ReplicationFactor
	}
	if len(t.Config) > 0 {
		d.ConfigEntries = make(map[string]*string, len(t.Config))
		for k, v := range t.Config {
			d.ConfigEntries[k] = &v
		}
	}
	return d
}

// waitTopics polls the topics' metadata until each has every partition led.
func waitTopics(ctx context.Context, admin TopicAdmin, topics []TopicSpec) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, topicReadyTimeout)
		defer cancel()
	}
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		md, err := admin.DescribeTopics(names)
		var pending []string
		var mismatch []error
		if err != nil {
			pending = names
		} else {
			byName := make(map[string]*sarama.TopicMetadata, len(md))
			for _, m := range md {
				byName[m.Name] = m
			}
			for _, t := range topics {
				m := byName[t.Name]
				switch {
				case m == nil || !errors.Is(m.Err, sarama.ErrNoError) || !led(m):
					pending = append(pending, t.Name)
				case t.Partitions > 0 && int32(len(m.Partitions)) != t.Partitions:
					mismatch = append(mismatch, fmt.Errorf("%w: topic %q has %d partitions, the spec asks for %d",
						ErrTopicMismatch, t.Name, len(m.Partitions), t.Partitions))
				}
			}
		}
		if len(pending) == 0 {
			return errors.Join(mismatch...)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafkaio: topics %v created but not ready: %w", pending, errors.Join(ctx.Err(), err))
		case <-tick.C:
		}
	}
}

// led reports whether every partition of m has a leader.
func led(m *sarama.TopicMetadata) bool {
	if len(m.Partitions) == 0 {
		return false
	}
	for _, p := range m.Partitions {
		if !errors.Is(p.Err, sarama.ErrNoError) || p.Leader < 0 {
			return false
		}
	}
	return true
}
