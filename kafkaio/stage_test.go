package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tidemark-go/tidemark/lookahead"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/window"
)

// px is a price as the stage tests write it: the event time travels in the
// value, and the records carry the producer's wall clock as their
// timestamp, so nothing in the stages may rely on record timestamps.
type px struct {
	T int64   `json:"t"`
	P float64 `json:"p"`
}

var pxCodec = JSON[px]{Time: func(v *px) (stream.Time, error) { return stream.Time(v.T), nil }}

// mstat is one window's statistics in a moving record; Std is null with
// one event.
type mstat struct {
	N    int64    `json:"n"`
	Mean float64  `json:"mean"`
	Std  *float64 `json:"std"`
}

// priceOf maps px to its price.
type priceOf struct{}

func (priceOf) Process(e stream.Event[px], out stream.Emitter[float64]) {
	out.Emit(stream.Event[float64]{Key: e.Key, Time: e.Time, Value: e.Value.P})
}
func (priceOf) Advance(stream.Time, stream.Emitter[float64]) {}
func (priceOf) Bounds() stream.Bounds                        { return stream.Bounds{} }

// toMstat maps window statistics to mstat records.
type toMstat struct{ buf []mstat }

func (m *toMstat) Process(e stream.Event[[]window.Statistics], out stream.Emitter[[]mstat]) {
	m.buf = m.buf[:0]
	for _, s := range e.Value {
		var std *float64
		if !math.IsNaN(s.Std) {
			v := s.Std
			std = &v
		}
		m.buf = append(m.buf, mstat{N: s.Count, Mean: s.Mean, Std: std})
	}
	out.Emit(stream.Event[[]mstat]{Key: e.Key, Time: e.Time, Value: m.buf})
}
func (m *toMstat) Advance(stream.Time, stream.Emitter[[]mstat]) {}
func (m *toMstat) Bounds() stream.Bounds                        { return stream.Bounds{} }

// newMoving is the moving-statistics operator of the tests: windows of 3 s
// and 1 min.
func newMoving() (stream.Operator[px, []mstat], error) {
	tr, err := window.NewTrailingStatistics([]time.Duration{3 * time.Second, time.Minute})
	if err != nil {
		return nil, err
	}
	return stream.Chain(stream.Chain[px, float64, []window.Statistics](priceOf{}, tr), stream.Operator[[]window.Statistics, []mstat](&toMstat{})), nil
}

// newBonus is the lookahead operator of the tests: higher and lower within 5 s.
func newBonus() (stream.Operator[px, lookahead.Both[float64]], error) {
	hl, err := lookahead.NewHigherLower[float64](5 * time.Second)
	if err != nil {
		return nil, err
	}
	return stream.Chain[px, float64, lookahead.Both[float64]](priceOf{}, hl), nil
}

// zrec is a z-score record: the price and its z-score per window.
type zrec struct {
	P float64    `json:"p"`
	Z []*float64 `json:"z"`
}

// scoreOp scores a price against its moving record.
type scoreOp struct{}

func (scoreOp) Process(e stream.Event[stream.Pair[px, []mstat]], out stream.Emitter[zrec]) {
	r := zrec{P: e.Value.Left.P}
	for _, s := range e.Value.Right {
		var z *float64
		if s.Std != nil && *s.Std != 0 {
			v := (r.P - s.Mean) / *s.Std
			z = &v
		}
		r.Z = append(r.Z, z)
	}
	out.Emit(stream.Event[zrec]{Key: e.Key, Time: e.Time, Value: r})
}
func (scoreOp) Advance(stream.Time, stream.Emitter[zrec]) {}
func (scoreOp) Bounds() stream.Bounds                     { return stream.Bounds{} }

func copyMstats(dst *[]mstat, src []mstat) {
	*dst = (*dst)[:0]
	for _, s := range src {
		if s.Std != nil {
			v := *s.Std
			s.Std = &v
		}
		*dst = append(*dst, s)
	}
}

// newScore is the z-score operator of the tests: the join of prices with
// their moving records, then the scores.
func newScore() (stream.TwoInput[px, []mstat, zrec], error) {
	j, err := stream.NewJoin(stream.JoinConfig[px, []mstat]{CopyRight: copyMstats})
	if err != nil {
		return nil, err
	}
	return stream.ChainTwoInput[px, []mstat, stream.Pair[px, []mstat], zrec](j, scoreOp{}), nil
}

var mstatCodec = JSON[[]mstat]{}

// pxTrace is a messy price trace: several symbols, disorder within the
// lateness, duplicates of an identity with another price, late events, and
// quiet spells; it ends with one sentinel per partition far in the future,
// which makes every result before it final.
func pxTrace(tb testing.TB, r *rand.Rand, topic string, partitions int32, n int, lateness time.Duration) []stream.Event[px] {
	syms := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"}
	cents := []int64{9_919_048, 312_055, 14_420, 60_012, 52}
	now := int64(1_746_677_558_352)
	late := lateness.Milliseconds()
	var out []stream.Event[px]
	for range n {
		if r.IntN(200) == 0 {
			now += 30_000 + r.Int64N(60_000) // a quiet spell
		}
		now += r.Int64N(40)
		k := r.IntN(len(syms))
		cents[k] += r.Int64N(7) - 3
		t := now
		if late > 0 && r.IntN(4) == 0 {
			t -= r.Int64N(late + 1)
		}
		e := stream.Event[px]{Key: syms[k], Time: stream.Time(t), Value: px{T: t, P: float64(cents[k]) / 100}}
		out = append(out, e)
		switch r.IntN(100) {
		case 0:
			d := out[len(out)-1-r.IntN(min(len(out), 10))]
			d.Value.P += 0.01 // a duplicate identity, another price
			out = append(out, d)
		case 1:
			tl := now - late - 1 - r.Int64N(3000)
			out = append(out, stream.Event[px]{Key: e.Key, Time: stream.Time(tl), Value: px{T: tl, P: e.Value.P}})
		}
	}
	end := now + 3_600_000
	for p := range partitions {
		key := keyFor(tb, topic, p, partitions)
		out = append(out, stream.Event[px]{Key: key, Time: stream.Time(end), Value: px{T: end, P: 1}})
	}
	return out
}

// produceWallClock writes events as records stamped with the wall clock, not
// with their event times.
func produceWallClock[T any](tb testing.TB, k *cluster, topic string, codec Codec[T], events []stream.Event[T]) {
	tb.Helper()
	require.NoError(tb, produceWallClockE(tb, k, topic, codec, events), "produce to %s", topic)
}

