package dashboard

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/stream"
)

// topicStats are the follower's counters of one topic.
type topicStats struct {
	name    string
	records atomic.Uint64
	invalid atomic.Uint64
	newest  atomic.Int64 // largest event time read (stream.MinTime: none)
	lags    []atomic.Int64
}

// followStats are the counters of every topic Follow reads: the rows of the
// dashboard's counters when the caller gives no stage counters (the ui
// command, which only reads the topics).
type followStats struct {
	topics []*topicStats
}

func (f *followStats) rows(now time.Time) []StageStat {
	out := make([]StageStat, 0, len(f.topics))
	wall := stream.TimeOf(now)
	for _, t := range f.topics {
		r := StageStat{Name: t.name, In: t.records.Load(), Invalid: t.invalid.Load(), WatermarkDelay: -1}
		for i := range t.lags {
			r.Lag += max(t.lags[i].Load(), 0)
		}
		if n := stream.Time(t.newest.Load()); n != stream.MinTime {
			r.WatermarkDelay = time.Duration(wall-n) * time.Millisecond
		}
		if t.name == btc.DeadLetterTopic {
			r.DeadLettered = r.In
		}
		out = append(out, r)
	}
	return out
}

// The follower's fetches (see Follow).
const (
	followFetchMin = 1 << 20
	followMaxWait  = 250 * time.Millisecond
)

// Follow reads the pipeline's topics on the brokers at addrs into h until
// ctx is done, as any downstream consumer would: read_committed, without a
// consumer group and without committing offsets. It starts a little before
// the end of each partition (at most Options.MaxPoints records, so that a
// dashboard opened on a running pipeline shows its recent past at once).
// cfg is the client configuration (nil: kafkaio.NewConfig()); Follow reads
// read_committed whatever it says. It counts what it reads per topic; those
// counts are the dashboard's counters when the hub has no stage counters.
func Follow(ctx context.Context, h *Hub, addrs []string, cfg *sarama.Config) error {
	r, err := btc.NewReader(addrs, cfg, func(c *sarama.Config) {
		// Few, large fetches: the broker holds each one until it has
		// followFetchMin bytes or followMaxWait has passed, so that a busy
		// pipeline's broker answers the dashboard a few times a second
		// rather than for every batch (the embedded broker serves every
		// client from one goroutine: the stages would wait behind the
		// dashboard's fetches).
		c.Consumer.Fetch.Min = followFetchMin
		c.Consumer.MaxWaitTime = followMaxWait
	})
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	defer r.Close()
	backlog := int64(min(h.opt.MaxPoints, 1<<16))
	cfgP := h.cfg

	// A handler factory per topic: every partition gets its own, because
	// the decoders keep scratch state and are not safe for concurrent use.
	type topic struct {
		name       string
		newHandler func(st *topicStats) func(m *sarama.ConsumerMessage)
	}
	topics := []topic{
		{btc.PriceTopic, func(st *topicStats) func(*sarama.ConsumerMessage) {
			dec := btc.NewDecoder()
			return func(m *sarama.ConsumerMessage) {
				p, err := dec.Decode(m.Value)
				if err != nil {
					st.invalid.Add(1)
					return
				}
				observe(st, p.Time)
				h.AddPrice(p.Symbol, p.Time, p.Price)
			}
		}},
		{btc.Moving.Topic(), func(st *topicStats) func(*sarama.ConsumerMessage) {
			dec := newDecoder(cfgP)
			return func(m *sarama.ConsumerMessage) {
				sym, t, stats, err := dec.decodeMoving(m.Value)
				if err != nil {
					st.invalid.Add(1)
					return
				}
				observe(st, t)
				h.AddMoving(sym, t, stats)
			}
		}},
		{btc.ZScore.Topic(), func(st *topicStats) func(*sarama.ConsumerMessage) {
			dec := newDecoder(cfgP)
			return func(m *sarama.ConsumerMessage) {
				sym, t, price, scores, err := dec.decodeZScore(m.Value)
				if err != nil {
					st.invalid.Add(1)
					return
				}
				observe(st, t)
				h.AddZScore(sym, t, price, scores)
			}
		}},
		{btc.Higher.Topic(), lookaheadHandler(h, cfgP, btc.Higher, "higher_window")},
		{btc.Lower.Topic(), lookaheadHandler(h, cfgP, btc.Lower, "lower_window")},
		{btc.DeadLetterTopic, func(st *topicStats) func(*sarama.ConsumerMessage) {
			return func(*sarama.ConsumerMessage) {}
		}},
	}
	fs := &followStats{}
	type part struct {
		st *topicStats
		pc sarama.PartitionConsumer
		i  int
		h  func(*sarama.ConsumerMessage)
	}
	var parts []part
	closeAll := func() {
		for _, p := range parts {
			p.pc.AsyncClose()
		}
	}
	for _, tp := range topics {
		ids, err := r.Client.Partitions(tp.name)
		if err != nil {
			closeAll()
			return fmt.Errorf("dashboard: partitions of %s: %w", tp.name, err)
		}
		st := &topicStats{name: tp.name, lags: make([]atomic.Int64, len(ids))}
		st.newest.Store(int64(stream.MinTime))
		fs.topics = append(fs.topics, st)
		for i, p := range ids {
			pc, err := r.ConsumeRecent(tp.name, p, backlog)
			if err != nil {
				closeAll()
				return fmt.Errorf("dashboard: %w", err)
			}
			parts = append(parts, part{st: st, pc: pc, i: i, h: tp.newHandler(st)})
		}
	}
	h.follower.Store(fs)
	lim := newLimiter(h.opt.FollowRate)
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Go(func() {
			defer p.pc.AsyncClose()
			for {
				select {
				case <-ctx.Done():
					return
				case m, ok := <-p.pc.Messages():
					if !ok {
						return
					}
					if !lim.wait(ctx) {
						return
					}
					p.st.records.Add(1)
					p.st.lags[p.i].Store(p.pc.HighWaterMarkOffset() - m.Offset - 1)
					p.h(m)
				}
			}
		})
	}
	wg.Wait()
	return nil
}

func lookaheadHandler(h *Hub, cfg btc.Config, k btc.Kind, field string) func(st *topicStats) func(*sarama.ConsumerMessage) {
	return func(st *topicStats) func(*sarama.ConsumerMessage) {
		dec := newDecoder(cfg)
		return func(m *sarama.ConsumerMessage) {
			sym, t, secs, err := dec.decodeLookahead(m.Value, field)
			if err != nil {
				st.invalid.Add(1)
				return
			}
			observe(st, t)
			h.AddLookahead(k, sym, t, secs)
		}
	}
}

// observe raises the topic's newest event time to t.
func observe(st *topicStats, t stream.Time) {
	for {
		cur := st.newest.Load()
		if int64(t) <= cur || st.newest.CompareAndSwap(cur, int64(t)) {
			return
		}
	}
}

// limiter is a token bucket: rate tokens a second, at most a quarter of a
// second's worth saved up. A nil limiter never waits.
type limiter struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newLimiter(rate int) *limiter {
	if rate <= 0 {
		return nil
	}
	r := float64(rate)
	return &limiter{rate: r, burst: max(1, r/4), tokens: max(1, r/4), last: time.Now()}
}

// wait takes a token, sleeping until there is one; false when ctx is done
// first.
func (l *limiter) wait(ctx context.Context) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	l.tokens--
	debt := -l.tokens
	l.mu.Unlock()
	if debt <= 0 {
		return true
	}
	t := time.NewTimer(time.Duration(debt / l.rate * float64(time.Second)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
