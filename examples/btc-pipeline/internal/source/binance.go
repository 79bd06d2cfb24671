package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidemark-go/tidemark/stream"
)

// DefaultBinanceURL is Binance's REST API.
const DefaultBinanceURL = "https://api.binance.com"

// TickerPath is the path of Binance's latest-price endpoint.
const TickerPath = "/api/v3/ticker/price"

// WeightHeader is the response header in which Binance reports the request
// weight used by this IP in the current minute.
const WeightHeader = "X-MBX-USED-WEIGHT-1M"

// The request weight of GET /api/v3/ticker/price.
const (
	WeightOneSymbol   = 2 // ?symbol=
	WeightManySymbols = 4 // ?symbols=[...]
)

// maxBody bounds the body read from Binance: a ticker answer for a few
// symbols is a few hundred bytes.
const maxBody = 1 << 20

// rolloverMargin is added to the wait for the minute to roll over when the
// weight left in the minute is exhausted, for clock skew with Binance.
const rolloverMargin = time.Second

// BinanceConfig configures a Binance source. Zero fields take the defaults.
type BinanceConfig struct {
	BaseURL  string        // DefaultBinanceURL
	Symbols  []string      // ["BTCUSDT"]; upper-case letters and digits
	Interval time.Duration // time between polls, 100 ms
	Timeout  time.Duration // per request (Probe's too), 2 s

	// Backoff after failures without Retry-After: a random wait in [d/2, d]
	// where d doubles from MinBackoff (200 ms) up to MaxBackoff (30 s); the
	// first success resets it.
	MinBackoff time.Duration
	MaxBackoff time.Duration

	// WeightLimit is Binance's request weight limit per minute and IP
	// (6000). When the used weight reported in X-MBX-USED-WEIGHT-1M goes
	// above WeightThreshold (0.8) times the limit, polling slows down so
	// that the weight left lasts until the minute rolls over.
	WeightLimit     int
	WeightThreshold float64

	Client *http.Client     // a client of its own (a clone of http.DefaultTransport)
	Now    func() time.Time // the wall clock, time.Now: event times and the minute of the weight limit
	Logger *slog.Logger     // slog.Default()
}

// BinanceStats are the counters of a Binance source.
type BinanceStats struct {
	Polls         uint64 // requests sent by Poll
	Records       uint64 // records returned by Poll
	RateLimited   uint64 // HTTP 429 answers
	Banned        uint64 // HTTP 418 answers (IP banned)
	ServerErrors  uint64 // HTTP 5xx answers
	StatusErrors  uint64 // other unexpected statuses: 400 (invalid symbol), 403 (WAF), 451 (restricted location)...
	Timeouts      uint64 // requests that did not complete within the timeout
	NetworkErrors uint64 // connection refused or reset, DNS failures...
	Malformed     uint64 // 200 answers whose body is not the ticker JSON asked for
	BadPrices     uint64 // prices that do not parse (that symbol's record skipped)
	Throttled     uint64 // polls delayed because the used weight neared the limit
	UsedWeight    int    // the last X-MBX-USED-WEIGHT-1M seen, -1 before any

	Failing int           // consecutive failed polls, 0 when healthy
	Backoff time.Duration // the wait before the next poll after the last failure, 0 when healthy
}

// The kinds of failed polls. Each is one "condition" of the episode logging.
type failKind int

const (
	failRateLimited failKind = iota
	failBanned
	failServer
	failStatus
	failTimeout
	failNetwork
	failMalformed
	numFailKinds
)

var failNames = [numFailKinds]string{"rate-limited", "banned", "server-error", "http-status", "timeout", "network", "malformed"}

// failPhrases describe the kinds in PollError.Error.
var failPhrases = [numFailKinds]string{
	"rate limit hit", "banned this IP", "server error", "refused the request", "request timed out", "unreachable", "sent a malformed answer",
}

var failMessages = [numFailKinds]string{
	"Binance rate limit hit (HTTP 429); waiting as long as Retry-After says",
	"Binance banned this IP (HTTP 418); waiting as long as Retry-After says",
	"Binance server error",
	"Binance refused the request",
	"Binance request timed out",
	"Binance unreachable",
	"Binance sent a malformed answer",
}

// PollError is why one request to Binance failed. Probe returns it
// (wrapped); Poll logs it.
type PollError struct {
	kind       failKind
	StatusCode int           // the HTTP status, 0 when there was no answer
	RetryAfter time.Duration // the Retry-After header, 0 when absent
	Err        error         // details: Binance's message, the network error, what is malformed
}

