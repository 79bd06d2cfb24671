// Package keyed holds per-key operator state: a map from key to state with the
// last key cached, since streams often repeat a key. It is not public API.
package keyed

// Table maps keys to state. The zero value is not ready: use New.
// A Table is not safe for concurrent use.
type Table[S any] struct {
	m       map[string]*S
	last    *S
	lastKey string
}

// New returns an empty Table.
func New[S any]() Table[S] { return Table[S]{m: make(map[string]*S)} }

// Get returns k's state, creating a zero one if k is new.
func (t *Table[S]) Get(k string) *S {
	if t.last != nil && t.lastKey == k {
		return t.last
	}
	s, ok := t.m[k]
	if !ok {
		s = new(S)
		t.m[k] = s
	}
	t.last, t.lastKey = s, k
	return s
}

// Lookup returns k's state, or nil.
func (t *Table[S]) Lookup(k string) *S { return t.m[k] }

// Len returns the number of keys.
func (t *Table[S]) Len() int { return len(t.m) }

// Sweep calls visit for every key, in no particular order, and drops the keys
// for which it returns false.
func (t *Table[S]) Sweep(visit func(k string, s *S) (keep bool)) {
	for k, s := range t.m {
		if !visit(k, s) {
			delete(t.m, k)
			if t.last == s {
				t.last, t.lastKey = nil, ""
			}
		}
	}
}
