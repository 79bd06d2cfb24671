package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/stream"
)

// withVictim returns trace with ev inserted in the middle.
func withVictim(trace []stream.Event[px], ev stream.Event[px]) ([]stream.Event[px], stream.Event[px]) {
	mid := len(trace) / 2
	ev.Time, ev.Value.T = trace[mid].Time, int64(trace[mid].Time)
	out := append(append(append([]stream.Event[px]{}, trace[:mid]...), ev), trace[mid:]...)
	return out, ev
}

// withoutKey drops the records of one key.
func withoutKey(recs map[int32][]outRec, key string) map[int32][]outRec {
	out := make(map[int32][]outRec)
	for p, rs := range recs {
		for _, r := range rs {
			if r.Key != key {
				out[p] = append(out[p], r)
			}
		}
	}
	return out
}

// find returns the record of topic with the given key, read_committed.
func (k *cluster) find(tb testing.TB, topic string, parts int32, key string) *sarama.ConsumerMessage {
	tb.Helper()
	for _, ms := range k.readCommitted(tb, topic, parts) {
		for _, m := range ms {
			if string(m.Key) == key {
				return m
			}
		}
	}
	require.FailNow(tb, "record not found", "no record with the key %q in %s", key, topic)
	return nil
}

// deadLetters returns the records of a dead-letter topic, read_committed.
func (k *cluster) deadLetters(tb testing.TB, topic string) []*sarama.ConsumerMessage {
	var out []*sarama.ConsumerMessage
	for _, ms := range k.readCommitted(tb, topic, 1) {
		out = append(out, ms...)
	}
	return out
}

// padded is the result of inflate: the price, and for the key POISON
// 5,000 bytes more.
type padded struct {
	T   int64   `json:"t"`
	P   float64 `json:"p"`
	Pad string  `json:"pad,omitempty"`
}

// inflate maps each price to a padded result: a small record whose result
// is large.
type inflate struct{}

func (inflate) Process(e stream.Event[px], out stream.Emitter[padded]) {
	r := padded{T: e.Value.T, P: e.Value.P}
	if e.Key == "POISON" {
		r.Pad = strings.Repeat("x", 5000)
	}
	out.Emit(stream.Event[padded]{Key: e.Key, Time: e.Time, Value: r})
}
func (inflate) Advance(stream.Time, stream.Emitter[padded]) {}
func (inflate) Bounds() stream.Bounds                       { return stream.Bounds{} }

func newInflate() (stream.Operator[px, padded], error) { return inflate{}, nil }

var paddedCodec = JSON[padded]{}