// produceWallClockE is produceWallClock for goroutines other than the test's.
func produceWallClockE[T any](tb testing.TB, k *cluster, topic string, codec Codec[T], events []stream.Event[T]) error {
	c, err := sarama.NewClient(k.addrs, k.config(tb))
	if err != nil {
		return err
	}
	defer c.Close()
	p, err := sarama.NewSyncProducerFromClient(c)
	if err != nil {
		return err
	}
	defer p.Close()
	for len(events) > 0 {
		n := min(len(events), 1000)
		msgs := make([]*sarama.ProducerMessage, n)
		for i, e := range events[:n] {
			v, err := codec.AppendValue(nil, e)
			if err != nil {
				return err
			}
			msgs[i] = &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(e.Key), Value: sarama.ByteEncoder(v), Timestamp: time.Now()}
		}
		if err := p.SendMessages(msgs); err != nil {
			return err
		}
		events = events[n:]
	}
	return nil
}

// seedFromEnv returns TIDEMARK_SEED when it is set, to rerun a failing seed.
func seedFromEnv(tb testing.TB, seed uint64) uint64 {
	if v := os.Getenv("TIDEMARK_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		require.NoError(tb, err, "TIDEMARK_SEED")
		tb.Logf("seed %d from TIDEMARK_SEED", n)
		return n
	}
	return seed
}

// outRec is an output record as compared: key and value.
type outRec struct {
	Key, Value string
}

func (o outRec) String() string { return o.Key + " " + o.Value }

// readCommitted reads every partition of topic as a read_committed consumer
// would, once no transaction is open: up to the last stable offset.
func (k *cluster) readCommitted(tb testing.TB, topic string, partitions int32) map[int32][]*sarama.ConsumerMessage {
	tb.Helper()
	cfg := k.config(tb)
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	c := k.client(tb, cfg)
	var ends map[int32]int64 // the last stable offsets, once no transaction is open
	parts := map[string]map[int32]int64{topic: {}}
	for p := range partitions {
		parts[topic][p] = sarama.OffsetNewest
	}
	adm, err := sarama.NewClusterAdminFromClient(c)
	require.NoError(tb, err, "admin")
	// Wait until no transaction is open on the topic: the last stable offset
	// of every partition is its high watermark. A member killed in the
	// middle of a transaction leaves it open until the broker aborts it
	// after the transaction timeout.
	open := func() (map[int32]int64, map[int32]int64) {
		lso, hwm := make(map[int32]int64), make(map[int32]int64)
		for _, level := range []sarama.IsolationLevel{sarama.ReadCommitted, sarama.ReadUncommitted} {
			res, err := adm.ListOffsets(parts, &sarama.ListOffsetsOptions{IsolationLevel: level})
			require.NoError(tb, err, "offsets")
			for p, r := range res[topic] {
				if !errors.Is(r.Err, sarama.ErrNoError) {
					require.NoError(tb, r.Err, "offset of %d", p)
				}
				if level == sarama.ReadCommitted {
					lso[p] = r.Offset
				} else {
					hwm[p] = r.Offset
				}
			}
		}
		return lso, hwm
	}
	start := time.Now()
	for {
		lso, hwm := open()
		ends = lso
		if maps.Equal(lso, hwm) {
			break
		}
		if time.Since(start) > DefaultTransactionTimeout+20*time.Second {
			tb.Fatalf("%s: a transaction is still open %v after the stages stopped: last stable offsets %v, high watermarks %v",
				topic, time.Since(start).Round(time.Second), lso, hwm)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if d := time.Since(start); d > time.Second {
		tb.Logf("%s: a transaction stayed open %v after the stages stopped", topic, d.Round(100*time.Millisecond))
	}
	cons, err := sarama.NewConsumerFromClient(c)
	require.NoError(tb, err, "consumer")
	defer cons.Close()
	out := make(map[int32][]*sarama.ConsumerMessage)
	for p := range partitions {
		if ends[p] == 0 {
			continue
		}
		pc := consumePartition(tb, cons, topic, p)
		quiet := time.NewTimer(3 * time.Second)
	read:
		for {
			select {
			case m := <-pc.Messages():
				out[p] = append(out[p], m)
				if m.Offset >= ends[p]-1 {
					break read
				}
				quiet.Reset(time.Second)
			case <-quiet.C:
				break read // what is left below the stable offset is transaction markers
			}
		}
		quiet.Stop()
		pc.Close()
	}
	return out
}

// consumePartition consumes partition p of topic from the oldest offset,
// retrying for a while: a real broker answers "not the leader" for a topic
// it has just created until the partition's leader is elected.
func consumePartition(tb testing.TB, cons sarama.Consumer, topic string, p int32) sarama.PartitionConsumer {
	tb.Helper()
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var pc sarama.PartitionConsumer
		if pc, err = cons.ConsumePartition(topic, p, sarama.OffsetOldest); err == nil {
			return pc
		}
	}
	require.NoError(tb, err, "consume %s/%d", topic, p)
	return nil
}

// outputs reads topic back, read_committed, as records per partition.
func (k *cluster) outputs(tb testing.TB, topic string, partitions int32) map[int32][]outRec {
	out := make(map[int32][]outRec)
	for p, ms := range k.readCommitted(tb, topic, partitions) {
		for _, m := range ms {
			out[p] = append(out[p], outRec{string(m.Key), string(m.Value)})
		}
	}
	return out
}

// referenceOne runs a fresh operator over each partition of the input topic
// as read back, with no interruption, and returns what a stage must have
// written, per partition, encoded by codec.
func referenceOne[In, Out any](tb testing.TB, k *cluster, in Input[In], partitions int32,
	newOp func() (stream.Operator[In, Out], error), codec Codec[Out]) map[int32][]outRec {
	tb.Helper()
	want := make(map[int32][]outRec)
	for p, ms := range k.readCommitted(tb, in.Topic, partitions) {
		op, err := newOp()
		require.NoError(tb, err, "operator")
		var enc encodeTo[Out]
		enc.codec, enc.tb = codec, tb
		task, err := stream.NewTask(op, stream.Input[In]{Lateness: in.Lateness}, &enc)
		require.NoError(tb, err, "task")
		for _, m := range ms {
			e, err := in.Decoder.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
			if err != nil {
				require.NoError(tb, task.Input().Skip(m.Offset), "skip")
				continue
			}
			_, err = task.Input().Push(m.Offset, e)
			require.NoError(tb, err, "push")
		}
		want[p] = enc.out
	}
	return want
}

// encodeTo is an emitter that encodes what it gets.
type encodeTo[T any] struct {
	tb    testing.TB
	codec Codec[T]
	out   []outRec
}

func (e *encodeTo[T]) Emit(ev stream.Event[T]) {
	v, err := e.codec.AppendValue(nil, ev)
	require.NoError(e.tb, err, "encode")
	e.out = append(e.out, outRec{ev.Key, string(v)})
}

// sameOutputs compares a stage's output with the reference, partition by
// partition and record by record, and reports the figures.
func sameOutputs(tb testing.TB, want, got map[int32][]outRec, what string) int {
	tb.Helper()
	total := 0
	var parts []int32
	for p := range want {
		parts = append(parts, p)
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			parts = append(parts, p)
		}
	}
	slices.Sort(parts)
	for _, p := range parts {
		w, g := want[p], got[p]
		for i := range max(len(w), len(g)) {
			if i >= len(w) || i >= len(g) || w[i] != g[i] {
				lost, dup, wrong := diffCounts(w, g)
				require.Failf(tb, what+" differs from the uninterrupted run",
					"partition %d: first difference at record %d of %d (got %d); lost %d, duplicated %d, wrong %d\nwant %v\ngot  %v",
					p, i, len(w), len(g), lost, dup, wrong, at(w, i), at(g, i))
			}
		}
		total += len(w)
	}
	return total
}

