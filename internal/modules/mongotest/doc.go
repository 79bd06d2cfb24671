// Package mongotest runs the tests of the mongotest module (the embedded
// MongoDB-compatible store, and mongoio's tests that need it) when
// `go test ./...` runs at the repository's root, which does not descend
// into nested modules; see package
// github.com/tidemark-go/tidemark/internal/modules.
package mongotest
