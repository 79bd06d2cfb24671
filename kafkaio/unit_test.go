package kafkaio

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/streamtest"
	"github.com/xdg-go/scram"
)

type price struct {
	Symbol    string  `json:"symbol"`
	Price     float64 `json:"price"`
	Timestamp string  `json:"timestamp"`
}

func priceTime(p *price) (stream.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, p.Timestamp)
	if err != nil {
		return 0, err
	}
	return stream.TimeOf(t), nil
}

func TestJSONDecode(t *testing.T) {
	const ts stream.Time = 1_746_677_558_352
	byValue := JSON[price]{Time: priceTime, Key: func(p *price) (string, error) {
		if p.Symbol == "" {
			return "", errors.New("no symbol")
		}
		return p.Symbol, nil
	}}
	for _, tc := range []struct {
		name  string
		codec Codec[price]
		key   string
		value string
		ts    stream.Time
		want  stream.Event[price]
		kind  string // "" means no error
	}{
		{
			name: "record key and timestamp", codec: JSON[price]{}, key: "BTCUSDT", ts: ts,
			value: `{"symbol":"BTCUSDT","price":99190.48,"timestamp":"x"}`,
			want:  stream.Event[price]{Key: "BTCUSDT", Time: ts, Value: price{"BTCUSDT", 99190.48, "x"}},
		},
		{
			name: "key and time from the value", codec: byValue, key: "ignored", ts: 1,
			value: `{"symbol":"BTCUSDT","price":1,"timestamp":"2025-05-08T06:12:38.352+02:00"}`,
			want:  stream.Event[price]{Key: "BTCUSDT", Time: ts, Value: price{"BTCUSDT", 1, "2025-05-08T06:12:38.352+02:00"}},
		},
		{name: "not JSON", codec: JSON[price]{}, value: `nope`, ts: ts, kind: "syntax"},
		{name: "truncated", codec: JSON[price]{}, value: `{"symbol":`, ts: ts, kind: "syntax"},
		{name: "empty", codec: JSON[price]{}, value: ``, ts: ts, kind: "syntax"},
		{name: "trailing data", codec: JSON[price]{}, value: `{} {}`, ts: ts, kind: "syntax"},
		{name: "wrong type", codec: JSON[price]{}, value: `{"price":"high"}`, ts: ts, kind: "type"},
		{name: "not an object", codec: JSON[price]{}, value: `[1,2]`, ts: ts, kind: "type"},
		{name: "unknown field", codec: JSON[price]{DisallowUnknownFields: true}, value: `{"volume":1}`, ts: ts, kind: "json"},
		{name: "no timestamp", codec: JSON[price]{}, value: `{}`, ts: stream.MinTime, kind: "time"},
		{name: "bad time", codec: byValue, value: `{"symbol":"A","timestamp":"yesterday"}`, ts: ts, kind: "time"},
		{name: "no key", codec: byValue, value: `{"timestamp":"2025-05-08T04:12:38Z"}`, ts: ts, kind: "key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.codec.Decode([]byte(tc.key), []byte(tc.value), tc.ts)
			if tc.kind == "" {
				require.NoError(t, err, "Decode")
				assert.Equal(t, tc.want, got, "event")
				return
			}
			var de *DecodeError
			require.ErrorAs(t, err, &de, "a DecodeError")
			assert.Equal(t, tc.kind, de.Kind, "kind of %v", err)
			assert.Equal(t, tc.kind, errorKind(err), "errorKind")
		})
	}
	assert.Equal(t, "*errors.errorString", errorKind(errors.New("x")), "kind of a plain error")
}

func TestJSONAppendValue(t *testing.T) {
	c := JSON[price]{}
	dst := []byte("prefix:")
	got, err := c.AppendValue(dst, stream.Event[price]{Key: "k", Value: price{"A<B", 1.5, "t"}})
	require.NoError(t, err, "AppendValue")
	assert.Equal(t, `prefix:{"symbol":"A<B","price":1.5,"timestamp":"t"}`, string(got), "appended JSON without newline or HTML escaping")

	_, err = c.AppendValue(nil, stream.Event[price]{Value: price{Price: math.NaN()}})
	assert.Error(t, err, "NaN is not JSON")

	back, err := c.Decode([]byte("k"), got[len("prefix:"):], 5)
	require.NoError(t, err, "decode what was encoded")
	assert.Equal(t, price{"A<B", 1.5, "t"}, back.Value, "round trip")
}

