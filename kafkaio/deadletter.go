package kafkaio

import (
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
)

// deadLetterMessage is the record that forwards m, rejected for err, to the
// dead-letter topic: m untouched, with the reason in headers.
func deadLetterMessage(m *sarama.ConsumerMessage, err error, kind, topic string) *sarama.ProducerMessage {
	hs := make([]sarama.RecordHeader, 0, len(m.Headers)+5)
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
	return &sarama.ProducerMessage{Topic: topic, Headers: hs, Timestamp: m.Timestamp, Partition: -1}
}
