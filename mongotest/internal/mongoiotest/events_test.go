package mongoiotest_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tidemark-go/tidemark/mongoio"
	"github.com/tidemark-go/tidemark/stream"
)

// The tests of mongoio.EventSink against FerretDB. Each event of these
// tests becomes one document in each of the first Colls collections of
// evColls, with the _id "key|time" (the same _id in every collection).

// evColls are the collections evDocuments writes to.
var evColls = []string{"ev-a", "ev-b", "ev-c", "ev-d"}

// evValue is the value of the tests' events.
type evValue struct {
	Price float64
	// Colls is how many collections of evColls the event is written to.
	Colls int
	// Bad makes evDocuments fail, after it has appended a route.
	Bad bool
	// BadColl makes evDocuments return an invalid second route.
	BadColl bool
	// Coll, when set, is the only collection the event is written to.
	Coll string
}

// evDoc is the document of an event in one collection.
type evDoc struct {
	ID    string    `bson:"_id"`
	Key   string    `bson:"key"`
	Time  time.Time `bson:"time"`
	Coll  string    `bson:"coll"`
	Price float64   `bson:"price"`
	// U is unique in a collection: the rejection tests index it and
	// insert blockers with the U of a document and another _id.
	U string `bson:"u"`
}

// evKey identifies an event, as a stream.Rejection does.
type evKey struct {
	key string
	t   stream.Time
}

func keyOf(e stream.Event[evValue]) evKey { return evKey{e.Key, e.Time} }

var errBadEvent = errors.New("bad event")

// evDocuments is the EventSink's Documents func.
func evDocuments(dst []mongoio.Route, e stream.Event[evValue]) ([]mongoio.Route, error) {
	id := e.Key + "|" + e.Time.String()
	doc := func(coll string) mongoio.Route {
		return mongoio.Route{Collection: coll, Doc: evDoc{ID: id, Key: e.Key, Time: e.Time.UTC(), Coll: coll, Price: e.Value.Price, U: id}}
	}
	switch {
	case e.Value.Bad:
		return append(dst, doc(evColls[0])), fmt.Errorf("%w: %s", errBadEvent, e.Key)
	case e.Value.BadColl:
		return append(dst, doc(evColls[0]), doc("bad$name")), nil
	case e.Value.Coll != "":
		return append(dst, doc(e.Value.Coll)), nil
	}
	for _, c := range evColls[:e.Value.Colls] {
		dst = append(dst, doc(c))
	}
	return dst, nil
}

// docID is the _id of the documents of an event, computed without
// stream.Time's String.
func docID(k evKey) string {
	return fmt.Sprintf("%s|%s", k.key, time.UnixMilli(int64(k.t)).UTC().Format("2006-01-02T15:04:05.000Z"))
}

// want is the expected content of a database: by collection, by _id.
type want map[string]map[string]evDoc

func (w want) put(coll string, d evDoc) {
	if w[coll] == nil {
		w[coll] = make(map[string]evDoc)
	}
	w[coll][d.ID] = d
}

// add puts the documents of events, in order (later events win), leaving
// out those in blocked.
func (w want) add(events []stream.Event[evValue], blocked map[evKey][]string) want {
	for _, e := range events {
		k := keyOf(e)
		colls := evColls[:e.Value.Colls]
		if e.Value.Coll != "" {
			colls = []string{e.Value.Coll}
		}
		for _, c := range colls {
			if slices.Contains(blocked[k], c) {
				continue
			}
			id := docID(k)
			w.put(c, evDoc{ID: id, Key: e.Key, Time: time.UnixMilli(int64(e.Time)).UTC(), Coll: c, Price: e.Value.Price, U: id})
		}
	}
	return w
}

// testSeed returns a seed from TIDEMARK_SEED or the clock, and logs it.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TIDEMARK_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "TIDEMARK_SEED")
		seed = v
	}
	t.Logf("seed %d (TIDEMARK_SEED=%d to repeat)", seed, seed)
	return seed
}

