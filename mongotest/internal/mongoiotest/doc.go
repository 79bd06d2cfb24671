// Package mongoiotest holds the tests, benchmarks and runnable examples of
// package github.com/tidemark-go/tidemark/mongoio that need a
// MongoDB-compatible server: black-box tests of mongoio's public API
// against an embedded FerretDB (package mongotest). They live in the
// mongotest module so that FerretDB stays out of the library module's
// dependencies; mongoio's tests that need no server (unit tests, and those
// against the fake wire-protocol server of mongoio/fakeserver_test.go) stay
// in mongoio.
//
// Run them from the repository's root, in the workspace of go.work:
//
//	go test ./mongotest/internal/mongoiotest/
//	go test -run '^$' -bench Load ./mongotest/internal/mongoiotest/
//
// The package has no code of its own.
package mongoiotest
