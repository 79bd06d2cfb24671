package kafkaio

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/stream"
)

// parity splits prices: each to the main output, and to the side of its
// parity in cents (even or odd), of another type.
type parity struct {
	even, odd stream.Emitter[int64]
}

func (p parity) Process(e stream.Event[px], out stream.Emitter[px]) {
	out.Emit(e)
	cents := int64(e.Value.P*100 + 0.5)
	side := p.odd
	if cents%2 == 0 {
		side = p.even
	}
	side.Emit(stream.Event[int64]{Key: e.Key, Time: e.Time, Value: cents})
}
func (parity) Advance(stream.Time, stream.Emitter[px]) {}
func (parity) Bounds() stream.Bounds                   { return stream.Bounds{} }

var centsCodec = JSON[int64]{}

// TestStageSides: a stage with side outputs (NewSide, WithSides) writes
// each to its own topic, of its own type, in the same transactions as the
// main output: killed at random points and restarted, every topic equals
// the uninterrupted run's, record by record.
func TestStageSides(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		seed := seedFromEnv(t, uint64(time.Now().UnixNano()))
		t.Logf("seed %d", seed)
		r := rand.New(rand.NewPCG(seed, 91))
		const parts = 3
		in, main, evenT, oddT := k.topic(t, parts, nil), k.topic(t, parts, nil), k.topic(t, parts, nil), k.topic(t, parts, nil)
		input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
		trace := pxTrace(t, r, in, parts, 3000, time.Second)
		writing := writeSlowly(t, k, in, pxCodec, trace, 20)
		group := name(t, "group")
		newStage := func() *Stage {
			even, odd := NewSide(ToTopic(evenT, centsCodec)), NewSide(ToTopic(oddT, centsCodec))
			s, err := NewStage(group, input, func() (stream.Operator[px, px], error) {
				return parity{even: even.Emitter(), odd: odd.Emitter()}, nil
			}, ToTopic(main, pxCodec), k.stageOpts(t, WithSides(even, odd))...)
			require.NoError(t, err, "NewStage")
			return s
		}
		plan := runWithCrashes(t, k, r, 4, newStage, group, []string{in}, parts, func() { <-writing })
		// The reference: an uninterrupted task over each partition.
		want := map[string]map[int32][]outRec{main: {}, evenT: {}, oddT: {}}
		for p, ms := range k.readCommitted(t, in, parts) {
			var mainEnc encodeTo[px]
			var evenEnc, oddEnc encodeTo[int64]
			mainEnc.codec, mainEnc.tb = pxCodec, t
			evenEnc.codec, evenEnc.tb, oddEnc.codec, oddEnc.tb = centsCodec, t, centsCodec, t
			task, err := stream.NewTask[px, px](parity{even: &evenEnc, odd: &oddEnc}, input.task(), &mainEnc)
			require.NoError(t, err, "task")
			for _, m := range ms {
				e, err := pxCodec.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
				require.NoError(t, err, "decode")
				_, err = task.Input().Push(m.Offset, e)
				require.NoError(t, err, "push")
			}
			want[main][p], want[evenT][p], want[oddT][p] = mainEnc.out, evenEnc.out, oddEnc.out
		}
		n := 0
		for _, topic := range []string{main, evenT, oddT} {
			n += sameOutputs(t, want[topic], k.outputs(t, topic, parts), topic)
		}
		t.Logf("%d records on three topics exact after %d crashes (%d before a commit)", n, plan.kills, plan.atCommit)
	})
}

// TestStageSidesValidated: a side given to two stages, a nil side and an
// output without an encoder are refused.
func TestStageSidesValidated(t *testing.T) {
	k := fakeCluster(t)
	input := Input[px]{Topic: "in", Decoder: pxCodec}
	side := NewSide(ToTopic("s", centsCodec))
	newOp := func() (stream.Operator[px, px], error) { return parity{even: side.Emitter(), odd: side.Emitter()}, nil }
	_, err := NewStage("g1", input, newOp, ToTopic("out", pxCodec), k.stageOpts(t, WithSides(side))...)
	require.NoError(t, err, "first stage")
	_, err = NewStage("g2", input, newOp, ToTopic("out", pxCodec), k.stageOpts(t, WithSides(side))...)
	assert.ErrorIs(t, err, ErrInvalidOption, "a side in two stages")
	_, err = NewStage("g3", input, newOp, ToTopic("out", pxCodec), k.stageOpts(t, WithSides(nil))...)
	assert.ErrorIs(t, err, ErrInvalidOption, "a nil side")
	_, err = NewStage("g4", input, newOp, ToTopic("out", pxCodec), k.stageOpts(t, WithSides(NewSide(ToTopic[int64]("s2", nil))))...)
	assert.ErrorIs(t, err, ErrInvalidOption, "a side without an encoder")
}

