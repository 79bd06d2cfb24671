// Package examples runs the tests of the examples module (the lab,
// examples/btc-pipeline) when `go test ./...` runs at the repository's
// root, which does not descend into nested modules; see package
// github.com/tidemark-go/tidemark/internal/modules.
package examples
