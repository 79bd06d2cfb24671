package keyed

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTable(t *testing.T) {
	tab := New[int]()
	a := tab.Get("a")
	*a = 1
	assert.Same(t, a, tab.Get("a"), "the same state for the same key (cached)")
	b := tab.Get("b")
	*b = 2
	assert.Same(t, a, tab.Get("a"), "the same state after another key")
	assert.Equal(t, 2, tab.Len(), "two keys")
	tab.Sweep(func(k string, s *int) bool { return *s != 1 })
	assert.Nil(t, tab.Lookup("a"), "a dropped")
	assert.Equal(t, 0, *tab.Get("a"), "a dropped key starts afresh, even when it was the cached one")
	assert.Same(t, b, tab.Lookup("b"), "b kept")
}