// TestStagePoisonOutput: one input record whose result is too large for the
// output topic (a 5,000-byte result, a topic that takes 4,096 bytes) does not
// stop the stage: the record goes to the dead-letter topic once, untouched,
// with the reason, the output topic and the result's size in headers, and
// every other result equals the uninterrupted run's. The same when the
// stage crashes right after the poison record (its dead letter was in a
// transaction that never committed), and, with StopOnRecordError, Run
// returns a *RecordError naming the record, within a second, and commits
// nothing past it.
func TestStagePoisonOutput(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		for _, mode := range []string{"dead letter", "crash after the poison", "stop"} {
			t.Run(mode, func(t *testing.T) {
				const parts = 3
				r := rand.New(rand.NewPCG(71, uint64(len(mode))))
				in := k.topic(t, parts, nil)
				out := k.topic(t, parts, map[string]string{"max.message.bytes": "4096"})
				dlq := k.topic(t, 1, nil)
				trace, victim := withVictim(pxTrace(t, r, in, parts, 3000, time.Second),
					stream.Event[px]{Key: "POISON", Value: px{P: 5000}})
				produceWallClock(t, k, in, pxCodec, trace)
				input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
				poison := k.find(t, in, parts, victim.Key)
				group := name(t, "group")
				opts := k.stageOpts(t, WithDeadLetter(dlq))
				stopLog := &firstErrorLog{}
				if mode == "stop" {
					opts = append(opts, WithOnRecordError(StopOnRecordError), WithLogger(slog.New(stopLog)))
				}
				newStage := func() *Stage {
					s, err := NewStage(group, input, newInflate, ToTopic(out, paddedCodec), opts...)
					require.NoError(t, err, "NewStage")
					return s
				}
				s := newStage()
				if mode == "crash after the poison" {
					var once sync.Once
					s.hooks.afterBatch = func() {
						if s.stats.refused.total.Load() > 0 {
							once.Do(func() { go s.crash() })
						}
					}
				}
				run := startStage(t, s)
				if mode == "stop" {
					var err error
					select {
					case <-run.done:
						err = run.err
					case <-time.After(60 * time.Second):
						require.FailNow(t, "Run did not stop")
					}
					returned := time.Now()
					var re *RecordError
					require.ErrorAs(t, err, &re, "Run returns a *RecordError")
					refused := stopLog.first()
					require.False(t, refused.IsZero(), "the refusal was logged")
					assert.Less(t, returned.Sub(refused), time.Second, "Run returns within a second of the refusal")
					t.Logf("Run returned %v after the refusal", returned.Sub(refused))
					assert.ErrorIs(t, err, ErrRecordRefused, "it matches ErrRecordRefused")
					assert.Equal(t, RecordError{Stage: group, Topic: in, Partition: poison.Partition, Offset: poison.Offset, Output: out,
						Size: re.Size, Err: re.Err}, *re, "it names the stage, the record and the output")
					assert.Greater(t, re.Size, 5000, "and the result's size")
					assert.Contains(t, err.Error(), fmt.Sprintf("%s/%d@%d", in, poison.Partition, poison.Offset), "the message names the record")
					committed := k.committed(t, group, in, parts)
					assert.LessOrEqual(t, committed[poison.Partition], poison.Offset, "nothing committed past the record")
					assert.Empty(t, k.deadLetters(t, dlq), "no dead letter")
					return
				}
				if mode == "crash after the poison" {
					<-run.done
					require.ErrorIs(t, run.err, ErrCrashed, "crashed")
					s = newStage()
					run = startStage(t, s)
				}
				k.waitCommitted(t, group, in, parts, 90*time.Second)
				require.NoError(t, run.stop(), "Run")
				want := withoutKey(referenceOne(t, k, input, parts, newInflate, paddedCodec), victim.Key)
				n := sameOutputs(t, want, k.outputs(t, out, parts), "results")
				dead := k.deadLetters(t, dlq)
				require.Len(t, dead, 1, "one dead letter")
				d := dead[0]
				assert.Equal(t, string(poison.Key), string(d.Key), "the input record's key")
				assert.Equal(t, string(poison.Value), string(d.Value), "the input record's value, untouched")
				h := headers(d)
				assert.Equal(t, "refused-too-large", h[HeaderErrorKind], "kind")
				assert.Contains(t, h[HeaderError], "more than the", "reason")
				assert.Equal(t, out, h[HeaderOutputTopic], "output topic")
				size, err := strconv.Atoi(h[HeaderSize])
				require.NoError(t, err, "size header")
				assert.Greater(t, size, 5000, "size")
				assert.Equal(t, in, h[HeaderTopic], "input topic")
				assert.Equal(t, strconv.Itoa(int(poison.Partition)), h[HeaderPartition], "partition")
				assert.Equal(t, strconv.FormatInt(poison.Offset, 10), h[HeaderOffset], "offset")
				assert.Equal(t, group, h[HeaderStage], "stage")
				if mode == "dead letter" {
					st := s.Stats()
					assert.Equal(t, uint64(1), st.Refused, "refused")
					assert.Equal(t, uint64(1), st.DeadLettered, "dead-lettered")
				}
				t.Logf("%d records exact around a poison record; stats %+v", n, s.Stats())
			})
		}
	})
}

// TestStageMissingTopics: a stage whose output or dead-letter topic does not
// exist fails Run at once with ErrMissingTopic naming the topic, instead of
// aborting and retrying; WithEnsureTopics creates them.
func TestStageMissingTopics(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		in := k.topic(t, 2, nil)
		produceWallClock(t, k, in, pxCodec, pxTrace(t, rand.New(rand.NewPCG(1, 2)), in, 2, 100, 0))
		input := Input[px]{Topic: in, Decoder: pxCodec}
		for _, tc := range []struct {
			name    string
			out     func(missing string) (Output[[]mstat], []StageOption)
			missing string
		}{{
			name: "output",
			out: func(missing string) (Output[[]mstat], []StageOption) {
				return ToTopic(missing, mstatCodec), nil
			},
		}, {
			name: "dead letter",
			out: func(missing string) (Output[[]mstat], []StageOption) {
				return ToTopic(k.topic(t, 2, nil), mstatCodec), []StageOption{WithDeadLetter(missing)}
			},
		}} {
			t.Run(tc.name, func(t *testing.T) {
				missing := name(t, "missing")
				o, extra := tc.out(missing)
				s, err := NewStage(name(t, "group"), input, newMoving, o, k.stageOpts(t, extra...)...)
				require.NoError(t, err, "NewStage")
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				err = s.Run(ctx)
				require.ErrorIs(t, err, ErrMissingTopic, "Run fails")
				assert.ErrorIs(t, err, sarama.ErrUnknownTopicOrPartition, "sarama's error is wrapped")
				assert.Contains(t, err.Error(), missing, "the error names the topic")
				assert.Less(t, time.Since(start), 10*time.Second, "within seconds")

				group := name(t, "group")
				s, err = NewStage(group, input, newMoving, o, k.stageOpts(t, append(extra, WithEnsureTopics(TopicSpec{Name: missing, Partitions: 2}))...)...)
				require.NoError(t, err, "NewStage")
				run := startStage(t, s)
				k.waitCommitted(t, group, in, 2, 60*time.Second)
				require.NoError(t, run.stop(), "Run, with the topic created")
			})
		}
	})
}

