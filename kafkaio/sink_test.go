package kafkaio

import (
	"context"
	"encoding/json"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/stream"
)

// restartable is a broker the test can stop and start again with its data:
// a kfake cluster on a fixed port and data directory, or the real broker of
// scripts/kafka/broker.sh (stop --keep, start).
type restartable struct {
	*cluster
	restart func(t *testing.T, down time.Duration)
}

func restartableBackends(t *testing.T, f func(t *testing.T, k *restartable)) {
	t.Run("kfake", func(t *testing.T) {
		k := &restartable{cluster: fakeCluster(t, kafkatest.WithDataDir(t.TempDir()))}
		k.restart = func(t *testing.T, down time.Duration) {
			require.NoError(t, k.fake.k.Restart(t.Context(), down), "restart the broker on its port, with its data")
		}
		f(t, k)
	})
	t.Run("kafka", func(t *testing.T) {
		k := &restartable{cluster: realCluster(t)}
		script, err := filepath.Abs("../scripts/kafka/broker.sh")
		require.NoError(t, err, "script path")
		if err := exec.Command("bash", script, "status").Run(); err != nil {
			t.Skipf("the broker at %v was not started by %s, so this test cannot restart it", k.addrs, script)
		}
		k.restart = func(t *testing.T, down time.Duration) {
			out, err := exec.Command("bash", script, "stop", "--keep").CombinedOutput()
			require.NoError(t, err, "stop the broker: %s", out)
			time.Sleep(down)
			out, err = exec.Command("bash", script, "start").CombinedOutput()
			require.NoError(t, err, "start the broker: %s", out)
		}
		f(t, k)
	})
}

// TestSinkBrokerRestart: the broker goes away while records stream into a
// Sink and comes back with its data 3 s later; no record is lost and the
// Sink does not fail.
//
// With WithBrokers (subtest "own client") the Sink makes sarama retry in
// order, so every record lands once and in write order. With a client of
// the caller's, at sarama's default retries ("given client"), sarama gives
// failed records back and the Sink holds them, makes Writes wait and resends
// them once the broker answers: every record lands at least once, and only
// resent ones may land twice or behind later ones.
func TestSinkBrokerRestart(t *testing.T) {
	restartableBackends(t, func(t *testing.T, k *restartable) {
		t.Run("own client", func(t *testing.T) {
			st, dups, behind := sinkAcrossRestart(t, k, func(topic string) *Sink[tick] {
				sink, err := NewSink(nil, JSON[tick]{}, WithTopic(topic), WithBrokers(k.addrs, k.config(t)), WithLogger(testLogger(t)))
				require.NoError(t, err, "NewSink")
				return sink
			})
			assert.Zero(t, dups, "no record twice")
			assert.Zero(t, behind, "write order kept")
			assert.Zero(t, st.Resent, "sarama's own retries rode the restart out")
		})
		t.Run("given client", func(t *testing.T) {
			st, dups, behind := sinkAcrossRestart(t, k, func(topic string) *Sink[tick] {
				sink, err := NewSink(k.client(t, k.config(t)), JSON[tick]{}, WithTopic(topic), WithLogger(testLogger(t)))
				require.NoError(t, err, "NewSink")
				return sink
			})
			assert.GreaterOrEqual(t, st.Outages, uint64(1), "the restart was an outage for the sink")
			assert.LessOrEqual(t, uint64(dups), st.Resent, "only resent records can be in the topic twice")
			assert.LessOrEqual(t, uint64(behind), st.Resent, "only resent records can land out of order")
		})
	})
}

// sinkAcrossRestart writes 6,000 records through the Sink newSink makes
// while the broker restarts, checks that none is lost, and returns the
// Sink's stats, how many records landed twice and how many landed behind a
// record written later in their partition.
func sinkAcrossRestart(t *testing.T, k *restartable, newSink func(topic string) *Sink[tick]) (st SinkStats, dups, behind int) {
	const parts, n = 3, 6000
	topic := k.topic(t, parts, nil)
	sink := newSink(topic)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var written atomic.Int64
	done := make(chan error, 1)
	go func() {
		for i, e := range ticks(n, 12, stream.TimeOf(time.Now())) {
			if err := sink.Write(ctx, e); err != nil {
				done <- err
				return
			}
			written.Store(int64(i + 1))
			if i%20 == 0 {
				time.Sleep(time.Millisecond) // about 20,000 records/s: the restart falls mid-stream
			}
		}
		done <- sink.Flush(ctx)
	}()
	require.Eventually(t, func() bool { return written.Load() >= n/5 }, time.Minute, time.Millisecond, "writing")
	k.restart(t, 3*time.Second)
	require.NoError(t, <-done, "Write and Flush across the restart")
	require.NoError(t, sink.Close(context.Background()), "Close")
	st = sink.Stats()
	t.Logf("stats %+v", st)
	assert.Equal(t, uint64(n), st.Written, "written")
	assert.Zero(t, st.Failed, "failed")
	assert.Equal(t, st.Written, st.Acked, "every record acknowledged")

	seen := make([]int, n)
	top := map[int32]int{}
	for _, m := range k.readAll(t, topic, parts) {
		var v tick
		require.NoError(t, json.Unmarshal(m.Value, &v), "record %s", m.Value)
		require.True(t, v.N >= 0 && v.N < n, "record number %d", v.N)
		seen[v.N]++
		if hi, ok := top[m.Partition]; ok && v.N < hi {
			behind++
		}
		top[m.Partition] = max(top[m.Partition], v.N)
	}
	lost := 0
	for i, c := range seen {
		if c == 0 {
			lost++
			if lost <= 5 {
				t.Errorf("record %d is not in the topic", i)
			}
		}
		dups += max(c-1, 0)
	}
	assert.Zero(t, lost, "records lost")
	t.Logf("%d records, 0 lost, %d duplicates and %d out of order from %d resends", n, dups, behind, st.Resent)
	return st, dups, behind
}

