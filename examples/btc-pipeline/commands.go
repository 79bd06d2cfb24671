package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/dashboard"
	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/source"
	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/view"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/stream"
)

// extractStats are the counters of the extract side, for the view and the
// metrics.
type extractStats struct {
	name     string
	describe string                               // the source, in one line
	sink     atomic.Pointer[kafkaio.Sink[[]byte]] // produce's, once it has one
	failures func() map[string]uint64             // per kind; nil for sources that do not fail
}

// snapshot returns the source's name, the records produced (handed to the
// producer) and the failures per kind.
func (e *extractStats) snapshot() (string, uint64, map[string]uint64) {
	var f map[string]uint64
	if e.failures != nil {
		f = e.failures()
	}
	var records uint64
	if s := e.sink.Load(); s != nil {
		records = s.Stats().Written
	}
	return e.name, records, f
}

// newSource returns the source --source asks for. "auto" tries Binance and
// falls back to the synthetic source when Binance cannot be reached, saying
// so.
func (o *options) newSource(ctx context.Context) (stream.Source[[]byte], *extractStats, error) {
	stats := &extractStats{}
	synthetic := func() stream.Source[[]byte] {
		s := source.NewSynthetic(source.SyntheticConfig{Seed: o.seed, Symbols: o.symbols, Speed: o.speed, Unpaced: o.speed == 0})
		fmt.Fprintln(o.stderr, s.Banner())
		stats.name, stats.describe = "synthetic", s.Describe()
		return s
	}
	switch {
	case o.source == "synthetic":
		return synthetic(), stats, nil
	case strings.HasPrefix(o.source, "replay:"):
		path := strings.TrimPrefix(o.source, "replay:")
		r, err := source.NewReplay(path, source.ReplayConfig{Speed: o.speed, Logger: o.log})
		if err != nil {
			return nil, nil, usageError{fmt.Errorf("--source %s: %w", o.source, err)}
		}
		stats.name, stats.describe = "replay", r.Describe()
		return r, stats, nil
	case o.source == "binance" || o.source == "auto":
		b, err := source.NewBinance(source.BinanceConfig{BaseURL: o.binanceURL, Symbols: o.symbols, Interval: o.interval, Logger: o.log})
		if err != nil {
			return nil, nil, usageError{err}
		}
		if o.source == "auto" {
			if err := b.Probe(ctx); err != nil {
				o.log.Warn("Binance is not reachable; falling back to the SYNTHETIC source (use --source binance to insist)",
					"url", b.URL(), "error", err)
				return synthetic(), stats, nil
			}
		}
		stats.name, stats.describe = "binance", b.Describe()
		stats.failures = func() map[string]uint64 {
			st := b.Stats()
			return map[string]uint64{"rate_limited": st.RateLimited, "banned": st.Banned, "server_error": st.ServerErrors,
				"status": st.StatusErrors, "timeout": st.Timeouts, "network": st.NetworkErrors, "malformed": st.Malformed,
				"bad_price": st.BadPrices}
		}
		return b, stats, nil
	}
	return nil, nil, usageError{fmt.Errorf("--source %q: want auto, binance, synthetic or replay:FILE", o.source)}
}

// produce runs src until it ends or ctx is done, producing its records to
// btc-price (key: the symbol; timestamp: the event time) with an idempotent
// producer, and waits for what is in flight before it returns
// (kafkaio.Produce). A record the brokers refuse for good (a replayed line
// too large for the producer, say) goes to btc-price-dlq with its reason
// instead of stopping extract, as invalid btc-price input does in the
// stages. With m, the producer's statistics are exported as the Kafka sink
// "extract".
func (o *options) produce(ctx context.Context, brokers []string, src stream.Source[[]byte], stats *extractStats, m *metrics) error {
	if c, ok := src.(io.Closer); ok {
		defer c.Close()
	}
	cfg, err := o.saramaConfig()
	if err != nil {
		return err
	}
	// Stamped with the wall clock, which the stages' MaxAhead measures the
	// events against: btc-price is a LogAppendTime topic, where the broker
	// restamps them anyway, but a topic made by hand, or kfake, keeps them.
	sink, err := kafkaio.NewSink[[]byte](nil, kafkaio.Raw{}, kafkaio.WithTopic(btc.PriceTopic),
		kafkaio.WithDeadLetter(btc.DeadLetterTopic), kafkaio.WithWallClockTimestamps(),
		kafkaio.WithBrokers(brokers, cfg), kafkaio.WithLogger(o.log))
	if err != nil {
		return err
	}
	if m != nil {
		if err := m.lib.AddSink("extract", sink); err != nil {
			_ = sink.Close(ctx)
			return err
		}
	}
	stats.sink.Store(sink)
	o.log.Info("extract: producing to "+btc.PriceTopic, "source", stats.describe, "brokers", brokers)
	// In-flight records are delivered before the producer closes, also on
	// a stop; a broker that is away gets extractFlushWait (30 s), and then
	// the records still held are reported (exit code 1), not dropped
	// silently.
	pst, runErr := kafkaio.Produce(ctx, src, sink, kafkaio.WithFinalFlush(extractFlushWait))
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), extractFlushWait)
	defer cancel()
	if pst.InFlight > 0 {
		cancel() // the final flush has waited already: Close says what it keeps
	}
	closeErr := sink.Close(cctx)
	if _, failed := errors.AsType[*kafkaio.ProduceError](runErr); ctx.Err() != nil && errors.Is(runErr, ctx.Err()) &&
		pst.InFlight == 0 && pst.Unwritten == 0 && !failed {
		runErr = nil // a stop, with everything delivered
	}
	err = errors.Join(runErr, closeErr)
	if err == nil {
		st := sink.Stats()
		o.log.Info("extract: done", "source", stats.describe, "records", st.Written, "dead_lettered", st.DeadLettered,
			"dead_letters_failed", st.DeadLetterFailed)
	}
	return err
}