// Kind names the failure: "rate-limited" (429), "banned" (418),
// "server-error" (5xx), "http-status" (another unexpected status), "timeout",
// "network" or "malformed".
func (e *PollError) Kind() string { return failNames[e.kind] }

func (e *PollError) Error() string {
	var b strings.Builder
	b.WriteString("Binance ")
	b.WriteString(failPhrases[e.kind])
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (Retry-After %s)", e.RetryAfter)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *PollError) Unwrap() error { return e.Err }

// Binance polls Binance's latest price of one or more symbols. See the
// package documentation.
type Binance struct {
	cfg    BinanceConfig
	url    string // the full request URL
	cost   int    // request weight of one poll
	client *http.Client
	log    *slog.Logger

	mu    sync.Mutex
	stats BinanceStats
	run   *binanceRun // Poll's
}

// NewBinance returns a Binance source for cfg.
func NewBinance(cfg BinanceConfig) (*Binance, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBinanceURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("source: Binance base URL %q is not an http(s) URL without query", cfg.BaseURL)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if len(cfg.Symbols) == 0 {
		cfg.Symbols = []string{"BTCUSDT"}
	}
	cfg.Symbols = append([]string(nil), cfg.Symbols...)
	for i, s := range cfg.Symbols {
		if !validSymbol(s) {
			return nil, fmt.Errorf("source: symbol %q is not 1 to 32 upper-case letters and digits", s)
		}
		for _, t := range cfg.Symbols[:i] {
			if s == t {
				return nil, fmt.Errorf("source: symbol %s given twice", s)
			}
		}
	}
	if cfg.Interval < 0 || cfg.Timeout < 0 || cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 || cfg.WeightLimit < 0 ||
		cfg.WeightThreshold < 0 || cfg.WeightThreshold > 1 {
		return nil, errors.New("source: negative durations or limits, or a weight threshold outside [0, 1]")
	}
	if cfg.Interval == 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	if cfg.Interval < time.Millisecond {
		return nil, fmt.Errorf("source: poll interval %s is below 1ms", cfg.Interval)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, fmt.Errorf("source: max backoff %s is below min backoff %s", cfg.MaxBackoff, cfg.MinBackoff)
	}
	if cfg.WeightLimit == 0 {
		cfg.WeightLimit = 6000
	}
	if cfg.WeightThreshold == 0 {
		cfg.WeightThreshold = 0.8
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := &Binance{cfg: cfg, client: cfg.Client, log: cfg.Logger.With("source", "binance")}
	q := url.Values{}
	if len(cfg.Symbols) == 1 {
		q.Set("symbol", cfg.Symbols[0])
		b.cost = WeightOneSymbol
	} else {
		q.Set("symbols", `["`+strings.Join(cfg.Symbols, `","`)+`"]`)
		b.cost = WeightManySymbols
	}
	b.url = cfg.BaseURL + TickerPath + "?" + q.Encode()
	b.stats.UsedWeight = -1
	return b, nil
}

// Describe says what the source is, in one line: "Binance https://api.binance.com (BTCUSDT, every 100ms)".
func (b *Binance) Describe() string {
	return fmt.Sprintf("Binance %s (%s, every %s)", b.cfg.BaseURL, strings.Join(b.cfg.Symbols, ","), b.cfg.Interval)
}

// URL returns the URL polled.
func (b *Binance) URL() string { return b.url }

// Stats returns a snapshot of the counters.
func (b *Binance) Stats() BinanceStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

func (b *Binance) update(f func(*BinanceStats)) {
	b.mu.Lock()
	f(&b.stats)
	b.mu.Unlock()
}

// Probe sends one request with the configured timeout (a deadline of ctx
// may shorten it) and reports whether
// Binance answered with the prices asked for: nil, or an error (wrapping a
// *PollError, or ctx's error) that says why not, e.g. HTTP 451 from a
// restricted location, a timeout, connection refused. It fails too when no
// price parses. It does not count in Stats, except the used weight.
func (b *Binance) Probe(ctx context.Context) error {
	res, err := b.fetch(ctx)
	if res.weight >= 0 {
		b.update(func(s *BinanceStats) { s.UsedWeight = res.weight })
	}
	if err != nil {
		return fmt.Errorf("source: probing %s: %w", b.url, err)
	}
	var buf []byte
	for i, p := range res.prices {
		if _, err = appendDecimal(buf[:0], p); err == nil {
			return nil
		}
		err = fmt.Errorf("price %q of %s: %w", clip(p), b.cfg.Symbols[i], err)
	}
	return fmt.Errorf("source: probing %s: no price parses: %w", b.url, err)
}

// episode is a run of failed polls, from the first failure to the next
// success.
type episode struct {
	failures int
	since    time.Time
	counts   [numFailKinds]int
}

// badRun is a run of bad prices of one symbol.
type badRun struct{ n int }

// binanceRun is the state of the polling, made by the first Poll.
type binanceRun struct {
	ep        episode
	throttled bool
	bad       map[string]*badRun
	next      time.Time               // when the next request may go
	ready     []stream.Record[[]byte] // records of the last answer not returned yet
}

// Poll implements stream.Source: it returns the records of the last
// successful request not returned yet, up to len(buf), or else sends
// requests, one every Interval (after failures, after the backoff or the
// Retry-After they call for), until one answers with prices. It never ends
// by itself: it returns only records, or ctx.Err() once ctx is done. Each
// successful request gives one record per symbol whose price parses, in the
// order of the configured symbols, all with the response's arrival time.
func (b *Binance) Poll(ctx context.Context, buf []stream.Record[[]byte]) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(buf) == 0 {
		return 0, nil
	}
	r := b.run
	if r == nil {
		r = &binanceRun{bad: make(map[string]*badRun), next: time.Now()}
		b.run = r
	}
	for len(r.ready) == 0 {
		if err := sleep(ctx, time.Until(r.next)); err != nil {
			return 0, err
		}
		start := time.Now()
		b.update(func(s *BinanceStats) { s.Polls++ })
		res, err := b.fetch(ctx)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if res.weight >= 0 {
			b.update(func(s *BinanceStats) { s.UsedWeight = res.weight })
		}
		if err != nil {
			var pe *PollError
			if !errors.As(err, &pe) {
				return 0, err // not reached: fetch returns a *PollError or ctx's error
			}
			r.next = time.Now().Add(b.failed(&r.ep, pe))
			continue
		}
		b.recovered(&r.ep)
		r.ready = b.records(res, r.bad, r.ready[:0])
		r.next = start.Add(b.cfg.Interval)
		if d := b.weightDelay(&r.throttled, res); d > 0 {
			r.next = time.Now().Add(d)
		}
	}
	n := copy(buf, r.ready)
	r.ready = r.ready[n:]
	b.update(func(s *BinanceStats) { s.Records += uint64(n) })
	return n, nil
}

// failed counts and logs a failed poll and returns the wait before the next.
func (b *Binance) failed(ep *episode, pe *PollError) time.Duration {
	ep.failures++
	if ep.failures == 1 {
		ep.since = time.Now()
	}
	ep.counts[pe.kind]++
	var wait time.Duration
	switch {
	case pe.RetryAfter > 0:
		// Binance says when: not a moment before, plus a little jitter so
		// that several clients do not come back at once.
		wait = pe.RetryAfter + rand.N(min(pe.RetryAfter/10, time.Second)+1)
	case pe.kind == failBanned:
		wait = b.cfg.MaxBackoff // a ban without Retry-After: as long as we ever wait
	default:
		wait = backoff(ep.failures-1, b.cfg.MinBackoff, b.cfg.MaxBackoff)
	}
	wait = max(wait, b.cfg.Interval)
	b.update(func(s *BinanceStats) {
		switch pe.kind {
		case failRateLimited:
			s.RateLimited++
		case failBanned:
			s.Banned++
		case failServer:
			s.ServerErrors++
		case failStatus:
			s.StatusErrors++
		case failTimeout:
			s.Timeouts++
		case failNetwork:
			s.NetworkErrors++
		case failMalformed:
			s.Malformed++
		}
		s.Failing = ep.failures
		s.Backoff = wait
	})
	if ep.counts[pe.kind] == 1 {
		attrs := []any{"kind", failNames[pe.kind], "url", b.url}
		if pe.StatusCode != 0 {
			attrs = append(attrs, "status", pe.StatusCode)
		}
		if pe.RetryAfter > 0 {
			attrs = append(attrs, "retry_after", pe.RetryAfter)
		}
		if pe.Err != nil {
			attrs = append(attrs, "error", pe.Err.Error())
		}
		if pe.kind == failTimeout {
			attrs = append(attrs, "timeout", b.cfg.Timeout)
		}
		attrs = append(attrs, "retry_in", wait.Round(time.Millisecond), "failures", ep.failures)
		b.log.Warn(failMessages[pe.kind]+" (logged once until Binance answers again)", attrs...)
	}
	return wait
}

// recovered ends a failure episode, if any, with one INFO line.
func (b *Binance) recovered(ep *episode) {
	if ep.failures == 0 {
		return
	}
	d := time.Since(ep.since).Round(time.Millisecond)
	attrs := []any{}
	for k, n := range ep.counts {
		if n > 0 {
			attrs = append(attrs, failNames[k], n)
		}
	}
	b.log.Info(fmt.Sprintf("Binance reachable again after %d %s over %s", ep.failures, plural(ep.failures, "failure"), d), attrs...)
	*ep = episode{}
	b.update(func(s *BinanceStats) { s.Failing, s.Backoff = 0, 0 })
}

// records appends the records of one successful poll to out.
func (b *Binance) records(res tickers, bad map[string]*badRun, out []stream.Record[[]byte]) []stream.Record[[]byte] {
	t := stream.TimeOf(res.arrived)
	for i, sym := range b.cfg.Symbols {
		// The value, built in place: the price is validated while appended.
		v := make([]byte, 0, 64+len(res.prices[i]))
		v = append(v, `{"symbol":"`...)
		v = append(v, sym...)
		v = append(v, `","price":`...)
		v, err := appendDecimal(v, res.prices[i])
		if err != nil {
			b.update(func(s *BinanceStats) { s.BadPrices++ })
			r := bad[sym]
			if r == nil {
				r = &badRun{}
				bad[sym] = r
			}
			if r.n++; r.n == 1 {
				b.log.Warn("Binance price does not parse; skipping that symbol's record (logged once until its price parses again)",
					"symbol", sym, "price", clip(res.prices[i]), "reason", err.Error())
			}
			continue
		}
		if r := bad[sym]; r != nil {
			b.log.Info(fmt.Sprintf("Binance prices of %s parse again after %d bad %s", sym, r.n, plural(r.n, "price")), "symbol", sym)
			delete(bad, sym)
		}
		v = append(v, `,"timestamp":"`...)
		v = stream.AppendTime(v, t)
		v = append(v, `"}`...)
		out = append(out, stream.Record[[]byte]{Event: stream.Event[[]byte]{Key: sym, Time: t, Value: v}})
	}
	return out
}

// weightDelay returns how long to wait before the next poll when the used
// weight is above the threshold (0 otherwise): the rest of the minute shared
// out among the requests the weight left allows, at least the interval; the
// rest of the minute plus a margin when no request is left. It logs the
// start and the end of a throttled spell once each.
func (b *Binance) weightDelay(throttled *bool, res tickers) time.Duration {
	limit := b.cfg.WeightLimit
	if res.weight < 0 || float64(res.weight) <= b.cfg.WeightThreshold*float64(limit) {
		if *throttled {
			*throttled = false
			b.log.Info("Binance request weight back under the threshold; polling at the normal interval again",
				"used_weight", res.weight, "limit", limit, "interval", b.cfg.Interval)
		}
		return 0
	}
	untilRollover := res.arrived.Truncate(time.Minute).Add(time.Minute).Sub(res.arrived)
	var d time.Duration
	if left := (limit - res.weight) / b.cost; left <= 1 {
		d = untilRollover + rolloverMargin
	} else {
		d = untilRollover / time.Duration(left)
	}
	d = max(d, b.cfg.Interval)
	b.update(func(s *BinanceStats) { s.Throttled++ })
	if !*throttled {
		*throttled = true
		b.log.Warn("Binance request weight near the limit; slowing down until the minute rolls over",
			"used_weight", res.weight, "limit", limit, "threshold", b.cfg.WeightThreshold,
			"poll_every", d.Round(time.Millisecond), "minute_rolls_over_in", untilRollover.Round(time.Millisecond))
	}
	return d
}

// tickers is the result of one request.
type tickers struct {
	prices  []string  // in the order of the configured symbols
	arrived time.Time // when the response arrived, whole milliseconds, UTC
	weight  int       // X-MBX-USED-WEIGHT-1M, -1 when absent
}

// fetch sends one request. Its error is a *PollError, or ctx's error when ctx
// ended.
func (b *Binance) fetch(ctx context.Context) (tickers, error) {
	res := tickers{weight: -1}
	rctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, b.url, nil)
	if err != nil {
		return res, &PollError{kind: failNetwork, Err: err}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return res, transportError(ctx, err)
	}
	defer resp.Body.Close()
	res.weight = parseWeight(resp.Header.Get(WeightHeader))
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	res.arrived = millis(b.cfg.Now())
	if err != nil {
		return res, transportError(ctx, fmt.Errorf("reading the body: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		pe := &PollError{StatusCode: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), res.arrived)}
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			pe.kind = failRateLimited
		case resp.StatusCode == http.StatusTeapot:
			pe.kind = failBanned
		case resp.StatusCode >= 500:
			pe.kind = failServer
		default:
			pe.kind = failStatus
		}
		pe.Err = binanceMessage(body)
		return res, pe
	}
	if len(body) > maxBody {
		return res, &PollError{kind: failMalformed, StatusCode: http.StatusOK, Err: fmt.Errorf("body longer than %d bytes", maxBody)}
	}
	if res.prices, err = parseTickers(body, b.cfg.Symbols); err != nil {
		return res, &PollError{kind: failMalformed, StatusCode: http.StatusOK, Err: err}
	}
	return res, nil
}

// transportError classifies an error of the HTTP client: ctx's own error
// when ctx ended, else a timeout or a network error.
func transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is in the log line already
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return &PollError{kind: failTimeout, Err: err}
	}
	return &PollError{kind: failNetwork, Err: err}
}

