package replay

import (
	"errors"
	"fmt"

	"github.com/tidemark-go/tidemark/stream"
)

// Errors callers can test for with errors.Is.
var (
	// ErrInvalidOption is wrapped by the errors NewLines and NewReader
	// return for an invalid option or argument. It matches
	// stream.ErrInvalidOption with errors.Is.
	ErrInvalidOption error = invalidOption("replay: invalid option")
	// ErrLineTooLong is wrapped (in a *LineError) by Poll at a line longer
	// than WithMaxLineBytes allows.
	ErrLineTooLong = errors.New("replay: line too long")
	// ErrClosed is returned by Poll after Close.
	ErrClosed = errors.New("replay: closed")
)

// invalidOption is the type of ErrInvalidOption: its own message, and
// stream.ErrInvalidOption beneath it.
type invalidOption string

func (e invalidOption) Error() string { return string(e) }
func (invalidOption) Unwrap() error   { return stream.ErrInvalidOption }

// LineError ends a replay at a line: one longer than the limit
// (ErrLineTooLong), one the decode function refused when no WithInvalidLines
// handler takes it (the decode function's error), or a read error (the
// reader's error; the line it cut short is not replayed).
type LineError struct {
	Name string // the file, or the name given to NewReader
	Line uint64 // 1-based line number
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("replay: %s: line %d: %v", e.Name, e.Line, e.Err)
}

// Unwrap returns the reason.
func (e *LineError) Unwrap() error { return e.Err }
