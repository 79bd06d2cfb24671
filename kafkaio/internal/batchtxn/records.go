package batchtxn

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"reflect"
	"time"
	"unsafe"

	"github.com/IBM/sarama"
)

// A partition's buffer holds its records already encoded as Kafka writes
// them in a version 2 record batch (KIP-98's format), one after the other:
//
//	length         varint (zigzag, as every varint here): the bytes that follow
//	attributes     int8, 0
//	timestampDelta varint: milliseconds from the batch's base timestamp
//	offsetDelta    varint: the record's index in the batch
//	key            varint length (-1: null), then the bytes
//	value          varint length (-1: null), then the bytes
//	headers        varint count, then each: varint key length, key,
//	               varint value length (-1: null), value
//
// Encoding a record once, as it is added, is what makes the producer
// cheap: sarama's RecordBatch would encode its Records twice per send (a
// pass to size the buffer, then one to fill it), after the caller built a
// sarama.Record, with a header slice, for each.
//
// sarama writes a RecordBatch's records from its unexported field
// compressedRecords when it is set, which it sets itself after encoding
// the Records once (and sends again as they are on a retry), writing
// len(Records) as their count. batch sets that field to the buffer and
// gives Records as many nil pointers as there are records. The field is
// found by reflection once; a sarama without it (a later version that
// renamed it) gets sarama.Records decoded back from the buffer instead
// (decodeRecords), slower but the same bytes on the wire.
var rawRecords = func() (f struct {
	ok               bool
	records, rawSize uintptr
}) {
	t := reflect.TypeFor[sarama.RecordBatch]()
	recs, ok1 := t.FieldByName("compressedRecords")
	size, ok2 := t.FieldByName("recordsLen")
	if !ok1 || !ok2 || recs.Type != reflect.TypeFor[[]byte]() || size.Type != reflect.TypeFor[int]() {
		return f
	}
	f.ok, f.records, f.rawSize = true, recs.Offset, size.Offset
	return f
}()

// setRawRecords makes rb's records raw, encoded as described above.
func setRawRecords(rb *sarama.RecordBatch, raw []byte) {
	*(*[]byte)(unsafe.Add(unsafe.Pointer(rb), rawRecords.records)) = raw
	*(*int)(unsafe.Add(unsafe.Pointer(rb), rawRecords.rawSize)) = len(raw)
}

// varintLen returns the length of v as a zigzag varint.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
}

// bytesLen returns the length of b as a varint length and its bytes (a
// nil b is null: length -1).
func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varintLen(int64(len(b))) + len(b)
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	return append(binary.AppendVarint(dst, int64(len(b))), b...)
}

// millis returns t in milliseconds since the epoch, -1 for the zero time
// (no timestamp), as sarama's Timestamp writes it.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return -1
	}
	return t.UnixMilli()
}

// timestamp is millis' inverse, for sarama's batch header.
func timestamp(ms int64) time.Time {
	if ms == -1 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// appendRecord appends r, the batch's record number index, to dst, with its
// timestamp delta from the batch's base, and returns dst and the offset of
// the key's bytes in it. size is what recordSize returned.
func appendRecord(dst []byte, r *Record, index int, delta int64, size int) ([]byte, int) {
	dst = binary.AppendVarint(dst, int64(size))
	dst = append(dst, 0) // attributes
	dst = binary.AppendVarint(dst, delta)
	dst = binary.AppendVarint(dst, int64(index))
	keyOff := len(dst) + varintLen(int64(len(r.Key)))
	dst = appendBytes(dst, r.Key)
	dst = appendBytes(dst, r.Value)
	dst = binary.AppendVarint(dst, int64(len(r.Headers)))
	for _, h := range r.Headers {
		dst = append(binary.AppendVarint(dst, int64(len(h.Key))), h.Key...)
		dst = appendBytes(dst, h.Value)
	}
	return dst, keyOff
}

// recordSize returns the length of r's encoding after its length prefix.
func recordSize(r *Record, index int, delta int64) int {
	n := 1 + varintLen(delta) + varintLen(int64(index)) + bytesLen(r.Key) + bytesLen(r.Value) + varintLen(int64(len(r.Headers)))
	for _, h := range r.Headers {
		n += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	return n
}

var errCorrupt = errors.New("batchtxn: corrupt record buffer")

// decodeRecords decodes n records encoded by appendRecord (the fallback of
// rawRecords); the records' bytes alias raw.
func decodeRecords(raw []byte, n int) ([]*sarama.Record, error) {
	recs := make([]sarama.Record, n)
	ptrs := make([]*sarama.Record, n)
	varint := func() int64 {
		v, k := binary.Varint(raw)
		if k <= 0 {
			raw = nil
			return 0
		}
		raw = raw[k:]
		return v
	}
	bytes := func() []byte {
		l := varint()
		if l < 0 || l > int64(len(raw)) {
			if l != -1 {
				raw = nil // corrupt
			}
			return nil
		}
		b := raw[:l:l]
		raw = raw[l:]
		return b
	}
	for i := range recs {
		r := &recs[i]
		if varint(); len(raw) == 0 {
			return nil, errCorrupt
		}
		r.Attributes, raw = int8(raw[0]), raw[1:]
		r.TimestampDelta = time.Duration(varint()) * time.Millisecond
		r.OffsetDelta = varint()
		r.Key = bytes()
		r.Value = bytes()
		if nh := varint(); nh > 0 {
			r.Headers = make([]*sarama.RecordHeader, nh)
			for j := range r.Headers {
				r.Headers[j] = &sarama.RecordHeader{Key: bytes(), Value: bytes()}
			}
		}
		if raw == nil {
			return nil, errCorrupt
		}
		ptrs[i] = r
	}
	return ptrs, nil
}
