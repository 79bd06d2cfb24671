package dashboard

import (
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
	"github.com/tidemark-go/tidemark/zscore"
)

// Options configure a Hub. The zero value of each field means its default.
type Options struct {
	// Retain is how much event time each series keeps, back from the
	// newest time it has seen (default 1 h; negative: no time limit, only
	// MaxPoints).
	Retain time.Duration
	// MaxPoints bounds the records each series of each symbol keeps
	// (default 65536: an hour of Binance polls every 100 ms, with room).
	MaxPoints int
	// MaxSymbols bounds the symbols the hub tracks (default 64); records
	// of further symbols are counted as lost.
	MaxSymbols int
	// Tick is how often the hub applies what was added and sends one frame
	// to each browser (default 250 ms).
	Tick time.Duration
	// StatsEvery is how often the stage counters are sampled (default 1 s).
	StatsEvery time.Duration
	// Stats returns the stages' counters; nil shows the counters of the
	// topics Follow reads instead. See also Hub.SetStats.
	Stats func() []StageStat
	// ClientBuffer is how many frames wait for a browser before the hub
	// drops its frames (default 8).
	ClientBuffer int
	// WriteTimeout disconnects a browser one of whose writes takes longer
	// (default 10 s).
	WriteTimeout time.Duration
	// FollowRate bounds the records per second Follow reads, over all
	// topics (default 5000: five hundred times Binance's ten prices a
	// second, each with its four derived records; negative: no bound). A
	// follower that reads less than the pipeline writes falls behind (its
	// consumer lag shows it) rather than take the pipeline's CPU and
	// broker time; it catches up when the pipeline slows down.
	FollowRate int
	// MaxPending bounds the records added between two ticks; beyond it Add
	// drops records (counted as lost) rather than grow or block (default
	// 1 << 18, a million records a second at the default tick).
	MaxPending int
}

