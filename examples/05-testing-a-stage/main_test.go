package main

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/stream"
)

// TestStageExactlyOnce tests the stage end to end, as you would test your
// own:
//
//  1. a Kafka: kafkatest.New(t), in process ("kfake"), and a real broker
//     when TIDEMARK_KAFKA_BROKERS names one ("kafka");
//  2. the input written a little at a time while the stage runs, with what
//     producers do: prices out of order, duplicates, late prices;
//  3. the stage crashed with kafkaio.Faults, at random moments or just
//     before a commit (with results in its open transaction), and started
//     again, as a process killed and restarted would be;
//  4. the output read back read_committed and compared, partition by
//     partition and record by record, with an uninterrupted run of the same
//     operator over the input as it is in Kafka (stream.NewTask), whose
//     numbers are checked against brute force.
//
// TIDEMARK_SEED=N repeats a run.
func TestStageExactlyOnce(t *testing.T) {
	for _, backend := range []string{"kfake", "kafka"} {
		t.Run(backend, func(t *testing.T) {
			k := newCluster(t, backend)
			seed := seed(t)
			r := rand.New(rand.NewPCG(seed, 5))
			name := fmt.Sprintf("05-test-%x", rand.Uint32()) // topics and group of this run
			in, out := name+"-prices", name+"-moving"
			k.createTopics(t, in, out)

			prices := messyPrices(r, 3000)
			writing := writeSlowly(t, k.addrs, in, prices)
			incarnation := func(opts ...kafkaio.StageOption) *kafkaio.Stage {
				// A static member: a new incarnation takes the partitions
				// back at once and fences the open transaction of the last.
				s, err := newStage(k.addrs, name, in, out, append(opts, kafkaio.WithInstanceID("one"))...)
				require.NoError(t, err, "stage")
				return s
			}
			crashes := 0
			for written := false; crashes < 5 || !written; crashes++ {
				crashOnce(t, r, incarnation)
				select {
				case err := <-writing:
					require.NoError(t, err, "write the prices")
					written = true
				default:
				}
			}
			s := incarnation()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			require.NoError(t, s.Start(ctx), "start")
			require.NoError(t, s.WaitCaughtUp(ctx), "caught up")
			require.NoError(t, s.Stop(), "stop")

			want := uninterrupted(t, k.readCommitted(t, in, len(prices)))
			n := 0
			for _, recs := range want {
				n += len(recs)
			}
			got := k.readCommitted(t, out, n)
			for p := range int32(3) {
				require.Len(t, got[p], len(want[p]), "partition %d: results", p)
				for i, m := range got[p] {
					require.Equal(t, want[p][i], result{string(m.Key), stream.TimeOf(m.Timestamp), string(m.Value)}, "partition %d, result %d", p, i)
				}
			}
			t.Logf("seed %d: %d prices, %d crashes, %d results exact", seed, len(prices), crashes, n)
		})
	}
}

// crashOnce starts the stage and crashes it: just before its n-th commit,
// or at a random moment once it runs its tasks.
func crashOnce(t *testing.T, r *rand.Rand, incarnation func(...kafkaio.StageOption) *kafkaio.Stage) {
	faults := &kafkaio.Faults{}
	s := incarnation(kafkaio.WithFaults(faults))
	require.NoError(t, s.Start(t.Context()), "start")
	if r.IntN(2) == 0 {
		faults.CrashAtCommit(1 + r.IntN(4))
	} else {
		require.Eventually(t, func() bool { return s.Stats().Tasks > 0 }, time.Minute, 5*time.Millisecond, "tasks running")
		time.Sleep(time.Duration(r.IntN(500)) * time.Millisecond)
		faults.Crash()
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.Wait() }()
	select {
	case err := <-stopped:
		require.ErrorIs(t, err, kafkaio.ErrCrashed, "crashed")
	case <-time.After(3 * time.Second): // the n-th commit did not come: the input ran out
		faults.Crash()
		require.ErrorIs(t, <-stopped, kafkaio.ErrCrashed, "crashed")
	}
}

// result is a record of the output as the stage must write it.
type result struct {
	key   string
	time  stream.Time
	value string
}

// uninterrupted runs the stage's operator over each partition of the input,
// in offset order, as one task that never crashes (stream.NewTask, with the
// input's settings), and returns what it emits, by partition. It checks
// each result against brute force over the prices that the task accepted:
// the count and exact mean of the prices of the key in the minute up to it.
func uninterrupted(t *testing.T, records map[int32][]*sarama.ConsumerMessage) map[int32][]result {
	out := map[int32][]result{}
	accepted := map[string][]stream.Event[Price]{}
	for p, recs := range records {
		op, err := newMoving()
		require.NoError(t, err, "operator")
		task, err := stream.NewTask(op, stream.Input[Price]{Lateness: input("").Lateness},
			stream.EmitFunc[Moving](func(e stream.Event[Moving]) {
				var cents, n int64 // the prices are whole cents: exact sums
				for _, a := range accepted[e.Key] {
					if a.Time > e.Time-stream.DurationOf(time.Minute) && a.Time <= e.Time {
						cents += int64(math.Round(a.Value.Price * 100))
						n++
					}
				}
				mean, _ := big.NewRat(cents, 100*n).Float64()
				require.Equal(t, n, e.Value.Count, "%s at %s: count", e.Key, e.Time)
				require.InEpsilon(t, mean, e.Value.Mean, 1e-12, "%s at %s: mean", e.Key, e.Time)
				v, err := kafkaio.JSON[Moving]{}.AppendValue(nil, e)
				require.NoError(t, err, "encode")
				out[p] = append(out[p], result{e.Key, e.Time, string(v)})
			}))
		require.NoError(t, err, "task")
		for _, m := range recs {
			e, err := priceCodec.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
			require.NoError(t, err, "decode")
			verdict, err := task.Input().Push(m.Offset, e)
			require.NoError(t, err, "push")
			if verdict == stream.Accepted {
				accepted[e.Key] = append(accepted[e.Key], e)
			}
		}
	}
	return out
}

