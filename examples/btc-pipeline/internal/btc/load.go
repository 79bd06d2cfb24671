package btc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/mongoio"
	"github.com/tidemark-go/tidemark/stream"
)

// Database is the MongoDB database the load stage writes.
const Database = "btc"

// Collection returns the collection of a window's z-scores:
// btc-price-zscore-30s and so on.
func Collection(label string) string { return ZScore.Topic() + "-" + label }

// ZDoc is a document of the load stage: one window's z-score of one price.
type ZDoc struct {
	ID     string    `bson:"_id"` // "<symbol>|<timestamp>", the timestamp as in the topics
	Symbol string    `bson:"symbol"`
	Time   time.Time `bson:"timestamp"`
	Window string    `bson:"window"`
	Price  float64   `bson:"price"`
	Z      *float64  `bson:"zscore_price"` // nil: null
}

// Loader is the load stage's sink: it writes each btc-price-zscore record as
// one ZDoc per window, by upsert on _id (mongoio), so that writing a record
// again (a replay after a crash) changes nothing. Flush returns once every
// document written so far is acknowledged; the stage commits its offsets
// only then.
//
// A document the server refuses for good (mongoio.ErrRejected) cannot be
// written by trying again: Flush logs it at ERROR with its _id and reason,
// counts it (Rejected) and goes on, rather than stopping the pipeline.
type Loader struct {
	sink     *mongoio.Sink[ZDoc]
	labels   []string
	log      *slog.Logger
	records  atomic.Uint64
	rejected atomic.Uint64
	idBuf    []byte
}

// NewLoader returns a Loader writing to db (use Database) for cfg's windows.
func NewLoader(db *mongo.Database, cfg Config, log *slog.Logger, opts ...mongoio.Option) (*Loader, error) {
	if log == nil {
		log = slog.Default()
	}
	sink, err := mongoio.NewSink(db, func(d ZDoc) (mongoio.Route, error) {
		return mongoio.Route{Collection: Collection(d.Window), Doc: d}, nil
	}, append([]mongoio.Option{mongoio.WithLogger(log)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("btc: loader: %w", err)
	}
	return &Loader{sink: sink, labels: NewMovingCodec(cfg).labels, log: log}, nil
}

// Write implements stream.Sink: it buffers the record's documents.
func (l *Loader) Write(ctx context.Context, e stream.Event[ScoredRecord]) error {
	if len(e.Value.Scores) != len(l.labels) {
		return fmt.Errorf("btc: loader: %d z-scores, the pipeline has %d windows", len(e.Value.Scores), len(l.labels))
	}
	l.idBuf = append(append(l.idBuf[:0], e.Key...), '|')
	l.idBuf = AppendTime(l.idBuf, e.Time)
	id := string(l.idBuf)
	tm := e.Time.UTC()
	for i, s := range e.Value.Scores {
		d := ZDoc{ID: id, Symbol: e.Key, Time: tm, Window: l.labels[i], Price: e.Value.Price}
		if s.OK {
			z := s.Z
			d.Z = &z
		}
		if err := l.settle(l.sink.Write(ctx, d)); err != nil {
			return err
		}
	}
	l.records.Add(1)
	return nil
}

// Flush implements stream.Flusher. Documents refused for good are logged
// and counted, not returned (see Loader); any other error is.
func (l *Loader) Flush(ctx context.Context) error { return l.settle(l.sink.Flush(ctx)) }

// settle logs and counts the rejections in err and returns the rest of it.
func (l *Loader) settle(err error) error {
	if !errors.Is(err, mongoio.ErrRejected) {
		return err
	}
	l.rejectedDocs(err)
	if _, ok := err.(*mongoio.RejectedError[ZDoc]); ok {
		return nil
	}
	var rest []error // Flush joined the rejections with other errors
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if _, ok := e.(*mongoio.RejectedError[ZDoc]); !ok {
				rest = append(rest, e)
			}
		}
	}
	return errors.Join(rest...)
}

func (l *Loader) rejectedDocs(err error) {
	var re *mongoio.RejectedError[ZDoc]
	if !errors.As(err, &re) {
		return
	}
	for _, r := range re.Rejections {
		l.rejected.Add(1)
		l.log.Error("btc: MongoDB refused a document for good; it is not written", "collection", r.Collection, "_id", r.Record.ID, "error", r.Err)
	}
}

// Close flushes and releases the sink; the caller disconnects the client.
func (l *Loader) Close(ctx context.Context) error { return l.sink.Close(ctx) }

// LoaderStats counts what a Loader did.
type LoaderStats struct {
	Records  uint64 // btc-price-zscore records written
	Rejected uint64 // documents the server refused for good
	mongoio.SinkStats
}

// Stats returns the counts so far.
func (l *Loader) Stats() LoaderStats {
	return LoaderStats{Records: l.records.Load(), Rejected: l.rejected.Load(), SinkStats: l.sink.Stats()}
}

// NewLoadStage returns the load stage: it reads btc-price-zscore (written by
// the zscore stage in event-time order within each partition, so with no
// lateness) and writes it to MongoDB through loader, effectively once: it
// flushes the loader before it commits its offsets, and a replay after a
// crash upserts the same documents again. Invalid btc-price-zscore records
// (another schema, other windows than cfg's, not UTF-8) go to btc-price-dlq
// with the reason in headers, flushed before the offsets are committed.
func NewLoadStage(cfg Config, loader *Loader, opts ...kafkaio.StageOption) (*kafkaio.Stage, error) {
	return kafkaio.NewStage(LoadGroup,
		kafkaio.Input[ScoredRecord]{Topic: ZScore.Topic(), Codec: NewZScoreCodec(cfg)},
		func() (stream.Operator[ScoredRecord, ScoredRecord], error) { return passThrough[ScoredRecord]{}, nil },
		kafkaio.ToSink[ScoredRecord](loader),
		append([]kafkaio.StageOption{kafkaio.WithDeadLetter(DeadLetterTopic)}, opts...)...)
}

// passThrough is the operator that emits each event as it comes.
type passThrough[T any] struct{}

func (passThrough[T]) Process(e stream.Event[T], out stream.Emitter[T]) { out.Emit(e) }
func (passThrough[T]) Advance(stream.Time, stream.Emitter[T])           {}
func (passThrough[T]) Bounds() stream.Bounds                            { return stream.Bounds{} }
