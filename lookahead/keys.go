package lookahead

import (
	"slices"

	"github.com/tidemark-go/tidemark/internal/keyed"
	"github.com/tidemark-go/tidemark/stream"
)

// keyTable holds the per-key state of a lookahead and what Advance needs to
// find the keys with an answer the watermark may have made final.
type keyTable[S any] struct {
	keyed.Table[S]
	names []string
	floor stream.Time // no waiting event's horizon ends before it
}

func newKeyTable[S any]() keyTable[S] {
	return keyTable[S]{Table: keyed.New[S](), floor: stream.MaxTime}
}

// waiting notes that an event whose horizon ends at end is waiting.
func (t *keyTable[S]) waiting(end stream.Time) { t.floor = min(t.floor, end) }

// due returns, in key order, the keys whose oldest waiting event's horizon
// ends before wm (every key with a waiting event when wm is MaxTime), drops
// the keys with nothing waiting, and recomputes the floor from the others.
// oldest reports the end of the horizon of a key's oldest waiting event.
// The caller re-notes the due keys' floors with waiting after processing them.
func (t *keyTable[S]) due(wm stream.Time, oldest func(*S) (end stream.Time, ok bool)) []string {
	t.names = t.names[:0]
	if wm <= t.floor && wm != stream.MaxTime {
		return t.names
	}
	t.floor = stream.MaxTime
	t.Sweep(func(k string, s *S) bool {
		end, ok := oldest(s)
		switch {
		case !ok:
			return false // nothing waits: drop the key
		case end < wm || wm == stream.MaxTime:
			t.names = append(t.names, k)
		default:
			t.floor = min(t.floor, end)
		}
		return true
	})
	slices.Sort(t.names)
	return t.names
}

// advance settles, in key order, every key whose oldest waiting event the
// watermark wm may have made final (see due), and notes what still waits.
func (t *keyTable[S]) advance(wm stream.Time, oldest func(*S) (stream.Time, bool), settle func(k string, s *S)) {
	for _, k := range t.due(wm, oldest) {
		s := t.Lookup(k)
		settle(k, s)
		if end, ok := oldest(s); ok {
			t.waiting(end)
		}
	}
}
