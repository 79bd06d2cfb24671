package stream

import "time"

// PartitionChange says that a source partition was assigned to this process or
// revoked from it. Partition is the number the source puts in Record.Partition.
type PartitionChange struct {
	Partition int
	Revoked   bool // false: assigned
}

// Rebalancer is implemented by sources whose partitions come and go while they
// run, such as the members of a Kafka consumer group.
//
// Contract: after each Poll, the runner calls PartitionChanges and applies the
// changes, in order, before it pushes the records that Poll returned
// (Driver.Rebalance does that). The source guarantees that those records come
// only from partitions that are assigned once the changes are applied, so a
// revoked partition is never brought back by a stale record. A source with
// pending changes may return from Poll with n == 0 and a nil error, so that a
// revocation reaches the watermarks even when no record follows it.
type Rebalancer interface {
	// PartitionChanges appends the changes since the previous call to dst and
	// returns the extended slice.
	PartitionChanges(dst []PartitionChange) []PartitionChange
}

// Rebalance applies partition changes to the Driver's watermarks at wall-clock
// time now (the zero time is fine when no idle timeout is set). An assigned
// partition holds the watermark back from now on, until it goes idle; a revoked
// partition stops holding it back, which may release held events through the
// operator. Events already accepted from a revoked partition stay in the
// Sequencer and are processed when the watermark passes them.
func (d *Driver[In, Out]) Rebalance(changes []PartitionChange, now time.Time) {
	if len(changes) == 0 {
		return
	}
	w := d.Watermarks()
	for _, c := range changes {
		if c.Revoked {
			w.Revoke(c.Partition)
		} else {
			w.Assign(c.Partition, now)
		}
	}
	// Tick recomputes the watermark over the partitions now active and
	// releases what it allows; it marks partitions idle only when an idle
	// timeout is set and now is a real time.
	d.Tick(now)
}
