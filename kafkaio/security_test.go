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

// roundTrip produces one event with a Sink and reads it back with a Source,
// each building its client from cfg.
func roundTrip(t *testing.T, k *cluster, cfg *sarama.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin, err := sarama.NewClusterAdmin(k.addrs, cfg)
	require.NoError(t, err, "admin")
	defer admin.Close()
	topic := name(t, "topic")
	require.NoError(t, EnsureTopics(ctx, admin, []TopicSpec{{Name: topic, Partitions: 1}}), "EnsureTopics")

	sink, err := NewSink(nil, JSON[tick]{}, WithBrokers(k.addrs, cfg), WithTopic(topic))
	require.NoError(t, err, "NewSink")
	want := stream.Event[tick]{Key: "k", Time: 1234, Value: tick{N: 7}}
	require.NoError(t, sink.Write(ctx, want), "Write")
	require.NoError(t, sink.Flush(ctx), "Flush")
	require.NoError(t, sink.Close(), "close sink")

	src, err := NewSource(nil, name(t, "group"), []string{topic}, JSON[tick]{}, WithBrokers(k.addrs, cfg))
	require.NoError(t, err, "NewSource")
	defer src.Close()
	buf := make([]stream.Record[tick], 1)
	for {
		n, err := src.Poll(ctx, buf)
		require.NoError(t, err, "Poll")
		if n == 1 {
			break
		}
	}
	assert.Equal(t, want, buf[0].Event, "the event came back")
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
