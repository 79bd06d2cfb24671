package kafkaio

import (
	"errors"
	"time"

	"github.com/IBM/sarama"
)

// A claim's lag is the offsets between the last record it delivered and
// the partition's end. In a topic written by transactions the end counts
// the transactions' markers (and the records of aborted transactions),
// which a read_committed consumer never receives, so a caught-up stage
// would show a lag of one per partition forever. When a claim has been
// quiet for a while with a lag above zero, the loop asks the partition's
// leader what lies between the claim's position and the end: when it is
// only markers and aborted records, the claim is caught up and its lag 0.

// quietBeforeProbe is how long a claim is quiet before the loop asks its
// leader what lies beyond it, and how often it asks again.
const quietBeforeProbe = time.Second

// probeClaims asks, for each claim quiet for a second, what lies between
// its position and its partition's end: only transaction markers or
// aborted records (its lag is then 0), records on their way, or an open
// transaction. For WithIdleAdvance, it also confirms the claim's quiet
// spell: an input is idle only while the brokers say it is caught up, so
// that a broker away (the claim hears nothing, but records may be waiting)
// or an open transaction upstream never counts as quiet.
func (rt *runtime) probeClaims(now time.Time) {
	every := quietBeforeProbe
	if rt.st.cfg.idle > 0 {
		every = min(every, rt.st.cfg.idle)
	}
	rt.claimsMu.Lock()
	var quiet []*claimRef
	for c := range rt.claims {
		fed := c.fedAt.Load()
		if fed == 0 || now.Sub(time.Unix(0, fed)) < every || now.Sub(time.Unix(0, c.probedAt.Load())) < every {
			continue
		}
		quiet = append(quiet, c) // for the lag, WithIdleAdvance and WaitCaughtUp
	}
	rt.claimsMu.Unlock()
	for _, c := range quiet {
		c.probedAt.Store(now.UnixNano())
		caughtUp, err := onlyMarkers(rt.groupCl, c.topic, c.partition, c.processed.Load()+1)
		if err != nil || !caughtUp {
			// Not confirmed: the brokers away, or records on their way.
			c.quiet.Store(0)
			c.confirmed.Store(false)
			continue
		}
		c.lag.Store(0)
		if c.quiet.Load() == 0 {
			c.quiet.Store(now.UnixNano()) // quiet again from now
		}
		c.confirmed.Store(true)
		c.confirmedAt.Store(now.UnixNano())
	}
}

// onlyMarkers reports whether the offsets of topic/partition from from to
// its end hold no record that a read_committed consumer would receive, nor
// an open transaction: only transaction markers and records of aborted
// transactions.
func onlyMarkers(c sarama.Client, topic string, partition int32, from int64) (bool, error) {
	b, err := c.Leader(topic, partition)
	if err != nil {
		return false, err
	}
	req := &sarama.FetchRequest{Version: 4, MaxWaitTime: 0, MinBytes: 0, MaxBytes: 1 << 20, Isolation: sarama.ReadCommitted}
	req.AddBlock(topic, partition, from, 1<<20, -1)
	res, err := b.Fetch(req)
	if err != nil {
		return false, err
	}
	blk := res.GetBlock(topic, partition)
	if blk == nil {
		return false, errors.New("no block in the fetch response")
	}
	if blk.Err != sarama.ErrNoError {
		return false, blk.Err
	}
	end := blk.HighWaterMarkOffset
	if from >= end {
		return true, nil
	}
	if blk.LastStableOffset >= 0 && blk.LastStableOffset < end {
		return false, nil // a transaction is open: its records are on their way
	}
	aborted := make(map[int64]int64, len(blk.AbortedTransactions))
	for _, a := range blk.AbortedTransactions {
		aborted[a.ProducerID] = a.FirstOffset
	}
	for _, rs := range blk.RecordsSet {
		rb := rs.RecordBatch
		if rb == nil {
			return false, nil // an old message set: assume records
		}
		if rb.Control {
			continue
		}
		if first, ok := aborted[rb.ProducerID]; ok && rb.IsTransactional && rb.FirstOffset >= first {
			continue
		}
		for _, r := range rb.Records {
			if off := rb.FirstOffset + r.OffsetDelta; off >= from && off < end {
				return false, nil
			}
		}
	}
	return true, nil
}
