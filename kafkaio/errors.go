package kafkaio

import (
	"errors"
	"fmt"

	"github.com/IBM/sarama"
	"github.com/tidemark-go/tidemark/stream"
)

// Errors callers can test for with errors.Is.
var (
	// ErrInvalidOption is wrapped by the errors constructors return for
	// invalid arguments or options. It matches stream.ErrInvalidOption with
	// errors.Is, as mongoio's does.
	ErrInvalidOption error = invalidOption("kafkaio: invalid option")
	// ErrInvalidConfig is wrapped when a client's *sarama.Config lacks a
	// setting the Stage or Sink needs (NewConfig has them all), or fails
	// sarama's validation.
	ErrInvalidConfig = errors.New("kafkaio: invalid sarama config")
	// ErrClosed is returned by the methods of a closed Sink.
	ErrClosed = errors.New("kafkaio: closed")
	// ErrTopicMismatch is wrapped by EnsureTopics when an existing topic does
	// not have the partitions its TopicSpec asks for.
	ErrTopicMismatch = errors.New("kafkaio: existing topic does not match its spec")
	// ErrStageRunning is returned by Run when the stage runs already.
	ErrStageRunning = errors.New("kafkaio: the stage runs already")
	// ErrNotCoPartitioned is returned by Run when the inputs of a two-input
	// stage do not have the same number of partitions.
	ErrNotCoPartitioned = errors.New("kafkaio: input topics are not co-partitioned")
	// ErrMissingTopic is wrapped by Run's error when a topic the stage reads
	// or writes (its outputs and its dead-letter topic) does not exist, at
	// start or later, unless WithEnsureTopics creates it.
	ErrMissingTopic = errors.New("kafkaio: topic does not exist")
	// ErrRecordRefused is matched by a *RecordError: an input record whose
	// result the stage could not write for good.
	ErrRecordRefused = errors.New("kafkaio: record refused")
	// ErrCrashed is returned by Run when Faults crashed the stage.
	ErrCrashed = errors.New("kafkaio: stage crashed (Faults)")
	// ErrStageStopped is returned by WaitCaughtUp when the stage stopped
	// without an error before it caught up.
	ErrStageStopped = errors.New("kafkaio: the stage stopped")
)

// RecordError is an input record whose result a stage could not write for
// good: the result is too large for its topic, its codec cannot encode it,
// the brokers refuse it (an invalid timestamp for the topic, a policy), or
// the sink refuses it (stream.ErrRejected). With WithOnRecordError(
// StopOnRecordError), or without a dead-letter topic, Run returns it:
// nothing past the record is committed. By default the record is
// dead-lettered instead and the stage goes on. It matches ErrRecordRefused.
type RecordError struct {
	Stage string // the stage's consumer group
	// The input record: its topic, partition and offset. Offset is -1 when
	// no input record can be named (a result of many events, emitted by an
	// idle advance).
	Topic     string
	Partition int32
	Offset    int64
	Output    string // the topic the result was for, or "sink"
	Size      int    // the result's size in bytes as the producer counts it, 0 if unknown
	Err       error  // why
}

func (e *RecordError) Error() string {
	at := fmt.Sprintf("%s/%d@%d", e.Topic, e.Partition, e.Offset)
	if e.Offset < 0 {
		at = "an input record that cannot be named"
	}
	size := ""
	if e.Size > 0 {
		size = fmt.Sprintf(" (%d bytes)", e.Size)
	}
	return fmt.Sprintf("kafkaio: stage %q: the result of %s cannot be written to %s%s: %v", e.Stage, at, e.Output, size, e.Err)
}

// Unwrap returns the reason.
func (e *RecordError) Unwrap() error { return e.Err }

// Is reports whether target is ErrRecordRefused.
func (e *RecordError) Is(target error) bool { return target == ErrRecordRefused }

// invalidOption is the type of ErrInvalidOption: its own message, and
// stream.ErrInvalidOption beneath it.
type invalidOption string

func (e invalidOption) Error() string { return string(e) }
func (invalidOption) Unwrap() error   { return stream.ErrInvalidOption }

// ProduceError is a record the broker did not acknowledge (or that sarama
// rejected before sending it). Sink.Write and Sink.Flush return it, possibly
// wrapped; Err is sarama's error, such as sarama.ErrMessageSizeTooLarge.
type ProduceError struct {
	Topic     string
	Partition int32 // -1 when the record failed before a partition was chosen
	Err       error
}

func (e *ProduceError) Error() string {
	return fmt.Sprintf("kafkaio: produce %s/%d: %v", e.Topic, e.Partition, e.Err)
}

// Unwrap returns sarama's error.
func (e *ProduceError) Unwrap() error { return e.Err }

// How a failed produce is handled depends on what failed:
//
//   - retriable: the connection, the leader or the time ran out; sending the
//     record again may succeed (retriable);
//   - the record: the brokers will refuse this record whenever it is sent
//     (too large, an invalid timestamp for the topic, a record the topic's
//     policy refuses); other records go on (recordRefused);
//   - everything else (the topic does not exist, authorization denied, an
//     unsupported version, the producer fenced): no record can be sent until
//     someone changes the configuration.

// retriable reports whether a record that failed with err may succeed when
// resent: the connection, the leader or the time ran out, rather than the
// record, the topic or the credentials being wrong.
func retriable(err error) bool {
	var encoding sarama.PacketEncodingError
	var config sarama.ConfigurationError
	if errors.As(err, &encoding) || errors.As(err, &config) ||
		errors.Is(err, sarama.ErrShuttingDown) || errors.Is(err, sarama.ErrClosedClient) {
		return false
	}
	var kerr sarama.KError
	if errors.As(err, &kerr) {
		switch kerr {
		case sarama.ErrMessageSizeTooLarge, sarama.ErrInvalidMessage, sarama.ErrInvalidMessageSize,
			sarama.ErrMessageSetSizeTooLarge, sarama.ErrInvalidRecord, sarama.ErrInvalidTimestamp,
			sarama.ErrUnknownTopicOrPartition, sarama.ErrInvalidTopic, sarama.ErrPolicyViolation,
			sarama.ErrTopicAuthorizationFailed, sarama.ErrClusterAuthorizationFailed,
			sarama.ErrTransactionalIDAuthorizationFailed, sarama.ErrSASLAuthenticationFailed,
			sarama.ErrUnsupportedVersion, sarama.ErrUnsupportedForMessageFormat, sarama.ErrInvalidRequiredAcks,
			sarama.ErrProducerFenced:
			return false
		}
	}
	return true
}

// recordRefused reports whether err refuses one record for what it is:
// sending it again will fail again, while other records may go through.
// sarama refuses a record larger than Producer.MaxMessageBytes itself, with
// a ConfigurationError; a PacketEncodingError is a record it cannot encode.
func recordRefused(err error) bool {
	var encoding sarama.PacketEncodingError
	var config sarama.ConfigurationError
	if errors.As(err, &encoding) || errors.As(err, &config) {
		return true
	}
	var kerr sarama.KError
	if errors.As(err, &kerr) {
		switch kerr {
		case sarama.ErrMessageSizeTooLarge, sarama.ErrInvalidMessage, sarama.ErrInvalidMessageSize,
			sarama.ErrMessageSetSizeTooLarge, sarama.ErrInvalidRecord, sarama.ErrInvalidTimestamp,
			sarama.ErrPolicyViolation:
			return true
		}
	}
	return false
}
