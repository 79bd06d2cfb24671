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

	"github.com/tidemark-go/tidemark/plugin/tmprom"
)

// metrics are the Prometheus metrics of this process: the library's
// statistics of its stages, the extract side's Kafka sink and the load
// stage's MongoDB sink through tmprom (read from their Stats when scraped,
// so that nothing is counted twice and the hot path pays nothing, and the
// processing latency histogram the stages feed through
// kafkaio.WithLatency), and the extract side's own counters, which are the
// lab's (extractCollector).
type metrics struct {
	reg *prometheus.Registry
	lib *tmprom.Collector
	ext *extractCollector
}

func newMetrics() (*metrics, error) {
	lib, err := tmprom.New()
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	m := &metrics{reg: prometheus.NewRegistry(), lib: lib, ext: &extractCollector{}}
	for _, c := range []prometheus.Collector{lib, m.ext, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return m, nil
}

// extractCollector exports the counters of the extract side's source: the
// records it produced and its failed polls by kind.
type extractCollector struct {
	mu    sync.Mutex
	stats *extractStats
}

var (
	descExtract = prometheus.NewDesc("tidemark_extract_records_total", "btc-price records produced.", []string{"source"}, nil)
	descExtErr  = prometheus.NewDesc("tidemark_extract_errors_total", "Failed polls of the source, by kind.", []string{"source", "kind"}, nil)
)

func (e *extractCollector) set(s *extractStats) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats = s
}

// Describe implements prometheus.Collector.
func (e *extractCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descExtract
	ch <- descExtErr
}

// Collect implements prometheus.Collector.
func (e *extractCollector) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	s := e.stats
	e.mu.Unlock()
	if s == nil {
		return
	}
	name, records, errs := s.snapshot()
	ch <- prometheus.MustNewConstMetric(descExtract, prometheus.CounterValue, float64(records), name)
	for kind, n := range errs {
		ch <- prometheus.MustNewConstMetric(descExtErr, prometheus.CounterValue, float64(n), name, kind)
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