// TestStageStatsOnce: after commits that fail (each aborts the transaction
// and rebuilds the tasks), a stage's counts of records, events, dead
// letters and results equal an uninterrupted run's: each record is counted
// once, and the records processed again show in Reprocessed.
func TestStageStatsOnce(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 3
		in, dlq := k.topic(t, parts, nil), k.topic(t, 1, nil)
		trace := pxTrace(t, rand.New(rand.NewPCG(75, 1)), in, parts, 3000, time.Second)
		produceWallClock(t, k, in, pxCodec, trace)
		bad := make([]*sarama.ProducerMessage, 20)
		for i := range bad {
			bad[i] = &sarama.ProducerMessage{Topic: in, Key: sarama.StringEncoder("BTCUSDT"), Value: sarama.StringEncoder("{not json")}
		}
		p, err := sarama.NewSyncProducerFromClient(k.client(t, nil))
		require.NoError(t, err, "producer")
		require.NoError(t, p.SendMessages(bad), "bad records")
		input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
		run := func(fail bool) StageStats {
			out := k.topic(t, parts, nil)
			group := name(t, "group")
			s, err := NewStage(group, input, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t, WithDeadLetter(dlq))...)
			require.NoError(t, err, "NewStage")
			if fail {
				var n int
				s.hooks.failCommit = func() error {
					if n++; n%3 == 1 && n < 30 {
						return errors.New("a commit refused (test)")
					}
					return nil
				}
			}
			r := startStage(t, s)
			k.waitCommitted(t, group, in, parts, 90*time.Second)
			require.NoError(t, r.stop(), "Run")
			return s.Stats()
		}
		want, got := run(false), run(true)
		require.Positive(t, got.Aborts, "aborted")
		require.Positive(t, got.Reprocessed, "records processed again")
		assert.Equal(t, uint64(20), want.Rejected, "the bad records")
		norm := func(s StageStats) StageStats {
			// What depends on the aborts, or on timing in any two runs.
			s.Aborts, s.Rebuilds, s.Replayed, s.Reprocessed, s.Commits, s.Tasks, s.Lag, s.Watermark = 0, 0, 0, 0, 0, 0, 0, 0
			return s
		}
		assert.Equal(t, norm(want), norm(got), "counts as in the uninterrupted run")
		t.Logf("uninterrupted %+v; with aborts %+v", want, got)
	})
}

