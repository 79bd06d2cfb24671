package kafkaio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/stream"
)

// followLog is what the follow tests write and expect: the values of each
// partition's committed records, in offset order.
type followLog struct {
	t         *testing.T
	k         *cluster
	topic     string
	parts     int32
	plain     sarama.SyncProducer
	txn       sarama.SyncProducer
	committed [][]string
	seq       int
	aborted   int // records written in aborted transactions
}

// newFollowLog creates a topic and the producers that write to it: one
// plain (idempotent) and one transactional, both choosing partitions by
// hand.
func newFollowLog(t *testing.T, k *cluster, parts int32) *followLog {
	l := &followLog{t: t, k: k, topic: k.topic(t, parts, nil), parts: parts, committed: make([][]string, parts)}
	l.plain = followProducer(t, k, "")
	l.txn = followProducer(t, k, name(t, "txn"))
	return l
}

// followProducer returns a synchronous producer to chosen partitions,
// transactional when txnID is not empty; it is closed with the test.
func followProducer(t *testing.T, k *cluster, txnID string) sarama.SyncProducer {
	t.Helper()
	cfg := k.config(t, WithConfig(func(c *sarama.Config) {
		c.Producer.Partitioner = sarama.NewManualPartitioner
		c.Producer.Transaction.ID = txnID
	}))
	p, err := sarama.NewSyncProducer(k.addrs, cfg)
	require.NoError(t, err, "producer (transactional id %q)", txnID)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func (l *followLog) value(p int32) string {
	l.seq++
	return fmt.Sprintf("p%d-%d", p, l.seq)
}

func (l *followLog) send(prod sarama.SyncProducer, p int32, v string) {
	l.t.Helper()
	_, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: l.topic, Partition: p, Value: sarama.StringEncoder(v)})
	require.NoError(l.t, err, "send %s to partition %d", v, p)
}

// writePlain writes a record outside transactions to partition p.
func (l *followLog) writePlain(p int32) {
	v := l.value(p)
	l.send(l.plain, p, v)
	l.committed[p] = append(l.committed[p], v)
}

// writeTxn writes a transaction of n records to random partitions, and
// commits or aborts it.
func (l *followLog) writeTxn(r *rand.Rand, n int, commit bool) {
	l.t.Helper()
	require.NoError(l.t, l.txn.BeginTxn(), "begin")
	var vs []string
	var ps []int32
	for range n {
		p := r.Int32N(l.parts)
		v := l.value(p)
		l.send(l.txn, p, v)
		vs, ps = append(vs, v), append(ps, p)
	}
	if !commit {
		require.NoError(l.t, l.txn.AbortTxn(), "abort")
		l.aborted += n
		return
	}
	require.NoError(l.t, l.txn.CommitTxn(), "commit")
	for i, v := range vs {
		l.committed[ps[i]] = append(l.committed[ps[i]], v)
	}
}

// writeRandom writes rounds of plain records, committed transactions and
// aborted ones to random partitions (never to the last one when skipLast:
// it stays empty).
func (l *followLog) writeRandom(r *rand.Rand, rounds int, skipLast bool) {
	l.t.Helper()
	for range rounds {
		switch r.IntN(3) {
		case 0:
			p := r.Int32N(l.parts)
			if skipLast && l.parts > 1 {
				p = r.Int32N(l.parts - 1)
			}
			l.writePlain(p)
		case 1:
			l.writeTxnSkipping(r, 1+r.IntN(4), true, skipLast)
		case 2:
			l.writeTxnSkipping(r, 1+r.IntN(4), false, skipLast)
		}
	}
}

func (l *followLog) writeTxnSkipping(r *rand.Rand, n int, commit, skipLast bool) {
	if !skipLast || l.parts == 1 {
		l.writeTxn(r, n, commit)
		return
	}
	l.parts--
	l.writeTxn(r, n, commit)
	l.parts++
}

// ends writes a plain record "end-<p>-<round>" to every partition, so that
// a reader knows it has read everything written before: records come in
// offset order within a partition.
func (l *followLog) ends(round int) []string {
	var out []string
	for p := range l.parts {
		v := fmt.Sprintf("end-%d-%d", p, round)
		l.send(l.plain, p, v)
		l.committed[p] = append(l.committed[p], v)
		out = append(out, v)
	}
	return out
}

