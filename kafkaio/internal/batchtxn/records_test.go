package batchtxn

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
)

// A record's bytes, against an encoding worked out by hand from Kafka's
// record format (zigzag varints: 0 -> 0, -1 -> 1, 1 -> 2, -3 -> 5, ...).
func TestRecordEncoding(t *testing.T) {
	r := &Record{Key: []byte("k"), Value: []byte("v"), Headers: []sarama.RecordHeader{{Key: []byte("h")}}}
	want := []byte{
		22,     // length 11
		0,      // attributes
		5,      // timestamp delta -3
		4,      // offset delta 2
		2, 'k', // key
		2, 'v', // value
		2,      // one header
		2, 'h', // its key
		1, // its value: null (-1)
	}
	size := recordSize(r, 2, -3)
	require.Equal(t, 11, size)
	got, keyOff := appendRecord([]byte("prefix"), r, 2, -3, size)
	require.Equal(t, want, got[len("prefix"):])
	require.Equal(t, "k", string(got[keyOff:keyOff+1]))

	// A null key and value, an empty header value, no headers.
	r = &Record{Headers: []sarama.RecordHeader{{Key: []byte("e"), Value: []byte{}}}}
	got, _ = appendRecord(nil, r, 0, 0, recordSize(r, 0, 0))
	require.Equal(t, []byte{18, 0, 0, 0, 1, 1, 2, 2, 'e', 0}, got)
	r = &Record{Key: []byte{}, Value: []byte{}}
	got, _ = appendRecord(nil, r, 0, 0, recordSize(r, 0, 0))
	require.Equal(t, []byte{12, 0, 0, 0, 0, 0, 0}, got)
}

// varintLen agrees with encoding/binary's zigzag varints, on the edges and
// on random values.
func TestVarintLen(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	values := []int64{0, 1, -1, 63, -64, 64, -65, 8191, 8192, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64}
	for range 10_000 {
		values = append(values, rng.Int64()>>rng.IntN(64))
	}
	var buf [binary.MaxVarintLen64]byte
	for _, v := range values {
		require.Equal(t, binary.PutVarint(buf[:], v), varintLen(v), "%d", v)
	}
}

// decodeRecords, the fallback when sarama's RecordBatch has no field for
// raw records, reads back what appendRecord wrote and refuses a truncated
// buffer.
func TestDecodeRecords(t *testing.T) {
	recs := []Record{
		{Key: []byte("a"), Value: []byte("1"), Headers: []sarama.RecordHeader{{Key: []byte("h"), Value: []byte("x")}, {Key: []byte("n")}}},
		{Value: []byte{}},
		{Key: []byte{}, Value: make([]byte, 300)},
	}
	var buf []byte
	for i := range recs {
		delta := int64(i*1000 - 1500)
		buf, _ = appendRecord(buf, &recs[i], i, delta, recordSize(&recs[i], i, delta))
	}
	got, err := decodeRecords(buf, len(recs))
	require.NoError(t, err)
	for i, g := range got {
		r := recs[i]
		require.Equal(t, int64(i), g.OffsetDelta)
		require.Equal(t, time.Duration(i*1000-1500)*time.Millisecond, g.TimestampDelta)
		require.Equal(t, r.Key == nil, g.Key == nil, "record %d", i)
		require.Equal(t, string(r.Key), string(g.Key))
		require.Equal(t, r.Value == nil, g.Value == nil, "record %d", i)
		require.Equal(t, string(r.Value), string(g.Value))
		require.Len(t, g.Headers, len(r.Headers))
		for j, h := range g.Headers {
			require.Equal(t, string(r.Headers[j].Key), string(h.Key))
			require.Equal(t, r.Headers[j].Value == nil, h.Value == nil)
		}
	}
	_, err = decodeRecords(buf[:len(buf)-10], len(recs))
	require.ErrorIs(t, err, errCorrupt)
}
