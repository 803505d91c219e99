package bench

import (
	"runtime"
	"sync"

	"go.opentelemetry.io/otel/metric"
)

// otelRecordOption is the option type of the OpenTelemetry histogram's
// Record.
type otelRecordOption = metric.RecordOption

// otelBuckets is the instrument option that gives an OpenTelemetry
// histogram explicit bucket bounds.
func otelBuckets(bounds []float64) metric.Float64HistogramOption {
	return metric.WithExplicitBucketBoundaries(bounds...)
}

// fillAllCPUs calls observe from goroutines on every P, with yields in
// between, so that every CPU the process runs on is likely to have had
// observations (what a long-running service's histogram looks like).
func fillAllCPUs(observe func(float64)) {
	var wg sync.WaitGroup
	for g := 0; g < 4*runtime.GOMAXPROCS(0); g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := float64(g)
			for i := 0; i < 5000; i++ {
				v = v*1.7 + 0.0001
				if v > 40 {
					v = 0.0001
				}
				observe(v)
				if i%100 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Wait()
}
