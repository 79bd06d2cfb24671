// Package kafkatest runs a Kafka-protocol cluster inside the current
// process, for tests of code that uses Kafka through IBM/sarama (kafkaio's
// stages and sinks, or anything else) and for demos that should need
// nothing but Go. The cluster is kfake (github.com/twmb/franz-go/pkg/kfake)
// behind a small API: start it, hand its addresses to clients, take it down
// and bring it back, make it refuse requests, and create topics, produce
// records and read them back read_committed with sarama's types.
// ProduceWith and ReadCommittedWith do the same through a client of any
// cluster, for the integration tests that run against Apache Kafka.
//
//	func TestMyStage(t *testing.T) {
//		k := kafkatest.New(t, kafkatest.WithTopic("in", 3))
//		// ... run the code under test against k.Addrs() ...
//		recs, err := k.ReadCommitted(t.Context(), "out")
//	}
//
// # What kfake is
//
// kfake speaks the Kafka protocol well enough for sarama to use it as a
// real broker: produce and fetch, consumer groups (join, sync, heartbeat,
// offset commits and fetches), idempotent producers and transactions
// (InitProducerID, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit,
// EndTxn) with read_committed fetches, topic configs, and compression.
// Kafka clients cannot tell it from Apache Kafka for these. It differs in
// what tests rarely see: there is no replication (a partition lives on its
// leader only), no quota throttling, no initial rebalance delay for groups,
// and the minimum group session timeout is 6 s, as in Kafka's default. It
// listens on 127.0.0.1 only, in plaintext; for TLS and SASL use kfake
// directly.
//
// # Faults
//
// [Cluster.Stop], [Cluster.Start] and [Cluster.Restart] take the cluster
// down and bring it back on the same ports with its records, offsets and
// transactions ([WithDataDir] keeps them): a broker restart or an outage as
// clients see it, with every connection dropped. [Cluster.Fail] makes the
// cluster refuse requests of a kind ([OffsetCommit], [Produce], [EndTxn],
// ...) with a Kafka error code, a given number of times. [Cluster.Control]
// is the hook for any other answer: a function that sees each request, in
// the types of franz-go's kmsg, and may answer it itself. [Cluster.Close]
// takes the cluster away for good.
//
// # What belongs here
//
// Running Kafka in a test: the cluster, its faults, and the few record
// helpers a test needs. It is a package of the library (kfake is light: the
// franz-go packages it needs), so that kafkaio's own tests and yours use the
// same kit; the pinned kfake is v0.0.0-20260918054303-01f206a7e32c.
//
// # Conventions
//
// They are package stream's, as in kafkaio and mongoio. Options are With*
// functions, checked by [NewCluster], which returns an error wrapping
// [ErrInvalidOption] for a bad one instead of panicking; ErrInvalidOption
// matches [stream.ErrInvalidOption]. Errors callers branch on are the
// sentinels of errors.go, and the errors of sarama ([sarama.KError]) are
// wrapped, so errors.Is finds them. Methods that do I/O take a context. A
// [Cluster] and a [Fault] are safe for concurrent use.
package kafkatest
