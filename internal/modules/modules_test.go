package modules

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPrefixWriter(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	w := &prefixWriter{w: &b, prefix: "m: "}
	for _, chunk := range []string{"=== RUN", "   TestX\n--- PASS: TestX", " (0.00s)\nok\n", "\n"} {
		n, err := w.Write([]byte(chunk))
		require.NoError(t, err, "write %q", chunk)
		assert.Equal(t, len(chunk), n, "the whole chunk counts as written")
	}
	assert.Equal(t, "m: === RUN   TestX\nm: --- PASS: TestX (0.00s)\nm: ok\nm: \n", b.String(),
		"every line prefixed once, whatever the chunks")
}

func TestFailLines(t *testing.T) {
	t.Parallel()
	var f failLines
	assert.Equal(t, "(none reported: see the output)", f.String(), "nothing yet")
	_, _ = f.Write([]byte("=== RUN TestA\n--- FAIL: Te"))
	_, _ = f.Write([]byte("stA (0.1s)\n    --- FAIL: TestA/sub (0.0s)\nok  \tx\t1s\nFAIL\tpkg\t2s\npanic: boom\n"))
	assert.Equal(t, "--- FAIL: TestA (0.1s)\n    --- FAIL: TestA/sub (0.0s)\nFAIL\tpkg\t2s\npanic: boom", f.String(),
		"the failure lines, split across writes too")
}

func TestIgnoreRules(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".gitignore"),
		[]byte("# comment\n/btc-pipeline\n*.test\nbtc-pipeline-data/\n.ci/artifacts/\n!keep\n"), 0o644), "write .gitignore")
	rules, err := readIgnore(dir)
	require.NoError(t, err, "readIgnore")
	for _, tt := range []struct {
		path string
		dir  bool
		want bool
	}{
		{"btc-pipeline", false, true},
		{"examples/btc-pipeline", true, false}, // anchored to the root
		{"kafkaio/kafkaio.test", false, true},
		{"examples/btc-pipeline/btc-pipeline-data", true, true},
		{"btc-pipeline-data", false, false}, // directories only
		{".ci/artifacts", true, true},
		{".ci/run", false, false},
		{"keep", false, false},
	} {
		assert.Equal(t, tt.want, ignored(rules, tt.path, tt.dir), "%s (dir %v)", tt.path, tt.dir)
	}
	rules, err = readIgnore(t.TempDir())
	require.NoError(t, err, "no .gitignore")
	assert.Empty(t, rules, "ignores nothing")
}

// TestTrackRepository walks the repository as Test does: it finds the
// modules' files and skips .git.
func TestTrackRepository(t *testing.T) {
	t.Parallel()
	root, err := Root()
	require.NoError(t, err, "Root")
	ignore, err := readIgnore(root)
	require.NoError(t, err, "readIgnore")
	seen := map[string]bool{}
	require.NoError(t, walk(root, ignore, func(rel string, _ os.DirEntry) error {
		seen[rel] = true
		return nil
	}), "walk")
	for _, f := range []string{"go.mod", "go.work", "mongotest/go.mod", "examples/go.mod", "plugin/tmprom/go.mod", "internal/modules/modules.go"} {
		assert.True(t, seen[f], "%s is tracked", f)
	}
	for f := range seen {
		assert.NotContains(t, "/"+f, "/.git/", "nothing of .git")
	}
	require.NoError(t, track(root), "track")
}