type tickerJSON struct {
	Symbol *string `json:"symbol"`
	Price  *string `json:"price"`
}

// parseTickers checks a ticker answer: one object for one symbol, an array
// of objects for several, holding exactly the symbols asked for, each once,
// each with a string price. It returns the price strings in symbols' order.
func parseTickers(body []byte, symbols []string) ([]string, error) {
	t := bytes.TrimLeft(body, " \t\r\n")
	one := len(symbols) == 1
	var list []tickerJSON
	switch {
	case len(t) == 0:
		return nil, errors.New("empty body")
	case t[0] == '{' && one:
		var tk tickerJSON
		if err := json.Unmarshal(body, &tk); err != nil {
			return nil, fmt.Errorf("not a ticker object: %v; body %s", err, snippet(body))
		}
		list = []tickerJSON{tk}
	case t[0] == '[' && !one:
		if err := json.Unmarshal(body, &list); err != nil {
			return nil, fmt.Errorf("not an array of ticker objects: %v; body %s", err, snippet(body))
		}
	case t[0] == '[':
		return nil, fmt.Errorf("an array where one ticker object was expected; body %s", snippet(body))
	case t[0] == '{':
		return nil, fmt.Errorf("an object where an array of tickers was expected; body %s", snippet(body))
	default:
		return nil, fmt.Errorf("not JSON; body %s", snippet(body))
	}
	prices := make([]string, len(symbols))
	seen := make([]bool, len(symbols))
	for _, tk := range list {
		if tk.Symbol == nil {
			return nil, fmt.Errorf("a ticker without symbol; body %s", snippet(body))
		}
		i := -1
		for j, s := range symbols {
			if s == *tk.Symbol {
				i = j
				break
			}
		}
		switch {
		case i < 0:
			return nil, fmt.Errorf("symbol %q not asked for; body %s", clip(*tk.Symbol), snippet(body))
		case seen[i]:
			return nil, fmt.Errorf("symbol %s twice; body %s", symbols[i], snippet(body))
		case tk.Price == nil:
			return nil, fmt.Errorf("no price for %s; body %s", symbols[i], snippet(body))
		}
		prices[i], seen[i] = *tk.Price, true
	}
	for i, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("symbol %s missing; body %s", symbols[i], snippet(body))
		}
	}
	return prices, nil
}