// TestStageTooFarAhead: one event from 2099 among events of 2025 whose
// records carry the producer's wall clock is refused (Input.MaxAhead): it
// goes to the dead-letter topic with the reason, never moves the watermark,
// and every other result equals the uninterrupted run's over the trace
// without it. Without the bound, every later event of its partition would
// be late.
func TestStageTooFarAhead(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 3
		r := rand.New(rand.NewPCG(77, 1))
		in, out, dlq := k.topic(t, parts, nil), k.topic(t, parts, nil), k.topic(t, 1, nil)
		clean := pxTrace(t, r, in, parts, 3000, time.Second)
		trace, victim := withVictim(clean, stream.Event[px]{Key: clean[len(clean)/2].Key, Value: px{P: 1}})
		const year2099 = 4_070_908_800_000
		for i := range trace {
			if trace[i].Value.P == 1 && trace[i].Time == victim.Time && trace[i].Key == victim.Key {
				trace[i].Time, trace[i].Value.T = year2099, year2099
				break
			}
		}
		produceWallClock(t, k, in, pxCodec, trace)
		input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second, MaxAhead: time.Hour}
		group := name(t, "group")
		s, err := NewStage(group, input, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t, WithDeadLetter(dlq))...)
		require.NoError(t, err, "NewStage")
		run := startStage(t, s)
		k.waitCommitted(t, group, in, parts, 90*time.Second)
		require.NoError(t, run.stop(), "Run")
		// The reference skips the refused record, as if it were not there.
		ref := referenceOneWith(t, k, input, parts, newMoving, mstatCodec, func(e stream.Event[px]) bool { return e.Time != year2099 })
		n := sameOutputs(t, ref, k.outputs(t, out, parts), "moving records")
		dead := k.deadLetters(t, dlq)
		require.Len(t, dead, 1, "one dead letter")
		assert.Equal(t, "too-far-ahead", headers(dead[0])[HeaderErrorKind], "kind")
		assert.Contains(t, headers(dead[0])[HeaderError], "2099-01-01T00:00:00.000Z is more than 1h0m0s ahead of its record's timestamp", "reason")
		assert.Equal(t, uint64(1), s.Stats().Ahead, "counted")
		assert.Zero(t, s.Stats().Late-countLate(t, k, input, parts), "no event late because of it")
		t.Logf("%d records exact around an event from 2099; stats %+v", n, s.Stats())
	})
}

// countLate is the number of late events of the uninterrupted run without
// the 2099 record.
func countLate(t *testing.T, k *cluster, in Input[px], parts int32) uint64 {
	var late uint64
	for _, ms := range k.readCommitted(t, in.Topic, parts) {
		op, err := newMoving()
		require.NoError(t, err, "operator")
		task, err := stream.NewTask(op, stream.Input[px]{Lateness: in.Lateness, MaxAhead: in.MaxAhead}, stream.EmitFunc[[]mstat](func(stream.Event[[]mstat]) {}))
		require.NoError(t, err, "task")
		for _, m := range ms {
			e, err := in.Decoder.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
			if err != nil {
				continue
			}
			_, err = task.Input().PushStamped(m.Offset, e, stream.TimeOf(m.Timestamp))
			require.NoError(t, err, "push")
		}
		late += task.Input().Stats().Late
	}
	return late
}

// referenceOneWith is referenceOne over the events keep keeps.
func referenceOneWith[In, Out any](tb testing.TB, k *cluster, in Input[In], partitions int32,
	newOp func() (stream.Operator[In, Out], error), codec Codec[Out], keep func(stream.Event[In]) bool) map[int32][]outRec {
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
			if err != nil || !keep(e) {
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

// rejectingStore is an upsert store that refuses, for good, the results of
// some keys at Write and of others at Flush.
type rejectingStore struct {
	upsertStore
	atWrite, atFlush string // keys
	pending          []stream.Rejection
}

func (s *rejectingStore) Write(ctx context.Context, e stream.Event[[]mstat]) error {
	switch e.Key {
	case s.atWrite:
		return fmt.Errorf("the store refuses %s: %w", e.Key, stream.ErrRejected)
	case s.atFlush:
		s.pending = append(s.pending, stream.Rejection{Key: e.Key, Time: e.Time, Err: errors.New("refused at the flush (test)")})
		return nil
	}
	return s.upsertStore.Write(ctx, e)
}

func (s *rejectingStore) Flush(ctx context.Context) error {
	if err := s.upsertStore.Flush(ctx); err != nil {
		return err
	}
	if len(s.pending) == 0 {
		return nil
	}
	rej := &stream.RejectedError{Rejections: s.pending}
	s.pending = nil
	return rej
}

// TestStageSinkRejections: a sink that refuses results for good, at Write
// (an error matching stream.ErrRejected) or at Flush (a
// *stream.RejectedError), does not stop a stage writing to it: the input
// records of those results go to the dead-letter topic once each, with the
// reason, and the sink holds everything else.
func TestStageSinkRejections(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 3
		r := rand.New(rand.NewPCG(79, 1))
		in, dlq := k.topic(t, parts, nil), k.topic(t, 1, nil)
		trace := pxTrace(t, r, in, parts, 2000, 0)
		trace, w := withVictim(trace, stream.Event[px]{Key: "REFUSED-AT-WRITE", Value: px{P: 1}})
		trace, f := withVictim(trace, stream.Event[px]{Key: "REFUSED-AT-FLUSH", Value: px{P: 2}})
		produceWallClock(t, k, in, pxCodec, trace)
		input := Input[px]{Topic: in, Decoder: pxCodec}
		store := &rejectingStore{upsertStore: upsertStore{docs: map[string]string{}}, atWrite: w.Key, atFlush: f.Key}
		group := name(t, "group")
		s, err := NewStage(group, input, newMoving, ToSink[[]mstat](store), k.stageOpts(t, WithDeadLetter(dlq))...)
		require.NoError(t, err, "NewStage")
		run := startStage(t, s)
		k.waitCommitted(t, group, in, parts, 90*time.Second)
		require.NoError(t, run.stop(), "Run")
		want := referenceDocs(t, k, input, parts)
		for id := range want {
			if strings.HasPrefix(id, "REFUSED-AT-") {
				delete(want, id)
			}
		}
		store.mu.Lock()
		got := maps.Clone(store.docs)
		store.mu.Unlock()
		assert.Equal(t, want, got, "the sink holds every other result")
		dead := k.deadLetters(t, dlq)
		keys := map[string]int{}
		for _, d := range dead {
			keys[string(d.Key)]++
			assert.Equal(t, "refused-sink", headers(d)[HeaderErrorKind], "kind")
			assert.Equal(t, "sink", headers(d)[HeaderOutputTopic], "output")
		}
		assert.Equal(t, map[string]int{w.Key: 1, f.Key: 1}, keys, "each refused result's input once")
		assert.Equal(t, uint64(2), s.Stats().Refused, "refused")
		assert.Equal(t, uint64(len(want)), s.Stats().Emitted, "emitted: each result the sink holds, once; a refused one is not")
	})
}

