package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadOnlyMappings(t *testing.T) {
	maps := []byte(`00400000-015b9000 r-xp 00000000 fe:00 9986721                            /tmp/lab
015b9000-028f1000 r--p 011b9000 fe:00 9986721                            /tmp/lab
028f1000-029b9000 rw-p 024f1000 fe:00 9986721                            /tmp/lab
029b9000-04a18000 rw-p 00000000 00:00 0 
7f40f0de8000-7f40f0f3e000 r-xp 00028000 fe:00 1234                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f40f1000000-7f40f1001000 r--s 00000000 fe:00 9986721                    /tmp/lab
7f40f2000000-7f40f2001000 r--p 00000000 fe:00 9986721                    /tmp/lab-other
7f40f3000000-7f40f3001000 r--p 00000000 fe:00 9986721                    /tmp/lab (deleted)
`)
	got := readOnlyMappings(maps, "/tmp/lab")
	require.Equal(t, []mapping{{0x400000, 0x15b9000}, {0x15b9000, 0x28f1000}}, got)
	require.Empty(t, readOnlyMappings(maps, "/tmp/none"))
}

// residentKB sums the Rss of the read-only mappings of path in
// /proc/self/smaps.
func residentKB(t *testing.T, path string) (kb uint64) {
	t.Helper()
	smaps, err := os.ReadFile("/proc/self/smaps")
	require.NoError(t, err)
	in := false
	s := bufio.NewScanner(bytes.NewReader(smaps))
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) > 0 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			in = len(readOnlyMappings([]byte(s.Text()+"\n"), path)) == 1
			continue
		}
		if in && len(f) == 3 && f[0] == "Rss:" {
			n, err := strconv.ParseUint(f[1], 10, 64)
			require.NoError(t, err)
			kb += n
		}
	}
	return kb
}

func TestReleaseStartupPages(t *testing.T) {
	if traced() {
		t.Skip("a debugger is attached: releaseStartupPages leaves the pages alone (tested by its own branch)")
	}
	exe, err := os.Readlink("/proc/self/exe")
	require.NoError(t, err)
	maps, err := os.ReadFile("/proc/self/maps")
	require.NoError(t, err)
	var size uint64
	for _, m := range readOnlyMappings(maps, exe) {
		size += m.end - m.start
	}
	require.NotZero(t, size, "no read-only mapping of %s in /proc/self/maps", exe)

	before := residentKB(t, exe)
	released, err := releaseStartupPages()
	require.NoError(t, err)
	require.Equal(t, size, released)
	after := residentKB(t, exe)
	t.Logf("the test binary's read-only mappings: %d KiB of %d KiB resident before, %d KiB after", before, size>>10, after)
	require.Less(t, after, before/2, "the pages were not released")

	// The code runs on: what it touches is mapped again.
	b, err := json.Marshal(map[string][]int{"a": {1, 2}})
	require.NoError(t, err)
	require.Equal(t, `{"a":[1,2]}`, string(b))
}

// TestOfflineReleasesStartupPages: the offline command gives the start-up's
// pages back before it computes (its debug log says how many bytes), and
// its outputs are still written.
func TestOfflineReleasesStartupPages(t *testing.T) {
	if traced() {
		t.Skip("a debugger is attached: releaseStartupPages leaves the pages alone (tested by its own branch)")
	}
	out := t.TempDir()
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"offline", "--in", "testdata/btc-price.jsonl", "--out", out, "--log-level", "debug"},
		nil, io.Discard, &stderr)
	require.Equal(t, 0, code, "exit code; stderr: %s", stderr.String())
	m := regexp.MustCompile(`offline: start-up pages released.* bytes=(\d+)`).FindStringSubmatch(stderr.String())
	require.NotNil(t, m, "no debug line about the released pages; stderr: %s", stderr.String())
	n, err := strconv.ParseUint(m[1], 10, 64)
	require.NoError(t, err)
	require.Greater(t, n, uint64(1<<20), "bytes released")
	require.FileExists(t, out+"/btc-price-zscore.jsonl")
}
