package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	mongoopts "go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btctest"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/mongotest"
	"github.com/tidemark-go/tidemark/stream"
)

// asMainEnv makes the test binary run the btc-pipeline command instead of
// the tests: the process tests start their stages as separate processes of
// this binary, which holds the same main as a go build of the command.
const asMainEnv = "TIDEMARK_BTC_PIPELINE_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// proc is one stage process, restarted after each kill; its log holds the
// output of every incarnation.
type proc struct {
	name string
	args []string
	env  []string // added to the test's environment
	log  *syncBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the running incarnation has exited
	err  error         // its exit, once done is closed
	runs int
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(os.Args[0], p.args...)
	// A data race is reported in the log, where the test looks for it,
	// rather than changing the exit code.
	cmd.Env = append(append(os.Environ(), asMainEnv+"=1", "GORACE=exitcode=0"), p.env...)
	p.runs++
	fmt.Fprintf(p.log, "==== %s, run %d: %s\n", p.name, p.runs, strings.Join(p.args, " "))
	cmd.Stdout, cmd.Stderr = p.log, p.log
	require.NoError(t, cmd.Start(), "start %s", p.name)
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	p.cmd, p.done = cmd, done
}

// kill ends the process with SIGKILL, as a crash would.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	fmt.Fprintf(p.log, "==== %s: SIGKILL\n", p.name)
}

// exited says whether the running incarnation has ended, and how.
func (p *proc) exited() (bool, error) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		_, err := p.exited()
		require.NoError(t, err, "%s: exit after SIGTERM; log:\n%s", p.name, p.log)
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%s did not stop within 90 s of SIGTERM; log:\n%s", p.name, p.log)
	}
}

// raceFree fails the test on a data race reported by a process, other than
// the one inside sarama's transaction manager that kafkaio's failure tests
// document (kafkaio/stage_failures_test.go).
func (p *proc) raceFree(t *testing.T) {
	t.Helper()
	for _, r := range strings.Split(p.log.String(), "WARNING: DATA RACE")[1:] {
		end := strings.Index(r, "==================")
		if end < 0 {
			end = len(r)
		}
		if !strings.Contains(r[:end], "sarama.(*transactionManager)") {
			t.Errorf("%s: data race:\n%s", p.name, r[:end])
		}
	}
}

// TestProcessesEqualOffline runs the lab as separate processes: extract
// replays a messy trace (three symbols on four partitions) into btc-price,
// and moving (two instances), zscore, bonus and load run as their own
// processes of this binary (subtest stages), or two instances of the
// chained stage and load (subtest chained). While the trace flows, stage processes are
// killed with SIGKILL at random moments and restarted: first one of the two
// moving instances (scale-out: the other takes over its partitions, and
// gives them back), then any stage. At the end every record of every output
// topic, read read_committed, and every MongoDB document equal what offline
// computes for the trace: none missing, none duplicated.
//
// Subtest kfake runs on the embedded broker; subtest kafka on the real
// broker of TIDEMARK_KAFKA_BROKERS (the integration tier), where it deletes
// the pipeline's topics and groups first. TIDEMARK_SEED repeats a run;
// TIDEMARK_E2E_EVENTS sets the trace's length (default 6000).
//
// TIDEMARK_CAMPAIGN=1 makes it the fault campaign: a trace of 20,000 events
// replayed over a minute, a kill every 0.5 to 2.5 s (at least 20), the
// broker restarted once (the real one when scripts/kafka/broker.sh started
// it) and the MongoDB store stopped for 3 s once, while the stream runs.
//
// The oracle is offline over the trace. That extract wrote the trace to
// btc-price as it is, across the broker restart too, is checked first:
// every line once, and each symbol's lines in the trace's order.
func TestProcessesEqualOffline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dozen processes; not in -short")
	}
	t.Run("kfake", func(t *testing.T) {
		forms(t, func(t *testing.T, chained bool) {
			k := kafkatest.New(t, kafkatest.WithDataDir(t.TempDir()))
			testProcesses(t, k.Addrs(), func(down time.Duration) {
				require.NoError(t, k.Restart(context.Background(), down), "restart the broker on its port, with its data")
			}, chained)
		})
	})
	t.Run("kafka", func(t *testing.T) {
		brokers := os.Getenv("TIDEMARK_KAFKA_BROKERS")
		if brokers == "" {
			t.Skip("TIDEMARK_KAFKA_BROKERS is not set: start a broker with scripts/kafka/broker.sh start")
		}
		addrs := strings.Split(brokers, ",")
		var restart func(time.Duration)
		script, err := filepath.Abs("../../scripts/kafka/broker.sh")
		require.NoError(t, err, "script path")
		if exec.Command("bash", script, "status").Run() == nil {
			restart = func(down time.Duration) {
				out, err := exec.Command("bash", script, "stop", "--keep").CombinedOutput()
				require.NoError(t, err, "stop the broker: %s", out)
				time.Sleep(down)
				out, err = exec.Command("bash", script, "start").CombinedOutput()
				require.NoError(t, err, "start the broker: %s", out)
			}
		}
		forms(t, func(t *testing.T, chained bool) {
			resetPipeline(t, addrs)
			testProcesses(t, addrs, restart, chained)
		})
	})
}