// TestStageLateTopic: an input's late records go to its LateTopic, each
// once and untouched, with their coordinates, in the stage's transactions;
// they are the late events of the uninterrupted run.
func TestStageLateTopic(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 3
		r := rand.New(rand.NewPCG(93, 1))
		in, out, late := k.topic(t, parts, nil), k.topic(t, parts, nil), k.topic(t, 1, nil)
		trace := pxTrace(t, r, in, parts, 3000, time.Second)
		produceWallClock(t, k, in, pxCodec, trace)
		input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second, LateTopic: late}
		group := name(t, "group")
		s, err := NewStage(group, input, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t)...)
		require.NoError(t, err, "NewStage")
		run := startStage(t, s)
		k.waitCommitted(t, group, in, parts, 90*time.Second)
		require.NoError(t, run.stop(), "Run")
		// The late records of the uninterrupted run, by coordinates.
		want := map[string]string{}
		for p, ms := range k.readCommitted(t, in, parts) {
			task, err := stream.NewTask(stream.Map(func(e stream.Event[px]) px { return e.Value }), input.task(), stream.EmitFunc[px](func(stream.Event[px]) {}))
			require.NoError(t, err, "task")
			for _, m := range ms {
				e, err := pxCodec.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
				require.NoError(t, err, "decode")
				if v, err := task.Input().Push(m.Offset, e); err == nil && v == stream.Late {
					want[fmt.Sprintf("%s/%d@%d", in, p, m.Offset)] = string(m.Value)
				}
			}
		}
		require.NotEmpty(t, want, "the trace has late events")
		got := map[string]string{}
		for _, m := range k.deadLetters(t, late) {
			h := headers(m)
			at := fmt.Sprintf("%s/%s@%s", h[HeaderTopic], h[HeaderPartition], h[HeaderOffset])
			require.NotContains(t, got, at, "each late record once")
			got[at] = string(m.Value)
		}
		assert.Equal(t, want, got, "the late records, untouched")
		assert.Equal(t, uint64(len(want)), s.Stats().Late, "counted")
	})
}

// TestStageFinalInput: a sink stage whose input is Final (written by an
// exactly-once stage, in order) writes every record at once, the last one
// included, without waiting for a later one or an idle timeout.
func TestStageFinalInput(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 2
		in := k.topic(t, parts, nil)
		var events []stream.Event[px]
		for i := range 200 {
			tm := int64(1_746_677_558_352 + 10*i)
			events = append(events, stream.Event[px]{Key: fmt.Sprintf("k%d", i%4), Time: stream.Time(tm), Value: px{T: tm, P: float64(i)}})
		}
		produceWallClock(t, k, in, pxCodec, events)
		store := &upsertStore{docs: map[string]string{}}
		toMstat := func() (stream.Operator[px, []mstat], error) {
			return stream.Map(func(e stream.Event[px]) []mstat { return []mstat{{N: 1, Mean: e.Value.P}} }), nil
		}
		group := name(t, "group")
		s, err := NewStage(group, Input[px]{Topic: in, Decoder: pxCodec, Final: true}, toMstat, ToSink[[]mstat](store), k.stageOpts(t)...)
		require.NoError(t, err, "NewStage")
		run := startStage(t, s)
		require.Eventually(t, func() bool {
			store.mu.Lock()
			defer store.mu.Unlock()
			return len(store.docs) == len(events)
		}, 30*time.Second, 10*time.Millisecond, "every record written, the last ones included")
		k.waitCommitted(t, group, in, parts, 30*time.Second)
		require.NoError(t, run.stop(), "Run")
		assert.Zero(t, s.Stats().Late, "none late")
	})
}

