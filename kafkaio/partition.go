package kafkaio

import "encoding/binary"

// Partition returns the partition among partitions that a record with key
// goes to under NewConfig's partitioner, the Java client's: the murmur2 hash
// of the key, its sign bit cleared, modulo partitions. Kafka's clients in
// any language that use that partitioner agree with it, and so the
// partitions a stage reads, keyed as a Sink writes them. It never panics:
// with fewer than two partitions it returns 0.
//
// An empty key is hashed as zero bytes; a Sink writes an event with an empty
// key as a record with a null key, which the producer places at random, so
// Partition does not predict where such a record lands. Partition is safe
// for concurrent use and does not allocate.
func Partition(key []byte, partitions int32) int32 {
	if partitions < 2 {
		return 0
	}
	return int32(murmur2(key)&0x7fffffff) % partitions
}

// murmur2 is the Java client's org.apache.kafka.common.utils.Utils.murmur2:
// MurmurHash2 with seed 0x9747b28c, little-endian words.
func murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for ; len(b) >= 4; b = b[4:] {
		k := binary.LittleEndian.Uint32(b)
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
