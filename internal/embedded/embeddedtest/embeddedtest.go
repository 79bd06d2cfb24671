// Package embeddedtest starts the services of package embedded for the
// duration of a test: each helper fails the test if the service cannot
// start and stops it in [testing.TB.Cleanup].
//
// It is not public API.
package embeddedtest

import (
	"testing"

	"github.com/tidemark-go/tidemark/internal/embedded"
)

// StartKafka starts an in-process Kafka cluster (see [embedded.NewKafka])
// and closes it when the test ends.
func StartKafka(tb testing.TB, opts ...embedded.KafkaOption) *embedded.Kafka {
	tb.Helper()
	k, err := embedded.NewKafka(opts...)
	if err != nil {
		tb.Fatalf("embeddedtest: start kafka: %v", err)
	}
	tb.Cleanup(func() { _ = k.Close() })
	return k
}

// StartMongo starts an embedded FerretDB (see [embedded.NewMongo]) with its
// data in a fresh [testing.TB.TempDir] and closes it when the test ends.
func StartMongo(tb testing.TB, opts ...embedded.MongoOption) *embedded.Mongo {
	tb.Helper()
	return StartMongoDir(tb, tb.TempDir(), opts...)
}

// StartMongoDir is [StartMongo] with the data in dir, for tests that start
// a second server on the data of a first one.
func StartMongoDir(tb testing.TB, dir string, opts ...embedded.MongoOption) *embedded.Mongo {
	tb.Helper()
	m, err := embedded.NewMongo(dir, opts...)
	if err != nil {
		tb.Fatalf("embeddedtest: start mongo: %v", err)
	}
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Errorf("embeddedtest: close mongo: %v", err)
		}
	})
	return m
}
