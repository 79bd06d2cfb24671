package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	mongoopts "go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btctest"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/mongotest"
	"github.com/tidemark-go/tidemark/stream"
)

// The poison records of TestBadRecordsLive: valid prices whose symbols are
// so long that some result of theirs is larger than its topic takes, with
// the topics' limits (max.message.bytes) set so that each stage meets its
// own: a result carries its symbol twice (key and value).
var (
	poisonMoving = strings.Repeat("M", 200_000) // moving's record (≈400 kB) > 300 kB; and bonus's lower
	poisonZScore = strings.Repeat("Z", 60_000)  // zscore's record (≈120 kB) > 100 kB; and bonus's lower
	poisonBonus  = strings.Repeat("B", 30_000)  // bonus's lower record (≈60 kB) > 50 kB only
)

// poisonLimits are the max.message.bytes of the output topics that make
// the poison records poison.
var poisonLimits = map[string]string{
	btc.Moving.Topic(): "300000",
	btc.ZScore.Topic(): "100000",
	btc.Lower.Topic():  "50000",
}

// refusedBy lists, per output topic, the poison symbols whose records in
// it cannot be written: refused there, or never computed because their
// input was refused upstream (no moving record, no z-score; no z-score, no
// document).
var refusedBy = map[string][]string{
	btc.Moving.Topic(): {poisonMoving},
	btc.ZScore.Topic(): {poisonMoving, poisonZScore},
	btc.Higher.Topic(): nil,
	btc.Lower.Topic():  {poisonMoving, poisonZScore, poisonBonus},
}

// TestBadRecordsLive runs the lab's stages as processes (moving, zscore,
// bonus, load, and extract replaying a trace) over a trace that holds, among
// 3,000 valid events with duplicates, late events and invalid lines:
//
//   - three poison records, valid prices with symbols of 30 to 200 kB, each
//     of whose results some output topic refuses as too large (see
//     poisonLimits): moving cannot write one, zscore another, bonus the
//     lower answers of all three;
//   - one document the store refuses: a unique index on (symbol, timestamp)
//     in one window's collection, and a document already there with another
//     _id, that one z-score collides with;
//   - one event dated 2099.
//
// No stage stops or loops: each poison's input record is dead-lettered once
// by each stage that cannot write a result of it, with its reason, the output
// topic and the stage in headers; the 2099 event is dead-lettered once (by
// moving, too far ahead of its record's timestamp) and moves no watermark.
// Every other record of every output topic, read read_committed, and every
// other document equals what offline computes over the trace, record by
// record: offline, too, refuses the 2099 event (as a jump of its
// partition's largest event time), and computes the poison symbols' results,
// which the test leaves out where refusedBy says.
//
// The trace ends without sentinels: the stages' idle advance (on by default
// in the lab, --idle-timeout 5s) brings out the last results.
//
// Subtest sigkill kills each stage with SIGKILL as soon as it logs its
// first refused result, which is then most often not committed yet, and
// restarts it: the replay decides the same, and every count above holds.
// Subtests kfake and kafka (TIDEMARK_KAFKA_BROKERS) run on the embedded
// broker and on the real one.
func TestBadRecordsLive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dozen processes; not in -short")
	}
	for _, kill := range []bool{false, true} {
		name := "as-is"
		if kill {
			name = "sigkill"
		}
		t.Run(name, func(t *testing.T) {
			t.Run("kfake", func(t *testing.T) {
				testBadRecords(t, kafkatest.New(t).Addrs(), kill)
			})
			t.Run("kafka", func(t *testing.T) {
				brokers := os.Getenv("TIDEMARK_KAFKA_BROKERS")
				if brokers == "" {
					t.Skip("TIDEMARK_KAFKA_BROKERS is not set: start a broker with scripts/kafka/broker.sh start")
				}
				addrs := strings.Split(brokers, ",")
				resetPipeline(t, addrs)
				testBadRecords(t, addrs, kill)
			})
		})
	}
}

