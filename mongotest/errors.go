package mongotest

import (
	"errors"

	"github.com/tidemark-go/tidemark/stream"
)

// Errors that callers branch on. Every error the package returns starts
// with "mongotest: " and wraps at most one of these, plus FerretDB's or the
// system's error where there is one.
var (
	// ErrInvalidOption is wrapped by the error of [NewServer] for an invalid
	// option. It matches [stream.ErrInvalidOption] with [errors.Is], as the
	// library's own do.
	ErrInvalidOption error = invalidOption("mongotest: invalid option")

	// ErrStopped is returned by [Server.Stop] when the server is not
	// running.
	ErrStopped = errors.New("mongotest: not running")

	// ErrClosed is returned by [Server.Start], [Server.Stop] and
	// [Server.Restart] after [Server.Close].
	ErrClosed = errors.New("mongotest: closed")
)

// invalidOption is the type of [ErrInvalidOption]: its own message, and
// [stream.ErrInvalidOption] beneath it.
type invalidOption string

func (e invalidOption) Error() string { return string(e) }
func (invalidOption) Unwrap() error   { return stream.ErrInvalidOption }
