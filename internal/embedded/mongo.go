package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// ErrStopped is returned by [Mongo.Stop] when the server is not running.
var ErrStopped = errors.New("embedded: mongo: not running")

// Mongo is an embedded FerretDB server with its SQLite backend, or its
// PostgreSQL backend with [MongoPostgres]. Clients connect to 127.0.0.1
// with [Mongo.URI]. Its methods are safe for concurrent use.
//
// FerretDB itself listens on a private loopback port; Mongo relays the
// public port to it, so that [Mongo.Stop] can drop every client connection
// at once, as a crashed server would, instead of FerretDB's graceful drain
// that keeps open connections served for up to 3 s.
type Mongo struct {
	dir     string
	tempDir bool // dir was created by NewMongo and is removed by Close
	logger  *slog.Logger
	pragmas []string // extra SQLite pragmas
	pgURL   string   // PostgreSQL backend instead of SQLite when set

	mu     sync.Mutex
	addr   string // public host:port, fixed by the first start
	run    *mongoRun
	closed bool
}

// mongoRun is one running instance: a FerretDB server and the relay in
// front of it.
type mongoRun struct {
	ln       net.Listener
	backend  string             // FerretDB's private host:port
	cancel   context.CancelFunc // stops FerretDB
	ferretDB chan struct{}      // closed when FerretDB has returned
	relays   sync.WaitGroup     // the accept loop and every relayed connection

	mu    sync.Mutex
	conns map[net.Conn]struct{} // open connections, client and backend sides
	done  bool
}

// MongoOption configures [NewMongo].
type MongoOption interface {
	applyMongo(*mongoConfig)
}

type mongoConfig struct {
	port    int
	logger  *slog.Logger
	pragmas []string
	pgURL   *string // nil: SQLite
}

type mongoOption func(*mongoConfig)

func (o mongoOption) applyMongo(c *mongoConfig) { o(c) }

// MongoPort fixes the TCP port. Default 0: a random free port, chosen at the
// first start and kept by later restarts.
func MongoPort(port int) MongoOption {
	return mongoOption(func(c *mongoConfig) { c.port = port })
}

// MongoLogger receives FerretDB's log lines; nil, the default, discards
// them. FerretDB logs every command it does not implement (endSessions, for
// one) at WARN and every connection at INFO, so a logger at WARN or above is
// usually what one wants here.
func MongoLogger(l *slog.Logger) MongoOption {
	return mongoOption(func(c *mongoConfig) { c.logger = l })
}

// MongoSQLitePragmas adds SQLite pragmas, such as "synchronous(normal)",
// to the ones FerretDB sets on every connection to its SQLite files
// (busy_timeout(10000), journal_mode(wal) and auto_vacuum(none), unless
// overridden here). See https://www.sqlite.org/pragma.html.
//
// FerretDB leaves SQLite's synchronous at FULL: every commit is synced to
// disk. "synchronous(normal)" syncs only at WAL checkpoints: a commit can
// then be lost to a power failure or an operating system crash (never to
// a crash of the process), which a loader that commits its input offsets
// after each flush would not replay. It makes one-document transactions
// (upserts) about 1.4 to 1.7 times as fast, but mongoio's inserts, a
// hundred documents per transaction, only about 1.15 times (see the
// documentation of package mongoio).
func MongoSQLitePragmas(pragmas ...string) MongoOption {
	return mongoOption(func(c *mongoConfig) { c.pragmas = append(c.pragmas, pragmas...) })
}

// ferretNewMu serializes ferretdb.New, which writes a package-level variable
// (version.Get().Package) without synchronization.
var ferretNewMu sync.Mutex

