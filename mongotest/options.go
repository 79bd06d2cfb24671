package mongotest

import (
	"fmt"
	"log/slog"
	"strings"
)

// Option configures a [Server]. Options are checked by [NewServer], which
// returns an error wrapping [ErrInvalidOption] for a bad one.
type Option interface {
	apply(*config)
}

type config struct {
	port    int
	dataDir string
	logger  *slog.Logger
	pragmas []string
	pgURL   *string // nil: SQLite
}

type option func(*config)

func (o option) apply(c *config) { o(c) }

// WithPort fixes the TCP port the server listens on, on 127.0.0.1. Default
// 0: a free port chosen at the first start. Either way the port is kept by
// [Server.Start] and [Server.Restart], so that clients find the server
// again at the same URI.
func WithPort(port int) Option {
	return option(func(c *config) { c.port = port })
}

// WithDataDir keeps the SQLite files in dir, created if needed, which
// [Server.Close] leaves in place: a server started later on the same dir
// finds the databases again. Default: a fresh temporary directory that
// Close removes ([New] uses the test's [testing.TB.TempDir]). The data
// survives [Server.Stop] either way.
func WithDataDir(dir string) Option {
	return option(func(c *config) { c.dataDir = dir })
}

// WithLogger receives FerretDB's log lines. Default nil: they are
// discarded, because FerretDB logs every command it does not implement
// (endSessions, which every driver sends when it disconnects, for one) at
// WARN, and every connection at INFO; a logger at ERROR is usually what
// one wants here.
func WithLogger(l *slog.Logger) Option {
	return option(func(c *config) { c.logger = l })
}

// WithSQLitePragmas adds SQLite pragmas, such as "synchronous(normal)", to
// the ones FerretDB sets on every connection to its SQLite files
// (busy_timeout(10000), journal_mode(wal) and auto_vacuum(none), unless
// overridden here); see https://www.sqlite.org/pragma.html.
//
// FerretDB leaves SQLite's synchronous at FULL: every commit is synced to
// disk. "synchronous(normal)" syncs only at WAL checkpoints: a commit can
// then be lost to a power failure or an operating system crash (never to a
// crash of the process). It makes one-document transactions (upserts)
// about 1.4 to 1.7 times as fast, and mongoio's inserts, a hundred
// documents per transaction, about 1.15 times.
func WithSQLitePragmas(pragmas ...string) Option {
	return option(func(c *config) { c.pragmas = append(c.pragmas, pragmas...) })
}

// WithPostgreSQL runs FerretDB with its PostgreSQL backend on the server at
// url, a PostgreSQL connection string such as
// postgres://user@127.0.0.1:5432/tidemark (see
// https://pkg.go.dev/github.com/jackc/pgx/v5/pgconn#ParseConfig; FerretDB
// adds pool_max_conns=50 unless the URL sets it), instead of SQLite files.
// [NewServer] then checks that FerretDB reaches PostgreSQL.
//
// FerretDB keeps each MongoDB database as a PostgreSQL schema of url's
// database, with one table per collection; the database needs the UTF8
// encoding and the C or en_US.UTF8 locale. Servers that share a PostgreSQL
// database must not share MongoDB database names: each FerretDB caches the
// collections it knows of. Unlike SQLite, PostgreSQL runs concurrent
// transactions at once, so concurrent bulk writes help.
func WithPostgreSQL(url string) Option {
	return option(func(c *config) { c.pgURL = &url })
}

func (c *config) validate() error {
	if c.port < 0 || c.port > 65535 {
		return fmt.Errorf("%w: WithPort %d out of range", ErrInvalidOption, c.port)
	}
	for _, p := range c.pragmas {
		if p == "" || strings.ContainsAny(p, "&#") {
			return fmt.Errorf("%w: WithSQLitePragmas: invalid pragma %q", ErrInvalidOption, p)
		}
	}
	if c.pgURL != nil && *c.pgURL == "" {
		return fmt.Errorf("%w: WithPostgreSQL with an empty URL", ErrInvalidOption)
	}
	if c.pgURL != nil && len(c.pragmas) > 0 {
		return fmt.Errorf("%w: WithSQLitePragmas for the PostgreSQL backend", ErrInvalidOption)
	}
	if c.pgURL != nil && c.dataDir != "" {
		return fmt.Errorf("%w: WithDataDir for the PostgreSQL backend, which keeps its data in PostgreSQL", ErrInvalidOption)
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
