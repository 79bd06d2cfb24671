package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/stream"
)

// eventSource gives events one Poll at a time, up to batch per Poll, then
// io.EOF, or end's error (and keeps giving records while end is nil and
// forever is set, pausing between Polls).
type eventSource struct {
	events  []stream.Event[[]byte]
	batch   int
	forever bool
	pause   time.Duration
	end     error
	polled  atomic.Int64
}

func (s *eventSource) Poll(ctx context.Context, buf []stream.Record[[]byte]) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.pause > 0 {
		select {
		case <-time.After(s.pause):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	i := int(s.polled.Load())
	if i >= len(s.events) && !s.forever {
		if s.end != nil {
			return 0, s.end
		}
		return 0, io.EOF
	}
	n := 0
	for ; n < min(len(buf), s.batch) && (s.forever || i+n < len(s.events)); n++ {
		j := i + n
		buf[n] = stream.Record[[]byte]{Event: s.events[j%len(s.events)]}
		if s.forever {
			buf[n].Event.Value = fmt.Appendf(nil, "%s %d x", dlKeys[j%len(dlKeys)], j)
			buf[n].Event.Key = dlKeys[j%len(dlKeys)]
		}
	}
	s.polled.Add(int64(n))
	return n, nil
}

// TestProduce: Produce writes a source into a Sink until the source ends,
// its context is done or something fails, and then says what it could not
// deliver.
func TestProduce(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		const parts = 3
		t0 := stream.TimeOf(time.Now())
		none := func(int) bool { return false }

		t.Run("to the end", func(t *testing.T) {
			events := mixed(2000, t0, none, 0)
			topic := k.topic(t, parts, nil)
			sink, err := NewSink(k.client(t, nil), Raw{}, WithTopic(topic))
			require.NoError(t, err, "NewSink")
			st, err := Produce(context.Background(), &eventSource{events: events, batch: 100}, sink)
			require.NoError(t, err, "Produce")
			assert.Equal(t, ProduceStats{Records: 2000}, st, "stats")
			assert.Equal(t, uint64(2000), sink.Stats().Acked, "every record acknowledged when Produce returns")
			require.NoError(t, sink.Close(context.Background()), "Close")
			checkArrived(t, k, topic, parts, events, func(int) bool { return true })
		})

		t.Run("stopped", func(t *testing.T) {
			topic := k.topic(t, parts, nil)
			sink, err := NewSink(k.client(t, nil), Raw{}, WithTopic(topic))
			require.NoError(t, err, "NewSink")
			src := &eventSource{events: mixed(1, t0, none, 0), batch: 50, forever: true, pause: time.Millisecond}
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				for src.polled.Load() < 1000 {
					time.Sleep(time.Millisecond)
				}
				cancel()
			}()
			st, err := Produce(ctx, src, sink)
			require.ErrorIs(t, err, context.Canceled, "a stop says so")
			assert.Equal(t, uint64(src.polled.Load()), st.Records, "every record polled was written")
			assert.Zero(t, st.InFlight+int64(st.Unwritten), "and delivered")
			assert.Equal(t, st.Records, sink.Stats().Acked, "acknowledged")
			require.NoError(t, sink.Close(context.Background()), "Close")
			got := k.readAll(t, topic, parts)
			assert.Len(t, got, int(st.Records), "in the topic")
		})

		t.Run("a source that fails", func(t *testing.T) {
			events := mixed(300, t0, none, 0)
			topic := k.topic(t, parts, nil)
			sink, err := NewSink(k.client(t, nil), Raw{}, WithTopic(topic))
			require.NoError(t, err, "NewSink")
			bad := errors.New("disk on fire")
			st, err := Produce(context.Background(), &eventSource{events: events, batch: 64, end: bad}, sink)
			require.ErrorIs(t, err, bad, "the source's error")
			assert.ErrorContains(t, err, "kafkaio: produce: source: disk on fire", "says where")
			assert.Equal(t, ProduceStats{Records: 300}, st, "what it gave is delivered")
			require.NoError(t, sink.Close(context.Background()), "Close")
			checkArrived(t, k, topic, parts, events, func(int) bool { return true })
		})

		t.Run("a sink that fails", func(t *testing.T) {
			big := func(i int) bool { return i == 500 }
			events := mixed(2000, t0, big, 5000)
			cfg := k.config(t, WithConfig(func(c *sarama.Config) { c.Producer.MaxMessageBytes = 4096 }))
			sink, err := NewSink(k.client(t, cfg), Raw{}, WithTopic(k.topic(t, parts, nil)))
			require.NoError(t, err, "NewSink")
			src := &eventSource{events: events, batch: 100}
			st, err := Produce(context.Background(), src, sink)
			var pe *ProduceError
			require.ErrorAs(t, err, &pe, "the Sink's error: %v", err)
			assert.Less(t, src.polled.Load(), int64(2000), "stopped polling")
			assert.Equal(t, uint64(src.polled.Load()), st.Records+st.Unwritten, "the rest of the last Poll is counted: %+v", st)
			assert.NotZero(t, st.Unwritten, "records of the last Poll were not written")
			assert.ErrorContains(t, err, fmt.Sprintf("%d records of the source were not written", st.Unwritten), "and said")
			assert.Zero(t, st.InFlight, "nothing left in flight")
			assert.Error(t, sink.Close(context.Background()), "Close")
		})

		t.Run("with a dead-letter topic", func(t *testing.T) {
			big := func(i int) bool { return i%250 == 3 }
			events := mixed(2000, t0, big, 5000)
			cfg := k.config(t, WithConfig(func(c *sarama.Config) { c.Producer.MaxMessageBytes = 4096 }))
			topic, dlq := k.topic(t, parts, nil), k.topic(t, 1, nil)
			sink, err := NewSink(k.client(t, cfg), Raw{}, WithTopic(topic), WithDeadLetter(dlq))
			require.NoError(t, err, "NewSink")
			st, err := Produce(context.Background(), &eventSource{events: events, batch: 100}, sink)
			require.NoError(t, err, "Produce")
			assert.Equal(t, ProduceStats{Records: 2000}, st, "stats")
			assert.Equal(t, uint64(8), sink.Stats().DeadLettered, "dead-lettered")
			require.NoError(t, sink.Close(context.Background()), "Close")
			checkArrived(t, k, topic, parts, events, func(i int) bool { return !big(i) })
			checkDeadLetters(t, k, dlq, topic, events, big, "too-large", 4096)
		})
	})
}

