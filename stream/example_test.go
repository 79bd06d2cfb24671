package stream_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tidemark-go/tidemark/stream"
	"github.com/tidemark-go/tidemark/streamtest"
)

// pass is an operator that emits every event it is given, unchanged.
type pass[T any] struct{}

func (pass[T]) Process(e stream.Event[T], out stream.Emitter[T]) { out.Emit(e) }
func (pass[T]) Advance(stream.Time, stream.Emitter[T])           {}
func (pass[T]) Bounds() stream.Bounds                            { return stream.Bounds{} }

// cents converts prices to cents, one event at a time: zero bounds.
type cents struct{}

func (cents) Process(e stream.Event[float64], out stream.Emitter[int64]) {
	out.Emit(stream.Event[int64]{Key: e.Key, Time: e.Time, Value: int64(e.Value*100 + 0.5)})
}
func (cents) Advance(stream.Time, stream.Emitter[int64]) {}
func (cents) Bounds() stream.Bounds                      { return stream.Bounds{} }

// trailingSum emits, for each event, the sum of its key's values over the
// 2 seconds up to its time: it looks back 2 s, so its Bounds say so.
type trailingSum struct {
	held map[string][]stream.Event[float64]
}

func (s *trailingSum) Process(e stream.Event[float64], out stream.Emitter[float64]) {
	if s.held == nil {
		s.held = map[string][]stream.Event[float64]{}
	}
	evs := append(s.held[e.Key], e)
	for evs[0].Time <= e.Time-2000 {
		evs = evs[1:]
	}
	s.held[e.Key] = evs
	sum := 0.0
	for _, x := range evs {
		sum += x.Value
	}
	out.Emit(stream.Event[float64]{Key: e.Key, Time: e.Time, Value: sum})
}
func (s *trailingSum) Advance(stream.Time, stream.Emitter[float64]) {}
func (s *trailingSum) Bounds() stream.Bounds                        { return stream.Bounds{Back: 2 * time.Second} }

func show[T any](e stream.Event[T]) { fmt.Println(e.Key, e.Time, e.Value) }