// forms runs f as the subtests "stages" (moving, zscore and bonus as
// stages of their own) and "chained" (the three chained into one stage,
// the chained command).
func forms(t *testing.T, f func(t *testing.T, chained bool)) {
	t.Run("stages", func(t *testing.T) { f(t, false) })
	t.Run("chained", func(t *testing.T) { f(t, true) })
}

// testProcesses runs the lab as processes on the broker at addrs;
// restartBroker, when not nil, stops the broker for a while and starts it
// again with its data (the campaign uses it).
func testProcesses(t *testing.T, addrs []string, restartBroker func(down time.Duration), chained bool) {
	campaign := os.Getenv("TIDEMARK_CAMPAIGN") != ""
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TIDEMARK_SEED"); s != "" {
		_, err := fmt.Sscan(s, &seed)
		require.NoError(t, err, "TIDEMARK_SEED")
	}
	events := 6000
	if campaign {
		events = 20_000
	}
	if s := os.Getenv("TIDEMARK_E2E_EVENTS"); s != "" {
		_, err := fmt.Sscan(s, &events)
		require.NoError(t, err, "TIDEMARK_E2E_EVENTS")
	}
	t.Logf("seed %d, %d events (TIDEMARK_SEED=%d TIDEMARK_E2E_EVENTS=%d to repeat)", seed, events, seed, events)
	r := rand.New(rand.NewPCG(seed, 7))
	cfg := btc.Config{Windows: []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}, Horizon: 2 * time.Second,
		Lateness: 3 * time.Second, Partitions: 4}
	lines := e2eTrace(r, events, stream.DurationOf(cfg.Lateness))

	dir := t.TempDir()
	first, last := stream.MaxTime, stream.MinTime
	dec := btc.NewDecoder()
	for _, l := range lines {
		if p, err := dec.Decode([]byte(l)); err == nil {
			first, last = min(first, p.Time), max(last, p.Time)
		}
	}
	trace := filepath.Join(dir, "trace.jsonl")
	require.NoError(t, os.WriteFile(trace, []byte(strings.Join(append(slices.Clone(lines), e2eSentinels(cfg, last)...), "\n")+"\n"), 0o644), "write the trace")

	// The replay lasts about 20 s whatever the trace's length (a minute in
	// the campaign).
	replay := 20 * time.Second
	if campaign {
		replay = time.Minute
	}
	speed := float64(last-first) / float64(replay.Milliseconds())

	m := mongotest.New(t, mongotest.WithLogger(quietLog()))
	common := []string{"--brokers", strings.Join(addrs, ","), "--partitions", "4", "--windows", "1s,5s,30s",
		"--horizon", "2s", "--lateness", "3s", "--log-level", "info"}
	newProc := func(name string, args ...string) *proc {
		return &proc{name: name, args: append(args, common...), log: &syncBuffer{}}
	}
	stages := []*proc{
		newProc("moving-1", "moving", "--instance-id", "moving-1"),
		newProc("moving-2", "moving", "--instance-id", "moving-2"),
		newProc("zscore", "zscore", "--instance-id", "zscore-1"),
		newProc("bonus", "bonus", "--instance-id", "bonus-1"),
		newProc("load", "load", "--instance-id", "load-1", "--mongo-uri", m.URI()),
	}
	if chained {
		stages = []*proc{
			newProc("chained-1", "chained", "--instance-id", "chained-1"),
			newProc("chained-2", "chained", "--instance-id", "chained-2"),
			newProc("load", "load", "--instance-id", "load-1", "--mongo-uri", m.URI()),
		}
	}
	extract := newProc("extract", "extract", "--source", "replay:"+trace, "--speed", fmt.Sprint(speed))
	all := append(slices.Clone(stages), extract)
	defer func() {
		for _, p := range all {
			if ok, _ := p.exited(); !ok {
				p.kill()
			}
			p.raceFree(t)
			if t.Failed() {
				t.Logf("log of %s:\n%s", p.name, p.log)
			}
		}
	}()

	client, err := sarama.NewClient(addrs, nil)
	require.NoError(t, err, "client")
	defer client.Close()
	adm, err := sarama.NewClusterAdminFromClient(client)
	require.NoError(t, err, "admin")
	require.NoError(t, kafkaio.EnsureTopics(context.Background(), adm, btc.TopicSpecs(cfg.Partitions)), "topics")
	for _, p := range stages {
		p.start(t)
	}
	extract.start(t)

	// Chaos while the trace flows: SIGKILL a stage process every 1 to 4 s,
	// one of the two moving (or chained) instances first, and restart it
	// after a moment.
	kills, restarts, outages := 0, 0, 0
	pause, spread := 1000, 3000
	if campaign {
		pause, spread = 500, 2000
	}
	began := time.Now()
	for victim := stages[r.IntN(2)]; ; victim = stages[r.IntN(len(stages))] {
		time.Sleep(time.Duration(pause+r.IntN(spread)) * time.Millisecond)
		if campaign && restarts == 0 && restartBroker != nil && time.Since(began) > replay/3 {
			t.Logf("restarting the broker after %d kills", kills)
			restartBroker(2 * time.Second)
			restarts++
		}
		if campaign && outages == 0 && time.Since(began) > 2*replay/3 {
			t.Logf("stopping the MongoDB store for 3 s after %d kills", kills)
			require.NoError(t, m.Stop(), "stop the store")
			time.Sleep(3 * time.Second)
			require.NoError(t, m.Start(), "start the store")
			outages++
		}
		if done, err := extract.exited(); done {
			require.NoError(t, err, "extract's exit; log:\n%s", extract.log)
			// The campaign kills on while the stages catch up, until it
			// has made its 20 kills (a broker restart takes a while).
			if !campaign || kills >= 20 {
				break
			}
		}
		for _, p := range stages {
			if done, err := p.exited(); done {
				t.Fatalf("%s exited by itself (%v)", p.name, err)
			}
		}
		victim.kill()
		kills++
		time.Sleep(time.Duration(100+r.IntN(1500)) * time.Millisecond)
		victim.start(t)
	}
	t.Logf("the replay ended after %d kills", kills)
	require.Positive(t, kills, "a stage was killed")
	if campaign {
		require.GreaterOrEqual(t, kills, 20, "the campaign's kills")
		require.Equal(t, 1, outages, "the campaign's store outage")
	}

	// The oracle is offline over the trace, once extract is seen to have
	// written it to btc-price as it is: every line once (its Sink retries
	// in order across the broker restart; see kafkaio.Sink), and each
	// symbol's lines, which make up its partition, in the trace's order.
	var written []string
	for _, m := range btctest.ReadCommitted(t, addrs, btc.PriceTopic)[btc.PriceTopic] {
		if !strings.HasPrefix(string(m.Key), sentinel) {
			written = append(written, string(m.Value))
		}
	}
	checkExtracted(t, lines, written)
	sum, err := btc.Offline(context.Background(), strings.NewReader(strings.Join(lines, "\n")+"\n"), filepath.Join(dir, "offline"), cfg, quietLog())
	require.NoError(t, err, "offline")
	want := map[string][]string{}
	for _, kd := range []btc.Kind{btc.Moving, btc.ZScore, btc.Higher, btc.Lower} {
		want[kd.Topic()] = readLines(t, filepath.Join(dir, "offline", kd.FileName()))
	}

	mc, err := mongo.Connect(mongoopts.Client().ApplyURI(m.URI()))
	require.NoError(t, err, "mongo client")
	defer mc.Disconnect(context.Background())
	db := mc.Database(btc.Database)
	nz := len(want[btc.ZScore.Topic()])
	var read map[string][]*sarama.ConsumerMessage
	got := func(topic string) []string {
		var out []string
		for _, msg := range read[topic] {
			if !strings.HasPrefix(string(msg.Key), sentinel) {
				out = append(out, string(msg.Value))
			}
		}
		return out
	}
	// complete polls twice a second, and cheaply: reading every topic and
	// counting documents in the store (in this process) take CPU from the
	// stages on two cores, and polled without a pause they slowed the load
	// stage to a few dozen documents a second under -race. The topics are
	// read until they are complete (committed records stay), then the
	// documents are counted, all of them first (the sentinels' are few),
	// the trace's alone once there are enough.
	topicsDone := false
	complete := func() bool {
		done := func() bool {
			if !topicsDone {
				read = btctest.ReadCommitted(t, addrs, btc.Moving.Topic(), btc.ZScore.Topic(), btc.Higher.Topic(), btc.Lower.Topic(), btc.DeadLetterTopic)
				for topic, w := range want {
					if len(got(topic)) < len(w) {
						return false
					}
				}
				topicsDone = true
			}
			for _, w := range cfg.Windows {
				coll := db.Collection(btc.Collection(btc.Label(w)))
				if n, err := coll.CountDocuments(context.Background(), bson.D{}); err != nil || n < int64(nz) {
					return false
				}
				n, err := coll.CountDocuments(context.Background(),
					bson.D{{Key: "_id", Value: bson.D{{Key: "$not", Value: bson.Regex{Pattern: "^" + sentinel}}}}})
				if err != nil || n < int64(nz) {
					return false
				}
			}
			return true
		}()
		if !done {
			time.Sleep(500 * time.Millisecond)
		}
		return done
	}
	if !btctest.WaitFor(t, 4*time.Minute, complete) {
		for topic, w := range want {
			t.Errorf("%s: %d of %d records", topic, len(got(topic)), len(w))
		}
		for _, w := range cfg.Windows {
			name := btc.Collection(btc.Label(w))
			n, err := db.Collection(name).CountDocuments(context.Background(), bson.D{})
			t.Errorf("%s: %d documents, the sentinels' included, for %d z-scores (error: %v)", name, n, nz, err)
		}
		btctest.Settle(t, addrs, 5*time.Second, btc.Moving.Topic(), btc.ZScore.Topic(), btc.Higher.Topic(), btc.Lower.Topic())
		t.FailNow()
	}
	for _, p := range stages {
		p.stop(t)
	}
	btctest.Settle(t, addrs, time.Minute, btc.Moving.Topic(), btc.ZScore.Topic(), btc.Higher.Topic(), btc.Lower.Topic(), btc.DeadLetterTopic)
	read = btctest.ReadCommitted(t, addrs, btc.Moving.Topic(), btc.ZScore.Topic(), btc.Higher.Topic(), btc.Lower.Topic(), btc.DeadLetterTopic)
	checked := 0
	for topic, w := range want {
		g := got(topic)
		checked += btctest.SameRecords(t, topic, w, g)
		t.Logf("%s: %d records, equal to offline's", topic, len(g))
	}
	require.Len(t, read[btc.DeadLetterTopic], int(sum.Invalid), "dead letters: one per invalid line")
	n := btctest.CheckDocuments(t, db, len(cfg.Windows), want[btc.ZScore.Topic()], sentinel)
	require.Equal(t, len(cfg.Windows)*nz, n, "documents")
	t.Logf("%d kills, %d broker restarts, %d store outages; %d records and %d documents checked: 0 lost, 0 duplicated, 0 wrong; "+
		"extract: the %d trace lines in btc-price, once each, in order", kills, restarts, outages, checked, n, len(lines))
	for _, p := range stages {
		require.Regexp(t, regexp.MustCompile(`msg="btc-pipeline `+p.args[0]+`: stopped"`), p.log.String(), "%s: a clean stop", p.name)
	}
}