// fixedEvents are hand-picked: the same key at several times, several keys
// at one time, every number of collections.
func fixedEvents() []stream.Event[evValue] {
	t := stream.TimeOf(t0)
	return []stream.Event[evValue]{
		{Key: "BTCUSDT", Time: t, Value: evValue{Price: 99190.48, Colls: 4}},
		{Key: "BTCUSDT", Time: t + 100, Value: evValue{Price: 99013.2, Colls: 1}},
		{Key: "ETHUSDT", Time: t, Value: evValue{Price: 1808.5, Colls: 2}},
		{Key: "ETHUSDT", Time: t + 1, Value: evValue{Price: -0.25, Colls: 3}},
		{Key: "clé é", Time: t - 86_400_000, Value: evValue{Price: 0, Colls: 4}},
		{Key: "BTCUSDT", Time: t + 60_000, Value: evValue{Price: 1e-9, Colls: 2}},
	}
}

// randomEvents returns n events of distinct (key, time).
func randomEvents(r *rand.Rand, n int) []stream.Event[evValue] {
	keys := []string{"BTCUSDT", "ETHUSDT", "SOL USDT", "clé-é"}
	seen := make(map[evKey]bool, n)
	events := make([]stream.Event[evValue], 0, n)
	for len(events) < n {
		e := stream.Event[evValue]{
			Key:   keys[r.IntN(len(keys))],
			Time:  stream.TimeOf(t0) + stream.Time(r.IntN(20*n)),
			Value: evValue{Price: float64(r.IntN(20_000_000)-1_000_000) / 100, Colls: 1 + r.IntN(len(evColls))},
		}
		if seen[keyOf(e)] {
			continue
		}
		seen[keyOf(e)] = true
		events = append(events, e)
	}
	return events
}

// uniqueEvents returns the events of the lists, leaving out those whose
// (key, time) came before.
func uniqueEvents(lists ...[]stream.Event[evValue]) []stream.Event[evValue] {
	seen := make(map[evKey]bool)
	var events []stream.Event[evValue]
	for _, l := range lists {
		for _, e := range l {
			if !seen[keyOf(e)] {
				seen[keyOf(e)] = true
				events = append(events, e)
			}
		}
	}
	return events
}