// lastOf returns the last n committed values of each partition.
func (l *followLog) lastOf(n int) [][]string {
	out := make([][]string, l.parts)
	for p, vs := range l.committed {
		out[p] = append([]string(nil), vs[max(0, len(vs)-n):]...)
	}
	return out
}

// pollUntil polls f until every value of want has been delivered, and
// returns the values per partition, checking that offsets rise within
// each.
func pollUntil(t *testing.T, f *Follower, parts int32, want []string) [][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := make([][]string, parts)
	last := make([]int64, parts)
	for i := range last {
		last[i] = -1
	}
	missing := map[string]bool{}
	for _, v := range want {
		missing[v] = true
	}
	buf := make([]*sarama.ConsumerMessage, 16)
	for len(missing) > 0 {
		n, err := f.Poll(ctx, buf)
		require.NoError(t, err, "Poll: still waiting for %v, have %v", missing, got)
		for _, m := range buf[:n] {
			require.Less(t, m.Partition, parts, "partition of %s", m.Value)
			require.Greater(t, m.Offset, last[m.Partition], "offsets rise in partition %d (%s)", m.Partition, m.Value)
			last[m.Partition] = m.Offset
			got[m.Partition] = append(got[m.Partition], string(m.Value))
			delete(missing, string(m.Value))
		}
	}
	return got
}

func concat(a, b [][]string) [][]string {
	out := make([][]string, len(a))
	for i := range a {
		out[i] = append(append([]string(nil), a[i]...), b[i]...)
	}
	return out
}

// TestFollowerStart: a Follower that starts n records from the end of each
// partition delivers exactly the last n committed records of each (all of
// them when it holds fewer, none of an empty partition), in offset order,
// then what is written later; transaction markers and aborted transactions
// between them count for nothing. FromOldest delivers everything
// committed. Partitions hold a random mix of plain records, committed and
// aborted transactions (seed printed; TIDEMARK_SEED repeats a run).
func TestFollowerStart(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		seed := seedFromEnv(t, uint64(time.Now().UnixNano()%1000))
		t.Logf("seed %d (rerun with TIDEMARK_SEED)", seed)
		r := rand.New(rand.NewPCG(seed, 7))
		const parts = 4
		l := newFollowLog(t, k, parts)
		l.writeRandom(r, 60, true)
		t.Logf("committed per partition %d, %d, %d, %d; %d records aborted",
			len(l.committed[0]), len(l.committed[1]), len(l.committed[2]), len(l.committed[3]), l.aborted)
		require.Empty(t, l.committed[parts-1], "the last partition is empty")

		for round, tc := range []struct {
			name  string
			start FollowStart
			back  int // -1: everything
		}{
			{"FromEnd(5)", FromEnd(5), 5},
			{"FromEnd(0)", FromEnd(0), 0},
			{"FromEnd(1)", FromEnd(1), 1},
			{"FromEnd(1000)", FromEnd(1000), -1},
			{"FromOldest", FromOldest(), -1},
			{"zero FollowStart", FollowStart{}, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				l.t = t
				before := l.lastOf(1 << 30)
				if tc.back >= 0 {
					before = l.lastOf(tc.back)
				}
				f, err := NewFollower(k.client(t, nil), []string{l.topic}, tc.start, WithLogger(testLogger(t)))
				require.NoError(t, err, "NewFollower")
				defer f.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				require.NoError(t, f.Start(ctx), "Start")
				mark := make([]int, parts)
				for p := range mark {
					mark[p] = len(l.committed[p])
				}
				l.writeRandom(r, 10, false)
				ends := l.ends(round)
				after := make([][]string, parts)
				for p := range after {
					after[p] = l.committed[p][mark[p]:]
				}
				got := pollUntil(t, f, parts, ends)
				assert.Equal(t, concat(before, after), got, "the records before the start, then the new ones")
				st := f.Stats()
				assert.Equal(t, int64(parts), st.Partitions, "partitions followed")
				n := 0
				for _, vs := range got {
					n += len(vs)
				}
				assert.Equal(t, uint64(n), st.Records, "records delivered")
				require.Len(t, st.Topics, 1, "topics")
				assert.Equal(t, FollowerTopicStats{Topic: l.topic, Records: uint64(n), Partitions: parts, Lag: st.Lag}, st.Topics[0], "topic counters")
				assert.LessOrEqual(t, st.Lag, int64(parts), "caught up: at most a marker per partition")
				require.NoError(t, f.Close(), "Close")
			})
		}
	})
}

