package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btctest"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/stream"
)

// kafkaCommands are the commands that talk to Kafka and take the
// --kafka-tls* and --kafka-sasl-* flags.
var kafkaCommands = []string{"all", "ui", "extract", "moving", "zscore", "bonus", "load", "chained"}

// TestKafkaSecurityFlags: the security flags are on every command that talks
// to Kafka (and only there), and their mistakes are usage errors that name
// the flag and never what the files hold.
func TestKafkaSecurityFlags(t *testing.T) {
	const password = "tidemark-pw-flags-Zq7xK2"
	t.Setenv(saslPasswordEnv, password)
	for cmd := range commands {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 0, run(context.Background(), []string{cmd, "--help"}, nil, &stdout, &stderr), "%s --help", cmd)
		help := stdout.String() + stderr.String()
		if cmd == "offline" || cmd == "services" {
			assert.NotContains(t, help, "-kafka-tls", "%s talks to no external Kafka", cmd)
			continue
		}
		for _, f := range []string{"-kafka-tls\n", "-kafka-tls-ca file", "-kafka-tls-cert file", "-kafka-tls-key file",
			"-kafka-tls-insecure-skip-verify", "-kafka-sasl-mechanism mechanism", "-kafka-sasl-user", "-kafka-sasl-password-file file", saslPasswordEnv} {
			assert.Contains(t, help, f, "%s --help", cmd)
		}
		assert.NotContains(t, help, "-kafka-sasl-password ", "%s: no password flag", cmd)
		assert.NotContains(t, help, password, "%s --help shows no password", cmd)
	}

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	certs := newTestCerts(t, dir)
	// A key file that is a PEM block of the right type but not a key: the
	// error must not quote it.
	const keyBody = "VGhpc0lzVGhlU2VjcmV0S2V5Qm9keVRoYXRNdXN0TmV2ZXJCZVByaW50ZWQ"
	badKey := write("bad.key", "-----BEGIN PRIVATE KEY-----\n"+keyBody+"\n-----END PRIVATE KEY-----\n")
	emptyPw := write("empty.pw", "\n")
	noPEM := write("ca.txt", "not a certificate "+password+"\n")
	b := []string{"--brokers", "127.0.0.1:1"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append([]string{"extract", "--kafka-sasl-mechanism", "SCRAM-SHA-1", "--kafka-sasl-user", "u"}, b...), `--kafka-sasl-mechanism "SCRAM-SHA-1": want`},
		{append([]string{"moving", "--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-user", ""}, b...), "needs --kafka-sasl-user"},
		{append([]string{"zscore", "--kafka-sasl-password-file", emptyPw}, b...), "--kafka-sasl-password-file needs --kafka-sasl-mechanism"},
		{append([]string{"bonus", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "u", "--kafka-sasl-password-file", emptyPw}, b...), "empty"},
		{append([]string{"load", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "u", "--kafka-sasl-password-file", filepath.Join(dir, "none")}, b...), "no such file"},
		{append([]string{"ui", "--kafka-tls-ca", noPEM}, b...), "no PEM certificate"},
		{append([]string{"extract", "--kafka-tls-cert", certs.clientCert}, b...), "--kafka-tls-cert and --kafka-tls-key go together"},
		{append([]string{"extract", "--kafka-tls-cert", certs.clientCert, "--kafka-tls-key", badKey}, b...), "--kafka-tls-key " + badKey},
		{[]string{"all", "--kafka-tls"}, "the embedded broker of all speaks plaintext"},
	} {
		var stderr bytes.Buffer
		assert.Equal(t, 2, run(context.Background(), c.args, nil, io.Discard, &stderr), "%q: a usage error", c.args)
		assert.Contains(t, stderr.String(), c.want, "%q", c.args)
		assert.NotContains(t, stderr.String(), keyBody, "%q: the key file's content", c.args)
		assert.NotContains(t, stderr.String(), password, "%q: the password", c.args)
	}

	t.Run("no password", func(t *testing.T) {
		t.Setenv(saslPasswordEnv, "")
		var stderr bytes.Buffer
		args := append([]string{"extract", "--kafka-sasl-mechanism", "scram-sha-256", "--kafka-sasl-user", "u"}, b...)
		assert.Equal(t, 2, run(context.Background(), args, nil, io.Discard, &stderr))
		assert.Contains(t, stderr.String(), "needs a password: set "+saslPasswordEnv+" or give --kafka-sasl-password-file")
	})
}

