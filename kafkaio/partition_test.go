package kafkaio

import (
	"math/rand/v2"
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPartition: Partition agrees with sarama's murmur2 partitioner (NewConfig's)
// on random keys and partition counts, and with the Java client on known
// keys; it never panics.
func TestPartition(t *testing.T) {
	// The Java client's DefaultPartitioner with 100 partitions (as sarama's
	// tests list them), and murmur2 itself (Kafka's UtilsTest.testMurmur2).
	for key, want := range map[string]int32{"foo": 16, "bar": 45, "baz": 80, "kafka": 80, "sarama": 11} {
		assert.Equal(t, want, Partition([]byte(key), 100), "key %q", key)
	}
	for key, want := range map[string]int32{
		"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
		"a-little-bit-longer-string": -1486304829, "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, "abc": 479470107,
	} {
		assert.Equal(t, want, int32(murmur2([]byte(key))), "murmur2(%q)", key)
	}

	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	p := sarama.NewMurmur2Partitioner("t")
	for i := range 20_000 {
		key := make([]byte, r.IntN(40))
		for j := range key {
			key[j] = byte(r.Uint32())
		}
		n := 1 + r.Int32N(1000)
		if i%3 == 0 {
			n = 1 + r.Int32N(8)
		}
		want, err := p.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(key)}, n)
		require.NoError(t, err, "sarama")
		require.Equal(t, want, Partition(key, n), "key %x over %d partitions (seed %d)", key, n, seed)
	}
	assert.Zero(t, Partition([]byte("BTCUSDT"), 1), "one partition")
	assert.Zero(t, Partition([]byte("BTCUSDT"), 0), "no partition: no panic")
	assert.Zero(t, Partition(nil, -3), "negative: no panic")
	assert.Equal(t, Partition(nil, 7), Partition([]byte{}, 7), "nil and empty keys hash alike")
}

func BenchmarkPartition(b *testing.B) {
	key := []byte("BTCUSDT")
	b.ReportAllocs()
	var sum int32
	for b.Loop() {
		sum += Partition(key, 12)
	}
	_ = sum
}
