package modules

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// notInLibraryGraph are the modules that must not be in the module graph of
// a module that requires the library: the embedded store (FerretDB and the
// SQL drivers it links), the Prometheus client, and the repository's own
// nested modules (the lab and its dashboard, mongotest, the Prometheus
// exporter plugin/tmprom).
var notInLibraryGraph = []string{
	"github.com/FerretDB/",
	"github.com/prometheus/",
	"modernc.org/sqlite",
	"github.com/jackc/pgx",
	"github.com/go-sql-driver/mysql",
	"github.com/SAP/go-hdb",
	LibraryModule + "/examples",
	LibraryModule + "/mongotest",
	LibraryModule + "/plugin/",
}

// inLibraryGraph are modules the library's packages import, which the
// graph must have.
var inLibraryGraph = []string{
	"github.com/IBM/sarama",
	"go.mongodb.org/mongo-driver/v2",
}

// TestLibraryDependencies builds what `go get` of the library gives a user:
// a scratch module, outside the workspace, that imports every public
// package of the library (replaced by this clone), tidied; and it checks
// its module graph (`go list -m all`): no FerretDB, no Prometheus client,
// nothing of the lab or its dashboard. It logs the graph.
func TestLibraryDependencies(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Skipf("%v: run this test from a clone of the repository", err)
	}
	if err := track(root); err != nil {
		t.Fatalf("list the repository's files for the test cache: %v", err)
	}
	goBin, err := goCommand()
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	run := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command(goBin, args...)
		cmd.Dir, cmd.Env = dir, env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, stderr.String())
		}
		return string(out)
	}

	var public []string
	for _, p := range strings.Fields(run(root, "list", "./...")) {
		if !strings.Contains(p+"/", "/internal/") {
			public = append(public, p)
		}
	}
	if len(public) < 5 {
		t.Fatalf("only %d public packages in the library: %v", len(public), public)
	}
	t.Logf("the library's public packages: %v", public)

	dir := t.TempDir()
	var src strings.Builder
	src.WriteString("// Package user imports every public package of the library.\npackage user\n\nimport (\n")
	for _, p := range public {
		fmt.Fprintf(&src, "\t_ %q\n", p)
	}
	src.WriteString(")\n")
	gomod := fmt.Sprintf("module example.com/user\n\ngo 1.26.0\n\nrequire %s v0.0.0-00010101000000-000000000000\n\nreplace %s => %s\n",
		LibraryModule, LibraryModule, root)
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatalf("the library's go.sum: %v", err)
	}
	for name, content := range map[string][]byte{"user.go": []byte(src.String()), "go.mod": []byte(gomod), "go.sum": sum} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(dir, "mod", "tidy")
	graph := strings.Split(strings.TrimSpace(run(dir, "list", "-m", "all")), "\n")
	t.Logf("the module graph of a module that imports every public package of the library (go list -m all), %d modules:\n%s",
		len(graph)-1, strings.Join(graph, "\n"))

	has := func(prefix string) []string {
		var found []string
		for _, m := range graph[1:] { // graph[0] is example.com/user
			if path := strings.Fields(m)[0]; strings.HasPrefix(path, prefix) {
				found = append(found, m)
			}
		}
		return found
	}
	for _, bad := range notInLibraryGraph {
		if found := has(bad); len(found) > 0 {
			t.Errorf("the library brings %s into its users' module graph: %v", bad, found)
		}
	}
	for _, want := range inLibraryGraph {
		if len(has(want)) == 0 {
			t.Errorf("%s, which the library imports, is not in the graph", want)
		}
	}
}
