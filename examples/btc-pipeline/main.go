// Command btc-pipeline is the BTC/USDT analytics lab rebuilt on Tidemark:
// Binance -> Kafka btc-price -> moving statistics over 30s..1h -> z-scores ->
// MongoDB, plus the time to the next higher and lower price within 20 s.
//
//	go run ./examples/btc-pipeline            # everything, embedded, with a live view
//	go run ./examples/btc-pipeline services   # only the embedded Kafka and MongoDB
//	go run ./examples/btc-pipeline extract    # Binance (or synthetic) -> btc-price
//	go run ./examples/btc-pipeline moving     # btc-price -> btc-price-moving
//	go run ./examples/btc-pipeline zscore     # btc-price + btc-price-moving -> btc-price-zscore
//	go run ./examples/btc-pipeline bonus      # btc-price -> btc-price-higher, btc-price-lower
//	go run ./examples/btc-pipeline load       # btc-price-zscore -> MongoDB
//	go run ./examples/btc-pipeline offline --in prices.jsonl --out out/ [--report out/report.html]
//	go run ./examples/btc-pipeline ui         # the dashboard alone, on http://127.0.0.1:8080/
//
// Run with --help for the flags. docs/pipeline.md is the pipeline's contract.
//
// Where services come from: with no --brokers (TIDEMARK_BROKERS) and no
// --mongo-uri (TIDEMARK_MONGO_URI), the all command starts an embedded
// Kafka-protocol broker (kfake) and an embedded MongoDB-compatible store
// (FerretDB on SQLite) in --data-dir. The single-stage commands then connect
// to the services command's fixed ports (127.0.0.1:9092 and
// mongodb://127.0.0.1:27017), so that the stages run in separate terminals as
// in the lab.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
)