func TestRaw(t *testing.T) {
	v := []byte("payload")
	e, err := Raw{}.Decode([]byte("key"), v, 42)
	require.NoError(t, err, "Decode")
	assert.Equal(t, stream.Event[[]byte]{Key: "key", Time: 42, Value: []byte("payload")}, e, "event")
	v[0] = 'X'
	assert.Equal(t, "payload", string(e.Value), "Decode copies the value")
	got, err := Raw{}.AppendValue([]byte("a"), e)
	require.NoError(t, err, "AppendValue")
	assert.Equal(t, "apayload", string(got), "AppendValue")
	_, err = Raw{}.Decode(nil, nil, stream.MinTime)
	assert.Error(t, err, "no timestamp")
}

func TestNewConfig(t *testing.T) {
	cfg, err := NewConfig()
	require.NoError(t, err, "defaults")
	assert.True(t, cfg.Producer.Idempotent, "idempotent")
	assert.Equal(t, sarama.WaitForAll, cfg.Producer.RequiredAcks, "acks=all")
	assert.Equal(t, 1, cfg.Net.MaxOpenRequests, "one request in flight")
	assert.True(t, cfg.Producer.Return.Successes && cfg.Producer.Return.Errors, "returns")
	assert.False(t, cfg.Consumer.Offsets.AutoCommit.Enable, "auto-commit off")
	assert.Equal(t, sarama.OffsetOldest, cfg.Consumer.Offsets.Initial, "oldest")
	assert.False(t, cfg.Metadata.AllowAutoTopicCreation, "no auto-creation")
	assert.Equal(t, "tidemark", cfg.ClientID, "client id")
	assert.Equal(t, sarama.CompressionNone, cfg.Producer.Compression, "no compression")
	assert.False(t, cfg.Net.TLS.Enable || cfg.Net.SASL.Enable, "no TLS, no SASL")

	tlsCfg := &tls.Config{ServerName: "kafka", MinVersion: tls.VersionTLS13}
	for _, tc := range []struct {
		name  string
		opt   ConfigOption
		check func(t *testing.T, c *sarama.Config)
	}{
		{"TLS", WithTLS(tlsCfg), func(t *testing.T, c *sarama.Config) {
			assert.True(t, c.Net.TLS.Enable, "enabled")
			assert.Same(t, tlsCfg, c.Net.TLS.Config, "config")
		}},
		{"TLS default", WithTLS(nil), func(t *testing.T, c *sarama.Config) {
			assert.True(t, c.Net.TLS.Enable, "enabled")
			assert.Equal(t, uint16(tls.VersionTLS12), c.Net.TLS.Config.MinVersion, "TLS 1.2 at least")
		}},
		{"SASL PLAIN", WithSASL(SASLPlain, "u", "p"), func(t *testing.T, c *sarama.Config) {
			assert.True(t, c.Net.SASL.Enable && c.Net.SASL.Handshake, "enabled")
			assert.Equal(t, sarama.SASLMechanism(sarama.SASLTypePlaintext), c.Net.SASL.Mechanism, "mechanism")
			assert.Equal(t, "u", c.Net.SASL.User, "user")
			assert.Equal(t, "p", c.Net.SASL.Password, "password")
			assert.Nil(t, c.Net.SASL.SCRAMClientGeneratorFunc, "no SCRAM")
		}},
		{"SASL SCRAM-SHA-256", WithSASL(SASLScramSHA256, "u", "p"), func(t *testing.T, c *sarama.Config) {
			assert.Equal(t, sarama.SASLMechanism(sarama.SASLTypeSCRAMSHA256), c.Net.SASL.Mechanism, "mechanism")
			require.NotNil(t, c.Net.SASL.SCRAMClientGeneratorFunc, "SCRAM client")
			assert.NotSame(t, c.Net.SASL.SCRAMClientGeneratorFunc(), c.Net.SASL.SCRAMClientGeneratorFunc(), "a client per conversation")
		}},
		{"SASL SCRAM-SHA-512", WithSASL(SASLScramSHA512, "u", "p"), func(t *testing.T, c *sarama.Config) {
			assert.Equal(t, sarama.SASLMechanism(sarama.SASLTypeSCRAMSHA512), c.Net.SASL.Mechanism, "mechanism")
			require.NotNil(t, c.Net.SASL.SCRAMClientGeneratorFunc, "SCRAM client")
		}},
		{"zstd", WithCompression(sarama.CompressionZSTD), func(t *testing.T, c *sarama.Config) {
			assert.Equal(t, sarama.CompressionZSTD, c.Producer.Compression, "codec")
		}},
		{"batch", WithBatch(1<<20, 1000, 5*time.Millisecond), func(t *testing.T, c *sarama.Config) {
			assert.Equal(t, 1<<20, c.Producer.Flush.Bytes, "bytes")
			assert.Equal(t, 1000, c.Producer.Flush.Messages, "messages")
			assert.Equal(t, 5*time.Millisecond, c.Producer.Flush.Frequency, "frequency")
		}},
		{"client id", WithClientID("moving"), func(t *testing.T, c *sarama.Config) {
			assert.Equal(t, "moving", c.ClientID, "client id")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewConfig(tc.opt)
			require.NoError(t, err, "NewConfig")
			require.NoError(t, c.Validate(), "sarama accepts it")
			tc.check(t, c)
		})
	}

	for _, tc := range []struct {
		name string
		opt  ConfigOption
		want error
	}{
		{"unknown SASL mechanism", WithSASL("GSSAPI", "u", "p"), ErrInvalidOption},
		{"SASL without password", WithSASL(SASLScramSHA256, "u", ""), ErrInvalidOption},
		{"SASL without user", WithSASL(SASLPlain, "", "p"), ErrInvalidOption},
		{"unknown compression", WithCompression(sarama.CompressionCodec(42)), ErrInvalidOption},
		{"negative batch", WithBatch(-1, 0, 0), ErrInvalidOption},
		{"empty client id", WithClientID(""), ErrInvalidOption},
		{"nil config func", WithConfig(nil), ErrInvalidOption},
		{"sarama rejects", WithConfig(func(c *sarama.Config) { c.Net.MaxOpenRequests = 5 }), ErrInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewConfig(tc.opt)
			assert.ErrorIs(t, err, tc.want, "NewConfig error")
		})
	}
}

