package kafkatest

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// APIKey is a kind of Kafka request: its API key in the Kafka protocol
// (https://kafka.apache.org/protocol#protocol_api_keys). The constants name
// the ones a producer, a consumer group member and a transactional client
// send; any other key of the protocol may be given as a number.
type APIKey int16

// The kinds of request of producers, consumers and transactions.
const (
	Produce            APIKey = 0
	Fetch              APIKey = 1
	ListOffsets        APIKey = 2
	Metadata           APIKey = 3
	OffsetCommit       APIKey = 8
	OffsetFetch        APIKey = 9
	FindCoordinator    APIKey = 10
	JoinGroup          APIKey = 11
	Heartbeat          APIKey = 12
	LeaveGroup         APIKey = 13
	SyncGroup          APIKey = 14
	CreateTopics       APIKey = 19
	InitProducerID     APIKey = 22
	AddPartitionsToTxn APIKey = 24
	AddOffsetsToTxn    APIKey = 25
	EndTxn             APIKey = 26
	TxnOffsetCommit    APIKey = 28
)

// String returns the request's name in the Kafka protocol, such as
// "OffsetCommit", or "Unknown" for a key the protocol does not define.
func (k APIKey) String() string { return kmsg.NameForKey(int16(k)) }

// Failure says which requests [Cluster.Fail] makes the cluster refuse, and
// with which error. Each field narrows the requests it applies to; the
// zero value fails the next request of any kind.
type Failure struct {
	// Requests are the kinds of request to fail; empty: every kind.
	Requests []APIKey
	// Topic, when set, limits the failure to requests about that topic (a
	// request that names no topic, such as a heartbeat, never matches), and
	// Partitions, when set, to those partitions of it: the other topics and
	// partitions of a matching request are answered normally.
	Topic      string
	Partitions []int32
	// Group, when set, limits the failure to requests of that consumer
	// group (its FindCoordinator included), and TransactionalID to those of
	// that transactional producer.
	Group           string
	TransactionalID string
	// Err is the error code to answer with; the zero value,
	// [sarama.ErrNoError], means [sarama.ErrUnknown] (UNKNOWN_SERVER_ERROR).
	// The request is refused before the broker acts on it, except with
	// [sarama.ErrRequestTimedOut] on the requests a real broker can answer
	// so after doing their work (Produce, OffsetCommit, TxnOffsetCommit,
	// CreateTopics and other writes; also [sarama.ErrNotEnoughReplicasAfterAppend]
	// on Produce): then the work is done and only the answer is an error,
	// which is what a lost acknowledgement looks like to a client.
	Err sarama.KError
	// Count is the number of requests to fail: 0 means 1, and -1 every
	// matching request until [Fault.Remove]. A request counts once
	// however many of its partitions fail.
	Count int
}

// Fault is a [Failure] installed on a cluster by [Cluster.Fail]. Its
// methods are safe for concurrent use.
type Fault struct {
	h *kfake.FaultHandle
}

// Fail makes the cluster answer the requests that f selects with f.Err,
// until f.Count requests have been failed or [Fault.Remove] is called. It
// simulates the errors of a broker that clients must handle: a coordinator
// that refuses an offset commit (ErrNotCoordinatorForConsumer,
// ErrRebalanceInProgress), a leader that moved (ErrNotLeaderForPartition),
// a transaction that a broker fences (ErrProducerFenced), a produce that
// times out after it was written (ErrRequestTimedOut). Several failures may
// be installed at once; the first one installed that matches a request
// answers it. Faults do not survive [Cluster.Stop].
//
// Fail returns an error wrapping [ErrInvalidOption] for a Count below -1 or
// an Err that is not a Kafka error code, and [ErrStopped] or [ErrClosed]
// when the cluster is not running.
func (c *Cluster) Fail(f Failure) (*Fault, error) {
	if f.Count < -1 {
		return nil, fmt.Errorf("%w: Failure.Count %d, want -1 (until removed) or more", ErrInvalidOption, f.Count)
	}
	code := int16(f.Err)
	if code == 0 {
		code = int16(sarama.ErrUnknown)
	}
	kerrErr := kerr.TypedErrorForCode(code)
	if kerrErr == nil || kerrErr.Code != code {
		return nil, fmt.Errorf("%w: Failure.Err %d is not a Kafka error code", ErrInvalidOption, f.Err)
	}
	kf, err := c.running()
	if err != nil {
		return nil, err
	}
	keys := make([]kmsg.Key, len(f.Requests))
	for i, k := range f.Requests {
		keys[i] = kmsg.Key(k)
	}
	return &Fault{h: kf.Fault(kfake.Fault{
		Keys:       keys,
		Topic:      f.Topic,
		Partitions: f.Partitions,
		Group:      f.Group,
		TxnID:      f.TransactionalID,
		Err:        kerrErr,
		Count:      f.Count,
	})}, nil
}

// Hits returns the number of requests the fault has failed so far.
func (f *Fault) Hits() int { return f.h.Hits() }

// Wait blocks until the fault has failed at least n requests, or until ctx
// is done, which it reports with an error wrapping ctx.Err().
func (f *Fault) Wait(ctx context.Context, n int) error {
	if err := f.h.Wait(ctx, n); err != nil {
		return fmt.Errorf("kafkatest: wait for %d failed requests (%d so far): %w", n, f.Hits(), err)
	}
	return nil
}

// Remove uninstalls the fault: the requests it would have failed are
// answered normally. It is idempotent.
func (f *Fault) Remove() { f.h.Remove() }

// AnyRequest, as the key of [Cluster.Control], runs the control function on
// requests of every kind.
const AnyRequest APIKey = -1

// Control runs fn on every request of the kind key ([AnyRequest]: of every
// kind) that the cluster receives, before the cluster handles it, until
// the function it returns is called or the cluster stops: the hook for the
// faults that [Cluster.Fail] cannot describe, such as a produce request
// refused for the records it carries, an answer that never comes, or a
// response of one's own making. fn gets the request as
// github.com/twmb/franz-go/pkg/kmsg decodes it. When fn returns handled,
// the cluster sends resp as the answer, or, when err is not nil, closes the
// client's connection (a broker that goes away mid-request); otherwise the
// cluster handles the request, or the next control function for it does,
// in the order they were installed. Control functions run one at a time on
// the cluster's goroutine, before [Cluster.Fail]'s faults: fn must not
// block, nor call the cluster's methods. Like faults, they do not survive
// [Cluster.Stop].
//
// Control returns [ErrStopped] or [ErrClosed] when the cluster is not
// running.
func (c *Cluster) Control(key APIKey, fn func(req kmsg.Request) (resp kmsg.Response, err error, handled bool)) (remove func(), err error) {
	if fn == nil {
		return nil, fmt.Errorf("%w: Control with a nil function", ErrInvalidOption)
	}
	kf, err := c.running()
	if err != nil {
		return nil, err
	}
	var removed atomic.Bool
	kf.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if removed.Load() {
			kf.DropControl()
			return nil, nil, false
		}
		kf.KeepControl() // kfake drops a function once it has handled a request
		return fn(req)
	})
	return func() { removed.Store(true) }, nil
}
