package kafkatest

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/IBM/sarama"
)

// clientConfig is the configuration of the helpers' clients: quick
// retries, every record acknowledged by its leader, and records placed in
// the partition their message names.
func clientConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "kafkatest"
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
	cfg.Producer.Retry.Backoff = 50 * time.Millisecond
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	return cfg
}

// CreateTopic creates a topic with the given number of partitions and
// topic configs (such as "retention.ms": "-1" or "cleanup.policy":
// "compact"; nil for the defaults). It returns an error wrapping
// [sarama.ErrTopicAlreadyExists] when the topic exists. ctx bounds the
// wait for the cluster's answer.
func (c *Cluster) CreateTopic(ctx context.Context, topic string, partitions int32, configs map[string]string) error {
	if topic == "" || partitions < 1 {
		return fmt.Errorf("%w: CreateTopic(%q, %d partitions): want a name and at least 1 partition", ErrInvalidOption, topic, partitions)
	}
	detail := &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}
	if len(configs) > 0 {
		detail.ConfigEntries = make(map[string]*string, len(configs))
		for k, v := range configs {
			detail.ConfigEntries[k] = &v
		}
	}
	return c.withClient(ctx, "create topic "+topic, func(client sarama.Client) error {
		admin, err := sarama.NewClusterAdminFromClient(client)
		if err != nil {
			return err
		}
		// Not closed: that would close client, which withClient does.
		return admin.CreateTopic(topic, detail, false)
	})
}

// Produce writes msgs, in order, and returns once the cluster has
// acknowledged every one of them; each message then has its Partition,
// Offset and Timestamp set. A message goes to the partition its Partition
// field names (0 unless set), whatever its key: to place records by key as
// kafkaio and Kafka's Java producer do, set Partition with
// sarama.NewMurmur2Partitioner. The records are not transactional. Produce
// returns the first error of a message, or an error wrapping ctx.Err() when
// ctx is done first; the messages produced before it stay in the topics.
func (c *Cluster) Produce(ctx context.Context, msgs ...*sarama.ProducerMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	return c.withClient(ctx, "produce", func(client sarama.Client) error { return ProduceWith(ctx, client, msgs...) })
}

