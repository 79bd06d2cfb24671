package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// clusterID is the cluster ID the brokers report in metadata responses.
const clusterID = "tidemark-kafkatest"

// Cluster is an in-process Kafka-protocol cluster (kfake) listening on
// 127.0.0.1. Its methods are safe for concurrent use, with each other and
// with the clients of the cluster.
type Cluster struct {
	cfg config

	mu     sync.Mutex
	fake   *kfake.Cluster // nil while stopped
	ports  []int          // fixed by the first start
	addrs  []string
	closed bool
}

// NewCluster starts a cluster. It listens before NewCluster returns, so
// [Cluster.Addrs] can be handed to clients at once. Call [Cluster.Close] to
// stop it for good; tests use [New], which does.
func NewCluster(opts ...Option) (*Cluster, error) {
	var cfg config
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidOption)
		}
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, ports: slices.Clone(cfg.ports)}
	if c.ports == nil {
		c.ports = make([]int, cfg.brokers)
	}
	if err := c.start(0); err != nil {
		return nil, err
	}
	return c, nil
}

// New starts a cluster for the test tb, as [NewCluster] does, and closes it
// when the test ends ([testing.TB.Cleanup]). It fails the test when the
// cluster cannot start.
func New(tb testing.TB, opts ...Option) *Cluster {
	tb.Helper()
	c, err := NewCluster(opts...)
	if err != nil {
		tb.Fatalf("kafkatest: start a cluster: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// start starts kfake on c.ports, retrying for up to wait while a port is
// still held (by the listener of a cluster that was just stopped, say).
// c.mu is held, or c is not shared yet.
func (c *Cluster) start(wait time.Duration) error {
	kopts := []kfake.Opt{
		kfake.NumBrokers(c.cfg.brokers),
		kfake.ClusterID(clusterID),
		kfake.DefaultNumPartitions(DefaultAutoCreatePartitions),
	}
	if slices.ContainsFunc(c.ports, func(p int) bool { return p != 0 }) {
		kopts = append(kopts, kfake.Ports(c.ports...))
	}
	for _, t := range c.cfg.topics {
		kopts = append(kopts, kfake.SeedTopics(t.partitions, t.name))
	}
	if c.cfg.autoCreate {
		kopts = append(kopts, kfake.AllowAutoTopicCreation())
	}
	if c.cfg.dataDir != "" {
		kopts = append(kopts, kfake.DataDir(c.cfg.dataDir))
	}
	if c.cfg.logger != nil {
		kopts = append(kopts, kfake.WithLogger(kfakeLogger{c.cfg.logger}))
	}
	deadline := time.Now().Add(wait)
	for {
		f, err := kfake.NewCluster(kopts...)
		if err == nil {
			c.fake = f
			c.addrs = f.ListenAddrs()
			for i, a := range c.addrs {
				_, port, err := net.SplitHostPort(a)
				if err == nil {
					c.ports[i], err = strconv.Atoi(port)
				}
				if err != nil {
					f.Close()
					c.fake = nil
					return fmt.Errorf("kafkatest: broker address %q: %w", a, err)
				}
			}
			return nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return fmt.Errorf("kafkatest: start kfake: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Addrs returns the brokers' host:port addresses, one per broker, in node
// order. They do not change across [Cluster.Stop] and [Cluster.Start]. The
// caller may modify the returned slice.
func (c *Cluster) Addrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.addrs)
}

// Stop takes the cluster down as a broker that is shut down or crashes
// would be to its clients: it closes the listeners and every client
// connection, so that requests fail, and clients retry or report the
// outage until [Cluster.Start]. The state is kept in the [WithDataDir]
// directory: kfake saves it as it stops (a clean shutdown, in which nothing
// acknowledged is lost). Faults installed by [Cluster.Fail] are dropped.
//
// Stop returns [ErrNotPersistent] without a data directory (the cluster
// keeps running), [ErrStopped] when the cluster is stopped already, and
// [ErrClosed] after [Cluster.Close].
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return ErrClosed
	case c.fake == nil:
		return ErrStopped
	case c.cfg.dataDir == "":
		return ErrNotPersistent
	}
	c.fake.Close()
	c.fake = nil
	return nil
}

// Start brings a stopped cluster back on the same ports, with the state
// [Cluster.Stop] kept: topics, records, committed offsets, groups and
// producer IDs; clients reconnect on their own. It waits up to 5 s for the
// ports to be free. It does nothing when the cluster runs, and returns
// [ErrClosed] after [Cluster.Close].
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return ErrClosed
	case c.fake != nil:
		return nil
	}
	return c.start(5 * time.Second)
}

// Restart stops the cluster, waits for down and starts it again: a broker
// restart, or an outage of length down, as clients see it. It needs
// [WithDataDir], as [Cluster.Stop] does; it returns ctx's error, with the
// cluster still stopped, when ctx is done before down has passed.
func (c *Cluster) Restart(ctx context.Context, down time.Duration) error {
	if err := c.Stop(); err != nil {
		return err
	}
	t := time.NewTimer(down)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("kafkatest: restart: %w", ctx.Err())
	case <-t.C:
	}
	return c.Start()
}

// Close stops the cluster for good and closes its listeners; with
// [WithDataDir] it saves the state first, for a cluster started later on the
// same directory. Close is idempotent and always returns nil.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.fake != nil {
		c.fake.Close()
		c.fake = nil
	}
	return nil
}

// running returns the kfake cluster, or an error when it is stopped or
// closed.
func (c *Cluster) running() (*kfake.Cluster, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, ErrClosed
	case c.fake == nil:
		return nil, ErrStopped
	}
	return c.fake, nil
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
