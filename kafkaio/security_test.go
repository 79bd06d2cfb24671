package kafkaio

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidemark-go/tidemark/stream"
	"github.com/twmb/franz-go/pkg/kfake"
)

// startKfake starts a kfake cluster with options embedded does not expose
// (SASL, TLS).
func startKfake(t *testing.T, opts ...kfake.Opt) *cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	require.NoError(t, err, "kfake")
	t.Cleanup(c.Close)
	return &cluster{addrs: c.ListenAddrs(), owner: t}
}

// roundTrip produces one event with a Sink, passes it through an
// exactly-once stage (a group member, a transactional producer and a replay
// reader) and reads the result back, every client built from cfg.
func roundTrip(t *testing.T, k *cluster, cfg *sarama.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sarama.NewClusterAdmin(k.addrs, cfg)
	require.NoError(t, err, "admin")
	defer admin.Close()
	in, out := name(t, "in"), name(t, "out")
	require.NoError(t, EnsureTopics(ctx, admin, []TopicSpec{{Name: in, Partitions: 1}, {Name: out, Partitions: 1}}), "EnsureTopics")

	sink, err := NewSink(nil, JSON[tick]{}, WithBrokers(k.addrs, cfg), WithTopic(in))
	require.NoError(t, err, "NewSink")
	want := stream.Event[tick]{Key: "k", Time: 1234, Value: tick{N: 7}}
	require.NoError(t, sink.Write(ctx, want), "Write")
	// A later event makes the first one final (lateness 0).
	require.NoError(t, sink.Write(ctx, stream.Event[tick]{Key: "k", Time: 2000, Value: tick{N: 8}}), "Write")
	require.NoError(t, sink.Flush(ctx), "Flush")
	require.NoError(t, sink.Close(context.Background()), "close sink")

	group := name(t, "group")
	stage, err := NewStage(group, Input[tick]{Topic: in, Decoder: JSON[tick]{}}, identityOp, ToTopic(out, JSON[tick]{}),
		WithBrokers(k.addrs, cfg), WithCommitInterval(50*time.Millisecond), WithTransactionTimeout(5*time.Second))
	require.NoError(t, err, "NewStage")
	done := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx)
	go func() { done <- stage.Run(runCtx) }()
	require.Eventually(t, func() bool { return stage.Stats().Emitted == 1 && stage.Stats().Commits > 0 }, 20*time.Second, 10*time.Millisecond,
		"the stage passes the first event on")
	stop()
	require.NoError(t, <-done, "Run")

	c, err := sarama.NewConsumer(k.addrs, cfg)
	require.NoError(t, err, "consumer")
	defer c.Close()
	pc, err := c.ConsumePartition(out, 0, sarama.OffsetOldest)
	require.NoError(t, err, "consume")
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		got, err := JSON[tick]{}.Decode(m.Key, m.Value, stream.TimeOf(m.Timestamp))
		require.NoError(t, err, "decode")
		assert.Equal(t, want, got, "the event came back")
	case <-ctx.Done():
		t.Fatal("no record in the output topic")
	}
}

func TestSASL(t *testing.T) {
	for _, mech := range []sarama.SASLMechanism{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		t.Run(string(mech), func(t *testing.T) {
			k := startKfake(t, kfake.EnableSASL(), kfake.Superuser(string(mech), "alice", "s3cret"))
			cfg := k.config(t, WithSASL(mech, "alice", "s3cret"))
			roundTrip(t, k, cfg)

			bad := k.config(t, WithSASL(mech, "alice", "wrong"), WithConfig(func(c *sarama.Config) { c.Metadata.Retry.Max = 0 }))
			_, err := sarama.NewClient(k.addrs, bad)
			require.Error(t, err, "a wrong password is refused")
			assert.True(t, errors.Is(err, sarama.ErrSASLAuthenticationFailed) || errors.Is(err, sarama.ErrOutOfBrokers),
				"authentication error: %v", err)
		})
	}
}

func TestTLS(t *testing.T) {
	serverCfg, clientCfg := selfSigned(t)
	k := startKfake(t, kfake.TLS(serverCfg))
	roundTrip(t, k, k.config(t, WithTLS(clientCfg)))

	t.Run("SASL PLAIN over TLS", func(t *testing.T) {
		k := startKfake(t, kfake.TLS(serverCfg), kfake.EnableSASL(), kfake.Superuser(string(SASLPlain), "bob", "pw"))
		roundTrip(t, k, k.config(t, WithTLS(clientCfg), WithSASL(SASLPlain, "bob", "pw")))
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		cfg := k.config(t, WithTLS(&tls.Config{MinVersion: tls.VersionTLS12}), WithConfig(func(c *sarama.Config) { c.Metadata.Retry.Max = 0 }))
		_, err := sarama.NewClient(k.addrs, cfg)
		assert.Error(t, err, "a certificate from an unknown authority is refused")
	})
}

