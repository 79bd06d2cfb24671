package btc

import (
	"fmt"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/kafkaio"
)

// Reader reads the pipeline's topics as a downstream consumer would, for the
// views that follow them (the terminal view, the dashboard): read_committed,
// without a consumer group and without committing offsets.
type Reader struct {
	Client   sarama.Client
	Consumer sarama.Consumer
}

// NewReader connects to the brokers at addrs with cfg (nil:
// kafkaio.NewConfig()), read_committed whatever cfg says; adjust, if not
// nil, changes the copy of cfg the Reader uses further.
func NewReader(addrs []string, cfg *sarama.Config, adjust func(*sarama.Config)) (*Reader, error) {
	if cfg == nil {
		c, err := kafkaio.NewConfig()
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	c := *cfg
	c.Consumer.IsolationLevel = sarama.ReadCommitted
	c.Consumer.Return.Errors = false
	if adjust != nil {
		adjust(&c)
	}
	client, err := sarama.NewClient(addrs, &c)
	if err != nil {
		return nil, err
	}
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	return &Reader{Client: client, Consumer: cons}, nil
}

// ConsumeRecent consumes partition p of topic from backlog records before its
// end (from its start when it holds fewer).
func (r *Reader) ConsumeRecent(topic string, p int32, backlog int64) (sarama.PartitionConsumer, error) {
	from := sarama.OffsetOldest
	if end, err := r.Client.GetOffset(topic, p, sarama.OffsetNewest); err == nil && end > backlog {
		from = end - backlog
	}
	pc, err := r.Consumer.ConsumePartition(topic, p, from)
	if err != nil {
		return nil, fmt.Errorf("consume %s/%d: %w", topic, p, err)
	}
	return pc, nil
}

// Close closes the consumer and the client.
func (r *Reader) Close() {
	_ = r.Consumer.Close()
	_ = r.Client.Close()
}
