package source

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tidemark-go/tidemark/stream"
)

// SyntheticConfig configures a Synthetic source. Zero fields take the
// defaults.
type SyntheticConfig struct {
	Seed    uint64   // the random walk's seed
	Symbols []string // ["BTCUSDT"]; upper-case letters and digits

	// Prices are the start prices per symbol, rounded to the cent. A symbol
	// without one starts at DefaultStartPrice(symbol).
	Prices map[string]float64

	// Speed is the pace against real time: 1 (the default) is real time, 2
	// twice as fast (event times then run ahead of the wall clock).
	Speed float64
	// Unpaced returns records as fast as Poll is called, ignoring Speed:
	// with a fixed Start, a given Seed always gives the same records.
	Unpaced bool
	// Start is the event time of the start (truncated to the millisecond);
	// zero means the wall clock at the first Poll.
	Start time.Time
	// Count ends the source (Poll returns io.EOF) after that many
	// records; 0 never does.
	Count int

	Now func() time.Time // the wall clock, time.Now
}

// The shape of the synthetic market. Phases follow one another for all
// symbols at once: a normal phase (about 9 events per second per symbol),
// then either a quiet spell (no event at all) or a burst (an event every 1
// to 3 ms per symbol, four times as volatile), then a normal phase again.
// The mix averages about 10 events per second per symbol.
const (
	normalMeanMs   = 20_000 // mean length of a normal phase (exponential, at least normalMinMs)
	normalMinMs    = 2_000
	normalGapMs    = 111.0 // mean gap between the events of a symbol in a normal phase (exponential)
	quietMinMs     = 1_500 // quiet spells: uniform in [quietMinMs, quietMaxMs]
	quietMaxMs     = 5_000
	burstMinMs     = 50 // bursts: uniform in [burstMinMs, burstMaxMs]
	burstMaxMs     = 250
	burstMaxGapMs  = 3      // gaps in a burst: uniform in 1..burstMaxGapMs
	volatility     = 1.5e-5 // standard deviation of a step, relative to the price
	burstVol       = 4      // volatility factor in bursts
	stillNormal    = 0.35   // probability that a normal event repeats the price
	stillBurst     = 0.10   // same in a burst
	meanReversion  = 1e-6   // pull towards the start price per event, relative to the distance
	maxPacingLagMs = 250    // how far behind the schedule pacing may fall before it re-anchors
	minStepCents   = 0.5    // least standard deviation of a step, in cents
	maxStartPrice  = 1e13   // start prices above are refused (cents must fit float64 exactly)
	defaultSymbol  = "BTCUSDT"
	defaultBTC     = 100_000.00
)

// DefaultStartPrice is the start price of a symbol without one in
// SyntheticConfig.Prices: 100000.00 for BTCUSDT, 2500.00 for ETHUSDT, and
// for any other symbol a price between 100.00 and 1099.99 derived from its
// name.
func DefaultStartPrice(symbol string) float64 {
	switch symbol {
	case "BTCUSDT":
		return defaultBTC
	case "ETHUSDT":
		return 2500.00
	}
	h := fnv.New32a()
	h.Write([]byte(symbol))
	return 100 + float64(h.Sum32()%100_000)/100
}

// SyntheticStats are the counters of a Synthetic source.
type SyntheticStats struct {
	Records   uint64 // records emitted
	Reanchors uint64 // times pacing fell behind (nobody polled) and skipped ahead
}

// Synthetic is a seeded random walk of prices in cent steps, with quiet
// spells and bursts. See the package documentation.
type Synthetic struct {
	cfg    SyntheticConfig
	err    error // a configuration error, returned by Poll
	starts []int64
	run    *synthRun

	records, reanchors atomic.Uint64
}

