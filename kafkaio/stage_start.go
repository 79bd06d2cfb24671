package kafkaio

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/internal/backoff"
)

// clientConfig returns a copy of the stage's sarama config adjusted for one
// of its clients.
func (s *Stage) clientConfig(adjust func(*sarama.Config)) *sarama.Config {
	c := *s.cfg.config
	c.Consumer.IsolationLevel = sarama.ReadCommitted
	c.Consumer.Offsets.AutoCommit.Enable = false
	c.Consumer.Return.Errors = true
	// A topic the stage needs that does not exist is an error, not a topic
	// for the brokers to create with their defaults (WithEnsureTopics).
	c.Metadata.AllowAutoTopicCreation = false
	adjust(&c)
	return &c
}

func (s *Stage) start(ctx context.Context) (*runtime, error) {
	rt := &runtime{
		st: s, ctx: ctx, log: s.log,
		events: make(chan event, 64), dead: make(chan struct{}), consumed: make(chan error, 1),
		crashed: make(chan struct{}), parts: make(map[int32]*partitionTask), lastCommit: time.Now(), kinds: make(map[string]bool),
		claims: make(map[*claimRef]struct{}), outTopics: make(map[string]*outTopic), refusedInputs: make(map[originKey]struct{}),
		suspects: make(map[outputID]struct{}), poison: make(map[outputID]error),
		aborts: backoff.New(100*time.Millisecond, 5*time.Second, 0),
	}
	rt.writes, rt.endWrites = context.WithCancel(context.WithoutCancel(ctx))
	// A graceful stop delivers the results in flight, but not forever: a
	// broker that does not take them within the grace period is given up
	// on, and nothing more is committed.
	context.AfterFunc(ctx, func() { time.AfterFunc(stopGrace, rt.endWrites) })
	rt.outputs = s.outputs
	for _, o := range rt.outputs {
		o.bind(rt)
	}
	fail := func(err error) (*runtime, error) {
		rt.endWrites()
		rt.closeClients()
		return nil, err
	}
	var err error
	groupCfg := s.clientConfig(func(c *sarama.Config) {
		c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{NewCoPartitionedStrategy()}
		c.Consumer.Group.InstanceId = s.cfg.instanceID
	})
	if err := groupCfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if rt.groupCl, err = dial(ctx, s, groupCfg, "group"); err != nil {
		return fail(err)
	}
	if err := s.ensureTopics(ctx); err != nil {
		return fail(err)
	}
	if err := s.checkTopics(rt.groupCl); err != nil {
		return fail(err)
	}
	rt.producerMax = s.cfg.config.Producer.MaxMessageBytes
	var outTopics []string
	for _, o := range s.outputs {
		outTopics = append(outTopics, o.topics()...)
	}
	for _, in := range s.inputs {
		if in.lateTopic != "" {
			outTopics = append(outTopics, in.lateTopic)
		}
	}
	rt.batchLimits = make(batchLimits)
	if err = rt.checkOutputs(rt.groupCl, outTopics); err != nil {
		return fail(err)
	}
	if s.cfg.deadLetter != "" {
		if err := rt.checkOutputs(rt.groupCl, []string{s.cfg.deadLetter}); err != nil {
			return fail(err)
		}
		rt.deadLetterMax = rt.outTopics[s.cfg.deadLetter].maxBytes
	}
	// A replay reads a partition from a point up to a known offset, as fast
	// as it can: fetches of up to 8 MiB (within Consumer.Fetch.Max) and
	// room for more records delivered ahead of the task let the broker's
	// next answer travel while the task works through the last.
	replayCfg := s.clientConfig(func(c *sarama.Config) {
		fetch := int32(8 << 20)
		if c.Consumer.Fetch.Max > 0 {
			fetch = min(fetch, c.Consumer.Fetch.Max)
		}
		c.Consumer.Fetch.Default = max(c.Consumer.Fetch.Default, fetch)
		c.ChannelBufferSize = max(c.ChannelBufferSize, 4096)
	})
	if rt.replayCl, err = dial(ctx, s, replayCfg, "replay"); err != nil {
		return fail(err)
	}
	if rt.replayer, err = sarama.NewConsumerFromClient(rt.replayCl); err != nil {
		return fail(fmt.Errorf("%w: replay consumer: %w", ErrInvalidConfig, err))
	}
	if s.exactly || s.cfg.deadLetter != "" || s.lateTopics() {
		txID := ""
		if s.exactly {
			suffix := s.cfg.instanceID
			if suffix == "" {
				var b [6]byte
				_, _ = rand.Read(b[:])
				suffix = hex.EncodeToString(b[:])
			}
			txID = s.group + "-" + suffix
		}
		prodCfg := s.clientConfig(func(c *sarama.Config) {
			c.Producer.Idempotent = true
			c.Producer.RequiredAcks = sarama.WaitForAll
			c.Net.MaxOpenRequests = 1
			c.Producer.Return.Successes = true
			c.Producer.Return.Errors = true
			c.Producer.Transaction.ID = txID
			c.Producer.Transaction.Timeout = s.cfg.txnTimeout
		})
		if err := prodCfg.Validate(); err != nil {
			return fail(fmt.Errorf("%w: %w", ErrInvalidConfig, err))
		}
		prodCl, err := dial(ctx, s, prodCfg, "producer")
		if err != nil {
			return fail(err)
		}
		rt.prodCl = prodCl
		if rt.tx, err = newTxn(ctx, s, prodCl, txID, rt.batchLimits); err != nil {
			return fail(err)
		}
	}
	if rt.group, err = sarama.NewConsumerGroupFromClient(s.group, rt.groupCl); err != nil {
		return fail(fmt.Errorf("%w: consumer group %q: %w", ErrInvalidConfig, s.group, err))
	}
	go rt.consume()
	go rt.groupErrors()
	s.log.Info("kafkaio: stage started", "group", s.group, "inputs", s.topics(), "exactly_once", s.exactly,
		"transactional_id", rt.txID(), "instance", s.cfg.instanceID, "bounds", s.bounds)
	return rt, nil
}