func at(rs []outRec, i int) string {
	if i < len(rs) {
		return rs[i].String()
	}
	return "(none)"
}

// diffCounts counts, by identity (key and the value's time field "t" or the
// whole value), the records missing from got, those repeated, and those
// present with another value.
func diffCounts(want, got []outRec) (lost, dup, wrong int) {
	count := func(rs []outRec) map[outRec]int {
		m := map[outRec]int{}
		for _, r := range rs {
			m[r]++
		}
		return m
	}
	w, g := count(want), count(got)
	for r, n := range w {
		switch {
		case g[r] == 0:
			lost += n
		case g[r] > n:
			dup += g[r] - n
		}
	}
	for r, n := range g {
		if w[r] == 0 {
			wrong += n
		}
	}
	return lost, dup, wrong
}

// runningStage is a Stage running in a goroutine.
type runningStage struct {
	s      *Stage
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func startStage(tb testing.TB, s *Stage) *runningStage {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningStage{s: s, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = s.Run(ctx)
	}()
	tb.Cleanup(func() { r.stop() })
	return r
}

// stop stops the stage gracefully and returns Run's error.
func (r *runningStage) stop() error {
	r.cancel()
	<-r.done
	return r.err
}

// kill stops the stage as a crash would and waits for it.
func (r *runningStage) kill() {
	for r.s.rt.Load() == nil {
		select {
		case <-r.done:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
	r.s.crash()
	<-r.done
}

// stageOpts are the options of the test stages: fast group timings and
// commits.
func (k *cluster) stageOpts(tb testing.TB, extra ...StageOption) []StageOption {
	return k.stageOptsWith(tb, nil, extra...)
}

// stageOptsWith is stageOpts with adjust applied to the client config.
func (k *cluster) stageOptsWith(tb testing.TB, adjust func(*sarama.Config), extra ...StageOption) []StageOption {
	cfg := k.config(tb, WithConfig(func(c *sarama.Config) {
		c.Consumer.Group.Session.Timeout = 10 * time.Second
		c.Producer.Transaction.Retry.Backoff = 20 * time.Millisecond
		if adjust != nil {
			adjust(c)
		}
	}))
	return append([]StageOption{WithBrokers(k.addrs, cfg), WithCommitInterval(50 * time.Millisecond),
		WithTransactionTimeout(5 * time.Second)}, extra...)
}

// waitCommitted waits until the group has committed, for every partition of
// topic, the position after its last record: a stage commits its position,
// and rebuilds the state of records whose results are pending (the
// sentinels') by replay. In a topic written by transactions the last offset
// is a commit marker, which consumers never see, so the position is taken
// from the records a read_committed consumer reads, not from the end offset.
func (k *cluster) waitCommitted(tb testing.TB, group, topic string, partitions int32, within time.Duration) {
	tb.Helper()
	want := make([]int64, partitions)
	recs := k.readCommitted(tb, topic, partitions)
	for p := range partitions {
		want[p] = -1
		if ms := recs[p]; len(ms) > 0 {
			want[p] = ms[len(ms)-1].Offset + 1
		}
	}
	if !assert.Eventually(tb, k.committedIs(tb, group, topic, partitions, want), within, 50*time.Millisecond,
		"group %s commits the positions %v of %s", group, want, topic) {
		require.FailNow(tb, "not committed", "committed %v, positions %v", k.committed(tb, group, topic, partitions), want)
	}
}

// TestStageOneSymbolSixPartitions: one symbol on a topic of six partitions
// leaves five empty; every result comes out, with no idle timeout, because
// each partition is a task with its own watermark.
func TestStageOneSymbolSixPartitions(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 6
		in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
		var evs []stream.Event[px]
		base := int64(1_746_677_558_352)
		for i := range 1000 {
			tm := base + int64(i)*100
			evs = append(evs, stream.Event[px]{Key: "BTCUSDT", Time: stream.Time(tm), Value: px{T: tm, P: 99_000 + float64(i%50)}})
		}
		produceWallClock(t, k, in, pxCodec, evs)
		group := name(t, "group")
		input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: 0}
		s, err := NewStage(group, input, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t)...)
		require.NoError(t, err, "NewStage")
		r := startStage(t, s)
		require.Eventually(t, func() bool { return s.Stats().Emitted >= 999 && s.Stats().Commits > 0 }, 30*time.Second, 20*time.Millisecond,
			"999 results (the last waits for a later event): %+v", s.Stats())
		require.NoError(t, r.stop(), "Run")
		want := referenceOne(t, k, input, parts, newMoving, mstatCodec)
		n := sameOutputs(t, want, k.outputs(t, out, parts), "moving records")
		assert.Equal(t, 999, n, "every result but the last")
		assert.Equal(t, uint64(1000), s.Stats().Accepted, "accepted")
	})
}