// TestKafkaSecurity runs stages of the command as processes over TLS with
// SASL: extract (SCRAM-SHA-512, the password from the environment) replays
// a trace into btc-price, moving (PLAIN over TLS with a client certificate,
// the password from a file) computes btc-price-moving, all --brokers
// (SCRAM-SHA-512) the z-scores from both, and ui (SCRAM-SHA-256) shows the
// prices. A wrong password and a certificate from
// an unknown CA fail at once with a message that says so. No output, error
// message, --help text or dashboard response holds the password or the
// client key.
//
// Subtest kfake runs on an in-process Kafka-protocol broker with TLS and
// SASL; subtest kafka on the SASL_SSL listener of scripts/kafka/broker.sh
// started with TIDEMARK_KAFKA_SECURITY=sasl_ssl (the integration tier),
// where it deletes the pipeline's topics and groups first.
func TestKafkaSecurity(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes; not in -short")
	}
	t.Run("kfake", func(t *testing.T) {
		dir := t.TempDir()
		certs := newTestCerts(t, dir)
		const user, password = "btc", "tidemark-pw-kfake-R4nd0m"
		opts := []kfake.Opt{kfake.NumBrokers(1), kfake.TLS(certs.server), kfake.EnableSASL()}
		for _, m := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
			opts = append(opts, kfake.Superuser(m, user, password))
		}
		c, err := kfake.NewCluster(opts...)
		require.NoError(t, err, "kfake")
		t.Cleanup(c.Close)
		testKafkaSecurity(t, securedKafka{brokers: c.ListenAddrs()[0], ca: certs.ca, cert: certs.clientCert, key: certs.clientKey,
			user: user, password: password, hangsUp: true})
	})
	t.Run("kafka", func(t *testing.T) {
		env := map[string]string{}
		for _, name := range []string{"TIDEMARK_KAFKA_BROKERS", "TIDEMARK_KAFKA_SASL_SSL_BROKERS", "TIDEMARK_KAFKA_CA",
			"TIDEMARK_KAFKA_CLIENT_CERT", "TIDEMARK_KAFKA_CLIENT_KEY", saslUserEnv, saslPasswordEnv} {
			if env[name] = os.Getenv(name); env[name] == "" {
				t.Skipf("%s is not set: start the broker with TIDEMARK_KAFKA_SECURITY=sasl_ssl scripts/kafka/broker.sh start and export what it prints", name)
			}
		}
		resetPipeline(t, strings.Split(env["TIDEMARK_KAFKA_BROKERS"], ","))
		testKafkaSecurity(t, securedKafka{brokers: env["TIDEMARK_KAFKA_SASL_SSL_BROKERS"], ca: env["TIDEMARK_KAFKA_CA"],
			cert: env["TIDEMARK_KAFKA_CLIENT_CERT"], key: env["TIDEMARK_KAFKA_CLIENT_KEY"],
			user: env[saslUserEnv], password: env[saslPasswordEnv]})
	})
}

// securedKafka is a listener with TLS and SASL, and how to log in to it.
type securedKafka struct {
	brokers        string
	ca, cert, key  string // PEM files
	user, password string // for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512
	// hangsUp says the broker closes the connection on a failed login
	// instead of answering SASL_AUTHENTICATION_FAILED, as kfake does: a
	// client cannot tell that from a broker going away, and retries.
	hangsUp bool
}