// sinkOfGoneBroker returns a Sink with a 3 s delivery timeout that wrote e
// and then lost its broker for good.
func sinkOfGoneBroker(t *testing.T, ctx context.Context) (*Sink[tick], stream.Event[tick]) {
	t.Helper()
	k := fakeCluster(t)
	sink, err := NewSink(nil, JSON[tick]{}, WithTopic(k.topic(t, 1, nil)), WithBrokers(k.addrs, k.config(t)),
		WithDeliveryTimeout(3*time.Second), WithLogger(testLogger(t)))
	require.NoError(t, err, "NewSink")
	e := stream.Event[tick]{Key: "a", Time: stream.TimeOf(time.Now())}
	require.NoError(t, sink.Write(ctx, e), "Write")
	require.NoError(t, sink.Flush(ctx), "Flush while the broker is up")
	require.NoError(t, k.fake.Close(), "stop the broker")
	return sink, e
}

// TestSinkDeliveryTimeout: a broker that stays away fails the Sink once the
// delivery timeout has passed, not before and not never; the failure is a
// ProduceError with sarama's error, sticky for later Writes.
func TestSinkDeliveryTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sink, e := sinkOfGoneBroker(t, ctx)
	began := time.Now()
	require.NoError(t, sink.Write(ctx, e), "Write hands the record over")
	err := sink.Flush(ctx)
	took := time.Since(began)
	require.Error(t, err, "Flush reports the lost broker")
	require.NoError(t, ctx.Err(), "Flush did not time out")
	assert.GreaterOrEqual(t, took, 3*time.Second, "the sink waited for the delivery timeout")
	assert.Less(t, took, 20*time.Second, "and not much longer")
	var pe *ProduceError
	assert.ErrorAs(t, err, &pe, "a ProduceError: %v", err)
	assert.Error(t, sink.Write(ctx, e), "the failure is sticky")
	st := sink.Stats()
	assert.Equal(t, uint64(1), st.Failed, "failed")
	assert.Equal(t, uint64(1), st.Outages, "outages")
	assert.Error(t, sink.Close(context.Background()), "Close reports it")
	t.Logf("failed after %v: %v; stats %+v", took.Round(time.Millisecond), err, st)
}

// TestSinkCloseContext: a Close whose context ends while records are held
// back by an outage says how many are left and keeps them (the sink stays
// open, refusing Writes); a later Close waits for them, here until the
// delivery timeout fails them, and every Close after that returns the same.
func TestSinkCloseContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sink, e := sinkOfGoneBroker(t, ctx)
	require.NoError(t, sink.Write(ctx, e), "Write hands the record over")

	done, cancelDone := context.WithCancel(ctx)
	cancelDone()
	err := sink.Close(done)
	require.ErrorIs(t, err, context.Canceled, "a Close whose context is done already gives up at once")
	assert.ErrorContains(t, err, "1 records still in flight", "and still says what it keeps")

	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	err = sink.Close(short)
	require.ErrorIs(t, err, context.DeadlineExceeded, "Close gives up with its context")
	assert.ErrorContains(t, err, "1 records still in flight", "and says what it keeps")
	assert.ErrorIs(t, sink.Write(ctx, e), ErrClosed, "Writes are refused from the first Close")

	err = sink.Close(ctx)
	var pe *ProduceError
	require.ErrorAs(t, err, &pe, "the next Close waits for the delivery timeout: %v", err)
	require.NoError(t, ctx.Err(), "Close did not time out")
	assert.Equal(t, err, sink.Close(ctx), "a closed sink's Close returns the same")
	st := sink.Stats()
	assert.Equal(t, uint64(2), st.Written, "written")
	assert.Equal(t, uint64(1), st.Failed, "failed")
}

// testLogger logs to t at info level, so that a test shows the Sink's
// outage lines.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