// NewSynthetic returns a Synthetic source for cfg. A configuration error
// (a bad symbol, a start price that is not > 0, a negative Speed or Count)
// is returned by Poll.
func NewSynthetic(cfg SyntheticConfig) *Synthetic {
	if len(cfg.Symbols) == 0 {
		cfg.Symbols = []string{defaultSymbol}
	}
	cfg.Symbols = append([]string(nil), cfg.Symbols...)
	if cfg.Speed == 0 {
		cfg.Speed = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Synthetic{cfg: cfg}
	switch {
	case !(cfg.Speed > 0) || math.IsInf(cfg.Speed, 0):
		s.err = fmt.Errorf("source: synthetic speed %v is not finite and > 0", cfg.Speed)
	case cfg.Count < 0:
		s.err = fmt.Errorf("source: synthetic count %d is negative", cfg.Count)
	}
	for i, sym := range cfg.Symbols {
		if !validSymbol(sym) && s.err == nil {
			s.err = fmt.Errorf("source: symbol %q is not 1 to 32 upper-case letters and digits", sym)
		}
		for _, t := range cfg.Symbols[:i] {
			if t == sym && s.err == nil {
				s.err = fmt.Errorf("source: symbol %s given twice", sym)
			}
		}
		p, ok := cfg.Prices[sym]
		if !ok {
			p = DefaultStartPrice(sym)
		}
		c := math.Round(p * 100)
		if !(c >= 1 && c <= maxStartPrice) && s.err == nil {
			s.err = fmt.Errorf("source: start price %v of %s is not between 0.01 and %v", p, sym, maxStartPrice/100)
		}
		s.starts = append(s.starts, int64(c))
	}
	return s
}

// Describe says what the source is, in one line.
func (s *Synthetic) Describe() string {
	pace := "real time"
	switch {
	case s.cfg.Unpaced:
		pace = "unpaced"
	case s.cfg.Speed != 1:
		pace = strconv.FormatFloat(s.cfg.Speed, 'g', -1, 64) + "x real time"
	}
	return fmt.Sprintf("SYNTHETIC random walk, not market data (%s, seed %d, %s)", strings.Join(s.cfg.Symbols, ","), s.cfg.Seed, pace)
}

// Banner is a multi-line notice for the start of a run on synthetic data.
func (s *Synthetic) Banner() string {
	var b strings.Builder
	const rule = "=========================================================================\n"
	b.WriteString(rule)
	b.WriteString("  SYNTHETIC DATA -- NOT MARKET DATA\n")
	b.WriteString("  The btc-price records are a seeded random walk made up by this program\n")
	fmt.Fprintf(&b, "  (seed %d; start", s.cfg.Seed)
	for i, sym := range s.cfg.Symbols {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s %s", sym, centsText(s.starts[i]))
	}
	b.WriteString("): they are NOT Binance prices\n")
	b.WriteString("  and say nothing about any market.\n")
	b.WriteString("  For real data, run where https://api.binance.com is reachable, or\n")
	b.WriteString("  replay a recorded trace of btc-price records: --source replay:FILE\n")
	b.WriteString(rule)
	return b.String()
}

// Stats returns a snapshot of the counters.
func (s *Synthetic) Stats() SyntheticStats {
	return SyntheticStats{Records: s.records.Load(), Reanchors: s.reanchors.Load()}
}

// synthRun is the state of a synthetic run, made by the first Poll.
type synthRun struct {
	startMs    stream.Time
	g          *synthGen
	shift      int64     // ms added to event times by re-anchoring
	anchorReal time.Time // when the virtual offset anchorVirt was due
	anchorVirt int64
	n          int // records returned
	// The next event, generated but not returned yet.
	next      bool
	i         int
	off, cent int64
}

// Poll implements stream.Source: it returns the records that are due, at
// least one, up to len(buf), waiting for the first when paced; io.EOF after
// Count records, if Count is set (it never ends otherwise), and ctx.Err()
// once ctx is done. A configuration error is returned by every Poll.
func (s *Synthetic) Poll(ctx context.Context, buf []stream.Record[[]byte]) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(buf) == 0 {
		return 0, nil
	}
	r := s.run
	if r == nil {
		start := s.cfg.Start
		if start.IsZero() {
			start = s.cfg.Now()
		}
		r = &synthRun{startMs: stream.TimeOf(start), g: newSynthGen(s.cfg.Seed, s.starts), anchorReal: time.Now()}
		s.run = r
	}
	n := 0
	for n < len(buf) && (s.cfg.Count == 0 || r.n < s.cfg.Count) {
		if !r.next {
			r.i, r.off, r.cent = r.g.next()
			r.next = true
		}
		if !s.cfg.Unpaced {
			due := r.anchorReal.Add(time.Duration(float64(r.off-r.anchorVirt) * float64(time.Millisecond) / s.cfg.Speed))
			lag := time.Since(due)
			switch {
			case lag > maxPacingLagMs*time.Millisecond:
				// Nobody polled for a while (a blocked producer, or the
				// machine slept): skip ahead rather than pour out the
				// backlog.
				r.shift += int64(float64(lag/time.Millisecond) * s.cfg.Speed)
				r.anchorReal, r.anchorVirt = time.Now(), r.off
				s.reanchors.Add(1)
			case lag < 0 && n > 0:
				return n, nil // what is due; the next waits for the next Poll
			case lag < 0:
				if err := sleep(ctx, -lag); err != nil {
					return 0, err
				}
			}
		}
		t := r.startMs.Add(stream.Time(r.off + r.shift))
		sym := s.cfg.Symbols[r.i]
		v := appendRecord(make([]byte, 0, 80), sym, appendCents(make([]byte, 0, 24), r.cent), t)
		buf[n] = stream.Record[[]byte]{Event: stream.Event[[]byte]{Key: sym, Time: t, Value: v}}
		r.next = false
		r.n++
		n++
		s.records.Add(1)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// centsText writes a price in cents as the shortest decimal: 10000000 ->
// 100000, 9919040 -> 99190.4, 9919048 -> 99190.48.
func centsText(c int64) string { return string(appendCents(nil, c)) }

func appendCents(dst []byte, c int64) []byte {
	dst = strconv.AppendInt(dst, c/100, 10)
	switch f := c % 100; {
	case f == 0:
	case f%10 == 0:
		dst = append(dst, '.', byte('0'+f/10))
	default:
		dst = append(dst, '.', byte('0'+f/10), byte('0'+f%10))
	}
	return dst
}

// The phases of the synthetic market.
const (
	phaseNormal = iota
	phaseQuiet
	phaseBurst
)

type synthSym struct {
	cents, start int64
	next, last   int64 // virtual ms offsets: the next event, the last one (-1 before any)
}

// synthGen generates the events in event-time order (ties in symbol order),
// deterministically for a seed.
type synthGen struct {
	r        *rand.Rand
	syms     []synthSym
	phase    int
	phaseEnd int64
}

func newSynthGen(seed uint64, starts []int64) *synthGen {
	g := &synthGen{r: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
	for _, c := range starts {
		g.syms = append(g.syms, synthSym{cents: c, start: c, last: -1})
	}
	g.enter(phaseNormal, 0)
	return g
}

// enter starts a phase at virtual time at and schedules every symbol's next
// event in it.
func (g *synthGen) enter(phase int, at int64) {
	g.phase = phase
	var d int64
	switch phase {
	case phaseNormal:
		d = max(normalMinMs, int64(g.r.ExpFloat64()*normalMeanMs))
	case phaseQuiet:
		d = quietMinMs + g.r.Int64N(quietMaxMs-quietMinMs+1)
	case phaseBurst:
		d = burstMinMs + g.r.Int64N(burstMaxMs-burstMinMs+1)
	}
	g.phaseEnd = at + d
	for i := range g.syms {
		sy := &g.syms[i]
		if phase == phaseQuiet {
			sy.next = g.phaseEnd // nothing in a quiet spell
		} else {
			sy.next = max(at+g.gap(), sy.last+1)
		}
	}
}

// gap is the time from one event of a symbol to its next in this phase,
// at least 1 ms: never two events of a symbol in the same millisecond.
func (g *synthGen) gap() int64 {
	if g.phase == phaseBurst {
		return 1 + g.r.Int64N(burstMaxGapMs)
	}
	return max(1, int64(math.Round(g.r.ExpFloat64()*normalGapMs)))
}

// next returns the next event: the symbol's index, its virtual time in ms
// from the start, and its price in cents.
func (g *synthGen) next() (int, int64, int64) {
	for {
		i := 0
		for j := 1; j < len(g.syms); j++ {
			if g.syms[j].next < g.syms[i].next {
				i = j
			}
		}
		sy := &g.syms[i]
		if sy.next >= g.phaseEnd {
			switch {
			case g.phase != phaseNormal:
				g.enter(phaseNormal, g.phaseEnd)
			case g.r.IntN(2) == 0:
				g.enter(phaseQuiet, g.phaseEnd)
			default:
				g.enter(phaseBurst, g.phaseEnd)
			}
			continue
		}
		t := sy.next
		sy.last = t
		sy.next = t + g.gap()
		sy.cents = g.step(sy)
		return i, t, sy.cents
	}
}

// step moves a price by a random number of cents.
func (g *synthGen) step(sy *synthSym) int64 {
	still, vol := stillNormal, 1.0
	if g.phase == phaseBurst {
		still, vol = stillBurst, burstVol
	}
	if g.r.Float64() < still {
		return sy.cents
	}
	c := float64(sy.cents)
	sigma := max(minStepCents, c*volatility*vol)
	d := g.r.NormFloat64()*sigma - (c-float64(sy.start))*meanReversion
	return max(1, sy.cents+int64(math.Round(d)))
}
