package mongotest_test

import (
	"testing"

	"github.com/tidemark-go/tidemark/internal/modules"
)

// TestMongotestModule runs `go test ./...` in the mongotest module.
func TestMongotestModule(t *testing.T) {
	modules.Test(t, "mongotest")
}
