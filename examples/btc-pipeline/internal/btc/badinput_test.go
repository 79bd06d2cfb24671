package btc

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btctest"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/stream"
)

// bad is a malformed record and why it must be refused: reason is the
// btc-price decode error (the reason of offline's dead letter and of the
// stages' tidemark-error header); kind is the tidemark-error-kind a stage
// gives it.
type bad struct {
	value  string
	reason error  // btc-price records
	kind   string // every record
}

// badKinds makes one malformed btc-price record of each kind: every kind of
// the contract (not JSON, blank, not an object, a field missing or of the
// wrong type, a bad price, an unparseable time, a symbol that is not UTF-8),
// records of the other topics' schemas, invalid UTF-8 elsewhere, nesting
// beyond the limit; oversized makes the records of 1 MiB and more.
var badKinds = []func(r *rand.Rand, ts string) bad{
	func(*rand.Rand, string) bad { return bad{"", ErrNotJSON, "not-json"} },
	func(r *rand.Rand, _ string) bad {
		return bad{strings.Repeat(" \t", 1+r.IntN(3)), ErrNotJSON, "not-json"}
	},
	func(*rand.Rand, string) bad { return bad{"\r", ErrNotJSON, "not-json"} },
	func(r *rand.Rand, ts string) bad {
		full := fmt.Sprintf(`{"symbol":"BTCUSDT","price":%d.5,"timestamp":%q}`, 1+r.IntN(99999), ts)
		return bad{full[:1+r.IntN(len(full)-1)], ErrNotJSON, "not-json"} // cut anywhere
	},
	func(r *rand.Rand, ts string) bad {
		return bad{fmt.Sprintf(`{"symbol":"BTCUSDT","price":1,"timestamp":%q} %d`, ts, r.IntN(9)), ErrNotJSON, "not-json"}
	},
	func(_ *rand.Rand, ts string) bad {
		return bad{fmt.Sprintf(`{"symbol":"BTCUSDT","price":NaN,"timestamp":%q}`, ts), ErrNotJSON, "not-json"}
	},
	func(_ *rand.Rand, ts string) bad {
		return bad{fmt.Sprintf("\ufeff"+`{"symbol":"BTCUSDT","price":1,"timestamp":%q}`, ts), ErrNotJSON, "not-json"}
	},
	func(r *rand.Rand, _ string) bad {
		return bad{[]string{`[1,2]`, `"BTCUSDT"`, `42`, `null`, `true`, `[]`}[r.IntN(6)], ErrNotObject, "not-object"}
	},
	func(_ *rand.Rand, ts string) bad {
		return bad{fmt.Sprintf(`{"price":1,"timestamp":%q}`, ts), ErrNoSymbol, "no-symbol"}
	},
	func(r *rand.Rand, ts string) bad {
		sym := []string{`""`, `7`, `null`, `["BTCUSDT"]`, `{"s":"BTCUSDT"}`}[r.IntN(5)]
		return bad{fmt.Sprintf(`{"symbol":%s,"price":1,"timestamp":%q}`, sym, ts), ErrSymbolType, "symbol-type"}
	},
	func(_ *rand.Rand, ts string) bad {
		return bad{fmt.Sprintf("{\"symbol\":\"BTC\xff\xfeUSDT\",\"price\":1,\"timestamp\":%q}", ts), ErrSymbolUTF8, "symbol-utf8"}
	},
	func(_ *rand.Rand, ts string) bad {
		return bad{fmt.Sprintf(`{"symbol":"BTC\udc00","price":1,"timestamp":%q}`, ts), ErrSymbolUTF8, "symbol-utf8"}
	},
	func(_ *rand.Rand, ts string) bad {
		return bad{fmt.Sprintf(`{"symbol":"BTCUSDT","timestamp":%q}`, ts), ErrNoPrice, "no-price"}
	},
	func(r *rand.Rand, ts string) bad {
		p := []string{`"99190.48"`, `null`, `true`, `[1]`}[r.IntN(4)]
		return bad{fmt.Sprintf(`{"symbol":"BTCUSDT","price":%s,"timestamp":%q}`, p, ts), ErrPriceType, "price-type"}
	},
	func(r *rand.Rand, ts string) bad {
		p := []string{`0`, `-0`, `-1.5`, `1e16`, `1e300`, `1e400`, `0.0`}[r.IntN(7)]
		return bad{fmt.Sprintf(`{"symbol":"BTCUSDT","price":%s,"timestamp":%q}`, p, ts), ErrBadPrice, "bad-price"}
	},
	func(*rand.Rand, string) bad {
		return bad{`{"symbol":"BTCUSDT","price":1}`, ErrNoTimestamp, "no-timestamp"}
	},
	func(r *rand.Rand, _ string) bad {
		return bad{fmt.Sprintf(`{"symbol":"BTCUSDT","price":1,"timestamp":%d}`, r.Int64N(1<<41)), ErrTimeType, "timestamp-type"}
	},
	func(r *rand.Rand, ts string) bad {
		tv := []string{strings.TrimSuffix(ts, "Z"), "yesterday", "2025-02-30T00:00:00Z", ts + "+01:00", ""}[r.IntN(5)]
		return bad{fmt.Sprintf(`{"symbol":"BTCUSDT","price":1,"timestamp":%q}`, tv), ErrBadTimestamp, "bad-timestamp"}
	},
	func(_ *rand.Rand, ts string) bad {
		return bad{fmt.Sprintf("{\"symbol\":\"BTCUSDT\",\"note\":\"\xc3(\",\"price\":1,\"timestamp\":%q}", ts), ErrNotUTF8, "not-utf8"}
	},
	func(_ *rand.Rand, ts string) bad {
		deep := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
		return bad{fmt.Sprintf(`{"symbol":"BTCUSDT","x":%s,"price":1,"timestamp":%q}`, deep, ts), ErrTooDeep, "too-deep"}
	},
	// Records of the derived topics' schemas, which have no price.
	func(r *rand.Rand, ts string) bad {
		return bad{fmt.Sprintf(`{"timestamp":%q,"symbol":"BTCUSDT","windows":[{"window":"1s","avg_price":%d.5,"std_price":null,"count":1}]}`, ts, 1+r.IntN(9999)), ErrNoPrice, "no-price"}
	},
	func(_ *rand.Rand, ts string) bad {
		return bad{fmt.Sprintf(`{"timestamp":%q,"symbol":"BTCUSDT","higher_window":20.0}`, ts), ErrNoPrice, "no-price"}
	},
	func(_ *rand.Rand, ts string) bad {
		return bad{fmt.Sprintf(`{"timestamp":%q,"symbol":"BTCUSDT","lower_window":0.25}`, ts), ErrNoPrice, "no-price"}
	},
}

