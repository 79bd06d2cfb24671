package millis

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/tidemark-go/tidemark/stream"
)

func TestPositive(t *testing.T) {
	for _, d := range []time.Duration{time.Millisecond, 1500 * time.Millisecond, time.Hour, 292 * 365 * 24 * time.Hour} {
		ms, err := Positive(d)
		assert.NoErrorf(t, err, "%v is valid", d)
		assert.Equalf(t, stream.Time(d/time.Millisecond), ms, "%v in milliseconds", d)
	}
	for _, d := range []time.Duration{0, -time.Millisecond, -time.Hour, time.Microsecond, time.Millisecond / 2, 1500 * time.Microsecond, time.Second + 1} {
		ms, err := Positive(d)
		assert.EqualErrorf(t, err, d.String()+" is not a positive whole number of milliseconds", "%v is invalid", d)
		assert.Zerof(t, ms, "no milliseconds for %v", d)
	}
}
