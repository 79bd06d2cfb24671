// Package tmprom runs the tests of the plugin/tmprom module (the
// Prometheus exporter of the library's statistics) when `go test ./...`
// runs at the repository's root, which does not descend into nested
// modules; see package github.com/tidemark-go/tidemark/internal/modules.
package tmprom