func testKafkaSecurity(t *testing.T, k securedKafka) {
	dir := t.TempDir()
	const wrong = "tidemark-wrong-pw-9vQ3"
	pwFile := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(pwFile, []byte(k.password+"\n"), 0o600))
	wrongFile := filepath.Join(dir, "wrong")
	require.NoError(t, os.WriteFile(wrongFile, []byte(wrong+"\n"), 0o600))
	other := newTestCerts(t, filepath.Join(dir, "other"))

	var outputs []string // everything the processes wrote, and the dashboard's answers
	// The environment has the right password; the processes that must not
	// use it get another.
	env := []string{saslPasswordEnv + "=" + k.password}
	brokers := []string{"--brokers", k.brokers}
	tlsCA := []string{"--kafka-tls-ca", k.ca}

	// The trace, and records of another symbol after it that push the
	// watermark past its last event: moving then has a result for each of
	// the trace's valid events, as offline.
	cfg := btc.DefaultConfig()
	cfg.Partitions = 1 // the commands' default
	lines := readLines(t, "testdata/btc-price.jsonl")
	sum, err := btc.Offline(context.Background(), strings.NewReader(strings.Join(lines, "\n")+"\n"), filepath.Join(dir, "offline"), cfg, quietLog())
	require.NoError(t, err, "offline")
	want := len(readLines(t, filepath.Join(dir, "offline", btc.Moving.FileName())))
	require.NotZero(t, want, "offline's moving records")
	last := stream.MinTime
	dec := btc.NewDecoder()
	for _, l := range lines {
		if p, err := dec.Decode([]byte(l)); err == nil {
			last = max(last, p.Time)
		}
	}
	trace := filepath.Join(dir, "trace.jsonl")
	lines = append(lines, e2eSentinels(cfg, last)...)
	require.NoError(t, os.WriteFile(trace, []byte(strings.Join(lines, "\n")+"\n"), 0o644), "write the trace")
	extract := append([]string{"extract", "--source", "replay:" + trace, "--speed", "0"}, brokers...)

	t.Run("extract SCRAM-SHA-512", func(t *testing.T) {
		code, out := runMain(t, env, time.Minute, concat(extract, tlsCA, []string{"--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-user", k.user})...)
		outputs = append(outputs, out)
		require.Equal(t, 0, code, "exit code; output:\n%s", out)
		assert.Contains(t, out, `msg="extract: done"`, "extract finished")
		assert.Contains(t, out, fmt.Sprintf("records=%d", len(lines)), "every line of the trace was produced")
	})

	t.Run("moving PLAIN and a client certificate", func(t *testing.T) {
		moving := &proc{name: "moving", log: &syncBuffer{}, env: []string{saslPasswordEnv + "=" + wrong}, // the file wins
			args: concat([]string{"moving", "--refresh", "1s"}, brokers, tlsCA, []string{"--kafka-tls-cert", k.cert, "--kafka-tls-key", k.key,
				"--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", k.user, "--kafka-sasl-password-file", pwFile})}
		moving.start(t)
		defer func() { outputs = append(outputs, moving.log.String()) }()
		ccfg, err := kafkaio.NewConfig(kafkaio.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool(t, k.ca)}),
			kafkaio.WithSASL(kafkaio.SASLScramSHA512, k.user, k.password))
		require.NoError(t, err, "config")
		n := countRecords(t, []string{k.brokers}, ccfg, btc.Moving.Topic(), "BTCUSDT", want, time.Minute, moving)
		assert.Equal(t, want, n, "moving records of the trace's symbol (offline: %+v); log:\n%s", sum, moving.log)
		moving.stop(t)
		moving.raceFree(t)
	})

	t.Run("all SCRAM-SHA-512", func(t *testing.T) {
		// The other stages in one process, on the records extract and
		// moving wrote (its own source is empty), with the embedded MongoDB.
		empty := filepath.Join(dir, "empty.jsonl")
		require.NoError(t, os.WriteFile(empty, nil, 0o644))
		all := &proc{name: "all", log: &syncBuffer{}, env: env,
			args: concat([]string{"all", "--source", "replay:" + empty, "--view", "log", "--data-dir", filepath.Join(dir, "data"),
				"--ui-addr", "off", "--metrics-addr", "off"}, brokers, tlsCA, []string{"--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-user", k.user})}
		all.start(t)
		defer func() { outputs = append(outputs, all.log.String()) }()
		ccfg, err := kafkaio.NewConfig(kafkaio.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool(t, k.ca)}),
			kafkaio.WithSASL(kafkaio.SASLScramSHA256, k.user, k.password))
		require.NoError(t, err, "config")
		n := countRecords(t, []string{k.brokers}, ccfg, btc.ZScore.Topic(), "BTCUSDT", want, time.Minute, all)
		assert.Equal(t, want, n, "z-score records of the trace's symbol; log:\n%s", all.log)
		all.stop(t)
		all.raceFree(t)
	})

	t.Run("ui SCRAM-SHA-256", func(t *testing.T) {
		ui := &proc{name: "ui", log: &syncBuffer{}, env: env,
			args: concat([]string{"ui", "--ui-addr", "127.0.0.1:0"}, brokers, tlsCA, []string{"--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-user", k.user})}
		ui.start(t)
		defer func() { outputs = append(outputs, ui.log.String()) }()
		var url string
		require.Eventually(t, func() bool {
			if m := regexp.MustCompile(`dashboard at (http://\S+/)`).FindStringSubmatch(ui.log.String()); m != nil {
				url = m[1]
			}
			return url != ""
		}, 30*time.Second, 20*time.Millisecond, "the dashboard's address is announced; log:\n%s", ui.log)
		outputs = append(outputs, httpGet(t, url))
		var snap string
		assert.Eventually(t, func() bool {
			snap = httpGet(t, url+"api/snapshot")
			return strings.Contains(snap, `"BTCUSDT"`)
		}, 60*time.Second, 250*time.Millisecond, "the dashboard reads the prices through TLS and SASL; log:\n%s", ui.log)
		outputs = append(outputs, snap)
		ui.stop(t)
		ui.raceFree(t)
	})

	// Failures: each ends at once with exit code 1 and a message that says
	// what to fix.
	for _, c := range []struct {
		name  string
		env   []string
		args  []string
		want  string
		login bool // a failed login: see hangsUp
	}{
		{"wrong password SCRAM-SHA-512", []string{saslPasswordEnv + "=" + wrong},
			concat(extract, tlsCA, []string{"--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-user", k.user}), "the brokers refused the SASL login", true},
		{"wrong password PLAIN", env,
			concat(extract, tlsCA, []string{"--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", k.user, "--kafka-sasl-password-file", wrongFile}), "the brokers refused the SASL login", true},
		{"unknown user", env,
			concat(extract, tlsCA, []string{"--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-user", "nobody"}), "the brokers refused the SASL login", true},
		{"untrusted CA", env,
			concat(extract, []string{"--kafka-tls-ca", other.ca, "--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-user", k.user}), "the brokers' TLS certificate is not trusted", false},
		{"system CAs", env,
			concat(extract, []string{"--kafka-tls", "--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-user", k.user}), "the brokers' TLS certificate is not trusted", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.login && k.hangsUp {
				t.Skip("this broker hangs up on a failed login (kfake): the command retries for a minute, as for a broker away")
			}
			start := time.Now()
			code, out := runMain(t, c.env, time.Minute, c.args...)
			outputs = append(outputs, out)
			assert.Equal(t, 1, code, "exit code; output:\n%s", out)
			assert.Less(t, time.Since(start), 30*time.Second, "no retries for a minute")
			assert.Contains(t, out, c.want, "the message")
			assert.Contains(t, out, `level=ERROR msg="btc-pipeline extract failed"`, "one error line")
			assert.NotContains(t, out, "panic", "no crash")
		})
	}

	t.Run("no secret in any output", func(t *testing.T) {
		for _, cmd := range kafkaCommands {
			code, out := runMain(t, env, time.Minute, cmd, "--help")
			require.Equal(t, 0, code, "%s --help: %s", cmd, out)
			outputs = append(outputs, out)
		}
		keyPEM, err := os.ReadFile(k.key)
		require.NoError(t, err, "client key")
		block, _ := pem.Decode(keyPEM)
		require.NotNil(t, block, "client key PEM")
		secrets := map[string]string{"the password": k.password, "the wrong password": wrong}
		for i, line := range strings.Split(strings.TrimSpace(string(keyPEM)), "\n") {
			if !strings.HasPrefix(line, "-----") {
				secrets[fmt.Sprintf("line %d of the client key", i+1)] = line
			}
		}
		require.Greater(t, len(secrets), 2, "the key has a body")
		all := strings.Join(outputs, "\n")
		require.Contains(t, all, `msg="extract: done"`, "the outputs are there")
		for what, s := range secrets {
			if i := strings.Index(all, s); i >= 0 {
				t.Errorf("%s appears in the output: %q", what, all[max(0, i-200):min(len(all), i+len(s)+50)])
			}
		}
	})
}

