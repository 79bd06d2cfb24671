package mongoio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Route says where and what to write for one record.
type Route struct {
	// Collection is the collection of the sink's database to write to. It
	// must be a valid collection name: not empty, without '$' or NUL, not
	// starting with "system.".
	Collection string

	// ID is the document's _id, the key of the upsert. nil means the _id
	// field of Doc, which then must have one. When both are given they
	// must encode to the same BSON value.
	ID any

	// Doc is the whole document that replaces (or creates) the document
	// with that _id. It is marshalled with [bson.Marshal] when the record
	// is written, so later changes to it have no effect; pass a [bson.Raw]
	// to control the encoding. Its first field must not start with '$'
	// (it is a replacement, not an update operator document).
	Doc any
}

// maxDocumentSize is the largest document MongoDB stores (its
// maxBsonObjectSize).
const maxDocumentSize = 16 << 20

// marshalRoute encodes r.Doc and finds the _id of the upsert. It returns
// the encoded Doc, for a replacement, and the whole document with its _id
// (the same bytes when Doc has an _id), for an insert.
func marshalRoute(r Route) (doc, full bson.Raw, id bson.RawValue, err error) {
	if r.Doc == nil {
		return nil, nil, bson.RawValue{}, errors.New("nil Doc")
	}
	b, err := bson.Marshal(r.Doc)
	if err != nil {
		return nil, nil, bson.RawValue{}, fmt.Errorf("marshal Doc: %w", err)
	}
	if len(b) > maxDocumentSize {
		return nil, nil, bson.RawValue{}, fmt.Errorf("the Doc is %d bytes, more than MongoDB's limit of %d", len(b), maxDocumentSize)
	}
	doc = bson.Raw(b)
	if first, err := doc.IndexErr(0); err == nil && strings.HasPrefix(first.Key(), "$") {
		return nil, nil, bson.RawValue{}, fmt.Errorf("the Doc starts with the operator %q; it must be a whole document", first.Key())
	}
	docID := doc.Lookup("_id")
	hasDocID := docID.Type != 0
	if r.ID == nil {
		if !hasDocID {
			return nil, nil, bson.RawValue{}, errors.New("no _id: Route.ID is nil and Doc has no _id field")
		}
		return doc, doc, docID, nil
	}
	t, v, err := bson.MarshalValue(r.ID)
	if err != nil {
		return nil, nil, bson.RawValue{}, fmt.Errorf("marshal ID: %w", err)
	}
	id = bson.RawValue{Type: t, Value: v}
	if t == bson.TypeNull || t == bson.TypeUndefined {
		return nil, nil, bson.RawValue{}, fmt.Errorf("ID is %s", t)
	}
	if hasDocID {
		if !id.Equal(docID) {
			return nil, nil, bson.RawValue{}, fmt.Errorf("Route.ID %s and the _id %s of Doc differ", id, docID)
		}
		return doc, doc, id, nil
	}
	full = withID(doc, id)
	if len(full) > maxDocumentSize {
		return nil, nil, bson.RawValue{}, fmt.Errorf("the Doc with its _id is %d bytes, more than MongoDB's limit of %d", len(full), maxDocumentSize)
	}
	return doc, full, id, nil
}

// withID returns a copy of doc, which has no _id, with the field _id: id
// first, as MongoDB stores it.
func withID(doc bson.Raw, id bson.RawValue) bson.Raw {
	const name = "_id\x00"
	n := len(doc) + 1 + len(name) + len(id.Value)
	full := binary.LittleEndian.AppendUint32(make([]byte, 0, n), uint32(n))
	full = append(full, byte(id.Type))
	full = append(full, name...)
	full = append(full, id.Value...)
	full = append(full, doc[4:]...)
	return full
}

// validCollection checks a collection name against MongoDB's rules.
func validCollection(name string) error {
	switch {
	case name == "":
		return errors.New("empty collection name")
	case strings.ContainsAny(name, "$\x00"):
		return fmt.Errorf("collection name %q contains '$' or NUL", name)
	case strings.HasPrefix(name, "system."):
		return fmt.Errorf("collection name %q is reserved", name)
	}
	return nil
}