func (s *Stage) topics() []string {
	out := make([]string, len(s.inputs))
	for i, in := range s.inputs {
		out[i] = in.topic
	}
	return out
}

// dial makes a client, waiting for the brokers with capped backoff while
// ctx lasts: a broker that is not up yet is not an error.
func dial(ctx context.Context, s *Stage, cfg *sarama.Config, role string) (sarama.Client, error) {
	b := backoff.New(250*time.Millisecond, 5*time.Second, 0)
	for {
		newClient := sarama.NewClient
		if s.cfg.newClient != nil {
			newClient = s.cfg.newClient
		}
		c, err := newClient(s.cfg.brokers, cfg)
		if err == nil {
			if b.Attempts() > 0 {
				s.log.Info("kafkaio: brokers reachable", "brokers", s.cfg.brokers, "client", role)
			}
			return c, nil
		}
		var ce sarama.ConfigurationError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		if n := b.Attempts() + 1; n == 1 || n%10 == 0 {
			s.log.Warn("kafkaio: brokers unreachable; retrying", "brokers", s.cfg.brokers, "client", role, "attempt", n, "error", err)
		}
		if werr := b.Wait(ctx); werr != nil {
			return nil, fmt.Errorf("kafkaio: connect to %v: %w (last error: %w)", s.cfg.brokers, werr, err)
		}
	}
}

func (s *Stage) checkTopics(c sarama.Client) error {
	if err := c.RefreshMetadata(s.topics()...); err != nil {
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			for _, in := range s.inputs {
				if _, perr := c.Partitions(in.topic); perr != nil {
					return missingTopic(s.group, "reads", in.topic, perr)
				}
			}
		}
		return fmt.Errorf("kafkaio: stage %q: input topics %v: %w", s.group, s.topics(), err)
	}
	n := -1
	for _, in := range s.inputs {
		ps, err := c.Partitions(in.topic)
		if err != nil {
			return missingTopic(s.group, "reads", in.topic, err)
		}
		if n >= 0 && len(ps) != n {
			return fmt.Errorf("%w: %q has %d partitions, %q has %d", ErrNotCoPartitioned, s.inputs[0].topic, n, in.topic, len(ps))
		}
		n = len(ps)
	}
	return nil
}
