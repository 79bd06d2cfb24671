package btc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btctest"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/stream"
)

// benchBrokers runs f on kfake (sub-benchmark "kfake") and on the real broker
// of TIDEMARK_KAFKA_BROKERS ("kafka"; skipped without it), with the
// pipeline's topics created afresh with the given partitions.
func benchBrokers(b *testing.B, partitions int, f func(b *testing.B, addrs []string)) {
	fresh := func(b *testing.B, addrs []string) {
		adm, err := sarama.NewClusterAdmin(addrs, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer adm.Close()
		if err := kafkaio.EnsureTopics(context.Background(), adm, TopicSpecs(partitions)); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("kfake", func(b *testing.B) {
		k := kafkatest.New(b)
		fresh(b, k.Addrs())
		f(b, k.Addrs())
	})
	b.Run("kafka", func(b *testing.B) {
		brokers := os.Getenv("TIDEMARK_KAFKA_BROKERS")
		if brokers == "" {
			b.Skip("TIDEMARK_KAFKA_BROKERS is not set: start a broker with scripts/kafka/broker.sh start")
		}
		addrs := strings.Split(brokers, ",")
		warmBroker(b, addrs, fresh)
		btctest.ResetKafka(b, addrs, Groups(), Topics())
		fresh(b, addrs)
		f(b, addrs)
	})
}

// warmOnce warms the real broker once per test binary.
var warmOnce sync.Once

// warmBroker runs the chained stage once, untimed, over a backlog of
// TIDEMARK_BENCH_WARMUP prices (default 1,200,000, about 40 s; 0 for none)
// before the first measurement on the real broker. A broker just started
// is slow until its JVM has compiled its hot paths and sized its heap: on
// one, the chained stage's first seven runs of 200,000 prices went from
// 15,400 to 56,800 events/s; after a warm-up of 400,000 the next four went
// from 21,500 to 38,000, after one of 1,200,000 they gave 34,600 to 39,400.
func warmBroker(b *testing.B, addrs []string, fresh func(*testing.B, []string)) {
	warmOnce.Do(func() {
		n := 1_200_000
		if v := os.Getenv("TIDEMARK_BENCH_WARMUP"); v != "" {
			if _, err := fmt.Sscan(v, &n); err != nil {
				b.Fatalf("TIDEMARK_BENCH_WARMUP=%q: %v", v, err)
			}
		}
		if n <= 0 {
			return
		}
		start := time.Now()
		btctest.ResetKafka(b, addrs, Groups(), Topics())
		fresh(b, addrs)
		produceBacklog(b, addrs, 1, n)
		s, err := NewChainedStage(DefaultConfig(), kafkaio.WithBrokers(addrs, nil), kafkaio.WithLogger(quiet))
		if err != nil {
			b.Fatal(err)
		}
		stop := runBench(b, s)
		if !btctest.WaitFor(b, 10*time.Minute, func() bool { return s.Stats().Records >= uint64(n) }) {
			b.Fatalf("warming the broker: the chained stage did not read %d prices in 10 minutes: %+v", n, s.Stats())
		}
		stop()
		b.Logf("warmed the broker with %d prices through the chained stage in %v (TIDEMARK_BENCH_WARMUP=0 to skip)", n, time.Since(start).Round(time.Millisecond))
	})
}

// benchSymbols are the symbols of the benchmarks' traces, one per partition
// (Partition puts these three on partitions 0, 1 and 2 of three).
var benchSymbols = []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}

// startStages runs the moving, zscore and bonus stages with cfg's windows
// until the returned stop is called.
func startStages(b *testing.B, addrs []string, cfg Config) (moving, zs, bonus *kafkaio.Stage, stop func()) {
	moving, zs, bonus = newStages(b, addrs, cfg)
	return moving, zs, bonus, runBench(b, moving, zs, bonus)
}

func newStages(b *testing.B, addrs []string, cfg Config) (moving, zs, bonus *kafkaio.Stage) {
	opts := []kafkaio.StageOption{kafkaio.WithBrokers(addrs, nil), kafkaio.WithLogger(quiet)}
	var err error
	if moving, err = NewMovingStage(cfg, opts...); err != nil {
		b.Fatal(err)
	}
	if zs, err = NewZScoreStage(cfg, opts...); err != nil {
		b.Fatal(err)
	}
	if bonus, err = NewBonusStage(cfg, opts...); err != nil {
		b.Fatal(err)
	}
	return moving, zs, bonus
}

// runBench runs stages until the returned stop is called.
func runBench(b *testing.B, stages ...*kafkaio.Stage) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range stages {
		wg.Go(func() {
			if err := s.Run(ctx); err != nil && ctx.Err() == nil {
				b.Error(err)
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// brokerCPU is the CPU time, user and system, that the process
// TIDEMARK_KAFKA_PID has used (the real broker's: scripts/kafka/broker.sh
// writes it in $STATE_DIR/broker.pid), or -1 when that is not set. The
// benchmarks report it per event beside their own (broker-cpu-µs/event), as
// the broker shares the machine's cores with the stages.
func brokerCPU(b *testing.B) time.Duration {
	pid := os.Getenv("TIDEMARK_KAFKA_PID")
	if pid == "" || !strings.HasSuffix(b.Name(), "/kafka") {
		return -1
	}
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		b.Fatalf("TIDEMARK_KAFKA_PID=%s: %v", pid, err)
	}
	// The fields after the command's closing parenthesis; utime and
	// stime are the 14th and 15th of the line, in clock ticks of 1/100 s
	// (USER_HZ, 100 on Linux).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	var utime, stime int64
	if len(f) < 13 {
		b.Fatalf("/proc/%s/stat: %q", pid, stat)
	}
	if _, err := fmt.Sscan(f[11]+" "+f[12], &utime, &stime); err != nil {
		b.Fatalf("/proc/%s/stat: %v", pid, err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// cpuTime is the CPU time this process has used, user and system: with
// the real broker, the stage's and the benchmark's, not the broker's.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// produceBacklog writes n btc-price records, as extract --source replay
// --speed 0 would: a random walk in cents per symbol, one symbol per
// partition, events 50 to 150 ms apart (divided among the partitions). It
// returns how long the writing took.
func produceBacklog(b *testing.B, addrs []string, partitions, n int) time.Duration {
	r := rand.New(rand.NewPCG(1, 2))
	sink, err := kafkaio.NewSink[[]byte](nil, kafkaio.Raw{}, kafkaio.WithTopic(PriceTopic), kafkaio.WithBrokers(addrs, nil))
	if err != nil {
		b.Fatal(err)
	}
	cents := []int64{9_919_048, 250_011, 14_550}
	tm := stream.Time(1_746_677_558_352)
	var buf []byte
	start := time.Now()
	for i := range n {
		k := i % partitions
		tm += stream.Time(50+r.IntN(100)) / stream.Time(partitions)
		cents[k] += int64(r.IntN(21)) - 10
		buf = AppendPrice(buf[:0], Price{Symbol: benchSymbols[k], Price: float64(cents[k]) / 100, Time: tm})
		if err := sink.Write(context.Background(), stream.Event[[]byte]{Key: benchSymbols[k], Time: tm, Value: buf}); err != nil {
			b.Fatal(err)
		}
	}
	if err := sink.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkLabStages measures the lab's three Kafka stages over a backlog of n btc-price events written
// beforehand (what extract --source replay:FILE --speed 0 writes): the
// events per second that each stage reads, computes and commits exactly
// once, from its start to the moment it has read the whole backlog. The
// configuration is the lab's: six windows from 30 s to 1 h, a 20 s horizon,
// 10 s of lateness; events 50 to 150 ms apart, one symbol per partition.
// The stages run together, as the all command runs them and as they share
// the machine ("together"), or each alone, one after the other
// ("one-at-a-time": what one stage does with the machine to itself), or
// chained into one stage that writes the four topics (NewChainedStage,
// "chained", the chained command). One-at-a-time and chained also report
// the process's CPU time per event (cpu-µs/event: on the real broker, the
// stage's and the benchmark's own, not the broker's; on kfake, the broker's
// too), and with TIDEMARK_KAFKA_PID the real broker's (broker-cpu-µs/event).
// Run it with -benchtime 1x; on the real broker it first warms the broker
// (warmBroker).
func BenchmarkLabStages(b *testing.B) {
	const n = 200_000
	for _, c := range []struct {
		partitions int
		mode       string
	}{{1, "together"}, {3, "together"}, {1, "chained"}, {3, "chained"}, {1, "one-at-a-time"}} {
		partitions, mode := c.partitions, c.mode
		together := mode == "together"
		b.Run(fmt.Sprintf("partitions=%d/%s", partitions, mode), func(b *testing.B) {
			benchBrokers(b, partitions, func(b *testing.B, addrs []string) {
				cfg := DefaultConfig()
				cfg.Partitions = partitions
				produced := produceBacklog(b, addrs, partitions, n)

				b.ResetTimer()
				if mode == "chained" {
					s, err := NewChainedStage(cfg, kafkaio.WithBrokers(addrs, nil), kafkaio.WithLogger(quiet))
					if err != nil {
						b.Fatal(err)
					}
					start, cpu0, bcpu0 := time.Now(), cpuTime(), brokerCPU(b)
					stop := runBench(b, s)
					if !btctest.WaitFor(b, 10*time.Minute, func() bool { return s.Stats().Records >= n }) {
						b.Fatalf("the chained stage did not read the backlog in 10 minutes: %+v", s.Stats())
					}
					took, cpu := time.Since(start), cpuTime()-cpu0
					stop()
					b.StopTimer()
					b.ReportMetric(n/took.Seconds(), "all-events/s")
					b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/event")
					if bcpu0 >= 0 {
						b.ReportMetric(float64((brokerCPU(b)-bcpu0).Microseconds())/n, "broker-cpu-µs/event")
					}
					b.ReportMetric(n/produced.Seconds(), "produce-events/s")
					return
				}
				moving, zs, bonus := newStages(b, addrs, cfg)
				done := map[string]func() bool{
					"moving": func() bool { return moving.Stats().Records >= n },
					"zscore": func() bool { return moving.Stats().Records >= n && zs.Stats().Records >= n+moving.Stats().Emitted },
					"bonus":  func() bool { return bonus.Stats().Records >= n },
				}
				took := map[string]time.Duration{}
				wait := func(names ...string) {
					start := time.Now()
					if !btctest.WaitFor(b, 10*time.Minute, func() bool {
						for _, name := range names {
							if _, ok := took[name]; !ok && done[name]() {
								took[name] = time.Since(start)
							}
						}
						return len(took) == 3 || !slices.ContainsFunc(names, func(name string) bool { _, ok := took[name]; return !ok })
					}) {
						b.Fatalf("the stages did not read the backlog in 10 minutes: %+v %+v %+v", moving.Stats(), zs.Stats(), bonus.Stats())
					}
				}
				if together {
					stop := runBench(b, moving, zs, bonus)
					wait("moving", "zscore", "bonus")
					stop()
				} else {
					for _, st := range []struct {
						name string
						s    *kafkaio.Stage
					}{{"moving", moving}, {"zscore", zs}, {"bonus", bonus}} {
						cpu0, bcpu0 := cpuTime(), brokerCPU(b)
						stop := runBench(b, st.s)
						wait(st.name)
						cpu := cpuTime() - cpu0
						stop()
						b.ReportMetric(float64(cpu.Microseconds())/n, st.name+"-cpu-µs/event")
						if bcpu0 >= 0 {
							b.ReportMetric(float64((brokerCPU(b)-bcpu0).Microseconds())/n, st.name+"-broker-cpu-µs/event")
						}
					}
				}
				b.StopTimer()
				for name, d := range took {
					b.ReportMetric(n/d.Seconds(), name+"-events/s")
				}
				if together {
					b.ReportMetric(n/max(took["moving"], took["zscore"], took["bonus"]).Seconds(), "all-events/s")
				}
				b.ReportMetric(n/produced.Seconds(), "produce-events/s")
			})
		})
	}
}

// BenchmarkLabLatency measures the time from a btc-price record written to
// its z-score record readable read_committed downstream, through the moving
// and zscore stages (the bonus stage runs beside them, as in all:
// "together"), or through the chained stage ("chained"), at a steady rate
// for 10 s, one symbol, at the default commit interval. The lateness is 0
// here: with a lateness L, a result waits besides for the watermark to pass
// its event, L of event time, by design; this measures the pipeline's own
// delay. It reports p50 and p99 in ms. Run it with -benchtime 1x; on the
// real broker it first warms the broker (warmBroker).
func BenchmarkLabLatency(b *testing.B) {
	for _, c := range []struct {
		rate int
		mode string
	}{{5000, "together"}, {20000, "together"}, {20000, "chained"}} {
		b.Run(fmt.Sprintf("rate=%d/%s", c.rate, c.mode), func(b *testing.B) { benchLatency(b, c.rate, c.mode == "chained") })
	}
}

func benchLatency(b *testing.B, rate int, chained bool) {
	const span = 10 * time.Second
	benchBrokers(b, 1, func(b *testing.B, addrs []string) {
		cfg := DefaultConfig()
		cfg.Partitions, cfg.Lateness = 1, 0
		if chained {
			s, err := NewChainedStage(cfg, kafkaio.WithBrokers(addrs, nil), kafkaio.WithLogger(quiet))
			if err != nil {
				b.Fatal(err)
			}
			defer runBench(b, s)()
		} else {
			_, _, _, stop := startStages(b, addrs, cfg)
			defer stop()
		}

		// The reader of btc-price-zscore, read_committed.
		scfg, err := kafkaio.NewConfig()
		if err != nil {
			b.Fatal(err)
		}
		scfg.Consumer.IsolationLevel = sarama.ReadCommitted
		cons, err := sarama.NewConsumer(addrs, scfg)
		if err != nil {
			b.Fatal(err)
		}
		defer cons.Close()
		pc, err := cons.ConsumePartition(ZScore.Topic(), 0, sarama.OffsetOldest)
		if err != nil {
			b.Fatal(err)
		}
		defer pc.Close()

		sink, err := kafkaio.NewSink[[]byte](nil, kafkaio.Raw{}, kafkaio.WithTopic(PriceTopic), kafkaio.WithBrokers(addrs, nil))
		if err != nil {
			b.Fatal(err)
		}
		defer sink.Close(context.Background())
		total := int(float64(rate) * span.Seconds())
		sent := make([]time.Time, total) // by event time - t0
		t0 := stream.TimeOf(time.Now())
		b.ResetTimer()
		go func() {
			var buf []byte
			start := time.Now()
			cents := int64(9_919_048)
			for i := range total {
				if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
					time.Sleep(d)
				}
				cents += int64(i%7) - 3
				tm := t0 + stream.Time(i)
				buf = AppendPrice(buf[:0], Price{Symbol: "BTCUSDT", Price: float64(cents) / 100, Time: tm})
				sent[i] = time.Now()
				if err := sink.Write(context.Background(), stream.Event[[]byte]{Key: "BTCUSDT", Time: tm, Value: buf}); err != nil {
					b.Error(err)
					return
				}
			}
			if err := sink.Flush(context.Background()); err != nil {
				b.Error(err)
			}
		}()
		lat := make([]time.Duration, 0, total)
		timeout := time.After(span + time.Minute)
		// The last events' z-scores wait for later events, which never
		// come: a window's statistics for time t are final once the moving
		// stage's watermark has passed t, and the join's pair once the
		// zscore stage's watermarks on both inputs have.
		for len(lat) < total-2 {
			select {
			case m := <-pc.Messages():
				i := int(stream.TimeOf(m.Timestamp) - t0)
				if i < 0 || i >= total {
					b.Fatalf("z-score at %v, outside the run", m.Timestamp)
				}
				lat = append(lat, time.Since(sent[i]))
			case <-timeout:
				b.Fatalf("%d of %d z-scores in %v", len(lat), total, span+time.Minute)
			}
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
	})
}

// BenchmarkLabRecovery measures how long a moving stage takes to come back
// after a crash with an hour of state: a backlog of one hour of prices at
// 1,000 events/s on one partition (3,610,001 events, so that the 1 h window
// is full), read and committed by a static member (WithInstanceID), which
// is then crashed as SIGKILL would (kafkaio.Faults: no commit, no leave);
// ten more prices arrive, and a new incarnation with the same instance id
// starts. It rebuilds the task by replaying the partition from where the
// oldest open window begins, an hour back, then processes the new prices.
// The benchmark reports the replayed records per second and the time from
// the restart to the new prices committed (recovery-s). Only against the
// real broker (TIDEMARK_KAFKA_BROKERS): kfake would hold the backlog in
// this process. Run it with -benchtime 1x.
func BenchmarkLabRecovery(b *testing.B) {
	brokers := os.Getenv("TIDEMARK_KAFKA_BROKERS")
	if brokers == "" {
		b.Skip("TIDEMARK_KAFKA_BROKERS is not set: start a broker with scripts/kafka/broker.sh start")
	}
	addrs := strings.Split(brokers, ",")
	btctest.ResetKafka(b, addrs, Groups(), Topics())
	adm, err := sarama.NewClusterAdmin(addrs, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := kafkaio.EnsureTopics(context.Background(), adm, TopicSpecs(1)); err != nil {
		b.Fatal(err)
	}
	_ = adm.Close()
	const n = 3_610_001
	sink, err := kafkaio.NewSink[[]byte](nil, kafkaio.Raw{}, kafkaio.WithTopic(PriceTopic), kafkaio.WithBrokers(addrs, nil))
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close(context.Background())
	tm, cents := stream.Time(1_746_677_558_352), int64(9_919_048)
	r := rand.New(rand.NewPCG(3, 4))
	var buf []byte
	write := func(count int) {
		for range count {
			tm++
			cents += int64(r.IntN(21)) - 10
			buf = AppendPrice(buf[:0], Price{Symbol: "BTCUSDT", Price: float64(cents) / 100, Time: tm})
			if err := sink.Write(context.Background(), stream.Event[[]byte]{Key: "BTCUSDT", Time: tm, Value: buf}); err != nil {
				b.Fatal(err)
			}
		}
		if err := sink.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	write(n)
	cfg := DefaultConfig()
	cfg.Partitions = 1
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	faults := new(kafkaio.Faults)
	first, err := NewMovingStage(cfg, kafkaio.WithBrokers(addrs, nil), kafkaio.WithLogger(quiet), kafkaio.WithInstanceID("bench"), kafkaio.WithFaults(faults))
	if err != nil {
		b.Fatal(err)
	}
	if err := first.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if err := first.WaitCaughtUp(ctx); err != nil {
		b.Fatal(err)
	}
	faults.Crash()
	if err := first.Wait(); !errors.Is(err, kafkaio.ErrCrashed) {
		b.Fatalf("the first incarnation: %v, want ErrCrashed", err)
	}
	write(10)

	b.ResetTimer()
	start := time.Now()
	second, err := NewMovingStage(cfg, kafkaio.WithBrokers(addrs, nil), kafkaio.WithLogger(quiet), kafkaio.WithInstanceID("bench"))
	if err != nil {
		b.Fatal(err)
	}
	if err := second.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if err := second.WaitCaughtUp(ctx); err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	b.StopTimer()
	st := second.Stats()
	if err := second.Stop(); err != nil {
		b.Fatal(err)
	}
	if st.Records < 10 {
		b.Fatalf("the new prices were not processed: %+v", st)
	}
	b.ReportMetric(float64(st.Replayed), "replayed")
	b.ReportMetric(float64(st.Replayed)/took.Seconds(), "replayed/s")
	b.ReportMetric(took.Seconds(), "recovery-s")
}