// oversized is a record of MaxLineBytes or more that would be valid but for
// its size.
func oversized(r *rand.Rand, ts string) bad {
	pad := strings.Repeat("x", MaxLineBytes+r.IntN(1000))
	return bad{fmt.Sprintf(`{"symbol":"BTCUSDT","price":1,"timestamp":%q,"pad":%q}`, ts, pad), ErrLineTooLong, "too-long"}
}

// badMovingKinds and badZScoreKinds are malformed records of btc-price-moving
// and btc-price-zscore (for testConfig's windows 1s, 5s, 30s): other
// schemas, other windows, not JSON, not UTF-8.
var badMovingKinds = []func(ts string) bad{
	func(ts string) bad {
		return bad{value: fmt.Sprintf(`{"symbol":"BTCUSDT","price":1,"timestamp":%q}`, ts), kind: "moving-windows"}
	},
	func(ts string) bad {
		return bad{value: fmt.Sprintf(`{"timestamp":%q,"symbol":"BTCUSDT","price":1,"zscores":[{"window":"1s","zscore_price":null}]}`, ts), kind: "moving-windows"}
	},
	func(ts string) bad {
		return bad{value: fmt.Sprintf(`{"timestamp":%q,"symbol":"BTCUSDT","windows":[{"window":"1m","avg_price":1,"std_price":null,"count":1}]}`, ts), kind: "moving-windows"}
	},
	func(string) bad { return bad{value: `not json`, kind: "moving-json"} },
	func(string) bad { return bad{value: `[1]`, kind: "moving-json"} },
	func(string) bad { return bad{value: `{"symbol":"BTCUSDT","windows":[]}`, kind: "moving-head"} },
	func(ts string) bad {
		return bad{value: fmt.Sprintf("{\"timestamp\":%q,\"symbol\":\"BTC\xff\",\"windows\":[]}", ts), kind: "moving-utf8"}
	},
}

