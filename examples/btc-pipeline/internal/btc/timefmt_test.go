package btc

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/stream"
)

// TestTimeTextIsStreams: the lab's ParseTime and AppendTime are stream's.
func TestTimeTextIsStreams(t *testing.T) {
	for _, s := range []string{"2025-05-08T04:12:38.352Z", "2025-05-08t06:12:38.3529+02:00", "1969-12-31 23:59:59.9999Z"} {
		want, err := stream.ParseTime([]byte(s))
		require.NoError(t, err, "stream.ParseTime(%q)", s)
		got, err := ParseTime([]byte(s))
		require.NoError(t, err, "ParseTime(%q)", s)
		assert.Equal(t, want, got, "ParseTime(%q)", s)
		assert.Equal(t, string(stream.AppendTime([]byte("x"), want)), string(AppendTime([]byte("x"), got)), "AppendTime of %q", s)
	}
	_, err := ParseTime([]byte("2025-02-30T04:12:38Z"))
	assert.ErrorIs(t, err, stream.ErrInvalidTime, "an invalid time wraps stream.ErrInvalidTime")
}
