package mongoio

import (
	"bytes"
	"context"
	"errors"
	"log/slog"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
)

// insertChunk sends the documents of b.entries[lo:hi] in one unordered bulk
// write of inserts. It returns the positions of the writes it did not
// make: with a nil error, those whose insert failed (an _id that exists
// already, mostly), to be sent as replacements, and among them those that
// failed on a duplicate key; with an error, all of them.
func (s *Sink[T]) insertChunk(ctx context.Context, b *batch[T], lo, hi int) (failed, dup []int, err error) {
	models := make([]mongo.WriteModel, hi-lo)
	for i := range models {
		models[i] = mongo.NewInsertOneModel().SetDocument(b.entries[lo+i].doc)
	}
	res, err := b.coll.BulkWrite(ctx, models, unordered)
	if err == nil {
		s.acknowledged(int64(hi-lo), res.InsertedCount)
		return nil, nil, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || len(bwe.WriteErrors) == 0 || bwe.WriteConcernError != nil {
		return appendRange(nil, lo, hi), nil, err
	}
	errs, ok := failedWrites(bwe, hi-lo)
	if !ok || res.InsertedCount != int64(hi-lo-len(errs)) {
		// The server's account does not add up: replace them all, which
		// changes nothing for the documents it did insert.
		return appendRange(nil, lo, hi), nil, nil
	}
	s.acknowledged(res.InsertedCount, res.InsertedCount)
	for _, we := range errs {
		failed = append(failed, lo+we.Index)
		if we.Code == duplicateKey {
			dup = append(dup, lo+we.Index)
		}
	}
	return failed, dup, nil
}

// duplicateKey is the code of the write error of an insert whose _id (or
// other unique key) exists already.
const duplicateKey = 11000

// maxFindIDs caps the _ids that one find of unchanged asks for.
const maxFindIDs = 1000

// primary reads the documents that unchanged compares from the primary,
// which has every acknowledged write, whatever the client's read
// preference.
var primary = options.Collection().SetReadPreference(readpref.Primary())

// unchanged reads the documents of the writes at the positions dups, whose
// insert failed on a duplicate key, with finds of {_id: {$in: [...]}}, and
// returns the positions of those whose stored document is byte for byte
// the document to write: replacing them would change nothing. A replay
// after a restart writes such documents only.
//
// On FerretDB v1 one find reads the collection once, while each
// replacement reads it whole; on MongoDB the finds use the _id index. On
// any error (a user allowed to write but not to read, say) unchanged
// returns the positions it could compare so far, and the others are
// replaced as usual.
func (s *Sink[T]) unchanged(ctx context.Context, b *batch[T], dups []int) map[int]bool {
	coll := b.coll.Database().Collection(b.coll.Name(), primary)
	pos := make(map[idKey]int, len(dups))
	for _, p := range dups {
		pos[key(b.entries[p].id)] = p
	}
	same := make(map[int]bool, len(dups))
	for lo := 0; lo < len(dups); lo += maxFindIDs {
		chunk := dups[lo:min(lo+maxFindIDs, len(dups))]
		ids := make(bson.A, len(chunk))
		for i, p := range chunk {
			ids[i] = b.entries[p].id
		}
		cur, err := coll.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
			options.Find().SetBatchSize(int32(len(chunk))))
		if err == nil {
			for cur.Next(ctx) {
				p, ok := pos[key(cur.Current.Lookup("_id"))]
				if ok && bytes.Equal(cur.Current, b.entries[p].doc) {
					same[p] = true
				}
			}
			err = cur.Err()
			_ = cur.Close(ctx)
		}
		if err != nil {
			s.log.DebugContext(ctx, "mongoio: cannot read the existing documents; replacing them",
				slog.String("collection", b.coll.Name()), slog.Any("err", err))
			break
		}
	}
	return same
}