func newEventSink(t *testing.T, db *mongo.Database, opts ...mongoio.Option) *mongoio.EventSink[evValue] {
	t.Helper()
	opts = append([]mongoio.Option{mongoio.WithLogger(quietLogger(t)), mongoio.WithBackoff(20*time.Millisecond, 200*time.Millisecond)}, opts...)
	s, err := mongoio.NewEventSink(db, evDocuments, opts...)
	require.NoError(t, err, "NewEventSink")
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func writeEvents(t *testing.T, s *mongoio.EventSink[evValue], events []stream.Event[evValue]) {
	t.Helper()
	for _, e := range events {
		require.NoError(t, s.Write(t.Context(), e), "write %s@%v", e.Key, e.Time)
	}
}

// readEvDocs returns the documents of a collection, sorted by _id.
func readEvDocs(t *testing.T, db *mongo.Database, coll string) []evDoc {
	t.Helper()
	cur, err := db.Collection(coll).Find(t.Context(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	require.NoError(t, err, "find in %s", coll)
	var docs []evDoc
	require.NoError(t, cur.All(t.Context(), &docs), "decode %s", coll)
	for i := range docs {
		docs[i].Time = docs[i].Time.UTC()
	}
	return docs
}

// checkDocs compares every document of every collection of db with w.
func checkDocs(t *testing.T, db *mongo.Database, w want) {
	t.Helper()
	names, err := db.ListCollectionNames(t.Context(), bson.D{})
	require.NoError(t, err, "list collections")
	for c := range w {
		if !slices.Contains(names, c) {
			names = append(names, c)
		}
	}
	slices.Sort(names)
	for _, c := range names {
		exp := slices.SortedFunc(maps.Values(w[c]), func(a, b evDoc) int { return strings.Compare(a.ID, b.ID) })
		got := readEvDocs(t, db, c)
		if len(exp) == 0 {
			assert.Empty(t, got, "documents of %s", c)
			continue
		}
		assert.Equal(t, exp, got, "documents of %s", c)
	}
}

// snapshot returns the stored bytes of every document of db, by collection.
func snapshot(t *testing.T, db *mongo.Database) map[string][]bson.Raw {
	t.Helper()
	names, err := db.ListCollectionNames(t.Context(), bson.D{})
	require.NoError(t, err, "list collections")
	snap := make(map[string][]bson.Raw, len(names))
	for _, c := range names {
		cur, err := db.Collection(c).Find(t.Context(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		require.NoError(t, err, "find in %s", c)
		var docs []bson.Raw
		require.NoError(t, cur.All(t.Context(), &docs), "read %s", c)
		snap[c] = docs
	}
	return snap
}

func docCount(events []stream.Event[evValue]) int {
	n := 0
	for _, e := range events {
		n += e.Value.Colls
	}
	return n
}

// TestEventSinkUpsert writes events as documents in several collections
// each, and writes them again, in another order: the replay leaves every
// document as it was.
func TestEventSinkUpsert(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	_, db0 := startDB(t)
	client := db0.Client()
	type data struct {
		name   string
		events func(*rand.Rand) []stream.Event[evValue]
	}
	for i, d := range []data{
		{"fixed", func(*rand.Rand) []stream.Event[evValue] { return fixedEvents() }},
		{"random", func(r *rand.Rand) []stream.Event[evValue] { return randomEvents(r, 60) }},
	} {
		for j, o := range []struct {
			name string
			opts []mongoio.Option
		}{
			{"defaults", nil},
			{"upserts only", []mongoio.Option{mongoio.WithUpsertOnly()}},
			{"batches of 5", []mongoio.Option{mongoio.WithBatchSize(5), mongoio.WithMaxWritesPerCommand(3)}},
		} {
			t.Run(d.name+"/"+o.name, func(t *testing.T) {
				t.Parallel()
				r := rand.New(rand.NewPCG(seed, uint64(i)))
				db := client.Database(fmt.Sprintf("upsert-%d-%d", i, j))
				s := newEventSink(t, db, o.opts...)
				events := d.events(r)
				w := want{}.add(events, nil)

				writeEvents(t, s, events)
				require.NoError(t, s.Flush(t.Context()), "flush")
				checkDocs(t, db, w)
				before := snapshot(t, db)
				n := uint64(docCount(events))
				st := s.Stats()
				assert.Equal(t, n, st.Written, "every document written")
				assert.Equal(t, n, st.Upserted, "every document created")

				replay := slices.Clone(events)
				r.Shuffle(len(replay), func(i, j int) { replay[i], replay[j] = replay[j], replay[i] })
				writeEvents(t, s, replay)
				require.NoError(t, s.Flush(t.Context()), "flush of the replay")
				checkDocs(t, db, w)
				assert.Equal(t, before, snapshot(t, db), "the replay changes no byte")
				st = s.Stats()
				assert.Equal(t, 2*n, st.Written, "every document written twice")
				assert.Equal(t, n, st.Upserted, "the replay creates no document")
				assert.Zero(t, st.Rejected, "nothing rejected")
				assert.Zero(t, st.Buffered, "nothing left buffered")
				require.NoError(t, s.Close(t.Context()), "close")
			})
		}
	}
}

// TestEventSinkInvalidEvent: an event whose Documents func fails, or
// makes a document that cannot be written, is refused by Write with
// mongoio.ErrInvalidRecord and stream.ErrRejected, and none of its
// documents is buffered, not even those made before the failure.
func TestEventSinkInvalidEvent(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(testSeed(t), 7))
	_, db := startDB(t)
	s := newEventSink(t, db)

	events := fixedEvents()
	events[1].Value.Bad = true
	events[3].Value.BadColl = true
	for _, e := range uniqueEvents(fixedEvents(), randomEvents(r, 40))[len(events):] {
		switch r.IntN(4) {
		case 0:
			e.Value.Bad = true
		case 1:
			e.Value.BadColl = true
		}
		events = append(events, e)
	}
	var good []stream.Event[evValue]
	for _, e := range events {
		before := s.Stats().Buffered
		err := s.Write(t.Context(), e)
		switch {
		case e.Value.Bad:
			require.Error(t, err, "Write refuses %s@%v", e.Key, e.Time)
			assert.ErrorIs(t, err, errBadEvent, "the Documents error is wrapped")
			assert.ErrorContains(t, err, e.Time.String(), "the event is named")
		case e.Value.BadColl:
			require.Error(t, err, "Write refuses %s@%v", e.Key, e.Time)
			assert.ErrorContains(t, err, "bad$name", "the collection is named")
		default:
			require.NoError(t, err, "write %s@%v", e.Key, e.Time)
			assert.Equal(t, before+uint64(e.Value.Colls), s.Stats().Buffered, "the documents of %s@%v are buffered", e.Key, e.Time)
			good = append(good, e)
			continue
		}
		assert.ErrorIs(t, err, mongoio.ErrInvalidRecord, "Write refuses %s@%v", e.Key, e.Time)
		assert.ErrorIs(t, err, stream.ErrRejected, "as a rejection in stream's terms")
		assert.Equal(t, before, s.Stats().Buffered, "none of the documents of %s@%v is buffered", e.Key, e.Time)
	}
	require.NoError(t, s.Flush(t.Context()), "flush")
	checkDocs(t, db, want{}.add(good, nil))
	assert.Equal(t, uint64(docCount(good)), s.Stats().Written, "only the good events' documents written")
}

// rejectionSetup creates a unique index on u in every collection of
// evColls of db and, for some of events, blockers: documents of another
// _id with the u of one or more of the event's documents, which the
// server then rejects. It returns the collections of the blocked
// documents of each blocked event, and the expected content of db once
// events are written.
func rejectionSetup(t *testing.T, r *rand.Rand, db *mongo.Database, s *mongoio.EventSink[evValue], events []stream.Event[evValue], fixed map[evKey][]string) (map[evKey][]string, want) {
	t.Helper()
	for _, c := range evColls {
		_, err := s.EnsureIndexes(t.Context(), c, mongo.IndexModel{
			Keys: bson.D{{Key: "u", Value: 1}}, Options: options.Index().SetUnique(true),
		})
		require.NoError(t, err, "unique index on %s", c)
	}
	blocked := make(map[evKey][]string)
	for _, e := range events {
		k := keyOf(e)
		if colls, ok := fixed[k]; ok {
			if len(colls) > 0 {
				blocked[k] = colls
			}
			continue
		}
		if r.IntN(4) != 0 {
			continue
		}
		colls := slices.Clone(evColls[:e.Value.Colls])
		r.Shuffle(len(colls), func(i, j int) { colls[i], colls[j] = colls[j], colls[i] })
		blocked[k] = colls[:1+r.IntN(len(colls))]
	}
	w := want{}
	for k, colls := range blocked {
		id := docID(k)
		for _, c := range colls {
			b := evDoc{ID: "blocker|" + id, Key: "blocker", Time: t0, Coll: c, Price: -1, U: id}
			_, err := db.Collection(c).InsertOne(t.Context(), b)
			require.NoError(t, err, "insert blocker of %s in %s", id, c)
			w.put(c, b)
		}
	}
	return blocked, w.add(events, blocked)
}

// rejectedEvents checks the rejections of err, which must match
// stream.ErrRejected and hold a *stream.RejectedError, against blocked: each
// names a blocked event, with a duplicate key error that names one of
// the collections of its blocked documents, and no event comes twice. It
// returns the events named, and the rest of err.
func rejectedEvents(t *testing.T, err error, blocked map[evKey][]string) (map[evKey]bool, error) {
	t.Helper()
	require.ErrorIs(t, err, stream.ErrRejected, "rejections are reported")
	var re *stream.RejectedError
	require.ErrorAs(t, err, &re, "a *stream.RejectedError")
	got := make(map[evKey]bool, len(re.Rejections))
	for _, rj := range re.Rejections {
		k := evKey{rj.Key, rj.Time}
		assert.False(t, got[k], "%s@%v is named once", rj.Key, rj.Time)
		got[k] = true
		colls, ok := blocked[k]
		if !assert.True(t, ok, "%s@%v is rejected, but none of its documents is blocked: %v", rj.Key, rj.Time, rj.Err) {
			continue
		}
		assert.True(t, mongo.IsDuplicateKeyError(rj.Err), "a duplicate key error for %s@%v: %v", rj.Key, rj.Time, rj.Err)
		assert.True(t, slices.ContainsFunc(colls, func(c string) bool {
			return strings.HasPrefix(rj.Err.Error(), "mongoio: "+c+"/")
		}), "the error of %s@%v names a collection of its blocked documents %v: %v", rj.Key, rj.Time, colls, rj.Err)
	}
	return got, stream.RejectedRest(err)
}

// keySet returns the keys of m as a set.
func keySet[V any](m map[evKey]V) map[evKey]bool {
	s := make(map[evKey]bool, len(m))
	for k := range m {
		s[k] = true
	}
	return s
}

// rejectionEvents returns fixed and random events, and the blocked
// collections of the fixed ones: the first event is blocked in two
// collections, the second in one, and the third in none.
func rejectionEvents(r *rand.Rand) ([]stream.Event[evValue], map[evKey][]string) {
	fixed := fixedEvents()
	return uniqueEvents(fixed, randomEvents(r, 40)), map[evKey][]string{
		keyOf(fixed[0]): {"ev-a", "ev-c"},
		keyOf(fixed[3]): {"ev-b"},
		keyOf(fixed[2]): nil,
	}
}

// TestEventSinkRejections has the server refuse some documents (a
// duplicate key on a unique index other than _id): the flush that finds
// them, or Close, reports exactly their events, each once, writes every
// other document, and the next flush reports nothing. With small batches,
// the flushes of Write find the rejections and the next Flush reports
// them.
func TestEventSinkRejections(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	_, db0 := startDB(t)
	client := db0.Client()
	for _, end := range []string{"flush", "close"} {
		for _, batch := range []int{0, 3, 1} {
			t.Run(fmt.Sprintf("%s/batch %d", end, batch), func(t *testing.T) {
				t.Parallel()
				r := rand.New(rand.NewPCG(seed, uint64(batch)))
				db := client.Database(fmt.Sprintf("rej-%s-%d", end, batch))
				var opts []mongoio.Option
				if batch > 0 {
					opts = append(opts, mongoio.WithBatchSize(batch))
				}
				s := newEventSink(t, db, opts...)
				events, fixed := rejectionEvents(r)
				blocked, w := rejectionSetup(t, r, db, s, events, fixed)

				// Write returns no error: the rejections its flushes find
				// wait for the next Flush.
				writeEvents(t, s, events)
				if batch > 0 {
					assert.Positive(t, s.Stats().Rejected, "the flushes of Write met rejections")
				}
				var err error
				if end == "flush" {
					err = s.Flush(t.Context())
				} else {
					err = s.Close(t.Context())
				}
				got, rest := rejectedEvents(t, err, blocked)
				assert.NoError(t, rest, "only rejections")
				assert.Equal(t, keySet(blocked), got, "exactly the blocked events are rejected")
				checkDocs(t, db, w)
				nBlocked := 0
				for _, c := range blocked {
					nBlocked += len(c)
				}
				st := s.Stats()
				assert.Equal(t, uint64(nBlocked), st.Rejected, "each blocked document rejected once")
				assert.Equal(t, uint64(docCount(events)-nBlocked), st.Written, "every other document written")
				assert.Zero(t, st.Buffered, "nothing left buffered")

				if end == "close" {
					require.NoError(t, s.Close(t.Context()), "Close again reports nothing")
					assert.ErrorIs(t, s.Write(t.Context(), events[0]), mongoio.ErrClosed, "closed")
					return
				}
				require.NoError(t, s.Flush(t.Context()), "the next Flush reports nothing")

				// A replay meets the same rejections, and they are reported again.
				writeEvents(t, s, events)
				got, rest = rejectedEvents(t, s.Flush(t.Context()), blocked)
				assert.NoError(t, rest, "only rejections")
				assert.Equal(t, keySet(blocked), got, "the replay's rejections are reported")
				checkDocs(t, db, w)
				require.NoError(t, s.Flush(t.Context()), "the next Flush reports nothing")
			})
		}
	}
}

// TestEventSinkCloseFailsWithRejections: a Close whose flush meets a
// rejection and an error that keeps the sink open reports the rejection;
// when the event is written again, the next Flush reports it again.
func TestEventSinkCloseFailsWithRejections(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(testSeed(t), 3))
	_, db := startDB(t)
	s := newEventSink(t, db)
	events := fixedEvents()[:2]
	blocked, _ := rejectionSetup(t, r, db, s, events, map[evKey][]string{
		keyOf(events[0]): {"ev-a", "ev-b"},
		keyOf(events[1]): nil,
	})
	// FerretDB refuses this collection (MongoDB does not): a
	// non-transient error that keeps the write buffered.
	stuck := stream.Event[evValue]{Key: "stuck", Time: events[0].Time, Value: evValue{Coll: "_ferretdb_reserved"}}
	writeEvents(t, s, append(events, stuck))

	err := s.Close(t.Context())
	got, rest := rejectedEvents(t, err, blocked)
	assert.Equal(t, keySet(blocked), got, "Close reports the rejection")
	require.Error(t, rest, "and its failure")
	assert.ErrorContains(t, rest, "writes still buffered", "Close keeps the sink open")

	// The sink is open: a replay of the rejected event meets the
	// rejection again, and Flush reports it again.
	writeEvents(t, s, events[:1])
	got, rest = rejectedEvents(t, s.Flush(t.Context()), blocked)
	assert.Equal(t, keySet(blocked), got, "Flush reports the rejection of the replay")
	assert.ErrorContains(t, rest, "_ferretdb_reserved", "and the stuck write")
}

// TestEventSinkConcurrent writes from several goroutines, each its own
// events and then a replay of them, while another goroutine flushes and a
// background flush runs, with rejections; run with -race. Every document
// ends up as written, and every rejected event is reported.
func TestEventSinkConcurrent(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(testSeed(t), 11))
	_, db := startDB(t)
	s := newEventSink(t, db, mongoio.WithBatchSize(7), mongoio.WithFlushInterval(3*time.Millisecond))
	events, fixed := rejectionEvents(r)
	events = uniqueEvents(events, randomEvents(r, 40))
	blocked, w := rejectionSetup(t, r, db, s, events, fixed)

	var mu sync.Mutex
	reported := make(map[evKey]bool)
	report := func(err error) {
		if err == nil {
			return
		}
		got, rest := rejectedEvents(t, err, blocked)
		assert.NoError(t, rest, "only rejections")
		mu.Lock()
		defer mu.Unlock()
		maps.Copy(reported, got)
	}

	const writers = 4
	done := make(chan struct{})
	var flusher sync.WaitGroup
	flusher.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Duration(r.IntN(5)) * time.Millisecond):
			}
			report(s.Flush(context.Background()))
		}
	})
	var wg sync.WaitGroup
	for g := range writers {
		mine := events[g*len(events)/writers : (g+1)*len(events)/writers]
		replay := slices.Clone(mine)
		rand.New(rand.NewPCG(uint64(g), 0)).Shuffle(len(replay), func(i, j int) { replay[i], replay[j] = replay[j], replay[i] })
		wg.Go(func() {
			for _, e := range append(slices.Clone(mine), replay...) {
				if err := s.Write(context.Background(), e); err != nil {
					t.Errorf("writer %d: write %s@%v: %v", g, e.Key, e.Time, err)
					return
				}
				_ = s.Stats()
			}
		})
	}
	wg.Wait()
	close(done)
	flusher.Wait()
	report(s.Flush(t.Context()))
	require.NoError(t, s.Flush(t.Context()), "nothing left to report")

	assert.Equal(t, keySet(blocked), reported, "every blocked event is reported, and no other")
	checkDocs(t, db, w)
	st := s.Stats()
	assert.Zero(t, st.Buffered, "nothing left buffered")
	t.Logf("%d events, %d blocked; stats %+v", len(events), len(blocked), st)
}

