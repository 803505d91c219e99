package bench

import (
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

// fillAllCPUs calls observe on every CPU the process may use (pinned
// where the platform allows it, see onEveryCPU), so that every CPU's shard
// has observations, as in a long-running service.
func fillAllCPUs(observe func(float64)) {
	onEveryCPU(func() {
		v := 0.0
		for i := 0; i < 1000; i++ {
			v = v*1.7 + 0.0001
			if v > 40 {
				v = 0.0001
			}
			observe(v)
		}
	})
}
