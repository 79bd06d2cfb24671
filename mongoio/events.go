package mongoio

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/tidemark-go/tidemark/stream"
)

// Documents turns an event into the documents it is written as, appending
// one Route per document to dst: one for most events, several for an event
// spread over collections (the lab writes one z-score per window, each in
// its window's collection). An error refuses the event (ErrInvalidRecord).
type Documents[T any] func(dst []Route, e stream.Event[T]) ([]Route, error)

// EventSink writes the results of a stream to MongoDB: a stream.Sink and
// stream.Flusher of events, fit for a kafkaio stage's ToSink output. Each
// event becomes the documents Documents says, upserted by _id through a
// Sink with the same options, batching, retries and outage handling (see
// the package documentation), so that writing an event again (a replay)
// changes nothing.
//
// What the server refuses for good is reported in stream's terms, so that
// a stage dead-letters the input records of those events and goes on:
// Write returns an error matching stream.ErrRejected (ErrInvalidRecord)
// for an event whose documents cannot be written at all, and buffers none
// of them; Flush returns a *stream.RejectedError naming (key, time) the
// events of which the server refused a document since the last Flush,
// having written everything else, possibly joined with other errors (which
// leave their writes buffered for the next Flush).
//
// An EventSink is safe for concurrent use, as a Sink is.
type EventSink[T any] struct {
	sink *Sink[eventDoc]
	docs Documents[T]

	mu       sync.Mutex
	routes   []Route // scratch for Write
	entries  []entry[eventDoc]
	colls    []string
	pending  []stream.Rejection // refused at flushes inside Write, for the next Flush
	rejected map[eventID]struct{}
}

type eventDoc struct {
	key string
	t   stream.Time
}

type eventID struct {
	key string
	t   stream.Time
}

var (
	_ stream.Sink[int] = (*EventSink[int])(nil)
	_ stream.Flusher   = (*EventSink[int])(nil)
)

// NewEventSink returns an EventSink writing to db the documents docs makes
// of each event. The options are a Sink's.
func NewEventSink[T any](db *mongo.Database, docs Documents[T], opts ...Option) (*EventSink[T], error) {
	if docs == nil {
		return nil, fmt.Errorf("%w: nil Documents", ErrInvalidOption)
	}
	// The route is never called: EventSink prepares each document itself.
	sink, err := NewSink(db, func(eventDoc) (Route, error) { return Route{}, errors.New("unused") }, opts...)
	if err != nil {
		return nil, err
	}
	return &EventSink[T]{sink: sink, docs: docs, rejected: make(map[eventID]struct{})}, nil
}

// Write buffers the documents of e. An error matching stream.ErrRejected
// means none of them could be written, and none is buffered; another error
// comes from a flush that Write made room with (see Flush), and e's
// documents are buffered unless it wraps ErrBufferFull or ErrClosed.
// Rejections found by that flush are reported by the next Flush.
func (s *EventSink[T]) Write(ctx context.Context, e stream.Event[T]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	routes, err := s.docs(s.routes[:0], e)
	s.routes = routes[:0]
	if err != nil {
		return fmt.Errorf("%w: %s@%v: documents: %w", ErrInvalidRecord, e.Key, e.Time, err)
	}
	d := eventDoc{key: e.Key, t: e.Time}
	entries, colls := s.entries[:0], s.colls[:0]
	defer func() {
		clear(entries)
		s.entries, s.colls = entries[:0], colls[:0]
	}()
	for _, r := range routes {
		en, coll, err := prepare(d, r)
		if err != nil {
			clear(routes)
			return fmt.Errorf("%s@%v: %w", e.Key, e.Time, err)
		}
		entries, colls = append(entries, en), append(colls, coll)
	}
	clear(routes)
	var errs []error
	for i := range entries {
		if err := s.sink.enqueue(ctx, entries[i], colls[i]); err != nil {
			errs = append(errs, s.takeRejections(err))
			if errors.Is(err, ErrBufferFull) || errors.Is(err, ErrClosed) {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// Flush writes every buffered document; see EventSink for its errors.
func (s *EventSink[T]) Flush(ctx context.Context) error {
	err := s.sink.Flush(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	rest := s.takeRejections(err)
	if len(s.pending) == 0 {
		return rest
	}
	rej := &stream.RejectedError{Rejections: s.pending}
	s.pending = nil
	clear(s.rejected)
	return errors.Join(rej, rest)
}

// takeRejections keeps the rejections in err for the next Flush and
// returns the rest of err. s.mu is held.
func (s *EventSink[T]) takeRejections(err error) error {
	var re *RejectedError[eventDoc]
	if !errors.As(err, &re) {
		return err
	}
	for _, r := range re.Rejections {
		id := eventID(r.Record)
		if _, seen := s.rejected[id]; seen {
			continue
		}
		s.rejected[id] = struct{}{}
		s.pending = append(s.pending, stream.Rejection{Key: r.Record.key, Time: r.Record.t,
			Err: fmt.Errorf("mongoio: %s/%s: %w", r.Collection, r.ID, r.Err)})
	}
	return rejectedRest(err)
}

// rejectedRest returns what err says besides a *RejectedError.
func rejectedRest(err error) error {
	if _, ok := err.(*RejectedError[eventDoc]); ok {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var rest []error
		for _, e := range j.Unwrap() {
			if r := rejectedRest(e); r != nil {
				rest = append(rest, r)
			}
		}
		return errors.Join(rest...)
	}
	return err
}

// Close flushes and releases the sink, as Sink.Close does; rejections it
// meets are returned as Flush returns them. The caller disconnects the
// client.
func (s *EventSink[T]) Close(ctx context.Context) error {
	err := s.sink.Close(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	rest := s.takeRejections(err)
	if len(s.pending) == 0 {
		return rest
	}
	rej := &stream.RejectedError{Rejections: s.pending}
	s.pending = nil
	// A Close that fails leaves the sink open: a later rejection of the
	// same events is news for the next Flush.
	clear(s.rejected)
	return errors.Join(rej, rest)
}

// Stats returns the counts of the documents written so far.
func (s *EventSink[T]) Stats() SinkStats { return s.sink.Stats() }

// EnsureIndexes creates indexes on a collection of the sink's database, as
// Sink.EnsureIndexes does.
func (s *EventSink[T]) EnsureIndexes(ctx context.Context, collection string, models ...mongo.IndexModel) ([]string, error) {
	return s.sink.EnsureIndexes(ctx, collection, models...)
}
