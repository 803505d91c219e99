package bench

import (
	"context"
	"testing"

	rseqprom "github.com/gorseq/rseq/adapters/prometheus"
	"github.com/gorseq/rseq/internal/benchpeers"
	"github.com/gorseq/rseq/percpu"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// The metrics benchmarks: percpu.Histogram and the Prometheus adapter
// (rseqprom) against client_golang and the OpenTelemetry SDK. "single" is
// one goroutine, "parallel" GOMAXPROCS goroutines on one shared metric
// (2 on the 2-core machine the figures in the README come from).

// histBounds are 16 buckets: 15 bounds and +Inf.
var histBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25}

// nextValue walks through values that land in every bucket.
func nextValue(v float64) float64 {
	v = v*1.7 + 0.0001
	if v > 40 {
		v = 0.0001
	}
	return v
}

func BenchmarkHistogram(b *testing.B) {
	runCases(b, benchpeers.LockFloor())
	b.Run("single/rseq", func(b *testing.B) {
		h, err := percpu.NewHistogram(histBounds)
		if err != nil {
			b.Fatal(err)
		}
		v := 0.0
		for b.Loop() {
			v = nextValue(v)
			h.Observe(v)
		}
		checkHistCount(b, h)
	})
	b.Run("parallel/rseq", func(b *testing.B) {
		h, err := percpu.NewHistogram(histBounds)
		if err != nil {
			b.Fatal(err)
		}
		b.RunParallel(func(pb *testing.PB) {
			v := 0.0
			for pb.Next() {
				v = nextValue(v)
				h.Observe(v)
			}
		})
		checkHistCount(b, h)
	})
	b.Run("single/prometheus", func(b *testing.B) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h", Buckets: histBounds})
		v := 0.0
		for b.Loop() {
			v = nextValue(v)
			h.Observe(v)
		}
	})
	b.Run("parallel/prometheus", func(b *testing.B) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h", Buckets: histBounds})
		b.RunParallel(func(pb *testing.PB) {
			v := 0.0
			for pb.Next() {
				v = nextValue(v)
				h.Observe(v)
			}
		})
	})
	b.Run("single/otel", func(b *testing.B) {
		h, stop := otelHistogram(b)
		defer stop()
		ctx := context.Background()
		v := 0.0
		for b.Loop() {
			v = nextValue(v)
			h.Record(ctx, v)
		}
	})
	b.Run("parallel/otel", func(b *testing.B) {
		h, stop := otelHistogram(b)
		defer stop()
		ctx := context.Background()
		b.RunParallel(func(pb *testing.PB) {
			v := 0.0
			for pb.Next() {
				v = nextValue(v)
				h.Record(ctx, v)
			}
		})
	})
}

// otelHistogram returns an SDK Float64Histogram with the same explicit
// buckets, read by a ManualReader (as an exporter's reader would).
func otelHistogram(b *testing.B) (interface {
	Record(context.Context, float64, ...otelRecordOption)
}, func()) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	h, err := mp.Meter("bench").Float64Histogram("h", otelBuckets(histBounds))
	if err != nil {
		b.Fatal(err)
	}
	return h, func() { mp.Shutdown(context.Background()) }
}

func checkHistCount(b *testing.B, h *percpu.Histogram) {
	s, err := h.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	if s.Count != uint64(b.N) {
		b.Fatalf("histogram counts %d after %d observations", s.Count, b.N)
	}
}

// BenchmarkHistogramSnapshot: a consistent snapshot of a 16-bucket
// histogram that every CPU observed into (rseq: one fence per CPU;
// prometheus: client_golang's Write, which swaps its hot and cold halves
// and waits for the observations in flight).
func BenchmarkHistogramSnapshot(b *testing.B) {
	b.Run("single/rseq", func(b *testing.B) {
		h, err := percpu.NewHistogram(histBounds)
		if err != nil {
			b.Fatal(err)
		}
		fillAllCPUs(func(v float64) { h.Observe(v) })
		var s percpu.HistogramSnapshot
		for b.Loop() {
			if err := h.SnapshotInto(&s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("single/prometheus", func(b *testing.B) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h", Buckets: histBounds})
		fillAllCPUs(h.Observe)
		var m dto.Metric
		for b.Loop() {
			if err := h.Write(&m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPromCounter: Counter.Add(1) of the Prometheus adapter against
// client_golang's (an atomic add on one word for integers).
func BenchmarkPromCounter(b *testing.B) {
	b.Run("single/rseq", func(b *testing.B) {
		c := rseqprom.NewCounter(prometheus.CounterOpts{Name: "c", Help: "c"})
		for b.Loop() {
			c.Add(1)
		}
		checkCount(b, int64(c.Value()))
	})
	b.Run("parallel/rseq", func(b *testing.B) {
		c := rseqprom.NewCounter(prometheus.CounterOpts{Name: "c", Help: "c"})
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(1)
			}
		})
		checkCount(b, int64(c.Value()))
	})
	b.Run("single/prometheus", func(b *testing.B) {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c", Help: "c"})
		for b.Loop() {
			c.Add(1)
		}
	})
	b.Run("parallel/prometheus", func(b *testing.B) {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c", Help: "c"})
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(1)
			}
		})
	})
}

// BenchmarkPromCounterFrac: Counter.Add(0.25): a compare-and-store section
// against client_golang's compare-and-swap loop.
func BenchmarkPromCounterFrac(b *testing.B) {
	b.Run("single/rseq", func(b *testing.B) {
		c := rseqprom.NewCounter(prometheus.CounterOpts{Name: "c", Help: "c"})
		for b.Loop() {
			c.Add(0.25)
		}
	})
	b.Run("parallel/rseq", func(b *testing.B) {
		c := rseqprom.NewCounter(prometheus.CounterOpts{Name: "c", Help: "c"})
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(0.25)
			}
		})
	})
	b.Run("single/prometheus", func(b *testing.B) {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c", Help: "c"})
		for b.Loop() {
			c.Add(0.25)
		}
	})
	b.Run("parallel/prometheus", func(b *testing.B) {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c", Help: "c"})
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(0.25)
			}
		})
	})
}

// BenchmarkPromCounterVec: With(labels).Inc() on a vector with two labels
// and six label sets.
func BenchmarkPromCounterVec(b *testing.B) {
	labels := []prometheus.Labels{
		{"method": "GET", "route": "/"}, {"method": "GET", "route": "/api"}, {"method": "POST", "route": "/api"},
		{"method": "GET", "route": "/static"}, {"method": "PUT", "route": "/api"}, {"method": "DELETE", "route": "/api"},
	}
	names := []string{"method", "route"}
	opts := prometheus.CounterOpts{Name: "v", Help: "v"}
	b.Run("single/rseq", func(b *testing.B) {
		v := rseqprom.NewCounterVec(opts, names)
		i := 0
		for b.Loop() {
			i++
			v.With(labels[i%len(labels)]).Inc()
		}
	})
	b.Run("parallel/rseq", func(b *testing.B) {
		v := rseqprom.NewCounterVec(opts, names)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				v.With(labels[i%len(labels)]).Inc()
			}
		})
	})
	b.Run("single/prometheus", func(b *testing.B) {
		v := prometheus.NewCounterVec(opts, names)
		i := 0
		for b.Loop() {
			i++
			v.With(labels[i%len(labels)]).Inc()
		}
	})
	b.Run("parallel/prometheus", func(b *testing.B) {
		v := prometheus.NewCounterVec(opts, names)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				v.With(labels[i%len(labels)]).Inc()
			}
		})
	})
}
