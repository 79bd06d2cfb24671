package stream

import (
	"testing"
	"time"
)

// nopOp is an operator that emits what it is given, for benchmarks.
type nopOp struct{}

func (nopOp) Process(e Event[float64], out Emitter[float64]) { out.Emit(e) }
func (nopOp) Advance(Time, Emitter[float64])                 {}
func (nopOp) Bounds() Bounds                                 { return Bounds{} }

var benchKeys = [...]string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT"}

// BenchmarkSequencerPartitionedKeys is BenchmarkSequencerInterleavedPartitions
// with a key per partition, as in Kafka, where a key never crosses
// partitions: the partitions' times are equal, their identities distinct.
func BenchmarkSequencerPartitionedKeys(b *testing.B) {
	s := NewSequencer[float64]()
	out := EmitFunc[float64](func(Event[float64]) {})
	const parts, chunk = 6, 500
	var tm [parts]Time
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		p := (i / chunk) % parts
		tm[p] += 100
		s.Offer(p, Event[float64]{Key: benchKeys[p], Time: tm[p], Value: 1})
		if i%chunk == chunk-1 {
			low := tm[0]
			for _, t := range tm {
				low = min(low, t)
			}
			s.Advance(low, out)
		}
		i++
	}
}

// BenchmarkDriverPush pushes in-order events through a Driver and an
// operator that passes them on: from one partition, and from six, each with
// its own key, delivered in chunks of 500.
func BenchmarkDriverPush(b *testing.B) {
	for _, parts := range []int{1, 6} {
		name := "partitions=1"
		if parts == 6 {
			name = "partitions=6"
		}
		b.Run(name, func(b *testing.B) {
			out := EmitFunc[float64](func(Event[float64]) {})
			d, err := NewDriver[float64, float64](nopOp{}, out, WithLateness(0))
			if err != nil {
				b.Fatal(err)
			}
			const chunk = 500
			tm := make([]Time, parts)
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				p := (i / chunk) % parts
				tm[p] += 100
				d.Push(p, Event[float64]{Key: benchKeys[p], Time: tm[p], Value: 1}, time.Time{})
				i++
			}
		})
	}
}
