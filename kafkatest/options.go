package kafkatest

import (
	"fmt"
	"log/slog"
	"slices"
)

// DefaultAutoCreatePartitions is the number of partitions of a topic that
// [WithAutoCreateTopics] creates.
const DefaultAutoCreatePartitions = 10

// Option configures a [Cluster]. Options are checked by [NewCluster], which
// returns an error wrapping [ErrInvalidOption] for a bad one.
type Option interface {
	apply(*config)
}

type config struct {
	brokers    int
	ports      []int
	topics     []topicSpec
	autoCreate bool
	dataDir    string
	logger     *slog.Logger
}

type topicSpec struct {
	name       string
	partitions int32
}

type option func(*config)

func (o option) apply(c *config) { o(c) }

// WithBrokers sets the number of brokers of the cluster. Every broker
// leads some partitions (kfake does not replicate: each partition lives on
// its leader only). Default 1, or one per port of [WithPorts].
func WithBrokers(n int) Option {
	return option(func(c *config) { c.brokers = n })
}

// WithPorts fixes the TCP ports the brokers listen on, on 127.0.0.1, one per
// broker in node order; a port 0 is chosen at random. Default: every port is
// random. With [WithBrokers] too, the counts must agree. Whatever the option,
// the ports chosen at the first start are kept by [Cluster.Start] and
// [Cluster.Restart].
func WithPorts(ports ...int) Option {
	return option(func(c *config) { c.ports = slices.Clone(ports) })
}

// WithTopic creates a topic with the given number of partitions when the
// cluster starts. It may be given several times; the last one for a name
// wins. A cluster that reloads a saved state from [WithDataDir] has the
// topics of that state and creates none. Topics with configs are made by
// [Cluster.CreateTopic].
func WithTopic(name string, partitions int32) Option {
	return option(func(c *config) {
		c.topics = append(c.topics, topicSpec{name: name, partitions: partitions})
	})
}

// WithAutoCreateTopics lets a metadata request for a topic that does not
// exist create it, with [DefaultAutoCreatePartitions] partitions, as Apache
// Kafka's auto.create.topics.enable does. Default: topics are created by
// [WithTopic], [Cluster.CreateTopic] or a CreateTopics request only.
func WithAutoCreateTopics() Option {
	return option(func(c *config) { c.autoCreate = true })
}

// WithDataDir keeps the cluster's state (topics and their records, committed
// offsets, groups, producer IDs and transactions) in files under dir,
// created if needed, and reloads it from there when a cluster starts with
// the same dir: after [Cluster.Stop], or in a new process. Without it,
// everything lives in memory and is lost when the cluster stops; [Cluster.Stop]
// and [Cluster.Restart] need it. Writing the state costs disk I/O on every
// produce and commit.
func WithDataDir(dir string) Option {
	return option(func(c *config) { c.dataDir = dir })
}

// WithLogger sends kfake's log lines to l: its errors at ERROR, its warnings
// (a late heartbeat, a slow transaction) at WARN, and its informational and
// debug lines at DEBUG, each with the attribute component=kfake. kfake logs
// little: no line per request. Default nil: the lines are discarded.
func WithLogger(l *slog.Logger) Option {
	return option(func(c *config) { c.logger = l })
}

func (c *config) validate() error {
	switch {
	case c.brokers == 0 && len(c.ports) > 0:
		c.brokers = len(c.ports)
	case c.brokers == 0:
		c.brokers = 1
	}
	if c.brokers < 1 {
		return fmt.Errorf("%w: WithBrokers %d, want at least 1", ErrInvalidOption, c.brokers)
	}
	if len(c.ports) > 0 && len(c.ports) != c.brokers {
		return fmt.Errorf("%w: WithPorts gives %d ports for %d brokers", ErrInvalidOption, len(c.ports), c.brokers)
	}
	for _, p := range c.ports {
		if p < 0 || p > 65535 {
			return fmt.Errorf("%w: WithPorts: port %d out of range", ErrInvalidOption, p)
		}
	}
	for _, t := range c.topics {
		if t.name == "" {
			return fmt.Errorf("%w: WithTopic with an empty name", ErrInvalidOption)
		}
		if t.partitions < 1 {
			return fmt.Errorf("%w: WithTopic %q: %d partitions, want at least 1", ErrInvalidOption, t.name, t.partitions)
		}
	}
	return nil
}
