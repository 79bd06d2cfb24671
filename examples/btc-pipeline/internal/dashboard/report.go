package dashboard

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
	"github.com/tidemark-go/tidemark/zscore"
)

// DefaultReportPoints bounds the points of each series a report file holds
// when Report.MaxPoints is 0: a longer series keeps every k-th point (and
// its last), so that the file stays a few tens of megabytes at most.
const DefaultReportPoints = 200_000

// Report is the data of an offline report: every record of a trace, by
// symbol, and the run's counters. Its Add methods are those of Hub (and it
// is also a stream.Emitter of btc.Pipeline's outputs); it is not safe for
// concurrent use. WriteReport writes it as one HTML file.
type Report struct {
	Title     string      // shown in the page's header (default: "Tidemark · BTC pipeline report")
	Stats     []StageStat // the counters table; ReportFromDir fills it from the files
	MaxPoints int         // points per series in the file (0: DefaultReportPoints)
	Generated time.Time   // when the report was made (zero: when it is written)

	cfg     btc.Config
	horizon stream.Time
	st      *store
	scratch []float64
}

// NewReport returns an empty Report for a pipeline with cfg's windows.
func NewReport(cfg btc.Config) *Report {
	labels := make([]string, len(cfg.Windows))
	for i, w := range cfg.Windows {
		labels[i] = btc.Label(w)
	}
	return &Report{cfg: cfg, horizon: stream.DurationOf(cfg.Horizon), st: newStore(labels, 0, 0, 0)}
}

func (r *Report) push(k kind, sym string, t stream.Time, fill func(v []float64)) {
	w := width(k, len(r.st.windows))
	if cap(r.scratch) < w {
		r.scratch = make([]float64, w)
	}
	v := r.scratch[:w]
	fill(v)
	r.st.series(sym).s[k].push(t, v)
}

// AddPrice adds a btc-price record.
func (r *Report) AddPrice(symbol string, t stream.Time, price float64) {
	r.push(kPrice, symbol, t, func(v []float64) { v[0] = price })
}

// AddMoving adds a btc-price-moving record (one Stats per window).
func (r *Report) AddMoving(symbol string, t stream.Time, stats []window.Statistics) {
	n := len(r.st.windows)
	if len(stats) != n {
		return
	}
	r.push(kMoving, symbol, t, func(v []float64) {
		for i, s := range stats {
			v[i], v[n+i], v[2*n+i] = s.Mean, s.Std, float64(s.Count)
		}
	})
}

// AddZScore adds a btc-price-zscore record.
func (r *Report) AddZScore(symbol string, t stream.Time, price float64, scores []zscore.Score) {
	if len(scores) != len(r.st.windows) {
		return
	}
	r.push(kZScore, symbol, t, func(v []float64) {
		v[0] = price
		for i, s := range scores {
			v[1+i] = math.NaN()
			if s.OK {
				v[1+i] = s.Z
			}
		}
	})
}

// AddLookahead adds a btc-price-higher (btc.Higher) or btc-price-lower
// (btc.Lower) record.
func (r *Report) AddLookahead(k btc.Kind, symbol string, t stream.Time, seconds float64) {
	kk := kHigher
	if k == btc.Lower {
		kk = kLower
	} else if k != btc.Higher {
		return
	}
	r.push(kk, symbol, t, func(v []float64) { v[0] = seconds })
}

