package btc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btctest"
)

// TestOfflineFromTheFuture: one event dated 2099 among 2,000 valid ones is
// refused (dead-lettered with its reason) and never moves the watermark:
// every output equals offline's over the trace without it, byte for byte.
// Without the bound, every later event of its partition is late.
func TestOfflineFromTheFuture(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 99))
	cfg := DefaultConfig()
	cfg.Partitions = 3
	lines := btctest.Trace(r, 2000, 10_000, []string{`not json`})
	// In the first half, so that at least a thousand lines follow it.
	at := 100 + r.IntN(len(lines)/2-100)
	future := `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2099-01-01T00:00:00.000Z"}`
	with := slices.Insert(slices.Clone(lines), at, future)

	run := func(name string, lines []string, cfg Config) (string, Summary) {
		dir := filepath.Join(t.TempDir(), name)
		sum, err := Offline(context.Background(), strings.NewReader(strings.Join(lines, "\n")+"\n"), dir, cfg, quiet)
		require.NoError(t, err, "offline %s", name)
		return dir, sum
	}
	without, sumWithout := run("without", lines, cfg)
	got, sumWith := run("with", with, cfg)
	for k := range numKinds {
		w, g := readLines(t, filepath.Join(without, k.FileName())), readLines(t, filepath.Join(got, k.FileName()))
		require.Equal(t, len(w), len(g), "%s: records", k.Topic())
		for i := range w {
			require.Equal(t, w[i], g[i], "%s: record %d", k.Topic(), i)
		}
	}
	deadWithout, dead := readLines(t, filepath.Join(without, DeadLetterFile)), readLines(t, filepath.Join(got, DeadLetterFile))
	var extra []string
	for _, d := range dead {
		if !strings.Contains(d, `"not json"`) {
			extra = append(extra, d)
		}
	}
	require.Len(t, extra, 1, "one more dead letter than the invalid lines'")
	require.Len(t, dead, len(deadWithout)+1, "one more dead letter than without it")
	assert.Contains(t, extra[0], `"reason":"event time too far ahead: event time 2099-01-01T00:00:00.000Z is more than 1h0m0s ahead of the largest event time of its partition"`, "reason")
	assert.Contains(t, extra[0], fmt.Sprintf(`"line":%d`, at+1), "its line")
	assert.Equal(t, sumWithout.Accepted, sumWith.Accepted, "the same events accepted")
	assert.Equal(t, sumWithout.Late, sumWith.Late, "no event late because of it")
	assert.Equal(t, uint64(1), sumWith.Ahead, "counted")

	cfg.MaxAhead = 0
	unbounded, sum := run("unbounded", with, cfg)
	assert.Greater(t, sum.Late, sumWithout.Late+100, "without the bound the events after it are late")
	moving, err := os.ReadFile(filepath.Join(unbounded, Moving.FileName()))
	require.NoError(t, err, "read")
	assert.Contains(t, string(moving), "2099-01-01", "and the 2099 event is taken")
}
