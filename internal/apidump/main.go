// Command apidump writes the exported API of a Go module as text, one line
// per feature, sorted, so that two versions compare with comm(1) and a
// reviewer can read the difference: scripts/api/check.sh compares the
// working tree's with the last release's (api/vX.Y.Z.txt, written by
// scripts/api/release.sh).
//
//	go run ./internal/apidump [-C dir]
//
// It lists the module's packages in dir (`go list ./...`, GOWORK=off),
// leaves out commands and internal packages, and reads the others from
// their export data (`go list -export`), so it needs no more than the go
// command and the module's dependencies.
//
// A feature is a line in the manner of Go's own api/go1.*.txt:
//
//	pkg stream, const MaxTime Time = 9223372036854775807
//	pkg stream, var ErrInvalidOption error
//	pkg stream, func Chain[$0 any, $1 any, $2 any](Operator[$0, $1], Operator[$1, $2]) Operator[$0, $2]
//	pkg stream, type Event[$0 any] struct
//	pkg stream, type Event[$0 any] struct, Key string
//	pkg stream, type Bounds comparable
//	pkg stream, method (*Sequencer[$0]) Offer(int, Event[$0]) Verdict
//	pkg stream, type Source[$0 any] interface { Poll(context.Context, []Record[$0]) (int, error) }
//	pkg kafkaio, type Option interface, unexported methods
//
// A type's fields are every exported field a selector reaches, promoted
// ones included, and its methods are its method sets (of T and of *T),
// promoted methods included; a struct or array type that can be compared
// with == says so. An interface that users can implement (no unexported
// method) is one line with its whole method set and type terms, since
// adding a method breaks its implementations; one with an unexported
// method gets a line per method, since adding one breaks nobody. Type
// parameters are numbered ($0, $1, ...) and parameters are unnamed, so
// renaming them changes nothing; types of the module are written relative
// to it (stream.Event), others by their import path
// (github.com/IBM/sarama.Client), aliases as what they stand for.
//
// So a line of the old API that is missing from the new one is a removed
// or changed feature: an incompatible change. It is conservative: a
// change that breaks no user but rewrites a line (an unexported type
// renamed in an exported signature, a constraint loosened) counts as
// incompatible too, and is to be announced or justified.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/importer"
	"go/token"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
)

func main() {
	dir := flag.String("C", ".", "the directory of the module")
	flag.Parse()
	lines, err := moduleAPI(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apidump:", err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "apidump:", err)
		os.Exit(1)
	}
}

// listed is what apidump reads of `go list -json`.
type listed struct {
	ImportPath string
	Name       string
	Export     string
	Module     *struct{ Path string }
	Error      *struct{ Err string }
}

// goList runs `go list -json args...` in dir outside any workspace.
func goList(dir string, args ...string) ([]listed, error) {
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s in %s: %w\n%s", strings.Join(args, " "), dir, err, stderr.String())
	}
	var pkgs []listed
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list %s: %w", strings.Join(args, " "), err)
		}
		if p.Error != nil {
			return nil, fmt.Errorf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// isPublic reports whether a package of the module is part of its API:
// neither a command nor internal.
func isPublic(p listed) bool {
	return p.Name != "main" && !slices.Contains(strings.Split(p.ImportPath, "/"), "internal")
}

// moduleAPI returns the sorted features of the public packages of the
// module in dir.
func moduleAPI(dir string) ([]string, error) {
	all, err := goList(dir, "./...")
	if err != nil {
		return nil, err
	}
	var public []string
	module := ""
	for _, p := range all {
		if p.Module != nil && module == "" {
			module = p.Module.Path
		}
		if isPublic(p) {
			public = append(public, p.ImportPath)
		}
	}
	if len(public) == 0 {
		return nil, fmt.Errorf("no public package in %s", dir)
	}
	deps, err := goList(dir, append([]string{"-export", "-deps"}, public...)...)
	if err != nil {
		return nil, err
	}
	exports := map[string]string{}
	for _, p := range deps {
		exports[p.ImportPath] = p.Export
	}
	imp := importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok || f == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	})
	var lines []string
	for _, path := range public {
		pkg, err := imp.Import(path)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", path, err)
		}
		lines = append(lines, packageAPI(pkg, module)...)
	}
	slices.Sort(lines)
	return slices.Compact(lines), nil
}
