package stream

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestWatermarks(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type obs struct {
		part int
		at   Time
		now  time.Duration // processing time since t0
		want Time
	}
	tests := []struct {
		name     string
		lateness time.Duration
		idle     time.Duration
		byClock  bool
		steps    []obs
	}{
		{"one partition trails by lateness", 10 * time.Second, 0, false, []obs{
			{0, 20_000, 0, 10_000}, {0, 25_000, 0, 15_000}, {0, 21_000, 0, 15_000},
		}},
		{"zero lateness", 0, 0, false, []obs{{0, 5, 0, 5}, {0, 7, 0, 7}}},
		{"minimum over partitions", time.Second, 0, false, []obs{
			{0, 10_000, 0, 9_000}, {1, 5_000, 0, 9_000}, // never decreases
			{0, 20_000, 0, 9_000}, {1, 12_000, 0, 11_000}, {1, 30_000, 0, 19_000},
		}},
		{"idle partition stops holding back", time.Second, 5 * time.Second, false, []obs{
			{0, 10_000, 0, 9_000}, {1, 10_000, 0, 9_000}, {0, 50_000, 6 * time.Second, 49_000},
		}},
		{"busy partitions hold back within the idle timeout", time.Second, 5 * time.Second, false, []obs{
			{0, 10_000, 0, 9_000}, {1, 10_000, 0, 9_000}, {0, 50_000, 4 * time.Second, 9_000},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWatermarks(tt.lateness, tt.idle, tt.byClock)
			assert.Equal(t, MinTime, w.Current(), "before any event")
			for i, s := range tt.steps {
				now := t0.Add(s.now)
				w.Observe(s.part, s.at, now)
				got := w.Idle(now)
				assert.Equal(t, s.want, got, "step %d", i)
			}
		})
	}
}

func TestWatermarksIdleAdvance(t *testing.T) {
	t0 := time.Unix(1000, 0)
	w := newWatermarks(time.Second, 5*time.Second, true)
	assert.Equal(t, Time(9_000), w.Observe(0, 10_000, t0), "one partition")

	assert.Equal(t, Time(9_000), w.Idle(t0.Add(4*time.Second)), "not idle yet")
	now := t0.Add(time.Hour)
	assert.Equal(t, Time(10_000+3_600_000-1000), w.Idle(now), "all idle: the watermark advances by the wall time since the last event")
	assert.Less(t, w.Current(), TimeOf(now)-1000, "never to the wall clock itself (the events are from 1970)")
	assert.Equal(t, MaxTime, w.Finish(), "end of input")
}

func TestWatermarksAllIdleWithoutClock(t *testing.T) {
	t0 := time.Unix(1000, 0)
	w := newWatermarks(time.Second, time.Second, false)
	w.Observe(0, 10_000, t0)
	w.Observe(1, 50_000, t0.Add(500*time.Millisecond))
	assert.Equal(t, Time(9_000), w.Current(), "partition 0 holds back")
	assert.Equal(t, Time(49_000), w.Idle(t0.Add(time.Hour)), "when all are idle the largest time seen bounds what is final")
}

func TestTimeHelpers(t *testing.T) {
	ts := time.Date(2025, 5, 8, 4, 12, 38, 352_999_999, time.UTC)
	assert.Equal(t, Time(1746677558352), TimeOf(ts), "truncated to the millisecond")
	assert.Equal(t, "2025-05-08T04:12:38.352Z", TimeOf(ts).String(), "String")
	assert.Equal(t, MaxTime, MaxTime.Add(1), "saturates up")
	assert.Equal(t, MinTime, MinTime.Add(-1), "saturates down")
	assert.Equal(t, Time(1500), DurationOf(1500*time.Millisecond), "DurationOf")
	assert.Equal(t, "-inf", MinTime.String(), "MinTime")
	assert.Equal(t, "+inf", MaxTime.String(), "MaxTime")
}