// referenceScore computes, per partition, the z-scores a score stage must
// write: a fresh operator over partition p of both inputs as read back.
func referenceScore(tb testing.TB, k *cluster, left Input[px], right Input[[]mstat], partitions int32, codec Codec[zrec]) map[int32][]outRec {
	tb.Helper()
	lm, rm := k.readCommitted(tb, left.Topic, partitions), k.readCommitted(tb, right.Topic, partitions)
	want := make(map[int32][]outRec)
	for p := range partitions {
		op, err := newScore()
		require.NoError(tb, err, "operator")
		enc := &encodeTo[zrec]{tb: tb, codec: codec}
		task, err := stream.NewTwoInputTask(op, stream.Input[px]{Lateness: left.Lateness}, stream.Input[[]mstat]{Lateness: right.Lateness}, enc)
		require.NoError(tb, err, "task")
		for _, m := range lm[p] {
			e, err := left.Decoder.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
			require.NoError(tb, err, "decode")
			_, err = task.Left().Push(m.Offset, e)
			require.NoError(tb, err, "push")
		}
		for _, m := range rm[p] {
			e, err := right.Decoder.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
			require.NoError(tb, err, "decode")
			_, err = task.Right().Push(m.Offset, e)
			require.NoError(tb, err, "push")
		}
		if len(enc.out) > 0 {
			want[p] = enc.out
		}
	}
	return want
}

var zCodec = JSON[zrec]{}

// scoreTopics writes a price trace and runs a moving stage over it to the
// end, so that the moving topic holds a record for every accepted price:
// the two inputs of a score stage.
func scoreTopics(t *testing.T, k *cluster, r *rand.Rand, parts int32, n int) (Input[px], Input[[]mstat]) {
	t.Helper()
	prices, moving := k.topic(t, parts, nil), k.topic(t, parts, nil)
	produceWallClock(t, k, prices, pxCodec, pxTrace(t, r, prices, parts, n, time.Second))
	left := Input[px]{Topic: prices, Decoder: pxCodec, Lateness: time.Second}
	group := name(t, "moving")
	s, err := NewStage(group, left, newMoving, ToTopic(moving, mstatCodec), k.stageOpts(t)...)
	require.NoError(t, err, "NewStage")
	run := startStage(t, s)
	k.waitCommitted(t, group, prices, parts, 60*time.Second)
	require.NoError(t, run.stop(), "moving stage")
	return left, Input[[]mstat]{Topic: moving, Decoder: mstatCodec, Lateness: 0}
}

// TestStageJoin: a two-input stage joins prices with their moving records,
// co-partitioned, and writes exactly the z-scores an uninterrupted
// operator computes from the two topics.
func TestStageJoin(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 3
		r := rand.New(rand.NewPCG(21, 1))
		left, right := scoreTopics(t, k, r, parts, 3000)
		out := k.topic(t, parts, nil)
		group := name(t, "score")
		s, err := NewTwoInputStage(group, left, right, newScore, ToTopic(out, zCodec), k.stageOpts(t)...)
		require.NoError(t, err, "NewTwoInputStage")
		run := startStage(t, s)
		k.waitCommitted(t, group, left.Topic, parts, 60*time.Second)
		k.waitCommitted(t, group, right.Topic, parts, 60*time.Second)
		require.NoError(t, run.stop(), "Run")
		want := referenceScore(t, k, left, right, parts, zCodec)
		n := sameOutputs(t, want, k.outputs(t, out, parts), "z-scores")
		assert.Greater(t, n, 2900, "z-scores")
		t.Logf("%d z-scores, stats %+v", n, s.Stats())
	})
}

// TestStageNotCoPartitioned: a two-input stage refuses topics whose
// partition counts differ.
func TestStageNotCoPartitioned(t *testing.T) {
	k := fakeCluster(t)
	a, b := k.topic(t, 3, nil), k.topic(t, 4, nil)
	s, err := NewTwoInputStage(name(t, "group"), Input[px]{Topic: a, Decoder: pxCodec}, Input[[]mstat]{Topic: b, Decoder: mstatCodec},
		newScore, ToTopic(k.topic(t, 3, nil), zCodec), k.stageOpts(t)...)
	require.NoError(t, err, "NewTwoInputStage")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = s.Run(ctx)
	require.ErrorIs(t, err, ErrNotCoPartitioned, "Run")
	assert.Contains(t, err.Error(), "3 partitions", "the error gives the counts")
}

// crashPlan counts what runWithCrashes did.
type crashPlan struct {
	kills    int // incarnations killed
	atCommit int // of them, killed in the loop just before a commit, with results in the open transaction
}

// runWithCrashes runs incarnations of the stage newStage makes, kills
// each (after its tasks are rebuilt, at a random moment or just before a
// random commit), and finally lets one run until group has committed the
// end offsets of topic. The input should still be arriving meanwhile.
func runWithCrashes(t *testing.T, k *cluster, r *rand.Rand, kills int, newStage func() *Stage, group string, topics []string, parts int32,
	inputsDone func()) crashPlan {
	t.Helper()
	var plan crashPlan
	for range kills {
		s := newStage()
		atCommit := r.IntN(2) == 0
		crashAt := int32(1 + r.IntN(4))
		var commits atomic.Int32
		var armed atomic.Bool // once the test has seen the tasks run
		if atCommit {
			s.hooks.beforeCommit = func() bool { return armed.Load() && commits.Add(1) == crashAt }
		}
		run := startStage(t, s)
		if !assert.Eventually(t, func() bool { return s.Stats().Tasks == int64(parts) }, 30*time.Second, 5*time.Millisecond,
			"the stage rebuilds its %d tasks", parts) {
			select {
			case <-run.done:
				require.FailNow(t, "the stage stopped", "Run: %v; stats %+v", run.err, s.Stats())
			default:
				require.FailNow(t, "the stage runs without its tasks", "stats %+v", s.Stats())
			}
		}
		armed.Store(true)
		if atCommit {
			select {
			case <-run.done:
				plan.atCommit++
			case <-time.After(5 * time.Second):
				run.kill() // nothing was left to commit
			}
		} else {
			time.Sleep(time.Duration(r.IntN(300)) * time.Millisecond)
			run.kill()
		}
		plan.kills++
	}
	run := startStage(t, newStage())
	if inputsDone != nil {
		inputsDone()
	}
	for _, topic := range topics {
		k.waitCommitted(t, group, topic, parts, 90*time.Second)
	}
	require.NoError(t, run.stop(), "last incarnation")
	return plan
}