// TestFollowerCommittedOnly: records of an open transaction, and those
// written after it to the same partition, are not delivered until it
// commits; an aborted transaction is never delivered.
func TestFollowerCommittedOnly(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		l := newFollowLog(t, k, 2)
		l.writePlain(0)
		l.writePlain(1)
		f, err := NewFollower(nil, []string{l.topic}, FromEnd(0), WithBrokers(k.addrs, k.config(t)), WithLogger(testLogger(t)))
		require.NoError(t, err, "NewFollower")
		defer f.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		require.NoError(t, f.Start(ctx), "Start")

		// An open transaction on partition 0, a plain record after it on
		// both partitions, and an aborted transaction.
		require.NoError(t, l.txn.BeginTxn(), "begin")
		open := []string{l.value(0), l.value(0)}
		for _, v := range open {
			l.send(l.txn, 0, v)
		}
		l.writePlain(0)
		l.writePlain(1)
		other := followProducer(t, k, name(t, "txn"))
		require.NoError(t, other.BeginTxn(), "begin")
		for p := range int32(2) {
			l.send(other, p, l.value(p))
		}
		require.NoError(t, other.AbortTxn(), "abort")

		// Partition 1's plain record comes; nothing of partition 0 does.
		got := pollUntil(t, f, 2, []string{l.committed[1][1]})
		assert.Equal(t, [][]string{nil, {l.committed[1][1]}}, got, "only partition 1's plain record")
		quiet, cancelQuiet := context.WithTimeout(ctx, time.Second)
		defer cancelQuiet()
		buf := make([]*sarama.ConsumerMessage, 4)
		n, err := f.Poll(quiet, buf)
		require.ErrorIs(t, err, context.DeadlineExceeded, "nothing while the transaction is open: got %d records", n)
		assert.Zero(t, n, "records while the transaction is open")

		require.NoError(t, l.txn.CommitTxn(), "commit")
		ends := l.ends(1)
		got = pollUntil(t, f, 2, ends)
		assert.Equal(t, [][]string{append(append(open, l.committed[0][1]), ends[0]), {ends[1]}}, got,
			"the transaction's records once it commits, in offset order with the record written after them; nothing aborted")
	})
}

// TestFollowerMissingTopic: a topic that does not exist is an error that
// names it, at once rather than after a wait; Poll and Run report it too.
func TestFollowerMissingTopic(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		topic, missing := k.topic(t, 1, nil), name(t, "missing")
		f, err := NewFollower(k.client(t, nil), []string{topic, missing}, FromEnd(10))
		require.NoError(t, err, "NewFollower")
		defer f.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		began := time.Now()
		err = f.Start(ctx)
		require.ErrorIs(t, err, sarama.ErrUnknownTopicOrPartition, "Start")
		assert.Contains(t, err.Error(), missing, "the error names the missing topic")
		assert.NotContains(t, err.Error(), `"`+topic+`"`, "and not the one that exists")
		assert.Less(t, time.Since(began), 20*time.Second, "without waiting")
		_, err = f.Poll(ctx, make([]*sarama.ConsumerMessage, 1))
		assert.ErrorIs(t, err, sarama.ErrUnknownTopicOrPartition, "Poll")
		err = f.Run(ctx, func(*sarama.ConsumerMessage) error { return nil })
		assert.ErrorIs(t, err, sarama.ErrUnknownTopicOrPartition, "Run")
	})
}

// TestFollowerNewPartitions: partitions added to a topic while a Follower
// runs are followed from their first record.
func TestFollowerNewPartitions(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		l := newFollowLog(t, k, 1)
		l.writePlain(0)
		f, err := NewFollower(k.client(t, nil), []string{l.topic}, FromEnd(1), WithLogger(testLogger(t)))
		require.NoError(t, err, "NewFollower")
		f.discoverEvery = 200 * time.Millisecond
		defer f.Close()
		got := pollUntil(t, f, 1, l.committed[0])
		assert.Equal(t, [][]string{l.committed[0]}, got, "the one record")

		require.NoError(t, k.admin(t).CreatePartitions(l.topic, 3, nil, false), "add two partitions")
		require.Eventually(t, func() bool {
			ps, err := k.client(t, nil).Partitions(l.topic)
			return err == nil && len(ps) == 3
		}, 30*time.Second, 50*time.Millisecond, "the partitions exist")
		l.parts = 3
		l.committed = append(l.committed, nil, nil)
		l.plain = followProducer(t, k, "") // one that knows the new partitions
		l.writePlain(1)
		l.writePlain(2)
		l.writePlain(2)
		ends := l.ends(1)
		got = pollUntil(t, f, 3, ends)
		assert.Equal(t, [][]string{l.committed[0][1:], l.committed[1], l.committed[2]}, got, "the new partitions from their start")
		assert.Equal(t, int64(3), f.Stats().Partitions, "partitions followed")
	})
}