const usage = `usage: btc-pipeline [command] [flags]

commands (the lab's stages; each stage is a consumer-group member, run several to share partitions):
  all        every stage in one process (moving, zscore and bonus chained; --chain=false: separate), with a live view (the default)
  services   only the embedded Kafka broker and MongoDB store, on fixed local ports
  extract    Binance GET /api/v3/ticker/price every 100 ms -> btc-price (--source synthetic | replay:FILE)
  moving     btc-price -> btc-price-moving (avg and std over every window), exactly once
  zscore     btc-price joined with btc-price-moving -> btc-price-zscore, exactly once
  bonus      btc-price -> btc-price-higher, btc-price-lower, exactly once
  load       btc-price-zscore -> MongoDB btc.btc-price-zscore-<window>, effectively once
  chained    moving, zscore and bonus chained in one stage: btc-price read once, the four topics written in one transaction
  offline    --in FILE --out DIR: the same computations over a file of btc-price JSON lines (--report FILE.html: their charts)
  ui         the dashboard alone, reading the topics (all serves it too)

Run "btc-pipeline <command> --help" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// windowsFlag parses a comma-separated list of durations.
type windowsFlag []time.Duration

func (w *windowsFlag) String() string {
	parts := make([]string, len(*w))
	for i, d := range *w {
		parts[i] = btc.Label(d)
	}
	return strings.Join(parts, ",")
}

func (w *windowsFlag) Set(s string) error {
	var out []time.Duration
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil {
			return err
		}
		out = append(out, d)
	}
	*w = out
	return nil
}

// offDuration is a duration flag where "off" (or 0) turns the setting off.
type offDuration time.Duration

func (d *offDuration) String() string {
	if *d == 0 {
		return "off"
	}
	return time.Duration(*d).String()
}

func (d *offDuration) Set(s string) error {
	if s == "off" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("negative duration %v", v)
	}
	*d = offDuration(v)
	return nil
}

// listFlag parses a comma-separated list of strings.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = nil
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// options are the flags of every command; each command reads the ones it
// documents.
type options struct {
	cmd         string
	cfg         btc.Config
	brokers     listFlag // empty: embedded
	mongoURI    string   // empty: embedded
	symbols     listFlag
	dataDir     string
	metricsAddr string
	uiAddr      string
	metricsURL  string // where the metrics are served, once they are
	footer      string // the live view's last line
	instance    string
	view        string
	chain       bool // all: moving, zscore and bonus as the chained stage
	refresh     time.Duration
	logLevel    string

	source     string
	speed      float64
	binanceURL string
	interval   time.Duration
	seed       uint64

	kafkaPort, mongoPort int
	kafka                kafkaSecurity

	in, out, report string

	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
}

// The fixed ports of the services command, which the single-stage commands
// use when no address is given.
const (
	defaultKafkaPort = 9092
	defaultMongoPort = 27017
)

// commands lists each command's flags (beyond the shared ones).
var commands = map[string][]string{
	"all": {"source", "speed", "binance-url", "interval", "seed", "mongo-uri", "data-dir", "metrics-addr", "ui-addr", "view", "refresh", "kafka-port",
		"kafka-security", "max-ahead", "idle-timeout", "chain"},
	"ui":       {"ui-addr", "kafka-security"},
	"services": {"data-dir", "kafka-port", "mongo-port"},
	"extract":  {"source", "speed", "binance-url", "interval", "seed", "kafka-security"},
	"moving":   {"instance-id", "metrics-addr", "refresh", "kafka-security", "max-ahead", "idle-timeout"},
	"zscore":   {"instance-id", "metrics-addr", "refresh", "kafka-security", "max-ahead", "idle-timeout"},
	"bonus":    {"instance-id", "metrics-addr", "refresh", "kafka-security", "max-ahead", "idle-timeout"},
	"chained":  {"instance-id", "metrics-addr", "refresh", "kafka-security", "max-ahead", "idle-timeout"},
	"load":     {"instance-id", "metrics-addr", "refresh", "mongo-uri", "kafka-security"},
	"offline":  {"in", "out", "report", "max-ahead"},
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "all"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	if cmd == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	own, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "btc-pipeline: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	o := &options{cmd: cmd, cfg: btc.DefaultConfig(), stdin: stdin, stdout: stdout, stderr: stderr}
	fs := o.flags(own)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "btc-pipeline %s: unexpected arguments %q\n", cmd, fs.Args())
		return 2
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(stderr, "btc-pipeline %s: %v\n", cmd, err)
		return 2
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(o.logLevel)) // validated
	o.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	o.kafka.logWarnings(o.log)
	var err error
	switch cmd {
	case "offline":
		return o.offline(ctx)
	case "services":
		err = o.services(ctx)
	case "extract":
		err = o.extract(ctx)
	case "moving", "zscore", "bonus", "load", "chained":
		err = o.stage(ctx)
	case "all":
		err = o.all(ctx)
	case "ui":
		err = o.ui(ctx)
	}
	var uerr usageError
	switch {
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "btc-pipeline %s: %v\n", cmd, err)
		return 2
	case err != nil:
		o.log.Error("btc-pipeline "+cmd+" failed", "error", err)
		return 1
	}
	return 0
}

// usageError is an error in the command line.
type usageError struct{ error }

func (o *options) flags(own []string) *flag.FlagSet {
	fs := flag.NewFlagSet("btc-pipeline "+o.cmd, flag.ContinueOnError)
	fs.SetOutput(o.stderr)
	has := map[string]bool{}
	for _, f := range own {
		has[f] = true
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: btc-pipeline %s [flags]\n\nflags:\n", o.cmd)
		fs.PrintDefaults()
	}
	cfg := &o.cfg
	fs.DurationVar(&cfg.Lateness, "lateness", cfg.Lateness, "allowed lateness of btc-price events")
	windows := (*windowsFlag)(&cfg.Windows)
	fs.Var(windows, "windows", "trailing window lengths, comma-separated, in output order")
	fs.DurationVar(&cfg.Horizon, "horizon", cfg.Horizon, "higher/lower lookahead horizon")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if has["max-ahead"] {
		fs.Var((*offDuration)(&cfg.MaxAhead), "max-ahead", "refuse (dead-letter) btc-price events further ahead than this of their record's timestamp "+
			"(offline: of the largest event time of their partition); off for no bound")
	}
	if has["idle-timeout"] {
		cfg.IdleTimeout = 5 * time.Second
		fs.Var((*offDuration)(&cfg.IdleTimeout), "idle-timeout", "when a stage's input has had no record for this long, its watermark "+
			"advances with the wall clock, so that the last results come out; off to wait for later events")
	}
	if o.cmd == "offline" {
		fs.IntVar(&cfg.Partitions, "partitions", 1, "partitions of the topics the stages would read: offline computes per partition, as they do")
		fs.StringVar(&o.in, "in", "", "input file of btc-price JSON lines, - for stdin")
		fs.StringVar(&o.out, "out", "", "output directory")
		fs.StringVar(&o.report, "report", "", "also write the dashboard's charts of the trace into this self-contained HTML file")
		return fs
	}
	fs.IntVar(&cfg.Partitions, "partitions", 1, "partitions of the topics created when missing (the same for every topic, so they stay co-partitioned)")
	o.brokers = listFlag(splitEnv("TIDEMARK_BROKERS"))
	fs.Var(&o.brokers, "brokers", "Kafka brokers, comma-separated (env TIDEMARK_BROKERS); empty: embedded (all, services) or 127.0.0.1:9092, the services command's")
	o.symbols = listFlag{"BTCUSDT"}
	if has["source"] {
		fs.Var(&o.symbols, "symbols", "symbols to poll, comma-separated")
		fs.StringVar(&o.source, "source", "auto", "auto (Binance, else synthetic), binance, synthetic, or replay:FILE (btc-price JSON lines)")
		fs.Float64Var(&o.speed, "speed", 1, "replay and synthetic pace as a factor of real time; 0: as fast as possible")
		fs.StringVar(&o.binanceURL, "binance-url", "https://api.binance.com", "Binance REST base URL")
		fs.DurationVar(&o.interval, "interval", 100*time.Millisecond, "Binance polling interval")
		fs.Uint64Var(&o.seed, "seed", 1, "synthetic source's seed")
	}
	if has["mongo-uri"] {
		fs.StringVar(&o.mongoURI, "mongo-uri", os.Getenv("TIDEMARK_MONGO_URI"), "MongoDB URI (env TIDEMARK_MONGO_URI); empty: embedded (all) or mongodb://127.0.0.1:27017, the services command's")
	}
	if has["data-dir"] {
		fs.StringVar(&o.dataDir, "data-dir", "btc-pipeline-data", "directory of the embedded services' data")
	}
	if has["metrics-addr"] {
		def := "off"
		if o.cmd == "all" {
			def = "127.0.0.1:9464"
		}
		fs.StringVar(&o.metricsAddr, "metrics-addr", def, "address to serve Prometheus metrics on (/metrics), off for none")
	}
	if has["ui-addr"] {
		fs.StringVar(&o.uiAddr, "ui-addr", "127.0.0.1:8080", "address to serve the dashboard on, off for none")
	}
	if has["instance-id"] {
		fs.StringVar(&o.instance, "instance-id", "", "static group member id (KIP-345): a restarted instance takes its partitions back at once; unique per running instance")
	}
	if has["view"] {
		fs.StringVar(&o.view, "view", "auto", "live view: auto (screen on a terminal, log lines otherwise), screen, log, off")
	}
	if has["chain"] {
		fs.BoolVar(&o.chain, "chain", true, "run moving, zscore and bonus as one chained stage (btc-price read once, the four topics in one transaction); --chain=false runs them as three stages")
	}
	if has["refresh"] {
		def := 10 * time.Second
		if o.cmd == "all" {
			def = time.Second
		}
		fs.DurationVar(&o.refresh, "refresh", def, "how often the view refreshes (log lines: every 10 refreshes on a terminal's log file)")
	}
	if has["kafka-port"] {
		def := defaultKafkaPort
		if o.cmd == "all" {
			def = 0
		}
		fs.IntVar(&o.kafkaPort, "kafka-port", def, "embedded Kafka's port on 127.0.0.1 (0: any free port)")
	}
	if has["mongo-port"] {
		fs.IntVar(&o.mongoPort, "mongo-port", defaultMongoPort, "embedded MongoDB's port on 127.0.0.1")
	}
	if has["kafka-security"] {
		o.kafka.flags(fs)
	}
	return fs
}

// validate checks the flags before anything starts.
func (o *options) validate() error {
	if err := o.cfg.Validate(); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if o.cmd == "offline" {
		return nil
	}
	switch {
	case o.cfg.Partitions < 1:
		return fmt.Errorf("--partitions %d: want at least 1", o.cfg.Partitions)
	case o.speed < 0:
		return fmt.Errorf("--speed %v: want 0 (as fast as possible) or more", o.speed)
	case o.refresh < 0 || o.refresh == 0 && slices.Contains(commands[o.cmd], "refresh"):
		return fmt.Errorf("--refresh %v: want more than 0", o.refresh)
	case o.source != "" && o.source != "auto" && o.source != "binance" && o.source != "synthetic" &&
		!strings.HasPrefix(o.source, "replay:"):
		return fmt.Errorf("--source %q: want auto, binance, synthetic or replay:FILE", o.source)
	case o.source == "replay:":
		return errors.New("--source replay: needs a file, as in replay:prices.jsonl")
	case o.view != "" && o.view != "auto" && o.view != "screen" && o.view != "log" && o.view != "off":
		return fmt.Errorf("--view %q: want auto, screen, log or off", o.view)
	case o.source != "" && len(o.symbols) == 0:
		return errors.New("--symbols: want at least one symbol")
	}
	if slices.Contains(commands[o.cmd], "kafka-security") {
		return o.kafka.validate(o.cmd, o.brokers)
	}
	return nil
}

func splitEnv(name string) []string {
	var l listFlag
	_ = l.Set(os.Getenv(name))
	return l
}

func (o *options) offline(ctx context.Context) int {
	if o.in == "" || o.out == "" {
		fmt.Fprintln(o.stderr, "btc-pipeline offline: --in and --out are required")
		return 2
	}
	var src io.Reader
	if o.in == "-" {
		// A read of stdin blocks until a line comes: the reader returns
		// at once when ctx is done (SIGINT, SIGTERM).
		src = ctxReader(ctx, o.stdin)
	} else {
		f, err := os.Open(o.in)
		if err != nil {
			fmt.Fprintf(o.stderr, "btc-pipeline offline: %v\n", err)
			return 1
		}
		defer f.Close()
		// Offline truncates its outputs before it reads: an input that is
		// one of them would be lost.
		if name, ok := isOutput(f, o.out, o.report); ok {
			fmt.Fprintf(o.stderr, "btc-pipeline offline: --in %s is the output %s: it would be overwritten before it is read\n", o.in, name)
			return 2
		}
		src = f
	}
	// offline is a batch job that runs none of the services' code: give
	// back the binary's pages that only the start-up touched.
	if n, err := releaseStartupPages(); err != nil {
		o.log.Debug("offline: the start-up's pages stay mapped", "err", err)
	} else {
		o.log.Debug("offline: start-up pages released", "bytes", n)
	}
	sum, err := btc.Offline(ctx, src, o.out, o.cfg, o.log)
	fmt.Fprintln(o.stderr, sum.String())
	if err != nil {
		fmt.Fprintf(o.stderr, "btc-pipeline offline: %v\n", err)
		if errors.Is(err, context.Canceled) {
			return 130
		}
		return 1
	}
	if o.report != "" {
		if err := o.writeReport(); err != nil {
			fmt.Fprintf(o.stderr, "btc-pipeline offline: report: %v\n", err)
			return 1
		}
		fmt.Fprintf(o.stderr, "offline: report in %s\n", o.report)
	}
	return 0
}

// isOutput says whether the open input f is one of the files offline
// writes in dir, or the report, and which.
func isOutput(f *os.File, dir, report string) (string, bool) {
	in, err := f.Stat()
	if err != nil {
		return "", false
	}
	var names []string
	for _, name := range btc.OutputFiles() {
		names = append(names, filepath.Join(dir, name))
	}
	if report != "" {
		names = append(names, report)
	}
	for _, name := range names {
		if st, err := os.Stat(name); err == nil && os.SameFile(in, st) {
			return name, true
		}
	}
	return "", false
}

// ctxReader returns a reader of r whose Read returns ctx's error as soon as
// ctx is done, even while r blocks (a terminal, a pipe). The goroutine that
// reads r may stay blocked until r returns; the command exits before.
func ctxReader(ctx context.Context, r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				if _, werr := pw.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			pw.CloseWithError(ctx.Err())
		case <-done:
		}
	}()
	return pr
}
