package mongoio

import (
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// batch is the buffered writes of one collection.
type batch[T any] struct {
	coll    *mongo.Collection
	entries []entry[T]
	models  []mongo.WriteModel // models[i] is entries[i].model
	index   map[idKey]int      // position in entries of each _id

	// rejected collects the rejections of the running flush; the flush
	// moves them to Sink.rejected once every collection is done.
	rejected []Rejection[T]
}

type entry[T any] struct {
	rec   T
	id    bson.RawValue
	doc   bson.Raw         // the whole document with its _id, for an insert
	model mongo.WriteModel // the ReplaceOne upsert
}

// lookup returns the position of the buffered write of k; b may be nil.
func (b *batch[T]) lookup(k idKey) (int, bool) {
	if b == nil {
		return 0, false
	}
	i, ok := b.index[k]
	return i, ok
}

// keep retains the entries at the given ascending positions.
func (b *batch[T]) keep(positions []int) {
	if len(positions) == 0 {
		b.reset()
		return
	}
	clear(b.index)
	for j, i := range positions {
		b.entries[j] = b.entries[i]
		b.models[j] = b.models[i]
		b.index[key(b.entries[j].id)] = j
	}
	clear(b.entries[len(positions):])
	clear(b.models[len(positions):])
	b.entries = b.entries[:len(positions)]
	b.models = b.models[:len(positions)]
}

// reset empties b, keeping its memory for the next batch.
func (b *batch[T]) reset() {
	clear(b.entries)
	clear(b.models)
	b.entries = b.entries[:0]
	b.models = b.models[:0]
	clear(b.index)
}

// idKey identifies an _id in a batch: its BSON type and encoding. Two
// _ids that MongoDB deems equal but that encode differently (int32 1 and
// int64 1) are different keys.
type idKey struct {
	t bson.Type
	v string
}

func key(id bson.RawValue) idKey { return idKey{t: id.Type, v: string(id.Value)} }
