package view

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/tidemark-go/tidemark/stream"
)

// Stage is one stage's row of the view.
type Stage struct {
	Name    string
	Rate    float64 // records read per second, over the last refresh
	Records uint64  // records read
	Emitted uint64  // results written
	Lag     int64
	// WatermarkDelay is the wall clock less the stage's watermark; negative
	// when the stage has no watermark yet.
	WatermarkDelay                  time.Duration
	Late, Duplicates, Invalid, Dead uint64
	Commits, Aborts                 uint64
	Note                            string // e.g. "documents 1200"
}

// Status is everything the live view shows.
type Status struct {
	Snapshot
	Source  string // what feeds btc-price
	Stages  []Stage
	Horizon time.Duration
	Footer  string // a last line, such as where the dashboard is served
}

// Render writes the status as a screen of text, for a terminal: the caller
// clears the screen before (ANSI "\x1b[H\x1b[2J").
func Render(w io.Writer, st Status) {
	var b strings.Builder
	fmt.Fprintf(&b, "Tidemark BTC pipeline   %s   source: %s\n\n", st.Taken.UTC().Format("15:04:05"), st.Source)
	if len(st.Symbols) == 0 {
		b.WriteString("  waiting for prices...\n")
	}
	for _, s := range st.Symbols {
		fmt.Fprintf(&b, "%-10s %s  at %s\n", s.Name, num(s.Price, 2), at(s.PriceTime))
		if len(s.Windows) > 0 {
			fmt.Fprintf(&b, "  %-6s %14s %12s %8s %8s   avg/std as of %s, z as of %s\n", "window", "avg", "std", "z", "count",
				at(s.StatsTime), at(s.ZTime))
			for _, wd := range s.Windows {
				fmt.Fprintf(&b, "  %-6s %14s %12s %8s %8d\n", wd.Label, num(wd.Avg, 2), num(wd.Std, 3), num(wd.Z, 2), wd.Count)
			}
		}
		fmt.Fprintf(&b, "  next higher within %v: %s s (at %s)   next lower: %s s (at %s)\n\n",
			st.Horizon, num(s.Higher, 3), at(s.HigherTime), num(s.Lower, 3), at(s.LowerTime))
	}
	fmt.Fprintf(&b, "%-8s %9s %10s %10s %7s %10s %6s %6s %8s %6s %8s %7s\n",
		"stage", "events/s", "read", "written", "lag", "wm delay", "late", "dup", "invalid", "dlq", "commits", "aborts")
	for _, s := range st.Stages {
		fmt.Fprintf(&b, "%-8s %9.0f %10d %10d %7d %10s %6d %6d %8d %6d %8d %7d %s\n",
			s.Name, s.Rate, s.Records, s.Emitted, s.Lag, delay(s.WatermarkDelay), s.Late, s.Duplicates, s.Invalid, s.Dead,
			s.Commits, s.Aborts, s.Note)
	}
	if st.Footer != "" {
		fmt.Fprintf(&b, "\n%s\n", st.Footer)
	}
	io.WriteString(w, b.String())
}

// Log writes the status as log lines: one per symbol, one per stage.
func Log(log *slog.Logger, st Status) {
	for _, s := range st.Symbols {
		attrs := []any{"symbol", s.Name, "price", s.Price, "at", at(s.PriceTime)}
		for _, wd := range s.Windows {
			attrs = append(attrs, "avg_"+wd.Label, num(wd.Avg, 2), "std_"+wd.Label, num(wd.Std, 3), "z_"+wd.Label, num(wd.Z, 2))
		}
		attrs = append(attrs, "higher_window", num(s.Higher, 3), "lower_window", num(s.Lower, 3))
		log.Info("prices", attrs...)
	}
	for _, s := range st.Stages {
		attrs := []any{"stage", s.Name, "events_per_s", math.Round(s.Rate), "read", s.Records, "written", s.Emitted, "lag", s.Lag,
			"watermark_delay", delay(s.WatermarkDelay), "late", s.Late, "duplicates", s.Duplicates, "invalid", s.Invalid,
			"dead_lettered", s.Dead, "commits", s.Commits, "aborts", s.Aborts}
		if s.Note != "" {
			attrs = append(attrs, "note", s.Note)
		}
		log.Info("stage", attrs...)
	}
}

func num(f float64, prec int) string {
	if math.IsNaN(f) {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, f)
}

func at(t stream.Time) string {
	if t == stream.MinTime {
		return "-"
	}
	return t.UTC().Format("15:04:05.000")
}

func delay(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return d.Round(100 * time.Millisecond).String()
}
