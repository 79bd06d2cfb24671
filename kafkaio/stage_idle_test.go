package kafkaio

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/lookahead"
	"github.com/tidemark-go/tidemark/stream"
)

var bothCodec = JSON[lookahead.Both[float64]]{}

// referenceFinished is referenceOne with the end of input at the end of
// each partition: every result of the events, as if the watermark had
// passed them all.
func referenceFinished[In, Out any](tb testing.TB, k *cluster, in Input[In], partitions int32,
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
			require.NoError(tb, err, "decode")
			_, err = task.Input().Push(m.Offset, e)
			require.NoError(tb, err, "push")
		}
		task.Finish()
		want[p] = enc.out
	}
	return want
}

// eventuallySame polls until the stage's output holds the records of want,
// and reports how long it took since start, or fails at the deadline. The
// records of a partition are compared sorted: the results an idle advance
// makes final in several steps come out in another order than at the end
// of input, where all are final at once (the specification compares
// outputs sorted by key and time).
func (k *cluster) eventuallySame(t *testing.T, out string, parts int32, want map[int32][]outRec, start time.Time, within time.Duration) time.Duration {
	t.Helper()
	for {
		got := k.outputs(t, out, parts)
		for p := range parts {
			slices.SortStableFunc(got[p], compareRec)
			slices.SortStableFunc(want[p], compareRec)
		}
		same := true
		for p := range parts {
			if fmt.Sprint(got[p]) != fmt.Sprint(want[p]) {
				same = false
				break
			}
		}
		if same {
			return time.Since(start)
		}
		if time.Since(start) > within {
			sameOutputs(t, want, got, fmt.Sprintf("results %v after the input stopped", within))
			require.FailNow(t, "the results did not come")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStageIdleAdvance: when the input stops, a stage with WithIdleAdvance
// commits every result of the events it received (those an end of input
// would flush) within lateness + horizon + idle timeout of wall time, here
// 2 s + 5 s + 1 s, although the events are from 2025 (the watermark moves
// by the wall time elapsed, never to the wall clock). Without it the last
// results wait for events that never come.
func TestStageIdleAdvance(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 2
		const lateness, horizon, idle = 2 * time.Second, 5 * time.Second, time.Second
		in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
		trace := pxTrace(t, rand.New(rand.NewPCG(81, 1)), in, parts, 2000, lateness)
		trace = trace[:len(trace)-parts] // no sentinels: the input just stops
		input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: lateness}
		group := name(t, "group")
		s, err := NewStage(group, input, newBonus, ToTopic(out, bothCodec), k.stageOpts(t, WithIdleAdvance(idle))...)
		require.NoError(t, err, "NewStage")
		run := startStage(t, s)
		require.Eventually(t, func() bool { return s.Stats().Tasks == parts }, 30*time.Second, 10*time.Millisecond, "the stage runs")
		produceWallClock(t, k, in, pxCodec, trace)
		// The input stops, for the stage, when it has received the last
		// record (on a loaded machine that may be a while after the write).
		require.Eventually(t, func() bool { return s.Stats().Records >= uint64(len(trace)) }, 30*time.Second, time.Millisecond,
			"the stage receives every record")
		stopped := time.Now()
		want := referenceFinished(t, k, input, parts, newBonus, bothCodec)
		total := 0
		for _, rs := range want {
			total += len(rs)
		}
		bound := lateness + horizon + idle
		// When the last result is emitted (the stage's counts, read without
		// reading the topic); its commit follows within the commit interval,
		// and the topic's contents are checked after.
		var took time.Duration
		for ; took == 0; time.Sleep(5 * time.Millisecond) {
			if st := s.Stats(); st.Emitted >= uint64(total) {
				took = time.Since(stopped)
			} else if time.Since(stopped) > bound+10*time.Second {
				require.FailNow(t, "the results did not come", "%d of %d emitted", st.Emitted, total)
			}
		}
		k.eventuallySame(t, out, parts, want, time.Now(), 30*time.Second)
		require.NoError(t, run.stop(), "Run")
		st := s.Stats()
		require.Less(t, took, bound+500*time.Millisecond, "the last results within lateness + horizon + idle timeout")
		require.Equal(t, uint64(0), st.Late-lateCount(t, k, input, parts), "no event late because of the idle advance")
		t.Logf("every result emitted %v after the input stopped (bound %v); stats %+v", took.Round(10*time.Millisecond), bound, st)
	})
}

