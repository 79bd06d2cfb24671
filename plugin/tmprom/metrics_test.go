package tmprom

import (
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEveryField checks that every field of the statistics structs is
// exported by a metric that reads it: a field added to kafkaio.StageStats,
// SinkStats, FollowerStats or FollowerTopicStats, or to mongoio.SinkStats,
// fails here until it has a metric (and a line in the package
// documentation).
func TestEveryField(t *testing.T) {
	t.Parallel()
	// FollowerStats' Records, Partitions and Lag are the sums of its
	// Topics', exported per topic; a topic's name is a label.
	checkFields(t, "kafkaio.StageStats", stageMetrics)
	checkFields(t, "kafkaio.SinkStats", sinkMetrics)
	checkFields(t, "kafkaio.FollowerStats", followerMetrics, "Records", "Partitions", "Lag", "Topics")
	checkFields(t, "kafkaio.FollowerTopicStats", followerTopicMetrics, "Topic")
	checkFields(t, "mongoio.SinkStats", mongoSinkMetrics)
}

func checkFields[S any](t *testing.T, what string, ms []metric[S], elsewhere ...string) {
	t.Helper()
	typ := reflect.TypeFor[S]()
	now := time.Date(2025, 5, 8, 4, 12, 38, 0, time.UTC)
	for i := range typ.NumField() {
		f := typ.Field(i)
		if slices.Contains(elsewhere, f.Name) {
			continue
		}
		n := 0
		for _, m := range ms {
			if m.field != f.Name {
				continue
			}
			n++
			// The metric reads the field: setting it changes the value.
			var zero, set S
			v := reflect.ValueOf(&set).Elem().Field(i)
			switch v.Kind() {
			case reflect.Uint64:
				v.SetUint(1234567)
			case reflect.Int64:
				v.SetInt(1746677558352)
			default:
				t.Fatalf("%s.%s is a %v: teach the test its values", what, f.Name, v.Kind())
			}
			before, okBefore := m.value(&zero, now)
			after, okAfter := m.value(&set, now)
			assert.True(t, okAfter, "%s: %s is exported when %s is set", what, m.name, f.Name)
			assert.False(t, okBefore && before == after, "%s: %s reads %s", what, m.name, f.Name)
		}
		assert.Positive(t, n, "%s.%s has no metric: add one to the tables of metrics.go and to the package documentation", what, f.Name)
	}
	for _, m := range ms {
		_, ok := typ.FieldByName(m.field)
		assert.True(t, ok, "%s: %s reads %s, which is not a field", what, m.name, m.field)
	}
}

// TestMetricNames checks the names of the tables: unique within their
// subsystem, counters ending in _total and nothing else.
func TestMetricNames(t *testing.T) {
	t.Parallel()
	checkNames(t, stageSubsystem, kinds(stageMetrics))
	checkNames(t, sinkSubsystem, kinds(sinkMetrics))
	checkNames(t, followerSubsystem, merge(kinds(followerMetrics), kinds(followerTopicMetrics)))
	checkNames(t, mongoSinkSubsystem, kinds(mongoSinkMetrics))
}

// kinds returns the names of ms with their types.
func kinds[S any](ms []metric[S]) map[string]prometheus.ValueType {
	out := map[string]prometheus.ValueType{}
	for _, m := range ms {
		_, dup := out[m.name]
		out[m.name] = m.kind
		if dup {
			out[m.name+" (twice)"] = m.kind
		}
	}
	return out
}

var metricName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func checkNames(t *testing.T, subsystem string, ms map[string]prometheus.ValueType) {
	t.Helper()
	require.NotEmpty(t, ms, "%s has metrics", subsystem)
	for name, kind := range ms {
		assert.Regexp(t, metricName, name, "%s: a metric name, and no name twice", subsystem)
		assert.Equal(t, kind == prometheus.CounterValue, strings.HasSuffix(name, "_total"),
			"%s: %s ends in _total if and only if it is a counter", subsystem, name)
	}
}

// merge returns the names of a and b, marking those of both.
func merge(a, b map[string]prometheus.ValueType) map[string]prometheus.ValueType {
	out := maps.Clone(a)
	for name, kind := range b {
		if _, dup := out[name]; dup {
			name += " (twice)"
		}
		out[name] = kind
	}
	return out
}
