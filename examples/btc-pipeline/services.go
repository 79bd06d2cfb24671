package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/IBM/sarama"
	"go.mongodb.org/mongo-driver/v2/mongo"
	mongoopts "go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/mongotest"
)

// services are the Kafka brokers and the MongoDB URI a command uses, and
// the embedded servers it started, if any.
type services struct {
	brokers  []string
	mongoURI string
	kafka    *kafkatest.Cluster
	mongo    *mongotest.Server
}

// startEmbedded starts the embedded broker (when kafka) and store (when
// mongo) with their data under dir.
func startEmbedded(dir string, kafka, mongoToo bool, kafkaPort, mongoPort int, log *slog.Logger) (*services, error) {
	s := &services{}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if kafka {
		kdir := filepath.Join(dir, "kafka")
		if err := os.MkdirAll(kdir, 0o755); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
		opts := []kafkatest.Option{kafkatest.WithDataDir(kdir), kafkatest.WithLogger(quiet)}
		if kafkaPort != 0 {
			opts = append(opts, kafkatest.WithPorts(kafkaPort))
		}
		k, err := kafkatest.NewCluster(opts...)
		if err != nil {
			return nil, fmt.Errorf("embedded Kafka (port %d): %w", kafkaPort, err)
		}
		s.kafka, s.brokers = k, k.Addrs()
		log.Info("embedded Kafka-protocol broker (kfake) started", "brokers", s.brokers[0], "data", kdir)
	}
	if mongoToo {
		mdir := filepath.Join(dir, "mongo")
		opts := []mongotest.Option{mongotest.WithDataDir(mdir), mongotest.WithLogger(quiet)}
		if mongoPort != 0 {
			opts = append(opts, mongotest.WithPort(mongoPort))
		}
		m, err := mongotest.NewServer(opts...)
		if err != nil {
			s.close(log)
			return nil, fmt.Errorf("embedded MongoDB (port %d): %w", mongoPort, err)
		}
		s.mongo, s.mongoURI = m, m.URI()
		log.Info("embedded MongoDB-compatible store (FerretDB on SQLite) started", "uri", s.mongoURI, "data", mdir)
	}
	return s, nil
}

// close stops the embedded servers; the broker saves its state first.
func (s *services) close(log *slog.Logger) {
	if s.mongo != nil {
		if err := s.mongo.Close(); err != nil {
			log.Warn("embedded MongoDB: close", "error", err)
		}
	}
	if s.kafka != nil {
		_ = s.kafka.Close()
	}
}

// services runs the embedded broker and store on fixed ports until ctx is
// done.
func (o *options) services(ctx context.Context) error {
	if len(o.brokers) > 0 {
		o.log.Warn("services starts the embedded broker: --brokers (TIDEMARK_BROKERS) is ignored", "brokers", o.brokers)
	}
	s, err := startEmbedded(o.dataDir, true, true, o.kafkaPort, o.mongoPort, o.log)
	if err != nil {
		return err
	}
	defer s.close(o.log)
	if err := o.ensureTopics(ctx, s.brokers); err != nil {
		return err
	}
	abs, _ := filepath.Abs(o.dataDir)
	fmt.Fprintf(o.stderr, `
Embedded services are up (stop with Ctrl-C; the data stays in %s):
  Kafka    %s    (topics %v, %d partition(s) each)
  MongoDB  %s

Run the stages in other terminals, as in the lab:
  go run ./examples/btc-pipeline extract
  go run ./examples/btc-pipeline moving
  go run ./examples/btc-pipeline zscore
  go run ./examples/btc-pipeline bonus
  go run ./examples/btc-pipeline load

`, abs, s.brokers[0], btc.Topics(), max(o.cfg.Partitions, 1), s.mongoURI)
	<-ctx.Done()
	o.log.Info("stopping the embedded services")
	return nil
}

