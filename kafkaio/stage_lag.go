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

// quietBeforeProbe is how long a claim with a lag is quiet before the
// loop asks its leader what the lag is made of.
const quietBeforeProbe = time.Second

// probeLags sets to 0 the lag of the quiet claims that only markers or
// aborted records separate from the end of their partition.
func (rt *runtime) probeLags(now time.Time) {
	rt.claimsMu.Lock()
	var quiet []*claimRef
	for c := range rt.claims {
		if c.lag.Load() > 0 && now.Sub(time.Unix(0, c.fedAt.Load())) >= quietBeforeProbe && c.probed.Load() != c.hwm.Load() {
			quiet = append(quiet, c)
		}
	}
	rt.claimsMu.Unlock()
	for _, c := range quiet {
		hwm := c.hwm.Load()
		ok, err := onlyMarkers(rt.groupCl, c.topic, c.partition, c.last.Load()+1, hwm)
		if err != nil {
			continue // asked again after the next quiet spell
		}
		c.probed.Store(hwm)
		if ok && c.hwm.Load() == hwm {
			c.lag.Store(0)
		}
	}
}

// onlyMarkers reports whether the offsets of topic/partition from from to
// end hold no record that a read_committed consumer would receive: only
// transaction markers and records of aborted transactions.
func onlyMarkers(c sarama.Client, topic string, partition int32, from, end int64) (bool, error) {
	if from >= end {
		return true, nil
	}
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
