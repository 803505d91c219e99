// Package rseqprom exports the per-CPU metrics of
// github.com/gorseq/rseq/percpu to Prometheus through
// github.com/prometheus/client_golang.
//
// Its Counter, Gauge and Histogram, and their labelled vectors CounterVec,
// GaugeVec and HistogramVec, are made from client_golang's own option
// types, implement prometheus.Collector (register them with any
// prometheus.Registerer) and have the methods of client_golang's types,
// so that swapping one in is a one-line change:
//
//	requests := prometheus.NewCounterVec(opts, []string{"route"})
//	requests := rseqprom.NewCounterVec(opts, []string{"route"})
//
// The updates run on the calling thread's CPU as restartable sections,
// without atomic instructions and without sharing a cache line with other
// CPUs: Counter.Inc and integer Counter.Add are one section (the value is
// an int64 percpu.Counter); a non-integer Add is a compare-and-store
// section on a percpu.Float64Counter made on the first such Add (the
// value reported is the sum of both, as client_golang's counter keeps an
// integer and a float part); Histogram.Observe is one section and plain
// stores (percpu.Histogram). Reading (a scrape) sums the shards; a
// histogram's snapshot fences each CPU that observed (a membarrier system
// call, a few microseconds each) and is consistent: its count is the sum
// of its buckets and its sum comes from the same observations.
//
// Not per-CPU: Gauge.Set and Gauge.SetToCurrentTime take a mutex and swap
// the sums (Add, Sub, Inc and Dec stay per-CPU); the vectors' lookup of a
// label set is a hash of the label values and a lock-free map read, and
// only its first use takes a mutex to make the label set's shards.
//
// Memory, with S = rseq.Slots() (the possible CPUs plus one): a Counter or
// Gauge takes 128*S bytes, 256*S once it has had a non-integer Add (or,
// for a Gauge, a Set); a Histogram takes 128*S bytes for up to 12 bucket
// bounds (client_golang's default buckets have 11), 256*S for up to 28.
// In a vector, each label set costs that plus its label values and about
// 100 bytes of bookkeeping; a label set's shards are made on its first
// use. On a 64-CPU machine a vector of 1,000 counters takes about 8 MiB.
//
// Not supported: exemplars, native histograms (NewHistogram panics when
// they are asked for), and summaries.
//
// Without this package and its dependency on client_golang, a
// percpu.Counter can be exported with client_golang's function counter:
// prometheus.NewCounterFunc(opts, func() float64 { return float64(c.Value()) }).
package rseqprom
