package kafkaio

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/IBM/sarama"
)

// startOffset returns where a Follower begins partition p, as its
// FollowStart says, and the partition's last stable offset (the end that
// read_committed readers see), waiting with backoff while the brokers do
// not answer.
func (f *Follower) startOffset(ctx context.Context, client sarama.Client, p *followPart) (from, end int64, err error) {
	for attempt := 1; ; attempt++ {
		if from, end, err = f.tryStart(client, p); err == nil {
			f.out.over(f, true)
			return from, end, nil
		}
		if permanent(err) {
			return 0, 0, fmt.Errorf("kafkaio: follower: start of %s/%d: %w", p.topic, p.partition, err)
		}
		f.out.trouble(f, err, "start", "topic", p.topic, "partition", p.partition)
		_ = client.RefreshMetadata(p.topic) // the leader may have moved
		if serr := f.sleep(ctx, followBackoff(attempt)); serr != nil {
			return 0, 0, fmt.Errorf("kafkaio: follower: start of %s/%d: %w (last error: %w)", p.topic, p.partition, serr, err)
		}
	}
}

func (f *Follower) tryStart(client sarama.Client, p *followPart) (from, end int64, err error) {
	oldest, err := client.GetOffset(p.topic, p.partition, sarama.OffsetOldest)
	if err != nil {
		return 0, 0, err
	}
	if end, err = f.lastStable(client, p); err != nil {
		return 0, 0, err
	}
	back := f.start.back
	switch {
	case back < 0 || end-oldest <= back: // fewer offsets than records wanted
		return oldest, end, nil
	case back == 0:
		return end, end, nil
	}
	from, err = f.scanBack(client, p, oldest, end, back)
	return from, end, err
}

// lastStable returns p's last stable offset: a ListOffsets request for the
// latest offset at read_committed, which sarama's GetOffset does not make.
func (f *Follower) lastStable(client sarama.Client, p *followPart) (int64, error) {
	b, err := client.Leader(p.topic, p.partition)
	if err != nil {
		return 0, err
	}
	req := sarama.NewOffsetRequest(f.cfg.Version)
	req.IsolationLevel = sarama.ReadCommitted
	req.AddBlock(p.topic, p.partition, sarama.OffsetNewest, 1)
	resp, err := b.GetAvailableOffsets(req)
	if err != nil {
		_ = b.Close() // as sarama does: the next request reconnects
		return 0, err
	}
	blk := resp.GetBlock(p.topic, p.partition)
	switch {
	case blk == nil:
		return 0, sarama.ErrIncompleteResponse
	case blk.Err != sarama.ErrNoError:
		return 0, blk.Err
	}
	return blk.Offset, nil
}

// scanBack returns the offset of the n-th last record that read_committed
// readers see in p's offsets [begin, end), or begin when there are fewer.
// It reads windows of offsets backwards from end, each as large as the
// records still wanted, through fetches of its own, which tell (unlike a
// partition consumer) how far they have read even when the last offsets
// of a range are transaction markers.
func (f *Follower) scanBack(client sarama.Client, p *followPart, begin, end, n int64) (int64, error) {
	var offs []int64
	for hi, want := end, n; hi > begin; {
		lo := max(begin, hi-want)
		var err error
		if offs, err = f.committedIn(client, p, lo, hi, offs[:0]); err != nil {
			return 0, err
		}
		k := int64(len(offs))
		if k >= want {
			return offs[k-want], nil
		}
		want -= k
		hi = lo
	}
	return begin, nil
}

// committedIn appends to offs the offsets of the records in [lo, hi) of p
// that read_committed readers see: not transaction markers, not records of
// aborted transactions.
func (f *Follower) committedIn(client sarama.Client, p *followPart, lo, hi int64, offs []int64) ([]int64, error) {
	size := f.cfg.Consumer.Fetch.Default
	limit := f.cfg.Consumer.Fetch.Max
	if limit <= 0 {
		limit = math.MaxInt32
	}
	for at := lo; at < hi; {
		b, err := client.Leader(p.topic, p.partition)
		if err != nil {
			return nil, err
		}
		req := followFetch(f.cfg)
		req.AddBlock(p.topic, p.partition, at, size, -1)
		resp, err := b.Fetch(req)
		if err != nil {
			_ = b.Close()
			return nil, err
		}
		blk := resp.GetBlock(p.topic, p.partition)
		switch {
		case blk == nil:
			return nil, sarama.ErrIncompleteResponse
		case blk.Err != sarama.ErrNoError:
			return nil, blk.Err
		}
		var next int64
		offs, next = committedRecords(blk, lo, hi, at, offs)
		if next > at {
			at = next
			continue
		}
		// Nothing but a batch cut short: ask for more.
		if size >= limit {
			return nil, fmt.Errorf("kafkaio: follower: %s/%d: no complete batch at offset %d within %d bytes (Consumer.Fetch.Max)",
				p.topic, p.partition, at, limit)
		}
		size = int32(min(2*int64(size), int64(limit)))
	}
	return offs, nil
}

