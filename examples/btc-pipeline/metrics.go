package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/stream"
)

// metrics are the Prometheus metrics of the stages running in this process.
// Counters and gauges are read from the stages' Stats when scraped (nothing
// is counted twice, and the hot path pays nothing); the processing latency
// is a histogram the stages feed through kafkaio.WithLatency.
type metrics struct {
	reg     *prometheus.Registry
	latency *prometheus.HistogramVec

	mu      sync.Mutex
	stages  []namedStage
	loader  *btc.Loader
	extract *extractStats
}

type namedStage struct {
	name  string
	stage *kafkaio.Stage
}

var (
	descIn       = prometheus.NewDesc("tidemark_stage_records_in_total", "Records a stage read (not counting replays).", []string{"stage"}, nil)
	descOut      = prometheus.NewDesc("tidemark_stage_records_out_total", "Results a stage wrote.", []string{"stage"}, nil)
	descLate     = prometheus.NewDesc("tidemark_stage_late_total", "Events dropped as late.", []string{"stage"}, nil)
	descDup      = prometheus.NewDesc("tidemark_stage_duplicates_total", "Events dropped as duplicates of an earlier (symbol, timestamp).", []string{"stage"}, nil)
	descInvalid  = prometheus.NewDesc("tidemark_stage_invalid_total", "Records that are not valid.", []string{"stage"}, nil)
	descDead     = prometheus.NewDesc("tidemark_stage_dead_lettered_total", "Invalid records written to the dead-letter topic.", []string{"stage"}, nil)
	descCommits  = prometheus.NewDesc("tidemark_stage_commits_total", "Transactions (or offset commits) committed.", []string{"stage"}, nil)
	descAborts   = prometheus.NewDesc("tidemark_stage_aborts_total", "Transactions aborted, or commits that failed.", []string{"stage"}, nil)
	descReplayed = prometheus.NewDesc("tidemark_stage_replayed_total", "Records read again to rebuild task state.", []string{"stage"}, nil)
	descLag      = prometheus.NewDesc("tidemark_stage_lag_records", "Offsets between the last record a stage received and the end of its partitions.", []string{"stage"}, nil)
	descWM       = prometheus.NewDesc("tidemark_stage_watermark_delay_seconds", "Wall clock less the stage's watermark (absent before the first task runs).", []string{"stage"}, nil)
	descTasks    = prometheus.NewDesc("tidemark_stage_tasks", "Tasks (partitions) the stage runs.", []string{"stage"}, nil)
	descDocs     = prometheus.NewDesc("tidemark_load_documents_total", "MongoDB documents written (created or replaced).", nil, nil)
	descRejected = prometheus.NewDesc("tidemark_load_rejected_total", "MongoDB documents refused for good.", nil, nil)
	descExtract  = prometheus.NewDesc("tidemark_extract_records_total", "btc-price records produced.", []string{"source"}, nil)
	descExtErr   = prometheus.NewDesc("tidemark_extract_errors_total", "Failed polls of the source, by kind.", []string{"source", "kind"}, nil)
)

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tidemark_stage_processing_latency_seconds",
		Help: "Time from a record's arrival at a stage to the commit that makes its results and offset durable.",
		// 1 ms to about 33 s.
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	}, []string{"stage"})
	m.reg.MustRegister(m.latency, m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// latencyOption is the stage option that feeds the histogram.
func (m *metrics) latencyOption(stage string) kafkaio.StageOption {
	h := m.latency.WithLabelValues(stage)
	return kafkaio.WithLatency(func(d time.Duration, records int) {
		s := d.Seconds()
		for range records {
			h.Observe(s)
		}
	})
}

func (m *metrics) addStage(name string, s *kafkaio.Stage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stages = append(m.stages, namedStage{name, s})
}

func (m *metrics) setLoader(l *btc.Loader) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loader = l
}

func (m *metrics) setExtract(e *extractStats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.extract = e
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIn, descOut, descLate, descDup, descInvalid, descDead, descCommits, descAborts,
		descReplayed, descLag, descWM, descTasks, descDocs, descRejected, descExtract, descExtErr} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := stream.TimeOf(time.Now())
	for _, s := range m.stages {
		st := s.stage.Stats()
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), s.name)
		}
		counter(descIn, st.Records)
		counter(descOut, st.Emitted)
		counter(descLate, st.Late)
		counter(descDup, st.Duplicates)
		counter(descInvalid, st.Rejected)
		counter(descDead, st.DeadLettered)
		counter(descCommits, st.Commits)
		counter(descAborts, st.Aborts)
		counter(descReplayed, st.Replayed)
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(st.Lag), s.name)
		ch <- prometheus.MustNewConstMetric(descTasks, prometheus.GaugeValue, float64(st.Tasks), s.name)
		if st.Watermark != stream.MinTime {
			ch <- prometheus.MustNewConstMetric(descWM, prometheus.GaugeValue, float64(now-st.Watermark)/1000, s.name)
		}
	}
	if m.loader != nil {
		st := m.loader.Stats()
		ch <- prometheus.MustNewConstMetric(descDocs, prometheus.CounterValue, float64(st.Written))
		ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(st.Rejected))
	}
	if e := m.extract; e != nil {
		name, records, errs := e.snapshot()
		ch <- prometheus.MustNewConstMetric(descExtract, prometheus.CounterValue, float64(records), name)
		for kind, n := range errs {
			ch <- prometheus.MustNewConstMetric(descExtErr, prometheus.CounterValue, float64(n), name, kind)
		}
	}
}

// serve serves /metrics on addr until ctx is done; it returns the address
// it listens on once it does.
func (m *metrics) serve(ctx context.Context, addr string, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("metrics: %w", err)
	}
	warnExposed(log, "metrics", ln.Addr())
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "error", err)
		}
	}()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	return ln.Addr().String(), nil
}