// TestEventSinkServerRestart stops the server mid-stream and starts it
// again on the same data: between two Writes (the next flush of Write
// retries until the server is back), while a flush of Write runs, or
// before the final Flush. The stream goes on meanwhile: new events,
// events updated with another price, and a replay of events written
// before. No document is lost, and each has its latest content.
func TestEventSinkServerRestart(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	const (
		betweenWrites = iota
		duringFlush
		beforeFlush
	)
	for i, tt := range []struct {
		name string
		when int
	}{
		{"between writes", betweenWrites},
		{"during a flush of Write", duringFlush},
		{"before the final flush", beforeFlush},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			m, db := startDB(t)
			// Write flushes every 20 documents; when the server stops
			// before the final flush, never, so that the final flush has
			// every document written after the first Flush (with 20, it
			// could find the buffer empty and meet no outage at all).
			batch := 20
			if tt.when == beforeFlush {
				batch = 1_000_000
			}
			s := newEventSink(t, db, mongoio.WithMaxRetries(-1), mongoio.WithBatchSize(batch), mongoio.WithMaxWritesPerCommand(8))

			events := uniqueEvents(fixedEvents(), randomEvents(r, 150))
			first, rest := events[:40], events[40:]
			writeEvents(t, s, first)
			require.NoError(t, s.Flush(t.Context()), "flush before the outage")

			// After the outage begins: the other events, and some of the
			// first ones again, updated or unchanged, in random order.
			later := slices.Clone(rest)
			for _, e := range first {
				switch r.IntN(3) {
				case 0:
					e.Value.Price += 1000.5
					later = append(later, e) // an update
				case 1:
					later = append(later, e) // a replay
				}
			}
			r.Shuffle(len(later), func(i, j int) { later[i], later[j] = later[j], later[i] })
			w := want{}.add(first, nil).add(later, nil)

			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			restarted := make(chan error, 1)
			restart := func() {
				restarted <- m.Restart(ctx, 1500*time.Millisecond)
			}
			stopAt := -1
			switch tt.when {
			case betweenWrites:
				stopAt = len(later) / 3
			case duringFlush:
				// Stop the server once the flushes of Write have written
				// 50 documents, in bulk writes of 8.
				before := s.Stats().Written
				go func() {
					for s.Stats().Written < before+50 && ctx.Err() == nil {
						time.Sleep(time.Millisecond)
					}
					restart()
				}()
			}
			start := time.Now()
			for j, e := range later {
				if j == stopAt {
					require.NoError(t, m.Stop(), "stop the server")
					go func() {
						time.Sleep(1500 * time.Millisecond)
						restarted <- m.Start()
					}()
				}
				require.NoError(t, s.Write(ctx, e), "write %s@%v", e.Key, e.Time)
			}
			if tt.when == beforeFlush {
				// Every document of the later events, each event once:
				// none was flushed by Write.
				n := 0
				for _, docs := range (want{}).add(later, nil) {
					n += len(docs)
				}
				require.Equal(t, uint64(n), s.Stats().Buffered, "every later document is buffered for the final flush")
				require.NoError(t, m.Stop(), "stop the server")
				go func() {
					time.Sleep(1500 * time.Millisecond)
					restarted <- m.Start()
				}()
			}
			require.NoError(t, s.Flush(ctx), "flush")
			require.NoError(t, <-restarted, "restart the server")
			st := s.Stats()
			t.Logf("writes and flush took %v; stats %+v", time.Since(start), st)
			assert.Positive(t, st.Retries, "the outage caused retries")
			assert.Zero(t, st.Buffered, "nothing left buffered")
			assert.Zero(t, st.Rejected, "nothing rejected")
			checkDocs(t, db, w)
		})
	}
}