func testBadRecords(t *testing.T, addrs []string, kill bool) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TIDEMARK_SEED"); s != "" {
		_, err := fmt.Sscan(s, &seed)
		require.NoError(t, err, "TIDEMARK_SEED")
	}
	t.Logf("seed %d (TIDEMARK_SEED=%d to repeat)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 14))
	cfg := btc.Config{Windows: []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}, Horizon: 2 * time.Second,
		Lateness: 3 * time.Second, Partitions: 3, MaxAhead: time.Hour}
	lines := e2eTrace(r, 3000, stream.DurationOf(cfg.Lateness))

	// The poison lines and the 2099 line, each at a random place, a poison
	// stamped with the largest time before it: neither late nor ahead.
	dec := btc.NewDecoder()
	insert := func(line func(prev stream.Time) string) {
		at := 200 + r.IntN(len(lines)-400)
		prev := stream.MinTime
		for _, l := range lines[:at] {
			if p, err := dec.Decode([]byte(l)); err == nil && p.Time.UTC().Year() < 2099 {
				prev = max(prev, p.Time)
			}
		}
		lines = slices.Insert(lines, at, line(prev))
	}
	for _, sym := range []string{poisonMoving, poisonZScore, poisonBonus} {
		insert(func(prev stream.Time) string {
			return string(btc.AppendPrice(nil, btc.Price{Symbol: sym, Price: 100.5, Time: prev}))
		})
	}
	future := `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"2099-01-01T00:00:00.000Z"}`
	insert(func(stream.Time) string { return future })

	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.jsonl")
	require.NoError(t, os.WriteFile(trace, []byte(strings.Join(lines, "\n")+"\n"), 0o644), "write the trace")
	sum, err := btc.Offline(context.Background(), strings.NewReader(strings.Join(lines, "\n")+"\n"), filepath.Join(dir, "offline"), cfg, quietLog())
	require.NoError(t, err, "offline")
	require.Equal(t, uint64(1), sum.Ahead, "offline refuses the 2099 event")
	want := map[string][]string{}
	for _, kd := range []btc.Kind{btc.Moving, btc.ZScore, btc.Higher, btc.Lower} {
		for _, l := range readLines(t, filepath.Join(dir, "offline", kd.FileName())) {
			if !slices.ContainsFunc(refusedBy[kd.Topic()], func(sym string) bool { return strings.Contains(l, `"symbol":"`+sym+`"`) }) {
				want[kd.Topic()] = append(want[kd.Topic()], l)
			}
		}
	}
	for _, sym := range []string{poisonMoving, poisonZScore, poisonBonus} {
		require.True(t, slices.ContainsFunc(want[btc.Higher.Topic()], func(l string) bool { return strings.Contains(l, sym) }),
			"offline computes the poison symbols' results (higher answers of %.8s...)", sym)
	}

	// The topics, with the limits that make the poison records poison.
	client, err := sarama.NewClient(addrs, nil)
	require.NoError(t, err, "client")
	defer client.Close()
	adm, err := sarama.NewClusterAdminFromClient(client)
	require.NoError(t, err, "admin")
	specs := btc.TopicSpecs(cfg.Partitions)
	for i := range specs {
		if l, ok := poisonLimits[specs[i].Name]; ok {
			specs[i].Config["max.message.bytes"] = l
		}
	}
	require.NoError(t, kafkaio.EnsureTopics(context.Background(), adm, specs), "topics")

	// The store: a unique index on (symbol, timestamp) in the 5s
	// collection, and a document holding the place of one z-score.
	m := mongotest.New(t, mongotest.WithLogger(quietLog()))
	mc, err := mongo.Connect(mongoopts.Client().ApplyURI(m.URI()))
	require.NoError(t, err, "mongo client")
	defer mc.Disconnect(context.Background())
	db := mc.Database(btc.Database)
	blockedColl := btc.Collection("5s")
	zs := want[btc.ZScore.Topic()]
	blocked := zs[r.IntN(len(zs))]
	var bz struct {
		Symbol    string `json:"symbol"`
		Timestamp string `json:"timestamp"`
	}
	require.NoError(t, json.Unmarshal([]byte(blocked), &bz), "the blocked z-score")
	bt, err := time.Parse(time.RFC3339Nano, bz.Timestamp)
	require.NoError(t, err, "its time")
	_, err = db.Collection(blockedColl).Indexes().CreateOne(context.Background(), mongo.IndexModel{
		Keys: bson.D{{Key: "symbol", Value: 1}, {Key: "timestamp", Value: 1}}, Options: mongoopts.Index().SetUnique(true)})
	require.NoError(t, err, "unique index")
	blocker := bson.M{"_id": "blocker", "symbol": bz.Symbol, "timestamp": bson.NewDateTimeFromTime(bt)}
	_, err = db.Collection(blockedColl).InsertOne(context.Background(), blocker)
	require.NoError(t, err, "the blocker")
	t.Logf("the blocked z-score: %s at %s in %s", bz.Symbol, bz.Timestamp, blockedColl)

	common := []string{"--brokers", strings.Join(addrs, ","), "--partitions", fmt.Sprint(cfg.Partitions), "--windows", "1s,5s,30s",
		"--horizon", "2s", "--lateness", "3s", "--log-level", "info"}
	newProc := func(name string, args ...string) *proc {
		return &proc{name: name, args: append(args, common...), log: &syncBuffer{}}
	}
	stages := []*proc{
		newProc("moving", "moving", "--instance-id", "moving-1"),
		newProc("zscore", "zscore", "--instance-id", "zscore-1"),
		newProc("bonus", "bonus", "--instance-id", "bonus-1"),
		newProc("load", "load", "--instance-id", "load-1", "--mongo-uri", m.URI()),
	}
	extract := newProc("extract", "extract", "--source", "replay:"+trace, "--speed", "0")
	all := append(slices.Clone(stages), extract)
	defer func() {
		for _, p := range all {
			if ok, _ := p.exited(); !ok {
				p.kill()
			}
			p.raceFree(t)
			if t.Failed() {
				t.Logf("log of %s:\n%s", p.name, p.log)
			}
		}
	}()
	for _, p := range stages {
		p.start(t)
	}
	extract.start(t)

	// With kill, each stage is killed once, as soon as it says it refused a
	// result, and restarted.
	const refusedLog = "a result cannot be written"
	killed := map[string]bool{}
	nz := len(zs)
	var read map[string][]*sarama.ConsumerMessage
	got := func(topic string) []string {
		var out []string
		for _, msg := range read[topic] {
			out = append(out, string(msg.Value))
		}
		return out
	}
	complete := func() bool {
		for _, p := range stages {
			if done, err := p.exited(); done {
				t.Fatalf("%s exited by itself (%v); log:\n%s", p.name, err, p.log)
			}
			if kill && !killed[p.name] && strings.Contains(p.log.String(), refusedLog) {
				p.kill()
				killed[p.name] = true
				t.Logf("%s killed right after its first refused result", p.name)
				p.start(t)
			}
		}
		if kill && len(killed) < len(stages) {
			return false
		}
		read = btctest.ReadCommitted(t, addrs, btc.Moving.Topic(), btc.ZScore.Topic(), btc.Higher.Topic(), btc.Lower.Topic())
		for topic, w := range want {
			if len(got(topic)) < len(w) {
				return false
			}
		}
		for _, w := range cfg.Windows {
			n, err := db.Collection(btc.Collection(btc.Label(w))).CountDocuments(context.Background(), bson.D{})
			if err != nil || n < int64(nz) {
				return false
			}
		}
		return true
	}
	if !btctest.WaitFor(t, 4*time.Minute, complete) {
		for topic, w := range want {
			t.Errorf("%s: %d of %d records", topic, len(got(topic)), len(w))
		}
		t.FailNow()
	}
	if done, err := extract.exited(); !done || err != nil {
		t.Fatalf("extract: done %v, %v; log:\n%s", done, err, extract.log)
	}
	for _, p := range stages {
		p.stop(t)
	}
	topics := []string{btc.Moving.Topic(), btc.ZScore.Topic(), btc.Higher.Topic(), btc.Lower.Topic(), btc.DeadLetterTopic}
	btctest.Settle(t, addrs, time.Minute, topics...)
	read = btctest.ReadCommitted(t, addrs, topics...)
	for topic, w := range want {
		btctest.SameRecords(t, topic, w, got(topic))
		t.Logf("%s: %d records, equal to offline's", topic, len(w))
	}

	// The dead letters: the invalid lines and the 2099 event, by moving;
	// then one per stage and poison, and the blocked z-score's record.
	type letter struct{ stage, output, key string }
	var letters []letter
	invalid := 0
	for _, d := range read[btc.DeadLetterTopic] {
		h := map[string]string{}
		for _, rh := range d.Headers {
			h[string(rh.Key)] = string(rh.Value)
		}
		switch {
		case h[kafkaio.HeaderOutputTopic] == "" && h[kafkaio.HeaderErrorKind] == "too-far-ahead":
			assert.Equal(t, future, string(d.Value), "the 2099 event's dead letter")
			assert.Equal(t, btc.MovingGroup, h[kafkaio.HeaderStage], "dead-lettered by moving")
			assert.Contains(t, h[kafkaio.HeaderError], "ahead", "its reason")
			letters = append(letters, letter{h[kafkaio.HeaderStage], "", "2099"})
		case h[kafkaio.HeaderOutputTopic] == "":
			invalid++
		default:
			assert.NotEmpty(t, h[kafkaio.HeaderError], "a refused result's reason")
			key := string(d.Key)
			if len(key) > 8 {
				key = key[:8]
			}
			if h[kafkaio.HeaderOutputTopic] == "sink" {
				assert.Equal(t, btc.ZScore.Topic(), h[kafkaio.HeaderTopic], "the load stage's input")
				assert.Equal(t, blocked, string(d.Value), "the blocked z-score's record, untouched")
				assert.Contains(t, h[kafkaio.HeaderError], "duplicate key", "the store's reason")
			} else {
				assert.Contains(t, h[kafkaio.HeaderErrorKind], "too-large", "a result too large for %s", h[kafkaio.HeaderOutputTopic])
				assert.NotEmpty(t, h[kafkaio.HeaderSize], "its size")
				p, err := dec.Decode(d.Value)
				if h[kafkaio.HeaderTopic] == btc.PriceTopic {
					require.NoError(t, err, "the poison's price record, untouched")
					assert.Equal(t, string(d.Key), p.Symbol, "its key")
				}
			}
			letters = append(letters, letter{h[kafkaio.HeaderStage], h[kafkaio.HeaderOutputTopic], key})
		}
	}
	assert.Equal(t, int(sum.Invalid)-1, invalid, "the invalid lines, once each")
	slices.SortFunc(letters, func(a, b letter) int { return strings.Compare(a.stage+a.output+a.key, b.stage+b.output+b.key) })
	wantLetters := []letter{
		{btc.BonusGroup, btc.Lower.Topic(), "BBBBBBBB"},
		{btc.BonusGroup, btc.Lower.Topic(), "MMMMMMMM"},
		{btc.BonusGroup, btc.Lower.Topic(), "ZZZZZZZZ"},
		{btc.LoadGroup, "sink", bz.Symbol},
		{btc.MovingGroup, "", "2099"},
		{btc.MovingGroup, btc.Moving.Topic(), "MMMMMMMM"},
		{btc.ZScoreGroup, btc.ZScore.Topic(), "ZZZZZZZZ"},
	}
	assert.Equal(t, wantLetters, letters, "the dead letters of the poison records, the blocked z-score and the 2099 event, once each")

	// The blocker is untouched, and every other document is offline's: all
	// but the blocked z-score's in its collection (its other windows'
	// documents are written).
	var docs []bson.M
	cur, err := db.Collection(blockedColl).Find(context.Background(), bson.D{{Key: "_id", Value: "blocker"}})
	require.NoError(t, err, "find the blocker")
	require.NoError(t, cur.All(context.Background(), &docs), "read the blocker")
	require.Equal(t, []bson.M{blocker}, docs, "the blocker is untouched")
	_, err = db.Collection(blockedColl).DeleteOne(context.Background(), bson.D{{Key: "_id", Value: "blocker"}})
	require.NoError(t, err, "take the blocker out")
	n := btctest.CheckDocumentsExcept(t, db, len(cfg.Windows), zs, map[string]string{blockedColl: bz.Symbol + "|" + bz.Timestamp})
	require.Equal(t, len(cfg.Windows)*nz-1, n, "documents")
	if kill {
		require.Len(t, killed, len(stages), "every stage was killed after a refusal")
	}
	for _, p := range stages {
		assert.Contains(t, p.log.String(), `msg="btc-pipeline `+p.args[0]+`: stopped"`, "%s: a clean stop", p.name)
	}
}