// NewMongo starts a server that keeps its SQLite files in dir, creating the
// directory if needed. An empty dir means a fresh temporary directory that
// Close removes. With [MongoPostgres] the data goes to PostgreSQL instead
// and dir stays empty. The server listens before NewMongo returns (and,
// with PostgreSQL, has reached it). Call [Mongo.Close] to stop it.
func NewMongo(dir string, opts ...MongoOption) (*Mongo, error) {
	cfg := mongoConfig{}
	for _, o := range opts {
		o.applyMongo(&cfg)
	}
	if cfg.port < 0 || cfg.port > 65535 {
		return nil, fmt.Errorf("embedded: mongo: port %d out of range", cfg.port)
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	for _, p := range cfg.pragmas {
		if p == "" || strings.ContainsAny(p, "&#") {
			return nil, fmt.Errorf("embedded: mongo: invalid SQLite pragma %q", p)
		}
	}
	if cfg.pgURL != nil && *cfg.pgURL == "" {
		return nil, errors.New("embedded: mongo: empty PostgreSQL URL")
	}
	if cfg.pgURL != nil && len(cfg.pragmas) > 0 {
		return nil, errors.New("embedded: mongo: SQLite pragmas given for the PostgreSQL backend")
	}

	m := &Mongo{
		logger:  cfg.logger,
		addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.port)),
		pragmas: cfg.pragmas,
	}
	if cfg.pgURL != nil {
		m.pgURL = *cfg.pgURL
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "tidemark-mongo-")
		if err != nil {
			return nil, fmt.Errorf("embedded: mongo: %w", err)
		}
		dir, m.tempDir = d, true
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded: mongo: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("embedded: mongo: %w", err)
	}
	m.dir = abs

	if err := m.Start(); err != nil {
		if m.tempDir {
			_ = os.RemoveAll(m.dir)
		}
		return nil, err
	}
	return m, nil
}

// URI returns the server's connection string, mongodb://127.0.0.1:PORT/.
// It does not change across [Mongo.Stop] and [Mongo.Start].
func (m *Mongo) URI() string {
	return (&url.URL{Scheme: "mongodb", Host: m.Addr(), Path: "/"}).String()
}

// Addr returns the server's host:port.
func (m *Mongo) Addr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addr
}

// Dir returns the absolute path of the SQLite data directory (unused with
// [MongoPostgres]).
func (m *Mongo) Dir() string { return m.dir }

// Start starts a stopped server again on the same port and data directory;
// it is a no-op when the server is running. It waits up to 5 s for the port
// to become free.
func (m *Mongo) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("embedded: mongo: closed")
	}
	if m.run != nil {
		return nil
	}

	ln, err := listenRetry(m.addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("embedded: mongo: %w", err)
	}

	cfg := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:   m.logger,
	}
	where := m.dir
	if m.pgURL != "" {
		cfg.Handler, cfg.PostgreSQLURL = "postgresql", m.pgURL
		where = "PostgreSQL " + redactURL(m.pgURL)
	} else {
		cfg.Handler, cfg.SQLiteURL = "sqlite", sqliteURL(m.dir, m.pragmas)
	}
	ferretNewMu.Lock()
	f, err := ferretdb.New(cfg)
	ferretNewMu.Unlock()
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("embedded: mongo: start FerretDB on %s: %w", where, err)
	}
	// FerretDB's listener is bound by New, so MongoDBURI does not block.
	backend, err := url.Parse(f.MongoDBURI())
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("embedded: mongo: FerretDB URI: %w", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	r := &mongoRun{
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

	if m.pgURL != "" {
		// FerretDB connects to PostgreSQL at the first command: make sure
		// it can, rather than fail every command later.
		if err := pingPostgres(r.backend, 10*time.Second); err != nil {
			r.stop()
			return fmt.Errorf("embedded: mongo: FerretDB on %s: %w", where, err)
		}
	}

	m.addr = ln.Addr().String()
	m.run = r
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

// Stop stops the server as if it crashed: it closes the port and every
// client connection at once, then shuts FerretDB down and waits until its
// SQLite files are closed. The data stays in the directory for a later
// [Mongo.Start]. Stop returns [ErrStopped] when the server is not running.
func (m *Mongo) Stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.run == nil {
		return ErrStopped
	}
	m.run.stop()
	m.run = nil
	return nil
}

// Close stops the server if it is running and, when NewMongo created the
// data directory, removes it. Close is idempotent.
func (m *Mongo) Close() error {
	_ = m.Stop() // ErrStopped is fine
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	if m.tempDir {
		if err := os.RemoveAll(m.dir); err != nil {
			return fmt.Errorf("embedded: mongo: %w", err)
		}
	}
	return nil
}

// accept relays every client connection to FerretDB until the listener is
// closed.
func (r *mongoRun) accept() {
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
func (r *mongoRun) track(a, b net.Conn) bool {
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
func (r *mongoRun) pipe(dst, src net.Conn) {
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
func (r *mongoRun) stop() {
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
