// Package source holds the sources of the btc-pipeline's extract command:
// the producers of btc-price records. Each is a stream.Source[[]byte]: Poll
// returns records whose event key is the symbol, value btc-price JSON and
// time the event time, for the Kafka record timestamp; producing them to
// Kafka is the caller's business (kafkaio.Produce). Every record's Value is
// a slice of its own, which the source never touches again. Each source
// also says what it is in one line (Describe) and counts what it did
// (Stats, which may be called from any goroutine while another polls).
//
// # Binance
//
// [Binance] polls GET /api/v3/ticker/price every Interval (100 ms) for one
// symbol (?symbol=BTCUSDT, an object) or several (?symbols=["BTCUSDT",...],
// an array). One request is in flight at a time; polls start every Interval
// (a slow answer delays the next poll, it does not cause a burst).
//
//   - Event time: the ticker carries no timestamp, so the event time is the
//     wall clock (BinanceConfig.Now) when the answer's body has arrived,
//     truncated to the millisecond, in UTC. All symbols of one answer share
//     it. Two answers landing in the same millisecond (possible only with an
//     Interval near 1 ms or a slow answer followed at once by a fast one)
//     would share it too; the pipeline drops the second as a duplicate.
//   - Prices: Binance writes decimal strings, "99190.48000000". A price must
//     be digits with an optional fraction (no sign, exponent, spaces, NaN or
//     Inf), finite and > 0; it is written as a JSON number with leading zeros
//     of the whole part and trailing zeros of the fraction removed
//     ("100.00000000" -> 100), so the text is exactly Binance's decimal. A
//     price that fails is skipped (that symbol only), counted in BadPrices and
//     logged once until that symbol's price parses again.
//   - Failures: HTTP 429 (rate limited) and 418 (IP banned) with Retry-After
//     (seconds or an HTTP date; any other failed answer carrying one too, a
//     503 say) wait that long plus up to 10% jitter (at most 1 s): no request
//     is sent before it expires. A 418 without Retry-After waits MaxBackoff.
//     Every other failure — 5xx, other statuses (400 invalid symbol, 403 WAF, 451
//     restricted location), timeouts (Timeout, 2 s, per request), network
//     errors (connection refused, DNS), malformed bodies (not JSON, wrong
//     shape, a ticker without symbol or price, a symbol missing, repeated or
//     not asked for, a price that is not a string) — waits a capped
//     exponential backoff with jitter: uniform in [d/2, d], d doubling from
//     MinBackoff (200 ms) to MaxBackoff (30 s). A success resets it. A
//     malformed body yields no record at all: only a price that does not
//     parse skips one symbol.
//   - Request weight: Binance allows WeightLimit (6000) request weight per
//     minute and IP and reports the weight used in X-MBX-USED-WEIGHT-1M (a
//     poll costs 2, or 4 for several symbols). When it is above
//     WeightThreshold (80%) of the limit, the next poll waits for the rest of
//     the minute (by Now's clock, Binance's windows being clock minutes)
//     divided by the polls the weight left allows, at least Interval; when
//     none is left, the rest of the minute plus 1 s. Polling returns to
//     Interval once the reported weight is back under the threshold.
//   - Logging, once per episode: the first failure of a kind in an episode
//     (the failures between two successes) logs a WARN with the details
//     (status, Retry-After, Binance's message or the error, the wait); further
//     failures of that kind are only counted; the first success after them
//     logs INFO "Binance reachable again after N failures over D" with counts
//     per kind. Bad prices (per symbol) and weight throttling also log one
//     WARN when they begin and one INFO when they end.
//   - [Binance.Stats] returns the counters; [Binance.Probe] sends one request
//     so the application can choose between Binance and a fallback.
//
// # Synthetic
//
// [Synthetic] is a seeded random walk of prices in cent steps for each
// symbol, from a start price (BTCUSDT 100000.00, ETHUSDT 2500.00, any other
// symbol a price derived from its name; or SyntheticConfig.Prices). The
// market goes through phases, for all symbols at once: normal phases (about
// 20 s; about 9 events per second per symbol, exponential gaps), each
// followed by either a quiet spell (1.5 to 5 s without any event) or a burst
// (50 to 250 ms with an event every 1 to 3 ms per symbol, four times as
// volatile); on average about 10 events per second per symbol, as the
// Binance poller. A symbol never has two events in the same millisecond (the
// pipeline would drop the second as a duplicate). A step is Gaussian, its
// standard deviation 1.5e-5 of the price (at least half a cent), with a slight
// pull back towards the start price; 35% of normal events repeat the price,
// and a price never goes below 0.01.
//
// Event times are the schedule's: Start (the wall clock at the first Poll,
// unless set) plus the virtual time of the event. Paced at Speed 1 (the
// default) an event is returned when the wall clock reaches its event time,
// so the event time is the wall clock when it is returned; at Speed 2 twice
// as fast (event times then run ahead of the wall clock). When nobody polls
// for so long that pacing falls more than 250 ms behind, the schedule skips
// ahead rather than pouring out the backlog. Unpaced, events are returned as
// fast as Poll is called: with a fixed Start, a seed always gives the same
// records, and Count bounds the run (Poll returns io.EOF after it). The
// records are made up: [Synthetic.Banner] says so for the start of a run,
// and Describe says so in one line.
//
// # Replay
//
// [Replay] is the library's replay.Lines over btc-price JSON lines from a
// file ("-" is the standard input): it replays every line, in order,
// untouched: the Value is the line without its terminator ("\n" or "\r\n").
// A valid line (per btc.Decoder) is keyed by its symbol, its time the
// record's timestamp. Any other line, including a blank one (the pipeline
// treats blank values as invalid), is replayed too, raw, with an empty key
// and the wall clock when it is read as its time (replay.WithInvalidLines),
// so that the pipeline's dead-letter path sees it; each kind of invalid line
// is logged once.
//
// Speed paces the replay by the event times of the valid lines, as
// replay.WithSpeed does: a line whose event time is d after the first valid
// line's, and later than every line before it, is returned d/Speed after it
// (1 = the trace's pace, 10 = ten times faster, 0 = as fast as possible). An
// event earlier than one already returned goes out at once, and so do
// invalid lines; time lost while nobody polled is caught up afterwards. Poll
// returns when its context is done even while a read from a pipe or a
// terminal blocks; a line longer than MaxLineBytes (1 MiB) ends the replay
// with a *replay.LineError (replay.ErrLineTooLong) carrying its line
// number, after the lines before it. [Replay.Stats] counts lines, valid and
// invalid ones.
package source
