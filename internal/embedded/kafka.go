package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka is an in-process Kafka-protocol cluster listening on 127.0.0.1.
// Its methods are safe for concurrent use.
type Kafka struct {
	cluster *kfake.Cluster
	addrs   []string

	closeOnce sync.Once
}

// KafkaOption configures [NewKafka].
type KafkaOption interface {
	applyKafka(*kafkaConfig)
}

type kafkaConfig struct {
	brokers    int
	ports      []int
	topics     []topicSpec
	dataDir    string
	autoCreate bool
	logger     *slog.Logger
}

type topicSpec struct {
	name       string
	partitions int32
}

type kafkaOption func(*kafkaConfig)

func (o kafkaOption) applyKafka(c *kafkaConfig) { o(c) }

// Brokers sets the number of brokers in the cluster. Default 1.
func Brokers(n int) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) { c.brokers = n })
}

// KafkaPorts fixes the ports the brokers listen on, one per broker; a zero
// port is chosen at random. Without this option every port is random. When
// [Brokers] is also given, the counts must agree.
func KafkaPorts(ports ...int) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) { c.ports = slices.Clone(ports) })
}

// Topic creates a topic with the given number of partitions when the
// cluster starts. It may be given several times; the last one for a name
// wins. A cluster reloaded from [KafkaDataDir] keeps its persisted topics.
func Topic(name string, partitions int32) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		c.topics = append(c.topics, topicSpec{name: name, partitions: partitions})
	})
}

// AutoCreateTopics lets metadata requests create missing topics, as Apache
// Kafka's auto.create.topics.enable does, with 10 partitions each. Default
// off: topics must be created by [Topic] or a CreateTopics request.
func AutoCreateTopics() KafkaOption {
	return kafkaOption(func(c *kafkaConfig) { c.autoCreate = true })
}

// KafkaDataDir persists the cluster's state (topics, records, committed
// offsets, producer state) under dir and reloads it on the next start with
// the same dir. Default: everything is kept in memory and lost on Close.
func KafkaDataDir(dir string) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) { c.dataDir = dir })
}

// KafkaLogger receives the cluster's log lines; nil, the default, discards
// them. kfake's debug and info lines go to the logger's Debug level.
func KafkaLogger(l *slog.Logger) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) { c.logger = l })
}

// NewKafka starts a cluster. It listens before NewKafka returns, so
// [Kafka.Addrs] can be handed to clients at once. Call [Kafka.Close] to stop it.
func NewKafka(opts ...KafkaOption) (*Kafka, error) {
	cfg := kafkaConfig{}
	for _, o := range opts {
		o.applyKafka(&cfg)
	}
	switch {
	case cfg.brokers == 0 && len(cfg.ports) > 0:
		cfg.brokers = len(cfg.ports)
	case cfg.brokers == 0:
		cfg.brokers = 1
	}
	if cfg.brokers < 1 {
		return nil, fmt.Errorf("embedded: kafka: %d brokers, want at least 1", cfg.brokers)
	}
	if len(cfg.ports) > 0 && len(cfg.ports) != cfg.brokers {
		return nil, fmt.Errorf("embedded: kafka: %d ports for %d brokers", len(cfg.ports), cfg.brokers)
	}
	for _, p := range cfg.ports {
		if p < 0 || p > 65535 {
			return nil, fmt.Errorf("embedded: kafka: port %d out of range", p)
		}
	}

	kopts := []kfake.Opt{
		kfake.NumBrokers(cfg.brokers),
		kfake.ClusterID("tidemark-embedded"),
	}
	if len(cfg.ports) > 0 {
		kopts = append(kopts, kfake.Ports(cfg.ports...))
	}
	for _, t := range cfg.topics {
		if t.name == "" {
			return nil, errors.New("embedded: kafka: topic with an empty name")
		}
		if t.partitions < 1 {
			return nil, fmt.Errorf("embedded: kafka: topic %q: %d partitions, want at least 1", t.name, t.partitions)
		}
		kopts = append(kopts, kfake.SeedTopics(t.partitions, t.name))
	}
	if cfg.autoCreate {
		kopts = append(kopts, kfake.AllowAutoTopicCreation())
	}
	if cfg.dataDir != "" {
		kopts = append(kopts, kfake.DataDir(cfg.dataDir))
	}
	if cfg.logger != nil {
		kopts = append(kopts, kfake.WithLogger(kfakeLogger{cfg.logger}))
	}

	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("embedded: kafka: %w", err)
	}
	return &Kafka{cluster: c, addrs: c.ListenAddrs()}, nil
}

// Addrs returns the brokers' host:port addresses, one per broker, in node
// order. The caller may modify the returned slice.
func (k *Kafka) Addrs() []string { return slices.Clone(k.addrs) }

// Cluster returns the underlying kfake cluster, for tests that inject
// faults (Control, MoveTopicPartition, RemoveNode and the like).
func (k *Kafka) Cluster() *kfake.Cluster { return k.cluster }

// Close stops the cluster and closes its listeners; with [KafkaDataDir] it
// first saves the cluster's state. Close is idempotent and always returns nil.
func (k *Kafka) Close() error {
	k.closeOnce.Do(k.cluster.Close)
	return nil
}

// kfakeLogger adapts a *slog.Logger to kfake.Logger.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lv slog.Level
	switch level {
	case kfake.LogLevelNone:
		return
	case kfake.LogLevelError:
		lv = slog.LevelError
	case kfake.LogLevelWarn:
		lv = slog.LevelWarn
	default:
		lv = slog.LevelDebug
	}
	ctx := context.Background()
	if !k.l.Enabled(ctx, lv) {
		return
	}
	k.l.Log(ctx, lv, fmt.Sprintf(format, args...), slog.String("component", "kfake"))
}