// TestSCRAMClient runs sarama's SCRAM client side, as WithSASL configures it,
// against xdg-go's SCRAM server: a right password authenticates, a wrong one
// does not.
func TestSCRAMClient(t *testing.T) {
	for _, mech := range []sarama.SASLMechanism{SASLScramSHA256, SASLScramSHA512} {
		for _, tc := range []struct {
			password string
			ok       bool
		}{{"s3cret", true}, {"wrong", false}} {
			t.Run(string(mech)+"/"+tc.password, func(t *testing.T) {
				cfg, err := NewConfig(WithSASL(mech, "alice", tc.password))
				require.NoError(t, err, "NewConfig")
				hash := scram.SHA256
				if mech == SASLScramSHA512 {
					hash = scram.SHA512
				}
				creds, err := hash.NewClient("alice", "s3cret", "")
				require.NoError(t, err, "server credentials")
				stored, err := creds.GetStoredCredentialsWithError(scram.KeyFactors{Salt: "NaCl-salt", Iters: 4096})
				require.NoError(t, err, "stored credentials")
				srv, err := hash.NewServer(func(user string) (scram.StoredCredentials, error) {
					if user != "alice" {
						return scram.StoredCredentials{}, errors.New("unknown user")
					}
					return stored, nil
				})
				require.NoError(t, err, "server")

				client := cfg.Net.SASL.SCRAMClientGeneratorFunc()
				require.NoError(t, client.Begin("alice", tc.password, ""), "Begin")
				server := srv.NewConversation()
				msg, err := client.Step("")
				require.NoError(t, err, "client-first")
				var authErr error
				for !client.Done() {
					reply, err := server.Step(msg)
					if err != nil {
						authErr = err
						break
					}
					if msg, err = client.Step(reply); err != nil {
						authErr = err
						break
					}
				}
				if tc.ok {
					require.NoError(t, authErr, "authentication")
					assert.True(t, server.Valid(), "server accepts the proof")
					assert.True(t, client.Done(), "client done")
				} else {
					assert.Error(t, authErr, "a wrong password is refused")
					assert.False(t, server.Valid(), "server refuses")
				}
			})
		}
	}
	_, err := (&scramClient{hash: scram.HashGeneratorFcn(sha256.New)}).Step("")
	assert.Error(t, err, "Step before Begin")
}