// bigAndSmall emits, for each price, a 6,000-byte result to the main
// output and its cents to a side.
type bigAndSmall struct{ side stream.Emitter[int64] }

func (b bigAndSmall) Process(e stream.Event[px], out stream.Emitter[padded]) {
	out.Emit(stream.Event[padded]{Key: e.Key, Time: e.Time, Value: padded{T: e.Value.T, P: e.Value.P, Pad: strings.Repeat("x", 6000)}})
	b.side.Emit(stream.Event[int64]{Key: e.Key, Time: e.Time, Value: int64(e.Value.P*100 + 0.5)})
}
func (bigAndSmall) Advance(stream.Time, stream.Emitter[padded]) {}
func (bigAndSmall) Bounds() stream.Bounds                       { return stream.Bounds{} }

// TestStageMixedTopicLimits: a stage writes to a topic that takes 4,096
// bytes a batch (max.message.bytes) and to one that takes the default:
// 6,000-byte results go to the second, and the first's small records,
// thousands of them, never make a batch it refuses. Nothing is refused,
// and both topics equal an uninterrupted task's, record by record.
func TestStageMixedTopicLimits(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 3
		r := rand.New(rand.NewPCG(17, 4096))
		in, big := k.topic(t, parts, nil), k.topic(t, parts, nil)
		small := k.topic(t, parts, map[string]string{"max.message.bytes": "4096"})
		dlq := k.topic(t, 1, nil)
		trace := pxTrace(t, r, in, parts, 3000, time.Second)
		produceWallClock(t, k, in, pxCodec, trace)
		input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
		group := name(t, "group")
		side := NewSide(ToTopic(small, centsCodec))
		s, err := NewStage(group, input, func() (stream.Operator[px, padded], error) { return bigAndSmall{side.Emitter()}, nil },
			ToTopic(big, paddedCodec), k.stageOpts(t, WithSides(side), WithDeadLetter(dlq))...)
		require.NoError(t, err, "NewStage")
		run := startStage(t, s)
		k.waitCommitted(t, group, in, parts, 90*time.Second)
		require.NoError(t, run.stop(), "Run")

		want := map[string]map[int32][]outRec{big: {}, small: {}}
		for p, ms := range k.readCommitted(t, in, parts) {
			var bigEnc encodeTo[padded]
			var smallEnc encodeTo[int64]
			bigEnc.codec, bigEnc.tb, smallEnc.codec, smallEnc.tb = paddedCodec, t, centsCodec, t
			task, err := stream.NewTask[px, padded](bigAndSmall{&smallEnc}, input.task(), &bigEnc)
			require.NoError(t, err, "task")
			for _, m := range ms {
				e, err := pxCodec.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
				require.NoError(t, err, "decode")
				_, err = task.Input().Push(m.Offset, e)
				require.NoError(t, err, "push")
			}
			want[big][p], want[small][p] = bigEnc.out, smallEnc.out
		}
		n := sameOutputs(t, want[big], k.outputs(t, big, parts), "large results") +
			sameOutputs(t, want[small], k.outputs(t, small, parts), "small results")
		st := s.Stats()
		assert.Zero(t, st.Refused, "nothing refused")
		assert.Zero(t, st.Aborts, "no transaction failed")
		assert.Empty(t, k.deadLetters(t, dlq), "no dead letter")
		t.Logf("%d records exact on two topics of different limits; %d commits", n, st.Commits)
	})
}

