package tmprom

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/mongoio"
)

// Stage is what [Collector.AddStage] reads: a *kafkaio.Stage.
type Stage interface{ Stats() kafkaio.StageStats }

// Sink is what [Collector.AddSink] reads: a *kafkaio.Sink of any type.
type Sink interface{ Stats() kafkaio.SinkStats }

// Follower is what [Collector.AddFollower] reads: a *kafkaio.Follower.
type Follower interface{ Stats() kafkaio.FollowerStats }

// MongoSink is what [Collector.AddMongoSink] reads: a *mongoio.Sink or a
// *mongoio.EventSink of any type.
type MongoSink interface{ Stats() mongoio.SinkStats }

// Collector is a prometheus.Collector of the statistics of the stages,
// sinks and followers added to it, each under a name that labels its
// series. It reads their Stats when it is scraped, so that the processing
// goroutines pay nothing, and it feeds the processing latency histograms
// of [Collector.LatencyObserver]. Make one with [New], register it with a
// prometheus.Registerer, and add sources before or after registering it.
// A Collector is safe for concurrent use.
type Collector struct {
	now     func() time.Time
	latency *prometheus.HistogramVec

	stageDescs, sinkDescs, followerDescs, followerTopicDescs, mongoSinkDescs []*prometheus.Desc

	mu         sync.Mutex
	stages     []named[Stage]
	sinks      []named[Sink]
	followers  []named[Follower]
	mongoSinks []named[MongoSink]
}

var _ prometheus.Collector = (*Collector)(nil)

// named is a source and the name that labels its series.
type named[S any] struct {
	name string
	src  S
}

// New returns a Collector with no sources. It returns an error wrapping
// [ErrInvalidOption] for an invalid option.
func New(opts ...Option) (*Collector, error) {
	cfg := config{namespace: DefaultNamespace, now: time.Now, buckets: DefaultLatencyBuckets}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidOption)
		}
		if err := o.apply(&cfg); err != nil {
			return nil, err
		}
	}
	ns := cfg.namespace
	return &Collector{
		now: cfg.now,
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns,
			Subsystem: stageSubsystem,
			Name:      "processing_latency_seconds",
			Help:      "Time from a record's arrival at the stage to the end of the commit that made its results and offset durable, in seconds (kafkaio.WithLatency).",
			Buckets:   slices.Clone(cfg.buckets),
		}, []string{"stage"}),
		stageDescs:         descs(ns, stageSubsystem, stageMetrics, "stage"),
		sinkDescs:          descs(ns, sinkSubsystem, sinkMetrics, "sink"),
		followerDescs:      descs(ns, followerSubsystem, followerMetrics, "follower"),
		followerTopicDescs: descs(ns, followerSubsystem, followerTopicMetrics, "follower", "topic"),
		mongoSinkDescs:     descs(ns, mongoSinkSubsystem, mongoSinkMetrics, "sink"),
	}, nil
}

// AddStage exports the statistics of a kafkaio stage under name, the
// value of the label stage. It returns an error wrapping
// [ErrInvalidOption] for an empty name, a name that is not UTF-8 or a nil
// stage, and one wrapping [ErrDuplicateName] when a stage is registered
// under name already.
func (c *Collector) AddStage(name string, s Stage) error {
	return add(c, &c.stages, "stage", name, s)
}

// AddSink exports the statistics of a kafkaio sink under name, the value
// of the label sink; its errors are AddStage's.
func (c *Collector) AddSink(name string, s Sink) error {
	return add(c, &c.sinks, "sink", name, s)
}

// AddFollower exports the statistics of a kafkaio follower under name,
// the value of the label follower; its errors are AddStage's.
func (c *Collector) AddFollower(name string, f Follower) error {
	return add(c, &c.followers, "follower", name, f)
}

// AddMongoSink exports the statistics of a mongoio sink under name, the
// value of the label sink; its errors are AddStage's. A kafkaio sink and a
// mongoio sink may have the same name: their metrics differ.
func (c *Collector) AddMongoSink(name string, s MongoSink) error {
	return add(c, &c.mongoSinks, "MongoDB sink", name, s)
}

