package tmprom

import (
	"fmt"
	"math"
	"regexp"
	"time"
)

// DefaultNamespace is the first part of every metric name unless
// [WithNamespace] says otherwise: tidemark_stage_records_total.
const DefaultNamespace = "tidemark"

// DefaultLatencyBuckets are the upper bounds, in seconds, of the buckets of
// the processing latency histogram unless [WithLatencyBuckets] says
// otherwise: 1 ms to about 33 s, each twice the one before.
var DefaultLatencyBuckets = []float64{
	0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128,
	0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384, 32.768,
}

// An Option configures a [Collector]; [New] checks it.
type Option interface{ apply(*config) error }

type option func(*config) error

func (o option) apply(c *config) error { return o(c) }

type config struct {
	namespace string
	now       func() time.Time
	buckets   []float64
}

// metricPrefix is what a metric name may begin with: Prometheus's metric
// name characters, without the colon reserved for recording rules.
var metricPrefix = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// WithNamespace makes every metric name begin with namespace and an
// underscore instead of "tidemark_": WithNamespace("app") exports
// app_stage_records_total. namespace must be a valid start of a Prometheus
// metric name (letters, digits and underscores, not beginning with a
// digit), and not empty: the names stay prefixed. To add labels to every
// series (an instance, a job), register the collector with
// prometheus.WrapRegistererWith.
func WithNamespace(namespace string) Option {
	return option(func(c *config) error {
		if !metricPrefix.MatchString(namespace) {
			return fmt.Errorf("%w: namespace %q, want letters, digits and underscores, not beginning with a digit", ErrInvalidOption, namespace)
		}
		c.namespace = namespace
		return nil
	})
}

// WithClock makes the collector read the wall clock with now instead of
// time.Now, for the watermark delay: tests use a fixed clock. now must not
// be nil.
func WithClock(now func() time.Time) Option {
	return option(func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		c.now = now
		return nil
	})
}

// WithLatencyBuckets sets the upper bounds, in seconds, of the buckets of
// the processing latency histogram (see [Collector.LatencyObserver]):
// at least one, finite, positive and increasing. The default is
// [DefaultLatencyBuckets].
func WithLatencyBuckets(bounds ...float64) Option {
	return option(func(c *config) error {
		if len(bounds) == 0 {
			return fmt.Errorf("%w: no latency buckets", ErrInvalidOption)
		}
		for i, b := range bounds {
			if math.IsNaN(b) || math.IsInf(b, 0) || b <= 0 || (i > 0 && b <= bounds[i-1]) {
				return fmt.Errorf("%w: latency buckets %v, want finite, positive and increasing bounds", ErrInvalidOption, bounds)
			}
		}
		c.buckets = append([]float64(nil), bounds...)
		return nil
	})
}
