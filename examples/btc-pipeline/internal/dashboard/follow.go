package dashboard

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/stream"
)

// topicStats are the follower's counters of one topic that the follower
// itself does not keep.
type topicStats struct {
	name    string
	invalid atomic.Uint64
	newest  atomic.Int64 // largest event time read (stream.MinTime: none)
}

// followStats are the counters of every topic Follow reads: the rows of the
// dashboard's counters when the caller gives no stage counters (the ui
// command, which only reads the topics).
type followStats struct {
	f      *kafkaio.Follower
	topics []*topicStats // in the follower's order of topics
}

func (f *followStats) rows(now time.Time) []StageStat {
	out := make([]StageStat, 0, len(f.topics))
	wall := stream.TimeOf(now)
	st := f.f.Stats()
	for i, t := range f.topics {
		ts := st.Topics[i]
		r := StageStat{Name: t.name, In: ts.Records, Invalid: t.invalid.Load(), Lag: ts.Lag, WatermarkDelay: -1}
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
// ctx is done, with a kafkaio.Follower: read_committed, as any downstream
// consumer would, without a consumer group and without committing offsets.
// It starts a little before the end of each partition (the last
// Options.MaxPoints records, so that a dashboard opened on a running
// pipeline shows its recent past at once), and waits for brokers that are
// not up or go away. cfg is the client configuration (nil:
// kafkaio.NewConfig()); Follow reads read_committed whatever it says. It
// counts what it reads per topic; those counts are the dashboard's counters
// when the hub has no stage counters.
func Follow(ctx context.Context, h *Hub, addrs []string, cfg *sarama.Config) error {
	if cfg == nil {
		var err error
		if cfg, err = kafkaio.NewConfig(); err != nil {
			return fmt.Errorf("dashboard: %w", err)
		}
	}
	c := *cfg
	// Few, large fetches: the broker holds each one until it has
	// followFetchMin bytes or followMaxWait has passed, so that a busy
	// pipeline's broker answers the dashboard a few times a second rather
	// than for every batch (the embedded broker serves every client from
	// one goroutine: the stages would wait behind the dashboard's fetches).
	c.Consumer.Fetch.Min = followFetchMin
	c.Consumer.MaxWaitTime = followMaxWait
	backlog := int64(min(h.opt.MaxPoints, 1<<16))
	cfgP := h.cfg

	// A handler per topic, called on Run's goroutine: the decoders keep
	// scratch state and are not safe for concurrent use.
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
	names := make([]string, len(topics))
	handlers := make(map[string]func(*sarama.ConsumerMessage), len(topics))
	for i, tp := range topics {
		st := &topicStats{name: tp.name}
		st.newest.Store(int64(stream.MinTime))
		fs.topics = append(fs.topics, st)
		names[i] = tp.name
		handlers[tp.name] = tp.newHandler(st)
	}
	f, err := kafkaio.NewFollower(nil, names, kafkaio.FromEnd(backlog), kafkaio.WithBrokers(addrs, &c))
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	defer f.Close()
	fs.f = f
	h.follower.Store(fs)
	lim := newLimiter(h.opt.FollowRate)
	err = f.Run(ctx, func(m *sarama.ConsumerMessage) error {
		if !lim.wait(ctx) {
			return ctx.Err()
		}
		handlers[m.Topic](m)
		return nil
	})
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("dashboard: %w", err)
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
