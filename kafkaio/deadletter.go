package kafkaio

import (
	"cmp"
	"strconv"

	"github.com/IBM/sarama"
)

// Dead-letter headers: a record a stage's codec rejects is forwarded to the
// dead-letter topic (WithDeadLetter) untouched, with its own headers and
// these.
const (
	HeaderError     = "tidemark-error"      // why the record was rejected
	HeaderErrorKind = "tidemark-error-kind" // DecodeError.Kind, or the error's type
	HeaderTopic     = "tidemark-topic"      // the record's original topic
	HeaderPartition = "tidemark-partition"  // its partition, in decimal
	HeaderOffset    = "tidemark-offset"     // its offset, in decimal
	// HeaderTruncated is set, to the value's length in decimal, when the
	// value was cut to fit the producer's Producer.MaxMessageBytes: a
	// record that large was accepted by the input topic but could not be
	// forwarded whole.
	HeaderTruncated = "tidemark-truncated"
	// HeaderOutputTopic names the topic a record could not be written to,
	// when what failed is an output rather than the input: a stage's
	// result, or a record a Sink was given, that the brokers refuse for
	// good.
	HeaderOutputTopic = "tidemark-output-topic"
	// HeaderSize is the size in bytes, in decimal, of the output that could
	// not be written: key, value and headers, as the producer counts them
	// against Producer.MaxMessageBytes.
	HeaderSize = "tidemark-size"
)

// deadLetterRoom is what a dead letter leaves of Producer.MaxMessageBytes
// for its key and headers (and the record's framing) when it must cut the
// value.
const deadLetterRoom = 4096

// deadLetterMessage is the record that forwards m, rejected for err, to the
// dead-letter topic: m untouched, with the reason in headers; cut says its
// value or key was cut to fit.
func deadLetterMessage(m *sarama.ConsumerMessage, err error, kind, topic string, cut bool) *sarama.ProducerMessage {
	hs := make([]sarama.RecordHeader, 0, len(m.Headers)+6)
	for _, h := range m.Headers {
		if h != nil {
			hs = append(hs, *h)
		}
	}
	hs = append(hs,
		sarama.RecordHeader{Key: []byte(HeaderError), Value: []byte(err.Error())},
		sarama.RecordHeader{Key: []byte(HeaderErrorKind), Value: []byte(kind)},
		sarama.RecordHeader{Key: []byte(HeaderTopic), Value: []byte(m.Topic)},
		sarama.RecordHeader{Key: []byte(HeaderPartition), Value: strconv.AppendInt(nil, int64(m.Partition), 10)},
		sarama.RecordHeader{Key: []byte(HeaderOffset), Value: strconv.AppendInt(nil, m.Offset, 10)},
	)
	if cut {
		hs = append(hs, sarama.RecordHeader{Key: []byte(HeaderTruncated), Value: strconv.AppendInt(nil, int64(len(m.Value)), 10)})
	}
	return &sarama.ProducerMessage{Topic: topic, Headers: hs, Timestamp: m.Timestamp, Partition: -1}
}

func (rt *runtime) deadLetter(m *sarama.ConsumerMessage, err error, skip bool) {
	if rt.tx != nil && rt.tx.err() != nil {
		return // the transaction failed: recovery writes it again
	}
	kind := errorKind(err)
	if !rt.kinds[kind] {
		rt.kinds[kind] = true
		rt.log.Warn("kafkaio: rejected record (logged once per kind; see StageStats.Rejected and Ahead)",
			"kind", kind, "topic", m.Topic, "partition", m.Partition, "offset", m.Offset,
			"dead_letter", cmp.Or(rt.st.cfg.deadLetter, "none"), "skip_dead_letter", skip, "error", err)
	}
	if rt.st.cfg.deadLetter == "" || rt.tx == nil || skip {
		return
	}
	rt.sendDeadLetter(m, err, kind, refusedOutput{})
}

// forwardLate writes a late record to topic, untouched, with the headers
// that say where it came from, in the stage's transaction.
func (rt *runtime) forwardLate(m *sarama.ConsumerMessage, topic string) {
	if rt.tx == nil || rt.tx.err() != nil {
		return // the transaction failed: recovery forwards it again
	}
	om := rt.tx.message()
	om.dead = true
	om.key.b = append(om.key.b, m.Key...)
	om.val.b = append(om.val.b, m.Value...)
	hs := make([]sarama.RecordHeader, 0, len(m.Headers)+3)
	for _, h := range m.Headers {
		if h != nil {
			hs = append(hs, *h)
		}
	}
	hs = append(hs,
		sarama.RecordHeader{Key: []byte(HeaderTopic), Value: []byte(m.Topic)},
		sarama.RecordHeader{Key: []byte(HeaderPartition), Value: strconv.AppendInt(nil, int64(m.Partition), 10)},
		sarama.RecordHeader{Key: []byte(HeaderOffset), Value: strconv.AppendInt(nil, m.Offset, 10)})
	om.msg = sarama.ProducerMessage{Topic: topic, Headers: hs, Timestamp: m.Timestamp, Partition: -1}
	if m.Key != nil {
		om.msg.Key = &om.key
	}
	if m.Value != nil {
		om.msg.Value = &om.val
	}
	_ = rt.tx.send(rt.writes, om)
}