// TestFollowerRun: Run hands every record to its function on its own
// goroutine and returns the function's error as it is; the records after
// the one that failed come with the next Poll or Run.
func TestFollowerRun(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		l := newFollowLog(t, k, 1)
		for range 10 {
			l.writePlain(0)
		}
		f, err := NewFollower(k.client(t, nil), []string{l.topic}, FromOldest())
		require.NoError(t, err, "NewFollower")
		defer f.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		stop := errors.New("enough")
		var got []string
		err = f.Run(ctx, func(m *sarama.ConsumerMessage) error {
			got = append(got, string(m.Value))
			if len(got) == 4 {
				return stop
			}
			return nil
		})
		require.Equal(t, stop, err, "Run returns fn's error as it is")
		assert.Equal(t, uint64(4), f.Stats().Records, "records delivered")
		buf := make([]*sarama.ConsumerMessage, 2)
		n, err := f.Poll(ctx, buf)
		require.NoError(t, err, "Poll")
		for _, m := range buf[:n] {
			got = append(got, string(m.Value))
		}
		err = f.Run(ctx, func(m *sarama.ConsumerMessage) error {
			got = append(got, string(m.Value))
			if len(got) == 10 {
				return stop
			}
			return nil
		})
		require.Equal(t, stop, err, "Run")
		assert.Equal(t, l.committed[0], got, "every record once, in order, across Run, Poll and Run")
	})
}

// TestFollowerCancel: Poll and Run return promptly, with an error wrapping
// the context's, when their context ends; Start does while it waits for
// brokers that are not there; Close ends a Poll in progress.
func TestFollowerCancel(t *testing.T) {
	backends(t, func(t *testing.T, k *cluster) {
		l := newFollowLog(t, k, 2)
		f, err := NewFollower(k.client(t, nil), []string{l.topic}, FromEnd(0))
		require.NoError(t, err, "NewFollower")
		defer f.Close()
		within := func(what string, d time.Duration, call func() error) error {
			t.Helper()
			done := make(chan error, 1)
			go func() { done <- call() }()
			select {
			case err := <-done:
				return err
			case <-time.After(d):
				t.Fatalf("%s did not return within %v", what, d)
				return nil
			}
		}
		buf := make([]*sarama.ConsumerMessage, 4)

		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		err = within("Poll", 5*time.Second, func() error { _, err := f.Poll(ctx, buf); return err })
		assert.ErrorIs(t, err, context.Canceled, "Poll")

		// Run while records keep coming.
		writing, stopWriting := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; writing.Err() == nil; i++ {
				_, _, _ = l.plain.SendMessage(&sarama.ProducerMessage{Topic: l.topic, Partition: int32(i % 2), Value: sarama.StringEncoder("x")})
			}
		})
		ctx, cancel = context.WithCancel(context.Background())
		var handled int
		err = within("Run", 10*time.Second, func() error {
			return f.Run(ctx, func(*sarama.ConsumerMessage) error {
				if handled++; handled == 20 {
					cancel()
				}
				return nil
			})
		})
		stopWriting()
		wg.Wait()
		assert.ErrorIs(t, err, context.Canceled, "Run")
		assert.Equal(t, 20, handled, "Run stopped at the cancel")

		done, cancelDone := context.WithCancel(context.Background())
		cancelDone()
		_, err = f.Poll(done, buf)
		assert.ErrorIs(t, err, context.Canceled, "Poll with a context done already")

		// Close ends a Poll that waits (a Follower with nothing to read).
		idle, err := NewFollower(k.client(t, nil), []string{l.topic}, FromEnd(0))
		require.NoError(t, err, "NewFollower")
		time.AfterFunc(200*time.Millisecond, func() { _ = idle.Close() })
		err = within("Poll after Close", 5*time.Second, func() error { _, err := idle.Poll(context.Background(), buf); return err })
		assert.ErrorIs(t, err, ErrClosed, "Close ends Poll")
		assert.ErrorIs(t, idle.Start(context.Background()), ErrClosed, "Start after Close")
		assert.NoError(t, idle.Close(), "a second Close")

		// A Follower whose brokers are not there waits for them until its
		// context ends.
		gone, err := NewFollower(nil, []string{l.topic}, FromEnd(0), WithBrokers([]string{"127.0.0.1:1"}, k.config(t)), WithLogger(testLogger(t)))
		require.NoError(t, err, "NewFollower")
		defer gone.Close()
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err = within("Start without brokers", 10*time.Second, func() error { return gone.Start(ctx) })
		assert.ErrorIs(t, err, context.DeadlineExceeded, "Start")
		assert.Equal(t, uint64(1), gone.Stats().Outages, "one outage")
	})
}

