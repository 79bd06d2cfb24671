package tmprom

import (
	"errors"

	"github.com/tidemark-go/tidemark/stream"
)

// Errors callers can test for with errors.Is.
var (
	// ErrInvalidOption is wrapped by the errors of [New] for an invalid
	// option, and of the Add methods for an invalid name or a nil source.
	// It matches [stream.ErrInvalidOption] with errors.Is, as kafkaio's and
	// mongoio's do.
	ErrInvalidOption error = invalidOption("tmprom: invalid option")
	// ErrDuplicateName is wrapped by the error of an Add method when a
	// source of the same kind is registered under that name already: two
	// would export the same series.
	ErrDuplicateName = errors.New("tmprom: name registered already")
)

// invalidOption is the type of ErrInvalidOption: its own message, and
// stream.ErrInvalidOption beneath it.
type invalidOption string

func (e invalidOption) Error() string { return string(e) }
func (invalidOption) Unwrap() error   { return stream.ErrInvalidOption }
