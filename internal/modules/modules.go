// Package modules lets `go test ./...` at the repository's root test every
// module of the repository, not only the root one.
//
// The repository holds four modules: the library
// (github.com/tidemark-go/tidemark, at the root), the embedded
// MongoDB-compatible store (mongotest), the Prometheus exporter
// (plugin/tmprom) and the lab (examples), each with its own go.mod so that
// `go get` of the library brings only what the library needs. go.work
// lists them, but a pattern such as ./... never crosses
// into a nested module, in workspace mode or not. So each nested module has
// a package here, internal/modules/<module>, whose one test runs
// `go test ./...` in that module through [Test]: one test binary per nested
// module, so that each has the whole -timeout of `go test` to itself.
//
// [Test] passes -race on when the test binary itself was built with -race,
// -short when [testing.Short], -v when [testing.Verbose], and -count when
// it was given; it streams the nested run's output, each line prefixed with
// the module's directory, and fails when the nested run fails. Go's test
// cache keeps a test's result as long as the files and environment
// variables the test looked at do not change: [Test] stats every file of
// the repository that git does not ignore (the nested modules depend on the
// library's files too) and reads the environment variables that the
// modules' tests read, so that a cached "ok" is never stale.
//
// [TestLibraryDependencies], in this package's tests, checks the module
// graph that `go get` of the library brings.
package modules

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// LibraryModule is the module path of the library, at the repository's root.
const LibraryModule = "github.com/tidemark-go/tidemark"

// Root returns the repository's root: the closest directory above the
// working directory whose go.mod declares [LibraryModule].
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePath(b) == LibraryModule {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("modules: no go.mod of %s above the working directory", LibraryModule)
		}
		dir = parent
	}
}

var moduleLine = regexp.MustCompile(`(?m)^module\s+(\S+)\s*$`)

// modulePath returns the module path a go.mod declares.
func modulePath(gomod []byte) string {
	m := moduleLine.FindSubmatch(gomod)
	if m == nil {
		return ""
	}
	return strings.Trim(string(m[1]), `"`)
}

// Test runs `go test ./...` in the nested module in directory dir (relative
// to the repository's root), with the flags of the running test, streaming
// its output, and fails t when it fails. It skips t when the module is not
// there, as in the library's module downloaded by `go get`, which excludes
// nested modules.
func Test(t *testing.T, dir string) {
	t.Helper()
	root, err := Root()
	if err != nil {
		t.Skipf("%v: run this test from a clone of the repository", err)
	}
	modDir := filepath.Join(root, filepath.FromSlash(dir))
	if _, err := os.Stat(filepath.Join(modDir, "go.mod")); err != nil {
		t.Skipf("no module in %s (%v): a module downloaded by go get has none of its nested modules; run this test from a clone", dir, err)
	}
	if err := track(root); err != nil {
		t.Fatalf("modules: list the repository's files for the test cache: %v", err)
	}
	args := goTestArgs(t)
	goBin, err := goCommand()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = modDir
	var fails failLines
	out := io.MultiWriter(&prefixWriter{w: os.Stdout, prefix: dir + ": "}, &fails)
	cmd.Stdout, cmd.Stderr = out, out
	t.Logf("in %s: go %s", dir, strings.Join(args, " "))
	began := time.Now()
	err = cmd.Run()
	if err != nil {
		t.Fatalf("go test in the module %s failed after %v: %v; its output is above, prefixed with %q; its failures:\n%s",
			dir, time.Since(began).Round(time.Second), err, dir+": ", fails.String())
	}
	t.Logf("go test in the module %s passed in %v", dir, time.Since(began).Round(time.Second))
}

// goTestArgs returns the arguments of the nested `go test`: the flags of
// the running test binary that apply to a whole run, and a timeout that
// ends the nested run before the running test's own.
func goTestArgs(t *testing.T) []string {
	args := []string{"test"}
	if raceEnabled {
		args = append(args, "-race")
	}
	if testing.Short() {
		args = append(args, "-short")
	}
	if testing.Verbose() {
		args = append(args, "-v")
	}
	flag.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "test.count", "test.failfast", "test.cpu", "test.parallel", "test.shuffle":
			args = append(args, "-"+strings.TrimPrefix(f.Name, "test.")+"="+f.Value.String())
		}
	})
	if deadline, ok := t.Deadline(); ok {
		// Leave the running test a minute, or a tenth of what is left, to
		// report a nested timeout itself.
		left := time.Until(deadline)
		left -= min(time.Minute, left/10)
		args = append(args, "-timeout="+left.Round(time.Second).String())
	}
	return append(args, "./...")
}

// goCommand returns the go command that runs the tests: the one of GOROOT,
// as go test sets it, or else the one on PATH.
func goCommand() (string, error) {
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("modules: the go command: %w", err)
	}
	return p, nil
}

// envPrefixes are the environment variables that decide what the nested
// tests do beside the ones named in the repository's sources: the go
// command's own settings and the tests' TIDEMARK_ variables.
var envPrefixes = []string{"GO", "CGO_", "TIDEMARK_", "PATH"}

