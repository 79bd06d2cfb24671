package stream

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sliceSource serves records in batches of at most batch, then io.EOF (or
// blocks until ctx is done when block is set).
type sliceSource struct {
	recs        []Record[int]
	batch       int
	block       bool
	checkpoints []Time
}

func (s *sliceSource) Poll(ctx context.Context, buf []Record[int]) (int, error) {
	if len(s.recs) == 0 {
		if s.block {
			<-ctx.Done()
			return 0, ctx.Err()
		}
		return 0, io.EOF
	}
	n := copy(buf[:min(len(buf), s.batch)], s.recs)
	s.recs = s.recs[n:]
	return n, nil
}

func (s *sliceSource) Checkpoint(_ context.Context, wm Time) error {
	s.checkpoints = append(s.checkpoints, wm)
	return nil
}

type sliceSink struct {
	mu      sync.Mutex
	got     []Event[int]
	flushes int
	failAt  int // Write fails when len(got) reaches failAt (0: never)
}

func (s *sliceSink) Write(_ context.Context, e Event[int]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAt > 0 && len(s.got)+1 >= s.failAt {
		return errors.New("disk full")
	}
	s.got = append(s.got, e)
	return nil
}

func (s *sliceSink) Flush(context.Context) error { s.flushes++; return nil }

func records(part int, times ...Time) []Record[int] {
	var out []Record[int]
	for i, t := range times {
		out = append(out, Record[int]{Partition: part, Event: ev("k", t, i)})
	}
	return out
}

func TestRunFlushesAtEndOfInput(t *testing.T) {
	src := &sliceSource{recs: records(0, 1000, 3000, 2000, 3000, 500), batch: 2}
	sink := &sliceSink{}
	st, err := Run[int, int](context.Background(), src, &identity[int]{}, sink, WithLateness(time.Second))
	require.NoError(t, err, "Run")
	assert.Equal(t, Stats{Accepted: 3, Late: 1, Duplicates: 1}, st, "stats")
	assert.Equal(t, []Event[int]{ev("k", 1000, 0), ev("k", 2000, 2), ev("k", 3000, 1)}, sink.got, "everything, in order")
	assert.Positive(t, sink.flushes, "flushed")
	require.NotEmpty(t, src.checkpoints, "checkpointed")
	assert.Equal(t, MaxTime, src.checkpoints[len(src.checkpoints)-1], "last checkpoint is end of input")
}

func TestRunStopsOnCancelAndDeliversFinalResults(t *testing.T) {
	src := &sliceSource{recs: records(0, 1000, 5000), batch: 10, block: true}
	sink := &sliceSink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Run[int, int](ctx, src, &identity[int]{}, sink, WithLateness(time.Second))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled, "Run returns the context's error")
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop on cancel")
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	assert.Equal(t, []Event[int]{ev("k", 1000, 0)}, sink.got, "what was final is delivered; 5000 is not final")
}

func TestRunSurfacesSinkErrors(t *testing.T) {
	src := &sliceSource{recs: records(0, 1000, 2000, 3000, 4000), batch: 1}
	sink := &sliceSink{failAt: 2}
	_, err := Run[int, int](context.Background(), src, &identity[int]{}, sink, WithLateness(0))
	require.Error(t, err, "Run")
	assert.Contains(t, err.Error(), "disk full", "the sink's error")
}

func TestRunIdlePartitionReleasesWatermark(t *testing.T) {
	// Partition 1 goes silent; with an idle timeout the watermark follows
	// partition 0 and the results come out while the source is still open.
	recs := append(records(1, 1000), records(0, 2000, 3000, 9000)...)
	src := &sliceSource{recs: recs, batch: 1, block: true}
	sink := &sliceSink{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run[int, int](ctx, src, &identity[int]{}, sink, WithLateness(0), WithIdleTimeout(20*time.Millisecond))
	}()
	require.Eventually(t, func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return len(sink.got) == 3
	}, 5*time.Second, 10*time.Millisecond, "events below the largest time are released once partition 1 is idle")
	cancel()
	<-done
}

func TestRunValidates(t *testing.T) {
	_, err := Run[int, int](context.Background(), nil, &identity[int]{}, &sliceSink{})
	assert.ErrorIs(t, err, ErrInvalidOption, "nil source")
	_, err = Run[int, int](context.Background(), &sliceSource{}, &identity[int]{}, &sliceSink{}, WithLateness(-1))
	assert.ErrorIs(t, err, ErrInvalidOption, "bad option")
}

// cancellingSink cancels the run's context in its first Flush and fails that
// Flush with the context's error, as a sink waiting on a broker would.
type cancellingSink struct {
	sliceSink
	cancel  context.CancelFunc
	flushed []error
}

func (s *cancellingSink) Flush(ctx context.Context) error {
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
	s.flushed = append(s.flushed, ctx.Err())
	return ctx.Err()
}

func TestRunCancelledDuringFlushStillFlushes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	sink := &cancellingSink{cancel: cancel}
	src := &sliceSource{recs: records(0, 1000, 5000), batch: 10, block: true}
	_, err := Run[int, int](ctx, src, &identity[int]{}, sink, WithLateness(time.Second))
	assert.ErrorIs(t, err, context.Canceled, "Run reports the cancellation")
	require.Len(t, sink.flushed, 2, "the interrupted flush is retried once")
	assert.NoError(t, sink.flushed[1], "on a context that is not cancelled")
}