// TestStageCrashRecovery kills stages at random points (between polls, and
// just before a commit, with results produced in the open transaction),
// restarting each time, while the input is still being written: the
// results read read_committed equal an uninterrupted run's, record by
// record, for a windowed stage, a lookahead stage and the join stage.
func TestStageCrashRecovery(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 3
		seed := uint64(time.Now().UnixNano() % 1000)
		t.Logf("seed %d (rerun with TIDEMARK_SEED)", seed)
		seed = seedFromEnv(t, seed)
		r := rand.New(rand.NewPCG(seed, 2))

		t.Run("moving", func(t *testing.T) {
			in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
			trace := pxTrace(t, r, in, parts, 6000, time.Second)
			input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
			group := name(t, "group")
			writing := writeSlowly(t, k, in, pxCodec, trace, 40)
			plan := runWithCrashes(t, k, r, 8, func() *Stage {
				s, err := NewStage(group, input, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t, WithInstanceID("m1"))...)
				require.NoError(t, err, "NewStage")
				return s
			}, group, []string{in}, parts, func() { <-writing })
			n := sameOutputs(t, referenceOne(t, k, input, parts, newMoving, mstatCodec), k.outputs(t, out, parts), "moving records")
			t.Logf("%d records identical to an uninterrupted run after %d kills (%d just before a commit)", n, plan.kills, plan.atCommit)
		})
		t.Run("lookahead", func(t *testing.T) {
			in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
			trace := pxTrace(t, r, in, parts, 6000, time.Second)
			input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
			group := name(t, "group")
			bothCodec := JSON[lookahead.Both[float64]]{}
			writing := writeSlowly(t, k, in, pxCodec, trace, 40)
			plan := runWithCrashes(t, k, r, 8, func() *Stage {
				s, err := NewStage(group, input, newBonus, ToTopic(out, bothCodec), k.stageOpts(t, WithInstanceID("b1"))...)
				require.NoError(t, err, "NewStage")
				return s
			}, group, []string{in}, parts, func() { <-writing })
			n := sameOutputs(t, referenceOne(t, k, input, parts, newBonus, bothCodec), k.outputs(t, out, parts), "lookahead records")
			t.Logf("%d records identical to an uninterrupted run after %d kills (%d just before a commit)", n, plan.kills, plan.atCommit)
		})
		t.Run("join", func(t *testing.T) {
			// Prices arrive slowly; a moving stage runs beside the score
			// stage, which crashes meanwhile: both inputs are live.
			prices, moving, out := k.topic(t, parts, nil), k.topic(t, parts, nil), k.topic(t, parts, nil)
			left := Input[px]{Topic: prices, Decoder: pxCodec, Lateness: time.Second}
			right := Input[[]mstat]{Topic: moving, Decoder: mstatCodec, Lateness: 0}
			movingGroup := name(t, "moving")
			ms, err := NewStage(movingGroup, left, newMoving, ToTopic(moving, mstatCodec), k.stageOpts(t)...)
			require.NoError(t, err, "NewStage")
			movingRun := startStage(t, ms)
			wrote := writeSlowly(t, k, prices, pxCodec, pxTrace(t, r, prices, parts, 6000, time.Second), 40)
			inputsDone := func() { // the moving topic is complete
				<-wrote
				k.waitCommitted(t, movingGroup, prices, parts, 90*time.Second)
			}
			group := name(t, "group")
			plan := runWithCrashes(t, k, r, 8, func() *Stage {
				s, err := NewTwoInputStage(group, left, right, newScore, ToTopic(out, zCodec), k.stageOpts(t, WithInstanceID("z1"))...)
				require.NoError(t, err, "NewTwoInputStage")
				return s
			}, group, []string{prices, moving}, parts, inputsDone)
			require.NoError(t, movingRun.stop(), "moving stage")
			n := sameOutputs(t, referenceScore(t, k, left, right, parts, zCodec), k.outputs(t, out, parts), "z-scores")
			t.Logf("%d records identical to an uninterrupted run after %d kills (%d just before a commit)", n, plan.kills, plan.atCommit)
		})
	})
}

// writeSlowly writes the trace in chunks, in a goroutine, so that the
// stages under test see it arrive; the channel closes when all is written.
// A chunk that fails (the broker is away) is written again until a minute
// has passed: its records may then be in the topic twice, which the stages
// and the references see alike.
func writeSlowly[T any](t *testing.T, k *cluster, topic string, codec Codec[T], events []stream.Event[T], chunks int) <-chan struct{} {
	done := make(chan struct{})
	size := (len(events) + chunks - 1) / chunks
	go func() {
		defer close(done)
		for len(events) > 0 {
			n := min(size, len(events))
			for deadline := time.Now().Add(time.Minute); ; {
				err := produceWallClockE(t, k, topic, codec, events[:n])
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("writing %s: %v", topic, err)
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
			events = events[n:]
			time.Sleep(150 * time.Millisecond)
		}
	}()
	return done
}

// TestStageRebalance: a second member joins in the middle of the stream and
// leaves again; partitions move to it and back, each time committed by the
// old owner and rebuilt by the new one: the results are exact, none twice.
func TestStageRebalance(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 6
		r := rand.New(rand.NewPCG(31, 3))
		in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
		input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
		group := name(t, "group")
		newMember := func() *Stage {
			s, err := NewStage(group, input, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t)...)
			require.NoError(t, err, "NewStage")
			return s
		}
		writing := writeSlowly(t, k, in, pxCodec, pxTrace(t, r, in, parts, 8000, time.Second), 50)
		a := newMember()
		runA := startStage(t, a)
		require.Eventually(t, func() bool { return a.Stats().Records > 500 }, 30*time.Second, 10*time.Millisecond, "A works")
		b := newMember()
		runB := startStage(t, b)
		require.Eventually(t, func() bool { return b.Stats().Tasks > 0 && b.Stats().Records > 200 }, 60*time.Second, 10*time.Millisecond,
			"B takes partitions over and works")
		assert.Less(t, a.Stats().Tasks, int64(parts), "A gave partitions up")
		require.NoError(t, runB.stop(), "B leaves")
		require.Eventually(t, func() bool { return a.Stats().Tasks == parts }, 60*time.Second, 10*time.Millisecond, "A takes them back")
		<-writing
		k.waitCommitted(t, group, in, parts, 90*time.Second)
		require.NoError(t, runA.stop(), "A")
		n := sameOutputs(t, referenceOne(t, k, input, parts, newMoving, mstatCodec), k.outputs(t, out, parts), "moving records")
		t.Logf("%d records exact; A %+v; B %+v", n, a.Stats(), b.Stats())
	})
}