// identityOp is an operator factory for validation tests.
func identityOp() (stream.Operator[tick, tick], error) { return identity[tick]{}, nil }

func copyTick(dst *tick, src tick) { *dst = src }

func TestOptionValidation(t *testing.T) {
	codec := JSON[tick]{}
	cfg, err := NewConfig()
	require.NoError(t, err, "config")
	brokers := WithBrokers([]string{"127.0.0.1:1"}, cfg)
	for _, tc := range []struct {
		name string
		new  func() error
		want error
	}{
		{"stage: no brokers", func() error {
			_, err := NewStage("g", Input[tick]{Topic: "t", Decoder: codec}, identityOp, ToTopic("o", codec))
			return err
		}, ErrInvalidOption},
		{"stage: empty group", func() error {
			_, err := NewStage("", Input[tick]{Topic: "t", Decoder: codec}, identityOp, ToTopic("o", codec), brokers)
			return err
		}, ErrInvalidOption},
		{"stage: empty topic", func() error {
			_, err := NewStage("g", Input[tick]{Decoder: codec}, identityOp, ToTopic("o", codec), brokers)
			return err
		}, ErrInvalidOption},
		{"stage: nil codec", func() error {
			_, err := NewStage("g", Input[tick]{Topic: "t"}, identityOp, ToTopic("o", codec), brokers)
			return err
		}, ErrInvalidOption},
		{"stage: negative lateness", func() error {
			_, err := NewStage("g", Input[tick]{Topic: "t", Decoder: codec, Lateness: -1}, identityOp, ToTopic("o", codec), brokers)
			return err
		}, ErrInvalidOption},
		{"stage: nil operator factory", func() error {
			_, err := NewStage[tick, tick]("g", Input[tick]{Topic: "t", Decoder: codec}, nil, ToTopic("o", codec), brokers)
			return err
		}, ErrInvalidOption},
		{"stage: the factory fails", func() error {
			_, err := NewStage("g", Input[tick]{Topic: "t", Decoder: codec},
				func() (stream.Operator[tick, tick], error) { return nil, errors.New("bad windows") }, ToTopic("o", codec), brokers)
			if err == nil || !strings.Contains(err.Error(), "bad windows") {
				return fmt.Errorf("want the factory's error, got %v", err)
			}
			return ErrInvalidOption
		}, ErrInvalidOption},
		{"stage: output without topic", func() error {
			_, err := NewStage("g", Input[tick]{Topic: "t", Decoder: codec}, identityOp, ToTopic("", codec), brokers)
			return err
		}, ErrInvalidOption},
		{"stage: output without codec", func() error {
			_, err := NewStage[tick, tick]("g", Input[tick]{Topic: "t", Decoder: codec}, identityOp, ToTopic[tick]("o", nil), brokers)
			return err
		}, ErrInvalidOption},
		{"stage: zero commit interval", func() error {
			_, err := NewStage("g", Input[tick]{Topic: "t", Decoder: codec}, identityOp, ToTopic("o", codec), brokers, WithCommitInterval(0))
			return err
		}, ErrInvalidOption},
		{"stage: commit interval not below the transaction timeout", func() error {
			_, err := NewStage("g", Input[tick]{Topic: "t", Decoder: codec}, identityOp, ToTopic("o", codec), brokers,
				WithCommitInterval(10*time.Second), WithTransactionTimeout(10*time.Second))
			return err
		}, ErrInvalidOption},
		{"stage: nil latency observer", func() error {
			_, err := NewStage("g", Input[tick]{Topic: "t", Decoder: codec}, identityOp, ToTopic("o", codec), brokers, WithLatency(nil))
			return err
		}, ErrInvalidOption},
		{"stage: negative commit records", func() error {
			_, err := NewStage("g", Input[tick]{Topic: "t", Decoder: codec}, identityOp, ToTopic("o", codec), brokers, WithCommitRecords(-1))
			return err
		}, ErrInvalidOption},
		{"stage: zero batch", func() error {
			_, err := NewStage("g", Input[tick]{Topic: "t", Decoder: codec}, identityOp, ToTopic("o", codec), brokers, WithMaxBatch(0))
			return err
		}, ErrInvalidOption},
		{"stage: empty instance id", func() error {
			_, err := NewStage("g", Input[tick]{Topic: "t", Decoder: codec}, identityOp, ToTopic("o", codec), brokers, WithInstanceID(""))
			return err
		}, ErrInvalidOption},
		{"stage: empty dead-letter topic", func() error {
			_, err := NewStage("g", Input[tick]{Topic: "t", Decoder: codec}, identityOp, ToTopic("o", codec), brokers, WithDeadLetter(""))
			return err
		}, ErrInvalidOption},
		{"stage: dead-letter topic is an input", func() error {
			_, err := NewStage("g", Input[tick]{Topic: "t", Decoder: codec}, identityOp, ToTopic("o", codec), brokers, WithDeadLetter("t"))
			return err
		}, ErrInvalidOption},
		{"stage: transaction timeout too short", func() error {
			_, err := NewStage("g", Input[tick]{Topic: "t", Decoder: codec}, identityOp, ToTopic("o", codec), brokers, WithTransactionTimeout(time.Millisecond))
			return err
		}, ErrInvalidOption},
		{"stage: transaction timeout not below the session timeout", func() error {
			_, err := NewStage("g", Input[tick]{Topic: "t", Decoder: codec}, identityOp, ToTopic("o", codec), brokers,
				WithTransactionTimeout(time.Hour))
			return err
		}, ErrInvalidOption},
		{"stage: both inputs read one topic", func() error {
			_, err := NewTwoInputStage("g", Input[tick]{Topic: "t", Decoder: codec}, Input[tick]{Topic: "t", Decoder: codec},
				func() (stream.TwoInput[tick, tick, stream.Pair[tick, tick]], error) {
					return stream.NewJoin(stream.JoinConfig[tick, tick]{CopyLeft: copyTick, CopyRight: copyTick})
				}, ToSink[stream.Pair[tick, tick]](&streamtest.Recorder[stream.Pair[tick, tick]]{}), brokers)
			return err
		}, ErrInvalidOption},
		{"brokers without addresses", func() error {
			_, err := NewStage("g", Input[tick]{Topic: "t", Decoder: codec}, identityOp, ToTopic("o", codec), WithBrokers(nil, nil))
			return err
		}, ErrInvalidOption},
		{"sink: no topic", func() error {
			_, err := NewSink[tick](nil, codec, brokers)
			return err
		}, ErrInvalidOption},
		{"sink: empty topic", func() error {
			_, err := NewSink[tick](nil, codec, brokers, WithTopic(""))
			return err
		}, ErrInvalidOption},
		{"sink: nil codec", func() error {
			_, err := NewSink[tick](nil, nil, brokers, WithTopic("t"))
			return err
		}, ErrInvalidOption},
		{"sink: nil router", func() error {
			_, err := NewSink[tick](nil, codec, brokers, WithRouter[tick](nil))
			return err
		}, ErrInvalidOption},
		{"sink: router of another type", func() error {
			_, err := NewSink[tick](nil, codec, brokers, WithRouter(func(stream.Event[string]) string { return "t" }))
			return err
		}, ErrInvalidOption},
		{"sink: nil client and no brokers", func() error {
			_, err := NewSink[tick](nil, codec, WithTopic("t"))
			return err
		}, ErrInvalidOption},
		{"sink: config without idempotence", func() error {
			c := sarama.NewConfig()
			c.Producer.Return.Successes = true
			_, err := NewSink[tick](nil, codec, WithBrokers([]string{"127.0.0.1:1"}, c), WithTopic("t"))
			return err
		}, ErrInvalidConfig},
		{"sink: config without successes", func() error {
			c, _ := NewConfig()
			c.Producer.Return.Successes = false
			_, err := NewSink[tick](nil, codec, WithBrokers([]string{"127.0.0.1:1"}, c), WithTopic("t"))
			return err
		}, ErrInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.ErrorIs(t, tc.new(), tc.want, "constructor error")
		})
	}
}