// extractFlushWait is how long extract's stop waits for the records in
// flight.
var extractFlushWait = 30 * time.Second

func (o *options) extract(ctx context.Context) error {
	s := o.connect()
	if err := o.ensureTopics(ctx, s.brokers); err != nil {
		return err
	}
	src, stats, err := o.newSource(ctx)
	if err != nil {
		return err
	}
	return o.produce(ctx, s.brokers, src, stats, nil)
}

// stageSet are the stages a process runs, by name, in the order of the view.
type stageSet struct {
	names  []string
	stages []*kafkaio.Stage
	loader *btc.Loader
	closeM func()
}

// newStages builds the named stages on the services s.
func (o *options) newStages(ctx context.Context, s *services, m *metrics, names ...string) (*stageSet, error) {
	cfg, err := o.saramaConfig()
	if err != nil {
		return nil, err
	}
	set := &stageSet{closeM: func() {}}
	for _, name := range names {
		opts := []kafkaio.StageOption{kafkaio.WithBrokers(s.brokers, cfg), kafkaio.WithLogger(o.log),
			kafkaio.WithLatency(m.lib.LatencyObserver(name))}
		if o.instance != "" {
			opts = append(opts, kafkaio.WithInstanceID(o.instance))
		}
		var st *kafkaio.Stage
		switch name {
		case "moving":
			st, err = btc.NewMovingStage(o.cfg, opts...)
		case "zscore":
			st, err = btc.NewZScoreStage(o.cfg, opts...)
		case "bonus":
			st, err = btc.NewBonusStage(o.cfg, opts...)
		case "chained":
			st, err = btc.NewChainedStage(o.cfg, opts...)
		case "load":
			var mc interface{ Disconnect(context.Context) error }
			client, cerr := connectMongo(ctx, s.mongoURI, o.log)
			if cerr != nil {
				return nil, cerr
			}
			mc = client
			set.closeM = func() { _ = mc.Disconnect(context.Background()) }
			set.loader, err = btc.NewLoader(client.Database(btc.Database), o.cfg, o.log)
			if err == nil {
				err = m.lib.AddMongoSink(name, set.loader)
			}
			if err == nil {
				st, err = btc.NewLoadStage(o.cfg, set.loader, opts...)
			}
		}
		if err != nil {
			set.closeM()
			return nil, usageError{err}
		}
		if err := m.lib.AddStage(name, st); err != nil {
			set.closeM()
			return nil, err
		}
		set.names = append(set.names, name)
		set.stages = append(set.stages, st)
	}
	return set, nil
}

// run runs every stage until ctx is done and returns their errors joined,
// after the loader's final flush.
func (set *stageSet) run(ctx context.Context, log *slog.Logger) error {
	errs := make([]error, len(set.stages))
	var wg sync.WaitGroup
	for i, st := range set.stages {
		wg.Go(func() {
			if err := st.Run(ctx); err != nil {
				errs[i] = fmt.Errorf("%s: %w", set.names[i], err)
			}
		})
	}
	wg.Wait()
	if set.loader != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := set.loader.Close(cctx); err != nil {
			errs = append(errs, fmt.Errorf("load: close: %w", err))
		}
		cancel()
		log.Info("load: MongoDB writes", "stats", fmt.Sprintf("%+v", set.loader.Stats()))
	}
	set.closeM()
	return errors.Join(errs...)
}

