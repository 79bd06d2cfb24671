package mongotest

import (
	"context"
	"fmt"
	"io"

	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Server is an embedded FerretDB, a MongoDB wire-compatible server, with its
// SQLite backend (or PostgreSQL, [WithPostgreSQL]), listening on 127.0.0.1.
// Clients connect with [Server.URI]. Its methods are safe for concurrent
// use.
//
// FerretDB itself listens on a private loopback port; the server relays its
// public port to it, so that [Server.Stop] drops every client connection at
// once, as a crashed server would, rather than let FerretDB drain them for
// up to 3 s.
type Server struct {
	cfg     config
	dir     string
	tempDir bool // dir was created by NewServer and is removed by Close

	mu     sync.Mutex
	addr   string // public host:port, fixed by the first start
	run    *run
	closed bool
}

// run is one running instance: a FerretDB server and the relay in front of
// it.
type run struct {
	ln       net.Listener
	backend  string             // FerretDB's private host:port
	cancel   context.CancelFunc // stops FerretDB
	ferretDB chan struct{}      // closed when FerretDB has returned
	relays   sync.WaitGroup     // the accept loop and every relayed connection

	mu    sync.Mutex
	conns map[net.Conn]struct{} // open connections, client and backend sides
	done  bool
}

// ferretNewMu serializes ferretdb.New, which writes a package-level variable
// (version.Get().Package) without synchronization.
var ferretNewMu sync.Mutex

// NewServer starts a server. It listens before NewServer returns (and, with
// PostgreSQL, has reached it), so [Server.URI] can be handed to clients at
// once. Call [Server.Close] to stop it for good; tests use [New], which
// does.
func NewServer(opts ...Option) (*Server, error) {
	var cfg config
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidOption)
		}
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.port))}
	if cfg.pgURL == nil {
		dir := cfg.dataDir
		if dir == "" {
			d, err := os.MkdirTemp("", "mongotest-")
			if err != nil {
				return nil, fmt.Errorf("mongotest: %w", err)
			}
			dir, s.tempDir = d, true
		} else if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("mongotest: %w", err)
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("mongotest: %w", err)
		}
		s.dir = abs
	}
	if err := s.Start(); err != nil {
		if s.tempDir {
			_ = os.RemoveAll(s.dir)
		}
		return nil, err
	}
	return s, nil
}

// New starts a server for the test tb, as [NewServer] does, with its data
// in a directory of [testing.TB.TempDir] unless [WithDataDir] or
// [WithPostgreSQL] says otherwise, and closes it when the test ends
// ([testing.TB.Cleanup]). It fails the test when the server cannot start.
func New(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	var probe config
	for _, o := range opts {
		if o != nil {
			o.apply(&probe)
		}
	}
	if probe.dataDir == "" && probe.pgURL == nil {
		opts = append([]Option{WithDataDir(tb.TempDir())}, opts...)
	}
	s, err := NewServer(opts...)
	if err != nil {
		tb.Fatalf("mongotest: start a server: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("mongotest: close the server: %v", err)
		}
	})
	return s
}

// URI returns the server's connection string, mongodb://127.0.0.1:PORT/.
// It does not change across [Server.Stop] and [Server.Start].
func (s *Server) URI() string {
	return (&url.URL{Scheme: "mongodb", Host: s.Addr(), Path: "/"}).String()
}

// Addr returns the server's host:port.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Dir returns the absolute path of the directory of the SQLite files, or ""
// with [WithPostgreSQL].
func (s *Server) Dir() string { return s.dir }