func (o Options) withDefaults() Options {
	if o.Retain == 0 {
		o.Retain = time.Hour
	}
	if o.MaxPoints <= 0 {
		o.MaxPoints = 1 << 16
	}
	if o.MaxSymbols <= 0 {
		o.MaxSymbols = 64
	}
	if o.Tick <= 0 {
		o.Tick = 250 * time.Millisecond
	}
	if o.StatsEvery <= 0 {
		o.StatsEvery = time.Second
	}
	if o.ClientBuffer <= 0 {
		o.ClientBuffer = 8
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.FollowRate == 0 {
		o.FollowRate = 5000
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 1 << 18
	}
	return o
}

// StageStat is one row of counters: a stage of the pipeline (or, without
// Options.Stats, a topic the follower reads). Counters are totals since the
// start; the hub derives the rates.
type StageStat struct {
	Name           string
	In             uint64        // records read
	Out            uint64        // results written
	Lag            int64         // consumer lag, in records
	WatermarkDelay time.Duration // wall clock less the watermark; negative: none yet
	Late           uint64
	Duplicates     uint64
	Invalid        uint64
	DeadLettered   uint64
}

// StageStatOf converts a kafkaio stage's counters, taken at now.
func StageStatOf(name string, s kafkaio.StageStats, now time.Time) StageStat {
	st := StageStat{Name: name, In: s.Records, Out: s.Emitted, Lag: s.Lag, WatermarkDelay: -1,
		Late: s.Late, Duplicates: s.Duplicates, Invalid: s.Rejected, DeadLettered: s.DeadLettered}
	if s.Watermark != stream.MinTime {
		st.WatermarkDelay = time.Duration(stream.TimeOf(now)-s.Watermark) * time.Millisecond
	}
	return st
}

// Metrics are the hub's own counters.
type Metrics struct {
	Seq         uint64 // records applied to the series (the frames' sequence)
	Clients     int    // browsers connected
	Frames      uint64 // frames queued to browsers
	Dropped     uint64 // frames dropped because a browser's queue was full
	Resyncs     uint64 // snapshots sent again to browsers that missed frames
	Disconnects uint64 // browsers disconnected because a write timed out
	Lost        uint64 // records Add dropped (MaxPending or MaxSymbols)
}

// staged is a record added since the last tick; its values are
// pending.vals[off : off+width].
type staged struct {
	kind kind
	sym  string
	t    stream.Time
	off  int32
}

type pending struct {
	recs []staged
	vals []float64
}

// frame is one tick's update, encoded once and shared by every browser.
type frame struct {
	from, to uint64 // the records it carries: from+1 to to
	step     uint64 // the broadcaster's step that made it
	data     []byte // a whole SSE event
}

type client struct {
	ch     chan *frame
	missed atomic.Bool   // a frame was dropped: send a snapshot
	wake   chan struct{} // signals missed (capacity 1)
}

type sampleRow struct {
	StageStat
	inRate, outRate float64
}

type sample struct {
	t    int64 // wall clock, Unix ms
	rows []sampleRow
}

// Hub keeps the recent records of every symbol in bounded series and sends
// them to browsers (see the package documentation). Its Add methods may be
// called from any goroutine and never wait for a browser.
type Hub struct {
	cfg     btc.Config
	opt     Options
	horizon stream.Time
	n       int // windows

	mu     sync.Mutex // guards cur, lost
	cur    *pending
	spare  *pending
	lost   uint64
	closed bool

	statsFn  atomic.Pointer[func() []StageStat]
	follower atomic.Pointer[followStats]

	rmu     sync.RWMutex // guards st, seq, steps, history
	st      *store
	seq     uint64
	steps   uint64 // steps that changed the series or the stats
	history []sample

	cmu     sync.Mutex
	clients map[*client]struct{}

	frames, dropped, resyncs, disconnects atomic.Uint64

	// The broadcaster's own state.
	prev      map[string]StageStat
	prevT     time.Time
	lastStats time.Time
	groups    map[string]*[numKinds][]int32

	flush chan chan struct{}
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// NewHub returns a Hub for a pipeline with cfg's windows and horizon and
// starts its broadcaster; Close stops it.
func NewHub(cfg btc.Config, opt Options) *Hub {
	opt = opt.withDefaults()
	labels := make([]string, len(cfg.Windows))
	for i, w := range cfg.Windows {
		labels[i] = btc.Label(w)
	}
	retain := stream.DurationOf(opt.Retain)
	if opt.Retain < 0 {
		retain = 0
	}
	h := &Hub{cfg: cfg, opt: opt, horizon: stream.DurationOf(cfg.Horizon), n: len(cfg.Windows),
		cur: &pending{}, spare: &pending{}, st: newStore(labels, opt.MaxPoints, retain, opt.MaxSymbols),
		clients: make(map[*client]struct{}), prev: make(map[string]StageStat), groups: make(map[string]*[numKinds][]int32),
		flush: make(chan chan struct{}), done: make(chan struct{})}
	if opt.Stats != nil {
		h.SetStats(opt.Stats)
	}
	h.wg.Go(h.run)
	return h
}

// SetStats sets (or, with nil, removes) the source of the stage counters.
func (h *Hub) SetStats(f func() []StageStat) {
	if f == nil {
		h.statsFn.Store(nil)
		return
	}
	h.statsFn.Store(&f)
}

// Config returns the pipeline configuration the hub was made for.
func (h *Hub) Config() btc.Config { return h.cfg }

// Close stops the broadcaster and ends every browser's event stream.
func (h *Hub) Close() {
	h.once.Do(func() {
		close(h.done)
		h.wg.Wait()
		h.mu.Lock()
		h.closed = true
		h.mu.Unlock()
		h.cmu.Lock()
		for c := range h.clients {
			close(c.ch)
			delete(h.clients, c)
		}
		h.cmu.Unlock()
	})
}

// stage reserves room for one record of w values and returns where to write
// them, or nil when the record is dropped; h.mu is held on a non-nil return.
func (h *Hub) stage(k kind, sym string, t stream.Time) []float64 {
	w := width(k, h.n)
	h.mu.Lock()
	p := h.cur
	if len(p.recs) >= h.opt.MaxPending || h.closed {
		h.lost++
		h.mu.Unlock()
		return nil
	}
	off := len(p.vals)
	p.recs = append(p.recs, staged{kind: k, sym: sym, t: t, off: int32(off)})
	p.vals = append(p.vals, make([]float64, w)...) // no allocation once the buffer has grown
	return p.vals[off : off+w]
}

// AddPrice adds a btc-price record.
func (h *Hub) AddPrice(symbol string, t stream.Time, price float64) {
	if v := h.stage(kPrice, symbol, t); v != nil {
		v[0] = price
		h.mu.Unlock()
	}
}

// AddMoving adds a btc-price-moving record: one Stats per window, in order
// (Mean, Std and Count are used; a NaN Std is null).
func (h *Hub) AddMoving(symbol string, t stream.Time, stats []window.Statistics) {
	if len(stats) != h.n {
		h.addLost()
		return
	}
	if v := h.stage(kMoving, symbol, t); v != nil {
		for i, s := range stats {
			v[i], v[h.n+i], v[2*h.n+i] = s.Mean, s.Std, float64(s.Count)
		}
		h.mu.Unlock()
	}
}

// AddZScore adds a btc-price-zscore record: the price and one score per
// window (a score that is not OK is null).
func (h *Hub) AddZScore(symbol string, t stream.Time, price float64, scores []zscore.Score) {
	if len(scores) != h.n {
		h.addLost()
		return
	}
	if v := h.stage(kZScore, symbol, t); v != nil {
		v[0] = price
		for i, s := range scores {
			v[1+i] = math.NaN()
			if s.OK {
				v[1+i] = s.Z
			}
		}
		h.mu.Unlock()
	}
}

// AddLookahead adds a btc-price-higher (k == btc.Higher) or
// btc-price-lower (btc.Lower) record: seconds to the next higher or lower
// price, or the horizon.
func (h *Hub) AddLookahead(k btc.Kind, symbol string, t stream.Time, seconds float64) {
	var kk kind
	switch k {
	case btc.Higher:
		kk = kHigher
	case btc.Lower:
		kk = kLower
	default:
		h.addLost()
		return
	}
	if v := h.stage(kk, symbol, t); v != nil {
		v[0] = seconds
		h.mu.Unlock()
	}
}

func (h *Hub) addLost() {
	h.mu.Lock()
	h.lost++
	h.mu.Unlock()
}

// Flush applies what was added so far and sends it to the browsers now,
// without waiting for the next tick. It returns once that is done (at once
// after Close).
func (h *Hub) Flush() {
	ack := make(chan struct{})
	select {
	case h.flush <- ack:
		<-ack
	case <-h.done:
	}
}

// Metrics returns the hub's own counters.
func (h *Hub) Metrics() Metrics {
	h.rmu.RLock()
	seq := h.seq
	h.rmu.RUnlock()
	h.cmu.Lock()
	clients := len(h.clients)
	h.cmu.Unlock()
	h.mu.Lock()
	lost := h.lost
	h.mu.Unlock()
	return Metrics{Seq: seq, Clients: clients, Frames: h.frames.Load(), Dropped: h.dropped.Load(),
		Resyncs: h.resyncs.Load(), Disconnects: h.disconnects.Load(), Lost: lost}
}

// run is the broadcaster: every tick it applies the staged records to the
// series and sends one frame to every browser, never waiting for one.
func (h *Hub) run() {
	tick := time.NewTicker(h.opt.Tick)
	defer tick.Stop()
	for {
		select {
		case <-h.done:
			h.step(time.Now())
			return
		case now := <-tick.C:
			h.step(now)
		case ack := <-h.flush:
			h.step(time.Now())
			close(ack)
		}
	}
}

func (h *Hub) step(now time.Time) {
	h.mu.Lock()
	p := h.cur
	h.cur, h.spare = h.spare, nil
	h.mu.Unlock()

	var smp *sample
	if now.Sub(h.lastStats) >= h.opt.StatsEvery {
		h.lastStats = now
		smp = h.sampleStats(now)
	}
	h.rmu.Lock()
	// Whether anyone listens is read under rmu: a browser that registers
	// later takes its snapshot after this tick's records are applied.
	h.cmu.Lock()
	listeners := len(h.clients) > 0
	h.cmu.Unlock()
	from := h.seq
	var touched [numKinds]bool
	var syms []*symbolSeries
	for i := range p.recs {
		r := &p.recs[i]
		ss := h.st.series(r.sym)
		if ss == nil {
			r.kind = numKinds // not in the frame either
			h.mu.Lock()
			h.lost++
			h.mu.Unlock()
			continue
		}
		rg := ss.s[r.kind]
		rg.push(r.t, p.vals[int(r.off):int(r.off)+rg.w])
		touched[r.kind] = true
		if len(syms) == 0 || syms[len(syms)-1] != ss {
			syms = append(syms, ss)
		}
	}
	for _, ss := range syms {
		for k := range numKinds {
			if touched[k] {
				ss.s[k].trim(h.st.retain)
			}
		}
	}
	h.seq += uint64(len(p.recs))
	to := h.seq
	if to > from || smp != nil {
		h.steps++
	}
	step := h.steps
	if smp != nil {
		h.history = append(h.history, *smp)
		if limit := h.historyLimit(); len(h.history) > limit {
			h.history = append(h.history[:0], h.history[len(h.history)-limit:]...)
		}
	}
	h.rmu.Unlock()

	var f *frame
	if listeners && (to > from || smp != nil) {
		f = &frame{from: from, to: to, step: step, data: h.appendDelta(nil, from, to, p, smp)}
	}
	if cap(p.recs) > 1<<16 && len(p.recs) < cap(p.recs)/8 {
		p.recs, p.vals = nil, nil // a burst is over: give its memory back
	}
	p.recs, p.vals = p.recs[:0], p.vals[:0]
	h.mu.Lock()
	h.spare = p
	h.mu.Unlock()
	if f == nil {
		return
	}
	h.cmu.Lock()
	for c := range h.clients {
		select {
		case c.ch <- f:
			h.frames.Add(1)
		default:
			h.dropped.Add(1)
			c.missed.Store(true)
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
	}
	h.cmu.Unlock()
}

func (h *Hub) historyLimit() int {
	if h.opt.Retain > 0 {
		return max(int(h.opt.Retain/h.opt.StatsEvery), 2)
	}
	return 3600
}

// sampleStats takes one sample of the counters and derives the rates.
func (h *Hub) sampleStats(now time.Time) *sample {
	var rows []StageStat
	if f := h.statsFn.Load(); f != nil {
		rows = (*f)()
	} else if fs := h.follower.Load(); fs != nil {
		rows = fs.rows(now)
	}
	if rows == nil && len(h.prev) == 0 {
		return nil
	}
	dt := now.Sub(h.prevT).Seconds()
	s := &sample{t: now.UnixMilli(), rows: make([]sampleRow, len(rows))}
	for i, r := range rows {
		s.rows[i].StageStat = r
		if p, ok := h.prev[r.Name]; ok && dt > 0 {
			s.rows[i].inRate = float64(r.In-p.In) / dt
			s.rows[i].outRate = float64(r.Out-p.Out) / dt
			if r.In < p.In {
				s.rows[i].inRate = 0
			}
			if r.Out < p.Out {
				s.rows[i].outRate = 0
			}
		} else {
			s.rows[i].inRate, s.rows[i].outRate = math.NaN(), math.NaN()
		}
		h.prev[r.Name] = r
	}
	h.prevT = now
	return s
}

// ------------------------------------------------------------------ frames

func appendSample(dst []byte, s *sample) []byte {
	dst = append(dst, `{"t":`...)
	dst = strconv.AppendInt(dst, s.t, 10)
	dst = append(dst, `,"stages":[`...)
	for i, r := range s.rows {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"name":`...)
		dst = appendStr(dst, r.Name)
		dst = append(dst, `,"in":`...)
		dst = strconv.AppendUint(dst, r.In, 10)
		dst = append(dst, `,"out":`...)
		dst = strconv.AppendUint(dst, r.Out, 10)
		dst = append(dst, `,"inRate":`...)
		dst = appendNum(dst, r.inRate)
		dst = append(dst, `,"outRate":`...)
		dst = appendNum(dst, r.outRate)
		dst = append(dst, `,"lag":`...)
		dst = strconv.AppendInt(dst, r.Lag, 10)
		dst = append(dst, `,"wmDelay":`...)
		if r.WatermarkDelay < 0 {
			dst = append(dst, "null"...)
		} else {
			dst = appendNum(dst, r.WatermarkDelay.Seconds())
		}
		for _, f := range [...]struct {
			name string
			v    uint64
		}{{"late", r.Late}, {"dup", r.Duplicates}, {"invalid", r.Invalid}, {"dead", r.DeadLettered}} {
			dst = append(dst, ",\""...)
			dst = append(dst, f.name...)
			dst = append(dst, "\":"...)
			dst = strconv.AppendUint(dst, f.v, 10)
		}
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// appendDelta appends the SSE event of one tick: the records with sequence
// numbers in (from, to], grouped by symbol and series in arrival order, and
// the stats sample if one was taken.
func (h *Hub) appendDelta(dst []byte, from, to uint64, p *pending, smp *sample) []byte {
	for _, g := range h.groups {
		for k := range g {
			g[k] = g[k][:0]
		}
	}
	for i := range p.recs {
		r := &p.recs[i]
		if r.kind >= numKinds {
			continue
		}
		g := h.groups[r.sym]
		if g == nil {
			if len(h.groups) >= 4*h.opt.MaxSymbols {
				clear(h.groups)
			}
			g = new([numKinds][]int32)
			h.groups[r.sym] = g
		}
		g[r.kind] = append(g[r.kind], int32(i))
	}
	dst = append(dst, "event: delta\nid: "...)
	dst = strconv.AppendUint(dst, to, 10)
	dst = append(dst, "\ndata: "...)
	dst = append(dst, `{"type":"delta","from":`...)
	dst = strconv.AppendUint(dst, from, 10)
	dst = append(dst, `,"to":`...)
	dst = strconv.AppendUint(dst, to, 10)
	dst = append(dst, `,"symbols":{`...)
	first := true
	for _, name := range sortedNames(h.groups) {
		g := h.groups[name]
		empty := true
		for k := range g {
			empty = empty && len(g[k]) == 0
		}
		if empty {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendStr(dst, name)
		dst = append(dst, ":{"...)
		firstK := true
		for k := range numKinds {
			idx := g[k]
			if len(idx) == 0 {
				continue
			}
			if !firstK {
				dst = append(dst, ',')
			}
			firstK = false
			dst = append(dst, '"')
			dst = append(dst, kindNames[k]...)
			dst = append(dst, `":`...)
			w := width(k, h.n)
			newest := stream.MinTime
			for _, i := range idx {
				newest = max(newest, p.recs[i].t)
			}
			dst = appendSeries(dst, w, len(idx), 1, newest, func(j int) (stream.Time, []float64) {
				r := &p.recs[idx[j]]
				return r.t, p.vals[int(r.off) : int(r.off)+w]
			})
		}
		dst = append(dst, '}')
	}
	dst = append(dst, '}')
	if smp != nil {
		dst = append(dst, `,"stats":[`...)
		dst = appendSample(dst, smp)
		dst = append(dst, ']')
	}
	return append(dst, "}\n\n"...)
}

// snapshot returns the JSON snapshot of the points with times in [from, to]
// (at most maxPoints per series, 0: all) and its sequence number.
func (h *Hub) snapshot(from, to stream.Time, maxPoints int) ([]byte, uint64) {
	b, seq, _ := h.snapshotStep(from, to, maxPoints)
	return b, seq
}

// snapshotStep is snapshot, with the broadcaster's step it reflects.
func (h *Hub) snapshotStep(from, to stream.Time, maxPoints int) ([]byte, uint64, uint64) {
	h.rmu.RLock()
	defer h.rmu.RUnlock()
	b := make([]byte, 0, 4096)
	b = append(b, `{"type":"snapshot","mode":"live","seq":`...)
	b = strconv.AppendUint(b, h.seq, 10)
	b = append(b, ',')
	b = h.st.appendHead(b, h.horizon)
	b = append(b, `,"tickMs":`...)
	b = strconv.AppendInt(b, h.opt.Tick.Milliseconds(), 10)
	b = append(b, `,"symbols":`...)
	b = h.st.appendSymbols(b, from, to, maxPoints)
	b = append(b, `,"stats":[`...)
	for i := range h.history {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSample(b, &h.history[i])
	}
	b = append(b, "]}"...)
	return b, h.seq, h.steps
}
