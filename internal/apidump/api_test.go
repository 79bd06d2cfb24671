package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeModule writes a module example.com/m with the given files (path:
// contents) in a new directory and returns it.
func writeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files["go.mod"] = "module example.com/m\n\ngo 1.26\n"
	for name, src := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755), "mkdir for %s", name)
		require.NoError(t, os.WriteFile(p, []byte(src), 0o644), "write %s", name)
	}
	return dir
}

func dumpModule(t *testing.T, files map[string]string) []string {
	t.Helper()
	lines, err := moduleAPI(writeModule(t, files))
	require.NoError(t, err, "moduleAPI")
	return lines
}

// TestDump checks the features of a package with one of each kind of
// declaration; commands and internal packages are left out.
func TestDump(t *testing.T) {
	t.Parallel()
	got := dumpModule(t, map[string]string{
		"p/p.go": `package p

import (
	"context"
	"example.com/m/q"
)

const Max Time = 1<<63 - 1
const Name = "p"
const hidden = 1

var ErrX error

type Time int64

func (t Time) Add(d Time) Time { return t + d }

type inner struct{ Promoted byte; hidden int }

func (inner) FromInner() {}

type Event[V any] struct {
	inner
	Key   string
	Value V
	f     func()
}

func (e *Event[V]) Set(ctx context.Context, key string, values ...V) (n int, err error) { return 0, nil }

type Source[T any] interface{ Poll(context.Context, []Event[T]) (int, error) }

type Option interface {
	String() string
	apply()
}

type Number interface{ ~int | ~float64 }

type Alias = q.Q

type Func func(rune) bool

func Sum[N Number](ns ...N) (s N) { return }

func Use(q.Q, chan<- int, <-chan (<-chan int), chan (<-chan int), map[string][2]bool, struct{ A int "tag" }) any { return nil }
`,
		"q/q.go":          "package q\n\ntype Q struct{ A int }\n",
		"internal/i/i.go": "package i\n\nfunc Hidden() {}\n",
		"cmd/c/main.go":   "package main\n\nfunc main() {}\n",
	})
	want := []string{
		"pkg p",
		"pkg p, const Max Time = 9223372036854775807",
		`pkg p, const Name untyped string = "p"`,
		"pkg p, func Sum[$0 Number](...$0) $0",
		"pkg p, func Use(q.Q, chan<- int, <-chan <-chan int, chan (<-chan int), map[string][2]bool, struct{A int \"tag\"}) any",
		"pkg p, method (*Event[$0]) FromInner()",
		"pkg p, method (*Event[$0]) Set(context.Context, string, ...$0) (int, error)",
		"pkg p, method (*Time) Add(Time) Time",
		"pkg p, method (Event[$0]) FromInner()",
		"pkg p, method (Time) Add(Time) Time",
		"pkg p, type Alias = q.Q",
		"pkg p, type Event[$0 any] struct",
		"pkg p, type Event[$0 any] struct, Key string",
		"pkg p, type Event[$0 any] struct, Promoted uint8",
		"pkg p, type Event[$0 any] struct, Value $0",
		"pkg p, type Func func(int32) bool",
		"pkg p, type Number interface { ~int | ~float64 }",
		"pkg p, type Option interface, String() string",
		"pkg p, type Option interface, unexported methods",
		"pkg p, type Source[$0 any] interface { Poll(context.Context, []Event[$0]) (int, error) }",
		"pkg p, type Time int64",
		"pkg p, var ErrX error",
		"pkg q",
		"pkg q, type Q comparable",
		"pkg q, type Q struct",
		"pkg q, type Q struct, A int",
	}
	assert.Equal(t, want, got, "the features, sorted")
}

// TestIncompatible changes a package in ways apidiff calls compatible and
// incompatible: the incompatible ones, and only they, remove or change a
// line of the old API.
func TestIncompatible(t *testing.T) {
	t.Parallel()
	base := `package p

type S struct{ A int }

func (s *S) M(x int) int { return x }

func (s S) V() {}

type I interface{ M() }

type Sealed interface{ M(); sealed() }

func F[T any](x T) T { return x }

type E struct{ A int; m map[string]int }
`
	old := dumpModule(t, map[string]string{"p/p.go": base})
	for _, tt := range []struct {
		name         string
		from, to     string
		incompatible bool
	}{
		{"a field added", "type S struct{ A int }", "type S struct{ A int; B string }", false},
		{"a parameter renamed", "func (s *S) M(x int) int { return x }", "func (s *S) M(y int) int { return y }", false},
		{"a type parameter renamed", "func F[T any](x T) T { return x }", "func F[U any](x U) U { return x }", false},
		{"a method on the value instead", "func (s *S) M(x int) int { return x }", "func (s S) M(x int) int { return x }", false},
		{"a method added to a sealed interface", "type Sealed interface{ M(); sealed() }", "type Sealed interface{ M(); N(); sealed() }", false},
		{"a field of a not comparable struct added", "m map[string]int }", "m map[string]int; f func() }", false},
		{"a method added", "func (s S) V() {}", "func (s S) V() {}\nfunc (s *S) N() {}", false},
		{"a method added to an interface", "type I interface{ M() }", "type I interface{ M(); N() }", true},
		{"a method removed from a sealed interface", "type Sealed interface{ M(); sealed() }", "type Sealed interface{ sealed() }", true},
		{"a method on the pointer instead", "func (s S) V() {}", "func (s *S) V() {}", true},
		{"a parameter's type changed", "func (s *S) M(x int) int { return x }", "func (s *S) M(x int64) int { return int(x) }", true},
		{"a field removed", "type S struct{ A int }", "type S struct{ B int }", true},
		{"a struct no longer comparable", "type S struct{ A int }", "type S struct{ A int; f func() }", true},
		{"a constraint changed", "func F[T any](x T) T { return x }", "func F[T comparable](x T) T { return x }", true},
	} {
		require.Contains(t, base, tt.from, tt.name)
		changed := dumpModule(t, map[string]string{"p/p.go": strings.Replace(base, tt.from, tt.to, 1)})
		var removed []string
		for _, l := range old {
			if !slices.Contains(changed, l) {
				removed = append(removed, l)
			}
		}
		if tt.incompatible {
			assert.NotEmpty(t, removed, "%s: a line of the old API removed or changed", tt.name)
		} else {
			assert.Empty(t, removed, "%s: every line of the old API kept", tt.name)
		}
	}
}
