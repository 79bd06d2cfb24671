package kafkaio

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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

func (m *toMstat) Process(e stream.Event[[]window.Stats], out stream.Emitter[[]mstat]) {
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
	tr, err := window.NewTrailingStats([]time.Duration{3 * time.Second, time.Minute})
	if err != nil {
		return nil, err
	}
	return stream.Chain(stream.Chain[px, float64, []window.Stats](priceOf{}, tr), stream.Operator[[]window.Stats, []mstat](&toMstat{})), nil
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
	p, err := sarama.NewSyncProducerFromClient(k.client(tb, nil))
	require.NoError(tb, err, "sync producer")
	defer p.Close()
	for len(events) > 0 {
		n := min(len(events), 1000)
		msgs := make([]*sarama.ProducerMessage, n)
		for i, e := range events[:n] {
			v, err := codec.AppendValue(nil, e)
			require.NoError(tb, err, "encode")
			msgs[i] = &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(e.Key), Value: sarama.ByteEncoder(v), Timestamp: time.Now()}
		}
		require.NoError(tb, p.SendMessages(msgs), "produce")
		events = events[n:]
	}
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
	ends := make(map[int32]int64)
	parts := map[string]map[int32]int64{topic: {}}
	for p := range partitions {
		parts[topic][p] = sarama.OffsetNewest
	}
	adm, err := sarama.NewClusterAdminFromClient(c)
	require.NoError(tb, err, "admin")
	res, err := adm.ListOffsets(parts, &sarama.ListOffsetsOptions{IsolationLevel: sarama.ReadCommitted})
	require.NoError(tb, err, "last stable offsets")
	for p, r := range res[topic] {
		if !errors.Is(r.Err, sarama.ErrNoError) {
			require.NoError(tb, r.Err, "last stable offset of %d", p)
		}
		ends[p] = r.Offset
	}
	cons, err := sarama.NewConsumerFromClient(c)
	require.NoError(tb, err, "consumer")
	defer cons.Close()
	out := make(map[int32][]*sarama.ConsumerMessage)
	for p := range partitions {
		if ends[p] == 0 {
			continue
		}
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		require.NoError(tb, err, "consume %s/%d", topic, p)
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
			e, err := in.Codec.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
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
	cfg := k.config(tb, WithConfig(func(c *sarama.Config) {
		c.Consumer.Group.Session.Timeout = 10 * time.Second
		c.Producer.Transaction.Retry.Backoff = 20 * time.Millisecond
	}))
	return append([]StageOption{WithBrokers(k.addrs, cfg), WithCommitInterval(50 * time.Millisecond),
		WithTransactionTimeout(5 * time.Second)}, extra...)
}

// waitCommitted waits until the group has committed, for every partition of
// topic, the offset just before the partition's last record (the
// sentinel, which stays pending).
func (k *cluster) waitCommitted(tb testing.TB, group, topic string, partitions int32, within time.Duration) {
	tb.Helper()
	require.Eventually(tb, k.committedIs(tb, group, topic, partitions, nil), within, 50*time.Millisecond,
		"group %s commits every record of %s but the sentinels", group, topic)
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
		input := Input[px]{Topic: in, Codec: pxCodec, Lateness: 0}
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