// committedRecords appends to offs the offsets in [lo, hi) of the records
// in blk that read_committed readers see, and returns the offset after the
// last complete batch (at when there is none). It filters the records of
// aborted transactions as sarama's consumer does: a producer's transactional
// batches are aborted from the first offset of an aborted transaction of its
// until the abort marker.
func committedRecords(blk *sarama.FetchResponseBlock, lo, hi, at int64, offs []int64) ([]int64, int64) {
	aborted := slices.SortedFunc(slices.Values(blk.AbortedTransactions), func(a, b *sarama.AbortedTransaction) int {
		return cmp.Compare(a.FirstOffset, b.FirstOffset)
	})
	var producers map[int64]bool
	add := func(o int64) {
		if o >= lo && o < hi {
			offs = append(offs, o)
		}
	}
	for _, rs := range blk.RecordsSet {
		switch {
		case rs.RecordBatch != nil:
			rb := rs.RecordBatch
			if rb.PartialTrailingRecord {
				return offs, at
			}
			last := rb.LastOffset()
			for len(aborted) > 0 && aborted[0].FirstOffset <= last {
				if producers == nil {
					producers = make(map[int64]bool)
				}
				producers[aborted[0].ProducerID] = true
				aborted = aborted[1:]
			}
			switch {
			case rb.Control:
				if abortMarker(rb) {
					delete(producers, rb.ProducerID)
				}
			case rb.IsTransactional && producers[rb.ProducerID]:
			default:
				for _, r := range rb.Records {
					add(rb.FirstOffset + r.OffsetDelta)
				}
			}
			at = max(at, last+1)
		case rs.MsgSet != nil: // the message format before 0.11: no transactions
			for _, mb := range rs.MsgSet.Messages {
				inner := mb.Messages()
				for _, m := range inner {
					o := m.Offset
					if m.Msg.Version >= 1 {
						o += mb.Offset - inner[len(inner)-1].Offset
					}
					add(o)
					at = max(at, o+1)
				}
			}
			if rs.MsgSet.PartialTrailingMessage {
				return offs, at
			}
		}
	}
	return offs, at
}

// abortMarker reports whether a control batch is an abort marker: its
// record's key is a version and a type, 0 for abort (1 for commit).
func abortMarker(rb *sarama.RecordBatch) bool {
	if len(rb.Records) == 0 {
		return false
	}
	k := rb.Records[0].Key
	return len(k) >= 4 && binary.BigEndian.Uint16(k[2:4]) == uint16(sarama.ControlRecordAbort)
}

// followFetch returns a read_committed fetch request that does not wait,
// at the highest version the config's protocol version allows (as sarama's
// consumer chooses it; 0.11, which read_committed needs, at least).
func followFetch(cfg *sarama.Config) *sarama.FetchRequest {
	r := &sarama.FetchRequest{MinBytes: 1, MaxBytes: cfg.Consumer.Fetch.MaxBytes, Isolation: sarama.ReadCommitted}
	switch v := cfg.Version; {
	case v.IsAtLeast(sarama.V2_7_0_0):
		r.Version = 12
	case v.IsAtLeast(sarama.V2_3_0_0):
		r.Version = 11
	case v.IsAtLeast(sarama.V2_1_0_0):
		r.Version = 10
	case v.IsAtLeast(sarama.V2_0_0_0):
		r.Version = 8
	case v.IsAtLeast(sarama.V1_1_0_0):
		r.Version = 7
	case v.IsAtLeast(sarama.V1_0_0_0):
		r.Version = 6
	default:
		r.Version = 5
	}
	if r.Version >= 7 {
		r.SessionID, r.SessionEpoch = 0, -1 // no fetch session
	}
	if r.Version >= 11 {
		r.RackID = cfg.RackID
	}
	return r
}