// TestStageZombie: a member gets stuck with results in its open transaction
// and is removed from the group, as the coordinator removes a member that
// misses its session timeout (the admin API does the same, on demand); its
// partitions move to another member, which rebuilds them and goes on. When
// the zombie wakes up it tries to commit with a generation and member id the
// group has left behind: the commit is refused (KIP-447), its transaction
// aborted, and nothing it produced is visible read_committed.
func TestStageZombie(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 4
		r := rand.New(rand.NewPCG(51, 5))
		in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
		input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
		group := name(t, "group")
		writing := writeSlowly(t, k, in, pxCodec, pxTrace(t, r, in, parts, 6000, time.Second), 40)
		// The zombie commits rarely (the transaction timeout is 5 s): its
		// transaction is open when it gets stuck.
		zombie, err := NewStage(group, input, newMoving, ToTopic(out, mstatCodec),
			k.stageOpts(t, WithInstanceID("zombie"), WithCommitInterval(4*time.Second))...)
		require.NoError(t, err, "NewStage")
		stuck, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		wake := func() { once.Do(func() { close(release) }) }
		t.Cleanup(wake)
		var batches atomic.Int32
		zombie.hooks.afterBatch = func() {
			if batches.Add(1) == 20 {
				close(stuck)
				<-release
			}
		}
		runZ := startStage(t, zombie)
		<-stuck
		emitted := zombie.Stats().Emitted
		require.Positive(t, emitted, "the zombie produced results before it got stuck")
		_, err = k.admin(t).RemoveMemberFromConsumerGroup(group, []string{"zombie"})
		require.NoError(t, err, "remove the stuck member from the group")
		other, err := NewStage(group, input, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t)...)
		require.NoError(t, err, "NewStage")
		runO := startStage(t, other)
		require.Eventually(t, func() bool { return other.Stats().Tasks == parts }, 60*time.Second, 20*time.Millisecond,
			"the other member takes every partition over")
		wake()
		require.Eventually(t, func() bool { return zombie.Stats().Aborts > 0 }, 60*time.Second, 20*time.Millisecond,
			"the zombie's commit is refused and its transaction aborted")
		<-writing
		require.NoError(t, runZ.stop(), "zombie")
		k.waitCommitted(t, group, in, parts, 90*time.Second)
		require.NoError(t, runO.stop(), "other")
		n := sameOutputs(t, referenceOne(t, k, input, parts, newMoving, mstatCodec), k.outputs(t, out, parts), "moving records")
		t.Logf("%d records exact; the zombie had %d results in its transaction; zombie %+v; other %+v", n, emitted, zombie.Stats(), other.Stats())
	})
}

// upsertStore is a sink outside Kafka that upserts by identity, as mongoio
// does: it keeps the last value written for each (key, time), counts the
// writes, and fails its Flush once on request.
type upsertStore struct {
	mu        sync.Mutex
	docs      map[string]string // key@time -> value
	writes    int
	conflicts []string // identities written twice with different values
	failFlush atomic.Bool
	failed    atomic.Bool
}

func (u *upsertStore) Write(_ context.Context, e stream.Event[[]mstat]) error {
	v, err := mstatCodec.AppendValue(nil, e)
	if err != nil {
		return err
	}
	id := fmt.Sprintf("%s@%d", e.Key, e.Time)
	u.mu.Lock()
	defer u.mu.Unlock()
	if old, ok := u.docs[id]; ok && old != string(v) {
		u.conflicts = append(u.conflicts, id)
	}
	u.docs[id] = string(v)
	u.writes++
	return nil
}

func (u *upsertStore) Flush(context.Context) error {
	if u.failFlush.Load() && u.failed.CompareAndSwap(false, true) {
		return errors.New("store unavailable")
	}
	return nil
}

// TestStageAtLeastOnceToSink: a stage that writes to a sink outside Kafka
// commits its offsets only after the sink's Flush; killed and restarted,
// and with a Flush that fails once, it writes some results again, always
// with the same value, and the store ends up with exactly the results of an
// uninterrupted run.
func TestStageAtLeastOnceToSink(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 3
		r := rand.New(rand.NewPCG(71, 7))
		in := k.topic(t, parts, nil)
		input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
		group := name(t, "group")
		store := &upsertStore{docs: map[string]string{}}
		writing := writeSlowly(t, k, in, pxCodec, pxTrace(t, r, in, parts, 5000, time.Second), 30)
		incarnation := 0
		plan := runWithCrashes(t, k, r, 5, func() *Stage {
			incarnation++
			store.failFlush.Store(incarnation == 3)
			s, err := NewStage(group, input, newMoving, ToSink[[]mstat](store), k.stageOpts(t, WithInstanceID("alo"))...)
			require.NoError(t, err, "NewStage")
			return s
		}, group, []string{in}, parts, func() { <-writing })
		want := referenceDocs(t, k, input, parts)
		store.mu.Lock()
		defer store.mu.Unlock()
		assert.Empty(t, store.conflicts, "every write of an identity carries the same value")
		assert.Equal(t, want, store.docs, "the store holds exactly the results of an uninterrupted run")
		assert.True(t, store.failed.Load(), "a flush failed once")
		t.Logf("%d documents exact after %d kills and a failed flush; %d writes (%d again)",
			len(store.docs), plan.kills, store.writes, store.writes-len(store.docs))
	})
}

// referenceDocs is referenceOne for the moving operator, as documents keyed
// by identity (key@time).
func referenceDocs(tb testing.TB, k *cluster, in Input[px], partitions int32) map[string]string {
	tb.Helper()
	docs := map[string]string{}
	for _, ms := range k.readCommitted(tb, in.Topic, partitions) {
		op, err := newMoving()
		require.NoError(tb, err, "operator")
		out := stream.EmitFunc[[]mstat](func(e stream.Event[[]mstat]) {
			v, err := mstatCodec.AppendValue(nil, e)
			require.NoError(tb, err, "encode")
			docs[fmt.Sprintf("%s@%d", e.Key, e.Time)] = string(v)
		})
		task, err := stream.NewTask(op, stream.Input[px]{Lateness: in.Lateness}, out)
		require.NoError(tb, err, "task")
		for _, m := range ms {
			e, err := in.Decoder.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
			require.NoError(tb, err, "decode")
			_, err = task.Input().Push(m.Offset, e)
			require.NoError(tb, err, "push")
		}
	}
	return docs
}