// Start starts a stopped server again on the same port and data; clients
// reconnect on their own. It waits up to 5 s for the port to be free, does
// nothing when the server runs, and returns [ErrClosed] after
// [Server.Close].
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.run != nil:
		return nil
	}
	ln, err := listenRetry(s.addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("mongotest: %w", err)
	}
	cfg := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:   s.cfg.logger,
	}
	where := s.dir
	if s.cfg.pgURL != nil {
		cfg.Handler, cfg.PostgreSQLURL = "postgresql", *s.cfg.pgURL
		where = "PostgreSQL " + redactURL(*s.cfg.pgURL)
	} else {
		cfg.Handler, cfg.SQLiteURL = "sqlite", sqliteURL(s.dir, s.cfg.pragmas)
	}
	ferretNewMu.Lock()
	f, err := ferretdb.New(cfg)
	ferretNewMu.Unlock()
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("mongotest: start FerretDB on %s: %w", where, err)
	}
	// FerretDB's listener is bound by New, so MongoDBURI does not block.
	backend, err := url.Parse(f.MongoDBURI())
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("mongotest: FerretDB's URI: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{
		ln:       ln,
		backend:  backend.Host,
		cancel:   cancel,
		ferretDB: make(chan struct{}),
		conns:    make(map[net.Conn]struct{}),
	}
	go func() {
		defer close(r.ferretDB)
		_ = f.Run(ctx) // always nil
	}()
	r.relays.Add(1)
	go r.accept()
	if s.cfg.pgURL != nil {
		// FerretDB connects to PostgreSQL at the first command: make sure
		// it can, rather than fail every command later.
		if err := pingPostgres(r.backend, 10*time.Second); err != nil {
			r.stop()
			return fmt.Errorf("mongotest: FerretDB on %s: %w", where, err)
		}
	}
	s.addr = ln.Addr().String()
	s.run = r
	return nil
}

// sqliteURL returns FerretDB's SQLite URI for the directory dir.
func sqliteURL(dir string, pragmas []string) string {
	u := "file:" + filepath.ToSlash(dir) + "/"
	if len(pragmas) > 0 {
		q := url.Values{"_pragma": pragmas}
		u += "?" + q.Encode()
	}
	return u
}

// Stop stops the server as if it crashed, for outage tests: it closes the
// port and every client connection at once (a client's next operation gets
// a network error, and the driver clears its connection pool), then shuts
// FerretDB down and waits until its files are closed. The data stays for
// [Server.Start]. Stop returns [ErrStopped] when the server is not running
// and [ErrClosed] after [Server.Close].
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.run == nil:
		return ErrStopped
	}
	s.run.stop()
	s.run = nil
	return nil
}

// Restart stops the server, waits for down and starts it again: an outage
// of length down as clients see it. It returns ctx's error, with the server
// still stopped, when ctx is done before down has passed.
func (s *Server) Restart(ctx context.Context, down time.Duration) error {
	if err := s.Stop(); err != nil {
		return err
	}
	t := time.NewTimer(down)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("mongotest: restart: %w", ctx.Err())
	case <-t.C:
	}
	return s.Start()
}

// Close stops the server if it runs and, when NewServer created the data
// directory, removes it. Close is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.run != nil {
		s.run.stop()
		s.run = nil
	}
	if s.tempDir {
		if err := os.RemoveAll(s.dir); err != nil {
			return fmt.Errorf("mongotest: %w", err)
		}
	}
	return nil
}

// accept relays every client connection to FerretDB until the listener is
// closed.
func (r *run) accept() {
	defer r.relays.Done()
	for {
		client, err := r.ln.Accept()
		if err != nil {
			return // closed by stop
		}
		backend, err := net.Dial("tcp", r.backend)
		if err != nil {
			_ = client.Close()
			continue
		}
		if !r.track(client, backend) {
			return
		}
		r.relays.Add(2)
		go r.pipe(backend, client)
		go r.pipe(client, backend)
	}
}

// track registers a relayed pair; it closes both and reports false when the
// run is already stopping.
func (r *run) track(a, b net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		_, _ = a.Close(), b.Close()
		return false
	}
	r.conns[a], r.conns[b] = struct{}{}, struct{}{}
	return true
}

// pipe copies src to dst; when either side ends, it closes both, so the
// other direction ends too.
func (r *run) pipe(dst, src net.Conn) {
	defer r.relays.Done()
	_, _ = io.Copy(dst, src)
	_, _ = dst.Close(), src.Close()
	r.mu.Lock()
	delete(r.conns, dst)
	delete(r.conns, src)
	r.mu.Unlock()
}

// stop closes the listener and every connection, stops FerretDB and waits
// for all of it.
func (r *run) stop() {
	_ = r.ln.Close()
	r.mu.Lock()
	r.done = true
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.relays.Wait()
	r.cancel()
	<-r.ferretDB
}

// listenRetry listens on addr, retrying for up to timeout while the port is
// still held (by a server that is shutting down, say).
func listenRetry(addr string, timeout time.Duration) (net.Listener, error) {
	deadline := time.Now().Add(timeout)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
