package kafkaio

import (
	"github.com/tidemark-go/tidemark/internal/ring"
	"github.com/tidemark-go/tidemark/stream"
)

// entry is one consumed record of a partition, in offset order.
type entry struct {
	off  int64
	t    stream.Time
	done bool // nothing waits on the watermark: dead-lettered or skipped
}

// offsets tracks the records of one claimed partition that were handed to Poll
// and are not yet committed, in offset order.
type offsets struct {
	q ring.Deque[entry]
}

// advance drops the longest prefix of records that are done at checkpoint
// watermark wm (event time t with t + horizon < wm, or done) and returns the
// offset to commit, just past the last dropped record, or -1 when nothing was
// dropped.
func (o *offsets) advance(wm, horizon stream.Time) int64 {
	next := int64(-1)
	for o.q.Len() > 0 {
		e := o.q.Front()
		if !e.done && e.t.Add(horizon) >= wm {
			break
		}
		next = e.off + 1
		o.q.PopFront()
	}
	return next
}

func (o *offsets) push(e entry) { o.q.PushBack(e) }

// Len returns the number of records handed out and not yet committable.
func (o *offsets) Len() int { return o.q.Len() }
