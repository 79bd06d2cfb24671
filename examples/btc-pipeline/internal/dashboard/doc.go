// Package dashboard is the BTC pipeline's web dashboard and offline report:
// one self-contained page, served from the binary, that charts per symbol the
// price with the mean and ±1 standard deviation band of a selectable window,
// the z-scores of every window (lines and a heat strip), the higher and lower
// windows, and the stages' throughput, watermark delay, consumer lag and
// late, duplicate, invalid and dead-lettered counts.
//
// # Pieces
//
//   - Hub keeps the recent records of every symbol in bounded series and
//     pushes them to browsers. It is fed through AddPrice, AddMoving,
//     AddZScore and AddLookahead (or Emit, as a stream.Emitter of
//     btc.Pipeline's outputs), from any goroutine.
//   - Follow feeds a Hub from the pipeline's topics, read_committed, as any
//     downstream consumer would (the all and ui commands).
//   - Handler serves the page, the event stream and a JSON snapshot.
//   - Report, ReportFromDir and WriteReport write the same charts for a whole
//     trace (the offline command's outputs) into one HTML file that opens
//     without a server or a network.
//
// The page draws with uPlot 1.6.32 (MIT), vendored unmodified in assets/ with
// its licence (see assets/README.md) and embedded; the page inlines it, its
// script and its style, and its Content-Security-Policy forbids any other
// source: it needs no internet, and the report needs no network at all.
//
// # Back-pressure: the pipeline never waits for a browser
//
// Add takes a mutex only long enough to append the record to a staging
// buffer (no allocation once the buffer has grown); nothing else holds that
// mutex longer than a pointer swap. If more than Options.MaxPending records
// wait for the next tick (the broadcaster stalled), Add drops the record and
// counts it in Metrics.Lost rather than grow or wait.
//
// Every Options.Tick (250 ms) the broadcaster swaps the staging buffer out,
// applies its records to the series and encodes one delta frame, shared by
// every browser. It hands the frame to each browser's queue (Options.
// ClientBuffer frames) without waiting: when a queue is full the frame is
// dropped (Metrics.Dropped) and the browser is marked; its own goroutine then
// sends it a fresh snapshot instead of the frames it missed (Metrics.Resyncs),
// so a slow browser sees fewer, coalesced updates but never a wrong state.
// Each browser's writes are cut in 64 KiB pieces, each with a deadline of
// Options.WriteTimeout; a browser that takes none in that time is
// disconnected (Metrics.Disconnects) and reconnects by itself (EventSource).
// A stuck browser therefore costs one goroutine and its queue, and never
// delays Add, the broadcaster or the other browsers.
//
// Follow is a consumer like any other, so it costs the pipeline broker and
// CPU time; Options.FollowRate bounds the records it reads per second (5000
// by default, hundreds of times the live rate of Binance). A pipeline that
// writes faster, such as an unpaced replay, outruns the dashboard: the
// follower's consumer lag grows, and it catches up later. With the bound, the
// dashboard costs the pipeline no measurable throughput (TestDashboardOverhead,
// run with TIDEMARK_DASHBOARD_OVERHEAD=1); without it, reading every topic at
// the stages' full speed cost them 15-20% on the embedded broker, which serves
// every client from one goroutine. The ui command, which runs no stage, can
// lift it (FollowRate -1).
//
// # Buffer bounds
//
// A symbol has five series, one per topic: btc-price, btc-price-moving,
// btc-price-zscore, btc-price-higher and btc-price-lower. Each series is a
// ring of at most Options.MaxPoints records (65536: an hour of prices every
// 100 ms, with room), in arrival order, and keeps only the records within
// Options.Retain (one hour) of the newest event time it has seen. Retention
// follows event time, not the wall clock, so a replayed trace of a past day
// shows as it is replayed. With six windows a full symbol holds about 17 MB
// (8 bytes of time and 28 float64 per price event); Options.MaxSymbols (64)
// bounds the symbols, and the stats history keeps Retain / StatsEvery
// samples. The page applies the same bounds to what it receives, so it holds
// what the hub holds.
//
// # Event stream and snapshot format
//
// GET /events is a Server-Sent Events stream. It starts with a snapshot event
// and goes on with one delta event per tick that had something to say; ": ping"
// comments keep an idle connection open:
//
//	event: snapshot
//	id: 1200
//	data: {"type":"snapshot","mode":"live","seq":1200,"windows":["30s",...],"horizonMs":20000,
//	       "retainMs":3600000,"maxPoints":65536,"tickMs":250,"symbols":{SYMBOL:SERIES,...},"stats":[SAMPLE,...]}
//
//	event: delta
//	id: 1260
//	data: {"type":"delta","from":1200,"to":1260,"symbols":{SYMBOL:SERIES,...},"stats":[SAMPLE]}
//
// Records are numbered in the order the hub applies them: a snapshot holds
// everything up to seq, a delta the records numbered from+1 to to, so a delta
// follows a snapshot or delta exactly when its from equals their seq or to
// (the server guarantees it; a browser that sees otherwise waits for the next
// snapshot). SERIES is {"price":S,"moving":S,"zscore":S,"higher":S,"lower":S}
// (a delta has only the series that grew), each S columnar:
//
//	{"newest":MS,"t":[MS,...],"c":[[...],[...],...]}
//
// t holds event times in Unix milliseconds, in arrival order (btc-price may
// be out of order within the lateness), and c one array per column: price:
// [price]; moving: [avg × n windows, std × n, count × n]; zscore: [price,
// z × n]; higher and lower: [seconds]. null stands for a missing value (the
// std of a one-event window, a z-score that is null). SAMPLE is a stats sample:
// {"t":MS,"stages":[{"name","in","out","inRate","outRate","lag","wmDelay"
// (seconds or null),"late","dup","invalid","dead"},...]}; the hub derives
// the rates from successive totals. GET /api/snapshot returns a snapshot as
// JSON; from and to (Unix ms or RFC 3339) keep a past range, max thins each
// series to at most that many points.
//
// # Tests
//
// The page exposes its state as window.tidemark (ready, seq, model, the
// uPlot instances and what each was given to draw, pixels drawn per series,
// select, showRange), which the browser tests read through the Chrome
// DevTools Protocol: they run when TIDEMARK_CHROMIUM names a Chromium binary
// (scripts/browser/chromium.sh installs Debian's) and save screenshots in
// TIDEMARK_ARTIFACTS.
package dashboard
