package kafkaio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStageLifecycle: Start runs a stage in the background, WaitCaughtUp
// returns once it has read and committed every record written before (and
// again after more are written), Stop stops it gracefully and returns
// Run's error, Wait and a second Stop return the same; a second Start is
// refused.
func TestStageLifecycle(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 3
		r := rand.New(rand.NewPCG(101, 1))
		in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
		trace := pxTrace(t, r, in, parts, 2000, time.Second)
		produceWallClock(t, k, in, pxCodec, trace[:1000])
		input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
		group := name(t, "group")
		var made atomic.Int32
		s, err := NewStage(group, input, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t,
			WithClientFactory(func(addrs []string, cfg *sarama.Config) (sarama.Client, error) {
				made.Add(1)
				return sarama.NewClient(addrs, cfg)
			}))...)
		require.NoError(t, err, "NewStage")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		require.NoError(t, s.Start(ctx), "Start")
		assert.ErrorIs(t, s.Start(ctx), ErrStageRunning, "a second Start")
		assert.ErrorIs(t, s.Run(ctx), ErrStageRunning, "Run after Start")
		require.NoError(t, s.WaitCaughtUp(ctx), "caught up with the first half")
		assert.Equal(t, k.committed(t, group, in, parts), lastPositions(t, k, in, parts), "committed, at the positions of the last records")
		produceWallClock(t, k, in, pxCodec, trace[1000:])
		require.NoError(t, s.WaitCaughtUp(ctx), "caught up with the second half")
		assert.Equal(t, uint64(len(trace)), s.Stats().Records, "every record read")
		assert.Equal(t, k.committed(t, group, in, parts), lastPositions(t, k, in, parts), "committed again")
		require.NoError(t, s.Stop(), "Stop")
		require.NoError(t, s.Wait(), "Wait after Stop")
		require.NoError(t, s.Stop(), "Stop again")
		assert.Equal(t, int32(3), made.Load(), "the factory made the group's, the producer's and the replay's clients")
		sameOutputs(t, referenceOne(t, k, input, parts, newMoving, mstatCodec), k.outputs(t, out, parts), "moving records")

		never, err := NewStage(name(t, "group"), input, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t)...)
		require.NoError(t, err, "NewStage")
		assert.NoError(t, never.Stop(), "Stop of a stage never started")
		assert.NoError(t, never.Wait(), "Wait of a stage never started")
	})
}

// lastPositions returns, per partition, the offset after its last record
// (read_committed), or -1.
func lastPositions(t *testing.T, k *cluster, topic string, parts int32) []int64 {
	out := make([]int64, parts)
	recs := k.readCommitted(t, topic, parts)
	for p := range parts {
		out[p] = -1
		if ms := recs[p]; len(ms) > 0 {
			out[p] = ms[len(ms)-1].Offset + 1
		}
	}
	return out
}

// TestStageFaults: a test crashes a stage (Crash, CrashAtCommit) and
// fails its commits (FailCommits) through Faults; restarted, the stage's
// results equal an uninterrupted run's.
func TestStageFaults(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 3
		r := rand.New(rand.NewPCG(103, 1))
		in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
		trace := pxTrace(t, r, in, parts, 3000, time.Second)
		writing := writeSlowly(t, k, in, pxCodec, trace, 10)
		input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
		group := name(t, "group")
		ctx := context.Background()
		run := func(fault func(f *Faults)) error {
			f := &Faults{}
			s, err := NewStage(group, input, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t, WithFaults(f), WithInstanceID("one"))...)
			require.NoError(t, err, "NewStage")
			require.NoError(t, s.Start(ctx), "Start")
			require.Eventually(t, func() bool { return s.Stats().Tasks == parts }, 30*time.Second, 5*time.Millisecond, "tasks")
			fault(f)
			return s.Wait()
		}
		assert.ErrorIs(t, run(func(f *Faults) { time.Sleep(200 * time.Millisecond); f.Crash() }), ErrCrashed, "Crash")
		assert.ErrorIs(t, run(func(f *Faults) { f.CrashAtCommit(2) }), ErrCrashed, "CrashAtCommit")
		<-writing
		f := &Faults{}
		s, err := NewStage(group, input, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t, WithFaults(f), WithInstanceID("one"))...)
		require.NoError(t, err, "NewStage")
		f.FailCommits(3, errors.New("refused (test)"))
		require.NoError(t, s.Start(ctx), "Start")
		require.NoError(t, s.WaitCaughtUp(ctx), "caught up")
		require.NoError(t, s.Stop(), "Stop")
		assert.GreaterOrEqual(t, s.Stats().Aborts, uint64(3), "the failed commits aborted")
		n := sameOutputs(t, referenceOne(t, k, input, parts, newMoving, mstatCodec), k.outputs(t, out, parts), "moving records")
		t.Logf("%d records exact after two crashes and three failed commits", n)

		_, err = NewStage(name(t, "group"), input, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t, WithFaults(f))...)
		assert.ErrorIs(t, err, ErrInvalidOption, "a Faults given to two stages")
	})
}

// TestStageProfileLabel: a running stage's goroutines, its own and those
// of its sarama clients, carry the profiler label ProfileLabel with the
// stage's group, so that a profile of a process with several stages can be
// read one stage at a time.
func TestStageProfileLabel(t *testing.T) {
	k := fakeCluster(t)
	in, out := k.topic(t, 2, nil), k.topic(t, 2, nil)
	produceWallClock(t, k, in, pxCodec, pxTrace(t, rand.New(rand.NewPCG(5, 5)), in, 2, 200, time.Second))
	group := name(t, "group")
	s, err := NewStage(group, Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t)...)
	require.NoError(t, err, "NewStage")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, s.Start(ctx), "Start")
	require.NoError(t, s.WaitCaughtUp(ctx), "WaitCaughtUp")

	var buf bytes.Buffer
	require.NoError(t, pprof.Lookup("goroutine").WriteTo(&buf, 1))
	label := fmt.Sprintf(`# labels: {%q:%q}`, ProfileLabel, group)
	var loop, sarama int
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if !strings.Contains(g, label) {
			continue
		}
		if strings.Contains(g, "kafkaio.(*runtime).loop") {
			loop++
		}
		if strings.Contains(g, "github.com/IBM/sarama.") {
			sarama++
		}
	}
	assert.Equal(t, 1, loop, "the stage's loop is labelled")
	assert.Greater(t, sarama, 2, "goroutines of sarama's consumer and broker connections are labelled")
	require.NoError(t, s.Stop(), "Stop")
}
