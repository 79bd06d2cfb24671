package kafkaio

import (
	"sync/atomic"

	"github.com/tidemark-go/tidemark/stream"
)

// StageStats counts what a Stage did since it started. Each input record
// is counted once in Records and in one of Accepted, Late, Duplicates,
// Rejected or Ahead, and each result once in Emitted or Refused, whatever
// the aborts: what an aborted transaction had counted is taken back, and
// counted again when the rebuilt tasks process those records anew
// (Reprocessed says how many that was). The counts are live: between two
// commits they include what the next commit covers.
type StageStats struct {
	Records      uint64 // records processed (not counting replays)
	Replayed     uint64 // records read again to rebuild task state, not counted above
	Reprocessed  uint64 // records processed again after an abort, also counted above once
	Accepted     uint64 // events accepted by the tasks' sequencers
	Late         uint64 // events dropped as late
	Duplicates   uint64 // events dropped as duplicates
	Rejected     uint64 // records the codec rejected
	Ahead        uint64 // events refused as too far ahead of their record (Input.MaxAhead)
	DeadLettered uint64 // input records written to the dead-letter topic (rejected, ahead, or whose result was refused)
	Emitted      uint64 // results written
	Refused      uint64 // results that could not be written for good (too large, not encodable, refused by the broker or the sink)
	Commits      uint64 // commits (transactions, or offset commits)
	Aborts       uint64 // transactions aborted, or failed commits
	Rebuilds     uint64 // tasks rebuilt after an abort
	Tasks        int64  // tasks running now
	// Lag is the sum, over the partitions the stage consumes, of the offsets
	// between the last record it received and the partition's end, as of the
	// latest fetch. The end counts transaction markers, which a
	// read_committed consumer never receives: a caught-up stage reading a
	// transactional topic shows up to one per partition.
	Lag int64
	// Watermark is the smallest watermark of the running tasks that are not
	// replaying (stream.MinTime when there is none): every result at or
	// before it is emitted. The wall clock less Watermark is the stage's
	// watermark delay.
	Watermark stream.Time
}

// counter is one of a stage's counts that follow its transactions: what
// is counted since the last commit is pending, taken back by an abort and
// made final by a commit. Only the loop goroutine adds; Stats reads from
// any goroutine.
type counter struct {
	total   atomic.Uint64
	pending uint64
}

func (c *counter) add(n uint64) {
	c.total.Add(n)
	c.pending += n
}

func (c *counter) commit() { c.pending = 0 }

// takeBack undoes an add of 1 in the open transaction: a result counted
// as written that the sink refused at its flush.
func (c *counter) takeBack() {
	if c.pending == 0 {
		return
	}
	c.total.Add(^uint64(0))
	c.pending--
}

func (c *counter) abort() {
	c.total.Add(-c.pending)
	c.pending = 0
}

// stageCounters are a Stage's counts.
type stageCounters struct {
	// Counted once per input record or result: pending until the commit.
	records, accepted, late, dups, rejected, ahead, deadLettered, emitted, refused counter
	// Counted as they happen.
	replayed, reprocessed, commits, aborts, rebuilds atomic.Uint64
	tasks, watermark                                 atomic.Int64
}

func (c *stageCounters) transactional() []*counter {
	return []*counter{&c.records, &c.accepted, &c.late, &c.dups, &c.rejected, &c.ahead, &c.deadLettered, &c.emitted, &c.refused}
}

// committed makes the pending counts final.
func (c *stageCounters) committed() {
	for _, x := range c.transactional() {
		x.commit()
	}
}

// aborted takes the pending counts back.
func (c *stageCounters) aborted() {
	for _, x := range c.transactional() {
		x.abort()
	}
}

func (c *stageCounters) snapshot() StageStats {
	return StageStats{
		Records: c.records.total.Load(), Replayed: c.replayed.Load(), Reprocessed: c.reprocessed.Load(),
		Accepted: c.accepted.total.Load(), Late: c.late.total.Load(), Duplicates: c.dups.total.Load(),
		Rejected: c.rejected.total.Load(), Ahead: c.ahead.total.Load(), DeadLettered: c.deadLettered.total.Load(),
		Emitted: c.emitted.total.Load(), Refused: c.refused.total.Load(), Commits: c.commits.Load(),
		Aborts: c.aborts.Load(), Rebuilds: c.rebuilds.Load(), Tasks: c.tasks.Load(),
		Watermark: stream.MinTime,
	}
}