// Run reads a finite source made of two partitions, one event out of order,
// one late and one duplicate, and writes the operator's results to a sink.
func ExampleRun() {
	src := &streamtest.SliceSource[float64]{Records: []stream.Record[float64]{
		{Partition: 0, Event: stream.Event[float64]{Key: "BTCUSDT", Time: 3000, Value: 99190.48}},
		{Partition: 1, Event: stream.Event[float64]{Key: "ETHUSDT", Time: 2000, Value: 1822.5}},
		{Partition: 0, Event: stream.Event[float64]{Key: "BTCUSDT", Time: 1000, Value: 99188.1}}, // out of order, within the lateness
		{Partition: 1, Event: stream.Event[float64]{Key: "ETHUSDT", Time: 6000, Value: 1823.25}},
		{Partition: 0, Event: stream.Event[float64]{Key: "BTCUSDT", Time: 3000, Value: 99190.48}}, // duplicate
		{Partition: 0, Event: stream.Event[float64]{Key: "BTCUSDT", Time: 7000, Value: 99200}},
		{Partition: 1, Event: stream.Event[float64]{Key: "ETHUSDT", Time: 500, Value: 1820}}, // late: the watermark is 4000
	}}
	var sink streamtest.Recorder[int64]
	st, err := stream.Run(context.Background(), src, stream.Operator[float64, int64](cents{}), &sink,
		stream.WithLateness(2*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range sink.Events() {
		show(e)
	}
	fmt.Printf("%+v\n", st)
	// Output:
	// BTCUSDT 1970-01-01T00:00:01.000Z 9918810
	// ETHUSDT 1970-01-01T00:00:02.000Z 182250
	// BTCUSDT 1970-01-01T00:00:03.000Z 9919048
	// ETHUSDT 1970-01-01T00:00:06.000Z 182325
	// BTCUSDT 1970-01-01T00:00:07.000Z 9920000
	// {Accepted:5 Late:1 Duplicates:1 Ahead:0}
}

// A Driver is Run without the source and the sink: events are pushed one at
// a time, with the partition they come from, and Push says what became of
// each.
func ExampleDriver() {
	out := stream.EmitFunc[int](func(e stream.Event[int]) { fmt.Println("released", e.Time, e.Value) })
	d, err := stream.NewDriver[int, int](pass[int]{}, out, stream.WithLateness(10*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range []stream.Event[int]{
		{Key: "BTCUSDT", Time: 20_000, Value: 1},
		{Key: "BTCUSDT", Time: 15_000, Value: 2},
		{Key: "BTCUSDT", Time: 20_000, Value: 3},
		{Key: "BTCUSDT", Time: 5_000, Value: 4},
	} {
		fmt.Println(e.Time, d.Push(0, e, time.Time{}))
	}
	d.Finish()
	// Output:
	// 1970-01-01T00:00:20.000Z accepted
	// 1970-01-01T00:00:15.000Z accepted
	// 1970-01-01T00:00:20.000Z duplicate
	// 1970-01-01T00:00:05.000Z late
	// released 1970-01-01T00:00:15.000Z 2
	// released 1970-01-01T00:00:20.000Z 1
}

// A Sequencer on its own: events of two partitions, out of order and with a
// copy of one in the other partition, come out final and in (Time, Key)
// order as the watermark rises.
func ExampleSequencer() {
	s := stream.NewSequencer[string]()
	out := stream.EmitFunc[string](show[string])
	fmt.Println(s.Offer(0, stream.Event[string]{Key: "b", Time: 2000, Value: "first"}))
	fmt.Println(s.Offer(1, stream.Event[string]{Key: "a", Time: 2000, Value: "second"}))
	fmt.Println(s.Offer(0, stream.Event[string]{Key: "a", Time: 1000, Value: "third"}))
	fmt.Println(s.Offer(0, stream.Event[string]{Key: "a", Time: 2000, Value: "fourth"})) // held for partition 1
	s.Advance(1500, out)
	fmt.Println(s.Offer(1, stream.Event[string]{Key: "a", Time: 1200, Value: "fifth"})) // below the watermark
	s.Advance(stream.MaxTime, out)
	// Output:
	// accepted
	// accepted
	// accepted
	// duplicate
	// a 1970-01-01T00:00:01.000Z third
	// late
	// a 1970-01-01T00:00:02.000Z second
	// b 1970-01-01T00:00:02.000Z first
}

// A Task runs an operator over one partition, with offsets. A task rebuilt
// after a crash from its last checkpoint replays the records the checkpoint
// asks for, emitting nothing, and then goes on as the original would have.
func ExampleNewTask() {
	log := []stream.Event[float64]{
		{Key: "a", Time: 500, Value: 1},
		{Key: "a", Time: 2000, Value: 2},
		{Key: "a", Time: 2500, Value: 3},
		{Key: "a", Time: 4000, Value: 4},
		{Key: "a", Time: 5500, Value: 5},
		{Key: "a", Time: 7000, Value: 6},
	}
	in := stream.Input[float64]{Lateness: time.Second}
	out := stream.EmitFunc[float64](show[float64])

	fmt.Println("first run:")
	task, err := stream.NewTask[float64, float64](&trailingSum{}, in, out)
	if err != nil {
		fmt.Println(err)
		return
	}
	for off, e := range log[:4] {
		if _, err := task.Input().Push(int64(off), e); err != nil {
			fmt.Println(err)
			return
		}
	}
	cp := task.Checkpoints(nil)[0].Checkpoint // committed with the results so far
	fmt.Printf("checkpoint: offset %d, %q\n", cp.Offset, cp.Metadata)

	fmt.Println("after a crash:")
	task, _ = stream.NewTask[float64, float64](&trailingSum{}, in, out)
	from, err := task.Input().Restore(cp)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("replay from offset", from)
	for off := from; off < int64(len(log)); off++ {
		if off == cp.Offset {
			if err := task.EndReplay(); err != nil {
				fmt.Println(err)
				return
			}
		}
		if _, err := task.Input().Push(off, log[off]); err != nil {
			fmt.Println(err)
			return
		}
	}
	task.Finish()
	// Output:
	// first run:
	// a 1970-01-01T00:00:00.500Z 1
	// a 1970-01-01T00:00:02.000Z 3
	// a 1970-01-01T00:00:02.500Z 5
	// checkpoint: offset 4, "tm2 r=1 m=4000 w=3000"
	// after a crash:
	// replay from offset 1
	// a 1970-01-01T00:00:04.000Z 7
	// a 1970-01-01T00:00:05.500Z 9
	// a 1970-01-01T00:00:07.000Z 11
}

// A TwoInputTask runs a two-input operator, here a Join, over one partition
// of each input: trades on the left, prices on the right.
func ExampleNewTwoInputTask() {
	join, err := stream.NewJoin(stream.JoinConfig[string, float64]{})
	if err != nil {
		fmt.Println(err)
		return
	}
	out := stream.EmitFunc[stream.Pair[string, float64]](show[stream.Pair[string, float64]])
	task, err := stream.NewTwoInputTask(join, stream.Input[string]{}, stream.Input[float64]{}, out)
	if err != nil {
		fmt.Println(err)
		return
	}
	task.Left().Push(0, stream.Event[string]{Key: "BTCUSDT", Time: 1000, Value: "buy"})
	task.Right().Push(0, stream.Event[float64]{Key: "BTCUSDT", Time: 1000, Value: 99190.48})
	task.Right().Push(1, stream.Event[float64]{Key: "BTCUSDT", Time: 2000, Value: 99191})
	task.Left().Push(1, stream.Event[string]{Key: "BTCUSDT", Time: 3000, Value: "sell"})
	task.Finish()
	fmt.Printf("%+v\n", join.Stats())
	// Output:
	// BTCUSDT 1970-01-01T00:00:01.000Z {buy 99190.48}
	// {Pairs:1 UnmatchedLeft:1 UnmatchedRight:1 Duplicates:0}
}

func ExampleJoin() {
	j, err := stream.NewJoin(stream.JoinConfig[string, float64]{})
	if err != nil {
		fmt.Println(err)
		return
	}
	out := stream.EmitFunc[stream.Pair[string, float64]](func(e stream.Event[stream.Pair[string, float64]]) {
		fmt.Println(e.Key, e.Time, e.Value.Left, e.Value.Right)
	})
	j.ProcessLeft(stream.Event[string]{Key: "BTCUSDT", Time: 1000, Value: "trade"}, out)
	j.ProcessRight(stream.Event[float64]{Key: "BTCUSDT", Time: 1000, Value: 99190.48}, out)
	j.ProcessRight(stream.Event[float64]{Key: "BTCUSDT", Time: 2000, Value: 99191.00}, out)
	j.Advance(stream.MaxTime, out)
	fmt.Println("unmatched right:", j.Stats().UnmatchedRight)
	// Output:
	// BTCUSDT 1970-01-01T00:00:01.000Z trade 99190.48
	// unmatched right: 1
}

// Chain feeds one operator's results into another; its bounds are the sum of
// theirs.
func ExampleChain() {
	op := stream.Chain[float64, float64, int64](&trailingSum{}, cents{})
	fmt.Printf("%+v\n", op.Bounds())
	d, err := stream.NewDriver(op, stream.EmitFunc[int64](show[int64]), stream.WithLateness(0))
	if err != nil {
		fmt.Println(err)
		return
	}
	d.Push(0, stream.Event[float64]{Key: "a", Time: 1000, Value: 0.25}, time.Time{})
	d.Push(0, stream.Event[float64]{Key: "a", Time: 2000, Value: 0.5}, time.Time{})
	d.Finish()
	// Output:
	// {Back:2s Ahead:0s}
	// a 1970-01-01T00:00:01.000Z 25
	// a 1970-01-01T00:00:02.000Z 75
}

// Map turns each trade into its notional, price × quantity, with the trade's
// key and time; Filter keeps the trades above 1,000 USDT. Both are stateless,
// with zero bounds, so their chain has zero bounds too.
func ExampleMap() {
	type trade struct{ Price, Qty float64 }
	notional := stream.Map(func(e stream.Event[trade]) float64 { return e.Value.Price * e.Value.Qty })
	large := stream.Filter(func(e stream.Event[float64]) bool { return e.Value > 1000 })
	op := stream.Chain(notional, large)
	fmt.Printf("%+v\n", op.Bounds())
	d, err := stream.NewDriver(op, stream.EmitFunc[float64](show[float64]), stream.WithLateness(0))
	if err != nil {
		fmt.Println(err)
		return
	}
	d.Push(0, stream.Event[trade]{Key: "BTCUSDT", Time: 1000, Value: trade{Price: 99190.48, Qty: 0.5}}, time.Time{})
	d.Push(0, stream.Event[trade]{Key: "ETHUSDT", Time: 1500, Value: trade{Price: 1822.5, Qty: 0.25}}, time.Time{})
	d.Push(0, stream.Event[trade]{Key: "ETHUSDT", Time: 2000, Value: trade{Price: 1822.5, Qty: 2}}, time.Time{})
	d.Finish()
	// Output:
	// {Back:0s Ahead:0s}
	// BTCUSDT 1970-01-01T00:00:01.000Z 49595.24
	// ETHUSDT 1970-01-01T00:00:02.000Z 3645
}

// Filter drops the events its function rejects and passes the others on
// unchanged.
func ExampleFilter() {
	positive := stream.Filter(func(e stream.Event[float64]) bool { return e.Value > 0 })
	out := stream.EmitFunc[float64](show[float64])
	positive.Process(stream.Event[float64]{Key: "BTCUSDT", Time: 1000, Value: 99190.48}, out)
	positive.Process(stream.Event[float64]{Key: "BTCUSDT", Time: 2000, Value: -1}, out)
	positive.Process(stream.Event[float64]{Key: "BTCUSDT", Time: 3000, Value: 99191}, out)
	// Output:
	// BTCUSDT 1970-01-01T00:00:01.000Z 99190.48
	// BTCUSDT 1970-01-01T00:00:03.000Z 99191
}

// FlatMap emits zero or more values per event, all at the event's time: here
// a trade's price and quantity under two keys derived from its symbol, and
// nothing for a trade without a quantity.
func ExampleFlatMap() {
	type trade struct{ Price, Qty float64 }
	split := stream.FlatMap(func(e stream.Event[trade], c *stream.Collector[float64]) {
		if e.Value.Qty == 0 {
			return
		}
		c.EmitKey(e.Key+"/price", e.Value.Price)
		c.EmitKey(e.Key+"/qty", e.Value.Qty)
	})
	out := stream.EmitFunc[float64](show[float64])
	split.Process(stream.Event[trade]{Key: "BTCUSDT", Time: 1000, Value: trade{Price: 99190.48, Qty: 0.5}}, out)
	split.Process(stream.Event[trade]{Key: "BTCUSDT", Time: 2000, Value: trade{Price: 99191}}, out)
	split.Process(stream.Event[trade]{Key: "ETHUSDT", Time: 2000, Value: trade{Price: 1822.5, Qty: 2}}, out)
	// Output:
	// BTCUSDT/price 1970-01-01T00:00:01.000Z 99190.48
	// BTCUSDT/qty 1970-01-01T00:00:01.000Z 0.5
	// ETHUSDT/price 1970-01-01T00:00:02.000Z 1822.5
	// ETHUSDT/qty 1970-01-01T00:00:02.000Z 2
}

// ByID lets one key have several events in a millisecond: two trades of
// BTCUSDT at the same time, told apart by their trade ids, are both
// processed, in id order whatever their arrival order; a trade seen again
// (the same id) is a duplicate. With the default identity, (key, time), the
// second trade would have been dropped as a duplicate of the first.
func ExampleByID() {
	type trade struct {
		ID    uint64
		Price float64
	}
	byID := stream.ByID(func(e stream.Event[trade]) uint64 { return e.Value.ID })
	price := stream.Map(func(e stream.Event[trade]) float64 { return e.Value.Price })
	d, err := stream.NewDriver(price, stream.EmitFunc[float64](show[float64]), stream.WithLateness(0), stream.WithDedup(byID))
	if err != nil {
		fmt.Println(err)
		return
	}
	d.Push(0, stream.Event[trade]{Key: "BTCUSDT", Time: 1000, Value: trade{ID: 8, Price: 99190.50}}, time.Time{})
	d.Push(0, stream.Event[trade]{Key: "BTCUSDT", Time: 1000, Value: trade{ID: 7, Price: 99190.48}}, time.Time{})
	d.Push(0, stream.Event[trade]{Key: "BTCUSDT", Time: 1000, Value: trade{ID: 8, Price: 99190.50}}, time.Time{})
	d.Finish()
	fmt.Printf("duplicates %d\n", d.Stats().Duplicates)
	// Output:
	// BTCUSDT 1970-01-01T00:00:01.000Z 99190.48
	// BTCUSDT 1970-01-01T00:00:01.000Z 99190.5
	// duplicates 1
}

// ParseTime reads an RFC 3339 time in any offset to the millisecond in
// UTC; AppendTime writes it back in the one form the topics use. Neither
// allocates.
func ExampleParseTime() {
	t, err := stream.ParseTime([]byte("2025-05-08T06:12:38.352987+02:00"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(int64(t), string(stream.AppendTime(nil, t)))
	_, err = stream.ParseTime([]byte("2025-02-30T00:00:00Z"))
	fmt.Println(errors.Is(err, stream.ErrInvalidTime))
	// Output:
	// 1746677558352 2025-05-08T04:12:38.352Z
	// true
}
