package mongoio_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/tidemark-go/tidemark/mongoio"
	"github.com/tidemark-go/tidemark/stream"
)

// TestErrInvalidOptionMatchesStream: the package's invalid-option errors
// match its own sentinel and stream's, and keep the package's prefix.
func TestErrInvalidOptionMatchesStream(t *testing.T) {
	t.Parallel()
	assert.ErrorIs(t, mongoio.ErrInvalidOption, stream.ErrInvalidOption, "the sentinel itself")
	assert.NotErrorIs(t, stream.ErrInvalidOption, mongoio.ErrInvalidOption, "not the other way round")
	assert.NotErrorIs(t, mongoio.ErrInvalidRecord, stream.ErrInvalidOption, "another sentinel does not match")

	_, err := mongoio.NewSink(nil, func(int) (mongoio.Route, error) { return mongoio.Route{}, nil })
	assert.ErrorIs(t, err, mongoio.ErrInvalidOption, "NewSink")
	assert.ErrorIs(t, err, stream.ErrInvalidOption, "NewSink, as stream's")
	assert.EqualError(t, err, "mongoio: invalid option: nil database", "the message is the package's")
}