// TestStageIdleShortGaps: quiet spells shorter than the idle timeout change
// nothing: the results equal the uninterrupted run's, byte for byte.
func TestStageIdleShortGaps(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		seed := seedFromEnv(t, uint64(time.Now().UnixNano()))
		t.Logf("seed %d", seed)
		r := rand.New(rand.NewPCG(seed, 83))
		const parts = 2
		const idle = 1500 * time.Millisecond
		in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
		trace := pxTrace(t, r, in, parts, 2000, time.Second)
		input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
		group := name(t, "group")
		s, err := NewStage(group, input, newBonus, ToTopic(out, bothCodec), k.stageOpts(t, WithIdleAdvance(idle))...)
		require.NoError(t, err, "NewStage")
		run := startStage(t, s)
		for len(trace) > 0 {
			n := min(len(trace), 50+r.IntN(300))
			produceWallClock(t, k, in, pxCodec, trace[:n])
			trace = trace[n:]
			time.Sleep(time.Duration(r.Int64N(int64(idle / 2)))) // shorter than the idle timeout
		}
		k.waitCommitted(t, group, in, parts, 90*time.Second)
		require.NoError(t, run.stop(), "Run")
		// After the last record the input goes quiet for good: by the stop,
		// the idle advance may have flushed some of the results an end of
		// input would (the sentinels'), and nothing else.
		want, all := referenceOne(t, k, input, parts, newBonus, bothCodec), referenceFinished(t, k, input, parts, newBonus, bothCodec)
		got := k.outputs(t, out, parts)
		n := 0
		for p := range int32(parts) {
			g, w, a := got[p], want[p], all[p]
			require.GreaterOrEqual(t, len(g), len(w), "partition %d: every result of the uninterrupted run", p)
			require.LessOrEqual(t, len(g), len(a), "partition %d: no more than an end of input gives", p)
			require.Equal(t, a[:len(g)], g, "partition %d: identical to the uninterrupted run, then its end-of-input results", p)
			n += len(w)
		}
		t.Logf("%d records identical with quiet spells shorter than the idle timeout; stats %+v", n, s.Stats())
	})
}

// lateCount is the number of late events of the uninterrupted run.
func lateCount(t *testing.T, k *cluster, in Input[px], parts int32) uint64 {
	var late uint64
	for _, ms := range k.readCommitted(t, in.Topic, parts) {
		op, err := newBonus()
		require.NoError(t, err, "operator")
		task, err := stream.NewTask(op, stream.Input[px]{Lateness: in.Lateness}, stream.EmitFunc[lookahead.Both[float64]](func(stream.Event[lookahead.Both[float64]]) {}))
		require.NoError(t, err, "task")
		for _, m := range ms {
			e, err := in.Decoder.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
			require.NoError(t, err, "decode")
			_, err = task.Input().Push(m.Offset, e)
			require.NoError(t, err, "push")
		}
		late += task.Input().Stats().Late
	}
	return late
}

// compareRec orders records by key, then by value: the same multiset of
// records sorts the same.
func compareRec(a, b outRec) int { return strings.Compare(a.Key+"\x00"+a.Value, b.Key+"\x00"+b.Value) }

