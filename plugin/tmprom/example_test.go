package tmprom_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidemark-go/tidemark/kafkaio"
	"github.com/tidemark-go/tidemark/kafkatest"
	"github.com/tidemark-go/tidemark/plugin/tmprom"
	"github.com/tidemark-go/tidemark/stream"
)

// A program registers a Collector, adds its stages, sinks and followers
// under names, and serves the registry (promhttp.HandlerFor). Here a
// kafkaio sink writes three prices to an in-process Kafka (any Kafka
// does), and the registry is gathered by hand.
func Example() {
	k, err := kafkatest.NewCluster(kafkatest.WithTopic("btc-price", 1))
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()

	c, err := tmprom.New()
	if err != nil {
		log.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)

	cfg, err := kafkaio.NewConfig()
	if err != nil {
		log.Fatal(err)
	}
	sink, err := kafkaio.NewSink(nil, kafkaio.JSON[float64]{}, kafkaio.WithTopic("btc-price"), kafkaio.WithBrokers(k.Addrs(), cfg))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.AddSink("prices", sink); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	t0 := stream.TimeOf(time.Date(2025, 5, 8, 4, 12, 38, 352e6, time.UTC))
	for i, p := range []float64{99190.48, 99191.02, 99189.75} {
		if err := sink.Write(ctx, stream.Event[float64]{Key: "BTCUSDT", Time: t0 + stream.Time(i*1000), Value: p}); err != nil {
			log.Fatal(err)
		}
	}
	if err := sink.Close(ctx); err != nil { // every record is acknowledged
		log.Fatal(err)
	}

	mfs, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			fmt.Printf("%s{%s} %v\n", mf.GetName(), strings.Join(labels, ","), m.GetCounter().GetValue())
		}
	}
	// Output:
	// tidemark_kafka_sink_acked_total{sink="prices"} 3
	// tidemark_kafka_sink_dead_letter_failed_total{sink="prices"} 0
	// tidemark_kafka_sink_dead_lettered_total{sink="prices"} 0
	// tidemark_kafka_sink_failed_total{sink="prices"} 0
	// tidemark_kafka_sink_outages_total{sink="prices"} 0
	// tidemark_kafka_sink_resent_total{sink="prices"} 0
	// tidemark_kafka_sink_written_total{sink="prices"} 3
}
