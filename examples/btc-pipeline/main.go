// Command btc-pipeline is the BTC/USDT analytics lab rebuilt on Tidemark:
// Binance -> Kafka btc-price -> moving statistics over 30s..1h -> z-scores ->
// MongoDB, plus the time to the next higher and lower price within 20 s.
//
// This version ships the offline mode, which runs the very operators of the
// streaming stages over a file of btc-price records:
//
//	go run ./examples/btc-pipeline offline --in prices.jsonl --out out/
//
// The streaming subcommands of the specification (extract, moving, zscore,
// load, bonus, all, services) are not built yet; asking for one says so and
// exits with status 2.
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
	"strings"
	"syscall"
	"time"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
)

const usage = `usage: btc-pipeline <command> [flags]

commands:
  offline --in FILE --out DIR   run the pipeline over btc-price JSON lines (FILE "-" is stdin)

flags shared by every command:
  --lateness 10s                allowed lateness
  --windows 30s,1m,5m,15m,30m,1h trailing window lengths
  --horizon 20s                 higher/lower lookahead horizon
  --partitions 1                partitions of every topic (the same for all, so they stay co-partitioned)

not built yet: extract, moving, zscore, load, bonus, all, services
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stderr))
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

func run(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if len(args) == 0 || args[0] == "all" || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 || args[0] == "all" {
			fmt.Fprintln(stderr, "\nthe live pipeline (the default command, all) is not built yet; run the offline command")
		}
		return 2
	}
	cmd, args := args[0], args[1:]
	cfg := btc.DefaultConfig()
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&cfg.Lateness, "lateness", cfg.Lateness, "allowed lateness")
	fs.DurationVar(&cfg.Horizon, "horizon", cfg.Horizon, "lookahead horizon")
	windows := windowsFlag(cfg.Windows)
	fs.Var(&windows, "windows", "trailing window lengths, comma-separated")
	fs.IntVar(&cfg.Partitions, "partitions", 1, "partitions of the pipeline's topics (offline: computes per partition, as the stages do)")
	in := fs.String("in", "", "input file of btc-price JSON lines, - for stdin (offline)")
	out := fs.String("out", "", "output directory (offline)")
	switch cmd {
	case "offline":
	case "extract", "moving", "zscore", "load", "bonus", "services":
		fmt.Fprintf(stderr, "btc-pipeline: %s is not built yet; see README.md\n", cmd)
		return 2
	default:
		fmt.Fprintf(stderr, "btc-pipeline: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Windows = windows
	if *in == "" || *out == "" {
		fmt.Fprintln(stderr, "btc-pipeline offline: --in and --out are required")
		return 2
	}
	src := stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			fmt.Fprintf(stderr, "btc-pipeline offline: %v\n", err)
			return 1
		}
		defer f.Close()
		src = f
	}
	sum, err := btc.Offline(ctx, src, *out, cfg, log)
	fmt.Fprintln(stderr, sum.String())
	if err != nil {
		fmt.Fprintf(stderr, "btc-pipeline offline: %v\n", err)
		if errors.Is(err, context.Canceled) {
			return 130
		}
		return 1
	}
	return 0
}