// readLines returns the lines of a file.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err, "read %s", path)
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// sentinel prefixes the keys of e2eSentinels.
const sentinel = "ZZEND"

// checkExtracted checks that extract wrote the trace's lines to btc-price
// as they are: each once, and the valid lines of each symbol (which all go
// to the symbol's partition) in the trace's order. Invalid lines have no
// key, and so no partition of their own: only their count is checked.
func checkExtracted(t *testing.T, lines, written []string) {
	t.Helper()
	count := make(map[string]int, len(written))
	for _, w := range written {
		count[w]++
	}
	lost := 0
	for _, l := range lines {
		if count[l] == 0 {
			lost++
			if lost <= 5 {
				t.Errorf("extract lost a line of the trace: %q", l)
			}
			continue
		}
		count[l]--
	}
	require.Zero(t, lost, "lines of the trace missing from btc-price")
	require.Len(t, written, len(lines), "no line written twice")
	bySymbol := func(ls []string) map[string][]string {
		dec := btc.NewDecoder()
		out := map[string][]string{}
		for _, l := range ls {
			if p, err := dec.Decode([]byte(l)); err == nil {
				out[p.Symbol] = append(out[p.Symbol], l)
			}
		}
		return out
	}
	want, got := bySymbol(lines), bySymbol(written)
	for sym, w := range want {
		g := got[sym]
		for i := range w {
			require.Equal(t, w[i], g[i], "%s: line %d of the symbol in btc-price is not the trace's", sym, i)
		}
	}
}

// resetPipeline deletes the pipeline's topics and consumer groups on a real
// broker, left over from an earlier run.
func resetPipeline(t *testing.T, addrs []string) {
	btctest.ResetKafka(t, addrs, btc.Groups(), btc.Topics())
}
