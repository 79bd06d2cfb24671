package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btctest"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/stream"
)

// TestExtractOversizedLine: extract replays a trace with a valid line whose
// record, key plus value, is larger than the producer's limit (but within
// the replay's line limit). Extract does not stop at it: every other line
// is in btc-price once, in the trace's order, and the oversized one is in
// btc-price-dlq once, cut to fit, with its reason.
//
// Subtest kfake runs on the embedded broker; subtest kafka on the real
// broker of TIDEMARK_KAFKA_BROKERS, where the trace's symbol is unique to
// the run and only its records are looked at.
func TestExtractOversizedLine(t *testing.T) {
	t.Run("kfake", func(t *testing.T) {
		k := kafkatest.New(t)
		testExtractOversized(t, k.Addrs())
	})
	t.Run("kafka", func(t *testing.T) {
		brokers := os.Getenv("TIDEMARK_KAFKA_BROKERS")
		if brokers == "" {
			t.Skip("TIDEMARK_KAFKA_BROKERS is not set: start a broker with scripts/kafka/broker.sh start")
		}
		testExtractOversized(t, strings.Split(brokers, ","))
	})
}

func testExtractOversized(t *testing.T, addrs []string) {
	sym := fmt.Sprintf("X%08XUSDT", rand.Uint32())
	t0 := stream.TimeOf(time.Now().Add(-time.Hour))
	var lines []string
	for i := range 300 {
		lines = append(lines, string(btc.AppendPrice(nil, btc.Price{Symbol: sym, Price: 99190 + float64(i)/100, Time: t0 + stream.Time(i)*100})))
	}
	// A valid price padded to just under the line limit: with its key and
	// the record's overhead it is over Producer.MaxMessageBytes.
	big := strings.TrimSuffix(lines[150], "}") + `,"pad":"`
	big += strings.Repeat("x", btc.MaxLineBytes-4-len(big)) + `"}`
	cfg, err := kafkaio.NewConfig()
	require.NoError(t, err, "config")
	size := len(sym) + len(big)
	require.Greater(t, size, cfg.Producer.MaxMessageBytes, "key plus value over the producer's limit")
	require.Less(t, len(big), btc.MaxLineBytes, "the line within the replay's limit")
	lines[150] = big
	lines[70] = "not a price " + sym // invalid: replayed raw, for the stages to dead-letter
	path := filepath.Join(t.TempDir(), "trace.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644), "write the trace")

	partitions := 1
	if c, err := sarama.NewClient(addrs, cfg); err == nil {
		if ps, err := c.Partitions(btc.PriceTopic); err == nil {
			partitions = len(ps) // the real broker's topic, made by another test
		}
		c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stderr syncBuffer
	began := time.Now().Truncate(time.Millisecond)
	code := run(ctx, []string{"extract", "--brokers", strings.Join(addrs, ","), "--source", "replay:" + path, "--speed", "0",
		"--partitions", strconv.Itoa(partitions)}, nil, io.Discard, &stderr)
	ended := time.Now()
	require.Equal(t, 0, code, "exit code; log:\n%s", &stderr)
	log := stderr.String()
	assert.Contains(t, log, `msg="extract: done"`, "extract finished")
	assert.Contains(t, log, "records=300 dead_lettered=1 dead_letters_failed=0", "every line produced, one dead-lettered")
	assert.Contains(t, log, "goes to the dead-letter topic", "the refused record is logged")

	read := btctest.ReadCommitted(t, addrs, btc.PriceTopic, btc.DeadLetterTopic)
	var written []string
	for _, m := range read[btc.PriceTopic] {
		if strings.Contains(string(m.Value), sym) {
			written = append(written, string(m.Value))
		}
	}
	want := append(append([]string(nil), lines[:150]...), lines[151:]...)
	checkExtracted(t, want, written)

	var dead []*sarama.ConsumerMessage
	for _, m := range read[btc.DeadLetterTopic] {
		if string(m.Key) == sym {
			dead = append(dead, m)
		}
	}
	require.Len(t, dead, 1, "the oversized line in btc-price-dlq, once")
	m := dead[0]
	h := map[string]string{}
	for _, r := range m.Headers {
		h[string(r.Key)] = string(r.Value)
	}
	assert.Contains(t, h[kafkaio.HeaderError], "bytes, more than", "the reason: %s", h[kafkaio.HeaderError])
	assert.Equal(t, "too-large", h[kafkaio.HeaderErrorKind], "the kind")
	assert.Equal(t, btc.PriceTopic, h[kafkaio.HeaderOutputTopic], "where it was meant to go")
	assert.Equal(t, strconv.Itoa(len(big)), h[kafkaio.HeaderTruncated], "cut to fit, its length said")
	assert.True(t, strings.HasPrefix(big, string(m.Value)), "the start of the line")
	assert.Greater(t, len(m.Value), len(big)-8192, "not much shorter")
	// extract stamps its records with its clock (kafkaio.WithWallClockTimestamps),
	// and a dead letter keeps its record's stamp.
	assert.False(t, m.Timestamp.Before(began) || m.Timestamp.After(ended), "stamped when written: %v, not within [%v, %v]", m.Timestamp, began, ended)
}