var badZScoreKinds = []func(ts string) bad{
	func(ts string) bad {
		return bad{value: fmt.Sprintf(`{"symbol":"BTCUSDT","price":1,"timestamp":%q}`, ts), kind: "zscore-windows"}
	},
	func(ts string) bad {
		return bad{value: fmt.Sprintf(`{"timestamp":%q,"symbol":"BTCUSDT","windows":[{"window":"1s","avg_price":1,"std_price":null,"count":1}]}`, ts), kind: "zscore-head"}
	},
	func(ts string) bad {
		return bad{value: fmt.Sprintf(`{"timestamp":%q,"symbol":"BTCUSDT","price":1,"zscores":[{"window":"1m","zscore_price":null},{"window":"5s","zscore_price":1},{"window":"30s","zscore_price":1}]}`, ts), kind: "zscore-windows"}
	},
	func(string) bad { return bad{value: `{"timestamp":`, kind: "zscore-json"} },
	func(ts string) bad {
		return bad{value: fmt.Sprintf("{\"timestamp\":%q,\"symbol\":\"\xc3\",\"price\":1,\"zscores\":[]}", ts), kind: "zscore-utf8"}
	},
}

// mixBad inserts bads into lines at random places and returns the mixed
// lines and, for each bad, its index there.
func mixBad(r *rand.Rand, lines []string, bads []bad) ([]string, []int) {
	isBad := make([]bool, len(lines)+len(bads))
	for _, i := range r.Perm(len(isBad))[:len(bads)] {
		isBad[i] = true
	}
	mixed := make([]string, 0, len(isBad))
	at := make([]int, 0, len(bads))
	for i, b := range isBad {
		if b {
			at = append(at, i)
			mixed = append(mixed, bads[len(at)-1].value)
		} else {
			mixed = append(mixed, lines[i-len(at)])
		}
	}
	return mixed, at
}

// TestBadInputOffline mixes hundreds of malformed records of every kind into
// a valid trace: offline writes a dead letter for each, with its reason and
// the line untouched, and outputs equal to those of the valid records alone.
func TestBadInputOffline(t *testing.T) {
	seed := seedOf(t)
	r := rand.New(rand.NewPCG(seed, 5))
	cfg := testConfig()
	valid, bads := badTrace(t, r, cfg, 400, 2)
	mixed, at := mixBad(r, valid, bads)

	dir := t.TempDir()
	sumBad, err := Offline(context.Background(), strings.NewReader(strings.Join(mixed, "\n")+"\n"), filepath.Join(dir, "mixed"), cfg, quiet)
	require.NoError(t, err, "offline over the mixed trace")
	sumOK, err := Offline(context.Background(), strings.NewReader(strings.Join(valid, "\n")+"\n"), filepath.Join(dir, "valid"), cfg, quiet)
	require.NoError(t, err, "offline over the valid records")
	require.Zero(t, sumOK.Invalid, "the valid records are valid")
	assert.Equal(t, uint64(len(bads)), sumBad.Invalid, "every malformed record is invalid")
	assert.Equal(t, uint64(len(mixed)), sumBad.Lines, "every line is a record")
	for kd := range numKinds {
		want, err := os.ReadFile(filepath.Join(dir, "valid", kd.FileName()))
		require.NoError(t, err, "read")
		got, err := os.ReadFile(filepath.Join(dir, "mixed", kd.FileName()))
		require.NoError(t, err, "read")
		require.NotEmpty(t, want, "%s: the valid trace has results", kd.FileName())
		require.True(t, bytes.Equal(want, got), "%s: the malformed records change nothing", kd.FileName())
	}

	type deadLetter struct {
		Line      int     `json:"line"`
		Reason    string  `json:"reason"`
		Value     *string `json:"value"`
		Base64    *string `json:"value_base64"`
		Truncated bool    `json:"truncated"`
	}
	dl := readLines(t, filepath.Join(dir, "mixed", DeadLetterFile))
	require.Len(t, dl, len(bads), "one dead letter per malformed record")
	byLine := map[int]deadLetter{}
	for _, l := range dl {
		var d deadLetter
		require.NoError(t, json.Unmarshal([]byte(l), &d), "a dead letter is JSON: %.200q", l)
		byLine[d.Line] = d
	}
	kinds := map[string]int{}
	for i, b := range bads {
		d, ok := byLine[at[i]+1]
		require.True(t, ok, "dead letter of line %d (%.80q)", at[i]+1, b.value)
		assert.Equal(t, b.reason.Error(), d.Reason, "reason of line %d (%.80q)", at[i]+1, b.value)
		var v string
		switch {
		case d.Value != nil:
			v = *d.Value
		case d.Base64 != nil:
			raw, err := base64.StdEncoding.DecodeString(*d.Base64)
			require.NoError(t, err, "value_base64")
			v = string(raw)
			assert.False(t, utf8.ValidString(b.value), "only lines that are not UTF-8 go in base64")
		default:
			t.Fatalf("dead letter of line %d has no value", at[i]+1)
		}
		if b.reason == ErrLineTooLong {
			assert.True(t, d.Truncated, "an oversized line is cut")
			assert.True(t, strings.HasPrefix(b.value, v) && len(v) == MaxLineBytes, "its first MiB")
		} else {
			assert.Equal(t, b.value, v, "line %d untouched", at[i]+1)
		}
		kinds[b.kind]++
	}
	t.Logf("seed %d: %d valid records, %d malformed of %d kinds %v: each dead-lettered with its reason, outputs unchanged",
		seed, len(valid), len(bads), len(kinds), kinds)
}

