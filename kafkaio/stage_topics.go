package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/IBM/sarama"
)

// recordBatchOverhead is the size of a record batch's header (magic v2):
// what a batch of one record adds to the record, against the topic's
// max.message.bytes.
const recordBatchOverhead = 61

// outTopic is what a running stage knows of a topic it writes.
type outTopic struct {
	// maxBytes is the largest record the topic takes as the producer counts
	// it (sarama.ProducerMessage.ByteSize): the smaller of the producer's
	// Producer.MaxMessageBytes and the topic's max.message.bytes less a
	// batch header.
	maxBytes int
}

// ensureTopics creates the topics of WithEnsureTopics that do not exist,
// through an admin of its own.
func (s *Stage) ensureTopics(ctx context.Context) error {
	if len(s.cfg.ensure) == 0 {
		return nil
	}
	cl, err := dial(ctx, s, s.clientConfig(func(*sarama.Config) {}), "admin")
	if err != nil {
		return err
	}
	admin, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		_ = cl.Close()
		return fmt.Errorf("kafkaio: stage %q: admin: %w", s.group, err)
	}
	defer admin.Close() // closes cl
	if err := EnsureTopics(ctx, admin, s.cfg.ensure); err != nil {
		return fmt.Errorf("kafkaio: stage %q: %w", s.group, err)
	}
	return nil
}

// checkOutputs checks that the topics the stage writes exist and learns the
// largest record each takes; a topic that takes less than the producer
// (rt.producerMax) goes into rt.batchLimits, for the producer's batches
// (see producer.send).
func (rt *runtime) checkOutputs(c sarama.Client, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	if err := c.RefreshMetadata(topics...); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		return fmt.Errorf("kafkaio: stage %q: output topics %v: %w", rt.st.group, topics, err)
	}
	for _, t := range topics {
		if _, err := c.Partitions(t); err != nil {
			return missingTopic(rt.st.group, "writes", t, err)
		}
	}
	limits, err := maxMessageBytes(c, topics)
	if err != nil {
		return fmt.Errorf("kafkaio: stage %q: output topics %v: %w", rt.st.group, topics, err)
	}
	for _, t := range topics {
		max := rt.producerMax
		if l, ok := limits[t]; ok && l-recordBatchOverhead < max {
			max = l - recordBatchOverhead
			rt.batchLimits[t] = max
		}
		rt.outTopics[t] = &outTopic{maxBytes: max}
	}
	return nil
}

// outputTopic returns what the stage knows of a topic it writes, checking a
// topic it has not written yet (one a router names) first.
func (rt *runtime) outputTopic(topic string) (*outTopic, error) {
	if t, ok := rt.outTopics[topic]; ok {
		return t, nil
	}
	if err := rt.checkOutputs(rt.groupCl, []string{topic}); err != nil {
		return nil, err
	}
	return rt.outTopics[topic], nil
}

// topicGone reports whether the brokers say topic does not exist.
func (rt *runtime) topicGone(topic string) bool {
	if err := rt.groupCl.RefreshMetadata(topic); err != nil {
		return errors.Is(err, sarama.ErrUnknownTopicOrPartition)
	}
	_, err := rt.groupCl.Partitions(topic)
	return errors.Is(err, sarama.ErrUnknownTopicOrPartition)
}

func missingTopic(group, verb, topic string, err error) error {
	if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		return fmt.Errorf("%w: stage %q %s %q (create it first, or give the stage WithEnsureTopics): %w", ErrMissingTopic, group, verb, topic, err)
	}
	return fmt.Errorf("kafkaio: stage %q %s %q: %w", group, verb, topic, err)
}

// maxMessageBytes returns the max.message.bytes of each topic, asking a
// broker (DescribeConfigs). A topic a broker does not say is left out.
func maxMessageBytes(c sarama.Client, topics []string) (map[string]int, error) {
	b := c.LeastLoadedBroker()
	if b == nil {
		return nil, sarama.ErrOutOfBrokers
	}
	if err := b.Open(c.Config()); err != nil && !errors.Is(err, sarama.ErrAlreadyConnected) {
		return nil, err
	}
	req := &sarama.DescribeConfigsRequest{}
	if c.Config().Version.IsAtLeast(sarama.V2_0_0_0) {
		req.Version = 1
	}
	for _, t := range topics {
		req.Resources = append(req.Resources, &sarama.ConfigResource{Type: sarama.TopicResource, Name: t, ConfigNames: []string{"max.message.bytes"}})
	}
	res, err := b.DescribeConfigs(req)
	if err != nil {
		return nil, fmt.Errorf("describe configs: %w", err)
	}
	out := make(map[string]int, len(topics))
	for _, r := range res.Resources {
		if r.ErrorCode != 0 {
			return nil, fmt.Errorf("describe configs of %q: %w (%s)", r.Name, sarama.KError(r.ErrorCode), r.ErrorMsg)
		}
		for _, e := range r.Configs {
			if e.Name != "max.message.bytes" {
				continue
			}
			if n, err := strconv.Atoi(e.Value); err == nil && n > recordBatchOverhead {
				out[r.Name] = n
			}
		}
	}
	return out, nil
}