func add[S any](c *Collector, list *[]named[S], kind, name string, src S) error {
	if name == "" || !utf8.ValidString(name) {
		return fmt.Errorf("%w: %s name %q, want non-empty UTF-8", ErrInvalidOption, kind, name)
	}
	if v := reflect.ValueOf(src); !v.IsValid() || (v.Kind() == reflect.Pointer && v.IsNil()) {
		return fmt.Errorf("%w: nil %s %q", ErrInvalidOption, kind, name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if slices.ContainsFunc(*list, func(n named[S]) bool { return n.name == name }) {
		return fmt.Errorf("%w: %s %q", ErrDuplicateName, kind, name)
	}
	*list = append(*list, named[S]{name, src})
	return nil
}

// Remove stops exporting everything added under name (a stage, a sink, a
// follower and a MongoDB sink of that name) and forgets the stage's
// latency histogram; it reports whether there was anything. A stage or a
// sink that is closed for good can be removed so that its series go away,
// and a new one added under the same name.
func (c *Collector) Remove(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.stages) + len(c.sinks) + len(c.followers) + len(c.mongoSinks)
	c.stages = slices.DeleteFunc(c.stages, func(x named[Stage]) bool { return x.name == name })
	c.sinks = slices.DeleteFunc(c.sinks, func(x named[Sink]) bool { return x.name == name })
	c.followers = slices.DeleteFunc(c.followers, func(x named[Follower]) bool { return x.name == name })
	c.mongoSinks = slices.DeleteFunc(c.mongoSinks, func(x named[MongoSink]) bool { return x.name == name })
	removed := c.latency.DeleteLabelValues(name)
	return removed || n != len(c.stages)+len(c.sinks)+len(c.followers)+len(c.mongoSinks)
}

// LatencyObserver returns the function that kafkaio.WithLatency takes,
// feeding the histogram of the processing latency of the stage named
// stage (the name to give AddStage too): each record of a batch is one
// observation of the batch's latency. The histogram is exported from the
// first call on, until Remove(stage).
//
//	stage, err := kafkaio.NewStage("moving", in, op, out,
//		kafkaio.WithLatency(c.LatencyObserver("moving")))
func (c *Collector) LatencyObserver(stage string) func(d time.Duration, records int) {
	h := c.latency.WithLabelValues(stage)
	return func(d time.Duration, records int) {
		s := d.Seconds()
		for range records {
			h.Observe(s)
		}
	}
}

// Describe implements prometheus.Collector: it sends the descriptors of
// every metric the Collector may export.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, ds := range [][]*prometheus.Desc{c.stageDescs, c.sinkDescs, c.followerDescs, c.followerTopicDescs, c.mongoSinkDescs} {
		for _, d := range ds {
			ch <- d
		}
	}
	c.latency.Describe(ch)
}

// Collect implements prometheus.Collector: it reads the Stats of every
// source and sends their metrics, and the latency histograms.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	stages, sinks, followers, mongoSinks := slices.Clone(c.stages), slices.Clone(c.sinks), slices.Clone(c.followers), slices.Clone(c.mongoSinks)
	c.mu.Unlock()
	now := c.now()
	for _, s := range stages {
		st := s.src.Stats()
		send(ch, stageMetrics, c.stageDescs, &st, now, s.name)
	}
	for _, s := range sinks {
		st := s.src.Stats()
		send(ch, sinkMetrics, c.sinkDescs, &st, now, s.name)
	}
	for _, f := range followers {
		st := f.src.Stats()
		send(ch, followerMetrics, c.followerDescs, &st, now, f.name)
		for i := range st.Topics {
			send(ch, followerTopicMetrics, c.followerTopicDescs, &st.Topics[i], now, f.name, st.Topics[i].Topic)
		}
	}
	for _, s := range mongoSinks {
		st := s.src.Stats()
		send(ch, mongoSinkMetrics, c.mongoSinkDescs, &st, now, s.name)
	}
	c.latency.Collect(ch)
}