// TestStageDeadLetterExactlyOnce: records the codec rejects go to the
// dead-letter topic, untouched with the reason in headers, in the stage's
// transactions: killed and restarted, the stage writes each exactly once,
// and the valid records' results are exact.
func TestStageDeadLetterExactlyOnce(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 3
		r := rand.New(rand.NewPCG(81, 8))
		in, out, dlq := k.topic(t, parts, nil), k.topic(t, parts, nil), k.topic(t, 1, nil)
		input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
		group := name(t, "group")
		trace := pxTrace(t, r, in, parts, 4000, time.Second)
		var bad []string
		var msgs []*sarama.ProducerMessage
		for i, e := range trace {
			v, err := pxCodec.AppendValue(nil, e)
			require.NoError(t, err, "encode")
			msgs = append(msgs, &sarama.ProducerMessage{Topic: in, Key: sarama.StringEncoder(e.Key), Value: sarama.ByteEncoder(v)})
			if i%50 == 7 && i < len(trace)-parts {
				b := fmt.Sprintf(`{"t":"not a time %d"`, i)
				bad = append(bad, b)
				msgs = append(msgs, &sarama.ProducerMessage{Topic: in, Key: sarama.StringEncoder(e.Key), Value: sarama.StringEncoder(b),
					Headers: []sarama.RecordHeader{{Key: []byte("origin"), Value: []byte("test")}}})
			}
		}
		writing := make(chan struct{})
		go func() {
			defer close(writing)
			for len(msgs) > 0 {
				n := min(len(msgs), 150)
				produceRawE(t, k, msgs[:n])
				msgs = msgs[n:]
				time.Sleep(100 * time.Millisecond)
			}
		}()
		plan := runWithCrashes(t, k, r, 5, func() *Stage {
			s, err := NewStage(group, input, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t, WithInstanceID("d1"), WithDeadLetter(dlq))...)
			require.NoError(t, err, "NewStage")
			return s
		}, group, []string{in}, parts, func() { <-writing })
		var got []string
		for _, m := range k.readCommitted(t, dlq, 1)[0] {
			got = append(got, string(m.Value))
			h := headers(m)
			assert.Equal(t, in, h[HeaderTopic], "original topic header")
			assert.Equal(t, "syntax", h[HeaderErrorKind], "error kind header")
			assert.NotEmpty(t, h[HeaderError], "reason header")
			assert.Equal(t, "test", h["origin"], "the record's own headers are kept")
		}
		slices.Sort(got)
		slices.Sort(bad)
		assert.Equal(t, bad, got, "every rejected record in the dead-letter topic exactly once")
		n := sameOutputs(t, referenceOne(t, k, input, parts, newMoving, mstatCodec), k.outputs(t, out, parts), "moving records")
		t.Logf("%d dead letters and %d results exact after %d kills", len(got), n, plan.kills)
	})
}

// produceRawE writes raw records from a goroutine other than the test's.
func produceRawE(t *testing.T, k *cluster, msgs []*sarama.ProducerMessage) {
	c, err := sarama.NewClient(k.addrs, k.config(t))
	if err != nil {
		t.Errorf("client: %v", err)
		return
	}
	defer c.Close()
	p, err := sarama.NewSyncProducerFromClient(c)
	if err != nil {
		t.Errorf("producer: %v", err)
		return
	}
	defer p.Close()
	if err := p.SendMessages(msgs); err != nil {
		t.Errorf("produce: %v", err)
	}
}

// TestStageOffsetCommitRefused: an offset commit the coordinator refuses is
// not ignored (sarama's session.Commit reports failures only on an error
// channel): the stage treats it as an abort, rebuilds its tasks and writes
// their results again, and the store still ends with exactly the
// uninterrupted run's results.
func TestStageOffsetCommitRefused(t *testing.T) {
	k := fakeCluster(t)
	const parts = 3
	r := rand.New(rand.NewPCG(91, 9))
	in := k.topic(t, parts, nil)
	produceWallClock(t, k, in, pxCodec, pxTrace(t, r, in, parts, 3000, time.Second))
	input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
	group := name(t, "group")
	fault := k.fake.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Group: group, Count: 2})
	defer fault.Remove()
	store := &upsertStore{docs: map[string]string{}}
	s, err := NewStage(group, input, newMoving, ToSink[[]mstat](store), k.stageOpts(t)...)
	require.NoError(t, err, "NewStage")
	run := startStage(t, s)
	k.waitCommitted(t, group, in, parts, 60*time.Second)
	require.NoError(t, run.stop(), "Run")
	assert.GreaterOrEqual(t, s.Stats().Aborts, uint64(1), "the refused commit was noticed")
	store.mu.Lock()
	defer store.mu.Unlock()
	assert.Empty(t, store.conflicts, "rewrites carry the same values")
	assert.Equal(t, referenceDocs(t, k, input, parts), store.docs, "the store holds exactly the results")
}

// oneAtATime is a codec that is not safe for concurrent use (it keeps a
// cache in a plain map) and records how many goroutines use it at once.
type oneAtATime struct {
	inside, most atomic.Int32
	cache        map[string]int
}

