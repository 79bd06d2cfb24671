package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/dashboard"
)

// startDashboard serves the dashboard on --ui-addr, fed by a follower of the
// topics on brokers, unless --ui-addr is off (url is then empty); stats,
// when not nil, gives the stage counters it shows. The returned stop ends
// the follower, the browser streams and the server, in that order.
func (o *options) startDashboard(brokers []string, stats func() []dashboard.StageStat, opt dashboard.Options) (url string, stop func(), err error) {
	if o.uiAddr == "" || o.uiAddr == "off" {
		return "", func() {}, nil
	}
	cfg, err := o.saramaConfig()
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", o.uiAddr)
	if err != nil {
		return "", nil, fmt.Errorf("dashboard: %w", err)
	}
	hub := dashboard.NewHub(o.cfg, opt)
	if stats != nil {
		hub.SetStats(stats)
	}
	// No WriteTimeout: the event streams are long-lived, and the hub sets a
	// deadline on each of its writes.
	srv := &http.Server{Handler: dashboard.Handler(hub), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.log.Error("dashboard: server failed", "error", err)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		if err := dashboard.Follow(ctx, hub, brokers, cfg); err != nil && ctx.Err() == nil {
			o.log.Warn("dashboard: cannot follow the topics", "error", err)
		}
	}()
	url = "http://" + ln.Addr().String() + "/"
	o.log.Info("dashboard at " + url)
	warnExposed(o.log, "dashboard", ln.Addr())
	var once sync.Once
	return url, func() {
		once.Do(func() {
			cancel()
			<-followed
			hub.Close() // before Shutdown, which waits for the streams to end
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
			<-served
		})
	}, nil
}

// warnExposed warns when a server without authentication listens beyond
// this machine (--ui-addr or --metrics-addr not on loopback).
func warnExposed(log *slog.Logger, what string, addr net.Addr) {
	if a, ok := addr.(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		log.Warn(what + " listens on " + a.String() + ", beyond this machine, without authentication: anyone who reaches it can read it")
	}
}

// ui serves the dashboard alone, reading the topics, until ctx is done.
func (o *options) ui(ctx context.Context) error {
	if o.uiAddr == "off" {
		return usageError{errors.New("--ui-addr off: the ui command serves nothing else")}
	}
	s := o.connect()
	_, stop, err := o.startDashboard(s.brokers, nil, dashboard.Options{FollowRate: -1})
	if err != nil {
		return err
	}
	<-ctx.Done()
	stop()
	o.log.Info("btc-pipeline ui: stopped")
	return nil
}

// report writes the dashboard's charts of an offline run into o.report.
func (o *options) writeReport() error {
	// With --in -, the input is gone: the report draws the price line from
	// the z-score records.
	var prices io.Reader
	if o.in != "-" {
		f, err := os.Open(o.in)
		if err != nil {
			return err
		}
		defer f.Close()
		prices = f
	}
	rep, err := dashboard.ReportFromDir(o.out, prices, o.cfg)
	if err != nil {
		return err
	}
	return dashboard.WriteReportFile(o.report, rep)
}