// tidemarkVar matches the names of environment variables in the sources.
var tidemarkVar = regexp.MustCompile(`"(TIDEMARK_[A-Z0-9_]+)"`)

// track tells Go's test cache what a nested run depends on: it stats every
// file and lists every directory of the repository that git does not
// ignore (the cache records both, and a change of either makes the next
// run miss the cache), and reads the environment variables of envPrefixes
// and those named in the Go sources (so that setting one that was unset
// counts too).
func track(root string) error {
	names := map[string]bool{}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		for _, p := range envPrefixes {
			if strings.HasPrefix(name, p) {
				names[name] = true
			}
		}
	}
	ignore, err := readIgnore(root)
	if err != nil {
		return err
	}
	err = walk(root, ignore, func(rel string, d fs.DirEntry) error {
		// A file that went away since its directory was listed (a test of
		// another package may write into the tree) is not there to track.
		if _, err := os.Stat(filepath.Join(root, rel)); errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		if strings.HasSuffix(rel, ".go") {
			b, err := os.ReadFile(filepath.Join(root, rel))
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			} else if err != nil {
				return err
			}
			for _, m := range tidemarkVar.FindAllSubmatch(b, -1) {
				names[string(m[1])] = true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range slices.Sorted(maps.Keys(names)) {
		_ = os.Getenv(n)
	}
	return nil
}

// walk calls f for every file under root (by its slash-separated path
// relative to root) that ignore does not exclude, listing each directory
// with os.ReadDir; it skips .git.
func walk(root string, ignore []ignoreRule, f func(rel string, d fs.DirEntry) error) error {
	var visit func(rel string) error
	visit = func(rel string) error {
		entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(rel)))
		if errors.Is(err, fs.ErrNotExist) && rel != "." {
			return nil // gone since its parent was listed
		} else if err != nil {
			return err
		}
		for _, e := range entries {
			p := path.Join(rel, e.Name())
			if e.Name() == ".git" || ignored(ignore, p, e.IsDir()) {
				continue
			}
			if e.IsDir() {
				if err := visit(p); err != nil {
					return err
				}
				continue
			}
			if err := f(p, e); err != nil {
				return err
			}
		}
		return nil
	}
	return visit(".")
}

// ignoreRule is a line of .gitignore, of the kinds the repository uses: a
// name or a glob, anchored to the root by a leading slash, for directories
// only with a trailing slash.
type ignoreRule struct {
	pattern  string
	anchored bool
	dirOnly  bool
}

// readIgnore reads the root's .gitignore; a missing one ignores nothing.
func readIgnore(root string) ([]ignoreRule, error) {
	b, err := os.ReadFile(filepath.Join(root, ".gitignore"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rules []ignoreRule
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "!") {
			continue
		}
		r := ignoreRule{}
		if strings.HasSuffix(line, "/") {
			r.dirOnly, line = true, strings.TrimSuffix(line, "/")
		}
		if strings.HasPrefix(line, "/") {
			r.anchored, line = true, strings.TrimPrefix(line, "/")
		}
		r.anchored = r.anchored || strings.Contains(line, "/")
		r.pattern = line
		rules = append(rules, r)
	}
	return rules, sc.Err()
}

// ignored reports whether the path rel (relative to the root, with slashes)
// matches a rule.
func ignored(rules []ignoreRule, rel string, dir bool) bool {
	for _, r := range rules {
		if r.dirOnly && !dir {
			continue
		}
		subject := path.Base(rel)
		if r.anchored {
			subject = rel
		}
		if ok, _ := path.Match(r.pattern, subject); ok {
			return true
		}
	}
	return false
}

// prefixWriter writes each line with a prefix, so that the nested run's
// output ("=== RUN", "--- FAIL", "ok") is not taken for the running test's
// own by go test and test2json.
type prefixWriter struct {
	mu      sync.Mutex
	w       io.Writer
	prefix  string
	midLine bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []byte
	for _, c := range b {
		if !p.midLine {
			out = append(out, p.prefix...)
			p.midLine = true
		}
		out = append(out, c)
		if c == '\n' {
			p.midLine = false
		}
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// failLines keeps the lines of a go test output that report failures
// ("--- FAIL", "FAIL", "panic:"), up to a hundred.
type failLines struct {
	mu    sync.Mutex
	part  []byte // the line being written
	lines []string
}

var failLine = regexp.MustCompile(`^\s*(--- FAIL|FAIL|panic:)`)

func (f *failLines) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.part = append(f.part, b...)
	for {
		i := bytes.IndexByte(f.part, '\n')
		if i < 0 {
			break
		}
		if line := string(f.part[:i]); failLine.MatchString(line) && len(f.lines) < 100 {
			f.lines = append(f.lines, line)
		}
		f.part = f.part[i+1:]
	}
	return len(b), nil
}

func (f *failLines) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.lines) == 0 {
		return "(none reported: see the output)"
	}
	return strings.Join(f.lines, "\n")
}