// messyPrices returns n prices of three symbols, every 0 to 40 ms, with
// what producers do: one in four up to 2 s out of order (the allowed
// lateness), one in a hundred sent again with another price (a duplicate:
// the first wins), and one in a hundred too late.
func messyPrices(r *rand.Rand, n int) []stream.Event[Price] {
	now := stream.TimeOf(time.Date(2025, 5, 8, 4, 12, 0, 0, time.UTC))
	cents := []int64{9_919_048, 181_250, 14_420}
	var out []stream.Event[Price]
	for range n {
		now += stream.Time(r.IntN(40))
		k := r.IntN(3)
		cents[k] += r.Int64N(11) - 5
		at := now
		if r.IntN(4) == 0 {
			at -= stream.Time(r.IntN(2000))
		}
		e := stream.Event[Price]{Key: []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}[k], Time: at, Value: Price{float64(cents[k]) / 100, at.UTC()}}
		out = append(out, e)
		switch r.IntN(100) {
		case 0:
			e.Value.Price += 0.01
			out = append(out, e)
		case 1:
			e.Time -= 3000
			e.Value.Time = e.Time.UTC()
			out = append(out, e)
		}
	}
	return out
}

// writeSlowly writes prices in chunks of 50, 50 ms apart, and sends the
// outcome once done.
func writeSlowly(t *testing.T, addrs []string, topic string, prices []stream.Event[Price]) <-chan error {
	done := make(chan error, 1)
	go func() {
		sink, err := kafkaio.NewSink(nil, priceCodec, kafkaio.WithBrokers(addrs, nil), kafkaio.WithTopic(topic))
		if err != nil {
			done <- err
			return
		}
		for i, e := range prices {
			if err := sink.Write(t.Context(), e); err != nil {
				done <- err
				return
			}
			if i%50 == 49 {
				time.Sleep(50 * time.Millisecond)
			}
		}
		done <- sink.Close(t.Context())
	}()
	return done
}

// cluster is the Kafka of a subtest: kafkatest's, or a real broker.
type cluster struct {
	addrs []string
	fake  *kafkatest.Cluster // nil for a real broker
}

func newCluster(t *testing.T, backend string) cluster {
	if backend == "kfake" {
		k := kafkatest.New(t)
		return cluster{k.Addrs(), k}
	}
	brokers := os.Getenv("TIDEMARK_KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("TIDEMARK_KAFKA_BROKERS is not set: start a broker with scripts/kafka/broker.sh start")
	}
	return cluster{addrs: strings.Split(brokers, ",")}
}

// createTopics creates topics of 3 partitions that keep their records.
func (c cluster) createTopics(t *testing.T, topics ...string) {
	admin, err := sarama.NewClusterAdmin(c.addrs, nil)
	require.NoError(t, err, "admin")
	defer admin.Close()
	var specs []kafkaio.TopicSpec
	for _, topic := range topics {
		specs = append(specs, kafkaio.TopicSpec{Name: topic, Partitions: 3, Config: map[string]string{"retention.ms": "-1"}})
	}
	require.NoError(t, kafkaio.EnsureTopics(t.Context(), admin, specs), "topics")
}

// readCommitted returns the records of topic as a read_committed consumer
// sees them, by partition in offset order: up to the last stable offset
// (kafkatest's ReadCommitted), or, on a real broker, n records and then
// none for two seconds.
func (c cluster) readCommitted(t *testing.T, topic string, n int) map[int32][]*sarama.ConsumerMessage {
	out := map[int32][]*sarama.ConsumerMessage{}
	var recs []*sarama.ConsumerMessage
	if c.fake != nil {
		var err error
		recs, err = c.fake.ReadCommitted(t.Context(), topic)
		require.NoError(t, err, "read %s", topic)
	} else {
		f, err := kafkaio.NewFollower(nil, []string{topic}, kafkaio.FromOldest(), kafkaio.WithBrokers(c.addrs, nil))
		require.NoError(t, err, "follower")
		defer f.Close()
		buf := make([]*sarama.ConsumerMessage, 100)
		for len(recs) < n {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			k, err := f.Poll(ctx, buf)
			cancel()
			require.NoError(t, err, "%s: %d records of %d", topic, len(recs), n)
			recs = append(recs, buf[:k]...)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		k, err := f.Poll(ctx, buf)
		require.ErrorIs(t, err, context.DeadlineExceeded, "%s: more than %d records: %d more", topic, n, k)
	}
	for _, m := range recs {
		out[m.Partition] = append(out[m.Partition], m)
	}
	return out
}

// seed returns TIDEMARK_SEED, or a new seed.
func seed(t *testing.T) uint64 {
	if s := os.Getenv("TIDEMARK_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "TIDEMARK_SEED")
		return n
	}
	s := rand.Uint64()
	t.Logf("seed %d (TIDEMARK_SEED=%d repeats this run)", s, s)
	return s
}
