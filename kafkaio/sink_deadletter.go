package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// HeaderTimestamp is set on a Sink's dead letter that does not carry the
// record's timestamp (the timestamp was what the brokers refused, or the
// dead-letter topic would refuse it too): the record's timestamp, in
// milliseconds since the Unix epoch, in decimal. The dead letter then carries
// the wall clock when it was dead-lettered.
const HeaderTimestamp = "tidemark-timestamp"

// The kinds of refused records (the header tidemark-error-kind of a Sink's
// dead letters).
const (
	kindTooLarge      = "too-large"
	kindTimestamp     = "timestamp"
	kindInvalidRecord = "invalid-record"
	kindPolicy        = "policy"
	kindEncoding      = "encoding"
	kindConfig        = "config"
)

// deadLetters is the state of a Sink with WithDeadLetter.
type deadLetters struct {
	topic string // the dead-letter topic; "" without WithDeadLetter

	mu     sync.RWMutex
	topics map[string]*topicInfo // what the Sink learned of each topic
	admin  sarama.ClusterAdmin   // made on the first topic to learn; never closed (it would close the client)
	fixed  atomic.Pointer[topicInfo]
	own    atomic.Pointer[topicInfo] // the dead-letter topic's

	queue []*outMsg // dead letters to send, guarded by the Sink's mu
	wake  chan struct{}
	stop  chan struct{}

	logged sync.Map // kinds logged once
}

// topicInfo is what a Sink with a dead-letter topic knows of a topic.
type topicInfo struct {
	ready  chan struct{} // closed once lane and limits are set
	lane   *lane
	limits topicLimits
}

// topicLimits are the settings of a topic that make brokers refuse records.
type topicLimits struct {
	maxMessageBytes int           // max.message.bytes; 0 when unknown
	checksTime      bool          // message.timestamp.type is CreateTime and a bound below is set
	before, after   time.Duration // message.timestamp.before.max.ms, .after.max.ms; 0: none
}

// timeError says why the topic refuses timestamp ts at the time now, or nil.
func (l *topicLimits) timeError(topic string, ts, now time.Time) error {
	if !l.checksTime {
		return nil
	}
	switch {
	case l.after > 0 && ts.Sub(now) > l.after:
		return fmt.Errorf("kafkaio: timestamp %s is more than %v ahead of the clock (%s), which topic %q refuses (message.timestamp.after.max.ms)",
			ts.UTC().Format(time.RFC3339Nano), l.after, now.UTC().Format(time.RFC3339Nano), topic)
	case l.before > 0 && now.Sub(ts) > l.before:
		return fmt.Errorf("kafkaio: timestamp %s is more than %v behind the clock (%s), which topic %q refuses (message.timestamp.before.max.ms)",
			ts.UTC().Format(time.RFC3339Nano), l.before, now.UTC().Format(time.RFC3339Nano), topic)
	}
	return nil
}

func (s *Sink[T]) startDeadLetters(topic string) {
	s.dead.topic = topic
	s.dead.topics = make(map[string]*topicInfo)
	s.dead.wake = make(chan struct{}, 1)
	s.dead.stop = make(chan struct{})
	go s.sendDeadLetters()
}

func (s *Sink[T]) stopDeadLetters() {
	if s.dead.stop != nil {
		close(s.dead.stop)
	}
}

// admit learns the limits of m's topic (and of the dead-letter topic) on the
// first Write to it, gives m the topic's lane, and turns m into its dead
// letter when the topic would refuse it.
func (s *Sink[T]) admit(ctx context.Context, m *outMsg) error {
	if s.dead.own.Load() == nil {
		dl, err := s.topicInfo(ctx, s.dead.topic)
		if err != nil {
			return err
		}
		s.dead.own.Store(dl)
	}
	ti := s.dead.fixed.Load()
	if ti == nil || s.route != nil {
		var err error
		if ti, err = s.topicInfo(ctx, m.msg.Topic); err != nil {
			return err
		}
		if s.route == nil {
			s.dead.fixed.Store(ti)
		}
	}
	m.lane = ti.lane
	size := m.msg.ByteSize(s.version)
	if size > ti.lane.max {
		var err error
		if ti.lane == s.main {
			err = fmt.Errorf("kafkaio: the record is %d bytes, more than Producer.MaxMessageBytes (%d)", size, ti.lane.max)
		} else {
			err = fmt.Errorf("kafkaio: the record is %d bytes, more than topic %q takes (max.message.bytes %d, less %d for the batch header)",
				size, m.msg.Topic, ti.limits.maxMessageBytes, recordBatchOverhead)
		}
		s.deadLetterOf(m, kindTooLarge, err, size, time.Now())
		return nil
	}
	if ti.limits.checksTime {
		now := time.Now()
		if err := ti.limits.timeError(m.msg.Topic, m.msg.Timestamp, now); err != nil {
			s.deadLetterOf(m, kindTimestamp, err, size, now)
		}
	}
	return nil
}