// rows returns the stages' rows of the view; prev holds the previous
// counts, for the rates.
func (set *stageSet) rows(prev map[string]uint64, since time.Duration) []view.Stage {
	var out []view.Stage
	now := stream.TimeOf(time.Now())
	for i, st := range set.stages {
		s := st.Stats()
		row := view.Stage{Name: set.names[i], Records: s.Records, Emitted: s.Emitted, Lag: s.Lag, WatermarkDelay: -1,
			Late: s.Late, Duplicates: s.Duplicates, Invalid: s.Rejected, Dead: s.DeadLettered, Commits: s.Commits, Aborts: s.Aborts}
		if s.Watermark != stream.MinTime {
			row.WatermarkDelay = time.Duration(now-s.Watermark) * time.Millisecond
		}
		if since > 0 {
			row.Rate = float64(s.Records-prev[row.Name]) / since.Seconds()
		}
		prev[row.Name] = s.Records
		if set.names[i] == "load" && set.loader != nil {
			row.Note = fmt.Sprintf("documents %d", set.loader.Stats().Written)
		}
		out = append(out, row)
	}
	return out
}

// stage runs one stage of the lab (moving, zscore, bonus or load).
func (o *options) stage(ctx context.Context) error {
	s := o.connect()
	if err := o.ensureTopics(ctx, s.brokers); err != nil {
		return err
	}
	m, err := newMetrics()
	if err != nil {
		return err
	}
	if err := o.serveMetrics(ctx, m); err != nil {
		return err
	}
	set, err := o.newStages(ctx, s, m, o.cmd)
	if err != nil {
		return err
	}
	vctx, stopView := context.WithCancel(context.Background())
	defer stopView()
	go func() {
		prev := map[string]uint64{}
		last := time.Now()
		tick := time.NewTicker(o.refresh)
		defer tick.Stop()
		for {
			select {
			case <-vctx.Done():
				return
			case now := <-tick.C:
				view.Log(o.log, view.Status{Stages: set.rows(prev, now.Sub(last))})
				last = now
			}
		}
	}()
	if err := set.run(ctx, o.log); err != nil {
		return err
	}
	o.log.Info("btc-pipeline " + o.cmd + ": stopped")
	return nil
}

func (o *options) serveMetrics(ctx context.Context, m *metrics) error {
	if o.metricsAddr == "" || o.metricsAddr == "off" {
		return nil
	}
	addr, err := m.serve(ctx, o.metricsAddr, o.log)
	if err != nil {
		return err
	}
	o.metricsURL = "http://" + addr + "/metrics"
	o.log.Info("Prometheus metrics at " + o.metricsURL)
	return nil
}

