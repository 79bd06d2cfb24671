package kafkaio

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// ConfigOption configures NewConfig.
type ConfigOption interface{ applyConfig(*configBuilder) }

type configBuilder struct {
	errs  []error
	steps []func(*sarama.Config)
}

type configOption func(*configBuilder)

func (f configOption) applyConfig(b *configBuilder) { f(b) }

func step(f func(*sarama.Config)) ConfigOption {
	return configOption(func(b *configBuilder) { b.steps = append(b.steps, f) })
}

func badConfig(format string, args ...any) ConfigOption {
	err := fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...)
	return configOption(func(b *configBuilder) { b.errs = append(b.errs, err) })
}

// NewConfig returns a sarama configuration with the settings the Stage and
// the Sink rely on, then applies opts and validates the result:
//
//   - producer: idempotent (Producer.Idempotent), acks from all in-sync
//     replicas (WaitForAll), Net.MaxOpenRequests = 1, Return.Successes and
//     Return.Errors on, the Java client's murmur2 partitioner (a key lands in
//     the same partition as with Kafka's own clients), no compression, and no
//     linger: a batch leaves as soon as the previous request to its broker is
//     answered, so records that arrive meanwhile share the next batch;
//   - consumer: a group session timeout of 30 s with a heartbeat every 3 s
//     (above a stage's transaction timeout, 10 s by default, as exactly-once
//     requires: a member expelled from its group has lost its open
//     transaction by then), auto-commit off (a stage commits what is done),
//     a new group starts from the oldest offset, errors returned to the
//     stage, which logs them (a stage sets its own assignor, the
//     co-partitioned one, and reads read_committed);
//   - metadata requests never create topics (use EnsureTopics);
//   - ClientID "tidemark", sarama's default protocol Version (Kafka 2.8,
//     which Kafka 4.x brokers accept).
//
// The result may be adjusted further before it is handed to sarama.NewClient
// or WithBrokers.
func NewConfig(opts ...ConfigOption) (*sarama.Config, error) {
	cfg := sarama.NewConfig()
	cfg.ClientID = "tidemark"
	cfg.Metadata.AllowAutoTopicCreation = false

	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Partitioner = sarama.NewMurmur2Partitioner
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Retry.Backoff = 250 * time.Millisecond

	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{NewCoPartitionedStrategy()}
	cfg.Consumer.Group.Session.Timeout = 30 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 3 * time.Second
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Return.Errors = true

	var b configBuilder
	for _, o := range opts {
		if o != nil {
			o.applyConfig(&b)
		}
	}
	if len(b.errs) > 0 {
		return nil, b.errs[0]
	}
	for _, f := range b.steps {
		f(cfg)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return cfg, nil
}

// WithClientID sets the client id brokers log and quota by (default "tidemark").
func WithClientID(id string) ConfigOption {
	if id == "" {
		return badConfig("empty client id")
	}
	return step(func(c *sarama.Config) { c.ClientID = id })
}

// WithTLS encrypts connections with TLS. A nil config means
// &tls.Config{MinVersion: tls.VersionTLS12} with the system's root CAs. Set
// ServerName when the broker addresses are IP addresses that the broker's
// certificate does not name.
func WithTLS(c *tls.Config) ConfigOption {
	if c == nil {
		c = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return step(func(cfg *sarama.Config) {
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = c
	})
}

// SASL mechanisms accepted by WithSASL.
const (
	SASLPlain       = sarama.SASLTypePlaintext   // "PLAIN": the password travels as is; use it with WithTLS
	SASLScramSHA256 = sarama.SASLTypeSCRAMSHA256 // "SCRAM-SHA-256"
	SASLScramSHA512 = sarama.SASLTypeSCRAMSHA512 // "SCRAM-SHA-512"
)

// WithSASL authenticates with SASL: mechanism is SASLPlain, SASLScramSHA256 or
// SASLScramSHA512. SCRAM never sends the password and checks that the broker
// knows it too; PLAIN sends it, so combine PLAIN with WithTLS. The SCRAM client
// is github.com/xdg-go/scram (RFC 5802, SASLprep applied to user and password).
func WithSASL(mechanism sarama.SASLMechanism, user, password string) ConfigOption {
	var gen func() sarama.SCRAMClient
	switch mechanism {
	case SASLPlain:
	case SASLScramSHA256:
		gen = func() sarama.SCRAMClient { return &scramClient{hash: scram.HashGeneratorFcn(sha256.New)} }
	case SASLScramSHA512:
		gen = func() sarama.SCRAMClient { return &scramClient{hash: scram.HashGeneratorFcn(sha512.New)} }
	default:
		return badConfig("SASL mechanism %q (want %s, %s or %s)", mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	if user == "" || password == "" {
		return badConfig("SASL %s needs a user and a password", mechanism)
	}
	return step(func(c *sarama.Config) {
		c.Net.SASL.Enable = true
		c.Net.SASL.Handshake = true
		c.Net.SASL.Mechanism = mechanism
		c.Net.SASL.User = user
		c.Net.SASL.Password = password
		c.Net.SASL.SCRAMClientGeneratorFunc = gen
	})
}

// WithCompression compresses produced batches: sarama.CompressionNone (the
// default), CompressionGZIP, CompressionSnappy, CompressionLZ4 or
// CompressionZSTD, at the codec's default level.
func WithCompression(c sarama.CompressionCodec) ConfigOption {
	switch c {
	case sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy,
		sarama.CompressionLZ4, sarama.CompressionZSTD:
	default:
		return badConfig("compression codec %d", int8(c))
	}
	return step(func(cfg *sarama.Config) {
		cfg.Producer.Compression = c
		cfg.Producer.CompressionLevel = sarama.CompressionLevelDefault
	})
}

// WithBatch tunes producer batching (sarama's Producer.Flush): a batch for a
// broker is sent once it holds bytes bytes or messages records, or frequency
// after its first record, whichever comes first; zero leaves a trigger unset.
// The default, all zero, sends as soon as the previous request to the broker
// is answered. Keep frequency small: Sink.Flush (which stream.Run calls after
// every polled batch) waits for it.
func WithBatch(bytes, messages int, frequency time.Duration) ConfigOption {
	if bytes < 0 || messages < 0 || frequency < 0 {
		return badConfig("negative batch limit (%d bytes, %d messages, %v)", bytes, messages, frequency)
	}
	return step(func(c *sarama.Config) {
		c.Producer.Flush.Bytes = bytes
		c.Producer.Flush.Messages = messages
		c.Producer.Flush.Frequency = frequency
	})
}

// WithConfig runs f on the configuration after the other options, for
// settings this package has no option for.
func WithConfig(f func(*sarama.Config)) ConfigOption {
	if f == nil {
		return badConfig("nil config function")
	}
	return step(f)
}

// scramClient adapts github.com/xdg-go/scram to sarama.SCRAMClient.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (s *scramClient) Begin(user, password, authzID string) error {
	c, err := s.hash.NewClient(user, password, authzID)
	if err != nil {
		return fmt.Errorf("kafkaio: scram: %w", err)
	}
	s.conv = c.NewConversation()
	return nil
}

func (s *scramClient) Step(challenge string) (string, error) {
	if s.conv == nil {
		return "", fmt.Errorf("kafkaio: scram: Step before Begin")
	}
	return s.conv.Step(challenge)
}

func (s *scramClient) Done() bool { return s.conv != nil && s.conv.Done() }