// seedOf returns a fresh seed, or TIDEMARK_SEED's, and logs it.
func seedOf(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TIDEMARK_SEED"); s != "" {
		_, err := fmt.Sscan(s, &seed)
		require.NoError(t, err, "TIDEMARK_SEED")
	}
	t.Logf("seed %d (TIDEMARK_SEED=%d to repeat)", seed, seed)
	return seed
}

// badTrace returns the valid records of a messy trace (duplicates, late
// events, disorder) and n malformed btc-price records of every kind, with
// big of them oversized.
func badTrace(t *testing.T, r *rand.Rand, cfg Config, n, big int) ([]string, []bad) {
	tr, _ := genTrace(r, r, 2500, stream.DurationOf(cfg.Lateness), true)
	dec := NewDecoder()
	var valid []string
	for _, l := range tr.lines {
		if _, err := dec.Decode([]byte(l)); err == nil {
			valid = append(valid, l)
		}
	}
	ts := "2025-05-08T04:12:38.352Z"
	var bads []bad
	for i := range n - big {
		bads = append(bads, badKinds[i%len(badKinds)](r, ts))
	}
	for range big {
		bads = append(bads, oversized(r, ts))
	}
	for _, b := range bads {
		_, err := dec.Decode([]byte(b.value))
		if b.reason != ErrLineTooLong {
			require.ErrorIs(t, err, b.reason, "the decoder refuses %.80q for its reason", b.value)
		}
	}
	return valid, bads
}