func (c *oneAtATime) enter() func() {
	n := c.inside.Add(1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	return func() { c.inside.Add(-1) }
}

func (c *oneAtATime) Decode(key, value []byte, ts stream.Time) (stream.Event[px], error) {
	defer c.enter()()
	c.cache[string(key)]++
	return pxCodec.Decode(key, value, ts)
}

func (c *oneAtATime) AppendValue(dst []byte, e stream.Event[px]) ([]byte, error) {
	defer c.enter()()
	c.cache[e.Key]++
	return pxCodec.AppendValue(dst, e)
}

// TestStageCodecOneGoroutine: a stage calls its codecs from its one
// processing goroutine, whatever the number of partitions, so a codec with
// scratch state need not be safe for concurrent use (the example's fast
// codecs are not).
func TestStageCodecOneGoroutine(t *testing.T) {
	k := fakeCluster(t)
	const parts = 6
	r := rand.New(rand.NewPCG(93, 9))
	in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
	produceWallClock(t, k, in, pxCodec, pxTrace(t, r, in, parts, 6000, time.Second))
	inCodec, outCodec := &oneAtATime{cache: map[string]int{}}, &oneAtATime{cache: map[string]int{}}
	group := name(t, "group")
	s, err := NewStage(group, Input[px]{Topic: in, Decoder: inCodec, Lateness: time.Second},
		func() (stream.Operator[px, px], error) { return identity[px]{}, nil }, ToTopic(out, outCodec), k.stageOpts(t)...)
	require.NoError(t, err, "NewStage")
	run := startStage(t, s)
	k.waitCommitted(t, group, in, parts, 60*time.Second)
	require.NoError(t, run.stop(), "Run")
	assert.Positive(t, s.Stats().Emitted, "results")
	assert.Equal(t, int32(1), inCodec.most.Load(), "the input codec is used by one goroutine at a time")
	assert.Equal(t, int32(1), outCodec.most.Load(), "the output codec too")
}

// TestStageLagWatermarkLatency: Stats reports the backlog while a slow stage
// works through it and none once it caught up; the watermark of a caught-up
// stage is the smallest of its partitions' largest event time less the
// lateness; and WithLatency reports every record processed, once, after the
// commit that covers it.
func TestStageLagWatermarkLatency(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts, n = 2, 2000
		in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
		base := stream.Time(1_746_677_558_352)
		var evs []stream.Event[px]
		last := make([]stream.Time, parts)
		for i := range n {
			key := keyFor(t, in, int32(i%parts), parts)
			tm := base + stream.Time(i)*10
			last[i%parts] = tm
			evs = append(evs, stream.Event[px]{Key: key, Time: tm, Value: px{T: int64(tm), P: 100}})
		}
		produceWallClock(t, k, in, pxCodec, evs)
		var (
			mu       sync.Mutex
			observed int
			worst    time.Duration
		)
		latency := WithLatency(func(d time.Duration, records int) {
			mu.Lock()
			defer mu.Unlock()
			observed += records
			worst = max(worst, d)
		})
		const lateness = time.Second
		s, err := NewStage(name(t, "group"), Input[px]{Topic: in, Decoder: pxCodec, Lateness: lateness}, newMoving,
			ToTopic(out, mstatCodec), k.stageOpts(t, latency, WithMaxBatch(20))...)
		require.NoError(t, err, "NewStage")
		assert.Equal(t, stream.MinTime, s.Stats().Watermark, "no task before Run")
		s.hooks.afterBatch = func() { time.Sleep(2 * time.Millisecond) } // about 10,000 records/s at most
		r := startStage(t, s)
		var maxLag int64
		require.Eventually(t, func() bool {
			st := s.Stats()
			maxLag = max(maxLag, st.Lag)
			return st.Records == n && st.Lag == 0
		}, 60*time.Second, 5*time.Millisecond, "caught up: %+v", s.Stats())
		assert.Greater(t, maxLag, int64(100), "a backlog showed as lag while the stage worked through it")
		want := min(last[0], last[1]) - stream.DurationOf(lateness)
		assert.Equal(t, want, s.Stats().Watermark, "watermark: the smallest partition watermark")
		require.NoError(t, r.stop(), "Run")
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, n, observed, "latency observed for every record, once")
		assert.Less(t, worst, 30*time.Second, "latency is the time to a commit")
		t.Logf("largest lag %d, worst latency %v", maxLag, worst)
	})
}

// TestStageDeadLetterSkipAndCut: an input with SkipDeadLetter has its
// rejected records counted but not forwarded, while the other input's go to
// the dead-letter topic; a rejected record too large for the producer is
// forwarded cut to fit, with HeaderTruncated giving its length.
func TestStageDeadLetterSkipAndCut(t *testing.T) {
	k := fakeCluster(t)
	const parts = 1
	left, out, dlq := k.topic(t, parts, nil), k.topic(t, parts, nil), k.topic(t, 1, nil)
	right := k.topic(t, parts, map[string]string{"max.message.bytes": strconv.Itoa(4 << 20)})
	huge := `{"t":` + strings.Repeat(" ", 1500_000) // 1.5 MB, and not JSON
	msgs := []*sarama.ProducerMessage{
		{Topic: left, Key: sarama.StringEncoder("a"), Value: sarama.StringEncoder("not json on the left")},
		{Topic: right, Key: sarama.StringEncoder("a"), Value: sarama.StringEncoder("not json on the right")},
		{Topic: right, Key: sarama.StringEncoder("a"), Value: sarama.StringEncoder(huge)},
	}
	cfg := k.config(t, WithConfig(func(c *sarama.Config) { c.Producer.MaxMessageBytes = 4 << 20 }))
	c, err := sarama.NewClient(k.addrs, cfg)
	require.NoError(t, err, "client")
	p, err := sarama.NewSyncProducerFromClient(c)
	require.NoError(t, err, "producer")
	require.NoError(t, p.SendMessages(msgs), "produce")
	require.NoError(t, p.Close(), "close producer")
	require.NoError(t, c.Close(), "close client")

	s, err := NewTwoInputStage(name(t, "group"),
		Input[px]{Topic: left, Decoder: pxCodec, SkipDeadLetter: true}, Input[[]mstat]{Topic: right, Decoder: mstatCodec},
		newScore, ToTopic(out, zCodec), k.stageOpts(t, WithDeadLetter(dlq))...)
	require.NoError(t, err, "NewTwoInputStage")
	run := startStage(t, s)
	require.Eventually(t, func() bool { return s.Stats().Rejected == 3 }, 30*time.Second, 10*time.Millisecond, "the three records are rejected")
	require.Eventually(t, func() bool { return s.Stats().DeadLettered == 2 }, 30*time.Second, 10*time.Millisecond, "two are forwarded")
	require.NoError(t, run.stop(), "Run")

	got := k.readCommitted(t, dlq, 1)[0]
	require.Len(t, got, 2, "dead letters: the right input's only")
	limit := k.config(t).Producer.MaxMessageBytes
	for _, m := range got {
		h := headers(m)
		assert.Equal(t, right, h[HeaderTopic], "from the input that dead-letters")
		if string(m.Value) == "not json on the right" {
			assert.NotContains(t, h, HeaderTruncated, "a small record is whole")
			continue
		}
		assert.Equal(t, strconv.Itoa(len(huge)), h[HeaderTruncated], "the cut record says its length")
		assert.True(t, strings.HasPrefix(huge, string(m.Value)), "and is its start")
		assert.Less(t, len(m.Value), limit, "cut to fit Producer.MaxMessageBytes")
		assert.Greater(t, len(m.Value), limit-2*deadLetterRoom, "not much shorter")
	}
}