// TestStageByID: with Dedup stream.ByID, several events of one key and
// millisecond (trades with ids) are all processed, duplicates of an id
// dropped.
func TestStageByID(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		in := k.topic(t, 1, nil)
		type tr struct {
			T  int64   `json:"t"`
			ID uint64  `json:"id"`
			P  float64 `json:"p"`
		}
		codec := JSON[tr]{Time: func(v *tr) (stream.Time, error) { return stream.Time(v.T), nil }}
		var events []stream.Event[tr]
		for i := range 300 {
			tm := int64(1_746_677_558_352 + i/3) // three trades per millisecond
			events = append(events, stream.Event[tr]{Key: "BTCUSDT", Time: stream.Time(tm), Value: tr{T: tm, ID: uint64(i), P: float64(i)}})
		}
		events = append(events, events[10], events[20]) // duplicates
		p, err := sarama.NewSyncProducerFromClient(k.client(t, nil))
		require.NoError(t, err, "producer")
		for _, e := range events {
			v, err := codec.AppendValue(nil, e)
			require.NoError(t, err, "encode")
			_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: in, Key: sarama.StringEncoder(e.Key), Value: sarama.ByteEncoder(v)})
			require.NoError(t, err, "send")
		}
		store := &upsertStore{docs: map[string]string{}}
		count := func() (stream.Operator[tr, []mstat], error) {
			return stream.Map(func(e stream.Event[tr]) []mstat { return []mstat{{N: int64(e.Value.ID)}} }), nil
		}
		group := name(t, "group")
		s, err := NewStage(group, Input[tr]{Topic: in, Decoder: codec, Lateness: time.Second, Dedup: stream.ByID(func(e stream.Event[tr]) uint64 { return e.Value.ID })},
			count, ToSink[[]mstat](store), k.stageOpts(t, WithIdleAdvance(200*time.Millisecond))...)
		require.NoError(t, err, "NewStage")
		run := startStage(t, s)
		require.Eventually(t, func() bool { return s.Stats().Emitted == 300 }, 30*time.Second, 10*time.Millisecond, "every trade")
		require.NoError(t, run.stop(), "Run")
		st := s.Stats()
		assert.Equal(t, uint64(300), st.Accepted, "three per millisecond accepted")
		assert.Equal(t, uint64(2), st.Duplicates, "the repeated ids dropped")
	})
}

// rekey spreads each price over 40 keys of its symbol.
type rekey struct{}

func (rekey) Process(e stream.Event[px], out stream.Emitter[px]) {
	e.Key = fmt.Sprintf("%s/%d", e.Key, e.Value.T%40)
	out.Emit(e)
}
func (rekey) Advance(stream.Time, stream.Emitter[px]) {}
func (rekey) Bounds() stream.Bounds                   { return stream.Bounds{} }

// lastBytePartitioner is a custom partitioner: a key's last byte modulo the
// partitions.
type lastBytePartitioner struct{}

func (lastBytePartitioner) Partition(m *sarama.ProducerMessage, n int32) (int32, error) {
	k, err := m.Key.Encode()
	if err != nil || len(k) == 0 {
		return 0, err
	}
	return int32(k[len(k)-1]) % n, nil
}
func (lastBytePartitioner) RequiresConsistency() bool { return true }

// TestStageOutputPartitions: an exactly-once stage writes each result to
// the partition the client's partitioner picks for its key (the stage
// writes through its own producer, not sarama's, and must still honour
// Producer.Partitioner): the Java client's murmur2 by default (checked
// against Partition, tested on the Java client's values), or a custom
// one. Every key's results are the uninterrupted run's, in order.
func TestStageOutputPartitions(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		for _, tc := range []struct {
			name   string
			adjust func(*sarama.Config)
			want   func(key []byte, n int32) int32
		}{
			{"murmur2", nil, Partition},
			{"custom", func(c *sarama.Config) {
				c.Producer.Partitioner = func(string) sarama.Partitioner { return lastBytePartitioner{} }
			}, func(key []byte, n int32) int32 { return int32(key[len(key)-1]) % n }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				const inParts, outParts = 2, 5
				r := rand.New(rand.NewPCG(17, 5))
				in, out := k.topic(t, inParts, nil), k.topic(t, outParts, nil)
				input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
				produceWallClock(t, k, in, pxCodec, pxTrace(t, r, in, inParts, 1500, time.Second))
				newOp := func() (stream.Operator[px, px], error) { return rekey{}, nil }
				group := name(t, "group")
				s, err := NewStage(group, input, newOp, ToTopic(out, pxCodec), k.stageOptsWith(t, tc.adjust)...)
				require.NoError(t, err, "NewStage")
				run := startStage(t, s)
				k.waitCommitted(t, group, in, inParts, time.Minute)
				require.NoError(t, run.stop(), "Run")

				byKey := func(recs map[int32][]outRec) map[string][]string {
					m := map[string][]string{}
					for _, rs := range recs {
						for _, r := range rs {
							m[r.Key] = append(m[r.Key], r.Value)
						}
					}
					return m
				}
				want := byKey(referenceOne(t, k, input, inParts, newOp, pxCodec))
				got := k.outputs(t, out, outParts)
				used := 0
				for p, rs := range got {
					used++
					for _, r := range rs {
						require.Equal(t, tc.want([]byte(r.Key), outParts), p, "key %q", r.Key)
					}
				}
				assert.Greater(t, used, 2, "partitions written")
				assert.Equal(t, want, byKey(got), "every key's results, in order")
				t.Logf("%d keys over %d partitions", len(want), used)
			})
		}
	})
}
