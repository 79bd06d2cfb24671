package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btctest"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/stream"
)

// produceLines writes JSON lines to a topic, keyed by their symbol and
// stamped with their event time (an invalid line without either).
func produceLines(t testing.TB, addrs []string, topic string, lines [][]byte) {
	t.Helper()
	sink, err := kafkaio.NewSink[[]byte](nil, kafkaio.Raw{}, kafkaio.WithTopic(topic), kafkaio.WithBrokers(addrs, nil))
	require.NoError(t, err)
	defer sink.Close(context.Background())
	ctx := context.Background()
	now := stream.TimeOf(time.Now())
	for _, l := range lines {
		var head struct {
			Symbol    string `json:"symbol"`
			Timestamp string `json:"timestamp"`
		}
		e := stream.Event[[]byte]{Time: now, Value: l}
		if json.Unmarshal(l, &head) == nil && head.Symbol != "" {
			if tm, err := stream.ParseTime([]byte(head.Timestamp)); err == nil {
				e.Key, e.Time = head.Symbol, tm
			}
		}
		require.NoError(t, sink.Write(ctx, e))
	}
	require.NoError(t, sink.Flush(ctx))
}

func fileLines(t testing.TB, path string) [][]byte {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
}

// TestFollow writes a trace's records to the pipeline's topics on an
// in-process Kafka cluster and checks that Follow brings every one into the
// hub, series by series in order, and counts what it read per topic.
func TestFollow(t *testing.T) {
	cfg := btc.DefaultConfig()
	cfg.Partitions = 3
	in := testTrace(4, 3000, 10_000)
	dir, want := offlineRecords(t, in, cfg)

	k := kafkatest.New(t)
	addrs := k.Addrs()
	client, err := sarama.NewClient(addrs, nil)
	require.NoError(t, err)
	defer client.Close()
	adm, err := sarama.NewClusterAdminFromClient(client)
	require.NoError(t, err)
	require.NoError(t, kafkaio.EnsureTopics(context.Background(), adm, btc.TopicSpecs(cfg.Partitions)))
	produceLines(t, addrs, btc.PriceTopic, bytes.Split(bytes.TrimRight(in, "\n"), []byte("\n")))
	for _, kd := range []btc.Kind{btc.Moving, btc.ZScore, btc.Higher, btc.Lower} {
		produceLines(t, addrs, kd.Topic(), fileLines(t, filepath.Join(dir, kd.FileName())))
	}

	h := NewHub(cfg, Options{Tick: 10 * time.Millisecond, StatsEvery: 10 * time.Millisecond, FollowRate: -1})
	defer h.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Follow(ctx, h, addrs, nil) }()
	total := totalRecords(want)
	ok := btctest.WaitFor(t, 60*time.Second, func() bool {
		h.Flush()
		return h.Metrics().Seq >= total
	})
	cancel()
	require.NoError(t, <-done)
	require.True(t, ok, "the hub has %d records, want %d", h.Metrics().Seq, total)
	require.Equal(t, total, h.Metrics().Seq)
	body, seq := h.snapshot(stream.MinTime, stream.MaxTime, 0)
	var b browser
	b.apply(t, sseEvent{name: "snapshot", id: strconv.FormatUint(seq, 10), data: body})
	requireSameModel(t, want, b.m)

	// The follower's counters, in the latest stats sample.
	var snap struct {
		Stats []struct {
			Stages []struct {
				Name    string  `json:"name"`
				In      uint64  `json:"in"`
				Invalid uint64  `json:"invalid"`
				Lag     int64   `json:"lag"`
				WM      float64 `json:"wmDelay"`
			} `json:"stages"`
		} `json:"stats"`
	}
	require.Eventually(t, func() bool {
		body, _ := h.snapshot(stream.MinTime, stream.MaxTime, 0)
		require.NoError(t, json.Unmarshal(body, &snap))
		return len(snap.Stats) > 0 && len(snap.Stats[len(snap.Stats)-1].Stages) == len(btc.Topics())
	}, 10*time.Second, 10*time.Millisecond)
	rows := snap.Stats[len(snap.Stats)-1].Stages
	byName := map[string]int{}
	for i, r := range rows {
		byName[r.Name] = i
	}
	price := rows[byName[btc.PriceTopic]]
	assert.Equal(t, uint64(bytes.Count(in, []byte("\n"))), price.In, "btc-price records read")
	assert.Positive(t, price.Invalid, "invalid btc-price records")
	assert.Zero(t, price.Lag)
	assert.Positive(t, price.WM, "watermark delay: the trace is in the past")
	for _, kd := range []btc.Kind{btc.Moving, btc.ZScore, btc.Higher, btc.Lower} {
		r := rows[byName[kd.Topic()]]
		assert.Equal(t, uint64(len(fileLines(t, filepath.Join(dir, kd.FileName())))), r.In, kd.Topic())
		assert.Zero(t, r.Invalid, kd.Topic())
	}
}

