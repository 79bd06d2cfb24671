package kafkatest

import (
	"errors"

	"github.com/tidemark-go/tidemark/stream"
)

// Errors that callers branch on. Every error the package returns starts with
// "kafkatest: " and wraps at most one of these, plus the error of kfake or
// sarama beneath it where there is one.
var (
	// ErrInvalidOption is wrapped by the errors of [NewCluster],
	// [Cluster.Fail], [Cluster.Control] and [Cluster.CreateTopic] for an
	// invalid option or argument. It matches
	// [stream.ErrInvalidOption] with [errors.Is], as kafkaio's and mongoio's
	// do.
	ErrInvalidOption error = invalidOption("kafkatest: invalid option")

	// ErrClosed is returned by [Cluster.Start], [Cluster.Stop],
	// [Cluster.Restart], [Cluster.Fail] and [Cluster.Control] once
	// [Cluster.Close] was called.
	ErrClosed = errors.New("kafkatest: closed")

	// ErrStopped is returned by [Cluster.Stop], [Cluster.Fail] and
	// [Cluster.Control] while the cluster is stopped.
	ErrStopped = errors.New("kafkatest: stopped")

	// ErrNotPersistent is returned by [Cluster.Stop] and [Cluster.Restart]
	// for a cluster started without [WithDataDir]: its records live in
	// memory only, so it could not come back with them.
	ErrNotPersistent = errors.New("kafkatest: no data directory (WithDataDir) to keep the records across a stop")
)

// invalidOption is the type of [ErrInvalidOption]: its own message, and
// [stream.ErrInvalidOption] beneath it.
type invalidOption string

func (e invalidOption) Error() string { return string(e) }
func (invalidOption) Unwrap() error   { return stream.ErrInvalidOption }
