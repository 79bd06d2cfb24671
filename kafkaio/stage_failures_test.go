// The tests in this file make records of a transaction fail (a broker that
// goes away, a record the broker refuses). They were built without the race
// detector while a stage's transactions went through sarama's
// transactional producer, whose transaction manager reads its last error
// without the lock its writer holds (transactionManager.publishTxnPartitions,
// transaction_manager.go:884 in v1.61.1); a stage's transactions now go
// through kafkaio/internal/batchtxn, and they run with -race like the rest.

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
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestStageBrokerRestart: the broker goes away in the middle of the stream
// and comes back with its data; the stage waits for it, with backoff,
// aborts what it could not commit and rebuilds its tasks: no event becomes
// late because of the restart (each partition has its own watermark, so the
// partition that comes back first cannot push another one's backlog below
// its watermark), and no result is lost or written twice; with lateness 0
// and with the default.
func TestStageBrokerRestart(t *testing.T) {
	restartableBackends(t, func(t *testing.T, k *restartable) {
		for _, lateness := range []time.Duration{0, stream.DefaultLateness} {
			t.Run(fmt.Sprintf("lateness=%v", lateness), func(t *testing.T) {
				const parts = 3
				r := rand.New(rand.NewPCG(61, uint64(lateness)))
				in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
				input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: lateness}
				group := name(t, "group")
				s, err := NewStage(group, input, newMoving, ToTopic(out, mstatCodec), k.stageOpts(t)...)
				require.NoError(t, err, "NewStage")
				run := startStage(t, s)
				writing := writeSlowly(t, k.cluster, in, pxCodec, pxTrace(t, r, in, parts, 6000, lateness), 40)
				require.Eventually(t, func() bool { return s.Stats().Records >= 1000 }, 60*time.Second, 10*time.Millisecond,
					"the stage works before the restart")
				k.restart(t, 2*time.Second)
				<-writing
				k.waitCommitted(t, group, in, parts, 120*time.Second)
				require.NoError(t, run.stop(), "Run")
				n := sameOutputs(t, referenceOne(t, k.cluster, input, parts, newMoving, mstatCodec), k.outputs(t, out, parts), "moving records")
				t.Logf("%d records exact across a broker restart; stats %+v", n, s.Stats())
			})
		}
	})
}

// TestStageAbort: a record that fails for a while (the broker answers
// NOT_ENOUGH_REPLICAS, beyond the producer's retries) fails the
// transaction; the stage aborts it, rebuilds its tasks from the committed
// offsets and goes on: nothing lost, nothing twice. On kfake, whose
// control functions make the failure; on Apache Kafka, the broker restart
// (TestStageBrokerRestart) and a record the broker refuses
// (TestStageOutputRefusedByBroker) abort transactions.
func TestStageAbort(t *testing.T) {
	k := fakeCluster(t)
	const parts = 3
	r := rand.New(rand.NewPCG(41, 4))
	in, out := k.topic(t, parts, nil), k.topic(t, parts, nil)
	trace := pxTrace(t, r, in, parts, 4000, time.Second)
	produceWallClock(t, k, in, pxCodec, trace)
	input := Input[px]{Topic: in, Decoder: pxCodec, Lateness: time.Second}
	victim := trace[2500]
	fail := 4 // the first send and a retry, twice: two aborts
	k.fake.Cluster().ControlKey(0, func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.fake.Cluster().KeepControl()
		return failBatchWithKey(req, out, victim.Key, &fail, notEnoughReplicas, notEnoughReplicas)
	})
	group := name(t, "group")
	s, err := NewStage(group, input, newMoving, ToTopic(out, mstatCodec),
		k.stageOptsWith(t, func(c *sarama.Config) { c.Producer.Retry.Max = 1; c.Metadata.Retry.Max = 1 })...)
	require.NoError(t, err, "NewStage")
	run := startStage(t, s)
	k.waitCommitted(t, group, in, parts, 90*time.Second)
	require.NoError(t, run.stop(), "Run")
	assert.Zero(t, fail, "the record failed every time it was meant to")
	st := s.Stats()
	assert.GreaterOrEqual(t, st.Aborts, uint64(1), "the transaction was aborted")
	assert.GreaterOrEqual(t, st.Rebuilds, uint64(1), "tasks were rebuilt")
	assert.Zero(t, st.Refused, "a failure that passes is not a refused result")
	n := sameOutputs(t, referenceOne(t, k, input, parts, newMoving, mstatCodec), k.outputs(t, out, parts), "moving records")
	t.Logf("%d records exact after %d aborts; stats %+v", n, st.Aborts, st)
}
