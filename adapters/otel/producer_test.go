package rseqotel

import (
	"context"
	"sync"
	"testing"

	"github.com/gorseq/rseq/percpu"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
)

// collect reads everything through a ManualReader registered with a
// MeterProvider, as an application would.
func collect(t *testing.T, p *Producer) metricdata.ResourceMetrics {
	t.Helper()
	r := sdkmetric.NewManualReader(sdkmetric.WithProducer(p))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

func TestProduceThroughManualReader(t *testing.T) {
	scope := instrumentation.Scope{Name: "rseqotel-test", Version: "1"}
	p := NewProducer(scope)
	routes := []string{"/a", "/b"}
	reqs := map[string]*percpu.Counter{}
	lat := map[string]*percpu.Histogram{}
	bounds := []float64{1, 2, 4, 8}
	for _, r := range routes {
		reqs[r] = percpu.NewCounter()
		var err error
		if lat[r], err = percpu.NewHistogram(bounds); err != nil {
			t.Fatal(err)
		}
		attrs := attribute.NewSet(attribute.String("route", r))
		if err := p.Counter(Instrument{Name: "http.requests", Description: "Requests.", Unit: "{request}", Attributes: attrs}, reqs[r]); err != nil {
			t.Fatal(err)
		}
		if err := p.Histogram(Instrument{Name: "http.duration", Description: "Duration.", Unit: "s", Attributes: attrs}, lat[r]); err != nil {
			t.Fatal(err)
		}
	}
	inflight := percpu.NewCounter()
	if err := p.UpDownCounter(Instrument{Name: "http.in_flight"}, inflight); err != nil {
		t.Fatal(err)
	}
	bytes := percpu.NewFloat64Counter()
	if err := p.Float64Counter(Instrument{Name: "http.bytes", Unit: "By"}, bytes); err != nil {
		t.Fatal(err)
	}

	const G, n = 4, 5000
	var wg sync.WaitGroup
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				r := routes[i%2]
				reqs[r].Add(1)
				inflight.Add(1)
				lat[r].Observe(float64(i % 10))
				bytes.Add(0.5)
				inflight.Add(-1)
			}
		}()
	}
	// Collections while the goroutines run: every histogram point is
	// consistent.
	for k := 0; k < 20; k++ {
		rm := collect(t, p)
		for _, m := range rm.ScopeMetrics[0].Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok {
				for _, dp := range h.DataPoints {
					var c uint64
					for _, b := range dp.BucketCounts {
						c += b
					}
					if c != dp.Count {
						t.Fatalf("point %v: count %d, buckets %v", dp.Attributes.ToSlice(), dp.Count, dp.BucketCounts)
					}
				}
			}
		}
	}
	wg.Wait()

	rm := collect(t, p)
	if len(rm.ScopeMetrics) != 1 || rm.ScopeMetrics[0].Scope != scope {
		t.Fatalf("scopes %+v", rm.ScopeMetrics)
	}
	// Per route: i%2 picks the route, so route /a gets even i, /b odd i.
	perRoute := int64(G * n / 2)
	hist := func(parity int) metricdata.HistogramDataPoint[float64] {
		counts := make([]uint64, len(bounds)+1)
		var sum float64
		for g := 0; g < G; g++ {
			for i := parity; i < n; i += 2 {
				v := float64(i % 10)
				k := len(bounds)
				for j, b := range bounds {
					if v <= b {
						k = j
						break
					}
				}
				counts[k]++
				sum += v
			}
		}
		return metricdata.HistogramDataPoint[float64]{
			Attributes: attribute.NewSet(attribute.String("route", routes[parity])),
			Count:      uint64(perRoute), Bounds: bounds, BucketCounts: counts, Sum: sum,
		}
	}
	want := metricdata.ScopeMetrics{Scope: scope, Metrics: []metricdata.Metrics{
		{Name: "http.requests", Description: "Requests.", Unit: "{request}", Data: metricdata.Sum[int64]{
			Temporality: metricdata.CumulativeTemporality, IsMonotonic: true,
			DataPoints: []metricdata.DataPoint[int64]{
				{Attributes: attribute.NewSet(attribute.String("route", "/a")), Value: perRoute},
				{Attributes: attribute.NewSet(attribute.String("route", "/b")), Value: perRoute},
			},
		}},
		{Name: "http.duration", Description: "Duration.", Unit: "s", Data: metricdata.Histogram[float64]{
			Temporality: metricdata.CumulativeTemporality,
			DataPoints:  []metricdata.HistogramDataPoint[float64]{hist(0), hist(1)},
		}},
		{Name: "http.in_flight", Data: metricdata.Sum[int64]{
			Temporality: metricdata.CumulativeTemporality, IsMonotonic: false,
			DataPoints: []metricdata.DataPoint[int64]{{Value: 0}},
		}},
		{Name: "http.bytes", Unit: "By", Data: metricdata.Sum[float64]{
			Temporality: metricdata.CumulativeTemporality, IsMonotonic: true,
			DataPoints: []metricdata.DataPoint[float64]{{Value: 0.5 * G * n}},
		}},
	}}
	metricdatatest.AssertEqual(t, want, rm.ScopeMetrics[0], metricdatatest.IgnoreTimestamp())
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if s, ok := m.Data.(metricdata.Sum[int64]); ok {
			for _, dp := range s.DataPoints {
				if dp.StartTime.IsZero() || dp.Time.Before(dp.StartTime) {
					t.Errorf("%s: start %v, time %v", m.Name, dp.StartTime, dp.Time)
				}
			}
		}
	}
}

func TestRegistrationErrors(t *testing.T) {
	p := NewProducer(instrumentation.Scope{Name: "x"})
	c := percpu.NewCounter()
	h, _ := percpu.NewHistogram([]float64{1})
	if err := p.Counter(Instrument{Name: "9bad"}, c); err == nil {
		t.Error("invalid name accepted")
	}
	if err := p.Counter(Instrument{Name: "ok"}, nil); err == nil {
		t.Error("nil counter accepted")
	}
	if err := p.Counter(Instrument{Name: "ok", Unit: "1"}, c); err != nil {
		t.Fatal(err)
	}
	if err := p.Counter(Instrument{Name: "ok", Unit: "1"}, percpu.NewCounter()); err == nil {
		t.Error("the same attributes twice accepted")
	}
	if err := p.Histogram(Instrument{Name: "ok", Unit: "1"}, h); err == nil {
		t.Error("another kind under the same name accepted")
	}
	if err := p.Counter(Instrument{Name: "ok", Unit: "s", Attributes: attribute.NewSet(attribute.Bool("b", true))}, c); err == nil {
		t.Error("another unit under the same name accepted")
	}
	if err := p.Counter(Instrument{Name: "ok", Unit: "1", Attributes: attribute.NewSet(attribute.Bool("b", true))}, c); err != nil {
		t.Errorf("a second data point: %v", err)
	}
}