// TestDecoderFallback checks the follower's decoders: the encoder's layout
// goes through the fast path, anything else valid through the btc codecs,
// with the same values.
func TestDecoderFallback(t *testing.T) {
	cfg := btc.DefaultConfig()
	in := testTrace(5, 800, 10_000)
	dir, _ := offlineRecords(t, in, cfg)
	d := newDecoder(cfg)
	reformat := func(line []byte) []byte {
		var v any
		require.NoError(t, json.Unmarshal(line, &v))
		out, err := json.MarshalIndent(v, "", " ") // other spacing, other key order
		require.NoError(t, err)
		return out
	}
	for _, kd := range []btc.Kind{btc.Moving, btc.ZScore, btc.Higher, btc.Lower} {
		for _, line := range fileLines(t, filepath.Join(dir, kd.FileName())) {
			switch kd {
			case btc.Moving:
				s1, t1, v1, err := d.decodeMoving(line)
				require.NoError(t, err)
				v1 = slices.Clone(v1)
				s2, t2, v2, err := d.decodeMoving(reformat(line))
				require.NoError(t, err)
				e, err := btc.NewMovingCodec(cfg).Decode(nil, line, 0)
				require.NoError(t, err)
				require.Equal(t, []any{e.Key, e.Time}, []any{s1, t1})
				require.Equal(t, []any{s1, t1}, []any{s2, t2})
				for i := range v1 {
					require.True(t, samePoint(point{0, []float64{v1[i].Mean, v1[i].Std, float64(v1[i].Count)}},
						point{0, []float64{e.Value[i].Mean, e.Value[i].Std, float64(e.Value[i].Count)}}), "%s", line)
					require.True(t, samePoint(point{0, []float64{v2[i].Mean, v2[i].Std, float64(v2[i].Count)}},
						point{0, []float64{e.Value[i].Mean, e.Value[i].Std, float64(e.Value[i].Count)}}), "%s", line)
				}
			case btc.ZScore:
				s1, t1, p1, z1, err := d.decodeZScore(line)
				require.NoError(t, err)
				z1 = slices.Clone(z1)
				e, err := btc.NewZScoreCodec(cfg).Decode(nil, line, 0)
				require.NoError(t, err)
				require.Equal(t, []any{e.Key, e.Time, e.Value.Price, e.Value.Scores}, []any{s1, t1, p1, z1}, "%s", line)
				s2, t2, p2, z2, err := d.decodeZScore(reformat(line))
				require.NoError(t, err)
				require.Equal(t, []any{s1, t1, p1, z1}, []any{s2, t2, p2, z2})
			default:
				field := "higher_window"
				if kd == btc.Lower {
					field = "lower_window"
				}
				s1, t1, v1, err := d.decodeLookahead(line, field)
				require.NoError(t, err)
				s2, t2, v2, err := d.decodeLookahead(reformat(line), field)
				require.NoError(t, err)
				require.Equal(t, []any{s1, t1, v1}, []any{s2, t2, v2})
			}
		}
	}
	for _, bad := range []string{``, `{}`, `not json`, `{"timestamp":"2025-05-08T04:12:38.352Z","symbol":"X","windows":[]}`} {
		_, _, _, err := d.decodeMoving([]byte(bad))
		assert.Error(t, err, bad)
		_, _, _, _, err = d.decodeZScore([]byte(bad))
		assert.Error(t, err, bad)
		_, _, _, err = d.decodeLookahead([]byte(bad), "higher_window")
		assert.Error(t, err, bad)
	}
}