// TestProduceBrokerAway: a broker that is away when Produce stops bounds
// the final flush: Produce says how many records are still in flight, and
// the Sink keeps them.
func TestProduceBrokerAway(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := fakeCluster(t)
	sink, err := NewSink(nil, Raw{}, WithTopic(k.topic(t, 1, nil)), WithBrokers(k.addrs, k.config(t)),
		WithDeliveryTimeout(time.Minute), WithLogger(testLogger(t)))
	require.NoError(t, err, "NewSink")
	require.NoError(t, k.fake.Close(), "stop the broker")
	events := mixed(50, stream.TimeOf(time.Now()), func(int) bool { return false }, 0)
	began := time.Now()
	st, err := Produce(ctx, &eventSource{events: events, batch: 10}, sink, WithFinalFlush(time.Second))
	took := time.Since(began)
	require.Error(t, err, "Produce reports the records it could not deliver")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the final flush's time ran out")
	assert.ErrorContains(t, err, fmt.Sprintf("%d records still in flight after the final flush of 1s", st.InFlight), "says how many")
	assert.Equal(t, uint64(50), st.Records, "written")
	assert.Equal(t, int64(50), st.InFlight, "none delivered")
	assert.Less(t, took, 10*time.Second, "a bounded wait")
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	assert.ErrorContains(t, sink.Close(short), "50 records still in flight", "the Sink keeps them")
}

// TestProduceOptions: invalid options and arguments are refused before
// anything is polled.
func TestProduceOptions(t *testing.T) {
	src := &eventSource{events: mixed(1, 0, func(int) bool { return false }, 0), batch: 1}
	_, err := Produce[[]byte](context.Background(), src, nil, WithFinalFlush(0))
	assert.ErrorIs(t, err, ErrInvalidOption, "a final flush of 0")
	assert.ErrorIs(t, err, stream.ErrInvalidOption, "matches stream's")
	_, err = Produce[[]byte](context.Background(), src, nil)
	assert.ErrorIs(t, err, ErrInvalidOption, "a nil sink")
	assert.Zero(t, src.polled.Load(), "nothing polled")
}