// TestStageLagExcludesMarkers: a stage that read everything of a topic
// written in transactions (each ends with a marker a read_committed
// consumer never receives) reports a lag of 0, not one per partition.
func TestStageLagExcludesMarkers(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 3
		in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
		trace := pxTrace(t, rand.New(rand.NewPCG(85, 1)), in, parts, 600, 0)
		cfg := k.config(t, WithConfig(func(c *sarama.Config) {
			c.Producer.Transaction.ID = name(t, "txn")
			c.Net.MaxOpenRequests = 1
		}))
		p, err := sarama.NewSyncProducerFromClient(k.client(t, cfg))
		require.NoError(t, err, "transactional producer")
		for len(trace) > 0 {
			n := min(len(trace), 100)
			require.NoError(t, p.BeginTxn(), "begin")
			for _, e := range trace[:n] {
				v, err := pxCodec.AppendValue(nil, e)
				require.NoError(t, err, "encode")
				_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: in, Key: sarama.StringEncoder(e.Key), Value: sarama.ByteEncoder(v)})
				require.NoError(t, err, "send")
			}
			require.NoError(t, p.CommitTxn(), "commit")
			trace = trace[n:]
		}
		input := Input[px]{Topic: in, Decoder: pxCodec}
		group := name(t, "group")
		s, err := NewStage(group, input, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t)...)
		require.NoError(t, err, "NewStage")
		run := startStage(t, s)
		k.waitCommitted(t, group, in, parts, 60*time.Second)
		require.Eventually(t, func() bool { return s.Stats().Lag == 0 }, 10*time.Second, 50*time.Millisecond,
			"the lag of a caught-up stage is 0 (it is %d)", s.Stats().Lag)
		require.NoError(t, run.stop(), "Run")
	})
}

// TestStageIdleAcrossBrokerRestart: a broker that goes away is not a quiet
// input. The stage hears nothing while it is away, but the brokers cannot
// confirm that the input is caught up, so the watermark does not advance;
// the events written once the broker is back (from a producer that held
// them meanwhile) are not late, and the results equal the uninterrupted
// run's.
func TestStageIdleAcrossBrokerRestart(t *testing.T) {
	restartableBackends(t, func(t *testing.T, k *restartable) {
		const parts = 2
		const lateness, idle = time.Second, 500 * time.Millisecond
		r := rand.New(rand.NewPCG(95, 1))
		in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
		trace := pxTrace(t, r, in, parts, 2000, lateness)
		input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: lateness}
		group := name(t, "group")
		s, err := NewStage(group, input, newBonus, ToTopic(out, bothCodec), k.stageOpts(t, WithIdleAdvance(idle))...)
		require.NoError(t, err, "NewStage")
		run := startStage(t, s)
		half := len(trace) / 2
		produceWallClock(t, k.cluster, in, pxCodec, trace[:half])
		require.Eventually(t, func() bool { return s.Stats().Records >= uint64(half) }, 30*time.Second, 10*time.Millisecond, "first half read")
		k.restart(t, 3*time.Second) // longer than lateness + idle timeout
		require.NoError(t, produceWallClockE(t, k.cluster, in, pxCodec, trace[half:]), "second half, after the restart")
		k.waitCommitted(t, group, in, parts, 90*time.Second)
		require.NoError(t, run.stop(), "Run")
		assert.Equal(t, lateCount(t, k.cluster, input, parts), s.Stats().Late, "no event late because of the outage")
		want, all := referenceOne(t, k.cluster, input, parts, newBonus, bothCodec), referenceFinished(t, k.cluster, input, parts, newBonus, bothCodec)
		got := k.outputs(t, out, parts)
		for p := range int32(parts) {
			require.GreaterOrEqual(t, len(got[p]), len(want[p]), "partition %d: every result of the uninterrupted run", p)
			require.Equal(t, all[p][:len(got[p])], got[p], "partition %d: the uninterrupted run's, then end-of-input results", p)
		}
	})
}