// topicInfo returns what the Sink knows of topic, learning it first if no
// Write has: it waits for that under ctx.
func (s *Sink[T]) topicInfo(ctx context.Context, topic string) (*topicInfo, error) {
	d := &s.dead
	d.mu.RLock()
	ti := d.topics[topic]
	d.mu.RUnlock()
	if ti == nil {
		d.mu.Lock()
		if ti = d.topics[topic]; ti == nil {
			ti = &topicInfo{ready: make(chan struct{})}
			d.topics[topic] = ti
			// On a goroutine of its own, so that a Write whose context ends
			// leaves it to the next.
			go s.learn(topic, ti)
		}
		d.mu.Unlock()
	}
	select {
	case <-ti.ready:
		return ti, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("kafkaio: learning the limits of topic %q: %w", topic, ctx.Err())
	}
}

// learn reads topic's settings and chooses its lane: the main one, or one
// whose batches stay within the topic's max.message.bytes. When the
// settings cannot be read, records to the topic are checked against the
// client's limit only.
func (s *Sink[T]) learn(topic string, ti *topicInfo) {
	defer close(ti.ready)
	ti.lane = s.main
	lim, err := s.describe(topic)
	if err != nil {
		if !errors.Is(err, sarama.ErrClosedClient) {
			s.log.Warn("kafkaio: cannot read the topic's settings; its records are checked against Producer.MaxMessageBytes only",
				"topic", topic, "error", err)
		}
		return
	}
	ti.limits = lim
	if lim.maxMessageBytes > 0 {
		if limit := max(min(s.main.max, lim.maxMessageBytes-recordBatchOverhead), 1); limit < s.main.max {
			ti.lane = s.laneFor(limit)
		}
	}
}

// describe reads the settings of topic that make brokers refuse records.
func (s *Sink[T]) describe(topic string) (topicLimits, error) {
	d := &s.dead
	d.mu.Lock()
	admin := d.admin
	if admin == nil {
		var err error
		if admin, err = sarama.NewClusterAdminFromClient(s.client); err != nil {
			d.mu.Unlock()
			return topicLimits{}, err
		}
		d.admin = admin
	}
	d.mu.Unlock()
	results, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: topic}}, sarama.DescribeConfigsOptions{})
	if err != nil {
		return topicLimits{}, err
	}
	var entries []sarama.ConfigEntry
	for _, r := range results {
		if r.Name != topic {
			continue
		}
		if r.ErrorCode != sarama.ErrNoError {
			return topicLimits{}, fmt.Errorf("%w: %s", r.ErrorCode, r.ErrorMsg)
		}
		entries = append(entries, r.Configs...)
	}
	var lim topicLimits
	var difference time.Duration
	createTime, before, after := false, time.Duration(-1), time.Duration(-1)
	for _, e := range entries {
		switch e.Name {
		case "max.message.bytes":
			if n, err := strconv.Atoi(e.Value); err == nil && n > 0 {
				lim.maxMessageBytes = n
			}
		case "message.timestamp.type":
			createTime = e.Value == "CreateTime"
		case "message.timestamp.before.max.ms":
			before = millisSetting(e.Value)
		case "message.timestamp.after.max.ms":
			after = millisSetting(e.Value)
		case "message.timestamp.difference.max.ms": // before Kafka 3.6: both ways
			difference = millisSetting(e.Value)
		}
	}
	if before < 0 {
		before = difference
	}
	if after < 0 {
		after = difference
	}
	lim.before, lim.after = max(before, 0), max(after, 0)
	lim.checksTime = createTime && (lim.before > 0 || lim.after > 0)
	return lim, nil
}

// millisSetting parses a setting in milliseconds; 0 means none (Kafka's
// Long.MAX_VALUE, or a value that does not parse).
func millisSetting(v string) time.Duration {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n >= math.MaxInt64/int64(time.Millisecond) {
		return 0
	}
	return time.Duration(n) * time.Millisecond
}

