// Package view follows the pipeline's topics and keeps the latest values per
// symbol: the price, the moving statistics and z-score of each window, and
// the higher and lower windows. The live view of the all command renders
// them on a terminal (Render) or as periodic log lines (Line); the dashboard
// serves them.
//
// A Tail reads the topics with a kafkaio.Follower: read_committed, as any
// downstream consumer would, from a little before their ends (so that a
// view started on a running pipeline shows values at once), and never
// commits offsets: it is a viewer, not a stage.
package view

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/stream"
)

// Window is one window's latest statistics for a symbol (as of
// Symbol.StatsTime) and latest z-score (as of Symbol.ZTime).
type Window struct {
	Label string
	Avg   float64 // NaN: not known yet
	Std   float64 // NaN: null (one event), or not known yet
	Count int64
	Z     float64 // NaN: null, or not known yet
}

// Symbol is what the view knows of one symbol.
type Symbol struct {
	Name      string
	Price     float64     // latest btc-price
	PriceTime stream.Time // its event time
	Prices    uint64      // valid btc-price records seen
	// StatsTime is the event time of the latest moving record, ZTime the
	// one of the latest z-score record (the zscore stage joins a price with
	// its moving record, so ZTime trails StatsTime a little); Windows hold
	// the statistics of the one and the z-scores of the other.
	StatsTime, ZTime stream.Time
	Windows          []Window
	// Higher and Lower are the latest answers (seconds; the horizon when
	// there is none), at HigherTime and LowerTime.
	Higher, Lower         float64
	HigherTime, LowerTime stream.Time
}

// Snapshot is a copy of the view's state.
type Snapshot struct {
	Symbols []Symbol // by name
	Invalid uint64   // btc-price records that are not valid
	Taken   time.Time
}

// Tail follows the topics of a pipeline and keeps the latest values.
type Tail struct {
	cfg btc.Config
	log *slog.Logger

	mu      sync.Mutex
	symbols map[string]*Symbol
	invalid uint64
}

// NewTail returns a Tail for a pipeline with cfg's windows.
func NewTail(cfg btc.Config, log *slog.Logger) *Tail {
	if log == nil {
		log = slog.Default()
	}
	return &Tail{cfg: cfg, log: log, symbols: make(map[string]*Symbol)}
}

// backlog is how many records before the end of each partition a Tail
// starts reading.
const backlog = 64

// Run follows the topics on the brokers at addrs until ctx is done, with a
// kafkaio.Follower from the last backlog records of each partition. cfg is
// the client configuration (nil: kafkaio.NewConfig()); Run reads
// read_committed whatever it says, and waits for brokers that are not up or
// go away.
func (t *Tail) Run(ctx context.Context, addrs []string, cfg *sarama.Config) error {
	// One handler per topic: the follower calls them on Run's goroutine,
	// so their decoders' scratch state is never shared.
	handlers := map[string]func(m *sarama.ConsumerMessage){
		btc.PriceTopic:     t.price(),
		btc.Moving.Topic(): t.moving(),
		btc.ZScore.Topic(): t.zscore(),
		btc.Higher.Topic(): t.lookahead("higher_window"),
		btc.Lower.Topic():  t.lookahead("lower_window"),
	}
	f, err := kafkaio.NewFollower(nil, slices.Sorted(maps.Keys(handlers)), kafkaio.FromEnd(backlog),
		kafkaio.WithBrokers(addrs, cfg), kafkaio.WithLogger(t.log))
	if err != nil {
		return fmt.Errorf("view: %w", err)
	}
	defer f.Close()
	err = f.Run(ctx, func(m *sarama.ConsumerMessage) error {
		handlers[m.Topic](m)
		return nil
	})
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("view: %w", err)
}

// symbol returns the state of a symbol; t.mu is held.
func (t *Tail) symbol(name string) *Symbol {
	s := t.symbols[name]
	if s == nil {
		s = &Symbol{Name: name, Higher: math.NaN(), Lower: math.NaN(), PriceTime: stream.MinTime,
			StatsTime: stream.MinTime, ZTime: stream.MinTime, HigherTime: stream.MinTime, LowerTime: stream.MinTime}
		for _, l := range labels(t.cfg) {
			s.Windows = append(s.Windows, Window{Label: l, Avg: math.NaN(), Std: math.NaN(), Z: math.NaN()})
		}
		t.symbols[name] = s
	}
	return s
}

func (t *Tail) price() func(m *sarama.ConsumerMessage) {
	dec := btc.NewDecoder()
	return func(m *sarama.ConsumerMessage) {
		p, err := dec.Decode(m.Value)
		t.mu.Lock()
		defer t.mu.Unlock()
		if err != nil {
			t.invalid++
			return
		}
		s := t.symbol(p.Symbol)
		s.Prices++
		if p.Time >= s.PriceTime {
			s.Price, s.PriceTime = p.Price, p.Time
		}
	}
}

func (t *Tail) moving() func(m *sarama.ConsumerMessage) {
	codec := btc.NewMovingCodec(t.cfg)
	return func(m *sarama.ConsumerMessage) {
		e, err := codec.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
		if err != nil {
			t.log.Debug("view: undecodable moving record", "error", err)
			return
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		s := t.symbol(e.Key)
		if e.Time < s.StatsTime || len(e.Value) != len(s.Windows) {
			return
		}
		s.StatsTime = e.Time
		for i, st := range e.Value {
			w := &s.Windows[i]
			w.Avg, w.Std, w.Count = st.Mean, st.Std, st.Count
		}
	}
}

func (t *Tail) zscore() func(m *sarama.ConsumerMessage) {
	codec := btc.NewZScoreCodec(t.cfg)
	return func(m *sarama.ConsumerMessage) {
		e, err := codec.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
		if err != nil {
			t.log.Debug("view: undecodable zscore record", "error", err)
			return
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		s := t.symbol(e.Key)
		if e.Time < s.ZTime || len(e.Value.Scores) != len(s.Windows) {
			return
		}
		s.ZTime = e.Time
		for i, sc := range e.Value.Scores {
			s.Windows[i].Z = math.NaN()
			if sc.OK {
				s.Windows[i].Z = sc.Z
			}
		}
	}
}

func (t *Tail) lookahead(field string) func(m *sarama.ConsumerMessage) {
	return func(m *sarama.ConsumerMessage) {
		var v map[string]any
		if err := json.Unmarshal(m.Value, &v); err != nil {
			return
		}
		sym, _ := v["symbol"].(string)
		ts, _ := v["timestamp"].(string)
		secs, ok := v[field].(float64)
		tm, err := stream.ParseTime([]byte(ts))
		if sym == "" || !ok || err != nil {
			return
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		s := t.symbol(sym)
		if field == "higher_window" && tm >= s.HigherTime {
			s.Higher, s.HigherTime = secs, tm
		} else if field == "lower_window" && tm >= s.LowerTime {
			s.Lower, s.LowerTime = secs, tm
		}
	}
}

// Snapshot returns a copy of the latest values.
func (t *Tail) Snapshot() Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	snap := Snapshot{Invalid: t.invalid, Taken: time.Now()}
	for _, s := range t.symbols {
		c := *s
		c.Windows = slices.Clone(s.Windows)
		snap.Symbols = append(snap.Symbols, c)
	}
	slices.SortFunc(snap.Symbols, func(a, b Symbol) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return snap
}

func labels(cfg btc.Config) []string {
	out := make([]string, len(cfg.Windows))
	for i, w := range cfg.Windows {
		out[i] = btc.Label(w)
	}
	return out
}