// TestStageIdleWhileFetchesFail: fetches that fail for a while (a leader
// that does not answer, while the group session lasts) are not a quiet
// input: the stage hears nothing, but the brokers cannot confirm that it is
// caught up, so the watermark does not advance, and the events that were
// waiting are not late when the fetches work again. On kfake, whose faults
// make the fetches fail.
func TestStageIdleWhileFetchesFail(t *testing.T) {
	k := fakeCluster(t)
	const parts = 2
	const lateness, idle = time.Second, 300 * time.Millisecond
	r := rand.New(rand.NewPCG(97, 1))
	in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
	trace := pxTrace(t, r, in, parts, 2000, lateness)
	input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: lateness}
	group := name(t, "group")
	s, err := NewStage(group, input, newBonus, ToTopic(out, bothCodec), k.stageOpts(t, WithIdleAdvance(idle))...)
	require.NoError(t, err, "NewStage")
	run := startStage(t, s)
	half := len(trace) / 2
	produceWallClock(t, k, in, pxCodec, trace[:half])
	require.Eventually(t, func() bool { return s.Stats().Records >= uint64(half) }, 30*time.Second, 10*time.Millisecond, "first half read")
	fault, err := k.fake.k.Fail(kafkatest.Failure{Requests: []kafkatest.APIKey{kafkatest.Fetch}, Topic: in, Err: sarama.ErrNotLeaderForPartition, Count: -1})
	require.NoError(t, err, "fail the fetches")
	produceWallClock(t, k, in, pxCodec, trace[half:]) // waiting, as the fetches fail
	time.Sleep(3 * time.Second)                       // longer than lateness + idle timeout
	fault.Remove()
	k.waitCommitted(t, group, in, parts, 90*time.Second)
	require.NoError(t, run.stop(), "Run")
	require.Positive(t, fault.Hits(), "fetches failed")
	assert.Equal(t, lateCount(t, k, input, parts), s.Stats().Late, "no event late because of the failing fetches")
}

// slowBonus is newBonus's operator, slowed down: 200 µs an event.
type slowBonus struct {
	stream.Operator[px, lookahead.Both[float64]]
}

func (s slowBonus) Process(e stream.Event[px], out stream.Emitter[lookahead.Both[float64]]) {
	time.Sleep(200 * time.Microsecond)
	s.Operator.Process(e, out)
}

// TestStageIdleBacklog: a backlog is not a quiet input. The input is all
// written before the stage starts, and the stage takes far longer than the
// idle timeout to go through it (a slow operator, small batches): records
// fetched but still waiting for the stage's loop must not count as a quiet
// spell, or the idle advance makes them late. The results equal an
// uninterrupted run's, and no event is late because of the advance.
func TestStageIdleBacklog(t *testing.T) {
	k := fakeCluster(t)
	const parts = 2
	const lateness, idle = 2 * time.Second, 100 * time.Millisecond
	in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
	trace := pxTrace(t, rand.New(rand.NewPCG(83, 1)), in, parts, 4000, lateness)
	produceWallClock(t, k, in, pxCodec, trace)
	input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: lateness}
	newSlow := func() (stream.Operator[px, lookahead.Both[float64]], error) {
		op, err := newBonus()
		return slowBonus{op}, err
	}
	group := name(t, "group")
	s, err := NewStage(group, input, newSlow, ToTopic(out, bothCodec), k.stageOpts(t, WithIdleAdvance(idle), WithMaxBatch(20))...)
	require.NoError(t, err, "NewStage")
	began := time.Now()
	run := startStage(t, s)
	require.Eventually(t, func() bool { return s.Stats().Records >= uint64(len(trace)) }, 2*time.Minute, 5*time.Millisecond,
		"the stage receives every record")
	took := time.Since(began)
	want := referenceFinished(t, k, input, parts, newBonus, bothCodec)
	k.eventuallySame(t, out, parts, want, time.Now(), 30*time.Second)
	require.NoError(t, run.stop(), "Run")
	st := s.Stats()
	require.Greater(t, took, 10*idle, "the backlog took many idle timeouts to go through")
	require.Equal(t, lateCount(t, k, input, parts), st.Late, "no event late because of the idle advance")
	t.Logf("a backlog of %d records over %v (idle timeout %v): results exact; stats %+v", len(trace), took.Round(time.Millisecond), idle, st)
}
