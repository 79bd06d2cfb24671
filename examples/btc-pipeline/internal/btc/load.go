package btc

import (
	"fmt"
	"log/slog"
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

// Loader is the load stage's sink: a mongoio.EventSink that writes each
// btc-price-zscore record as one ZDoc per window, by upsert on _id, so that
// writing a record again (a replay after a crash) changes nothing. Flush
// returns once every document written so far is acknowledged; the stage
// commits its offsets only then.
//
// A document the server refuses for good is reported by the EventSink in
// stream's terms (stream.RejectedError), and the stage dead-letters the
// btc-price-zscore record it comes from, as it does any result it cannot
// write: the loader needs no handling of its own.
type Loader struct {
	*mongoio.EventSink[ScoredRecord]
}

// NewLoader returns a Loader writing to db (use Database) for cfg's windows.
func NewLoader(db *mongo.Database, cfg Config, log *slog.Logger, opts ...mongoio.Option) (*Loader, error) {
	if log == nil {
		log = slog.Default()
	}
	labels := NewMovingCodec(cfg).labels
	var idBuf []byte
	docs := func(dst []mongoio.Route, e stream.Event[ScoredRecord]) ([]mongoio.Route, error) {
		if len(e.Value.Scores) != len(labels) {
			return dst, fmt.Errorf("btc: loader: %d z-scores, the pipeline has %d windows", len(e.Value.Scores), len(labels))
		}
		idBuf = append(append(idBuf[:0], e.Key...), '|')
		idBuf = stream.AppendTime(idBuf, e.Time)
		id := string(idBuf)
		tm := e.Time.UTC()
		for i, s := range e.Value.Scores {
			d := ZDoc{ID: id, Symbol: e.Key, Time: tm, Window: labels[i], Price: e.Value.Price}
			if s.OK {
				z := s.Z
				d.Z = &z
			}
			dst = append(dst, mongoio.Route{Collection: Collection(labels[i]), Doc: d})
		}
		return dst, nil
	}
	sink, err := mongoio.NewEventSink(db, docs, append([]mongoio.Option{mongoio.WithLogger(log)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("btc: loader: %w", err)
	}
	return &Loader{EventSink: sink}, nil
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
		kafkaio.Input[ScoredRecord]{Topic: ZScore.Topic(), Decoder: NewZScoreCodec(cfg), Final: true},
		func() (stream.Operator[ScoredRecord, ScoredRecord], error) {
			return stream.Map(func(e stream.Event[ScoredRecord]) ScoredRecord { return e.Value }), nil
		},
		kafkaio.ToSink[ScoredRecord](loader), cfg.stageOptions(opts)...)
}
