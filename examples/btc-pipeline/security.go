package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/IBM/sarama"

	"github.com/tidemark-go/tidemark/kafkaio"
)

// The environment variables of the SASL login. The password has no flag:
// a command line shows in ps and in /proc to every user of the machine.
const (
	saslUserEnv     = "TIDEMARK_KAFKA_SASL_USER"
	saslPasswordEnv = "TIDEMARK_KAFKA_SASL_PASSWORD"
)

// kafkaSecurity are the --kafka-tls* and --kafka-sasl-* flags of the
// commands that talk to Kafka, and the client options they make.
type kafkaSecurity struct {
	tls          bool
	ca           string
	cert, key    string
	insecure     bool
	mechanism    string
	user         string
	passwordFile string

	opts     []kafkaio.ConfigOption // made by validate
	warnings []string               // logged once the logger exists
}

func (k *kafkaSecurity) flags(fs *flag.FlagSet) {
	fs.BoolVar(&k.tls, "kafka-tls", false, "connect to Kafka over TLS, checking the brokers' certificates (the other --kafka-tls-* flags imply it)")
	fs.StringVar(&k.ca, "kafka-tls-ca", "", "PEM `file` of the CA certificates that sign the brokers' certificates; empty: the system's")
	fs.StringVar(&k.cert, "kafka-tls-cert", "", "PEM `file` of a client certificate, for brokers that ask for one (with --kafka-tls-key)")
	fs.StringVar(&k.key, "kafka-tls-key", "", "PEM `file` of the client certificate's private key")
	fs.BoolVar(&k.insecure, "kafka-tls-insecure-skip-verify", false, "do not check the brokers' certificates: for tests only, anyone on the path can read and change the traffic")
	fs.StringVar(&k.mechanism, "kafka-sasl-mechanism", "", "SASL `mechanism`: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN (sends the password as is: use it with TLS); empty: no SASL")
	fs.StringVar(&k.user, "kafka-sasl-user", os.Getenv(saslUserEnv), "SASL user (env "+saslUserEnv+")")
	fs.StringVar(&k.passwordFile, "kafka-sasl-password-file", "", "`file` holding the SASL password (trailing newlines are dropped); default: the environment variable "+
		saslPasswordEnv+". There is no password flag: command lines are visible to every user of the machine")
}

// validate checks the flags, reads the files they name and makes the
// client options. Its errors name the files, never their contents.
func (k *kafkaSecurity) validate(cmd string, brokers []string) error {
	k.opts, k.warnings = nil, nil
	if k.ca != "" || k.cert != "" || k.key != "" || k.insecure {
		k.tls = true
	}
	if k.mechanism == "" && k.passwordFile != "" {
		return errors.New("--kafka-sasl-password-file needs --kafka-sasl-mechanism")
	}
	if cmd == "all" && len(brokers) == 0 && (k.tls || k.mechanism != "") {
		return errors.New("--kafka-tls and --kafka-sasl-mechanism are for the brokers of --brokers: the embedded broker of all speaks plaintext on 127.0.0.1 only")
	}
	if k.tls {
		c, err := k.tlsConfig()
		if err != nil {
			return err
		}
		k.opts = append(k.opts, kafkaio.WithTLS(c))
		if k.insecure {
			k.warnings = append(k.warnings, "--kafka-tls-insecure-skip-verify: the brokers' certificates are not checked; anyone on the path can read and change the traffic, the SASL password included")
		}
	}
	if k.mechanism == "" {
		return nil
	}
	mech := sarama.SASLMechanism(strings.ToUpper(k.mechanism))
	switch mech {
	case kafkaio.SASLScramSHA512, kafkaio.SASLScramSHA256, kafkaio.SASLPlain:
	default:
		return fmt.Errorf("--kafka-sasl-mechanism %q: want SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN", k.mechanism)
	}
	if k.user == "" {
		return fmt.Errorf("--kafka-sasl-mechanism %s needs --kafka-sasl-user (or env %s)", mech, saslUserEnv)
	}
	password, err := k.password()
	if err != nil {
		return err
	}
	if mech == kafkaio.SASLPlain && !k.tls {
		k.warnings = append(k.warnings, "--kafka-sasl-mechanism PLAIN without --kafka-tls: the password crosses the network as is")
	}
	k.opts = append(k.opts, kafkaio.WithSASL(mech, k.user, password))
	return nil
}

// password returns the SASL password: the file's, else the environment's.
func (k *kafkaSecurity) password() (string, error) {
	if k.passwordFile == "" {
		if p := os.Getenv(saslPasswordEnv); p != "" {
			return p, nil
		}
		return "", fmt.Errorf("--kafka-sasl-mechanism %s needs a password: set %s or give --kafka-sasl-password-file", strings.ToUpper(k.mechanism), saslPasswordEnv)
	}
	b, err := os.ReadFile(k.passwordFile)
	if err != nil {
		// os errors name the file and the reason only.
		return "", fmt.Errorf("--kafka-sasl-password-file: %w", err)
	}
	p := strings.TrimRight(string(b), "\r\n")
	if p == "" {
		return "", fmt.Errorf("--kafka-sasl-password-file %s: empty", k.passwordFile)
	}
	return p, nil
}

// tlsConfig returns the client's TLS configuration.
func (k *kafkaSecurity) tlsConfig() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: k.insecure} // a flag for tests, warned about
	if k.ca != "" {
		b, err := os.ReadFile(k.ca)
		if err != nil {
			return nil, fmt.Errorf("--kafka-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--kafka-tls-ca %s: no PEM certificate in it", k.ca)
		}
		c.RootCAs = pool
	}
	switch {
	case k.cert == "" && k.key == "":
	case k.cert == "" || k.key == "":
		return nil, errors.New("--kafka-tls-cert and --kafka-tls-key go together")
	default:
		// crypto/tls's errors say what is wrong with the PEM, not what it
		// holds.
		pair, err := tls.LoadX509KeyPair(k.cert, k.key)
		if err != nil {
			return nil, fmt.Errorf("--kafka-tls-cert %s, --kafka-tls-key %s: %w", k.cert, k.key, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

func (k *kafkaSecurity) logWarnings(log *slog.Logger) {
	for _, w := range k.warnings {
		log.Warn(w)
	}
}

// connectHint explains an error connecting to Kafka that retrying does not
// cure, a refused login or an untrusted certificate; "" for the others.
func connectHint(err error) string {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		header   tls.RecordHeaderError
		alert    tls.AlertError
	)
	switch {
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed):
		return "the brokers refused the SASL login: check --kafka-sasl-mechanism, --kafka-sasl-user and the password (" +
			saslPasswordEnv + " or --kafka-sasl-password-file)"
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid):
		return "the brokers' TLS certificate is not trusted: give the CA that signed it with --kafka-tls-ca"
	case errors.As(err, &header):
		return "the brokers did not answer in TLS: drop --kafka-tls or use their TLS listener's port"
	case errors.As(err, &alert):
		return "the brokers refused the TLS handshake: check --kafka-tls-cert and --kafka-tls-key"
	}
	return ""
}
