package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repoRoot returns the repository's root, two directories up.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err, "the repository's root")
	return root
}

// gitOutput runs git in dir, skipping the test when git or the repository
// is not there.
func gitOutput(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git: run this test in a clone")
	}
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("git %s: %v: run this test in a clone", strings.Join(args, " "), err)
	}
	return out
}

// scratchCopy copies the library's module (the files git knows or would
// add, without the nested modules) into a new directory, for
// scripts/api/check.sh to run in.
func scratchCopy(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	dst := t.TempDir()
	out := gitOutput(t, root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	n := 0
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if strings.HasPrefix(f, "examples/") || strings.HasPrefix(f, "mongotest/") || strings.HasPrefix(f, "plugin/") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, f))
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		require.NoError(t, err, "read %s", f)
		p := filepath.Join(dst, filepath.FromSlash(f))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755), "mkdir for %s", f)
		require.NoError(t, os.WriteFile(p, b, 0o644), "write %s", f)
		n++
	}
	require.Positive(t, n, "files copied")
	return dst
}

// runCheck runs scripts/api/check.sh in dir and returns its exit code,
// stdout and stderr.
func runCheck(t *testing.T, dir string) (int, string, string) {
	t.Helper()
	cmd := exec.Command("bash", "scripts/api/check.sh")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else {
		require.NoError(t, err, "run check.sh")
	}
	return code, stdout.String(), stderr.String()
}

// editFile replaces old by new in the file at path, once.
func editFile(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err, "read %s", path)
	require.Contains(t, string(b), old, "%s has %q", path, old)
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644), "write %s", path)
}

// TestCheckScript runs scripts/api/check.sh in copies of the library's
// module: it passes as the repository is, fails when an incompatible
// change is not announced under Unreleased / Breaking in CHANGELOG.md and
// names it, and fails without a release's API to compare with.
func TestCheckScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds copies of the library's module")
	}
	t.Parallel()
	dir := scratchCopy(t)
	code, stdout, stderr := runCheck(t, dir)
	t.Logf("check.sh as the repository is:\n%s%s", stdout, stderr)
	require.Equal(t, 0, code, "check.sh passes as the repository is; stderr:\n%s", stderr)
	assert.Contains(t, stdout, "api: changes since v", "it lists the changes")

	// A release whose API has a feature the working tree lacks: an
	// incompatible change, announced or not.
	release, err := moduleAPI(dir)
	require.NoError(t, err, "the working tree's API")
	gone := "pkg stream, func Gone() int"
	body := "# a release for the test\n" + strings.Join(append(release, gone), "\n") + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "api", "v99.0.0.txt"), []byte(body), 0o644), "write api/v99.0.0.txt")
	// Announced: a Breaking heading under Unreleased (added unless the
	// repository's CHANGELOG.md has one already).
	changes, err := os.ReadFile(filepath.Join(dir, "CHANGELOG.md"))
	require.NoError(t, err, "read CHANGELOG.md")
	if unreleased, _, _ := strings.Cut(strings.SplitN(string(changes), "\n## Unreleased\n", 2)[1], "\n## "); !strings.Contains(unreleased, "\n### Breaking\n") {
		editFile(t, filepath.Join(dir, "CHANGELOG.md"), "\n## Unreleased\n", "\n## Unreleased\n\n### Breaking\n\n- `stream.Gone` is gone.\n")
	}
	code, stdout, stderr = runCheck(t, dir)
	require.Equal(t, 0, code, "announced under Breaking; stderr:\n%s", stderr)
	assert.Contains(t, stdout, "api: changes since v99.0.0 (api/v99.0.0.txt; - removed or changed, + added):\n  - "+gone+"\n",
		"the newest release's file is the one compared with, and the change is listed")
	assert.Contains(t, stdout, "api: 1 features of v99.0.0 removed or changed, announced under Unreleased / Breaking in CHANGELOG.md",
		"announced")

	editFile(t, filepath.Join(dir, "CHANGELOG.md"), "\n### Breaking\n", "\n### Incompatible, but not said so\n")
	code, stdout, stderr = runCheck(t, dir)
	t.Logf("check.sh without the Breaking heading:\n%s%s", stdout, stderr)
	assert.Equal(t, 1, code, "check.sh fails when the incompatible change is not announced")
	assert.Contains(t, stderr, "which CHANGELOG.md does not announce", "it says why")
	assert.Contains(t, stderr, "\n  "+gone+"\n", "it names the change")

	// A Breaking heading in an older section announces nothing.
	changelog, err := os.ReadFile(filepath.Join(dir, "CHANGELOG.md"))
	require.NoError(t, err, "read CHANGELOG.md")
	changelog = append(changelog, "\n## v0.0.1\n\n### Breaking\n\n- Everything.\n"...)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "CHANGELOG.md"), changelog, 0o644), "write CHANGELOG.md")
	code, _, _ = runCheck(t, dir)
	assert.Equal(t, 1, code, "only the Unreleased section counts")

	releases, err := filepath.Glob(filepath.Join(dir, "api", "v*.txt"))
	require.NoError(t, err, "glob")
	for _, f := range releases {
		require.NoError(t, os.Remove(f), "remove %s", f)
	}
	code, _, stderr = runCheck(t, dir)
	assert.Equal(t, 1, code, "check.sh fails without a release's API")
	assert.Contains(t, stderr, "no api/v*.txt", "it says why")
}

// TestReleaseFiles checks that every api/vX.Y.Z.txt is what apidump
// writes for the commit its first line names, so that a change of
// apidump's output is not mistaken for a change of the API (run
// scripts/api/release.sh again for the last release then). It skips the
// files whose commit the clone does not have (a shallow clone).
func TestReleaseFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the releases")
	}
	t.Parallel()
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "api", "v*.txt"))
	require.NoError(t, err, "glob")
	require.NotEmpty(t, files, "api/ has the last release's API")
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err, "read %s", f)
		first, _, _ := strings.Cut(string(b), "\n")
		_, after, ok := strings.Cut(first, "(commit ")
		require.True(t, ok, "%s: the first line names the commit: %q", f, first)
		commit, _, _ := strings.Cut(after, ")")
		if exec.Command("git", "-C", root, "cat-file", "-e", commit+"^{commit}").Run() != nil {
			t.Logf("%s: commit %s is not in this clone; not checked", f, commit)
			continue
		}
		dir := t.TempDir()
		archive := exec.Command("bash", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "archive", root, commit, dir)
		out, err := archive.CombinedOutput()
		require.NoError(t, err, "extract %s: %s", commit, out)
		lines, err := moduleAPI(dir)
		require.NoError(t, err, "the API of %s", commit)
		var want []string
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if !strings.HasPrefix(l, "#") {
				want = append(want, l)
			}
		}
		assert.Equal(t, want, lines, "%s is apidump's output for %s (scripts/api/release.sh writes it)", filepath.Base(f), commit)
	}
}
