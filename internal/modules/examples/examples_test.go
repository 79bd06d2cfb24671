package examples_test

import (
	"testing"

	"github.com/tidemark-go/tidemark/internal/modules"
)

// TestExamplesModule runs `go test ./...` in the examples module.
func TestExamplesModule(t *testing.T) {
	modules.Test(t, "examples")
}