// TestBadInputEveryStage runs the stages over the same kind of mix on the
// embedded broker, with malformed records in btc-price-moving and
// btc-price-zscore as well: every malformed record is dead-lettered once,
// untouched (an oversized one cut to fit, and marked), with its reason and
// topic in headers, by the stage that reads it first (moving for btc-price,
// zscore for btc-price-moving, load for btc-price-zscore); every output
// topic and every MongoDB document equals offline's output for the valid
// records alone.
func TestBadInputEveryStage(t *testing.T) {
	seed := seedOf(t)
	r := rand.New(rand.NewPCG(seed, 6))
	cfg := testConfig()
	const partitions = 3
	cfg.Partitions = partitions
	valid, bads := badTrace(t, r, cfg, 300, 2)
	mixed, _ := mixBad(r, valid, bads)
	var badMoving, badZ []bad
	for i := range 70 {
		badMoving = append(badMoving, badMovingKinds[i%len(badMovingKinds)]("2025-05-08T04:12:38.352Z"))
	}
	for i := range 50 {
		badZ = append(badZ, badZScoreKinds[i%len(badZScoreKinds)]("2025-05-08T04:12:38.352Z"))
	}

	dir := t.TempDir()
	sum, err := Offline(context.Background(), strings.NewReader(strings.Join(valid, "\n")+"\n"), dir, cfg, quiet)
	require.NoError(t, err, "offline over the valid records")
	require.Zero(t, sum.Invalid, "valid")

	k := kafkatest.New(t)
	addrs := k.Addrs()
	client, err := sarama.NewClient(addrs, nil)
	require.NoError(t, err, "client")
	defer client.Close()
	adm, err := sarama.NewClusterAdminFromClient(client)
	require.NoError(t, err, "admin")
	specs := TopicSpecs(partitions)
	for i := range specs {
		if specs[i].Name == PriceTopic { // a topic that takes the oversized records
			specs[i].Config["max.message.bytes"] = strconv.Itoa(4 << 20)
		}
	}
	require.NoError(t, kafkaio.EnsureTopics(context.Background(), adm, specs), "topics")

	big, err := kafkaio.NewConfig(kafkaio.WithConfig(func(c *sarama.Config) { c.Producer.MaxMessageBytes = 4 << 20 }))
	require.NoError(t, err, "config")
	produce := func(topic string, values []string, key func(i int) string) {
		sink, err := kafkaio.NewSink[[]byte](nil, kafkaio.Raw{}, kafkaio.WithTopic(topic), kafkaio.WithBrokers(addrs, big))
		require.NoError(t, err, "sink")
		for i, v := range values {
			require.NoError(t, sink.Write(context.Background(), stream.Event[[]byte]{Key: key(i), Time: stream.TimeOf(time.Now()), Value: []byte(v)}), "produce")
		}
		require.NoError(t, sink.Close(context.Background()), "produce to %s", topic)
	}
	values := func(bs []bad) []string {
		var out []string
		for _, b := range bs {
			out = append(out, b.value)
		}
		return out
	}
	symbols := []string{"", "BTCUSDT", "ETHUSDT", "SOLUSDT", "junk"}
	produce(Moving.Topic(), values(badMoving), func(int) string { return symbols[r.IntN(len(symbols))] })
	produce(ZScore.Topic(), values(badZ), func(int) string { return symbols[r.IntN(len(symbols))] })
	dec := NewDecoder()
	last := stream.MinTime
	for _, l := range valid {
		p, _ := dec.Decode([]byte(l))
		last = max(last, p.Time)
	}
	var ends []string
	for _, e := range sentinels(cfg, partitions, last) {
		ends = append(ends, string(e.Value))
	}
	all := append(slices.Clone(mixed), ends...)
	produce(PriceTopic, all, func(i int) string {
		if p, err := dec.Decode([]byte(all[i])); err == nil {
			return p.Symbol
		}
		return symbols[r.IntN(len(symbols))] // extract keys them "", others may not
	})

	moving, zs, bonus, load, loader, mc := newLab(t, cfg, addrs)
	stop := runStages(t, moving, zs, bonus, load)

	want := make(map[string][]string)
	for kd := range numKinds {
		want[kd.Topic()] = readLines(t, filepath.Join(dir, kd.FileName()))
	}
	n, nz := uint64(len(all)), uint64(len(want[ZScore.Topic()]))
	done := func() bool {
		ms, zst, bs, ls := moving.Stats(), zs.Stats(), bonus.Stats(), load.Stats()
		return ms.Records >= n && bs.Records >= n &&
			zst.Records >= n+uint64(len(want[Moving.Topic()])+len(badMoving)+2*partitions) &&
			zst.Emitted >= nz+partitions && ls.Emitted >= nz+partitions && ls.Rejected >= uint64(len(badZ))
	}
	if !btctest.WaitFor(t, 2*time.Minute, func() bool { return t.Failed() || done() }) {
		t.Fatalf("the stages did not read everything: moving %+v zscore %+v bonus %+v load %+v",
			moving.Stats(), zs.Stats(), bonus.Stats(), load.Stats())
	}
	for i, err := range stop() {
		require.NoError(t, err, "stage %d Run", i)
	}
	require.NoError(t, loader.Close(context.Background()), "close the loader")

	ms, zst, bs, ls := moving.Stats(), zs.Stats(), bonus.Stats(), load.Stats()
	assert.Equal(t, uint64(len(bads)), ms.Rejected, "moving: rejected")
	assert.Equal(t, uint64(len(bads)), ms.DeadLettered, "moving: dead-lettered")
	assert.Equal(t, uint64(len(bads)+len(badMoving)), zst.Rejected, "zscore: rejected (btc-price and btc-price-moving)")
	assert.Equal(t, uint64(len(badMoving)), zst.DeadLettered, "zscore: dead-lettered (btc-price-moving only)")
	assert.Equal(t, uint64(len(bads)), bs.Rejected, "bonus: rejected")
	assert.Zero(t, bs.DeadLettered, "bonus: dead-lettered (moving does)")
	assert.Equal(t, uint64(len(badZ)), ls.Rejected, "load: rejected")
	assert.Equal(t, uint64(len(badZ)), ls.DeadLettered, "load: dead-lettered")

	read := btctest.ReadCommitted(t, addrs, Moving.Topic(), ZScore.Topic(), Higher.Topic(), Lower.Topic(), DeadLetterTopic)
	injected := map[string]map[string]int{Moving.Topic(): {}, ZScore.Topic(): {}}
	for _, b := range badMoving {
		injected[Moving.Topic()][b.value]++
	}
	for _, b := range badZ {
		injected[ZScore.Topic()][b.value]++
	}
	checked := 0
	for kd := range numKinds {
		topic := kd.Topic()
		var got []string
		for _, m := range read[topic] {
			if strings.HasPrefix(string(m.Key), sentinelPrefix) {
				continue
			}
			if inj := injected[topic]; inj != nil && inj[string(m.Value)] > 0 {
				inj[string(m.Value)]--
				continue
			}
			got = append(got, string(m.Value))
		}
		checked += btctest.SameRecords(t, topic, want[topic], got)
	}
	docs := btctest.CheckDocuments(t, mc.Database(Database), len(cfg.Windows), want[ZScore.Topic()], sentinelPrefix)

	// Every malformed record is in btc-price-dlq once, from its topic,
	// with its reason.
	type expect struct {
		topic, value, kind, reason string
	}
	var wantDL []expect
	for _, b := range bads {
		wantDL = append(wantDL, expect{PriceTopic, b.value, b.kind, b.kind + ": " + b.reason.Error()})
	}
	for _, b := range badMoving {
		wantDL = append(wantDL, expect{Moving.Topic(), b.value, b.kind, ""})
	}
	for _, b := range badZ {
		wantDL = append(wantDL, expect{ZScore.Topic(), b.value, b.kind, ""})
	}
	var gotDL []expect
	truncated := 0
	stageCfg, err := kafkaio.NewConfig()
	require.NoError(t, err, "config")
	limit := stageCfg.Producer.MaxMessageBytes
	for _, m := range read[DeadLetterTopic] {
		h := headers(m)
		e := expect{h[kafkaio.HeaderTopic], string(m.Value), h[kafkaio.HeaderErrorKind], h[kafkaio.HeaderError]}
		if l, ok := h[kafkaio.HeaderTruncated]; ok {
			truncated++
			n, err := strconv.Atoi(l)
			require.NoError(t, err, "truncated header")
			var orig string
			for _, b := range bads {
				if len(b.value) == n && strings.HasPrefix(b.value, e.value) {
					orig = b.value
				}
			}
			require.NotEmpty(t, orig, "a cut dead letter is the start of a malformed record of that length")
			assert.Less(t, len(m.Value)+len(m.Key), limit, "cut to fit the producer's limit")
			e.value = orig
		}
		if e.topic != PriceTopic {
			e.reason = "" // the derived codecs' reasons are the decoders' messages
		}
		gotDL = append(gotDL, e)
	}
	cmpExpect := func(a, b expect) int {
		return strings.Compare(a.topic+"\x00"+a.kind+"\x00"+a.reason+"\x00"+a.value, b.topic+"\x00"+b.kind+"\x00"+b.reason+"\x00"+b.value)
	}
	slices.SortFunc(wantDL, cmpExpect)
	slices.SortFunc(gotDL, cmpExpect)
	require.Equal(t, len(wantDL), len(gotDL), "dead letters: one per malformed record")
	for i := range wantDL {
		require.Equal(t, wantDL[i], gotDL[i], "dead letter %d (sorted)", i)
	}
	assert.Equal(t, 2, truncated, "the oversized records were cut to fit")
	t.Logf("%d valid records, %d + %d + %d malformed (btc-price, -moving, -zscore): %d dead letters, %d output records and %d documents equal to offline's for the valid records",
		len(valid), len(bads), len(badMoving), len(badZ), len(gotDL), checked, docs)
}

// headers returns a record's headers by key.
func headers(m *sarama.ConsumerMessage) map[string]string {
	h := map[string]string{}
	for _, r := range m.Headers {
		h[string(r.Key)] = string(r.Value)
	}
	return h
}
