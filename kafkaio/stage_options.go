package kafkaio

import (
	"slices"
	"time"
)

// OnRecordError says what a stage does with an input record whose result
// it cannot write for good (see RecordError).
type OnRecordError uint8

const (
	// DeadLetterOnRecordError, the default, writes the input record to the
	// dead-letter topic (WithDeadLetter), in the same transaction as the
	// results, with the reason, the output topic and the result's size in
	// headers; the stage goes on with the next record. A stage without a
	// dead-letter topic stops instead, as with StopOnRecordError: the record
	// would have nowhere to go.
	DeadLetterOnRecordError OnRecordError = iota
	// StopOnRecordError makes Run return a *RecordError that names the
	// stage, the input record (topic, partition, offset) and the output:
	// the open transaction is aborted, nothing past the record is
	// committed, and the next run meets the record again. It is Kafka
	// Streams' ProductionExceptionHandler answering FAIL.
	StopOnRecordError
)

// WithOnRecordError sets what the stage does with an input record whose
// result cannot be written for good (default DeadLetterOnRecordError).
func WithOnRecordError(p OnRecordError) StageOption {
	if p > StopOnRecordError {
		return optionError("unknown OnRecordError %d", p)
	}
	return stageOption(func(c *stageConfig) { c.onRecordError = p })
}

// WithEnsureTopics makes Run create the topics of specs that do not exist
// (EnsureTopics) before it checks the topics it reads and writes. Without
// it, a topic the stage needs that does not exist is an error from Run
// (ErrMissingTopic).
func WithEnsureTopics(specs ...TopicSpec) StageOption {
	specs = slices.Clone(specs)
	return stageOption(func(c *stageConfig) { c.ensure = append(c.ensure, specs...) })
}

// WithIdleAdvance makes a quiet input flush (default: off). When a task's
// input has had no record for timeout (wall time), its watermark advances
// by the wall time elapsed since its last record, as if event time went on
// at the wall clock's pace (stream.TaskInput.Idle), so that the results of
// its last events come out and are committed: within the input's
// lateness, the operator's reach ahead and timeout after the input stopped.
// It never jumps to the wall clock itself, so that a replay of old events
// stays valid. Under continuous input nothing changes. An event that
// arrives after a quiet spell longer than its lateness, with a time below
// the advanced watermark, is late (counted in StageStats.Late); the
// checkpoint carries what the idle advance did, so that recovery stays
// exact (see package stream, Idle inputs). timeout must be positive.
func WithIdleAdvance(timeout time.Duration) StageOption {
	if timeout <= 0 {
		return optionError("idle timeout %v, want more than 0", timeout)
	}
	return stageOption(func(c *stageConfig) { c.idle = timeout })
}