// binanceMessage extracts Binance's {"code":-1121,"msg":"Invalid symbol."}
// from an error body, or quotes the body.
func binanceMessage(body []byte) error {
	var m struct {
		Code *int   `json:"code"`
		Msg  string `json:"msg"`
	}
	if json.Unmarshal(body, &m) == nil && m.Code != nil {
		msg := m.Msg
		if len(msg) > 240 {
			msg = msg[:240] + "..."
		}
		return fmt.Errorf("code %d: %s", *m.Code, msg)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	return fmt.Errorf("body %s", snippet(body))
}

// parseWeight parses X-MBX-USED-WEIGHT-1M, -1 when absent or invalid.
func parseWeight(h string) int {
	n, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// parseRetryAfter parses Retry-After: delay-seconds or an HTTP date. It
// returns 0 when absent or invalid.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.ParseUint(h, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// backoff returns the jittered wait before retry number retry (0-based):
// a random duration in [d/2, d] where d = minimum * 2^retry, capped at
// maximum.
func backoff(retry int, minimum, maximum time.Duration) time.Duration {
	d := minimum
	for range retry {
		if d >= maximum/2 {
			d = maximum
			break
		}
		d *= 2
	}
	d = min(d, maximum)
	half := d / 2
	return half + rand.N(d-half+1)
}

// snippet quotes the start of a body for a log line.
func snippet(b []byte) string {
	const n = 120
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "..."
	}
	return strconv.Quote(string(b))
}

// clip shortens a string from the network for a log line.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
