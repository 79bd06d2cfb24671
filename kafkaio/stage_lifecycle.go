package kafkaio

import (
	"context"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// lifecycle is what Start, Stop and Wait keep of a stage run in the
// background.
type lifecycle struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Start runs the stage (Run) on a goroutine of its own, until ctx is done
// or Stop: the way programs and tests run a stage beside other work. It
// returns at once; Run's error, if any, comes from Stop or Wait. A stage
// runs once: Start after Run or Start returns ErrStageRunning.
func (s *Stage) Start(ctx context.Context) error {
	s.life.mu.Lock()
	defer s.life.mu.Unlock()
	if !s.started.CompareAndSwap(false, true) {
		return ErrStageRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	s.life.cancel, s.life.done = cancel, make(chan struct{})
	go func() {
		defer close(s.life.done)
		err := s.run(ctx)
		s.life.mu.Lock()
		s.life.err = err
		s.life.mu.Unlock()
	}()
	return nil
}

// Stop stops a stage that Start started, gracefully (Run's stop: the
// results in flight are delivered and committed), waits until it has
// stopped and returns Run's error. It returns nil for a stage that was
// never started, and the same as before when called again.
func (s *Stage) Stop() error {
	s.life.mu.Lock()
	cancel, done := s.life.cancel, s.life.done
	s.life.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	return s.Wait()
}

// Wait waits until a stage that Start started has stopped (its context
// ended, Stop, or an error) and returns Run's error; nil at once for a
// stage that was never started.
func (s *Stage) Wait() error {
	s.life.mu.Lock()
	done := s.life.done
	s.life.mu.Unlock()
	if done == nil {
		return nil
	}
	<-done
	s.life.mu.Lock()
	defer s.life.mu.Unlock()
	return s.life.err
}

// WaitCaughtUp waits until the stage has read every partition it is
// assigned to its end, as the brokers confirm, and committed what it read:
// the moment to stop a stage in a test or a batch job, once its input is
// written. A stage caught up stays so only until more records come. It
// returns ctx's error if ctx ends first, and Run's error if the stage
// stops first. A stage with no partition (the other members of its group
// have them all) is never caught up.
func (s *Stage) WaitCaughtUp(ctx context.Context) error {
	since := time.Now().UnixNano() // the brokers must confirm it after the call
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if rt := s.rt.Load(); rt != nil && rt.caughtUp.Load() > since {
			return nil
		}
		s.life.mu.Lock()
		done := s.life.done
		s.life.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-doneOrNil(done):
			if err := s.Wait(); err != nil {
				return err
			}
			return ErrStageStopped
		case <-tick.C:
		}
	}
}

func doneOrNil(c chan struct{}) <-chan struct{} {
	if c == nil {
		return nil
	}
	return c
}

// updateCaughtUp tells WaitCaughtUp whether the stage is caught up, and
// since when the brokers say so: it has tasks, every claim is confirmed to
// have nothing beyond its position (see probeClaims), nothing is waiting
// for the loop, and everything read is committed. It stores the time of
// the oldest of the claims' confirmations, or 0.
func (rt *runtime) updateCaughtUp() {
	ok := !rt.dirty && len(rt.events) == 0 && len(rt.parts) > 0
	for _, s := range rt.parts {
		ok = ok && s.task != nil && !s.task.Replaying()
	}
	oldest := int64(0)
	if ok {
		rt.claimsMu.Lock()
		ok = len(rt.claims) > 0
		for c := range rt.claims {
			at := c.confirmedAt.Load()
			ok = ok && c.confirmed.Load() && at > 0
			if oldest == 0 || at < oldest {
				oldest = at
			}
		}
		rt.claimsMu.Unlock()
	}
	if !ok {
		oldest = 0
	}
	rt.caughtUp.Store(oldest)
}

// WithClientFactory makes a stage's clients (its group member, producer and
// replay reader) with f instead of sarama.NewClient: f gets the addresses
// of WithBrokers and the config the client needs, which it must use. For
// tests that wrap clients, count their requests or inject failures, and for
// programs that pool connections.
func WithClientFactory(f func(addrs []string, cfg *sarama.Config) (sarama.Client, error)) StageOption {
	if f == nil {
		return optionError("nil client factory")
	}
	return stageOption(func(c *stageConfig) { c.newClient = f })
}

// Faults injects faults into a stage, to test that it recovers: give it to
// the stage with WithFaults, then crash it (as a SIGKILL would) or fail its
// commits at chosen moments. Its methods are safe for concurrent use; a
// Faults belongs to one stage.
type Faults struct {
	mu          sync.Mutex
	stage       *Stage
	crashAt     int // crash before the crashAt-th commit from now; 0: no
	failCommits int // the next failCommits commits fail
	failErr     error
	commits     int
}

// WithFaults gives a stage its Faults.
func WithFaults(f *Faults) StageOption {
	if f == nil {
		return optionError("nil Faults")
	}
	return stageOption(func(c *stageConfig) { c.faults = f })
}

// Crash stops the running stage as a crash would: nothing is committed or
// aborted (the open transaction stays open until the next incarnation, or
// the transaction timeout, ends it), the group is not told, and Run returns
// ErrCrashed. It does nothing to a stage that is not running.
func (f *Faults) Crash() {
	f.mu.Lock()
	st := f.stage
	f.mu.Unlock()
	if st != nil {
		st.crash()
	}
}

// CrashAtCommit makes the stage crash just before its n-th commit from now
// (n at least 1): with results in its open transaction, the worst moment.
func (f *Faults) CrashAtCommit(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crashAt, f.commits = max(n, 1), 0
}

// FailCommits makes the next n commits fail with err, as a commit the
// brokers refuse does: the stage aborts the transaction, rebuilds its
// tasks from the committed offsets and goes on (StageStats.Aborts).
func (f *Faults) FailCommits(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failCommits, f.failErr = n, err
}

// beforeCommit is the stage's hook: true to crash, or an error to fail the
// commit.
func (f *Faults) beforeCommit() (crash bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.crashAt > 0 {
		if f.commits++; f.commits == f.crashAt {
			f.crashAt = 0
			return true, nil
		}
	}
	if f.failCommits > 0 {
		f.failCommits--
		return false, f.failErr
	}
	return false, nil
}
