package kafkaio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/tidemark-go/tidemark/stream"
)

// Decoder turns Kafka records into events of type T, for a stage's inputs.
//
// Decode turns a record's key, value and timestamp (stream.MinTime when the
// record has none) into an event. The slices are only valid during the call:
// an event that keeps bytes must copy them. A record Decode rejects is counted,
// logged once per kind of error and, if the stage has a dead-letter topic,
// forwarded there untouched; it is never fatal. Return a *DecodeError to name
// the kind of error.
//
// A Stage calls its decoders from its one processing goroutine, for every
// partition it runs: a decoder given to one stage need not be safe for
// concurrent use (it may keep scratch buffers or caches).
type Decoder[T any] interface {
	Decode(key, value []byte, timestamp stream.Time) (stream.Event[T], error)
}

// Encoder turns events of type T into record values, for a stage's outputs
// and a Sink.
//
// AppendValue appends the encoding of e's value to dst and returns the
// extended slice; the record key is always e.Key and the record timestamp
// e.Time. A stage that cannot encode a result dead-letters its input (see
// Results that cannot be written in the package documentation); a Sink's
// Write returns the error.
//
// A Stage calls its encoders from its one processing goroutine, and a Sink
// from the goroutines that call Write: an encoder given to one stage, or
// to a sink written from one goroutine, need not be safe for concurrent
// use.
type Encoder[T any] interface {
	AppendValue(dst []byte, e stream.Event[T]) ([]byte, error)
}

// Codec is both: what a topic written by one stage and read by another
// needs. JSON and Raw are codecs, safe for concurrent use.
type Codec[T any] interface {
	Decoder[T]
	Encoder[T]
}

// DecodeError is what a Codec returns for a record it cannot decode. Kind is a
// short, stable name for the class of error ("syntax", "type", "time", ...):
// a Stage logs the first record of each kind and puts Kind in the
// dead-letter header tidemark-error-kind, and Err.Error() in tidemark-error.
type DecodeError struct {
	Kind string
	Err  error
}

func (e *DecodeError) Error() string { return e.Kind + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

// errorKind names the class of a decode error: the DecodeError's Kind, or the
// dynamic type of the error.
func errorKind(err error) string {
	if de, ok := errors.AsType[*DecodeError](err); ok && de.Kind != "" {
		return de.Kind
	}
	if r, ok := errors.AsType[*refusal](err); ok {
		return r.kind
	}
	return fmt.Sprintf("%T", err)
}

// JSON is a Codec that encodes values as JSON with encoding/json, one object
// per record. The zero value takes the event key from the record key and the
// event time from the record timestamp; set Key and Time to read them from the
// value instead. It is safe for concurrent use.
type JSON[T any] struct {
	// Time returns the event time of a decoded value. Nil means the record's
	// timestamp (a record without one is rejected).
	Time func(v *T) (stream.Time, error)
	// Key returns the event key of a decoded value. Nil means the record key.
	Key func(v *T) (string, error)
	// DisallowUnknownFields rejects objects with fields that T does not have.
	DisallowUnknownFields bool
}

var _ Codec[struct{}] = JSON[struct{}]{}

// Decode implements Codec. Its errors are *DecodeError with the kinds
// "syntax" (not JSON), "type" (a JSON value of the wrong type), "json" (other
// decoding errors), "key" and "time".
func (c JSON[T]) Decode(key, value []byte, ts stream.Time) (stream.Event[T], error) {
	var e stream.Event[T]
	d := json.NewDecoder(bytes.NewReader(value))
	if c.DisallowUnknownFields {
		d.DisallowUnknownFields()
	}
	if err := d.Decode(&e.Value); err != nil {
		return e, jsonError(err)
	}
	if d.More() {
		return e, &DecodeError{Kind: "syntax", Err: errors.New("trailing data after the JSON value")}
	}
	if c.Key != nil {
		k, err := c.Key(&e.Value)
		if err != nil {
			return e, &DecodeError{Kind: "key", Err: err}
		}
		e.Key = k
	} else {
		e.Key = string(key)
	}
	if c.Time != nil {
		t, err := c.Time(&e.Value)
		if err != nil {
			return e, &DecodeError{Kind: "time", Err: err}
		}
		e.Time = t
	} else {
		if ts == stream.MinTime {
			return e, &DecodeError{Kind: "time", Err: errors.New("record has no timestamp")}
		}
		e.Time = ts
	}
	return e, nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &DecodeError{Kind: "syntax", Err: err}
	case errors.As(err, &typ):
		return &DecodeError{Kind: "type", Err: err}
	}
	return &DecodeError{Kind: "json", Err: err}
}

var jsonBuffers = sync.Pool{New: func() any { return new(jsonEncoder) }}

type jsonEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// AppendValue implements Codec: it appends the JSON encoding of e.Value,
// without a trailing newline.
func (c JSON[T]) AppendValue(dst []byte, e stream.Event[T]) ([]byte, error) {
	je := jsonBuffers.Get().(*jsonEncoder)
	defer jsonBuffers.Put(je)
	if je.enc == nil {
		je.enc = json.NewEncoder(&je.buf)
		je.enc.SetEscapeHTML(false)
	}
	je.buf.Reset()
	if err := je.enc.Encode(e.Value); err != nil {
		return dst, err
	}
	b := je.buf.Bytes()
	return append(dst, b[:len(b)-1]...), nil // Encode ends with '\n'
}

// Raw is a Codec whose values are the record values themselves: Decode copies
// the value, the key becomes the event key and the record timestamp the event
// time; AppendValue appends the bytes unchanged. It suits pass-through stages
// and benchmarks.
type Raw struct{}

var _ Codec[[]byte] = Raw{}

// Decode implements Codec. It rejects records without a timestamp (kind "time").
func (Raw) Decode(key, value []byte, ts stream.Time) (stream.Event[[]byte], error) {
	if ts == stream.MinTime {
		return stream.Event[[]byte]{}, &DecodeError{Kind: "time", Err: errors.New("record has no timestamp")}
	}
	return stream.Event[[]byte]{Key: string(key), Time: ts, Value: bytes.Clone(value)}, nil
}

// AppendValue implements Codec.
func (Raw) AppendValue(dst []byte, e stream.Event[[]byte]) ([]byte, error) {
	return append(dst, e.Value...), nil
}