// laneFor returns the lane whose producer's Producer.MaxMessageBytes is
// limit, making it on the Sink's client with a copy of its config. When that
// fails, or the Sink is closed, it returns the main lane.
func (s *Sink[T]) laneFor(limit int) *lane {
	s.lanesMu.Lock()
	defer s.lanesMu.Unlock()
	for _, l := range s.lanes {
		if l.max == limit {
			return l
		}
	}
	if s.lanesClosed {
		return s.main
	}
	c := *s.client.Config()
	c.Producer.MaxMessageBytes = limit
	prod, err := sarama.NewAsyncProducerFromClient(&configClient{Client: s.client, cfg: &c})
	if err != nil {
		s.log.Warn("kafkaio: cannot make a producer for a topic's smaller max.message.bytes; its batches may be refused whole",
			"max_message_bytes", limit, "error", err)
		return s.main
	}
	l := &lane{prod: prod, max: limit, done: make(chan struct{})}
	s.lanes = append(s.lanes, l)
	go s.acks(l)
	return l
}

// configClient is a client with another config: a producer made from it
// uses its connections and metadata, and that config.
type configClient struct {
	sarama.Client
	cfg *sarama.Config
}

func (c *configClient) Config() *sarama.Config { return c.cfg }

// refused turns a record the brokers refused for good into its dead letter
// and queues it.
func (s *Sink[T]) refused(m *outMsg, pe *sarama.ProducerError) {
	size := m.msg.ByteSize(s.version)
	err := fmt.Errorf("kafkaio: %s/%d refused the record: %w", pe.Msg.Topic, pe.Msg.Partition, pe.Err)
	s.deadLetterOf(m, refusalKind(pe.Err), err, size, time.Now())
	s.queueDeadLetter(m)
}

// deadLetterOf turns m, a record refused for reason (of the given kind), of
// size bytes, into its dead letter, on the dead-letter topic's lane.
func (s *Sink[T]) deadLetterOf(m *outMsg, kind string, reason error, size int, now time.Time) {
	dl := s.dead.own.Load()
	orig := m.msg
	hs := make([]sarama.RecordHeader, 0, 6)
	hs = append(hs,
		sarama.RecordHeader{Key: []byte(HeaderError), Value: []byte(reason.Error())},
		sarama.RecordHeader{Key: []byte(HeaderErrorKind), Value: []byte(kind)},
		sarama.RecordHeader{Key: []byte(HeaderOutputTopic), Value: []byte(orig.Topic)},
		sarama.RecordHeader{Key: []byte(HeaderSize), Value: strconv.AppendInt(nil, int64(size), 10)},
	)
	m.dead, m.output, m.kind, m.restamped, m.lane = true, orig.Topic, kind, false, dl.lane
	m.msg = sarama.ProducerMessage{Topic: s.dead.topic, Key: orig.Key, Value: &m.val, Headers: hs,
		Timestamp: orig.Timestamp, Partition: -1, Metadata: m}
	if kind == kindTimestamp || dl.limits.timeError(s.dead.topic, orig.Timestamp, now) != nil {
		s.restamp(m, now)
	}
	if over := m.msg.ByteSize(s.version) - m.lane.max; over > 0 {
		full := len(m.val.b)
		m.msg.Headers = append(m.msg.Headers, sarama.RecordHeader{Key: []byte(HeaderTruncated), Value: strconv.AppendInt(nil, int64(full), 10)})
		over = m.msg.ByteSize(s.version) - m.lane.max
		m.val.b = m.val.b[:max(full-over, 0)]
	}
	s.logOnce("refused "+kind, func() {
		s.log.Warn("kafkaio: the brokers refuse a record for good; it goes to the dead-letter topic (logged once per kind; see SinkStats.DeadLettered)",
			"topic", orig.Topic, "dead_letter", s.dead.topic, "kind", kind, "size", size, "reason", reason)
	})
}

// restamp makes dead letter m carry the wall clock, and its own timestamp
// in HeaderTimestamp.
func (s *Sink[T]) restamp(m *outMsg, now time.Time) {
	m.msg.Headers = append(m.msg.Headers, sarama.RecordHeader{Key: []byte(HeaderTimestamp), Value: strconv.AppendInt(nil, m.msg.Timestamp.UnixMilli(), 10)})
	m.msg.Timestamp = now.UTC().Truncate(time.Millisecond)
	m.restamped = true
}

