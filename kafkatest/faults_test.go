package kafkatest_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/stream"
)

// TestFailOffsetCommit refuses the offset commits of one group twice: the
// commits fail with the error given, the other group's do not, and the
// third commit is accepted.
func TestFailOffsetCommit(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, kafkatest.WithTopic("in", 1))
	f, err := k.Fail(kafkatest.Failure{Requests: []kafkatest.APIKey{kafkatest.OffsetCommit}, Group: "refused",
		Err: sarama.ErrRebalanceInProgress, Count: 2})
	require.NoError(t, err, "Fail")
	defer f.Remove()
	admin, err := sarama.NewClusterAdmin(k.Addrs(), saramaConfig())
	require.NoError(t, err, "admin")
	t.Cleanup(func() { _ = admin.Close() })
	commit := func(group string, off int64) error {
		resp, err := admin.AlterConsumerGroupOffsets(group, map[string]map[int32]sarama.OffsetAndMetadata{"in": {0: {Offset: off}}}, nil)
		if err != nil {
			return err
		}
		if kerr := resp.Errors["in"][0]; kerr != sarama.ErrNoError {
			return kerr
		}
		return nil
	}
	require.NoError(t, commit("other", 1), "another group's commit")
	assert.ErrorIs(t, commit("refused", 1), sarama.ErrRebalanceInProgress, "first commit refused")
	assert.ErrorIs(t, commit("refused", 2), sarama.ErrRebalanceInProgress, "second commit refused")
	assert.Equal(t, 2, f.Hits(), "two requests failed")
	require.NoError(t, f.Wait(t.Context(), 2), "Wait returns at once for what happened")
	require.NoError(t, commit("refused", 3), "the third is accepted")
	assert.Equal(t, 2, f.Hits(), "the fault is spent")

	offs, err := admin.ListConsumerGroupOffsets("refused", map[string][]int32{"in": {0}})
	require.NoError(t, err, "committed offsets")
	assert.Equal(t, int64(3), offs.GetBlock("in", 0).Offset, "only the accepted commit counts")

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err = f.Wait(ctx, 3)
	require.ErrorIs(t, err, context.DeadlineExceeded, "Wait gives up with its context")
	assert.ErrorContains(t, err, "kafkatest: wait for 3 failed requests (2 so far)", "and says how far it got")
}

// TestFailProduce fails the produce requests of one partition until the
// fault is removed; the other partitions and topics are written.
func TestFailProduce(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, kafkatest.WithTopic("a", 2), kafkatest.WithTopic("b", 1))
	f, err := k.Fail(kafkatest.Failure{Requests: []kafkatest.APIKey{kafkatest.Produce}, Topic: "a", Partitions: []int32{1},
		Err: sarama.ErrNotEnoughReplicas, Count: -1})
	require.NoError(t, err, "Fail")
	msg := func(topic string, p int32, v string) *sarama.ProducerMessage {
		return &sarama.ProducerMessage{Topic: topic, Partition: p, Value: sarama.StringEncoder(v)}
	}
	require.NoError(t, k.Produce(t.Context(), msg("a", 0, "a0"), msg("b", 0, "b0")), "other partitions are written")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = k.Produce(ctx, msg("a", 1, "a1"))
	require.ErrorIs(t, err, sarama.ErrNotEnoughReplicas, "the partition's produce fails with the error given, after sarama's retries")
	assert.GreaterOrEqual(t, f.Hits(), 1, "counted")
	f.Remove()
	f.Remove()
	require.NoError(t, k.Produce(t.Context(), msg("a", 1, "a1")), "written once the fault is removed")
	recs, err := k.ReadCommitted(t.Context(), "a")
	require.NoError(t, err, "ReadCommitted")
	assert.Equal(t, []string{"a0", "a1"}, values(recs), "each record once")
}

// TestFailAfterWrite answers a produce with REQUEST_TIMED_OUT after writing
// it, as a broker whose answer is lost: the record is in the topic although
// the producer was told it failed.
func TestFailAfterWrite(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, kafkatest.WithTopic("t", 1))
	_, err := k.Fail(kafkatest.Failure{Requests: []kafkatest.APIKey{kafkatest.Produce}, Err: sarama.ErrRequestTimedOut})
	require.NoError(t, err, "Fail")
	cfg := saramaConfig()
	cfg.Producer.Retry.Max = 0
	p, err := sarama.NewSyncProducer(k.Addrs(), cfg)
	require.NoError(t, err, "producer")
	t.Cleanup(func() { _ = p.Close() })
	_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: "t", Value: sarama.StringEncoder("written")})
	require.ErrorIs(t, err, sarama.ErrRequestTimedOut, "the producer is told the write timed out")
	recs, err := k.ReadCommitted(t.Context(), "t")
	require.NoError(t, err, "ReadCommitted")
	assert.Equal(t, []string{"written"}, values(recs), "but the record was written")
}