// ProduceWith is Cluster.Produce through a client of any cluster (Apache Kafka
// in an integration test, with the client's own settings: TLS, SASL). The
// client's Producer.Partitioner should be sarama.NewManualPartitioner for
// each message's Partition to be kept, and Producer.Return.Successes must
// be on. The client stays open.
func ProduceWith(ctx context.Context, client sarama.Client, msgs ...*sarama.ProducerMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	p, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		return err
	}
	defer p.AsyncClose()
	// One at a time, so that a failed message cannot be overtaken by
	// the next one in its partition.
	for _, m := range msgs {
		select {
		case p.Input() <- m:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-p.Successes():
		case perr := <-p.Errors():
			return fmt.Errorf("%s/%d: %w", perr.Msg.Topic, perr.Msg.Partition, perr.Err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// ReadCommitted returns the records of topic that a read_committed consumer
// sees from the start of each partition up to its last stable offset when
// ReadCommitted is called: records of committed transactions and records
// written outside transactions, but neither those of aborted transactions
// nor those of transactions still open, nor the transactions' markers. The
// records are in partition order, then offset order, with Topic,
// Partition, Offset, Key, Value, Headers and Timestamp set. ReadCommitted
// stops at the last stable offset exactly, so it never waits for records
// that will not come; an open transaction holds back what follows it. It
// returns an error wrapping [sarama.ErrUnknownTopicOrPartition] for a topic
// that does not exist, and one wrapping ctx.Err() when ctx is done first.
func (c *Cluster) ReadCommitted(ctx context.Context, topic string) ([]*sarama.ConsumerMessage, error) {
	var out []*sarama.ConsumerMessage
	err := c.withClient(ctx, "read "+topic, func(client sarama.Client) error {
		var err error
		out, err = ReadCommittedWith(ctx, client, topic)
		return err
	})
	return out, err
}

// ReadCommittedWith is Cluster.ReadCommitted through a client of any cluster
// (Apache Kafka in an integration test, with the client's own settings:
// TLS, SASL). The client stays open. The records read before an error are
// returned with it.
func ReadCommittedWith(ctx context.Context, client sarama.Client, topic string) ([]*sarama.ConsumerMessage, error) {
	var out []*sarama.ConsumerMessage
	parts, err := client.Partitions(topic)
	if err != nil {
		return out, err
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return out, err
	}
	ask := map[string]map[int32]int64{topic: {}}
	for _, p := range parts {
		ask[topic][p] = sarama.OffsetNewest
	}
	stable, err := admin.ListOffsets(ask, &sarama.ListOffsetsOptions{IsolationLevel: sarama.ReadCommitted})
	if err != nil {
		return out, fmt.Errorf("last stable offsets: %w", err)
	}
	slices.Sort(parts)
	for _, p := range parts {
		r := stable[topic][p]
		if r == nil {
			return out, fmt.Errorf("no last stable offset for partition %d", p)
		}
		if !errors.Is(r.Err, sarama.ErrNoError) {
			return out, fmt.Errorf("last stable offset of partition %d: %w", p, r.Err)
		}
		start, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return out, fmt.Errorf("first offset of partition %d: %w", p, err)
		}
		recs, err := readPartition(ctx, client, topic, p, start, r.Offset)
		if err != nil {
			return out, fmt.Errorf("partition %d: %w", p, err)
		}
		out = append(out, recs...)
	}
	return out, nil
}

// readPartition returns what a read_committed consumer sees of partition p
// of topic between the offsets start and end, fetching it from its leader
// and dropping what Kafka's consumers drop: control batches (transaction
// markers) and the batches of aborted transactions, which each fetch
// response lists. Its own consumer loop, rather than sarama's, knows where
// it is in the partition, markers included, so that it stops at end.
func readPartition(ctx context.Context, client sarama.Client, topic string, p int32, start, end int64) ([]*sarama.ConsumerMessage, error) {
	var out []*sarama.ConsumerMessage
	for next, idle := start, 0; next < end; idle++ {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if idle == 100 { // about 10 s of fetches at MaxWaitTime
			return out, fmt.Errorf("no record at offset %d in 100 fetches, below the last stable offset %d", next, end)
		}
		leader, err := client.Leader(topic, p)
		if err != nil {
			return out, err
		}
		req := &sarama.FetchRequest{Version: 4, MaxWaitTime: 100, MinBytes: 1, MaxBytes: 64 << 20, Isolation: sarama.ReadCommitted}
		req.AddBlock(topic, p, next, 64<<20, -1)
		resp, err := leader.Fetch(req)
		if err != nil {
			return out, fmt.Errorf("fetch at offset %d: %w", next, err)
		}
		block := resp.GetBlock(topic, p)
		if block == nil {
			return out, fmt.Errorf("fetch at offset %d: no answer for the partition", next)
		}
		switch {
		case errors.Is(block.Err, sarama.ErrNotLeaderForPartition), errors.Is(block.Err, sarama.ErrUnknownTopicOrPartition),
			errors.Is(block.Err, sarama.ErrLeaderNotAvailable):
			if err := client.RefreshMetadata(topic); err != nil {
				return out, err
			}
			continue
		case !errors.Is(block.Err, sarama.ErrNoError):
			return out, fmt.Errorf("fetch at offset %d: %w", next, block.Err)
		}
		// The aborted transactions that reach into the fetched range, as
		// Kafka's consumer uses them: a producer's batches are dropped from
		// the first offset of its aborted transaction to the transaction's
		// abort marker.
		aborted := slices.Clone(block.AbortedTransactions)
		slices.SortFunc(aborted, func(a, b *sarama.AbortedTransaction) int { return cmp.Compare(a.FirstOffset, b.FirstOffset) })
		aborting := map[int64]bool{}
		for _, records := range block.RecordsSet {
			batch := records.RecordBatch
			if batch == nil {
				return out, fmt.Errorf("fetch at offset %d: a message set of the old format", next)
			}
			if batch.PartialTrailingRecord {
				break // the rest comes with the next fetch
			}
			// The aborted transactions that begin at or before this batch.
			for len(aborted) > 0 && aborted[0].FirstOffset <= batch.LastOffset() {
				aborting[aborted[0].ProducerID] = true
				aborted = aborted[1:]
			}
			switch {
			case batch.Control:
				if isAbortMarker(batch) {
					delete(aborting, batch.ProducerID)
				}
			case batch.IsTransactional && aborting[batch.ProducerID]:
			default:
				for _, rec := range batch.Records {
					off := batch.FirstOffset + rec.OffsetDelta
					if off < next || off >= end {
						continue
					}
					ts := batch.FirstTimestamp.Add(rec.TimestampDelta)
					if batch.LogAppendTime {
						ts = batch.MaxTimestamp
					}
					out = append(out, &sarama.ConsumerMessage{
						Topic: topic, Partition: p, Offset: off,
						Key: rec.Key, Value: rec.Value, Headers: rec.Headers,
						Timestamp: ts, BlockTimestamp: batch.MaxTimestamp,
					})
				}
			}
			if batch.LastOffset() >= next {
				next, idle = batch.LastOffset()+1, 0
			}
		}
	}
	return out, nil
}

// isAbortMarker reports whether a control batch is a transaction's abort
// marker: its record's key is a version (int16) and a type, 0 for abort.
func isAbortMarker(b *sarama.RecordBatch) bool {
	if len(b.Records) == 0 || len(b.Records[0].Key) < 4 {
		return false
	}
	return binary.BigEndian.Uint16(b.Records[0].Key[2:4]) == 0
}

// withClient runs f with a client of the cluster, closed afterwards, and
// wraps its error in the package's prefix and what.
func (c *Cluster) withClient(ctx context.Context, what string, f func(sarama.Client) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafkatest: %s: %w", what, err)
	}
	client, err := sarama.NewClient(c.Addrs(), clientConfig())
	if err != nil {
		return fmt.Errorf("kafkatest: %s: %w", what, err)
	}
	defer client.Close()
	if err := f(client); err != nil {
		return fmt.Errorf("kafkatest: %s: %w", what, err)
	}
	return nil
}