// TestFollowerBrokerRestart: the broker goes away while records stream in
// and comes back with its data; the Follower waits for it and goes on:
// every record once, in order, with one log line when the outage begins
// and one when it ends.
func TestFollowerBrokerRestart(t *testing.T) {
	restartableBackends(t, func(t *testing.T, k *restartable) {
		const parts, n = 3, 3000
		topic := k.topic(t, parts, nil)
		logs := &syncBuffer{}
		log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		f, err := NewFollower(nil, []string{topic}, FromOldest(), WithBrokers(k.addrs, k.config(t)), WithLogger(log))
		require.NoError(t, err, "NewFollower")
		defer f.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		require.NoError(t, f.Start(ctx), "Start")

		sink, err := NewSink(nil, JSON[tick]{}, WithTopic(topic), WithBrokers(k.addrs, k.config(t)), WithLogger(testLogger(t)))
		require.NoError(t, err, "NewSink")
		var wg sync.WaitGroup
		var written sync.WaitGroup
		written.Add(1)
		wg.Go(func() {
			defer written.Done()
			for i, e := range ticks(n, 12, 0) {
				if err := sink.Write(ctx, e); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
				if i%20 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			assert.NoError(t, sink.Flush(ctx), "Flush")
		})

		got := map[int32][]int64{}
		count := 0
		var pollErr error
		polled := make(chan struct{})
		go func() {
			defer close(polled)
			buf := make([]*sarama.ConsumerMessage, 64)
			for count < n {
				c, err := f.Poll(ctx, buf)
				if err != nil {
					pollErr = err
					return
				}
				for _, m := range buf[:c] {
					got[m.Partition] = append(got[m.Partition], m.Offset)
				}
				count += c
			}
		}()
		require.Eventually(t, func() bool { return f.Stats().Records >= n/5 }, time.Minute, 5*time.Millisecond, "following")
		k.restart(t, 2*time.Second)
		written.Wait()
		wg.Wait()
		require.NoError(t, sink.Close(context.Background()), "Close sink")
		<-polled
		require.NoError(t, pollErr, "Poll across the restart (%d of %d records)", count, n)

		want := map[int32][]int64{}
		for _, m := range k.readAll(t, topic, parts) {
			want[m.Partition] = append(want[m.Partition], m.Offset)
		}
		assert.Equal(t, want, got, "every record once, in offset order")
		require.Eventually(t, func() bool { return strings.Contains(logs.String(), "reading from the brokers again") }, 30*time.Second,
			50*time.Millisecond, "the end of the outage is logged:\n%s", logs)
		st := f.Stats()
		t.Logf("stats %+v\n%s", st, logs)
		assert.GreaterOrEqual(t, st.Outages, uint64(1), "the restart was an outage")
		assert.Equal(t, int(st.Outages), strings.Count(logs.String(), "cannot read from the brokers"), "a line when each outage begins")
		assert.Equal(t, int(st.Outages), strings.Count(logs.String(), "reading from the brokers again"), "and one when it ends")
	})
}

// syncBuffer is a bytes.Buffer for a logger that several goroutines use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFollowerOptions: NewFollower checks its arguments and options, and
// leaves the caller's config alone.
func TestFollowerOptions(t *testing.T) {
	k := fakeCluster(t)
	client := k.client(t, nil)
	closed, err := sarama.NewClient(k.addrs, k.config(t))
	require.NoError(t, err, "client")
	require.NoError(t, closed.Close(), "close")
	brokers := WithBrokers(k.addrs, nil)
	old := k.config(t)
	old.Version = sarama.V0_10_2_0
	for _, tc := range []struct {
		name string
		new  func() (*Follower, error)
		want error
	}{
		{"no topics", func() (*Follower, error) { return NewFollower(client, nil, FromEnd(0)) }, ErrInvalidOption},
		{"empty topic", func() (*Follower, error) { return NewFollower(client, []string{"a", ""}, FromEnd(0)) }, ErrInvalidOption},
		{"a topic twice", func() (*Follower, error) { return NewFollower(client, []string{"a", "a"}, FromEnd(0)) }, ErrInvalidOption},
		{"negative FromEnd", func() (*Follower, error) { return NewFollower(client, []string{"a"}, FromEnd(-1)) }, ErrInvalidOption},
		{"no client, no brokers", func() (*Follower, error) { return NewFollower(nil, []string{"a"}, FromEnd(0)) }, ErrInvalidOption},
		{"a client and brokers", func() (*Follower, error) { return NewFollower(client, []string{"a"}, FromEnd(0), brokers) }, ErrInvalidOption},
		{"a closed client", func() (*Follower, error) { return NewFollower(closed, []string{"a"}, FromEnd(0)) }, ErrInvalidOption},
		{"brokers without addresses", func() (*Follower, error) {
			return NewFollower(nil, []string{"a"}, FromEnd(0), WithBrokers(nil, nil))
		}, ErrInvalidOption},
		{"a protocol without read_committed", func() (*Follower, error) {
			return NewFollower(nil, []string{"a"}, FromEnd(0), WithBrokers(k.addrs, old))
		}, ErrInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := tc.new()
			assert.ErrorIs(t, err, tc.want, "NewFollower")
			assert.Nil(t, f, "no Follower")
		})
	}
	_, err = NewFollower(client, nil, FromEnd(0))
	assert.ErrorIs(t, err, stream.ErrInvalidOption, "ErrInvalidOption is stream's")

	f, err := NewFollower(client, []string{"a"}, FromEnd(0))
	require.NoError(t, err, "NewFollower")
	defer f.Close()
	assert.Equal(t, sarama.ReadCommitted, f.cfg.Consumer.IsolationLevel, "the Follower reads read_committed")
	assert.Equal(t, sarama.ReadUncommitted, client.Config().Consumer.IsolationLevel, "the caller's config is left alone")
	ctx := context.Background()
	_, err = f.Poll(ctx, nil)
	assert.ErrorIs(t, err, ErrInvalidOption, "Poll with an empty buffer")
	assert.ErrorIs(t, f.Run(ctx, nil), ErrInvalidOption, "Run with a nil function")
	assert.Equal(t, FollowerStats{Topics: []FollowerTopicStats{{Topic: "a"}}}, f.Stats(), "the stats before Start")

	for n, want := range map[int]time.Duration{1: 250, 2: 500, 3: 1000, 4: 2000, 5: 4000, 6: 5000, 7: 5000, 1000: 5000} {
		assert.Equal(t, want*time.Millisecond, followBackoff(n), "backoff before retry %d", n)
	}
}

// BenchmarkFollowerPoll measures what delivering a record costs the
// Follower itself (sarama's fetching and decoding aside): records handed
// over by a partition's goroutine and polled 64 at a time. It allocates
// nothing per record.
func BenchmarkFollowerPoll(b *testing.B) {
	f := &Follower{stop: make(chan struct{}), records: make(chan delivery, followBuffer)}
	f.running.Store(true)
	p := &followPart{topic: "t"}
	msgs := make([]sarama.ConsumerMessage, 1024)
	for i := range msgs {
		msgs[i].Offset = int64(i)
	}
	go func() {
		for i := 0; ; i++ {
			select {
			case f.records <- delivery{m: &msgs[i%len(msgs)], p: p}:
			case <-f.stop:
				return
			}
		}
	}()
	defer close(f.stop)
	buf := make([]*sarama.ConsumerMessage, 64)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; {
		k, err := f.Poll(ctx, buf[:min(len(buf), b.N-n)])
		if err != nil {
			b.Fatal(err)
		}
		n += k
	}
}