// connect returns the services of a single-stage command: the given ones,
// or the services command's fixed ports.
func (o *options) connect() *services {
	s := &services{brokers: o.brokers, mongoURI: o.mongoURI}
	if len(s.brokers) == 0 {
		s.brokers = []string{fmt.Sprintf("127.0.0.1:%d", defaultKafkaPort)}
	}
	if s.mongoURI == "" {
		s.mongoURI = fmt.Sprintf("mongodb://127.0.0.1:%d/", defaultMongoPort)
	}
	return s
}

// saramaConfig is the client configuration of every command, with the TLS
// and SASL of the --kafka-tls* and --kafka-sasl-* flags.
func (o *options) saramaConfig() (*sarama.Config, error) {
	return kafkaio.NewConfig(append([]kafkaio.ConfigOption{kafkaio.WithClientID("btc-pipeline")}, o.kafka.opts...)...)
}

// ensureTopics creates the pipeline's topics that are missing, with
// --partitions partitions each, waiting for the brokers (up to a minute) if
// they are not reachable yet.
func (o *options) ensureTopics(ctx context.Context, brokers []string) error {
	cfg, err := o.saramaConfig()
	if err != nil {
		return err
	}
	var client sarama.Client
	err = waitFor(ctx, o.log, time.Minute, fmt.Sprintf("the Kafka brokers %v", brokers), "Kafka not reachable yet; retrying", func() error {
		var err error
		if client, err = sarama.NewClient(brokers, cfg); err != nil {
			// A refused login or an untrusted certificate stays so: no retries.
			if hint := connectHint(err); hint != "" {
				return permanent{fmt.Errorf("the Kafka brokers %v: %s: %w", brokers, hint, err)}
			}
		}
		return err
	}, "brokers", brokers)
	if err != nil {
		return err
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return err
	}
	if err := kafkaio.EnsureTopics(ctx, admin, btc.TopicSpecs(o.cfg.Partitions)); err != nil {
		if errors.Is(err, kafkaio.ErrTopicMismatch) {
			return fmt.Errorf("%w (the topics exist with another partition count: give --partitions that count, or delete them)", err)
		}
		return err
	}
	return nil
}

// connectMongo connects to uri and checks the server answers.
// A store that is not reachable yet is waited for, with capped backoff and a
// log line per attempt, for up to mongoWait, as ensureTopics waits for Kafka.
func connectMongo(ctx context.Context, uri string, log *slog.Logger) (*mongo.Client, error) {
	c, err := mongo.Connect(mongoopts.Client().ApplyURI(uri).SetServerSelectionTimeout(2 * time.Second))
	if err != nil {
		return nil, fmt.Errorf("the MongoDB URI %s: %w", redactURI(uri), err)
	}
	err = waitFor(ctx, log, mongoWait, "MongoDB at "+redactURI(uri), "MongoDB not reachable yet; retrying", func() error {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return c.Ping(pctx, nil)
	}, "uri", redactURI(uri))
	if err != nil {
		_ = c.Disconnect(context.Background())
		return nil, err
	}
	return c, nil
}

// mongoWait is how long a command waits for MongoDB at start.
var mongoWait = time.Minute

// permanent marks an error of waitFor's try that waiting cannot fix.
type permanent struct{ error }

// waitFor calls try until it succeeds, for up to wait, logging msg (with
// attrs, the wait and the error) before each new try, which comes after a
// backoff from 250 ms doubling to 5 s. It returns ctx's error once ctx is
// done, a permanent error of try's at once, and try's last error, as what
// not being reachable, once wait has passed.
func waitFor(ctx context.Context, log *slog.Logger, wait time.Duration, what, msg string, try func() error, attrs ...any) error {
	backoff := 250 * time.Millisecond
	deadline := time.Now().Add(wait)
	for {
		err := try()
		var stop permanent
		switch {
		case err == nil:
			return nil
		case errors.As(err, &stop):
			return stop.error
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			return fmt.Errorf("%s: not reachable: %w", what, err)
		}
		log.Warn(msg, append(attrs, "retry_in", backoff, "error", err)...)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// redactURI returns a connection URI for logs and messages: without its
// password, and without any query (which can hold credentials too).
func redactURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(a MongoDB URI that does not parse)"
	}
	u.RawQuery = ""
	return u.Redacted()
}