// runMain runs the command as a process of this test binary with env added
// to the environment, and returns its exit code and output; a run that
// outlasts timeout fails the test.
func runMain(t *testing.T, env []string, timeout time.Duration, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), asMainEnv+"=1"), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%q did not end within %v; output:\n%s", args, timeout, out)
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%q: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// countRecords reads topic's partition 0, read_committed, with cfg until it
// has atLeast records of key or d has passed, and returns how many it read.
// It fails the test if p exits meanwhile.
func countRecords(t *testing.T, addrs []string, cfg *sarama.Config, topic, key string, atLeast int, d time.Duration, p *proc) int {
	t.Helper()
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	var cons sarama.Consumer
	// The topic appears when the stage starts.
	require.True(t, btctest.WaitFor(t, 30*time.Second, func() bool {
		c, err := sarama.NewConsumer(addrs, cfg)
		if err != nil {
			return false
		}
		if parts, err := c.Partitions(topic); err != nil || len(parts) == 0 {
			_ = c.Close()
			return false
		}
		cons = c
		return true
	}), "the topic %s through TLS and SASL; log:\n%s", topic, p.log)
	defer cons.Close()
	pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
	require.NoError(t, err, "consume %s", topic)
	defer pc.Close()
	n := 0
	deadline := time.After(d)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for n < atLeast {
		select {
		case m := <-pc.Messages():
			if string(m.Key) == key {
				n++
			}
		case <-tick.C:
			if done, err := p.exited(); done {
				t.Fatalf("%s exited (%v) after %d records; log:\n%s", p.name, err, n, p.log)
			}
		case <-deadline:
			return n
		}
	}
	return n
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// pool returns a certificate pool holding the PEM file's certificates.
func pool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err, "CA file")
	p := x509.NewCertPool()
	require.True(t, p.AppendCertsFromPEM(b), "CA file %s holds certificates", file)
	return p
}

