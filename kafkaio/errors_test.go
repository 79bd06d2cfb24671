package kafkaio

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/tidemark-go/tidemark/stream"
)

// TestErrInvalidOptionMatchesStream: the package's invalid-option errors
// match its own sentinel and stream's, and keep the package's prefix.
func TestErrInvalidOptionMatchesStream(t *testing.T) {
	assert.ErrorIs(t, ErrInvalidOption, stream.ErrInvalidOption, "the sentinel itself")
	assert.NotErrorIs(t, stream.ErrInvalidOption, ErrInvalidOption, "not the other way round")
	assert.NotErrorIs(t, ErrInvalidConfig, stream.ErrInvalidOption, "another sentinel does not match")

	_, err := NewConfig(WithClientID(""))
	assert.ErrorIs(t, err, ErrInvalidOption, "NewConfig")
	assert.ErrorIs(t, err, stream.ErrInvalidOption, "NewConfig, as stream's")
	_, err = NewSink[int](nil, nil, WithTopic("t"))
	assert.ErrorIs(t, err, ErrInvalidOption, "NewSink")
	assert.ErrorIs(t, err, stream.ErrInvalidOption, "NewSink, as stream's")
	assert.EqualError(t, err, "kafkaio: invalid option: nil codec", "the message is the package's")
}