// selfSigned returns a server config with a fresh certificate for 127.0.0.1
// and a client config that trusts it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err, "key")
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kfake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err, "certificate")
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err, "parse certificate")
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	return server, client
}

// TestSecuredBroker runs the round trip against the SASL_SSL and
// SASL_PLAINTEXT listeners of scripts/kafka/broker.sh started with
// TIDEMARK_KAFKA_SECURITY=sasl_ssl (the integration tier): every mechanism
// over TLS, SCRAM without TLS, a client certificate; and a wrong password
// and an unknown CA are refused with errors that say so. Subtest kafka skips
// without the variables broker.sh prints.
func TestSecuredBroker(t *testing.T) {
	t.Run("kafka", func(t *testing.T) {
		env := map[string]string{}
		for _, v := range []string{"TIDEMARK_KAFKA_SASL_SSL_BROKERS", "TIDEMARK_KAFKA_SASL_PLAINTEXT_BROKERS", "TIDEMARK_KAFKA_CA",
			"TIDEMARK_KAFKA_CLIENT_CERT", "TIDEMARK_KAFKA_CLIENT_KEY", "TIDEMARK_KAFKA_SASL_USER", "TIDEMARK_KAFKA_SASL_PASSWORD"} {
			if env[v] = os.Getenv(v); env[v] == "" {
				t.Skipf("%s not set: start the broker with TIDEMARK_KAFKA_SECURITY=sasl_ssl scripts/kafka/broker.sh start and export what it prints", v)
			}
		}
		user, password := env["TIDEMARK_KAFKA_SASL_USER"], env["TIDEMARK_KAFKA_SASL_PASSWORD"]
		ca, err := os.ReadFile(env["TIDEMARK_KAFKA_CA"])
		require.NoError(t, err, "CA")
		roots := x509.NewCertPool()
		require.True(t, roots.AppendCertsFromPEM(ca), "CA certificate")
		trusted := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
		ssl := &cluster{addrs: strings.Split(env["TIDEMARK_KAFKA_SASL_SSL_BROKERS"], ","), owner: t}
		plain := &cluster{addrs: strings.Split(env["TIDEMARK_KAFKA_SASL_PLAINTEXT_BROKERS"], ","), owner: t}
		noRetry := WithConfig(func(c *sarama.Config) { c.Metadata.Retry.Max = 0 })

		for _, mech := range []sarama.SASLMechanism{SASLScramSHA512, SASLScramSHA256} {
			t.Run("SASL_SSL "+string(mech), func(t *testing.T) {
				roundTrip(t, ssl, ssl.config(t, WithTLS(trusted), WithSASL(mech, user, password)))
			})
		}
		t.Run("SASL_SSL PLAIN with a client certificate", func(t *testing.T) {
			pair, err := tls.LoadX509KeyPair(env["TIDEMARK_KAFKA_CLIENT_CERT"], env["TIDEMARK_KAFKA_CLIENT_KEY"])
			require.NoError(t, err, "client certificate")
			c := trusted.Clone()
			c.Certificates = []tls.Certificate{pair}
			roundTrip(t, ssl, ssl.config(t, WithTLS(c), WithSASL(SASLPlain, user, password)))
		})
		t.Run("SASL_PLAINTEXT SCRAM-SHA-512", func(t *testing.T) {
			roundTrip(t, plain, plain.config(t, WithSASL(SASLScramSHA512, user, password)))
		})
		t.Run("wrong password", func(t *testing.T) {
			for _, mech := range []sarama.SASLMechanism{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
				_, err := sarama.NewClient(ssl.addrs, ssl.config(t, WithTLS(trusted), WithSASL(mech, user, password+"x"), noRetry))
				require.Error(t, err, "%s: a wrong password is refused", mech)
				assert.ErrorIs(t, err, sarama.ErrSASLAuthenticationFailed, "%s", mech)
				assert.NotContains(t, err.Error(), password, "%s: the error holds no password", mech)
			}
		})
		t.Run("unknown CA", func(t *testing.T) {
			_, other := selfSigned(t)
			_, err := sarama.NewClient(ssl.addrs, ssl.config(t, WithTLS(other), WithSASL(SASLScramSHA512, user, password), noRetry))
			var verr *tls.CertificateVerificationError
			assert.ErrorAs(t, err, &verr, "the broker's certificate is not trusted")
		})
	})
}