// testCerts are a fresh CA, a server configuration with a certificate it
// signed for 127.0.0.1 (which asks clients for certificates of the CA and
// checks those it gets), and a client certificate and key, in files.
type testCerts struct {
	ca                    string
	server                *tls.Config
	clientCert, clientKey string
}

func newTestCerts(t *testing.T, dir string) testCerts {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tidemark test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	issue := func(serial int64, tmpl *x509.Certificate) (der []byte, key *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = big.NewInt(serial), caTmpl.NotBefore, caTmpl.NotAfter
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err = x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		require.NoError(t, err)
		return der, key
	}
	serverDER, serverKey := issue(2, &x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	clientDER, clientKey := issue(3, &x509.Certificate{Subject: pkix.Name{CommonName: "tidemark client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	writePEM := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return p
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(clientKey)
	require.NoError(t, err)
	cas := x509.NewCertPool()
	cas.AddCert(caCert)
	return testCerts{
		ca: writePEM("ca.pem", "CERTIFICATE", caDER),
		server: &tls.Config{MinVersion: tls.VersionTLS12, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: cas,
			Certificates: []tls.Certificate{{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}}},
		clientCert: writePEM("client.pem", "CERTIFICATE", clientDER),
		clientKey:  writePEM("client.key", "PRIVATE KEY", keyDER),
	}
}