// firstErrorLog is a slog.Handler that keeps the time of the first record
// at level Error (a stage logs the refusal that stops it so, at once).
type firstErrorLog struct {
	mu sync.Mutex
	at time.Time
}

func (h *firstErrorLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *firstErrorLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *firstErrorLog) WithGroup(string) slog.Handler            { return h }
func (h *firstErrorLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Level >= slog.LevelError && h.at.IsZero() {
		h.at = time.Now()
	}
	return nil
}

func (h *firstErrorLog) first() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.at
}

// stopRejectStore refuses the victim's result at a flush, and holds that
// flush until the test releases it (after it has stopped the stage).
type stopRejectStore struct {
	upsertStore
	victim           string
	pending          []stream.Rejection
	entered, release chan struct{}
	once             sync.Once
}

func (s *stopRejectStore) Write(ctx context.Context, e stream.Event[[]mstat]) error {
	if e.Key == s.victim {
		s.pending = append(s.pending, stream.Rejection{Key: e.Key, Time: e.Time, Err: errors.New("refused at the flush (test)")})
		return nil
	}
	return s.upsertStore.Write(ctx, e)
}

func (s *stopRejectStore) Flush(ctx context.Context) error {
	if err := s.upsertStore.Flush(ctx); err != nil {
		return err
	}
	if len(s.pending) == 0 {
		return nil
	}
	s.once.Do(func() {
		close(s.entered)
		<-s.release
	})
	rej := &stream.RejectedError{Rejections: s.pending}
	s.pending = nil
	return rej
}

// TestStageSinkRejectionAtStop: a sink's rejection that its flush reports
// while the stage is being stopped is not lost: the stage dead-letters the
// refused result's input record, or commits nothing past it (the next
// owner processes it again). (The flush of a periodic commit returned the
// rejection after the stop; the input record, read again on the stopping
// context, could not be read; the commit gave up quietly, and the final
// commit, whose flush had nothing left to report, committed the offsets
// past the record without its dead letter.)
func TestStageSinkRejectionAtStop(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 3
		r := rand.New(rand.NewPCG(83, 1))
		in, dlq := k.topic(t, parts, nil), k.topic(t, 1, nil)
		trace, v := withVictim(pxTrace(t, r, in, parts, 400, 0), stream.Event[px]{Key: "REFUSED-AT-STOP", Value: px{P: 1}})
		produceWallClock(t, k, in, pxCodec, trace)
		input := Input[px]{Topic: in, Decoder: pxCodec}
		victim := k.find(t, in, parts, v.Key)
		store := &stopRejectStore{upsertStore: upsertStore{docs: map[string]string{}}, victim: v.Key,
			entered: make(chan struct{}), release: make(chan struct{})}
		group := name(t, "group")
		s, err := NewStage(group, input, newMoving, ToSink[[]mstat](store), k.stageOpts(t, WithDeadLetter(dlq))...)
		require.NoError(t, err, "NewStage")
		run := startStage(t, s)
		select {
		case <-store.entered:
		case <-time.After(60 * time.Second):
			require.FailNow(t, "no flush with the rejection in 60 s")
		}
		run.cancel() // the stop, while the flush is under way
		time.Sleep(100 * time.Millisecond)
		close(store.release)
		<-run.done
		t.Logf("Run: %v; stats %+v", run.err, s.Stats())
		committed := k.committed(t, group, in, parts)
		var dead []string
		for _, d := range k.deadLetters(t, dlq) {
			dead = append(dead, string(d.Key))
		}
		if committed[victim.Partition] > victim.Offset {
			assert.Equal(t, []string{v.Key}, dead, "committed past the refused result (offset %d > %d): its input is dead-lettered", committed[victim.Partition], victim.Offset)
		} else {
			t.Logf("nothing committed past the refused result (offset %d <= %d); dead letters %q", committed[victim.Partition], victim.Offset, dead)
		}
	})
}