func TestFailInvalid(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, kafkatest.WithDataDir(t.TempDir()))
	for _, f := range []kafkatest.Failure{{Count: -2}, {Err: 30000}, {Err: -5}} {
		_, err := k.Fail(f)
		assert.ErrorIs(t, err, kafkatest.ErrInvalidOption, "%+v is refused", f)
		assert.ErrorIs(t, err, stream.ErrInvalidOption, "as stream's invalid option")
	}
	fault, err := k.Fail(kafkatest.Failure{Requests: []kafkatest.APIKey{kafkatest.CreateTopics}})
	require.NoError(t, err, "the zero Err is valid")
	require.NoError(t, k.Stop(), "stop")
	_, err = k.Fail(kafkatest.Failure{})
	assert.ErrorIs(t, err, kafkatest.ErrStopped, "no fault on a stopped cluster")
	require.NoError(t, k.Start(), "start")
	require.NoError(t, k.CreateTopic(t.Context(), "t", 1, nil), "faults do not survive a stop")
	assert.Zero(t, fault.Hits(), "the old fault failed nothing")
}

func TestAPIKeyString(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "OffsetCommit", kafkatest.OffsetCommit.String(), "a named key")
	assert.Equal(t, "EndTxn", kafkatest.EndTxn.String(), "another")
	assert.Equal(t, "DeleteRecords", kafkatest.APIKey(21).String(), "any key of the protocol")
}

// TestControl refuses the produce requests that carry a given key, with
// one error for its partition and another for the rest of the request, as
// a broker that refuses a record for what it is; once removed, the
// control function refuses nothing.
func TestControl(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, kafkatest.WithTopic("t", 2))
	refused := 0
	remove, err := k.Control(kafkatest.Produce, func(req kmsg.Request) (kmsg.Response, error, bool) {
		pr := req.(*kmsg.ProduceRequest)
		hit := false
		for _, tp := range pr.Topics {
			for _, p := range tp.Partitions {
				hit = hit || bytes.Contains(p.Records, []byte("poison"))
			}
		}
		if !hit {
			return nil, nil, false // the cluster handles it
		}
		refused++
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		resp.SetVersion(pr.GetVersion())
		for _, tp := range pr.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = tp.Topic
			for _, p := range tp.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, kerr.InvalidRecord.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	require.NoError(t, err, "Control")
	msg := func(v string) *sarama.ProducerMessage {
		return &sarama.ProducerMessage{Topic: "t", Value: sarama.StringEncoder(v)}
	}
	require.NoError(t, k.Produce(t.Context(), msg("fine")), "a request without the key is handled by the cluster")
	err = k.Produce(t.Context(), msg("poison"))
	require.ErrorIs(t, err, sarama.ErrInvalidRecord, "the request with the key gets the control function's answer")
	assert.Equal(t, 1, refused, "once: sarama does not retry an invalid record")
	remove()
	remove()
	require.NoError(t, k.Produce(t.Context(), msg("poison")), "removed, it refuses nothing")
	require.NoError(t, k.Produce(t.Context(), msg("poison again")), "and stays removed")
	assert.Equal(t, 1, refused, "the removed function saw no more requests")
	recs, err := k.ReadCommitted(t.Context(), "t")
	require.NoError(t, err, "ReadCommitted")
	assert.Equal(t, []string{"fine", "poison", "poison again"}, values(recs), "only the accepted records are in the topic")
}

// TestControlDropsConnection: a control function that returns an error
// closes the client's connection, as a broker that dies mid-request; here
// on every request, which AnyRequest selects.
func TestControlDropsConnection(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, kafkatest.WithTopic("t", 1), kafkatest.WithDataDir(t.TempDir()))
	var seen atomic.Int64
	remove, err := k.Control(kafkatest.AnyRequest, func(req kmsg.Request) (kmsg.Response, error, bool) {
		seen.Add(1)
		return nil, errors.New("gone"), true
	})
	require.NoError(t, err, "Control")
	cfg := saramaConfig()
	cfg.Metadata.Retry.Max = 0
	_, err = sarama.NewClient(k.Addrs(), cfg)
	require.Error(t, err, "no request is answered")
	assert.Positive(t, seen.Load(), "the function saw the requests")
	remove()
	require.NoError(t, k.CreateTopic(t.Context(), "u", 1, nil), "removed, the cluster answers again")

	_, err = k.Control(kafkatest.Produce, nil)
	assert.ErrorIs(t, err, kafkatest.ErrInvalidOption, "a nil function")
	require.NoError(t, k.Stop(), "stop")
	_, err = k.Control(kafkatest.Produce, func(kmsg.Request) (kmsg.Response, error, bool) { return nil, nil, false })
	assert.ErrorIs(t, err, kafkatest.ErrStopped, "no control function on a stopped cluster")
}
