package rseqotel_test

import (
	"context"
	"fmt"

	rseqotel "github.com/gorseq/rseq/adapters/otel"
	"github.com/gorseq/rseq/percpu"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func Example() {
	requests := percpu.NewCounter()
	latency, err := percpu.NewHistogram([]float64{0.01, 0.1, 1})
	if err != nil {
		panic(err)
	}
	p := rseqotel.NewProducer(instrumentation.Scope{Name: "example"})
	route := attribute.NewSet(attribute.String("http.route", "/api"))
	if err := p.Counter(rseqotel.Instrument{Name: "http.server.requests", Unit: "{request}", Attributes: route}, requests); err != nil {
		panic(err)
	}
	if err := p.Histogram(rseqotel.Instrument{Name: "http.server.request.duration", Unit: "s", Attributes: route}, latency); err != nil {
		panic(err)
	}

	// Any reader: a PeriodicReader in front of an OTLP exporter, say. A
	// ManualReader here.
	reader := sdkmetric.NewManualReader(sdkmetric.WithProducer(p))
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())

	for _, d := range []float64{0.0078125, 0.0625, 0.5} { // exact in binary
		requests.Add(1)
		latency.Observe(d)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		panic(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			fmt.Println(m.Name, d.DataPoints[0].Value, d.IsMonotonic, d.Temporality)
		case metricdata.Histogram[float64]:
			dp := d.DataPoints[0]
			fmt.Println(m.Name, dp.Count, dp.Bounds, dp.BucketCounts, dp.Sum, d.Temporality)
		}
	}
	// Output:
	// http.server.requests 3 true CumulativeTemporality
	// http.server.request.duration 3 [0.01 0.1 1] [1 1 1 0] 0.5703125 CumulativeTemporality
}