// TestDashboardOverhead measures what the dashboard costs the pipeline:
// the moving, zscore and bonus stages catch up on a backlog of btc-price
// records on an in-process Kafka cluster, alone and with the dashboard
// (Follow with its default Options.FollowRate, the hub, and a browser
// reading the event stream), several times each; the median throughputs
// are compared. It is a measurement, run only
// when TIDEMARK_DASHBOARD_OVERHEAD is set (to the number of events; 1 for
// the default 20000); it fails when the dashboard costs 2% or more.
func TestDashboardOverhead(t *testing.T) {
	env := os.Getenv("TIDEMARK_DASHBOARD_OVERHEAD")
	if env == "" {
		t.Skip("a measurement: set TIDEMARK_DASHBOARD_OVERHEAD=1 (or the number of events) to run it")
	}
	events, _ := strconv.Atoi(env)
	if events <= 1 {
		events = 20_000
	}
	const rounds = 7
	cfg := btc.DefaultConfig()
	cfg.Partitions = 3
	in := testTrace(6, events, 10_000)
	lines := bytes.Split(bytes.TrimRight(in, "\n"), []byte("\n"))
	run := func(dashboard bool) float64 {
		k := kafkatest.New(t)
		addrs := k.Addrs()
		client, err := sarama.NewClient(addrs, nil)
		require.NoError(t, err)
		defer client.Close()
		adm, err := sarama.NewClusterAdminFromClient(client)
		require.NoError(t, err)
		require.NoError(t, kafkaio.EnsureTopics(context.Background(), adm, btc.TopicSpecs(cfg.Partitions)))
		produceLines(t, addrs, btc.PriceTopic, lines)
		opts := []kafkaio.StageOption{kafkaio.WithBrokers(addrs, nil), kafkaio.WithLogger(quiet)}
		moving, err := btc.NewMovingStage(cfg, opts...)
		require.NoError(t, err)
		zs, err := btc.NewZScoreStage(cfg, opts...)
		require.NoError(t, err)
		bonus, err := btc.NewBonusStage(cfg, opts...)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		defer func() {
			cancel()
			wg.Wait()
		}()
		if dashboard {
			h := NewHub(cfg, Options{})
			srv := serve(t, h)
			wg.Go(func() { _ = Follow(ctx, h, addrs, nil) })
			h.SetStats(func() []StageStat {
				now := time.Now()
				return []StageStat{StageStatOf("moving", moving.Stats(), now), StageStatOf("zscore", zs.Stats(), now), StageStatOf("bonus", bonus.Stats(), now)}
			})
			resp, err := http.Get(srv.URL + "/events")
			require.NoError(t, err)
			wg.Go(func() {
				_, _ = io.Copy(io.Discard, resp.Body) // a browser elsewhere
			})
			go func() {
				<-ctx.Done()
				resp.Body.Close()
			}()
		}
		start := time.Now()
		for _, st := range []*kafkaio.Stage{moving, zs, bonus} {
			wg.Go(func() { _ = st.Run(ctx) })
		}
		p := uint64(len(lines))
		ok := btctest.WaitFor(t, 300*time.Second, func() bool {
			ms := moving.Stats()
			return ms.Records >= p && bonus.Stats().Records >= p && zs.Stats().Records >= p+ms.Emitted
		})
		require.True(t, ok, "the stages did not catch up")
		return float64(len(lines)) / time.Since(start).Seconds()
	}
	var alone, with []float64
	for range rounds {
		alone = append(alone, run(false))
		with = append(with, run(true))
	}
	sort.Float64s(alone)
	sort.Float64s(with)
	a, w := alone[rounds/2], with[rounds/2]
	cost := (a - w) / a
	t.Logf("%d events, median of %d: %.0f events/s alone, %.0f with the dashboard: costs %.2f%% (alone %v, with %v)",
		len(lines), rounds, a, w, 100*cost, alone, with)
	assert.Less(t, cost, 0.02, "the dashboard costs the pipeline 2% or more of its throughput")
}

// TestLimiter checks the follower's budget: a burst of a quarter second,
// then the rate.
func TestLimiter(t *testing.T) {
	l := newLimiter(2000)
	start := time.Now()
	for range 500 + 200 {
		require.True(t, l.wait(context.Background()))
	}
	took := time.Since(start)
	assert.InDelta(t, 100*time.Millisecond, took, float64(80*time.Millisecond), "500 at once, 200 at 2000/s")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for l.wait(ctx) {
	}
	assert.Nil(t, newLimiter(-1))
	assert.True(t, newLimiter(-1).wait(ctx))
}