// isTerminal reports whether w is a character device, a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// all runs every stage in one process, through the topics, with the
// embedded services unless --brokers and --mongo-uri say otherwise.
func (o *options) all(ctx context.Context) error {
	mode := o.view
	if mode == "auto" {
		mode = "log"
		if isTerminal(o.stdout) {
			mode = "screen"
		}
	}
	switch mode {
	case "screen", "log", "off":
	default:
		return usageError{fmt.Errorf("--view %q: want auto, screen, log or off", o.view)}
	}
	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if mode == "screen" {
		// The screen is the view's: logs go to a file in the data directory.
		path := filepath.Join(dataDir, "btc-pipeline.log")
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("log file: %w", err)
		}
		defer f.Close()
		o.log = slog.New(slog.NewTextHandler(f, nil))
		fmt.Fprintf(o.stderr, "btc-pipeline: data in %s, logs in %s\n", dataDir, path)
	}
	svc, err := startEmbedded(dataDir, len(o.brokers) == 0, o.mongoURI == "", o.kafkaPort, 0, o.log)
	if err != nil {
		return err
	}
	defer svc.close(o.log)
	if len(o.brokers) > 0 {
		svc.brokers = o.brokers
	}
	if o.mongoURI != "" {
		svc.mongoURI = o.mongoURI
	}
	o.log.Info("btc-pipeline all", "data_dir", dataDir, "brokers", svc.brokers, "mongo", redactURI(svc.mongoURI),
		"partitions", max(o.cfg.Partitions, 1), "windows", (*windowsFlag)(&o.cfg.Windows).String(), "lateness", o.cfg.Lateness, "horizon", o.cfg.Horizon)
	if err := o.ensureTopics(ctx, svc.brokers); err != nil {
		return err
	}
	tailCfg, err := o.saramaConfig()
	if err != nil {
		return err
	}
	m, err := newMetrics()
	if err != nil {
		return err
	}
	if err := o.serveMetrics(ctx, m); err != nil {
		return err
	}
	// Chained by default: BenchmarkLabStages and BenchmarkLabLatency (real
	// broker, 2 cores) measured 46,000 events/s against 37,000-38,000 for
	// the three stages, and a p99 of 231 ms against 515 ms at 20,000
	// events/s. The topics' records are the same either way.
	names := []string{"chained", "load"}
	if !o.chain {
		names = []string{"moving", "zscore", "bonus", "load"}
	}
	set, err := o.newStages(ctx, svc, m, names...)
	if err != nil {
		return err
	}
	src, xstats, err := o.newSource(ctx)
	if err != nil {
		set.closeM()
		return err
	}
	m.ext.set(xstats)
	uiURL, stopUI, err := o.startDashboard(svc.brokers, func() []dashboard.StageStat {
		now := time.Now()
		_, records, _ := xstats.snapshot()
		rows := []dashboard.StageStat{{Name: "extract", In: records, Out: records, WatermarkDelay: -1}}
		for i, st := range set.stages {
			rows = append(rows, dashboard.StageStatOf(set.names[i], st.Stats(), now))
		}
		return rows
	}, dashboard.Options{})
	if err != nil {
		set.closeM()
		return err
	}
	defer stopUI()
	var footer []string
	if uiURL != "" {
		footer = append(footer, "dashboard: "+uiURL)
	}
	if o.metricsURL != "" {
		footer = append(footer, "metrics: "+o.metricsURL)
	}
	o.footer = strings.Join(footer, "   ")

	// Stop order: the source first (its records in flight are delivered),
	// then the stages (each commits what it did), then the view.
	srcCtx, stopSrc := context.WithCancel(ctx)
	defer stopSrc()
	stageCtx, stopStages := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStages()
	viewCtx, stopView := context.WithCancel(context.WithoutCancel(ctx))
	defer stopView()

	var srcErr, stagesErr error
	srcDone, stagesDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(srcDone)
		srcErr = o.produce(srcCtx, svc.brokers, src, xstats, m)
	}()
	go func() {
		defer close(stagesDone)
		stagesErr = set.run(stageCtx, o.log)
	}()
	tail := view.NewTail(o.cfg, o.log)
	tailDone := make(chan struct{})
	go func() {
		defer close(tailDone)
		if err := tail.Run(viewCtx, svc.brokers, tailCfg); err != nil {
			o.log.Warn("view: cannot follow the topics", "error", err)
		}
	}()

	o.watch(ctx, mode, set, xstats, tail, srcDone, stagesDone)

	stopSrc()
	<-srcDone
	stopStages()
	<-stagesDone
	stopView()
	<-tailDone
	stopUI()
	if srcErr != nil {
		o.log.Error("extract failed", "error", srcErr)
	}
	if stagesErr != nil {
		o.log.Error("stages failed", "error", stagesErr)
	}
	o.log.Info("btc-pipeline all: stopped", "data_dir", dataDir)
	return errors.Join(srcErr, stagesErr)
}

// watch shows the live view until ctx is done or the stages stop. A source
// that ends (a replay) leaves the stages running: a topic has no end, so
// the last events wait for later ones to pass the watermark.
func (o *options) watch(ctx context.Context, mode string, set *stageSet, xstats *extractStats,
	tail *view.Tail, srcDone, stagesDone <-chan struct{}) {
	tick := time.NewTicker(o.refresh)
	defer tick.Stop()
	prev := map[string]uint64{}
	last := time.Now()
	var lastExtract uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-stagesDone:
			return
		case <-srcDone:
			srcDone = nil
			o.log.Info("the source ended; the stages keep running (stop with Ctrl-C)")
		case now := <-tick.C:
			since := now.Sub(last)
			last = now
			rows := set.rows(prev, since)
			name, records, _ := xstats.snapshot()
			x := view.Stage{Name: "extract", Records: records, Emitted: records, WatermarkDelay: -1,
				Rate: float64(records-lastExtract) / since.Seconds(), Note: name}
			lastExtract = records
			st := view.Status{Snapshot: tail.Snapshot(), Source: xstats.describe, Stages: append([]view.Stage{x}, rows...), Horizon: o.cfg.Horizon,
				Footer: o.footer}
			switch mode {
			case "screen":
				var b strings.Builder
				b.WriteString("\x1b[H\x1b[2J")
				view.Render(&b, st)
				fmt.Fprint(o.stdout, b.String())
			case "log":
				view.Log(o.log, st)
			}
		}
	}
}
