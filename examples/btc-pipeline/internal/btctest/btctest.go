// Package btctest holds the checks that the pipeline's end-to-end tests
// share: reading topics back read_committed and comparing MongoDB documents
// with z-score records. It is only for tests.
package btctest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/stream"
)

// Settle waits until no transaction is open on the topics: the last stable
// offset of every partition equals its high watermark. A member killed in
// the middle of a transaction leaves it open until the broker aborts it,
// after the transaction timeout (10 s by default), or until its successor
// with the same transactional id fences it. It fails the test when a
// transaction is still open after d, naming the partitions.
func Settle(t testing.TB, addrs []string, d time.Duration, topics ...string) {
	t.Helper()
	client, err := sarama.NewClient(addrs, nil)
	require.NoError(t, err, "client")
	defer client.Close()
	adm, err := sarama.NewClusterAdminFromClient(client)
	require.NoError(t, err, "admin")
	ask := newestOf(t, client, topics)
	start := time.Now()
	for {
		lso, err := adm.ListOffsets(ask, &sarama.ListOffsetsOptions{IsolationLevel: sarama.ReadCommitted})
		require.NoError(t, err, "last stable offsets")
		hwm, err := adm.ListOffsets(ask, &sarama.ListOffsetsOptions{IsolationLevel: sarama.ReadUncommitted})
		require.NoError(t, err, "high watermarks")
		var open []string
		for topic, parts := range ask {
			for p := range parts {
				if l, h := lso[topic][p], hwm[topic][p]; l == nil || h == nil || l.Offset != h.Offset {
					open = append(open, fmt.Sprintf("%s/%d (stable %v, end %v)", topic, p, l, h))
				}
			}
		}
		if len(open) == 0 {
			if w := time.Since(start); w > time.Second {
				t.Logf("transactions stayed open %v", w.Round(100*time.Millisecond))
			}
			return
		}
		if time.Since(start) > d {
			t.Fatalf("transactions still open after %v on %v", d, open)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ReadCommitted returns the records of each topic that a read_committed
// consumer sees, once no transaction is open on them. It reads every
// partition at once: the end of a partition is a transaction marker, which a
// consumer never sees, so a partition is done at its last stable offset or
// after a second without records.
func ReadCommitted(t testing.TB, addrs []string, topics ...string) map[string][]*sarama.ConsumerMessage {
	t.Helper()
	cfg, err := kafkaio.NewConfig()
	require.NoError(t, err, "config")
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	client, err := sarama.NewClient(addrs, cfg)
	require.NoError(t, err, "client")
	defer client.Close()
	adm, err := sarama.NewClusterAdminFromClient(client)
	require.NoError(t, err, "admin")
	ask := newestOf(t, client, topics)
	res, err := adm.ListOffsets(ask, &sarama.ListOffsetsOptions{IsolationLevel: sarama.ReadCommitted})
	require.NoError(t, err, "last stable offsets")
	cons, err := sarama.NewConsumerFromClient(client)
	require.NoError(t, err, "consumer")
	defer cons.Close()
	var (
		mu  sync.Mutex
		out = make(map[string][]*sarama.ConsumerMessage)
		wg  sync.WaitGroup
	)
	for topic, parts := range ask {
		for p := range parts {
			r := res[topic][p]
			require.True(t, r != nil && errors.Is(r.Err, sarama.ErrNoError), "last stable offset of %s/%d: %v", topic, p, r)
			if r.Offset == 0 {
				continue
			}
			pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
			require.NoError(t, err, "consume %s/%d", topic, p)
			wg.Go(func() {
				defer pc.Close()
				var got []*sarama.ConsumerMessage
				quiet := time.NewTimer(5 * time.Second)
				defer quiet.Stop()
			read:
				for {
					select {
					case m := <-pc.Messages():
						got = append(got, m)
						if m.Offset >= r.Offset-1 {
							break read
						}
						quiet.Reset(time.Second)
					case <-quiet.C:
						break read
					}
				}
				mu.Lock()
				out[topic] = append(out[topic], got...)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	return out
}

// CheckDocuments compares the load stage's collections in db with the
// documents that the btc-price-zscore records lines make: one per window in
// the collection "btc-price-zscore-<window>", with the same fields and
// values, and nothing else. Documents whose _id starts with skip are left
// out (sentinels), as are those of lines. It returns the number of documents
// compared.
func CheckDocuments(t testing.TB, db *mongo.Database, windows int, lines []string, skip string) int {
	t.Helper()
	return checkDocuments(t, db, windows, lines, skip, nil)
}

// CheckDocumentsExcept is CheckDocuments without a skip prefix, for a
// store that lacks some of the documents: except maps a collection to the
// _id of the one document it must not hold.
func CheckDocumentsExcept(t testing.TB, db *mongo.Database, windows int, lines []string, except map[string]string) int {
	t.Helper()
	return checkDocuments(t, db, windows, lines, "", except)
}

func checkDocuments(t testing.TB, db *mongo.Database, windows int, lines []string, skip string, except map[string]string) int {
	t.Helper()
	type zline struct {
		Timestamp string  `json:"timestamp"`
		Symbol    string  `json:"symbol"`
		Price     float64 `json:"price"`
		ZScores   []struct {
			Window string   `json:"window"`
			Z      *float64 `json:"zscore_price"`
		} `json:"zscores"`
	}
	want := map[string]map[string]bson.M{} // collection -> _id -> document
	for _, l := range lines {
		var z zline
		require.NoError(t, json.Unmarshal([]byte(l), &z), "offline z-score record")
		tm, err := time.Parse(time.RFC3339Nano, z.Timestamp)
		require.NoError(t, err, "timestamp")
		for _, w := range z.ZScores {
			c := "btc-price-zscore-" + w.Window
			if want[c] == nil {
				want[c] = map[string]bson.M{}
			}
			var zv any
			if w.Z != nil {
				zv = *w.Z
			}
			id := z.Symbol + "|" + z.Timestamp
			if x, ok := except[c]; ok && x == id {
				continue
			}
			want[c][id] = bson.M{"_id": id, "symbol": z.Symbol, "timestamp": bson.NewDateTimeFromTime(tm),
				"window": w.Window, "price": z.Price, "zscore_price": zv}
		}
	}
	require.Len(t, want, windows, "a collection per window")
	total := 0
	ctx := context.Background()
	for c, docs := range want {
		cur, err := db.Collection(c).Find(ctx, bson.D{})
		require.NoError(t, err, "find in %s", c)
		var got []bson.M
		require.NoError(t, cur.All(ctx, &got), "read %s", c)
		n := 0
		for _, d := range got {
			id, _ := d["_id"].(string)
			if skip != "" && strings.HasPrefix(id, skip) {
				continue
			}
			n++
			w, ok := docs[id]
			require.True(t, ok, "%s: unexpected document %v", c, d)
			require.Equal(t, w, d, "%s: document %s", c, id)
		}
		require.Equal(t, len(docs), n, "%s: documents", c)
		t.Logf("%s: %d documents, equal to offline's z-scores", c, n)
		total += n
	}
	return total
}

// Logger returns a logger whose lines the test prints if it fails, for the
// stages of a test: quiet when all goes well, the whole story when not.
func Logger(t testing.TB) *slog.Logger {
	var (
		mu  sync.Mutex
		buf bytes.Buffer
	)
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("log of the stages:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// WaitFor polls cond every 20 ms until it holds or d has passed, and says
// whether it held. Unlike require.Eventually it lets the caller report the
// state at the moment of failure, not at the moment of the call.
func WaitFor(t testing.TB, d time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LogGoroutines logs the stacks of this process's goroutines that mention
// any of the given substrings (all of them when none is given), to tell
// where a stalled pipeline waits.
func LogGoroutines(t testing.TB, substrings ...string) {
	t.Helper()
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	var keep []string
	for _, g := range strings.Split(b.String(), "\n\n") {
		if len(substrings) == 0 || slices.ContainsFunc(substrings, func(s string) bool { return strings.Contains(g, s) }) {
			keep = append(keep, g)
		}
	}
	t.Logf("%d goroutines:\n%s", len(keep), strings.Join(keep, "\n\n"))
}

// ResetKafka deletes consumer groups and topics on a real broker, left over
// from an earlier run, and waits until the topics are gone. A group that
// still has members (static members of a test that just ended stay until
// their session times out, 30 s) is deleted once they are gone.
func ResetKafka(t testing.TB, addrs []string, groups, topics []string) {
	t.Helper()
	adm, err := sarama.NewClusterAdmin(addrs, nil)
	require.NoError(t, err, "admin")
	defer adm.Close()
	for _, g := range groups {
		err := adm.DeleteConsumerGroup(g)
		for deadline := time.Now().Add(time.Minute); errors.Is(err, sarama.ErrNonEmptyGroup) && time.Now().Before(deadline); {
			time.Sleep(500 * time.Millisecond)
			err = adm.DeleteConsumerGroup(g)
		}
		if err != nil && !errors.Is(err, sarama.ErrGroupIDNotFound) {
			require.NoError(t, err, "delete group %s", g)
		}
	}
	for _, topic := range topics {
		if err := adm.DeleteTopic(topic); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			require.NoError(t, err, "delete topic %s", topic)
		}
	}
	if !WaitFor(t, time.Minute, func() bool {
		have, err := adm.ListTopics()
		if err != nil {
			return false
		}
		for _, topic := range topics {
			if _, ok := have[topic]; ok {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("the topics %v are still there a minute after their deletion", topics)
	}
}

// newestOf returns a ListOffsets request for the end of every partition of
// the topics.
func newestOf(t testing.TB, client sarama.Client, topics []string) map[string]map[int32]int64 {
	t.Helper()
	ask := map[string]map[int32]int64{}
	for _, topic := range topics {
		parts, err := client.Partitions(topic)
		require.NoError(t, err, "partitions of %s", topic)
		ask[topic] = map[int32]int64{}
		for _, p := range parts {
			ask[topic][p] = sarama.OffsetNewest
		}
	}
	return ask
}

// SameRecords checks that got holds exactly the records of want, in any
// order: none missing, none twice, every value equal. It returns their
// number.
func SameRecords(t testing.TB, topic string, want, got []string) int {
	t.Helper()
	w, g := slices.Clone(want), slices.Clone(got)
	slices.Sort(w)
	slices.Sort(g)
	require.Equal(t, len(w), len(g), "%s: records (none missing, none duplicated)", topic)
	for i := range w {
		require.Equal(t, w[i], g[i], "%s: record %d (sorted)", topic, i)
	}
	return len(g)
}

// Trace returns a btc-price trace of n events on three symbols, 1 to 150 ms
// apart, in arrival order: out of order within lateness, with duplicate
// identities (one event in 60), late events (one in 60) and invalid lines
// (one in 60, taken from invalid), all drawn from r.
func Trace(r *rand.Rand, n int, lateness stream.Time, invalid []string) []string {
	type arrival struct {
		at   stream.Time
		line string
	}
	syms := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}
	cents := []int64{9_919_048, 250_011, 14_550}
	line := func(sym string, t stream.Time, c int64) string {
		return fmt.Sprintf(`{"symbol":%q,"price":%s,"timestamp":%q}`, sym, strconv.FormatFloat(float64(c)/100, 'f', -1, 64),
			t.UTC().Format("2006-01-02T15:04:05.000Z07:00")) // as btc.AppendTime writes it
	}
	var out []arrival
	tm := stream.Time(1_746_677_558_352)
	for range n {
		tm += stream.Time(1 + r.IntN(150))
		k := r.IntN(len(syms))
		cents[k] += int64(r.IntN(7)) - 3
		at := tm + stream.Time(r.Int64N(int64(lateness)+1))
		out = append(out, arrival{at, line(syms[k], tm, cents[k])})
		switch r.IntN(60) {
		case 0:
			out = append(out, arrival{at + 1, line(syms[k], tm, cents[k]+1)}) // a duplicate identity
		case 1:
			out = append(out, arrival{at + lateness, line(syms[k], tm-2*lateness, cents[k])}) // late
		case 2:
			out = append(out, arrival{at, invalid[r.IntN(len(invalid))]})
		}
	}
	slices.SortStableFunc(out, func(a, b arrival) int { return int(a.at - b.at) })
	lines := make([]string, len(out))
	for i, a := range out {
		lines[i] = a.line
	}
	return lines
}