// queueDeadLetter hands m to the goroutine that sends dead letters: the
// acknowledgement goroutines must not block on a producer's input.
func (s *Sink[T]) queueDeadLetter(m *outMsg) {
	s.mu.Lock()
	s.dead.queue = append(s.dead.queue, m)
	s.mu.Unlock()
	select {
	case s.dead.wake <- struct{}{}:
	default:
	}
}

// sendDeadLetters sends the queued dead letters, in the order they were
// queued, until the Sink is closed.
func (s *Sink[T]) sendDeadLetters() {
	for {
		select {
		case <-s.dead.wake:
		case <-s.dead.stop:
			return
		}
		for {
			s.mu.Lock()
			q := s.dead.queue
			s.dead.queue = nil
			s.mu.Unlock()
			if len(q) == 0 {
				break
			}
			for _, m := range q {
				m.lane.prod.Input() <- &m.msg
			}
		}
	}
}

// deadLetterFailed handles a dead letter the brokers did not take. One that
// failed retriably is sent again after a backoff (250 ms doubling to 2 s),
// for up to the time an outage may hold records, without holding the
// Sink's Writes back as an outage of its records does: dead letters have no
// order to keep. One refused for its timestamp goes again with the wall
// clock. Any other is lost.
func (s *Sink[T]) deadLetterFailed(m *outMsg, err error) {
	if retriable(err) {
		if m.attempts == 0 {
			m.failedAt = time.Now()
		}
		if time.Since(m.failedAt) < s.holdFor {
			wait := min(250*time.Millisecond<<min(m.attempts, 3), 2*time.Second)
			m.attempts++
			m.msg = sarama.ProducerMessage{Topic: m.msg.Topic, Key: m.msg.Key, Value: m.msg.Value, Headers: m.msg.Headers,
				Timestamp: m.msg.Timestamp, Partition: -1, Metadata: m}
			time.AfterFunc(wait, func() {
				s.stats.resent.Add(1)
				s.queueDeadLetter(m)
			})
			return
		}
	}
	if errors.Is(err, sarama.ErrInvalidTimestamp) && !m.restamped {
		m.msg = sarama.ProducerMessage{Topic: m.msg.Topic, Key: m.msg.Key, Value: m.msg.Value, Headers: m.msg.Headers,
			Timestamp: m.msg.Timestamp, Partition: -1, Metadata: m}
		s.restamp(m, time.Now())
		s.queueDeadLetter(m)
		return
	}
	s.deadLetterLost(m, err)
}

// deadLetterLost counts and logs (once per kind of error) a refused record
// whose dead letter could not be written, and lets it go.
func (s *Sink[T]) deadLetterLost(m *outMsg, err error) {
	s.stats.deadLetterFailed.Add(1)
	kind := refusalKind(err)
	s.logOnce("lost "+kind, func() {
		s.log.Error("kafkaio: a record the brokers refuse could not be written to the dead-letter topic either; it is dropped (logged once per kind; see SinkStats.DeadLetterFailed)",
			"topic", m.output, "dead_letter", s.dead.topic, "kind", m.kind, "dead_letter_error_kind", kind, "error", err)
	})
	s.release(&m.msg)
}

func (s *Sink[T]) logOnce(key string, log func()) {
	if _, done := s.dead.logged.LoadOrStore(key, true); !done {
		log()
	}
}

// refusalKind names why the brokers (or sarama) refuse a record: the header
// tidemark-error-kind.
func refusalKind(err error) string {
	var encoding sarama.PacketEncodingError
	var config sarama.ConfigurationError
	var kerr sarama.KError
	switch {
	case errors.As(err, &encoding):
		return kindEncoding
	case errors.As(err, &config):
		return kindConfig
	case errors.As(err, &kerr):
		switch kerr {
		case sarama.ErrMessageSizeTooLarge, sarama.ErrMessageSetSizeTooLarge, sarama.ErrInvalidMessageSize:
			return kindTooLarge
		case sarama.ErrInvalidTimestamp:
			return kindTimestamp
		case sarama.ErrInvalidRecord, sarama.ErrInvalidMessage:
			return kindInvalidRecord
		case sarama.ErrPolicyViolation:
			return kindPolicy
		}
		return "kafka-error-" + strconv.Itoa(int(kerr))
	}
	return fmt.Sprintf("%T", err)
}