// ReportFromDir builds the report of an offline run: the four derived files
// the offline command wrote in dir (btc-price-moving.jsonl and so on), and
// prices, the btc-price lines it read (nil: the price line is drawn from the
// z-score records, which carry the price). The counters come from the files
// too: lines and invalid lines of prices, the late and dead-letter side
// files, and the records of each output; the duplicates are the valid lines
// that are neither late nor in btc-price-moving (one record per accepted
// event).
func ReportFromDir(dir string, prices io.Reader, cfg btc.Config) (*Report, error) {
	r := NewReport(cfg)
	dec := newDecoder(cfg)
	var written [4]uint64
	for _, k := range []btc.Kind{btc.Moving, btc.ZScore, btc.Higher, btc.Lower} {
		path := filepath.Join(dir, k.FileName())
		n, err := eachLine(path, nil, func(line []byte, no uint64) error {
			switch k {
			case btc.Moving:
				sym, t, stats, err := dec.decodeMoving(line)
				if err != nil {
					return err
				}
				r.AddMoving(sym, t, stats)
			case btc.ZScore:
				sym, t, price, scores, err := dec.decodeZScore(line)
				if err != nil {
					return err
				}
				r.AddZScore(sym, t, price, scores)
			default:
				field := "higher_window"
				if k == btc.Lower {
					field = "lower_window"
				}
				sym, t, secs, err := dec.decodeLookahead(line, field)
				if err != nil {
					return err
				}
				r.AddLookahead(k, sym, t, secs)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		written[k] = n
	}
	late, err := eachLine(filepath.Join(dir, btc.LateFile), nil, nil)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	dead, err := eachLine(filepath.Join(dir, btc.DeadLetterFile), nil, nil)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	row := StageStat{Name: "offline", WatermarkDelay: -1, Late: late, DeadLettered: dead, Invalid: dead,
		Out: written[0] + written[1] + written[2] + written[3]}
	if prices != nil {
		pd := btc.NewDecoder()
		var lines, invalid uint64
		if _, err := eachLine("btc-price input", prices, func(line []byte, _ uint64) error {
			lines++
			p, err := pd.Decode(line)
			if err != nil {
				invalid++
				return nil
			}
			r.AddPrice(p.Symbol, p.Time, p.Price)
			return nil
		}); err != nil {
			return nil, err
		}
		row.In, row.Invalid = lines, invalid
		if valid := lines - invalid; valid >= late+written[btc.Moving] {
			row.Duplicates = valid - late - written[btc.Moving]
		}
	}
	r.Stats = append(r.Stats, row)
	for _, k := range []btc.Kind{btc.Moving, btc.ZScore, btc.Higher, btc.Lower} {
		r.Stats = append(r.Stats, StageStat{Name: k.Topic(), Out: written[k], WatermarkDelay: -1})
	}
	return r, nil
}

// eachLine calls f (if not nil) with every line of the file at path, or of
// in when it is not nil (path then only names it in errors), without its
// line end, and returns how many lines there were. A blank line is a line,
// as in the offline command; a final line end adds none.
func eachLine(path string, in io.Reader, f func(line []byte, no uint64) error) (uint64, error) {
	if in == nil {
		file, err := os.Open(path)
		if err != nil {
			return 0, fmt.Errorf("dashboard: %w", err)
		}
		defer file.Close()
		in = file
	}
	br := bufio.NewReaderSize(in, 1<<20)
	var n uint64
	var long []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(line) > 0 {
			n++
			if f != nil {
				if ferr := f(bytes.TrimRight(line, "\r\n"), n); ferr != nil {
					return n, fmt.Errorf("dashboard: %s line %d: %w", path, n, ferr)
				}
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("dashboard: read %s: %w", path, err)
		}
	}
}

// WriteReport writes r as one HTML file that needs neither a server nor a
// network: the chart library, the script and the data are inline. It shows
// the charts of the live page for the whole trace (a symbol and window
// selector, and a time range), with the records per second of event time
// in place of the live throughput, watermark and lag charts.
func WriteReport(w io.Writer, r *Report) error {
	title := r.Title
	if title == "" {
		title = "Tidemark · BTC pipeline report"
	}
	gen := r.Generated
	if gen.IsZero() {
		gen = time.Now()
	}
	maxPoints := r.MaxPoints
	if maxPoints <= 0 {
		maxPoints = DefaultReportPoints
	}
	b := make([]byte, 0, 1<<16)
	b = append(b, `{"type":"snapshot","mode":"report","seq":0,"title":`...)
	b = appendStr(b, title)
	b = append(b, `,"generated":`...)
	b = appendStr(b, gen.UTC().Format(time.RFC3339))
	b = append(b, ',')
	b = r.st.appendHead(b, r.horizon)
	b = append(b, `,"symbols":`...)
	b = r.st.appendSymbols(b, stream.MinTime, stream.MaxTime, maxPoints)
	b = append(b, `,"stats":[`...)
	rows := make([]sampleRow, len(r.Stats))
	for i, s := range r.Stats {
		rows[i] = sampleRow{StageStat: s, inRate: math.NaN(), outRate: math.NaN()}
	}
	b = appendSample(b, &sample{t: gen.UnixMilli(), rows: rows})
	b = append(b, `]}`...)
	page, err := renderPage("report", title, b)
	if err != nil {
		return err
	}
	_, err = w.Write(page)
	return err
}

// WriteReportFile writes r to the file at path (see WriteReport).
func WriteReportFile(path string, r *Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := WriteReport(bw, r); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("dashboard: %w", err)
	}
	return f.Close()
}
