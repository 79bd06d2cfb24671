package tmprom_test

import (
	"testing"

	"github.com/tidemark-go/tidemark/internal/modules"
)

// TestTmpromModule runs `go test ./...` in the plugin/tmprom module.
func TestTmpromModule(t *testing.T) {
	modules.Test(t, "plugin/tmprom")
}
