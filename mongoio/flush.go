package mongoio

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// flushEvery flushes the buffer every d until ctx is canceled.
func (s *Sink[T]) flushEvery(ctx context.Context, d time.Duration) {
	defer s.background.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.lock(ctx) != nil {
			return
		}
		if s.buffered == 0 {
			s.unlock()
			continue
		}
		rejected := len(s.rejected)
		err := s.flushOnce(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "mongoio: background flush failed; writes stay buffered",
				slog.Int("buffered", s.buffered), slog.Any("err", err))
		}
		if len(s.rejected) > rejected {
			s.log.WarnContext(ctx, "mongoio: background flush had rejected writes; the next Flush reports them",
				slog.Int("rejected", len(s.rejected)-rejected))
		}
		s.unlock()
	}
}

// flushLocked flushes the buffer and reports the rejections collected so
// far. s.mu must be held.
func (s *Sink[T]) flushLocked(ctx context.Context) error {
	err := s.flushOnce(ctx)
	if len(s.rejected) == 0 {
		return err
	}
	rejected := &RejectedError[T]{Rejections: s.rejected}
	s.rejected = nil
	if err == nil {
		return rejected
	}
	return errors.Join(rejected, err)
}

// flushOnce writes every buffered write, retrying transient errors;
// rejections go to s.rejected. s.mu must be held.
func (s *Sink[T]) flushOnce(ctx context.Context) error {
	if s.buffered == 0 {
		return nil
	}
	began := time.Now()
	retry := 0
	for {
		err := s.attempt(ctx, s.writeAll)
		if err == nil {
			if retry > 0 {
				s.log.InfoContext(ctx, "mongoio: flush recovered", slog.Int("retries", retry))
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("mongoio: flush: %w; %d writes stay buffered; last error: %w", ctx.Err(), s.buffered, err)
		}
		if !transient(err) {
			return err
		}
		d, gaveUp := s.nextRetry(retry, began, err)
		if gaveUp != nil {
			return fmt.Errorf("%w; %d writes stay buffered", gaveUp, s.buffered)
		}
		if werr := s.wait(ctx, d, retry, err, slog.Int("buffered", s.buffered)); werr != nil {
			return fmt.Errorf("mongoio: flush: %w; %d writes stay buffered; last error: %w", werr, s.buffered, err)
		}
		retry++
	}
}

// writeAll sends the buffered writes of each collection, up to
// [WithFlushConcurrency] collections at a time, in the order collections were
// first written to. Once a collection's writes fail other than by
// rejection, it starts no further collection; the collections that
// succeed are emptied, the others keep the writes not yet made. s.mu must
// be held; the goroutines it starts have returned when it returns.
func (s *Sink[T]) writeAll(ctx context.Context) error {
	if err := s.detectServer(ctx); err != nil {
		return err
	}
	var pending []*batch[T]
	for _, b := range s.order {
		if len(b.entries) > 0 {
			pending = append(pending, b)
		}
	}
	errs := make([]error, len(pending))
	if len(pending) == 1 || s.concurrency == 1 {
		for i, b := range pending {
			if errs[i] = s.writeCollection(ctx, b); errs[i] != nil {
				break
			}
		}
	} else {
		slots := make(chan struct{}, s.concurrency)
		var failed atomic.Bool
		var wg sync.WaitGroup
		for i, b := range pending {
			slots <- struct{}{}
			if failed.Load() {
				break
			}
			wg.Go(func() {
				defer func() { <-slots }()
				if errs[i] = s.writeCollection(ctx, b); errs[i] != nil {
					failed.Store(true)
				}
			})
		}
		wg.Wait()
	}

	s.buffered = 0
	for _, b := range s.order {
		s.buffered += len(b.entries)
		s.rejected = append(s.rejected, b.rejected...)
		clear(b.rejected)
		b.rejected = b.rejected[:0]
	}
	s.bufferedN.Store(uint64(s.buffered))

	// A non-transient error ends the flush: report only those, so that
	// the flush does not retry.
	var retry, fail []error
	for _, err := range errs {
		switch {
		case err == nil:
		case transient(err):
			retry = append(retry, err)
		default:
			fail = append(fail, err)
		}
	}
	switch {
	case len(fail) == 1:
		return fail[0]
	case len(fail) > 1:
		return errors.Join(fail...)
	case len(retry) == 1:
		return retry[0]
	default:
		return errors.Join(retry...) // nil without errors
	}
}

// writeCollection sends b's writes and wraps the error in context. It
// touches only b and the atomic counters, so that several collections may
// be written at once.
func (s *Sink[T]) writeCollection(ctx context.Context, b *batch[T]) error {
	n := len(b.entries)
	if err := s.writeBatch(ctx, b); err != nil {
		return fmt.Errorf("mongoio: write %d documents to %s.%s: %w", n, s.db.Name(), b.coll.Name(), err)
	}
	return nil
}

var unordered = options.BulkWrite().SetOrdered(false)

// writeBatch sends b's writes: with [WithInsertFirst], unordered bulk writes of
// inserts, then, leaving out the writes whose document is stored already
// as it is (see unchanged), the writes the inserts could not make as
// unordered bulk writes of ReplaceOne upserts; otherwise only the latter.
// On return b holds only the writes still to be made: none when err is
// nil.
func (s *Sink[T]) writeBatch(ctx context.Context, b *batch[T]) error {
	var keep, replace, dups []int
	var stop error
	if s.insertFirst {
		size := len(b.entries)
		if s.cfg.maxPerCommand > 0 {
			size = s.cfg.maxPerCommand
		}
		for lo := 0; lo < len(b.entries); lo += size {
			hi := min(lo+size, len(b.entries))
			if stop != nil {
				keep = appendRange(keep, lo, hi)
				continue
			}
			var failed, dup []int
			failed, dup, stop = s.insertChunk(ctx, b, lo, hi)
			if stop != nil {
				keep = append(keep, failed...)
			} else {
				replace = append(replace, failed...)
				dups = append(dups, dup...)
			}
		}
		if stop == nil && len(dups) > 0 {
			if same := s.unchanged(ctx, b, dups); len(same) > 0 {
				replace = slices.DeleteFunc(replace, func(p int) bool { return same[p] })
				s.written.Add(uint64(len(same)))
			}
		}
	} else {
		replace = appendRange(nil, 0, len(b.entries))
	}

	size := len(replace)
	if s.perCommand > 0 {
		size = s.perCommand
	}
	for lo := 0; lo < len(replace); lo += size {
		chunk := replace[lo:min(lo+size, len(replace))]
		if stop != nil {
			keep = append(keep, chunk...)
			continue
		}
		var kept []int
		kept, stop = s.replaceChunk(ctx, b, chunk)
		keep = append(keep, kept...)
	}
	slices.Sort(keep)
	b.keep(keep)
	return stop
}

// failedWrites returns the write errors of a bulk write of n writes sorted
// by index, and whether their indexes are valid and distinct.
func failedWrites(bwe mongo.BulkWriteException, n int) ([]mongo.BulkWriteError, bool) {
	failed := slices.SortedFunc(slices.Values(bwe.WriteErrors), func(a, b mongo.BulkWriteError) int {
		return cmp.Compare(a.Index, b.Index)
	})
	for i, we := range failed {
		if we.Index < 0 || we.Index >= n || i > 0 && we.Index == failed[i-1].Index {
			return failed, false
		}
	}
	return failed, true
}

// replaceChunk sends the writes of b at the given positions in one
// unordered bulk write of ReplaceOne upserts and returns the positions of
// the writes still to be made.
func (s *Sink[T]) replaceChunk(ctx context.Context, b *batch[T], pos []int) ([]int, error) {
	unlock, err := s.lockReplace(ctx)
	if err != nil {
		return pos, err
	}
	defer unlock()
	models := make([]mongo.WriteModel, len(pos))
	for i, p := range pos {
		models[i] = b.models[p]
	}
	res, err := b.coll.BulkWrite(ctx, models, unordered)
	if err == nil {
		s.acknowledged(int64(len(pos)), res.UpsertedCount)
		return nil, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || len(bwe.WriteErrors) == 0 || bwe.WriteConcernError != nil {
		return pos, err // all of them are sent again
	}

	// Some writes failed. A conforming server applied all the others and
	// says which failed; trust it only when the numbers add up. FerretDB
	// v1, for one, stops at the first failing write of an unordered batch
	// and reports it at index 0: then find the failing writes one by one.
	failed, ok := failedWrites(bwe, len(pos))
	if !ok || res.MatchedCount+res.UpsertedCount != int64(len(pos)-len(failed)) {
		return s.writeOneByOne(ctx, b, pos)
	}
	s.acknowledged(int64(len(pos)-len(failed)), res.UpsertedCount)
	var keep []int
	for _, we := range failed {
		if retryableWriteError(we) {
			keep = append(keep, pos[we.Index])
			continue
		}
		s.reject(b, pos[we.Index], we)
	}
	if len(keep) > 0 {
		return keep, retryableError{fmt.Errorf("%d writes failed transiently: %w", len(keep), err)}
	}
	return nil, nil
}

// writeOneByOne sends the replacements of b at the given positions one at
// a time, to tell the ones the server rejects from the ones it accepts. It
// stops at the first error that is not a rejection and returns the
// positions of the writes not yet made.
func (s *Sink[T]) writeOneByOne(ctx context.Context, b *batch[T], pos []int) ([]int, error) {
	for i, p := range pos {
		res, err := b.coll.BulkWrite(ctx, b.models[p:p+1], unordered)
		var bwe mongo.BulkWriteException
		switch {
		case err == nil:
			s.acknowledged(1, res.UpsertedCount)
		case errors.As(err, &bwe) && len(bwe.WriteErrors) == 1 && bwe.WriteConcernError == nil &&
			!retryableWriteError(bwe.WriteErrors[0]):
			s.reject(b, p, bwe.WriteErrors[0])
		default:
			return pos[i:], err
		}
	}
	return nil, nil
}

// appendRange appends lo, lo+1, ..., hi-1 to dst.
func appendRange(dst []int, lo, hi int) []int {
	for i := lo; i < hi; i++ {
		dst = append(dst, i)
	}
	return dst
}

// acknowledged counts one successful bulk write of written writes, created
// of which created a document.
func (s *Sink[T]) acknowledged(written, created int64) {
	s.written.Add(uint64(written))
	s.upserted.Add(uint64(created))
	s.batches.Add(1)
}

// reject records the rejection of the write at position p of b.
func (s *Sink[T]) reject(b *batch[T], p int, we mongo.BulkWriteError) {
	e := b.entries[p]
	s.rejectedN.Add(1)
	b.rejected = append(b.rejected, Rejection[T]{
		Record:     e.rec,
		Collection: b.coll.Name(),
		ID:         e.id,
		Err:        fmt.Errorf("mongoio: write %s to %s.%s rejected: %w", e.id, s.db.Name(), b.coll.Name(), we),
	})
}
