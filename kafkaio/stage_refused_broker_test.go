package kafkaio

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestStageOutputRefusedByBroker: a result the broker refuses after it was
// sent fails its whole transaction. The stage aborts, sends that result
// alone when the rebuilt task emits it again, and, refused again,
// dead-letters its input; a result refused once only (a suspect the broker
// then takes) is written. On kfake the broker's refusal is made by a
// control function (INVALID_TIMESTAMP for the victim's batch); on Apache
// Kafka it is real: a result stamped two hours ahead of the broker's clock
// (log.message.timestamp.after.max.ms, 1 h by default in Kafka 4).
func TestStageOutputRefusedByBroker(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		for _, refusals := range []int{1, 2} {
			if k.fake == nil && refusals == 1 {
				continue // Apache Kafka refuses it every time
			}
			t.Run(fmt.Sprintf("refused %d times", refusals), func(t *testing.T) {
				const parts = 3
				r := rand.New(rand.NewPCG(73, uint64(refusals)))
				in, out, dlq := k.topic(t, parts, nil), k.topic(t, parts, nil), k.topic(t, 1, nil)
				trace, victim := withVictim(pxTrace(t, r, in, parts, 2000, time.Second), stream.Event[px]{Key: "VICTIM", Value: px{P: 1}})
				if k.fake == nil {
					// The victim is ahead of the wall clock by two hours, at
					// the end of the trace, followed by an event of its
					// partition another hour on, which makes it final (and
					// whose own result never is).
					trace = slices.DeleteFunc(trace, func(e stream.Event[px]) bool { return e.Key == victim.Key })
					future := time.Now().Add(2 * time.Hour).UnixMilli()
					p, err := sarama.NewMurmur2Partitioner(in).Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(victim.Key)}, parts)
					require.NoError(t, err, "partition")
					trace = append(trace, stream.Event[px]{Key: victim.Key, Time: stream.Time(future), Value: px{T: future, P: 1}},
						stream.Event[px]{Key: keyFor(t, in, p, parts), Time: stream.Time(future + 3_600_000), Value: px{T: future + 3_600_000, P: 1}})
				} else {
					refuse := refusals
					k.fake.Cluster().ControlKey(0, func(req kmsg.Request) (kmsg.Response, error, bool) {
						k.fake.Cluster().KeepControl()
						return failBatchWithKey(req, out, victim.Key, &refuse, invalidTimestamp, notEnoughReplicas)
					})
				}
				produceWallClock(t, k, in, pxCodec, trace)
				input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
				group := name(t, "group")
				s, err := NewStage(group, input, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t, WithDeadLetter(dlq))...)
				require.NoError(t, err, "NewStage")
				run := startStage(t, s)
				k.waitCommitted(t, group, in, parts, 120*time.Second)
				require.NoError(t, run.stop(), "Run")
				st := s.Stats()
				assert.GreaterOrEqual(t, st.Aborts, uint64(1), "the refused transaction was aborted")
				ref := referenceOne(t, k, input, parts, newMoving, mstatCodec)
				dead := k.deadLetters(t, dlq)
				if refusals == 1 {
					n := sameOutputs(t, ref, k.outputs(t, out, parts), "moving records")
					assert.Empty(t, dead, "a result refused once and then taken is not dead-lettered")
					t.Logf("%d records exact; stats %+v", n, st)
					return
				}
				n := sameOutputs(t, withoutKey(ref, victim.Key), k.outputs(t, out, parts), "moving records")
				require.Len(t, dead, 1, "the victim's input record is dead-lettered once")
				assert.Equal(t, victim.Key, string(dead[0].Key), "its key")
				assert.Equal(t, "refused-refused", headers(dead[0])[HeaderErrorKind], "kind")
				assert.Contains(t, headers(dead[0])[HeaderError], "timestamp", "the broker's reason")
				assert.Equal(t, uint64(1), st.Refused, "one result refused")
				t.Logf("%d records exact; the victim dead-lettered after %d aborts; stats %+v", n, st.Aborts, st)
			})
		}
	})
}

// Kafka error codes the kfake control functions answer with.
const (
	invalidTimestamp  = 32 // INVALID_TIMESTAMP: the record is refused for good
	notEnoughReplicas = 19 // NOT_ENOUGH_REPLICAS: retriable
)

// failBatchWithKey is a kfake control function: while *n > 0, a produce
// request with a batch for topic that holds key (uncompressed, as the
// tests produce) is answered with the error code hit for that partition,
// and with others for its other partitions; every other request goes to
// the cluster.
func failBatchWithKey(req kmsg.Request, topic, key string, n *int, hit, others int16) (kmsg.Response, error, bool) {
	pr, ok := req.(*kmsg.ProduceRequest)
	if !ok || *n == 0 {
		return nil, nil, false
	}
	found := false
	for _, t := range pr.Topics {
		for _, p := range t.Partitions {
			found = found || t.Topic == topic && bytes.Contains(p.Records, []byte(key))
		}
	}
	if !found {
		return nil, nil, false
	}
	*n--
	resp := pr.ResponseKind().(*kmsg.ProduceResponse)
	resp.SetVersion(pr.GetVersion())
	for _, t := range pr.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = others
			if t.Topic == topic && bytes.Contains(p.Records, []byte(key)) {
				rp.ErrorCode = hit
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil, true
}
